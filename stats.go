package session

import (
	"context"
	"errors"
	"expvar"
	"fmt"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a store's operation counters, for an app to
// export however it likes (a /debug page, expvar, a metrics library of its
// choice). Every field only ever grows.
type Stats struct {
	// Loads counts Get calls.
	Loads int64 `json:"loads"`
	// Saves counts Set and CompareAndSet calls.
	Saves int64 `json:"saves"`
	// Touches counts Touch calls.
	Touches int64 `json:"touches"`
	// Destroys counts Destroy calls.
	Destroys int64 `json:"destroys"`
	// Errors counts calls that failed for a reason other than
	// ErrNotFound, ErrConflict or the caller's own context ending.
	Errors int64 `json:"errors"`
	// Fallbacks counts calls that a backend other than the preferred one
	// served: a [Tiered] read that the cache could not answer because it
	// failed, a [Failover] call made while a secondary store is active.
	Fallbacks int64 `json:"fallbacks"`
}

// StatsReporter is implemented by stores that count their operations:
// [InstrumentedStore], [Tiered] and [Failover].
type StatsReporter interface {
	Stats() Stats
}

// Counters is the set of atomic counters behind a [Stats]. The zero value
// is ready to use and it is safe for concurrent use.
type Counters struct {
	loads, saves, touches, destroys, errors, fallbacks atomic.Int64
}

// Stats returns a snapshot of the counters.
func (c *Counters) Stats() Stats {
	return Stats{
		Loads:     c.loads.Load(),
		Saves:     c.saves.Load(),
		Touches:   c.touches.Load(),
		Destroys:  c.destroys.Load(),
		Errors:    c.errors.Load(),
		Fallbacks: c.fallbacks.Load(),
	}
}

type op int

const (
	opLoad op = iota
	opSave
	opTouch
	opDestroy
	opOther
)

// count records one call of kind o that returned err, made with ctx.
func (c *Counters) count(ctx context.Context, o op, err error) {
	switch o {
	case opLoad:
		c.loads.Add(1)
	case opSave:
		c.saves.Add(1)
	case opTouch:
		c.touches.Add(1)
	case opDestroy:
		c.destroys.Add(1)
	}
	if isFailure(ctx, err) {
		c.errors.Add(1)
	}
}

// isFailure reports whether err is a backend failure: not nil, not one of
// the answers a healthy store gives, and not caused by the caller's own
// context ending.
func isFailure(ctx context.Context, err error) bool {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || errors.Is(err, ErrStoreFull) {
		return false
	}
	return ctx.Err() == nil
}

// PublishStats publishes r's counters as the expvar variable name (served
// as JSON on /debug/vars by expvar's handler). Unlike expvar.Publish it
// returns an error instead of panicking when name is taken.
func PublishStats(name string, r StatsReporter) error {
	if expvar.Get(name) != nil {
		return fmt.Errorf("session: expvar %q is already published", name)
	}
	expvar.Publish(name, expvar.Func(func() any { return r.Stats() }))
	return nil
}

// InstrumentedStore counts the calls made to the store it wraps. It
// implements every optional interface; a call to one the wrapped store
// lacks returns an error wrapping [errors.ErrUnsupported].
type InstrumentedStore struct {
	inner    Store
	counters Counters
}

// Instrument returns s wrapped so that its calls are counted. Close closes
// s when s implements [Closer].
func Instrument(s Store) *InstrumentedStore { return &InstrumentedStore{inner: s} }

// Unwrap returns the wrapped store.
func (s *InstrumentedStore) Unwrap() Store { return s.inner }

// Stats implements [StatsReporter].
func (s *InstrumentedStore) Stats() Stats { return s.counters.Stats() }

// Components implements [Componenter]: the wrapped store, required.
func (s *InstrumentedStore) Components() []Component {
	if c, ok := s.inner.(Componenter); ok {
		return c.Components()
	}
	name, addr := describe(s.inner)
	return []Component{{Name: name, Addr: addr, Store: s.inner, Required: true}}
}

// Get implements [Store].
func (s *InstrumentedStore) Get(ctx context.Context, id string) (Record, error) {
	rec, err := s.inner.Get(ctx, id)
	s.counters.count(ctx, opLoad, err)
	return rec, err
}

// Set implements [Store].
func (s *InstrumentedStore) Set(ctx context.Context, id string, rec Record) error {
	err := s.inner.Set(ctx, id, rec)
	s.counters.count(ctx, opSave, err)
	return err
}

// Destroy implements [Store].
func (s *InstrumentedStore) Destroy(ctx context.Context, id string) error {
	err := s.inner.Destroy(ctx, id)
	s.counters.count(ctx, opDestroy, err)
	return err
}

// Touch implements [Store].
func (s *InstrumentedStore) Touch(ctx context.Context, id string, expires time.Time) error {
	err := s.inner.Touch(ctx, id, expires)
	s.counters.count(ctx, opTouch, err)
	return err
}

// CompareAndSet implements [CompareAndSetter].
func (s *InstrumentedStore) CompareAndSet(ctx context.Context, id string, old []byte, rec Record) error {
	c, ok := s.inner.(CompareAndSetter)
	if !ok {
		return unsupported(s.inner, "CompareAndSet")
	}
	err := c.CompareAndSet(ctx, id, old, rec)
	s.counters.count(ctx, opSave, err)
	return err
}

// Count implements [Counter].
func (s *InstrumentedStore) Count(ctx context.Context) (int64, error) { return count(ctx, s.inner) }

// DeleteExpired implements [Cleaner].
func (s *InstrumentedStore) DeleteExpired(ctx context.Context) (int64, error) {
	return deleteExpired(ctx, s.inner)
}

// Ping implements [Pinger]. A wrapped store that is not a Pinger is
// reachable whenever ctx is live.
func (s *InstrumentedStore) Ping(ctx context.Context) error { return ping(ctx, s.inner) }

// Close implements [Closer] by closing the wrapped store.
func (s *InstrumentedStore) Close() error {
	if c, ok := s.inner.(Closer); ok {
		return c.Close()
	}
	return nil
}

func unsupported(s Store, method string) error {
	return fmt.Errorf("session: %T has no %s: %w", s, method, errors.ErrUnsupported)
}

// count counts s when it is a Counter; wrappers delegate to it.
func count(ctx context.Context, s Store) (int64, error) {
	c, ok := s.(Counter)
	if !ok {
		return 0, unsupported(s, "Count")
	}
	return c.Count(ctx)
}

// deleteExpired cleans s when it is a Cleaner; wrappers delegate to it.
func deleteExpired(ctx context.Context, s Store) (int64, error) {
	c, ok := s.(Cleaner)
	if !ok {
		return 0, unsupported(s, "DeleteExpired")
	}
	return c.DeleteExpired(ctx)
}

// ping pings s when it is a Pinger; any other store counts as reachable.
func ping(ctx context.Context, s Store) error {
	if p, ok := s.(Pinger); ok {
		return p.Ping(ctx)
	}
	return ctx.Err()
}
