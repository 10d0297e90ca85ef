package session_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/sessionkit/session"
)

// TestWriteKeepsExpiryWithinTouchInterval: a write less than
// TouchInterval after the record's expiry was last set stores the same
// expiry (so a Postgres row keeps its indexed columns and can be updated
// in place), and the cookie it sends expires with the record; a write
// after TouchInterval moves both.
func TestWriteKeepsExpiryWithinTouchInterval(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store session.Store) {
		a := newMemoAppOn(t, store, session.Options{IdleTimeout: 20 * time.Second, TouchInterval: 2 * time.Second})
		v := a.login(t, "alice")
		a.who(t, v)
		id := a.store.lastID()
		ctx := context.Background()
		rec0, err := store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		code, _, _ := a.get(t, "/login?u=bob", v) // a write of the same session
		if code != http.StatusOK {
			t.Fatalf("write: %d", code)
		}
		rec1, err := store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !rec1.Expires.Equal(rec0.Expires) {
			t.Fatalf("a write 50ms later moved the expiry from %v to %v (TouchInterval 2s)", rec0.Expires, rec1.Expires)
		}
		if got := a.who(t, v); got != "bob" {
			t.Fatalf("the write was not stored: user %q", got)
		}
		time.Sleep(2100 * time.Millisecond)
		if code, _, _ := a.get(t, "/login?u=carol", v); code != http.StatusOK {
			t.Fatalf("write: %d", code)
		}
		rec2, err := store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if moved := rec2.Expires.Sub(rec0.Expires); moved < 2*time.Second {
			t.Fatalf("a write 2.1s later moved the expiry by %v, want at least 2s", moved)
		}
	})
}
