package session_test

import (
	"errors"
	"testing"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/sessiontest"
)

func newTiered(t testing.TB, cache, source session.Store, opts session.TieredOptions) fullStore {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger, _ = newLogger()
	}
	ts, err := session.NewTiered(cache, source, opts)
	if err != nil {
		t.Fatal(err)
	}
	return full(t, ts)
}

// TestTieredConformance runs the conformance suite on two memory stores.
// Redis in front of Postgres, as Open builds it in tiered mode, is
// TestComposedConformance/tiered/redis+postgres.
func TestTieredConformance(t *testing.T) {
	t.Run("memory+memory", func(t *testing.T) {
		sessiontest.Run(t, func(t *testing.T) session.Store {
			return newTiered(t, newFlaky(t), newFlaky(t), session.TieredOptions{})
		})
	})
}

func TestNewTieredValidates(t *testing.T) {
	m := newFlaky(t)
	if _, err := session.NewTiered(nil, m, session.TieredOptions{}); err == nil {
		t.Error("nil cache accepted")
	}
	if _, err := session.NewTiered(m, m, session.TieredOptions{CacheTimeout: -1}); err == nil {
		t.Error("negative CacheTimeout accepted")
	}
}

// TestTieredHungCache: a cache that never answers costs a call at most
// CacheTimeout, and after that nothing until RetryInterval has passed.
func TestTieredHungCache(t *testing.T) {
	cache, source := newFlaky(t), newFlaky(t)
	ts := newTiered(t, cache, source, session.TieredOptions{CacheTimeout: 50 * time.Millisecond, RetryInterval: 300 * time.Millisecond})
	c := tctx(t)
	if err := ts.Set(c, "a", rec("v1", time.Hour)); err != nil {
		t.Fatal(err)
	}
	cache.set(modeHung)
	start := time.Now()
	got, err := ts.Get(c, "a")
	if err != nil || string(got.Data) != "v1" {
		t.Fatalf("Get with a hung cache = %q, %v", got.Data, err)
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Fatalf("Get with a hung cache took %v; CacheTimeout is 50ms", d)
	}
	// The cache is now skipped: these cost nothing.
	start = time.Now()
	for i := 0; i < 20; i++ {
		if err := ts.Set(c, "a", rec("v2", time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := ts.Get(c, "a"); err != nil {
			t.Fatal(err)
		}
		if err := ts.Touch(c, "a", time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("60 calls while the cache is skipped took %v", d)
	}
	if session.CacheUp(ts) {
		t.Fatal("CacheUp with a hung cache")
	}
	if st := ts.Stats(); st.Fallbacks < 21 || st.Loads != 21 || st.Errors != 0 {
		t.Fatalf("Stats = %+v; want 21 loads all served by the source, no errors", st)
	}
	// The cache answers again: it is used after RetryInterval, and the
	// copy written before it hung (v1) is never served.
	cache.set(modeUp)
	time.Sleep(350 * time.Millisecond)
	for i := 0; i < 3; i++ {
		got, err := ts.Get(c, "a")
		if err != nil || string(got.Data) != "v2" {
			t.Fatalf("Get after the cache came back = %q, %v; want v2", got.Data, err)
		}
	}
	if !session.CacheUp(ts) {
		t.Fatal("cache not back in use")
	}
	if h := ts.Stats().CacheHits; h < 1 {
		t.Fatalf("cache hits = %d after it came back", h)
	}
}

// TestTieredNoStaleAfterOutage: records saved, destroyed and touched
// while the cache was down are read correctly when it is back, although
// the cache still holds their old copies.
func TestTieredNoStaleAfterOutage(t *testing.T) {
	cache, source := newFlaky(t), newFlaky(t)
	ts := newTiered(t, cache, source, session.TieredOptions{RetryInterval: 50 * time.Millisecond})
	c := tctx(t)
	for _, id := range []string{"changed", "destroyed", "same"} {
		if err := ts.Set(c, id, rec("old", time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	cache.set(modeDown)
	if err := ts.Set(c, "changed", rec("new", time.Hour)); err != nil {
		t.Fatalf("Set with the cache down: %v", err)
	}
	if err := ts.Destroy(c, "destroyed"); err != nil {
		t.Fatalf("Destroy with the cache down: %v", err)
	}
	cache.set(modeUp)
	time.Sleep(60 * time.Millisecond)
	if got, err := ts.Get(c, "changed"); err != nil || string(got.Data) != "new" {
		t.Fatalf("Get(changed) = %q, %v; want new (the cache holds old)", got.Data, err)
	}
	if got, err := ts.Get(c, "destroyed"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get(destroyed) = %q, %v; want ErrNotFound: a logout during the outage was undone", got.Data, err)
	}
	if got, err := ts.Get(c, "same"); err != nil || string(got.Data) != "old" {
		t.Fatalf("Get(same) = %q, %v", got.Data, err)
	}
	// The cache was rewritten: it now holds new.
	if got, err := cache.Get(c, "changed"); err != nil || string(got.Data) != "new" {
		t.Fatalf("cache copy = %q, %v; want new", got.Data, err)
	}
}

// TestTieredDestroyLeavesTombstone: after Destroy, a read that had
// fetched the record before cannot copy it back into the cache.
func TestTieredDestroyLeavesTombstone(t *testing.T) {
	cache, source := newFlaky(t), newFlaky(t)
	ts := newTiered(t, cache, source, session.TieredOptions{})
	c := tctx(t)
	ts.Set(c, "x", rec("v", time.Hour))
	ts.Destroy(c, "x")
	// A slow reader's refill is a create-if-absent: it loses.
	if err := cache.CompareAndSet(c, "x", nil, rec("v", time.Hour)); !errors.Is(err, session.ErrConflict) {
		t.Fatalf("refill after Destroy = %v, want ErrConflict (tombstone)", err)
	}
	if _, err := ts.Get(c, "x"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get after Destroy = %v", err)
	}
}

// TestTieredCASEvictsStaleCopy: CompareAndSet runs on the source; a
// caller that read a stale cached copy gets ErrConflict, the copy is
// evicted, and the retry reads the source.
func TestTieredCASEvictsStaleCopy(t *testing.T) {
	cache, source := newFlaky(t), newFlaky(t)
	ts := newTiered(t, cache, source, session.TieredOptions{})
	c := tctx(t)
	ts.Set(c, "k", rec("v1", time.Hour))
	source.Set(c, "k", rec("v2", time.Hour)) // written behind the cache's back
	got, _ := ts.Get(c, "k")
	if string(got.Data) != "v1" {
		t.Fatalf("setup: cache should serve v1, got %q", got.Data)
	}
	if err := ts.CompareAndSet(c, "k", got.Data, rec("v3", time.Hour)); !errors.Is(err, session.ErrConflict) {
		t.Fatalf("CAS from a stale copy = %v, want ErrConflict", err)
	}
	got, _ = ts.Get(c, "k")
	if string(got.Data) != "v2" {
		t.Fatalf("Get after the conflict = %q, want v2 from the source", got.Data)
	}
	if err := ts.CompareAndSet(c, "k", got.Data, rec("v3", time.Hour)); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]session.Store{"tiered": ts, "cache": cache, "source": source} {
		if got, err := s.Get(c, "k"); err != nil || string(got.Data) != "v3" {
			t.Fatalf("%s: Get = %q, %v; want v3", name, got.Data, err)
		}
	}
}

// TestTieredSourceDown: with the source down, writes fail (it is the
// source of truth) and cached reads still succeed.
func TestTieredSourceDown(t *testing.T) {
	cache, source := newFlaky(t), newFlaky(t)
	ts := newTiered(t, cache, source, session.TieredOptions{})
	c := tctx(t)
	ts.Set(c, "a", rec("v", time.Hour))
	source.set(modeDown)
	if err := ts.Set(c, "a", rec("w", time.Hour)); err == nil {
		t.Fatal("Set with the source down succeeded")
	}
	if got, err := ts.Get(c, "a"); err != nil || string(got.Data) != "v" {
		t.Fatalf("cached Get with the source down = %q, %v", got.Data, err)
	}
	if err := ts.Ping(c); err == nil {
		t.Fatal("Ping with the source down = nil")
	}
	if st := ts.Stats(); st.Errors != 1 {
		t.Fatalf("Errors = %d, want 1", st.Errors)
	}
}
