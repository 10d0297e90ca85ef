package session

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/sessionkit/session/audit"
)

// Ending every session at once ([Manager.RevokeAll]).
//
// Deleting every record does not scale (a million keys take a while, and
// sessions created meanwhile race with the deletion) and cannot reach a
// cache in front of the store. Instead the store keeps one number, its
// epoch, and every record carries the epoch it was created in (the
// payload's "epoch"; 0, and absent, before the first RevokeAll). RevokeAll
// raises the store's epoch by one: from then on a record of an older epoch
// counts as gone, and a request presenting it gets a fresh session (its
// record is destroyed on the way).
//
// Each process keeps the epoch in memory and re-reads it in the
// background, at most once per Options.EpochInterval, while requests come:
// a request never waits for it, except the first one that needs it and one
// that finds it older than twice the interval (an idle process). So a
// request still makes exactly the store calls it made before, and
// RevokeAll takes effect at once on the process that called it and within
// EpochInterval (never more than twice that) on every other.

// epocher is the optional store ability behind [Manager.RevokeAll]. The
// three built-in stores have it (memory: a counter; Redis: one key,
// UserPrefix + "epoch"; Postgres: one row of the table, id
// "sessionkit:epoch"), and the wrappers pass it on like the other
// abilities. A store of your own gains RevokeAll by having these two
// methods.
type epocher interface {
	// Epoch returns the store's epoch: 0 until RaiseEpoch first raised
	// it.
	Epoch(ctx context.Context) (int64, error)
	// RaiseEpoch sets the epoch to to when it is lower, in one atomic
	// step, and returns the epoch after the call: to, or a higher epoch
	// another caller set. The epoch never goes down.
	RaiseEpoch(ctx context.Context, to int64) (int64, error)
}

// epochState is a Manager's view of its store's epoch.
type epochState struct {
	src      epocher
	interval time.Duration
	value    atomic.Int64 // the highest epoch read or raised
	next     atomic.Int64 // unix ns after which a background read is due
	hard     atomic.Int64 // unix ns after which a request reads first
	mu       sync.Mutex   // one read at a time
	running  atomic.Bool  // a background read is under way
	failing  atomic.Bool  // the last read failed (logged once)
}

// setupEpoch gives m an epochState when its store keeps an epoch and its
// codec carries one; otherwise RevokeAll returns why not.
func (m *Manager) setupEpoch() {
	src, ok := m.store.(epocher)
	if !ok {
		m.noEpoch = fmt.Errorf("session: RevokeAll: %w: the store (%T) keeps no epoch (it has no Epoch and RaiseEpoch methods)", errors.ErrUnsupported, m.store)
		return
	}
	if !codecKeepsEpoch(m.codec) {
		m.noEpoch = fmt.Errorf("session: RevokeAll: %w: the codec (%T) does not give back the meta's epoch", errors.ErrUnsupported, m.codec)
		return
	}
	m.epoch = &epochState{src: src, interval: m.opts.EpochInterval}
}

// codecKeepsEpoch reports whether c gives back the epoch it was given in
// the meta, as the Codec contract asks (the express-session mode's codec
// does not): with a codec that dropped it, every session would look older
// than the first RevokeAll, forever.
func codecKeepsEpoch(c Codec) bool {
	p := payload{CreatedAt: time.Now(), Epoch: 1 << 40}
	data, err := c.Encode(p.meta(), map[string]any{})
	if err != nil {
		return false
	}
	meta, _, err := c.Decode(data)
	if err != nil {
		return false
	}
	got, err := parseMeta(meta, false)
	return err == nil && got.Epoch == p.Epoch
}

// currentEpoch returns the epoch this process knows, reading it first
// when it has never been read or was last read more than twice
// EpochInterval ago, and starting a background read when it was read more
// than EpochInterval ago. 0 when the store keeps no epoch.
func (m *Manager) currentEpoch(ctx context.Context) int64 {
	e := m.epoch
	if e == nil {
		return 0
	}
	now := time.Now().UnixNano()
	switch {
	case now < e.next.Load():
	case now < e.hard.Load():
		m.refreshEpochAsync()
	default:
		m.readEpoch(ctx)
	}
	return e.value.Load()
}

// staleEpoch reports whether a record of epoch is older than the store's:
// ended by RevokeAll.
func (m *Manager) staleEpoch(ctx context.Context, epoch int64) bool {
	return m.epoch != nil && epoch < m.currentEpoch(ctx)
}

// refreshEpochAsync starts a background read of the epoch unless one is
// under way or the manager is closed.
func (m *Manager) refreshEpochAsync() {
	e := m.epoch
	if !e.running.CompareAndSwap(false, true) {
		return
	}
	if !m.goBackground(func() {
		defer e.running.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), m.opts.CommitTimeout)
		defer cancel()
		m.readEpoch(ctx)
	}) {
		e.running.Store(false)
	}
}

// readEpoch reads the store's epoch, unless another read finished while
// this one waited for its turn. A failure is logged once (and its
// recovery once), and leaves the known epoch in force for another
// interval: requests are not failed, or slowed, by a store that cannot
// say its epoch.
func (m *Manager) readEpoch(ctx context.Context) {
	e := m.epoch
	e.mu.Lock()
	defer e.mu.Unlock()
	if time.Now().UnixNano() < e.next.Load() {
		return // another read just finished
	}
	v, err := e.src.Epoch(ctx)
	now := time.Now()
	if err != nil {
		if ctx.Err() != nil && e.hard.Load() != 0 {
			return // the request went away; the next one reads
		}
		if !e.failing.Swap(true) {
			m.logger.Warn("session: cannot read the store's epoch; sessions ended by RevokeAll on another process may still be accepted here until it can", "error", err)
		}
		e.next.Store(now.Add(e.interval).UnixNano())
		e.hard.Store(now.Add(e.interval).UnixNano())
		return
	}
	if e.failing.Swap(false) {
		m.logger.Info("session: the store's epoch can be read again")
	}
	e.raise(v)
	e.next.Store(now.Add(e.interval).UnixNano())
	e.hard.Store(now.Add(2 * e.interval).UnixNano())
}

// raise makes v the known epoch if it is higher.
func (e *epochState) raise(v int64) {
	for {
		cur := e.value.Load()
		if v <= cur || e.value.CompareAndSwap(cur, v) {
			return
		}
	}
}

// RevokeAll ends every session at once, of every user and anonymous ones
// alike: the day a breach is suspected, or after every user's password
// was reset. It raises the store's epoch (one round trip to read it, one
// to raise it, however many sessions there are); every session created
// before counts as gone from then on: at once on this process, and within
// [Options.EpochInterval] (five seconds by default, never more than twice
// that) on every other process sharing the store. A request that
// presents an ended session gets a fresh, anonymous one, and its record
// is destroyed on the way; the records nobody presents again stay in the
// store (and in its Count) until they expire. A login on another process
// in that interval may be ended too.
//
// If the request whose context is passed has a session, its cookie is
// expired too: whoever calls RevokeAll from a web page is logged out like
// everyone else. Like a logout, RevokeAll is not cut short by ctx's
// cancellation; it is bounded by [Options.CommitTimeout].
//
// It needs a store that keeps an epoch (the three built-in stores do,
// directly and through [Open]'s modes, [NewTiered] and [NewFailover]) and
// a codec that keeps the meta it is given, as [Codec] asks (the built-in
// one does; the express-session mode's does not); otherwise it returns an error wrapping
// [errors.ErrUnsupported]. sessionctl revoke -all does the same from the
// command line. A store of your own keeps an epoch by having these two
// methods (the sessiontest suite checks them):
//
//	// Epoch returns the store's epoch: 0 until RaiseEpoch first raised it.
//	Epoch(ctx context.Context) (int64, error)
//	// RaiseEpoch sets the epoch to to when it is lower, in one atomic
//	// step, and returns the epoch after the call: to, or a higher one
//	// another caller set. The epoch never goes down.
//	RaiseEpoch(ctx context.Context, to int64) (int64, error)
//
// Removing every old signing key ([Options.Keys]) also ends every
// session, as no cookie signed before verifies any more: that is the
// right move when a key has leaked, since RevokeAll alone leaves the
// attacker able to sign new cookies. RevokeAll is the move when keys are
// safe but sessions are not (a stolen database dump of session ids is
// worth nothing, as the store keeps only hashes; a stolen set of cookies
// is).
func (m *Manager) RevokeAll(ctx context.Context) error {
	e := m.epoch
	if e == nil {
		return m.noEpoch
	}
	ctx, cancel := m.commitContext(ctx)
	defer cancel()
	cur, err := e.src.Epoch(ctx)
	if err != nil {
		m.stats.errors.Add(1)
		return fmt.Errorf("session: RevokeAll: %w", err)
	}
	got, err := e.src.RaiseEpoch(ctx, max(cur, e.value.Load())+1)
	if err != nil {
		m.stats.errors.Add(1)
		return fmt.Errorf("session: RevokeAll: %w", err)
	}
	e.raise(got)
	s := m.current(ctx)
	if m.eventsOn() {
		m.emit(m.event(audit.Revoked, "all", "", "", s.request()))
	}
	if s != nil {
		s.endAll()
	}
	return nil
}

// The built-in stores' epochs.

// Epoch implements the epoch ability of [Manager.RevokeAll]: a counter
// in memory.
func (m *MemoryStore) Epoch(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return m.epoch.Load(), nil
}

// RaiseEpoch implements the epoch ability of [Manager.RevokeAll].
func (m *MemoryStore) RaiseEpoch(ctx context.Context, to int64) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	for {
		cur := m.epoch.Load()
		if to <= cur {
			return cur, nil
		}
		if m.epoch.CompareAndSwap(cur, to) {
			return to, nil
		}
	}
}

// epochKey is the Redis key of the store's epoch: under UserPrefix, which
// never overlaps Prefix (so Count does not count it and no session id can
// name it), and without the braces of a user's index key.
func (s *RedisStore) epochKey() string { return s.userPrefix + "epoch" }

// raiseEpochScript sets KEYS[1] to ARGV[1] when it holds less (or
// nothing), and returns what it holds after.
var raiseEpochScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if not cur then return redis.error_reply('the session epoch key does not hold a number') end
local to = tonumber(ARGV[1])
if cur < to then
  redis.call('SET', KEYS[1], ARGV[1])
  return ARGV[1]
end
return tostring(cur)
`)

// Epoch implements the epoch ability of [Manager.RevokeAll] with one GET
// of the key UserPrefix + "epoch" (a decimal number, with no expiry).
func (s *RedisStore) Epoch(ctx context.Context) (int64, error) {
	v, err := s.client.Get(ctx, s.epochKey()).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, s.fail("epoch", err)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("session: redis epoch: key %s holds %q, not a number", s.epochKey(), v)
	}
	return n, nil
}

// RaiseEpoch implements the epoch ability of [Manager.RevokeAll] with one
// script on the key UserPrefix + "epoch".
func (s *RedisStore) RaiseEpoch(ctx context.Context, to int64) (int64, error) {
	v, err := raiseEpochScript.Run(ctx, s.client, []string{s.epochKey()}, strconv.FormatInt(to, 10)).Text()
	if err != nil {
		return 0, s.fail("raise epoch", err)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("session: redis raise epoch: %q is not a number", v)
	}
	return n, nil
}

// epochRowID is the id of the Postgres row that holds the epoch: a
// decimal number in data, expiring never (the year 9999), bound to no
// user. No token hashes to it (store ids are hex), Count leaves it out,
// and cleanup never deletes it.
const epochRowID = "sessionkit:epoch"

// epochRowExpires is the expiry of the epoch row.
var epochRowExpires = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// Epoch implements the epoch ability of [Manager.RevokeAll] with one
// SELECT of the row "sessionkit:epoch".
func (s *PostgresStore) Epoch(ctx context.Context) (int64, error) {
	var data []byte
	err := s.pool.QueryRow(ctx, s.qEpoch, epochRowID).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("session: postgres epoch: %w", err)
	}
	n, err := strconv.ParseInt(string(data), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("session: postgres epoch: row %q holds %q, not a number", epochRowID, data)
	}
	return n, nil
}

// RaiseEpoch implements the epoch ability of [Manager.RevokeAll] with one
// statement (an upsert guarded by the current value).
func (s *PostgresStore) RaiseEpoch(ctx context.Context, to int64) (int64, error) {
	q := s.qRaiseEpoch
	if part, err := s.partitioned(ctx); err != nil {
		return 0, fmt.Errorf("session: postgres raise epoch: %w", err)
	} else if part {
		q = s.qRaiseEpochPart
	}
	for attempt := 0; ; attempt++ {
		var n int64
		err := s.pool.QueryRow(ctx, q, epochRowID, []byte(strconv.FormatInt(to, 10)), to, epochRowExpires).Scan(&n)
		if errors.Is(err, pgx.ErrNoRows) && attempt < 3 {
			continue // the row's first insert raced this one: see qRaiseEpoch
		}
		if err != nil {
			return 0, fmt.Errorf("session: postgres raise epoch: %w", err)
		}
		return n, nil
	}
}

// The wrappers' epochs.

// Epoch is offered only when the wrapped store keeps an epoch.
func (s *instrumented) Epoch(ctx context.Context) (int64, error) {
	octx, done := s.start(ctx, "epoch")
	n, err := s.inner.(epocher).Epoch(octx)
	done(err)
	return n, err
}

// RaiseEpoch is offered only when the wrapped store keeps an epoch.
func (s *instrumented) RaiseEpoch(ctx context.Context, to int64) (int64, error) {
	octx, done := s.start(ctx, "raise_epoch")
	n, err := s.inner.(epocher).RaiseEpoch(octx, to)
	done(err)
	return n, err
}

// Epoch is offered only when the source keeps an epoch: the source's,
// the source of truth (the cache's copies carry their epochs in their
// data, like the source's records).
func (t *tiered) Epoch(ctx context.Context) (int64, error) {
	return t.source.(epocher).Epoch(ctx)
}

// RaiseEpoch is offered only when the source keeps an epoch, and raises
// it.
func (t *tiered) RaiseEpoch(ctx context.Context, to int64) (int64, error) {
	return t.source.(epocher).RaiseEpoch(ctx, to)
}

// Epoch is offered only when every store keeps an epoch. It is the
// highest epoch of the stores that answer (each within CallTimeout), and
// never lower than one this store read or raised before: a store that was
// down during a RevokeAll must not bring the sessions it ended back. It
// fails only when no store answers.
func (f *failover) Epoch(ctx context.Context) (int64, error) {
	return f.eachEpoch(ctx, func(ctx context.Context, e epocher) (int64, error) { return e.Epoch(ctx) })
}

// RaiseEpoch is offered only when every store keeps an epoch. It raises
// every store's; a store that does not answer is raised by the probe
// once it does, and before requests move back to it. It fails only when
// no store answers.
func (f *failover) RaiseEpoch(ctx context.Context, to int64) (int64, error) {
	v, err := f.eachEpoch(ctx, func(ctx context.Context, e epocher) (int64, error) { return e.RaiseEpoch(ctx, to) })
	if err == nil {
		f.raiseEpochSeen(to)
	}
	return v, err
}

// eachEpoch runs fn on every store at once, each within CallTimeout, and
// returns the highest epoch among those that answered and the epoch seen
// before. A store that did not answer owes the highest epoch, which the
// probe raises it to.
func (f *failover) eachEpoch(ctx context.Context, fn func(ctx context.Context, e epocher) (int64, error)) (int64, error) {
	vals := make([]int64, len(f.stores))
	errs := make([]error, len(f.stores))
	var wg sync.WaitGroup
	for i, s := range f.stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, f.opts.CallTimeout)
			defer cancel()
			vals[i], errs[i] = fn(cctx, s.(epocher))
		}()
	}
	wg.Wait()
	answered := false
	for i := range f.stores {
		if errs[i] == nil {
			answered = true
			f.raiseEpochSeen(vals[i])
		}
	}
	if !answered {
		return 0, fmt.Errorf("session: failover epoch: no store answered: %w", errors.Join(errs...))
	}
	top := f.epochSeen.Load()
	for i := range f.stores {
		if errs[i] != nil || vals[i] < top {
			f.epochBehind[i].Store(true)
		}
	}
	return top, nil
}

func (f *failover) raiseEpochSeen(v int64) {
	for {
		cur := f.epochSeen.Load()
		if v <= cur || f.epochSeen.CompareAndSwap(cur, v) {
			return
		}
	}
}

// catchUpEpoch raises store i's epoch to the highest seen, when it was
// found behind; it reports false when that failed.
func (f *failover) catchUpEpoch(ctx context.Context, i int) bool {
	if !f.epochBehind[i].Load() {
		return true
	}
	e, ok := f.stores[i].(epocher)
	if !ok {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, f.opts.CallTimeout)
	defer cancel()
	if _, err := e.RaiseEpoch(ctx, f.epochSeen.Load()); err != nil {
		return false
	}
	f.epochBehind[i].Store(false)
	return true
}
