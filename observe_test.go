package session_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/health"
	"github.com/sessionkit/session/internal/ops"
)

// countingObserver is an OpenOptions.Observe that checks its own
// contract: every call it starts is ended once.
func countingObserver() func(context.Context, string, string) (context.Context, func(error)) {
	var open atomic.Int64
	return func(ctx context.Context, backend, op string) (context.Context, func(error)) {
		open.Add(1)
		var once atomic.Bool
		return ctx, func(error) {
			if !once.CompareAndSwap(false, true) {
				panic("observer's end called twice")
			}
			open.Add(-1)
		}
	}
}

type observeKey struct{}

// observation is one call an observer saw.
type observation struct {
	backend, op string
	err         error
}

// recorder is an OpenOptions.Observe that records every call, and puts a
// value in the call's context.
type recorder struct {
	mu    sync.Mutex
	calls []observation
}

func (r *recorder) observe(ctx context.Context, backend, op string) (context.Context, func(error)) {
	return context.WithValue(ctx, observeKey{}, backend+"/"+op), func(err error) {
		r.mu.Lock()
		r.calls = append(r.calls, observation{backend, op, err})
		r.mu.Unlock()
	}
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.calls {
		s := c.backend + "/" + c.op
		if c.err != nil && !errors.Is(c.err, session.ErrNotFound) {
			s += "!"
		}
		out = append(out, s)
	}
	return out
}

// ctxStore is a four-method store that fails a call whose context does
// not carry the observer's value, so that the test sees the observed
// context reach the backend.
type ctxStore struct{ session.Store }

func (c ctxStore) check(ctx context.Context, want string) error {
	if got, _ := ctx.Value(observeKey{}).(string); got != want {
		return fmt.Errorf("the call's context carries %q, want %q", got, want)
	}
	return nil
}

func (c ctxStore) Get(ctx context.Context, id string) (session.Record, error) {
	if err := c.check(ctx, "fake/get"); err != nil {
		return session.Record{}, err
	}
	return c.Store.Get(ctx, id)
}

func (c ctxStore) Set(ctx context.Context, id string, rec session.Record) error {
	if err := c.check(ctx, "fake/set"); err != nil {
		return err
	}
	return c.Store.Set(ctx, id, rec)
}

// TestObserveAbilitiesExact: an observed store offers exactly the
// abilities of the store it observes, for every combination.
func TestObserveAbilitiesExact(t *testing.T) {
	for mask := 0; mask <= abAll; mask++ {
		t.Run(abilityString(mask), func(t *testing.T) {
			var r recorder
			checkAbilities(t, "Observed", session.Observed(fakeStore(t, mask), "fake", r.observe), mask)
			checkAbilities(t, "NewTiered(Observed)", newTieredOver(t, session.Observed(plainStore(t), "a", r.observe), session.Observed(fakeStore(t, mask), "b", r.observe)), mask)
		})
	}
}

// TestObserveCalls: every call reaches the observer with its backend and
// operation, runs with the context the observer returned, and reports
// its result.
func TestObserveCalls(t *testing.T) {
	var r recorder
	s := session.Observed(ctxStore{plainStore(t)}, "fake", r.observe)
	ctx := tctx(t)
	if err := s.Set(ctx, "a", rec("x", time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "absent"); !errors.Is(err, session.ErrNotFound) {
		t.Fatal(err)
	}
	s.Touch(ctx, "a", time.Now().Add(time.Minute))
	s.Destroy(ctx, "a")
	s.(session.Pinger).Ping(ctx)
	want := []string{"fake/set", "fake/get", "fake/get", "fake/touch", "fake/destroy", "fake/ping"}
	if got := r.seen(); !slices.Equal(got, want) {
		t.Fatalf("observed %v, want %v", got, want)
	}
}

// TestOpenObserveTiered: through Open in tiered mode, each backend is
// observed under its own name, a request's calls included, and failures
// are remembered for the operator's console.
func TestOpenObserveTiered(t *testing.T) {
	var r recorder
	store := openObserved(session.ModeTiered, true, true, r.observe)(t, true)
	a := newApp(t, store, session.Options{Logger: discardLogger()})
	a.mux.HandleFunc("POST /put", func(w http.ResponseWriter, r *http.Request) { session.From(r).Put("k", "v") })
	a.mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, session.From(r).GetString("k")) })
	c := newClient(t)
	if resp, _ := a.doWith(c, "POST", "/put", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("put: %d", resp.StatusCode)
	}
	if resp, body := a.doWith(c, "GET", "/get", nil); resp.StatusCode != http.StatusOK || body != "v" {
		t.Fatalf("get: %d %q", resp.StatusCode, body)
	}
	seen := strings.Join(r.seen(), " ")
	for _, want := range []string{"postgres/compare_and_set", "redis/get"} {
		if !strings.Contains(seen, want) {
			t.Errorf("observed %s; no %s", seen, want)
		}
	}
	rep := health.Check(tctx(t), store, health.Options{})
	if rep.Status != health.OK || len(rep.Backends) != 2 || rep.Backends[0].Name != "redis" || rep.Backends[1].Name != "postgres" {
		t.Fatalf("health through observed backends: %+v", rep)
	}
	if !strings.Contains(strings.Join(r.seen(), " "), "redis/ping") {
		t.Errorf("the health check's pings were not observed")
	}
	if fs := ops.RecentFailures(store); len(fs) != 0 {
		t.Fatalf("failures remembered on a healthy store: %+v", fs)
	}
}

// TestRecentFailures: a counting store remembers its last 20 failures,
// newest first, and nothing of answers such as ErrNotFound.
func TestRecentFailures(t *testing.T) {
	f := newFlaky(t)
	s := session.Instrument(f)
	ctx := tctx(t)
	s.Get(ctx, "absent")
	if fs := ops.RecentFailures(s); len(fs) != 0 {
		t.Fatalf("ErrNotFound remembered: %+v", fs)
	}
	f.set(modeDown)
	for range 25 {
		s.Get(ctx, "a")
	}
	s.Set(ctx, "a", rec("x", time.Minute))
	fs := ops.RecentFailures(s)
	if len(fs) != 20 || fs[0].Op != "save" || fs[1].Op != "load" || !strings.Contains(fs[0].Error, errBackendDown.Error()) {
		t.Fatalf("remembered %d failures, first %+v", len(fs), fs[0])
	}
	if fs[0].Time.Before(fs[19].Time) {
		t.Fatal("not newest first")
	}
	if ops.RecentFailures(plainStore(t)) != nil {
		t.Fatal("a store that does not count remembers failures")
	}
}
