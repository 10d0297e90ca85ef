package session_test

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/health"
	"github.com/sessionkit/session/sessiontest"
)

func newFailover(t testing.TB, stores []session.Store, opts session.FailoverOptions) fullStore {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger, _ = newLogger()
	}
	f, err := session.NewFailover(stores, opts)
	if err != nil {
		t.Fatal(err)
	}
	fs := full(t, f)
	t.Cleanup(func() { fs.Close() })
	return fs
}

// TestFailoverConformance runs the suite on a Failover over two memory
// stores; CloseStopsGoroutines checks that Close stops the probe.
func TestFailoverConformance(t *testing.T) {
	sessiontest.Run(t, func(t *testing.T) session.Store {
		return newFailover(t, []session.Store{newFlaky(t), newFlaky(t)}, session.FailoverOptions{ProbeInterval: 10 * time.Millisecond})
	})
}

func TestNewFailoverValidates(t *testing.T) {
	for name, tc := range map[string]struct {
		stores []session.Store
		opts   session.FailoverOptions
	}{
		"no stores":       {nil, session.FailoverOptions{}},
		"nil store":       {[]session.Store{nil}, session.FailoverOptions{}},
		"negative":        {[]session.Store{newFlaky(t)}, session.FailoverOptions{CallTimeout: -1}},
		"active too high": {[]session.Store{newFlaky(t)}, session.FailoverOptions{Active: 1}},
	} {
		if f, err := session.NewFailover(tc.stores, tc.opts); err == nil {
			f.(io.Closer).Close()
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestFailoverAwayAndBack walks both directions and checks what a user
// keeps and loses in each.
func TestFailoverAwayAndBack(t *testing.T) {
	primary, secondary := newFlaky(t), newFlaky(t)
	logger, logs := newLogger()
	f := newFailover(t, []session.Store{primary, secondary}, session.FailoverOptions{
		FailureThreshold: 2, ProbeInterval: 20 * time.Millisecond, RecoverAfter: 2,
		CallTimeout: 200 * time.Millisecond, Logger: logger,
	})
	c := tctx(t)
	for _, id := range []string{"before", "logout", "changed"} {
		if err := f.Set(c, id, rec("p", time.Hour)); err != nil {
			t.Fatal(err)
		}
	}

	// Away: the first failure is returned, the second moves requests
	// and is retried on the secondary. "before" lives only in the
	// primary, so it is not found there: the user gets a fresh session.
	primary.set(modeDown)
	if _, err := f.Get(c, "before"); !errors.Is(err, errBackendDown) {
		t.Fatalf("first failing Get = %v, want the backend error", err)
	}
	if _, err := f.Get(c, "before"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get after the move = %v, want ErrNotFound from the secondary", err)
	}
	if session.ActiveIndex(f) != 1 || !strings.HasSuffix(session.ActiveBackend(f), "#2") {
		t.Fatalf("active = %d (%s), want 1", session.ActiveIndex(f), session.ActiveBackend(f))
	}
	// Written during the outage.
	mustDo(t, f.Set(c, "during", rec("s", time.Hour)))
	mustDo(t, f.Set(c, "changed", rec("s", time.Hour)))
	mustDo(t, f.Destroy(c, "logout"))
	if st := f.Stats(); st.Errors != 1 || st.Fallbacks < 4 {
		t.Fatalf("Stats = %+v; want 1 error and the calls on the secondary counted as fallbacks", st)
	}

	// Back: the probe sees the primary answer twice, moves requests back
	// and carries over what was written meanwhile.
	primary.set(modeUp)
	eventually(t, 3*time.Second, "requests back on the primary, reconciled", func() bool { return session.ActiveIndex(f) == 0 && session.Reconciling(f) == 0 })
	want := map[string]string{"before": "p", "during": "s", "changed": "s", "logout": ""}
	for id, data := range want {
		got, err := f.Get(c, id)
		if data == "" {
			if !errors.Is(err, session.ErrNotFound) {
				t.Errorf("Get(%s) = %q, %v; want ErrNotFound: a logout during the outage came back", id, got.Data, err)
			}
			continue
		}
		if err != nil || string(got.Data) != data {
			t.Errorf("Get(%s) = %q, %v; want %q", id, got.Data, err, data)
		}
		// And the primary itself holds it.
		if got, err := primary.Get(c, id); err != nil || string(got.Data) != data {
			t.Errorf("primary Get(%s) = %q, %v; want %q", id, got.Data, err, data)
		}
	}
	if m := f.Stats().Moves; m != 2 {
		t.Errorf("Stats().Moves = %d, want 2", m)
	}
	for _, w := range []string{"moving requests", "moving requests back", "to_reconcile=3"} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("log lacks %q:\n%s", w, logs)
		}
	}
}

// TestFailoverReconcileBeforeUse: an id written during the outage is
// carried back before its first use on the primary, even when the
// background reconciliation has not reached it yet.
func TestFailoverReconcileBeforeUse(t *testing.T) {
	primary, secondary := newFlaky(t), newFlaky(t)
	f := newFailover(t, []session.Store{primary, secondary}, session.FailoverOptions{
		FailureThreshold: 1, ProbeInterval: 20 * time.Millisecond, RecoverAfter: 1, Active: 1,
	})
	c := tctx(t)
	primary.set(modeDown)
	// Let the probe see the primary down, so it does not move back yet.
	eventually(t, 2*time.Second, "probe ran", func() bool { return primary.calls.Load() > 0 })
	mustDo(t, f.Set(c, "s", rec("new", time.Hour)))
	primary.MemoryStore.Set(c, "s", rec("stale", time.Hour))
	primary.set(modeUp)
	eventually(t, 2*time.Second, "back on the primary", func() bool { return session.ActiveIndex(f) == 0 })
	if got, err := f.Get(c, "s"); err != nil || string(got.Data) != "new" {
		t.Fatalf("Get = %q, %v; want new", got.Data, err)
	}
}

// TestFailoverHungStore: a hung active store costs a call at most
// CallTimeout; after FailureThreshold calls requests have moved.
func TestFailoverHungStore(t *testing.T) {
	primary, secondary := newFlaky(t), newFlaky(t)
	f := newFailover(t, []session.Store{primary, secondary}, session.FailoverOptions{FailureThreshold: 2, CallTimeout: 50 * time.Millisecond, ProbeInterval: time.Hour})
	c := tctx(t)
	primary.set(modeHung)
	start := time.Now()
	f.Set(c, "a", rec("x", time.Hour))
	if err := f.Set(c, "a", rec("x", time.Hour)); err != nil {
		t.Fatalf("second Set (moved to the secondary) = %v", err)
	}
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Fatalf("two calls on a hung store took %v; CallTimeout is 50ms", d)
	}
	if session.ActiveIndex(f) != 1 {
		t.Fatal("requests did not move")
	}
}

// TestFailoverAllDown: with every store down, calls fail and nothing
// moves in circles.
func TestFailoverAllDown(t *testing.T) {
	a, b := newFlaky(t), newFlaky(t)
	f := newFailover(t, []session.Store{a, b}, session.FailoverOptions{FailureThreshold: 1, ProbeInterval: time.Hour})
	a.set(modeDown)
	b.set(modeDown)
	c := tctx(t)
	for i := 0; i < 5; i++ {
		if err := f.Set(c, "x", rec("x", time.Hour)); err == nil {
			t.Fatal("Set succeeded with every store down")
		}
	}
	if rep := health.Check(c, f, health.Options{}); rep.Healthy() {
		t.Fatalf("health with every store down = %+v", rep)
	}
}

func mustDo(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
