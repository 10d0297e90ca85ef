package session

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a store's operation counters, as
// [Backend.Stats] returns them, for an app to export however it likes (a
// /debug page, expvar, a metrics library of its choice). Every field only
// ever grows.
type Stats struct {
	// Loads counts Get calls, and ListUser calls where the store is a
	// [UserIndex].
	Loads int64 `json:"loads"`
	// Saves counts Set and CompareAndSet calls.
	Saves int64 `json:"saves"`
	// Touches counts Touch calls.
	Touches int64 `json:"touches"`
	// Destroys counts Destroy calls, and DestroyUser calls where the store
	// is a [UserIndex].
	Destroys int64 `json:"destroys"`
	// Errors counts calls that failed for a reason other than
	// ErrNotFound, ErrConflict or the caller's own context ending.
	Errors int64 `json:"errors"`
	// Fallbacks counts calls that a backend other than the preferred one
	// served: a tiered read ([NewTiered]) that the cache could not answer
	// because it failed, a failover call ([NewFailover]) made while a
	// secondary store is active.
	Fallbacks int64 `json:"fallbacks"`
	// CacheHits counts the reads a tiered store's cache answered; 0 for
	// other stores.
	CacheHits int64 `json:"cache_hits,omitempty"`
	// CacheMisses counts the reads a tiered store sent to its source
	// (fallbacks included); 0 for other stores.
	CacheMisses int64 `json:"cache_misses,omitempty"`
	// Moves counts how many times a failover store moved requests between
	// its stores; 0 for other stores.
	Moves int64 `json:"moves,omitempty"`
}

// statsReporter is implemented by stores that count their operations:
// those returned by instrument, [NewTiered] and [NewFailover].
type statsReporter interface {
	Stats() Stats
}

// opCounters is the set of atomic counters behind a [Stats]. The zero
// value is ready to use and it is safe for concurrent use.
type opCounters struct {
	loads, saves, touches, destroys, errors, fallbacks atomic.Int64
}

// Stats returns a snapshot of the counters.
func (c *opCounters) Stats() Stats {
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
func (c *opCounters) count(ctx context.Context, o op, err error) {
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

// instrument returns s wrapped so that its calls are counted
// (statsReporter): what [Open] returns in select mode. The result offers
// exactly the optional abilities s has among [CompareAndSetter],
// [UserIndex], [Counter] and [Cleaner] (CompareAndSet counts as a save,
// ListUser as a load, DestroyUser as a destroy), and always [Pinger] (a
// store that is not a Pinger is reachable while ctx is live), [io.Closer]
// (closing s when s is a io.Closer), componenter (the components of s, or s
// itself as a required backend) and activer (the backend of s in use).
func instrument(s Store) Store {
	return compose(&instrumented{inner: s}, abilitiesOf(s))
}

// instrumented is the implementation behind instrument.
type instrumented struct {
	inner    Store
	counters opCounters
}

func (s *instrumented) impl() any { return s }

// Stats implements statsReporter.
func (s *instrumented) Stats() Stats { return s.counters.Stats() }

// components implements componenter: the wrapped store's components, or
// the wrapped store itself, required.
func (s *instrumented) components() []component { return components(s.inner) }

// activeBackend implements activer: the wrapped store's.
func (s *instrumented) activeBackend() string { return activeBackend(s.inner) }

func (s *instrumented) Get(ctx context.Context, id string) (Record, error) {
	rec, err := s.inner.Get(ctx, id)
	s.counters.count(ctx, opLoad, err)
	return rec, err
}

func (s *instrumented) Set(ctx context.Context, id string, rec Record) error {
	err := s.inner.Set(ctx, id, rec)
	s.counters.count(ctx, opSave, err)
	return err
}

func (s *instrumented) Destroy(ctx context.Context, id string) error {
	err := s.inner.Destroy(ctx, id)
	s.counters.count(ctx, opDestroy, err)
	return err
}

func (s *instrumented) Touch(ctx context.Context, id string, expires time.Time) error {
	err := s.inner.Touch(ctx, id, expires)
	s.counters.count(ctx, opTouch, err)
	return err
}

// CompareAndSet is offered only when the wrapped store is a
// [CompareAndSetter].
func (s *instrumented) CompareAndSet(ctx context.Context, id string, old []byte, rec Record) error {
	err := s.inner.(CompareAndSetter).CompareAndSet(ctx, id, old, rec)
	s.counters.count(ctx, opSave, err)
	return err
}

// ListUser is offered only when the wrapped store is a [UserIndex].
func (s *instrumented) ListUser(ctx context.Context, userID string) ([]UserRecord, error) {
	out, err := s.inner.(UserIndex).ListUser(ctx, userID)
	s.counters.count(ctx, opLoad, err)
	return out, err
}

// DestroyUser is offered only when the wrapped store is a [UserIndex].
func (s *instrumented) DestroyUser(ctx context.Context, userID, except string) ([]string, error) {
	ids, err := s.inner.(UserIndex).DestroyUser(ctx, userID, except)
	s.counters.count(ctx, opDestroy, err)
	return ids, err
}

// Count is offered only when the wrapped store is a [Counter].
func (s *instrumented) Count(ctx context.Context) (int64, error) {
	return s.inner.(Counter).Count(ctx)
}

// DeleteExpired is offered only when the wrapped store is a [Cleaner].
func (s *instrumented) DeleteExpired(ctx context.Context) (int64, error) {
	return s.inner.(Cleaner).DeleteExpired(ctx)
}

func (s *instrumented) Ping(ctx context.Context) error { return ping(ctx, s.inner) }

// Close closes the wrapped store when it is a [io.Closer].
func (s *instrumented) Close() error {
	if c, ok := s.inner.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// ping pings s when it is a Pinger; any other store counts as reachable
// while ctx is live.
func ping(ctx context.Context, s Store) error {
	if p, ok := s.(Pinger); ok {
		return p.Ping(ctx)
	}
	return ctx.Err()
}
