package session_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/internal/ops"
)

func TestSelectFirstWorking(t *testing.T) {
	down, up := newFlaky(t), newFlaky(t)
	down.set(modeDown)
	logger, logs := newLogger()
	sel, err := session.Select(tctx(t), []session.Candidate{
		session.StoreCandidate("a", "10.0.0.1:1", down, true),
		session.StoreCandidate("b", "10.0.0.2:2", up, true),
		session.MemoryCandidate(session.MemoryOptions{}),
	}, session.SelectOptions{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if sel.Name != "b" || sel.Store != up {
		t.Fatalf("chose %s", sel.Name)
	}
	want := []ops.Outcome{ops.OutcomeFailed, ops.OutcomeChosen, ops.OutcomeNotTried}
	for i, r := range sel.Attempts {
		if r.Outcome != want[i] {
			t.Errorf("candidate %d: %s, want %s", i, r, want[i])
		}
	}
	for _, w := range [][]string{{"store candidate failed", "backend=a addr=10.0.0.1:1"}, {"store chosen", "backend=b addr=10.0.0.2:2"}} {
		if !logHas(logs.String(), w...) {
			t.Errorf("log lacks a line with %q:\n%s", w, logs)
		}
	}
}

func TestSelectMemoryRules(t *testing.T) {
	cands := []session.Candidate{session.MemoryCandidate(session.MemoryOptions{DisableCleanup: true})}
	for _, tc := range []struct {
		name string
		opts session.SelectOptions
		ok   bool
	}{
		{"development", session.SelectOptions{}, true},
		{"production", session.SelectOptions{Production: true}, false},
		{"production forced", session.SelectOptions{Production: true, AllowMemory: true}, true},
		{"persistent required", session.SelectOptions{RequirePersistent: true, AllowMemory: true}, false},
	} {
		tc.opts.Logger, _ = newLogger()
		sel, err := session.Select(tctx(t), cands, tc.opts)
		if tc.ok != (err == nil) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
		if err == nil {
			sel.Store.(io.Closer).Close()
			continue
		}
		var se *session.SelectError
		if !errors.As(err, &se) || se.Attempts[0].Outcome != ops.OutcomeSkipped || !strings.Contains(err.Error(), "memory: skipped") {
			t.Errorf("%s: error %v does not name the skipped memory candidate", tc.name, err)
		}
	}
}

// TestSelectTimeout: a candidate that hangs costs at most Timeout.
func TestSelectTimeout(t *testing.T) {
	hung := newFlaky(t)
	hung.set(modeHung)
	logger, _ := newLogger()
	start := time.Now()
	sel, err := session.Select(tctx(t), []session.Candidate{
		session.StoreCandidate("hung", "", hung, true),
		session.MemoryCandidate(session.MemoryOptions{DisableCleanup: true}),
	}, session.SelectOptions{Timeout: 100 * time.Millisecond, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v", d)
	}
	if sel.Name != "memory" || !strings.Contains(sel.Attempts[0].Reason, "no answer within 100ms") {
		t.Fatalf("chose %s; first: %s", sel.Name, sel.Attempts[0])
	}
}

func TestSelectCancelled(t *testing.T) {
	c, cancel := context.WithCancel(context.Background())
	cancel()
	logger, _ := newLogger()
	if _, err := session.Select(c, []session.Candidate{session.MemoryCandidate(session.MemoryOptions{})}, session.SelectOptions{Logger: logger}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestCandidatesRejectMalformedURLs(t *testing.T) {
	if _, err := session.RedisCandidate("http://:pw@host", session.RedisOptions{}); err == nil || strings.Contains(err.Error(), "pw@") {
		t.Errorf("redis: %v", err)
	}
	if _, err := session.PostgresCandidate("postgres://u:topsecret@h:notaport/db", "", session.PostgresOptions{}); err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Errorf("postgres: %v", err)
	}
	if _, err := session.PostgresCandidate("postgres://h/db", "postgres://u:topsecret@h:x/db", session.PostgresOptions{}); err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Errorf("direct: %v", err)
	}
}

// TestSelectRedisUnreachableAtStartup (fault, real Postgres): Redis is
// configured but nothing answers on its port; Postgres is chosen and the
// log says so, with host:port and never the password.
func TestSelectRedisUnreachableAtStartup(t *testing.T) {
	testPool(t) // skip (or fail under REQUIRE) when Postgres is missing
	table := randomName("sessions_sel")
	t.Cleanup(func() {
		testPool(t).Exec(context.Background(), `DROP TABLE IF EXISTS `+table+`, `+table+`_schema_migrations`)
	})
	port := freeRedisPort(t)
	cfg, err := session.ConfigFromEnv(lookupMap(map[string]string{
		"REDIS_URL":               "redis://:hunter2hunter2@127.0.0.1:" + itoa(port) + "/0",
		"DATABASE_URL":            databaseURL(),
		"SESSION_TABLE":           table,
		"SESSION_BACKEND_TIMEOUT": "1s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	logger, logs := newLogger()
	start := time.Now()
	b, err := session.Open(tctx(t), cfg, session.OpenOptions{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("selection took %v", d)
	}
	if b.Name != "postgres" || b.Active() != "postgres" {
		t.Fatalf("chose %s", b.Name)
	}
	if r := session.Attempts(b)[0]; r.Name != "redis" || r.Outcome != ops.OutcomeFailed || r.Addr != "127.0.0.1:"+itoa(port) {
		t.Fatalf("redis candidate: %s", r)
	}
	mustDo(t, b.Store.Set(tctx(t), "x", rec("y", time.Hour)))
	if b.Stats().Saves != 1 {
		t.Fatalf("Stats = %+v", b.Stats())
	}
	out := logs.String()
	for _, w := range [][]string{{"store candidate failed", "backend=redis addr=127.0.0.1:" + itoa(port)}, {"store chosen", "backend=postgres addr="}} {
		if !logHas(out, w...) {
			t.Errorf("log lacks a line with %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "hunter2") {
		t.Errorf("log leaks the password:\n%s", out)
	}
	t.Logf("log:\n%s", out)
}

// TestOpenProductionNothingReachable (fault): production, Redis and
// Postgres configured but down: Open fails fast with an error naming
// each candidate and why, and never a password.
func TestOpenProductionNothingReachable(t *testing.T) {
	cfg, err := session.ConfigFromEnv(lookupMap(map[string]string{
		"APP_ENV":                 "production",
		"SESSION_SECRET":          strings.Repeat("s", 40),
		"REDIS_URL":               "redis://:hunter2hunter2@" + deadAddr(t) + "/0",
		"DATABASE_URL":            "postgres://app:pgsecret99@" + deadAddr(t) + "/app",
		"SESSION_BACKEND_TIMEOUT": "1s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	logger, logs := newLogger()
	start := time.Now()
	b, err := session.Open(tctx(t), cfg, session.OpenOptions{Logger: logger})
	if err == nil {
		b.Close()
		t.Fatal("Open succeeded with nothing reachable in production")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
	msg := err.Error()
	for _, w := range []string{"redis (127.0.0.1:", "postgres (127.0.0.1:", "memory: skipped", "refused in production"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error lacks %q: %s", w, msg)
		}
	}
	for _, secret := range []string{"hunter2", "pgsecret99"} {
		if strings.Contains(msg, secret) || strings.Contains(logs.String(), secret) {
			t.Errorf("password %q leaked:\n%s\n%s", secret, msg, logs)
		}
	}
	t.Logf("error: %s", msg)
}

// logHas reports whether one line of out contains every part.
func logHas(out string, parts ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return true
		}
	}
	return false
}
