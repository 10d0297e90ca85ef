package session_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/sessiontest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestConformance runs the conformance suite against every built-in
// backend, each as a subtest named after it. Each has every optional
// ability, so the suite skips none.
func TestConformance(t *testing.T) {
	noneSkipped := func(t *testing.T, skipped []sessiontest.Skipped) {
		t.Helper()
		if len(skipped) != 0 {
			t.Errorf("a built-in backend lacks optional abilities: %v", skipped)
		}
	}
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			b.new(t) // skip early, once, when the server is unreachable
			noneSkipped(t, sessiontest.Run(t, func(t *testing.T) session.Store { return b.new(t) }))
		})
	}
	t.Run("memory-capped", func(t *testing.T) {
		noneSkipped(t, sessiontest.Run(t, func(t *testing.T) session.Store {
			return session.NewMemoryStore(session.MemoryOptions{MaxSessions: 10000, CleanupInterval: 10 * 1e6})
		}))
	})
}

// TestRedisLayout: a record is one readable string, its expiry header
// then the data; a value that is not ours is not a session.
func TestRedisLayout(t *testing.T) {
	s := newRedisStore(t)
	c := s.Client()
	ctx := t.Context()
	exp := time.UnixMilli(time.Now().Add(time.Hour).UnixMilli())
	if err := s.Set(ctx, "id1", session.Record{Data: []byte(`{"a":1}`), Expires: exp}); err != nil {
		t.Fatal(err)
	}
	keys, _ := c.Keys(ctx, "*").Result() // test code on a test prefix only
	var key string
	for _, k := range keys {
		if strings.HasSuffix(k, ":id1") && strings.HasPrefix(k, "sessiontest:") {
			if rec, err := c.Get(ctx, k).Result(); err == nil && strings.HasSuffix(rec, `|{"a":1}`) {
				key = k
			}
		}
	}
	if key == "" {
		t.Fatal("record not found as a plain string ending in its data")
	}
	raw, _ := c.Get(ctx, key).Result()
	if raw != fmt.Sprintf("%013d|{\"a\":1}", exp.UnixMilli()) {
		t.Fatalf("stored value %q", raw)
	}
	if pexp, _ := c.PExpireTime(ctx, key).Result(); pexp != time.Duration(exp.UnixMilli())*time.Millisecond {
		t.Fatalf("key expiry %v, want %v", pexp, exp.UnixMilli())
	}
	later := exp.Add(time.Hour)
	if err := s.Touch(ctx, "id1", later); err != nil {
		t.Fatal(err)
	}
	raw, _ = c.Get(ctx, key).Result()
	if raw != fmt.Sprintf("%013d|{\"a\":1}", later.UnixMilli()) {
		t.Fatalf("after Touch: %q", raw)
	}
	// Hand-edited values are not sessions, and Touch does not adopt them.
	for _, bad := range []string{"", "not ours", "12345678901x|data", "abcdefghijklm|data"} {
		c.Set(ctx, key, bad, time.Hour)
		if _, err := s.Get(ctx, "id1"); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("Get of %q = %v, want ErrNotFound", bad, err)
		}
		if err := s.Touch(ctx, "id1", later); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("Touch of %q = %v, want ErrNotFound", bad, err)
		}
		if got, _ := c.Get(ctx, key).Result(); got != bad {
			t.Fatalf("Touch changed a foreign value %q to %q", bad, got)
		}
	}
}
