package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// FailoverOptions configures a failover store ([NewFailover]). The zero
// value is ready to use.
type FailoverOptions struct {
	// CallTimeout bounds every call to a backing store, so that a hung
	// store costs a request at most this long. The caller's own deadline
	// still applies when it is shorter. The default (0) is one second; a
	// negative value is an error.
	CallTimeout time.Duration

	// FailureThreshold is how many calls in a row must fail on the active
	// store before requests move to the next store that answers; the call
	// that reaches it is retried there at once. The default (0) is 3; a
	// negative value is an error.
	FailureThreshold int

	// ProbeInterval is how often a background goroutine pings every store
	// to learn which are healthy and to move requests back to a store
	// earlier in the order. The default (0) is one second; a negative
	// value is an error.
	ProbeInterval time.Duration

	// ProbeTimeout bounds each probe's ping. The default (0) is 500
	// milliseconds; a negative value is an error.
	ProbeTimeout time.Duration

	// RecoverAfter is how many probes in a row a store earlier in the
	// order than the active one must pass before requests move back to
	// it. The default (0) is 3; a negative value is an error.
	RecoverAfter int

	// MaxTracked is how many ids this process remembers as written (saved,
	// touched or destroyed) while a store other than the first was active,
	// to reconcile them on the way back (see [NewFailover]). Ids beyond it
	// are counted and logged, not reconciled. The default (0) is 100000;
	// a negative value is an error.
	MaxTracked int

	// Active is the index of the store to start on, for a caller that
	// already knows the first stores are down. The default is 0; a
	// negative value, or one past the last store, is an error.
	Active int

	// Logger receives every move between stores. The default is
	// slog.Default().
	Logger *slog.Logger
}

// failover is the implementation behind [NewFailover].
type failover struct {
	stores []Store
	comps  []component
	opts   FailoverOptions
	logger *slog.Logger

	counters opCounters
	active   atomic.Int32
	fails    []atomic.Int32 // consecutive failed calls, per store
	healthy  []atomic.Bool  // last probe result, per store

	mu        sync.Mutex
	tracked   map[string]struct{} // written while not on the primary
	untracked int64
	drain     map[string]struct{} // to reconcile from drainFrom into the active store
	drainFrom Store
	moves     atomic.Int64
	revoked   map[string]string // user -> except: DestroyUser run while not on the primary
	revokeGen int64             // bumped by every entry into revoked

	// carryMu is held (read) by every carry, and (write) by a DestroyUser
	// that must revoke on the store being drained, so that no carry copies
	// a revoked session back between the two.
	carryMu sync.RWMutex

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// NewFailover returns a [Store] that sends every request to one of
// several stores, in order of preference: the first (the primary) while
// it works, the next healthy one when it keeps failing, and the primary
// again once a background probe has seen it answer RecoverAfter times in
// a row.
//
// What a user loses, in each direction:
//
//   - Moving away (primary down): sessions stored only in the primary are
//     not visible in the secondary: their users get a fresh, empty
//     session (logged out) until the primary is back. Nothing is copied,
//     since the primary cannot be read.
//   - Moving back: before the primary serves requests again, every id
//     written while a secondary was active (up to MaxTracked per process)
//     is reconciled in the background and before its next use: its
//     record is copied from the secondary into the primary, or deleted
//     from the primary when it was destroyed there. So a session created
//     or changed during the outage survives the return, and a logout
//     during the outage stays a logout. Sessions only read (not written)
//     during the outage are read from the primary as they were before it.
//     Ids written by other processes are reconciled by those processes;
//     ids beyond MaxTracked are lost on the way back, and logged.
//
// Since the store in use changes at runtime, the result offers an
// optional ability only when every store has it:
//
//   - [CompareAndSetter], [Counter]: on the active store;
//   - [UserIndex]: on the active store, so that a revoked session does
//     not come back from another store: a revocation made while a store
//     other than the first is active is replayed on the first before
//     requests move back to it, and one made while ids are being carried
//     back also revokes on the store they come from;
//   - [Cleaner]: on every store (the total deleted, and the first
//     error);
//
// and always [Pinger] (the active store; one that is not a Pinger counts
// as reachable while ctx is live), [io.Closer] (stops the probe goroutine
// and waits for it; the stores are not closed). It counts its
// operations ([Stats]: Fallbacks counts calls made while a store other
// than the first was active; Moves counts moves between stores), and
// Package health reports every store, none required on its own (the
// store is down only when none answers), and the active one.
//
// NewFailover starts the probe goroutine, which Close stops. The stores
// stay the caller's: Close does not close them.
func NewFailover(stores []Store, opts FailoverOptions) (Store, error) {
	if len(stores) == 0 {
		return nil, errors.New("session: NewFailover: no stores")
	}
	for i, s := range stores {
		if s == nil {
			return nil, fmt.Errorf("session: NewFailover: store %d is nil", i)
		}
	}
	if err := opts.check(); err != nil {
		return nil, err
	}
	if opts.Active >= len(stores) {
		return nil, fmt.Errorf("session: NewFailover: FailoverOptions.Active %d is not a store index (%d stores)", opts.Active, len(stores))
	}
	if opts.CallTimeout == 0 {
		opts.CallTimeout = time.Second
	}
	if opts.FailureThreshold == 0 {
		opts.FailureThreshold = 3
	}
	if opts.ProbeInterval == 0 {
		opts.ProbeInterval = time.Second
	}
	if opts.ProbeTimeout == 0 {
		opts.ProbeTimeout = 500 * time.Millisecond
	}
	if opts.RecoverAfter == 0 {
		opts.RecoverAfter = 3
	}
	if opts.MaxTracked == 0 {
		opts.MaxTracked = 100000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	f := &failover{
		stores:  append([]Store(nil), stores...),
		opts:    opts,
		logger:  opts.Logger,
		fails:   make([]atomic.Int32, len(stores)),
		healthy: make([]atomic.Bool, len(stores)),
		tracked: map[string]struct{}{},
		revoked: map[string]string{},
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	for i, s := range stores {
		name, addr := describe(s)
		f.comps = append(f.comps, component{Name: name, Addr: addr, Store: s})
		f.healthy[i].Store(i >= opts.Active)
	}
	uniqueNames(f.comps)
	f.active.Store(int32(opts.Active))
	ab := allAbilities
	for _, s := range stores {
		ab &= abilitiesOf(s)
	}
	go f.probeLoop()
	return compose(f, ab), nil
}

// components implements componenter. No store is required on its own:
// the Failover is down only when none answers.
func (f *failover) components() []component { return append([]component(nil), f.comps...) }

// activeBackend implements activer.
func (f *failover) activeBackend() string { return f.comps[f.active.Load()].Name }

func (f *failover) impl() any { return f }

// activeIndex returns the index of the store requests go to.
func (f *failover) activeIndex() int { return int(f.active.Load()) }

// Stats implements statsReporter.
func (f *failover) Stats() Stats {
	st := f.counters.Stats()
	st.Moves = f.moves.Load()
	return st
}

// do runs fn on the active store, bounded by CallTimeout. When the call
// fails and the active store has now failed FailureThreshold times in a
// row, requests move to the next healthy store and fn is retried there.
func (f *failover) do(ctx context.Context, o op, id string, write bool, fn func(ctx context.Context, s Store) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var err error
	for attempt := 0; attempt < len(f.stores); attempt++ {
		i := int(f.active.Load())
		if id != "" {
			f.reconcile(ctx, id)
		}
		if i != 0 {
			f.counters.fallbacks.Add(1)
			if write && id != "" {
				f.track(id)
			}
		}
		cctx, cancel := context.WithTimeout(ctx, f.opts.CallTimeout)
		err = fn(cctx, f.stores[i])
		cancel()
		if !isFailure(ctx, err) {
			f.fails[i].Store(0)
			break
		}
		if int(f.fails[i].Add(1)) < f.opts.FailureThreshold || !f.moveAway(i, err) {
			break
		}
	}
	f.counters.count(ctx, o, err)
	return err
}

// moveAway moves requests from store i (which just failed) to the next
// healthy store after it, wrapping around. It reports whether requests
// moved (or had already moved).
func (f *failover) moveAway(i int, cause error) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if int(f.active.Load()) != i {
		return true // another call moved them already
	}
	f.healthy[i].Store(false)
	n := len(f.stores)
	for k := 1; k < n; k++ {
		j := (i + k) % n
		if !f.healthy[j].Load() {
			continue
		}
		f.fails[j].Store(0)
		f.active.Store(int32(j))
		f.moves.Add(1)
		f.logger.Warn("session: store failing; moving requests", "from", f.comps[i].Name, "from_addr", f.comps[i].Addr, "to", f.comps[j].Name, "to_addr", f.comps[j].Addr, "error", cause)
		return true
	}
	return false
}

// track remembers id as written while a secondary store is active.
func (f *failover) track(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.tracked[id]; ok {
		return
	}
	if len(f.tracked) >= f.opts.MaxTracked {
		f.untracked++
		if f.untracked == 1 {
			f.logger.Error("session: too many sessions written during failover; further ones will not be carried back to the primary", "max_tracked", f.opts.MaxTracked)
		}
		return
	}
	f.tracked[id] = struct{}{}
}

// reconcile carries id over from the store requests left, when it is
// still waiting for that after a move back.
func (f *failover) reconcile(ctx context.Context, id string) {
	f.mu.Lock()
	_, ok := f.drain[id]
	from := f.drainFrom
	f.mu.Unlock()
	if !ok {
		return
	}
	if f.carry(ctx, id, from, f.stores[f.active.Load()]) == nil {
		f.mu.Lock()
		delete(f.drain, id)
		f.mu.Unlock()
	}
}

// carry makes to hold what from holds under id: the record, or nothing.
func (f *failover) carry(ctx context.Context, id string, from, to Store) error {
	f.carryMu.RLock()
	defer f.carryMu.RUnlock()
	ctx, cancel := context.WithTimeout(ctx, f.opts.CallTimeout)
	defer cancel()
	rec, err := from.Get(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return to.Destroy(ctx, id)
	case err != nil:
		return err
	}
	return to.Set(ctx, id, rec)
}

func (f *failover) probeLoop() {
	defer close(f.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-f.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(f.opts.ProbeInterval)
	defer t.Stop()
	passes := make([]int, len(f.stores))
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
		}
		for i, s := range f.stores {
			pctx, pcancel := context.WithTimeout(ctx, f.opts.ProbeTimeout)
			err := ping(pctx, s)
			pcancel()
			if ctx.Err() != nil {
				return
			}
			f.healthy[i].Store(err == nil)
			if err != nil {
				passes[i] = 0
				continue
			}
			passes[i]++
		}
		a := int(f.active.Load())
		for i := 0; i < a; i++ {
			if passes[i] >= f.opts.RecoverAfter {
				f.moveBack(ctx, i, a)
				break
			}
		}
		f.drainAll(ctx)
	}
}

// moveBack moves requests from store a back to store i (earlier in the
// order). The ids written while a was active are reconciled: each one
// before its next use, and all of them by the probe goroutine right after.
func (f *failover) moveBack(ctx context.Context, i, a int) {
	f.mu.Lock()
	if len(f.drain) > 0 {
		// A previous move back has not finished reconciling: finish it
		// first, so that two sources are never mixed.
		f.mu.Unlock()
		return
	}
	revoked, gen := maps.Clone(f.revoked), f.revokeGen
	f.mu.Unlock()
	// Users revoked while a itself was active: store i still holds
	// their sessions from before the move away. End them there before
	// it serves a request.
	for user, except := range revoked {
		if err := f.revokeOn(ctx, f.stores[i], user, except); err != nil {
			f.logger.Warn("session: could not revoke a user's sessions on the recovering store; not moving back yet", "to", f.comps[i].Name, "error", err)
			return
		}
	}
	f.mu.Lock()
	if f.revokeGen != gen || int(f.active.Load()) != a || len(f.drain) > 0 {
		f.mu.Unlock() // revoked meanwhile: the next probe replays it
		return
	}
	if i == 0 {
		f.revoked = map[string]string{}
	}
	f.drain, f.drainFrom = f.tracked, f.stores[a]
	n := len(f.drain)
	if i == 0 {
		f.tracked = map[string]struct{}{}
	} else {
		f.tracked = map[string]struct{}{}
		for id := range f.drain {
			f.tracked[id] = struct{}{} // still not on the primary
		}
	}
	lost := f.untracked
	f.untracked = 0
	f.fails[i].Store(0)
	f.active.Store(int32(i))
	f.moves.Add(1)
	f.mu.Unlock()
	f.logger.Info("session: store recovered; moving requests back", "from", f.comps[a].Name, "to", f.comps[i].Name, "to_addr", f.comps[i].Addr, "to_reconcile", n, "not_tracked", lost)
}

// drainAll reconciles every id still waiting after a move back.
func (f *failover) drainAll(ctx context.Context) {
	f.mu.Lock()
	ids := make([]string, 0, len(f.drain))
	for id := range f.drain {
		ids = append(ids, id)
	}
	from := f.drainFrom
	f.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	failed := 0
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		if err := f.carry(ctx, id, from, f.stores[f.active.Load()]); err != nil {
			failed++
			continue
		}
		f.mu.Lock()
		delete(f.drain, id)
		f.mu.Unlock()
	}
	f.mu.Lock()
	if len(f.drain) == 0 {
		f.drain, f.drainFrom = nil, nil
	}
	f.mu.Unlock()
	if failed > 0 {
		f.logger.Warn("session: some sessions could not be carried back yet; retrying", "failed", failed)
	}
}

// reconciling returns how many ids still wait to be carried back after a
// move back.
func (f *failover) reconciling() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.drain)
}

// Get implements [Store].
func (f *failover) Get(ctx context.Context, id string) (Record, error) {
	var rec Record
	err := f.do(ctx, opLoad, id, false, func(ctx context.Context, s Store) (err error) {
		rec, err = s.Get(ctx, id)
		return err
	})
	return rec, err
}

// Set implements [Store].
func (f *failover) Set(ctx context.Context, id string, rec Record) error {
	return f.do(ctx, opSave, id, true, func(ctx context.Context, s Store) error { return s.Set(ctx, id, rec) })
}

// Destroy implements [Store].
func (f *failover) Destroy(ctx context.Context, id string) error {
	return f.do(ctx, opDestroy, id, true, func(ctx context.Context, s Store) error { return s.Destroy(ctx, id) })
}

// Touch implements [Store].
func (f *failover) Touch(ctx context.Context, id string, expires time.Time) error {
	return f.do(ctx, opTouch, id, true, func(ctx context.Context, s Store) error { return s.Touch(ctx, id, expires) })
}

// CompareAndSet is offered only when every store is a
// [CompareAndSetter]; it runs on the active store.
func (f *failover) CompareAndSet(ctx context.Context, id string, old []byte, rec Record) error {
	return f.do(ctx, opSave, id, true, func(ctx context.Context, s Store) error {
		return s.(CompareAndSetter).CompareAndSet(ctx, id, old, rec)
	})
}

// revokeOn runs DestroyUser on s, bounded by CallTimeout. It is called
// only when every store is a [UserIndex].
func (f *failover) revokeOn(ctx context.Context, s Store, userID, except string) error {
	ctx, cancel := context.WithTimeout(ctx, f.opts.CallTimeout)
	defer cancel()
	_, err := s.(UserIndex).DestroyUser(ctx, userID, except)
	return err
}

// ListUser is offered only when every store is a [UserIndex]; it lists on
// the active store.
func (f *failover) ListUser(ctx context.Context, userID string) ([]UserRecord, error) {
	var out []UserRecord
	err := f.do(ctx, opLoad, "", false, func(ctx context.Context, s Store) (err error) {
		out, err = s.(UserIndex).ListUser(ctx, userID)
		return err
	})
	return out, err
}

// DestroyUser is offered only when every store is a [UserIndex]. It
// revokes on the active store, so that a
// revoked session does not come back from another store:
//
//   - run while a store other than the primary is active, the revocation
//     is remembered and replayed on the primary before requests move back
//     to it (the primary still holds the user's sessions from before the
//     outage); ids written during the outage are reconciled as usual, so
//     a session revoked there is deleted from the primary too;
//   - run while the ids written during an outage are still being carried
//     back, it also revokes on the store they come from, then again on
//     the active store, with carries held off meanwhile.
//
// The ids are the active store's, and those of a second pass.
func (f *failover) DestroyUser(ctx context.Context, userID, except string) ([]string, error) {
	var ids []string
	used := -1
	err := f.do(ctx, opDestroy, "", true, func(ctx context.Context, s Store) error {
		ui := s.(UserIndex)
		f.mu.Lock()
		used = int(f.active.Load())
		if _, ok := f.revoked[userID]; used != 0 && (ok || len(f.revoked) < f.opts.MaxTracked) {
			f.revoked[userID] = except
			f.revokeGen++
		} else if used != 0 {
			f.untracked++ // reported (not_tracked) on the move back
		}
		f.mu.Unlock()
		var err error
		ids, err = ui.DestroyUser(ctx, userID, except)
		return err
	})
	if err != nil {
		return ids, err
	}
	f.mu.Lock()
	from := f.drainFrom
	if len(f.drain) == 0 {
		from = nil
	}
	moved := int(f.active.Load()) != used
	f.mu.Unlock()
	if from == nil && !moved {
		return ids, nil
	}
	// Carries in flight may copy the user's sessions into the active
	// store from the one they come from: stop them, revoke there, then
	// here again.
	f.carryMu.Lock()
	defer f.carryMu.Unlock()
	if from != nil {
		if err := f.revokeOn(ctx, from, userID, except); err != nil {
			return ids, fmt.Errorf("session: failover: revoked on the active store but not on the one being reconciled: %w", err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, f.opts.CallTimeout)
	more, err := f.stores[f.active.Load()].(UserIndex).DestroyUser(cctx, userID, except)
	cancel()
	return append(ids, more...), err
}

// Count is offered only when every store is a [Counter]; it counts the
// active store.
func (f *failover) Count(ctx context.Context) (int64, error) {
	return f.stores[f.active.Load()].(Counter).Count(ctx)
}

// DeleteExpired is offered only when every store is a [Cleaner]; it
// cleans every store, returning the total deleted and the first error.
func (f *failover) DeleteExpired(ctx context.Context) (int64, error) {
	var total int64
	var first error
	for _, s := range f.stores {
		n, err := s.(Cleaner).DeleteExpired(ctx)
		total += n
		if err != nil && first == nil {
			first = err
		}
	}
	return total, first
}

// Ping implements [Pinger] on the active store.
func (f *failover) Ping(ctx context.Context) error { return ping(ctx, f.stores[f.active.Load()]) }

// Close stops the probe goroutine and waits for it. The stores are not
// closed. Calling Close again is a no-op.
func (f *failover) Close() error {
	f.closeOnce.Do(func() {
		close(f.stop)
		<-f.done
	})
	return nil
}
