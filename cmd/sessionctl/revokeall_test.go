package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sessionkit/session"
)

// TestRevokeAll: revoke -all needs -yes; with it, every backend's epoch
// is raised past the highest, and an app on either backend no longer
// accepts a session created before.
func TestRevokeAll(t *testing.T) {
	env := backendsEnv(t)
	if _, stderr, code := ctl(t, env, "migrate"); code != exitOK {
		t.Fatal(stderr)
	}
	pg, err := session.OpenPostgres(env["DATABASE_URL"], session.PostgresOptions{Table: env["SESSION_TABLE"], DisableCleanup: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	rs, err := session.OpenRedis(env["REDIS_URL"], session.RedisOptions{Prefix: env["SESSION_REDIS_PREFIX"]})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	inPG := appSession(t, pg, map[string]any{"n": "one"})
	inRedis := appSession(t, rs, map[string]any{"n": "two"})
	if appRead(t, pg, inPG, "n") != "one" || appRead(t, rs, inRedis, "n") != "two" {
		t.Fatal("the app does not read its sessions back")
	}
	if _, err := rs.RaiseEpoch(t.Context(), 4); err != nil {
		t.Fatal(err)
	}

	if _, stderr, code := ctl(t, env, "revoke", "-all"); code != exitUsage || !strings.Contains(stderr, "-yes") {
		t.Fatalf("revoke -all without -yes: exit %d\n%s", code, stderr)
	}
	if _, _, code := ctl(t, env, "revoke", "-all", "-yes", "extra"); code != exitUsage {
		t.Fatalf("revoke -all -yes with an argument: exit %d", code)
	}
	stdout, stderr, code := ctl(t, env, "revoke", "-all", "-yes")
	if code != exitOK || !strings.Contains(stdout, "redis (127.0.0.1:6379): epoch 5") || !strings.Contains(stdout, "postgres") || !strings.Contains(stdout, "epoch 5") {
		t.Fatalf("revoke -all -yes: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, c := range []struct {
		store  session.Store
		cookie string
	}{{pg, inPG}, {rs, inRedis}} {
		if got := appRead(t, c.store, c.cookie, "n"); got != "" {
			t.Errorf("%T: a session created before revoke -all still reads %q", c.store, got)
		}
	}
}

// appRead reads key in the session of cookie, as an app on store.
func appRead(t *testing.T, store session.Store, cookie, key string) string {
	t.Helper()
	k, _ := session.KeyFromSecret(secret, false)
	m, err := session.New(store, session.Options{Keys: []session.KeyPair{k}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(&http.Cookie{Name: "session", Value: cookie})
	rec := httptest.NewRecorder()
	m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(session.From(r).GetString(key)))
	})).ServeHTTP(rec, req)
	return rec.Body.String()
}
