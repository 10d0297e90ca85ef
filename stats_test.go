package session_test

import (
	"encoding/json"
	"expvar"
	"testing"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/sessiontest"
)

func TestInstrumentedConformance(t *testing.T) {
	sessiontest.Run(t, func(t *testing.T) session.Store {
		return session.Instrument(session.NewMemoryStore(session.MemoryOptions{}))
	})
}

func TestInstrumentCounts(t *testing.T) {
	f := newFlaky(t)
	s := full(t, session.Instrument(f))
	c := tctx(t)
	s.Set(c, "a", rec("x", time.Hour))
	s.CompareAndSet(c, "a", []byte("x"), rec("y", time.Hour))
	s.Get(c, "a")
	s.Get(c, "missing")
	s.Touch(c, "a", time.Now().Add(time.Hour))
	s.Destroy(c, "a")
	f.set(modeDown)
	s.Get(c, "a")
	want := session.Stats{Loads: 3, Saves: 2, Touches: 1, Destroys: 1, Errors: 1}
	if got := s.Stats(); got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}

	// The README's one line: an app publishes its backend's Stats.
	expvar.Publish("session_test_stats", expvar.Func(func() any { return s.Stats() }))
	var got session.Stats
	if err := json.Unmarshal([]byte(expvar.Get("session_test_stats").String()), &got); err != nil || got != want {
		t.Fatalf("expvar = %+v, %v", got, err)
	}
}
