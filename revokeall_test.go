package session_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/session"
)

// TestRevokeAll: on every backend, directly and through each mode of
// Open, RevokeAll on one process ends every session (bound or not) at
// once there and within twice EpochInterval on another process sharing
// the store; the records presented afterwards are destroyed; sessions
// created afterwards live on both processes; the caller's own cookie is
// expired.
func TestRevokeAll(t *testing.T) {
	for _, c := range epochStores() {
		t.Run(c.name, func(t *testing.T) {
			store := c.new(t, false)
			if _, ok := store.(session.Epocher); !ok {
				t.Fatalf("%T keeps no epoch", store)
			}
			testRevokeAll(t, store)
		})
	}
}

func testRevokeAll(t *testing.T, store session.Store) {
	const interval = 150 * time.Millisecond
	a := newSecApp(t, store, session.Options{EpochInterval: interval})
	b := newSecApp(t, store, session.Options{EpochInterval: interval})
	user := randomName("u")
	bound := a.login(user)
	anon := b.put("", "k", "v")
	onlyB := a.put("", "k", "b") // presented to B only after RevokeAll
	admin := a.login(randomName("admin"))
	if b.whoami(bound) != user || a.get(anon, "k") != "v" || b.get(onlyB, "k") != "b" {
		t.Fatal("sessions not shared between the two processes")
	}
	boundID := a.storeID(bound)

	code, body, adminAfter := a.serve("POST", "/revoke-all", admin)
	if code != 200 {
		t.Fatalf("RevokeAll: %d %q", code, body)
	}
	if adminAfter != "" {
		t.Error("the caller's own cookie was not expired")
	}
	// At once on the process that called it.
	if a.whoami(bound) != "" || a.get(anon, "k") != "" {
		t.Fatal("process A still accepts a session RevokeAll ended")
	}
	if _, err := store.Get(bg(), boundID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("the ended record presented to A is still stored: %v", err)
	}
	// Within twice the interval on the other.
	took := within(t, "process B refuses the ended session", 2*interval+time.Second, func() bool { return b.get(onlyB, "k") == "" })
	t.Logf("process B refused the ended session %v after RevokeAll", took)
	if b.whoami(admin) != "" {
		t.Fatal("process B accepts the admin's ended session")
	}
	// New sessions live everywhere.
	fresh := b.login(user)
	n := a.put("", "k", "new")
	for _, p := range []*secApp{a, b} {
		if p.whoami(fresh) != user || p.get(n, "k") != "new" {
			t.Fatal("a session created after RevokeAll is not accepted")
		}
	}
	list, err := a.m.UserSessions(bg(), user)
	if err != nil || len(list) != 1 {
		t.Fatalf("UserSessions after RevokeAll: %d sessions, %v; want only the new one", len(list), err)
	}
	// A second RevokeAll ends those too.
	if err := b.m.RevokeAll(bg()); err != nil {
		t.Fatal(err)
	}
	if b.whoami(fresh) != "" || b.get(n, "k") != "" {
		t.Fatal("a second RevokeAll did not end the sessions made after the first")
	}
}

// TestRevokeAllEpochStores: the epoch of each built-in store starts at 0,
// only goes up, is raised atomically under concurrent callers, and is not
// counted as a session.
func TestRevokeAllEpochStores(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			s := b.new(t)
			e := s.(session.Epocher)
			ctx := tctx(t)
			if v, err := e.Epoch(ctx); err != nil || v != 0 {
				t.Fatalf("new store: Epoch = %d, %v", v, err)
			}
			if v, err := e.RaiseEpoch(ctx, 3); err != nil || v != 3 {
				t.Fatalf("RaiseEpoch(3) = %d, %v", v, err)
			}
			if v, err := e.RaiseEpoch(ctx, 2); err != nil || v != 3 {
				t.Fatalf("RaiseEpoch(2) after 3 = %d, %v; the epoch never goes down", v, err)
			}
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if v, err := e.RaiseEpoch(ctx, int64(4+i)); err != nil || v < int64(4+i) {
						t.Errorf("RaiseEpoch(%d) = %d, %v", 4+i, v, err)
					}
				}()
			}
			wg.Wait()
			if v, err := e.Epoch(ctx); err != nil || v != 23 {
				t.Fatalf("after concurrent raises: Epoch = %d, %v; want 23", v, err)
			}
			if n, err := s.(session.Counter).Count(ctx); err != nil || n != 0 {
				t.Fatalf("Count with only the epoch stored = %d, %v; want 0", n, err)
			}
		})
	}
}

// TestRevokeAllUnsupported: without an epoch in the store RevokeAll says
// so instead of pretending (with a codec that drops the epoch, the
// express-session mode, too: express.TestRevokeAllUnsupported).
func TestRevokeAllUnsupported(t *testing.T) {
	m, err := session.New(plainStore(t), session.Options{Keys: []session.KeyPair{testKey}, AllowLastWriterWins: true, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.RevokeAll(bg()); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("four-method store: RevokeAll = %v, want ErrUnsupported", err)
	}
	if _, err := session.New(memStore(t), session.Options{EpochInterval: -1}); err == nil || !strings.Contains(err.Error(), "EpochInterval") {
		t.Errorf("negative EpochInterval: New = %v", err)
	}
}

// epochCounter counts the reads of a store's epoch and its session reads.
type epochCounter struct {
	*session.MemoryStore
	gets, epochs atomic.Int64
}

func (c *epochCounter) Get(ctx context.Context, id string) (session.Record, error) {
	c.gets.Add(1)
	return c.MemoryStore.Get(ctx, id)
}

func (c *epochCounter) Epoch(ctx context.Context) (int64, error) {
	c.epochs.Add(1)
	return c.MemoryStore.Epoch(ctx)
}

// TestRevokeAllRequestCost: the epoch costs a request nothing: read-only
// requests make exactly one store read each, and the epoch is read once
// per EpochInterval at most, while requests come.
func TestRevokeAllRequestCost(t *testing.T) {
	c := &epochCounter{MemoryStore: memStore(t)}
	a := newSecApp(t, c, session.Options{EpochInterval: time.Hour})
	cookie := a.put("", "k", "v")
	c.gets.Store(0)
	for range 50 {
		if a.get(cookie, "k") != "v" {
			t.Fatal("lost the value")
		}
	}
	if g, e := c.gets.Load(), c.epochs.Load(); g != 50 || e != 1 {
		t.Fatalf("50 read-only requests in one interval: %d reads, %d epoch reads; want 50, 1", g, e)
	}

	c2 := &epochCounter{MemoryStore: memStore(t)}
	const interval = 50 * time.Millisecond
	b := newSecApp(t, c2, session.Options{EpochInterval: interval})
	cookie = b.put("", "k", "v")
	c2.gets.Store(0)
	start := time.Now()
	n := 0
	for time.Since(start) < 10*interval {
		if b.get(cookie, "k") != "v" {
			t.Fatal("lost the value")
		}
		n++
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.m.Close() // waits for a background read under way
	if g := c2.gets.Load(); g != int64(n) {
		t.Fatalf("%d read-only requests made %d reads", n, g)
	}
	if e, most := c2.epochs.Load(), int64(elapsed/interval)+2; e > most {
		t.Fatalf("%d epoch reads in %v with EpochInterval %v; want at most %d", e, elapsed, interval, most)
	}
}

// flakyEpochStore is a memory store whose epoch (and ping) can be made to
// fail, for the failover tests.
type flakyEpochStore struct {
	*session.MemoryStore
	down atomic.Bool
}

var errDown = errors.New("store down")

func (f *flakyEpochStore) Epoch(ctx context.Context) (int64, error) {
	if f.down.Load() {
		return 0, errDown
	}
	return f.MemoryStore.Epoch(ctx)
}

func (f *flakyEpochStore) RaiseEpoch(ctx context.Context, to int64) (int64, error) {
	if f.down.Load() {
		return 0, errDown
	}
	return f.MemoryStore.RaiseEpoch(ctx, to)
}

func (f *flakyEpochStore) Ping(ctx context.Context) error {
	if f.down.Load() {
		return errDown
	}
	return nil
}

// TestRevokeAllFailover: a failover store's epoch is the highest of its
// stores'; one that was down during a RevokeAll is raised by the probe
// once it answers, so the sessions it holds from before stay ended
// whichever store serves.
func TestRevokeAllFailover(t *testing.T) {
	p := &flakyEpochStore{MemoryStore: memStore(t)}
	s := &flakyEpochStore{MemoryStore: memStore(t)}
	f, err := session.NewFailover([]session.Store{p, s}, session.FailoverOptions{ProbeInterval: 20 * time.Millisecond, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.(io.Closer).Close() })
	e := f.(session.Epocher)
	p.down.Store(true)
	if v, err := e.RaiseEpoch(tctx(t), 5); err != nil || v != 5 {
		t.Fatalf("RaiseEpoch with the primary down = %d, %v", v, err)
	}
	if v, _ := s.MemoryStore.Epoch(bg()); v != 5 {
		t.Fatalf("secondary's epoch %d", v)
	}
	p.down.Store(false)
	within(t, "the probe raises the primary's epoch", 5*time.Second, func() bool {
		v, _ := p.MemoryStore.Epoch(bg())
		return v == 5
	})
	// A new process on the same stores reads the highest.
	s.down.Store(true)
	f2, err := session.NewFailover([]session.Store{p, s}, session.FailoverOptions{ProbeInterval: time.Hour, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f2.(io.Closer).Close() })
	if v, err := f2.(session.Epocher).Epoch(tctx(t)); err != nil || v != 5 {
		t.Fatalf("Epoch of a new failover store = %d, %v", v, err)
	}
	p.down.Store(true)
	if _, err := f2.(session.Epocher).Epoch(tctx(t)); err == nil {
		t.Fatal("Epoch with no store answering did not fail")
	}
}
