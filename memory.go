package session

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// memoryShards is the number of independently locked parts of a
// MemoryStore. It is a power of two so that a shard is picked with a mask.
const memoryShards = 64

// MemoryOptions configures a [MemoryStore]. The zero value is ready to use.
type MemoryOptions struct {
	// CleanupInterval is how often a background goroutine removes expired
	// records. Expired records are never returned either way; cleanup only
	// frees their memory. The default (0) is one minute. A negative value
	// is invalid: NewMemoryStore panics.
	CleanupInterval time.Duration

	// DisableCleanup starts no background goroutine: expired records are
	// still never returned, and their memory is freed by DeleteExpired,
	// or by Set when the store is full. The default is false.
	DisableCleanup bool

	// MaxSessions caps the number of records. When the store is full, Set
	// of a new id first drops expired records and then, if still full,
	// returns ErrStoreFull; existing records are never evicted to make
	// room. The default (0) is no limit. A negative value is invalid:
	// NewMemoryStore panics.
	MaxSessions int
}

// check returns an error for an invalid (negative) option.
func (o MemoryOptions) check() error {
	return checkNonNegative("MemoryOptions", "CleanupInterval", o.CleanupInterval, "MaxSessions", o.MaxSessions)
}

// MemoryStore is a [Store] that keeps records in process memory. It suits
// development, tests and single-process deployments: records are lost when
// the process exits and are not shared between processes.
//
// It is safe for concurrent use; its locks are sharded by id so that
// unrelated sessions do not contend.
type MemoryStore struct {
	seed   maphash.Seed
	shards [memoryShards]memoryShard
	count  atomic.Int64
	max    int64

	// users indexes bound records by user: user id -> set of ids. Its
	// lock is always taken after a shard's, never before.
	umu   sync.Mutex
	users map[string]map[string]struct{}

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

type memoryShard struct {
	mu      sync.RWMutex
	records map[string]Record
}

// NewMemoryStore returns a MemoryStore configured by opts. Unless
// opts.DisableCleanup is set it starts a goroutine that stops on Close.
//
// It panics when an option is negative, as time.NewTicker does: that is a
// programming error, and NewMemoryStore has no error to return. Options
// that come from outside the program can be checked first by
// [Open], which returns the error instead.
func NewMemoryStore(opts MemoryOptions) *MemoryStore {
	if err := opts.check(); err != nil {
		panic(err.Error())
	}
	m := &MemoryStore{seed: maphash.MakeSeed(), max: int64(opts.MaxSessions), users: make(map[string]map[string]struct{})}
	for i := range m.shards {
		m.shards[i].records = make(map[string]Record)
	}
	interval := opts.CleanupInterval
	if interval == 0 {
		interval = time.Minute
	}
	if !opts.DisableCleanup {
		m.stop = make(chan struct{})
		m.done = make(chan struct{})
		go m.janitor(interval)
	}
	return m
}

func (m *MemoryStore) shard(id string) *memoryShard {
	return &m.shards[maphash.String(m.seed, id)&(memoryShards-1)]
}

// Get implements [Store].
func (m *MemoryStore) Get(ctx context.Context, id string) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	s := m.shard(id)
	s.mu.RLock()
	rec, ok := s.records[id]
	s.mu.RUnlock()
	if !ok || !rec.Expires.After(time.Now()) {
		return Record{}, ErrNotFound
	}
	rec.Data = clone(rec.Data)
	return rec, nil
}

// Set implements [Store].
func (m *MemoryStore) Set(ctx context.Context, id string, rec Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.write(id, rec, func(Record, bool) bool { return true })
}

// write stores rec under id if allow, shown the current record and
// whether it is live, agrees (else ErrConflict); a rec already expired
// removes the record instead. When the store is full it frees what has
// expired (which needs every shard's lock, this one's included) and tries
// once more. Set and CompareAndSet differ only in allow.
func (m *MemoryStore) write(id string, rec Record, allow func(cur Record, live bool) bool) error {
	rec.Data = clone(rec.Data)
	for attempt := 0; ; attempt++ {
		now := time.Now()
		s := m.shard(id)
		s.mu.Lock()
		cur, exists := s.records[id]
		if !allow(cur, exists && cur.Expires.After(now)) {
			s.mu.Unlock()
			return ErrConflict
		}
		if !rec.Expires.After(now) {
			if exists {
				delete(s.records, id)
				m.count.Add(-1)
				if cur.UserID != "" {
					m.reindex(id, cur.UserID, "")
				}
			}
			s.mu.Unlock()
			return nil
		}
		if !exists && !m.reserve() {
			s.mu.Unlock()
			if attempt > 0 {
				return ErrStoreFull
			}
			m.deleteExpired(now)
			continue
		}
		s.records[id] = rec
		if rec.UserID != "" || cur.UserID != "" {
			m.reindex(id, cur.UserID, rec.UserID)
		}
		s.mu.Unlock()
		return nil
	}
}

// reindex moves id from from's index entry to to's. Callers hold the
// shard's lock; unbound records never get here.
func (m *MemoryStore) reindex(id, from, to string) {
	if from == to {
		return
	}
	m.umu.Lock()
	if from != "" {
		if set := m.users[from]; set != nil {
			delete(set, id)
			if len(set) == 0 {
				delete(m.users, from)
			}
		}
	}
	if to != "" {
		set := m.users[to]
		if set == nil {
			set = make(map[string]struct{})
			m.users[to] = set
		}
		set[id] = struct{}{}
	}
	m.umu.Unlock()
}

// reserve counts one more record, or reports false when that would exceed
// MaxSessions. Reserving before inserting keeps concurrent Sets from
// overshooting the limit.
func (m *MemoryStore) reserve() bool {
	if m.count.Add(1) > m.max && m.max > 0 {
		m.count.Add(-1)
		return false
	}
	return true
}

// Destroy implements [Store].
func (m *MemoryStore) Destroy(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s := m.shard(id)
	s.mu.Lock()
	if rec, ok := s.records[id]; ok {
		delete(s.records, id)
		m.count.Add(-1)
		if rec.UserID != "" {
			m.reindex(id, rec.UserID, "")
		}
	}
	s.mu.Unlock()
	return nil
}

// Touch implements [Store].
func (m *MemoryStore) Touch(ctx context.Context, id string, expires time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s := m.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.records[id]
	if !ok || !rec.Expires.After(time.Now()) {
		return ErrNotFound
	}
	rec.Expires = expires
	s.records[id] = rec
	return nil
}

// Count implements [Counter].
func (m *MemoryStore) Count(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	now := time.Now()
	var n int64
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.RLock()
		for _, rec := range s.records {
			if rec.Expires.After(now) {
				n++
			}
		}
		s.mu.RUnlock()
	}
	return n, nil
}

// DeleteExpired implements [Cleaner].
func (m *MemoryStore) DeleteExpired(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return m.deleteExpired(time.Now()), nil
}

func (m *MemoryStore) deleteExpired(now time.Time) int64 {
	var n int64
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		for id, rec := range s.records {
			if !rec.Expires.After(now) {
				delete(s.records, id)
				if rec.UserID != "" {
					m.reindex(id, rec.UserID, "")
				}
				n++
			}
		}
		s.mu.Unlock()
	}
	m.count.Add(-n)
	return n
}

// ListUser implements [UserIndex]. The store keeps its own index, user to
// ids, updated under the record's lock by every write, Destroy and cleanup.
func (m *MemoryStore) ListUser(ctx context.Context, userID string) ([]UserRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ids := m.userIDs(userID)
	out := make([]UserRecord, 0, len(ids))
	now := time.Now()
	for _, id := range ids {
		s := m.shard(id)
		s.mu.RLock()
		rec, ok := s.records[id]
		s.mu.RUnlock()
		if ok && rec.UserID == userID && rec.Expires.After(now) {
			rec.Data = clone(rec.Data)
			out = append(out, UserRecord{ID: id, Record: rec})
		}
	}
	return out, nil
}

// DestroyUser implements [UserIndex]: one pass over the user's index
// entry, each record removed under its own lock.
func (m *MemoryStore) DestroyUser(ctx context.Context, userID, except string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var ids []string
	for _, id := range m.userIDs(userID) {
		if id == except {
			continue
		}
		s := m.shard(id)
		s.mu.Lock()
		if rec, ok := s.records[id]; ok && rec.UserID == userID {
			delete(s.records, id)
			m.count.Add(-1)
			m.reindex(id, userID, "")
			if rec.Expires.After(time.Now()) {
				ids = append(ids, id)
			}
		}
		s.mu.Unlock()
	}
	return ids, nil
}

func (m *MemoryStore) userIDs(userID string) []string {
	m.umu.Lock()
	defer m.umu.Unlock()
	set := m.users[userID]
	ids := make([]string, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	return ids
}

// Ping implements [Pinger]; a MemoryStore is always reachable.
func (m *MemoryStore) Ping(ctx context.Context) error { return ctx.Err() }

// Close stops the cleanup goroutine and waits for it to return. Records
// stay readable after Close. Calling Close again is a no-op.
func (m *MemoryStore) Close() error {
	m.closeOnce.Do(func() {
		if m.stop != nil {
			close(m.stop)
			<-m.done
		}
	})
	return nil
}

func (m *MemoryStore) janitor(interval time.Duration) {
	defer close(m.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			m.deleteExpired(now)
		}
	}
}

// clone copies b; a nil b gives an empty, non-nil slice, so that a record
// written with nil Data reads back as empty Data (see [Record.Data]).
func clone(b []byte) []byte {
	c := make([]byte, len(b))
	copy(c, b)
	return c
}

// String returns "memory": how health reports and logs name the store.
func (m *MemoryStore) String() string { return "memory" }
