package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// TieredOptions configures a tiered store ([NewTiered]). The zero value
// is ready to use.
type TieredOptions struct {
	// CacheTimeout bounds every call to the cache, so that a hung cache
	// (a Redis that accepts connections but never answers) costs a request
	// at most this long before it is served by the source. The default
	// (0) is 100 milliseconds; a negative value is an error.
	CacheTimeout time.Duration

	// RetryInterval is how long the cache is left alone after it failed:
	// meanwhile every call goes to the source only, at no cost. After it,
	// the next call tries the cache again, so a cache that comes back is
	// used again without a restart. The default (0) is one second; a
	// negative value is an error.
	RetryInterval time.Duration

	// MaxPending is how many ids this process remembers whose cached copy
	// may be stale because a cache write failed (the cache was down when
	// the session was saved, touched or destroyed). Their next read goes
	// to the source and rewrites the cache. Beyond this many the cache is
	// no longer read at all (it is still written), since stale copies
	// could no longer be told apart; that is logged. The default (0) is
	// 100000; a negative value is an error.
	MaxPending int

	// TombstoneTTL is how long a destroyed id stays marked in the cache,
	// so that a read racing with the Destroy cannot copy the record back
	// into the cache. The default (0) is one minute; a negative value is
	// an error.
	TombstoneTTL time.Duration

	// Logger receives the cache going down and coming back. The default
	// is slog.Default().
	Logger *slog.Logger
}

// tiered is the implementation behind [NewTiered].
type tiered struct {
	cache, source Store
	casCache      CompareAndSetter // nil when the cache cannot compare
	opts          TieredOptions
	logger        *slog.Logger
	counters      opCounters
	comps         []component

	downUntil atomic.Int64 // unix nanoseconds; 0: the cache is up
	mu        sync.Mutex
	pending   map[string]struct{}
	untrusted bool // pending overflowed: the cache is no longer read
	hits      atomic.Int64
	misses    atomic.Int64
}

// tombstone is the cached value of a destroyed id. A record whose Data is
// exactly these bytes is still stored correctly: it is always read from
// the source.
var tombstone = []byte("\x00sessionkit/session:tombstone\x00")

// NewTiered returns a [Store] that keeps a cache (Redis) in front of a
// source of truth (Postgres), like Django's cached_db sessions:
//
//   - writes (Set, Touch, Destroy, CompareAndSet) go to the source first
//     and fail when it fails; then the cache is updated, or invalidated
//     when updating it is not safe;
//   - reads hit the cache and fall back to the source on a miss or a cache
//     error, copying the record into the cache.
//
// A cache that fails or hangs loses no session and fails no request: each
// cache call is bounded by CacheTimeout, after a failure the cache is
// skipped for RetryInterval, and the ids written meanwhile are remembered
// so that stale copies are never served when the cache is back. With the
// source down, reads that hit the cache still succeed and writes fail.
//
// The store offers exactly the optional abilities its source has:
//
//   - [CompareAndSetter]: the comparison runs on the source; the cached
//     copy is then moved from old to new by a compare-and-set of its own,
//     or evicted when the cache cannot compare or holds something else;
//   - [UserIndex]: a user's sessions are listed and revoked on the
//     source, and the cached copy of each revoked one is tombstoned like a
//     Destroy, so that none is served afterwards;
//   - [Counter] and [Cleaner]: on the source (a cache such as Redis
//     expires its copies by itself);
//
// and always [Pinger] (reachable when the source is, whatever the cache;
// a source that is not a Pinger counts as reachable while ctx is live),
// [io.Closer] (a no-op: it runs no goroutine and does not own its stores).
// It counts its operations ([Stats]: Fallbacks counts reads the cache
// could not answer because it failed, was skipped or could not be
// trusted; CacheHits and CacheMisses count reads answered by the cache
// and by the source), and package health reports the cache, not required,
// and the source, required and active.
//
// Limits: the ids whose cache write failed are remembered per process. A
// cache that only one process of several could not reach may keep serving
// that process's old copy to the others until the id is written again,
// read by that process (a read of a destroyed id buries its copy), or the
// copy expires. As in any cache-aside scheme, a read that races with
// a plain Set of the same id may leave the older copy in the cache until
// the next write; CompareAndSet (which the middleware uses) detects such a
// copy and evicts it.
//
// Both stores stay the caller's: Close does not close them. The cache
// should be a [CompareAndSetter] (a [RedisStore] is): without it a copy
// can only be invalidated, not refilled safely, so every read misses.
func NewTiered(cache, source Store, opts TieredOptions) (Store, error) {
	if cache == nil || source == nil {
		return nil, errors.New("session: NewTiered: cache and source must not be nil")
	}
	if err := opts.check(); err != nil {
		return nil, err
	}
	if opts.CacheTimeout == 0 {
		opts.CacheTimeout = 100 * time.Millisecond
	}
	if opts.RetryInterval == 0 {
		opts.RetryInterval = time.Second
	}
	if opts.MaxPending == 0 {
		opts.MaxPending = 100000
	}
	if opts.TombstoneTTL == 0 {
		opts.TombstoneTTL = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	t := &tiered{cache: cache, source: source, opts: opts, logger: opts.Logger, pending: map[string]struct{}{}}
	t.casCache, _ = cache.(CompareAndSetter)
	cn, ca := describe(cache)
	sn, sa := describe(source)
	t.comps = []component{{Name: cn, Addr: ca, Store: cache}, {Name: sn, Addr: sa, Store: source, Required: true}}
	uniqueNames(t.comps)
	return compose(t, abilitiesOf(source)), nil
}

func (t *tiered) impl() any { return t }

// components implements componenter: the cache (not required) and the
// source (required).
func (t *tiered) components() []component { return append([]component(nil), t.comps...) }

// activeBackend implements activer: the source, which every write and
// every read the cache cannot answer goes to.
func (t *tiered) activeBackend() string { return t.comps[1].Name }

// Stats implements statsReporter.
func (t *tiered) Stats() Stats {
	st := t.counters.Stats()
	st.CacheHits, st.CacheMisses = t.hits.Load(), t.misses.Load()
	return st
}

// cacheUp reports whether the cache is in use: it has not failed within
// RetryInterval and has not been given up on (MaxPending).
func (t *tiered) cacheUp() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.untrusted && t.downUntil.Load() == 0
}

// cacheUsable reports whether a cache call should be tried now.
func (t *tiered) cacheUsable() bool {
	d := t.downUntil.Load()
	return d == 0 || time.Now().UnixNano() >= d
}

// cacheCall runs fn on the cache bounded by CacheTimeout, and records the
// cache as failed when fn fails for a reason other than a store answer or
// the caller's own context.
func (t *tiered) cacheCall(ctx context.Context, fn func(ctx context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, t.opts.CacheTimeout)
	defer cancel()
	err := fn(cctx)
	if isFailure(ctx, err) {
		if t.downUntil.Swap(time.Now().Add(t.opts.RetryInterval).UnixNano()) == 0 {
			t.logger.Warn("session: cache failed; serving from the source", "cache", t.comps[0].Name, "addr", t.comps[0].Addr, "error", err)
		}
		return err
	}
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		if t.downUntil.Swap(0) != 0 {
			t.logger.Info("session: cache is back", "cache", t.comps[0].Name, "addr", t.comps[0].Addr)
		}
	}
	return err
}

func (t *tiered) isPending(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.pending[id]
	return ok || t.untrusted
}

func (t *tiered) markPending(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.untrusted {
		return
	}
	if len(t.pending) >= t.opts.MaxPending {
		t.untrusted = true
		t.pending = map[string]struct{}{}
		t.logger.Error("session: too many sessions changed while the cache was failing; the cache is no longer read by this process", "cache", t.comps[0].Name, "max_pending", t.opts.MaxPending)
		return
	}
	t.pending[id] = struct{}{}
}

func (t *tiered) clearPending(id string) {
	t.mu.Lock()
	delete(t.pending, id)
	t.mu.Unlock()
}

// syncCache applies fn to the cache after a successful write to the
// source. When the cache cannot be written, id is remembered so that its
// possibly stale copy is not read.
func (t *tiered) syncCache(ctx context.Context, id string, fn func(ctx context.Context) error) {
	if !t.cacheUsable() {
		t.markPending(id)
		return
	}
	if err := t.cacheCall(ctx, fn); err != nil && !errors.Is(err, ErrNotFound) {
		t.markPending(id)
		return
	}
	t.clearPending(id)
}

// Get implements [Store].
func (t *tiered) Get(ctx context.Context, id string) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	rec, err := t.get(ctx, id)
	t.counters.count(ctx, opLoad, err)
	return rec, err
}

func (t *tiered) get(ctx context.Context, id string) (Record, error) {
	pending := t.isPending(id)
	refill := t.casCache != nil && t.cacheUsable()
	if !pending && t.cacheUsable() {
		var rec Record
		err := t.cacheCall(ctx, func(c context.Context) (err error) {
			rec, err = t.cache.Get(c, id)
			return err
		})
		switch {
		case err == nil && !bytes.Equal(rec.Data, tombstone):
			t.hits.Add(1)
			return rec, nil
		case err == nil: // destroyed recently: do not copy back
			refill = false
		case errors.Is(err, ErrNotFound):
		case ctx.Err() != nil:
			return Record{}, err
		default:
			refill = false
			t.counters.fallbacks.Add(1)
		}
	} else {
		t.counters.fallbacks.Add(1)
	}
	t.misses.Add(1)
	rec, err := t.source.Get(ctx, id)
	if errors.Is(err, ErrNotFound) && pending && refill {
		// Destroyed or revoked while the cache was failing: bury the
		// stale copy the cache may still hold, for every process.
		t.syncCache(ctx, id, func(c context.Context) error { return t.bury(c, id) })
	}
	if err != nil {
		return Record{}, err
	}
	if refill {
		if pending {
			// The cached copy may be stale: replace it.
			t.syncCache(ctx, id, func(c context.Context) error { return t.cache.Set(c, id, rec) })
		} else {
			// Only fill an empty slot, so that a write that landed
			// meanwhile (or a tombstone) is never overwritten.
			t.cacheCall(ctx, func(c context.Context) error { return t.casCache.CompareAndSet(c, id, nil, rec) })
		}
	}
	return rec, nil
}

// Set implements [Store]: the source, then the cache.
func (t *tiered) Set(ctx context.Context, id string, rec Record) error {
	err := t.source.Set(ctx, id, rec)
	t.counters.count(ctx, opSave, err)
	if err != nil {
		return err
	}
	if !rec.Expires.After(time.Now()) {
		t.syncCache(ctx, id, func(c context.Context) error { return t.bury(c, id) })
		return nil
	}
	t.syncCache(ctx, id, func(c context.Context) error { return t.cache.Set(c, id, rec) })
	return nil
}

// bury replaces the cached copy of a destroyed id with a tombstone.
func (t *tiered) bury(ctx context.Context, id string) error {
	return t.cache.Set(ctx, id, Record{Data: tombstone, Expires: time.Now().Add(t.opts.TombstoneTTL)})
}

// Destroy implements [Store]: the source, then the cache (a tombstone).
func (t *tiered) Destroy(ctx context.Context, id string) error {
	err := t.source.Destroy(ctx, id)
	t.counters.count(ctx, opDestroy, err)
	if err != nil {
		return err
	}
	t.syncCache(ctx, id, func(c context.Context) error { return t.bury(c, id) })
	return nil
}

// Touch implements [Store]: the source, then the cached copy's expiry.
func (t *tiered) Touch(ctx context.Context, id string, expires time.Time) error {
	err := t.source.Touch(ctx, id, expires)
	t.counters.count(ctx, opTouch, err)
	if err != nil {
		return err
	}
	if !t.cacheUsable() {
		t.markPending(id)
		return nil
	}
	// A Touch does not make a stale copy fresh: leave id pending then.
	if err := t.cacheCall(ctx, func(c context.Context) error { return t.cache.Touch(c, id, expires) }); err != nil && !errors.Is(err, ErrNotFound) {
		t.markPending(id)
	}
	return nil
}

// CompareAndSet is offered only when the source is a [CompareAndSetter].
// The comparison runs on the
// source, the source of truth. When it holds, the cached copy is moved
// from old to rec by a compare-and-set of its own, or evicted when it
// does not hold old (another writer got there first, or it was not
// cached). When it does not hold, the cached copy is evicted, since the
// caller may have read a stale one: its retry reads the source.
func (t *tiered) CompareAndSet(ctx context.Context, id string, old []byte, rec Record) error {
	err := t.source.(CompareAndSetter).CompareAndSet(ctx, id, old, rec)
	t.counters.count(ctx, opSave, err)
	switch {
	case errors.Is(err, ErrConflict):
		t.syncCache(ctx, id, func(c context.Context) error { return t.cache.Destroy(c, id) })
		return err
	case err != nil:
		return err
	}
	if !rec.Expires.After(time.Now()) {
		t.syncCache(ctx, id, func(c context.Context) error { return t.bury(c, id) })
		return nil
	}
	t.syncCache(ctx, id, func(c context.Context) error {
		if t.casCache == nil {
			return t.cache.Destroy(c, id)
		}
		err := t.casCache.CompareAndSet(c, id, old, rec)
		if errors.Is(err, ErrConflict) {
			return t.cache.Destroy(c, id)
		}
		return err
	})
	return nil
}

// buryBatch is how many ids one cache call of buryMany tombstones, so that
// each stays within CacheTimeout.
const buryBatch = 1000

// ListUser is offered only when the source is a [UserIndex]; it lists on
// the source, the source of truth.
func (t *tiered) ListUser(ctx context.Context, userID string) ([]UserRecord, error) {
	return t.source.(UserIndex).ListUser(ctx, userID)
}

// DestroyUser is offered only when the source is a [UserIndex]. The
// user's records are deleted from the source, then the cached copy of
// every deleted id is replaced by a tombstone, as Destroy does, so that no
// copy is served afterwards and a read racing with the revocation cannot
// copy one back. The ids are those the source deleted plus those the cache
// lists for the user when it indexes users (a [RedisStore] does), which
// covers a copy whose expiry only the cache moved. With the cache down or
// failing, the ids it could not bury are remembered like any write that
// missed the cache: they are read from the source (and buried) once the
// cache is back.
func (t *tiered) DestroyUser(ctx context.Context, userID, except string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ids, err := t.source.(UserIndex).DestroyUser(ctx, userID, except)
	t.counters.count(ctx, opDestroy, err)
	bury := ids
	if cui, ok := t.cache.(UserIndex); ok && t.cacheUsable() {
		var cached []UserRecord
		if t.cacheCall(ctx, func(c context.Context) (err error) {
			cached, err = cui.ListUser(c, userID)
			return err
		}) == nil {
			bury = slices.Clone(ids)
			for _, r := range cached {
				if r.ID != except && !slices.Contains(ids, r.ID) {
					bury = append(bury, r.ID)
				}
			}
		}
	}
	// Bury what was deleted even when the source failed part way.
	t.buryMany(ctx, bury)
	return ids, err
}

// buryMany tombstones ids in the cache, in batches; the ids of a batch
// that fails (and of those after it) are remembered as pending.
func (t *tiered) buryMany(ctx context.Context, ids []string) {
	for len(ids) > 0 {
		if !t.cacheUsable() {
			break
		}
		batch := ids[:min(len(ids), buryBatch)]
		err := t.cacheCall(ctx, func(c context.Context) error {
			tomb := Record{Data: tombstone, Expires: time.Now().Add(t.opts.TombstoneTTL)}
			for _, id := range batch {
				if err := t.cache.Set(c, id, tomb); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			break
		}
		for _, id := range batch {
			t.clearPending(id)
		}
		ids = ids[len(batch):]
	}
	for _, id := range ids {
		t.markPending(id)
	}
}

// Count is offered only when the source is a [Counter], and counts it.
func (t *tiered) Count(ctx context.Context) (int64, error) { return t.source.(Counter).Count(ctx) }

// DeleteExpired is offered only when the source is a [Cleaner], and
// cleans it (a cache such as Redis expires its copies by itself).
func (t *tiered) DeleteExpired(ctx context.Context) (int64, error) {
	return t.source.(Cleaner).DeleteExpired(ctx)
}

// Ping implements [Pinger]: the store is reachable when its source is,
// whatever the cache.
func (t *tiered) Ping(ctx context.Context) error { return ping(ctx, t.source) }

// Close implements [io.Closer]. A tiered store runs no goroutine and does not
// own its cache and source, so Close does nothing.
func (t *tiered) Close() error { return nil }

// String describes the store for logs.
func (t *tiered) String() string {
	return fmt.Sprintf("tiered(%s over %s)", t.comps[0].Name, t.comps[1].Name)
}
