package session_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/health"
)

func serveHealth(t *testing.T, h http.Handler) (int, health.Report) {
	t.Helper()
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest("GET", "/healthz", nil))
	var rep health.Report
	if err := json.Unmarshal(rr.Body.Bytes(), &rep); err != nil {
		t.Fatalf("body %q: %v", rr.Body, err)
	}
	if ct := rr.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	// The JSON every probe and dashboard reads: latency in milliseconds,
	// and Latency read back from it.
	var raw struct {
		Backends []map[string]any `json:"backends"`
	}
	json.Unmarshal(rr.Body.Bytes(), &raw)
	for i, b := range raw.Backends {
		ms, ok := b["latency_ms"].(float64)
		if !ok || len(b) < 5 {
			t.Fatalf("backend %d in JSON: %v", i, b)
		}
		if got := rep.Backends[i].Latency; got != time.Duration(ms*float64(time.Millisecond)) {
			t.Fatalf("backend %d: Latency %v from latency_ms %v", i, got, ms)
		}
	}
	return rr.Code, rep
}

// TestHealthHandlerTiered: 200 ok with both up; 200 degraded with the
// cache down (requests are still served); 503 with the source down.
func TestHealthHandlerTiered(t *testing.T) {
	cache, source := newFlaky(t), newFlaky(t)
	ts := newTiered(t, cache, source, session.TieredOptions{})
	ts.Set(tctx(t), "a", rec("x", time.Hour))
	h := health.Handler(ts, health.Options{CountSessions: true, Timeout: 200 * time.Millisecond})

	code, rep := serveHealth(t, h)
	if code != 200 || rep.Status != health.OK || len(rep.Backends) != 2 {
		t.Fatalf("all up: %d %+v", code, rep)
	}
	if b := rep.Backends[1]; !b.Required || !b.Reachable || b.Sessions == nil || *b.Sessions != 1 {
		t.Fatalf("source: %+v", b)
	}
	if rep.Stats == nil || rep.Stats.Saves != 1 {
		t.Fatalf("stats: %+v", rep.Stats)
	}

	cache.set(modeHung)
	start := time.Now()
	code, rep = serveHealth(t, h)
	if code != 200 || rep.Status != health.Degraded || rep.Backends[0].Reachable || rep.Backends[0].Error == "" {
		t.Fatalf("cache hung: %d %+v", code, rep)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("health check with a hung cache took %v; Timeout is 200ms", d)
	}

	cache.set(modeUp)
	source.set(modeDown)
	code, rep = serveHealth(t, h)
	if code != 503 || rep.Status != health.Down {
		t.Fatalf("source down: %d %+v", code, rep)
	}

	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest("HEAD", "/healthz", nil))
	if rr.Code != 503 || rr.Body.Len() != 0 {
		t.Fatalf("HEAD: %d %q", rr.Code, rr.Body)
	}
}

func TestHealthFailoverActive(t *testing.T) {
	a, b := newFlaky(t), newFlaky(t)
	f := newFailover(t, []session.Store{a, b}, session.FailoverOptions{FailureThreshold: 1, ProbeInterval: time.Hour})
	a.set(modeDown)
	f.Set(tctx(t), "x", rec("x", time.Hour)) // moves to b
	rep := health.Check(tctx(t), f, health.Options{})
	if rep.Status != health.Degraded || rep.Active != session.ActiveBackend(f) || !rep.Backends[1].Active || rep.Backends[0].Reachable {
		t.Fatalf("%+v", rep)
	}
}
