package session_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessionkit/session"
)

// UserIndex through the composite stores: a revoked session never comes
// back from the cache (Tiered) or from the other store (Failover).

func boundRec(data, user string, ttl time.Duration) session.Record {
	return session.Record{Data: []byte(data), Expires: time.Now().Add(ttl), UserID: user}
}

// TestTieredRevokeWhileCacheDown: a user's sessions are cached in Redis;
// Redis is killed; the user is revoked through the Tiered store (Postgres
// answers); Redis restarts with the old copies still in it. None of the
// revoked sessions is served, the spared one and another user's are, and
// the copies read once are buried for every process.
func TestTieredRevokeWhileCacheDown(t *testing.T) {
	srv := startDurableRedis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { client.Close() })
	cache, err := session.NewRedisStore(client, session.RedisOptions{Prefix: "revoke:"})
	if err != nil {
		t.Fatal(err)
	}
	source := newPostgresStore(t, session.PostgresOptions{DisableCleanup: true})
	opts := session.TieredOptions{CacheTimeout: 500 * time.Millisecond, RetryInterval: 100 * time.Millisecond}
	ts := newTiered(t, cache, source, opts)
	c := tctx(t)

	var revoked []string
	for i := 0; i < 20; i++ {
		revoked = append(revoked, fmt.Sprintf("u-%d", i))
	}
	spared := []string{"u-current", "other-1"}
	for _, id := range revoked {
		mustDo(t, ts.Set(c, id, boundRec("data of "+id, "u", time.Hour)))
	}
	mustDo(t, ts.Set(c, "u-current", boundRec("current", "u", time.Hour)))
	mustDo(t, ts.Set(c, "other-1", boundRec("other", "v", time.Hour)))
	for _, id := range append(revoked, spared...) {
		if _, err := cache.Get(c, id); err != nil {
			t.Fatalf("setup: %s not cached: %v", id, err)
		}
	}

	srv.stop()
	ids, err := ts.DestroyUser(c, "u", "u-current")
	if err != nil || len(ids) != len(revoked) {
		t.Fatalf("DestroyUser with Redis down = %q, %v; want %q, nil", ids, err, revoked)
	}
	if session.CacheUp(ts) {
		t.Fatal("CacheUp with Redis killed")
	}

	srv.start()
	// The restarted Redis still holds the revoked sessions' copies: what
	// follows is not vacuous.
	for _, id := range revoked {
		if got, err := cache.Get(c, id); err != nil || string(got.Data) != "data of "+id {
			t.Fatalf("restarted Redis lost %s (%q, %v): persistence did not keep it", id, got.Data, err)
		}
	}
	time.Sleep(2 * opts.RetryInterval)

	for round := 0; round < 2; round++ {
		for _, id := range revoked {
			if got, err := ts.Get(c, id); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("round %d: revoked %s served after Redis came back: %q, %v", round, id, got.Data, err)
			}
		}
		for _, id := range spared {
			if _, err := ts.Get(c, id); err != nil {
				t.Fatalf("round %d: spared %s: %v", round, id, err)
			}
		}
	}
	if !session.CacheUp(ts) {
		t.Fatal("cache not back in use")
	}
	if recs, err := ts.ListUser(c, "u"); err != nil || len(recs) != 1 || recs[0].ID != "u-current" {
		t.Fatalf("ListUser(u) = %+v, %v; want only u-current", recs, err)
	}
	// The stale copies were buried on the way: another process (which
	// never saw the outage) does not serve them either.
	other := newTiered(t, cache, source, opts)
	for _, id := range revoked {
		if got, err := other.Get(c, id); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("another process serves revoked %s: %q, %v", id, got.Data, err)
		}
	}
}

// TestTieredDestroyUserBuries: with the cache up, DestroyUser leaves a
// tombstone for every revoked id, so a slow reader's refill loses.
func TestTieredDestroyUserBuries(t *testing.T) {
	cache, source := newFlaky(t), newFlaky(t)
	ts := newTiered(t, cache, source, session.TieredOptions{})
	c := tctx(t)
	for _, id := range []string{"a", "b", "keep"} {
		mustDo(t, ts.Set(c, id, boundRec("v", "u", time.Hour)))
	}
	if ids, err := ts.DestroyUser(c, "u", "keep"); err != nil || len(ids) != 2 {
		t.Fatalf("DestroyUser = %q, %v; want 2 ids", ids, err)
	}
	for _, id := range []string{"a", "b"} {
		if err := cache.CompareAndSet(c, id, nil, boundRec("v", "u", time.Hour)); !errors.Is(err, session.ErrConflict) {
			t.Fatalf("refill of revoked %s = %v, want ErrConflict (tombstone)", id, err)
		}
		if _, err := ts.Get(c, id); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("Get(%s) after DestroyUser = %v", id, err)
		}
	}
	if got, err := ts.Get(c, "keep"); err != nil || string(got.Data) != "v" {
		t.Fatalf("Get(keep) = %q, %v", got.Data, err)
	}
}

// TestFailoverRevokeDuringOutage: a user revoked while the secondary
// serves stays revoked when requests move back: the sessions the primary
// held from before the outage are ended there before it serves again, a
// session created and revoked during the outage is deleted from it, and
// the spared session and another user's survive.
func TestFailoverRevokeDuringOutage(t *testing.T) {
	primary, secondary := newFlaky(t), newFlaky(t)
	f := newFailover(t, []session.Store{primary, secondary}, session.FailoverOptions{
		FailureThreshold: 1, ProbeInterval: 20 * time.Millisecond, RecoverAfter: 2,
	})
	c := tctx(t)
	for _, id := range []string{"p1", "p2"} {
		mustDo(t, f.Set(c, id, boundRec("p", "u", time.Hour)))
	}
	mustDo(t, f.Set(c, "other", boundRec("p", "v", time.Hour)))

	primary.set(modeDown)
	eventually(t, 3*time.Second, "requests on the secondary", func() bool {
		f.Get(c, "p1")
		return session.ActiveIndex(f) == 1
	})
	mustDo(t, f.Set(c, "s1", boundRec("s", "u", time.Hour)))
	mustDo(t, f.Set(c, "cur", boundRec("s", "u", time.Hour)))
	if ids, err := f.DestroyUser(c, "u", "cur"); err != nil || len(ids) != 1 {
		t.Fatalf("DestroyUser on the secondary = %q, %v; want 1 (s1)", ids, err)
	}

	primary.set(modeUp)
	eventually(t, 5*time.Second, "back on the primary, reconciled", func() bool { return session.ActiveIndex(f) == 0 && session.Reconciling(f) == 0 })
	for _, id := range []string{"p1", "p2", "s1"} {
		if got, err := f.Get(c, id); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("revoked %s came back: %q, %v", id, got.Data, err)
		}
	}
	for _, id := range []string{"cur", "other"} {
		if _, err := f.Get(c, id); err != nil {
			t.Errorf("spared %s: %v", id, err)
		}
	}
	recs, err := f.ListUser(c, "u")
	if err != nil || len(recs) != 1 || recs[0].ID != "cur" {
		t.Fatalf("ListUser(u) = %+v, %v; want only cur", recs, err)
	}
}

// TestFailoverRevokeWhileReconciling: a revocation on the primary while
// ids written during the outage still wait to be carried back also ends
// them in the store they come from, so the carry cannot revive them.
func TestFailoverRevokeWhileReconciling(t *testing.T) {
	primary := newFlaky(t)
	secondary := &holdGets{flakyStore: newFlaky(t)}
	f := newFailover(t, []session.Store{primary, secondary}, session.FailoverOptions{
		FailureThreshold: 1, ProbeInterval: 20 * time.Millisecond, RecoverAfter: 2, Active: 1,
		CallTimeout: 100 * time.Millisecond,
	})
	c := tctx(t)
	primary.set(modeDown)
	eventually(t, 2*time.Second, "probe ran", func() bool { return primary.calls.Load() > 0 })
	mustDo(t, f.Set(c, "s1", boundRec("s", "u", time.Hour)))
	mustDo(t, f.Set(c, "s2", boundRec("s", "u", time.Hour)))
	// Requests move back, but the carries cannot read the secondary yet:
	// s1 and s2 wait to be reconciled.
	secondary.hold.Store(true)
	primary.set(modeUp)
	eventually(t, 5*time.Second, "back on the primary", func() bool { return session.ActiveIndex(f) == 0 })
	if n := session.Reconciling(f); n != 2 {
		t.Fatalf("Reconciling = %d, want 2 (carries held)", n)
	}
	if _, err := f.DestroyUser(c, "u", ""); err != nil {
		t.Fatalf("DestroyUser while reconciling: %v", err)
	}
	secondary.hold.Store(false)
	eventually(t, 5*time.Second, "reconciled", func() bool { return session.Reconciling(f) == 0 })
	for _, id := range []string{"s1", "s2"} {
		if got, err := primary.MemoryStore.Get(c, id); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("revoked %s carried back into the primary: %q, %v", id, got.Data, err)
		}
		if got, err := f.Get(c, id); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("revoked %s served: %q, %v", id, got.Data, err)
		}
	}
}

// holdGets is a flakyStore whose Gets block until their context ends
// while hold is set; everything else answers.
type holdGets struct {
	*flakyStore
	hold atomic.Bool
}

func (h *holdGets) Get(ctx context.Context, id string) (session.Record, error) {
	if h.hold.Load() {
		<-ctx.Done()
		return session.Record{}, ctx.Err()
	}
	return h.flakyStore.Get(ctx, id)
}
