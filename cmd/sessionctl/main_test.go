package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/internal/exampletest"
	"github.com/sessionkit/session/internal/ops"
)

func TestMain(m *testing.M) {
	code := m.Run()
	exampletest.Cleanup()
	os.Exit(code)
}

const secret = "sessionctl test secret, at least 32 bytes"

// ctl runs sessionctl in-process with exactly env.
func ctl(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code = run(t.Context(), args, &o, &e, lookup)
	return o.String(), e.String(), code
}

func TestUsageAndExitCodes(t *testing.T) {
	bin := exampletest.Build(t, "./cmd/sessionctl")
	_, stderr, code := exampletest.Run(t, bin, nil)
	if code != exitUsage || !strings.Contains(stderr, "usage: sessionctl <command>") || !strings.Contains(stderr, "exit codes:") {
		t.Fatalf("no arguments: exit %d\n%s", code, stderr)
	}
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"frobnicate"}, exitUsage},
		{[]string{"help"}, exitOK},
		{[]string{"help", "purge"}, exitOK},
		{[]string{"inspect"}, exitUsage},
		{[]string{"stats", "-nosuchflag"}, exitUsage},
		{[]string{"revoke", "-store-id", "nothex"}, exitUsage},
	} {
		if _, stderr, code := ctl(t, map[string]string{"REDIS_URL": "redis://127.0.0.1:8199"}, c.args...); code != c.code {
			t.Errorf("sessionctl %s: exit %d, want %d\n%s", strings.Join(c.args, " "), code, c.code, stderr)
		}
	}
	// Configuration errors are 3, and never echo a password.
	_, stderr, code = ctl(t, map[string]string{"REDIS_URL": "http://user:hunter2@x"}, "stats")
	if code != exitConfig || strings.Contains(stderr, "hunter2") {
		t.Fatalf("bad REDIS_URL: exit %d\n%s", code, stderr)
	}
	_, stderr, code = ctl(t, map[string]string{}, "stats")
	if code != exitConfig || !strings.Contains(stderr, "no persistent backend") {
		t.Fatalf("nothing configured: exit %d\n%s", code, stderr)
	}
}

// unusedPort is a loopback port in the range this project's tests own
// where nothing listens: "Redis stopped" without stopping the shared one.
func unusedPort(t *testing.T) string {
	for port := 8199; port > 8180; port-- {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			continue
		}
		return addr
	}
	t.Fatal("no unused port in 8181-8199")
	return ""
}

// The must-show: with Redis down, doctor (the real binary, the app's
// environment) says Postgres would be chosen and why, exits 5, and
// changes nothing.
func TestDoctorRedisDownChoosesPostgres(t *testing.T) {
	conn := exampletest.NeedPostgres(t)
	bin := exampletest.Build(t, "./cmd/sessionctl")
	table := exampletest.RandomName("issue5_doctor_")
	redisAddr := unusedPort(t)
	env := []string{
		"APP_ENV=production",
		"SESSION_SECRET=" + secret,
		"REDIS_URL=redis://" + redisAddr + "/0",
		"DATABASE_URL=" + exampletest.DatabaseURL(),
		"SESSION_TABLE=" + table,
		"SESSION_BACKEND_TIMEOUT=1s",
	}
	stdout, stderr, code := exampletest.Run(t, bin, env, "doctor")
	if code != exitDegraded {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitDegraded, stdout, stderr)
	}
	for _, want := range []string{
		"verdict: the app would choose postgres (127.0.0.1:5432), because redis (" + redisAddr + ") failed",
		"connection refused",
		"table " + table + " not created yet",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, stdout)
		}
	}
	var exists bool
	conn.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists)
	if exists {
		conn.Exec(context.Background(), "DROP TABLE "+table)
		t.Fatal("doctor created the table: it must be read-only")
	}

	stdout, _, _ = exampletest.Run(t, bin, env, "doctor", "-json")
	var rep doctorReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || rep.Choice != "postgres" || rep.ExitCode != exitDegraded {
		t.Fatalf("doctor -json: %v %+v\n%s", err, rep, stdout)
	}
}

func TestDoctorVerdicts(t *testing.T) {
	exampletest.NeedRedis(t)
	down := "redis://" + unusedPort(t)
	for _, c := range []struct {
		name string
		env  map[string]string
		code int
		want string
	}{
		{"redis up", map[string]string{"REDIS_URL": exampletest.RedisURL()}, exitOK, "would choose redis (127.0.0.1:6379), the first configured backend"},
		{"nothing configured", map[string]string{}, exitOK, "would choose memory, the first configured backend. Memory sessions are lost"},
		{"development fallback to memory", map[string]string{"REDIS_URL": down, "SESSION_BACKEND_TIMEOUT": "300ms"}, exitDegraded, "would choose memory, because redis"},
		{"production, nothing works", map[string]string{"APP_ENV": "production", "SESSION_SECRET": secret, "REDIS_URL": down, "SESSION_BACKEND_TIMEOUT": "300ms"}, exitFailure, "would not start"},
		{"tiered, cache down", map[string]string{"SESSION_BACKEND": "tiered", "REDIS_URL": down, "DATABASE_URL": exampletest.DatabaseURL(), "SESSION_BACKEND_TIMEOUT": "300ms"}, exitDegraded, "serving from Postgres only"},
	} {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, code := ctl(t, c.env, "doctor")
			if code != c.code || !strings.Contains(stdout, c.want) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s%s", code, c.code, c.want, stdout, stderr)
			}
		})
	}
}

// backendsEnv configures both backends on names of the test's own, and
// removes them afterwards.
func backendsEnv(t *testing.T) map[string]string {
	rc := exampletest.NeedRedis(t)
	conn := exampletest.NeedPostgres(t)
	prefix := exampletest.RandomName("issue5:ctl:") + ":"
	table := exampletest.RandomName("issue5_ctl_")
	t.Cleanup(func() {
		ctx := context.Background()
		if keys, _ := rc.Keys(ctx, prefix+"*").Result(); len(keys) > 0 {
			rc.Del(ctx, keys...)
		}
		conn.Exec(ctx, "DROP TABLE IF EXISTS "+table)
		conn.Exec(ctx, "DROP TABLE IF EXISTS "+table+"_schema_migrations")
	})
	return map[string]string{
		"REDIS_URL": exampletest.RedisURL(), "SESSION_REDIS_PREFIX": prefix,
		"DATABASE_URL": exampletest.DatabaseURL(), "SESSION_TABLE": table,
		"SESSION_SECRET": secret,
	}
}

func TestMigrate(t *testing.T) {
	env := backendsEnv(t)
	stdout, stderr, code := ctl(t, env, "migrate")
	if code != exitOK || !strings.Contains(stdout, "applied 0001_create_sessions to "+env["SESSION_TABLE"]) {
		t.Fatalf("first migrate: exit %d\n%s%s", code, stdout, stderr)
	}
	stdout, _, code = ctl(t, env, "migrate")
	if code != exitOK || !strings.Contains(stdout, "is up to date") {
		t.Fatalf("second migrate: exit %d\n%s", code, stdout)
	}
	if _, stderr, code := ctl(t, map[string]string{"REDIS_URL": exampletest.RedisURL()}, "migrate"); code != exitConfig {
		t.Fatalf("migrate with no DATABASE_URL: exit %d\n%s", code, stderr)
	}
}

// A session made by an app (session.New with KeyFromSecret) in the given
// store; returns the cookie value the browser holds.
func appSession(t *testing.T, store session.Store, values map[string]any) string {
	t.Helper()
	key, _ := session.KeyFromSecret(secret, false)
	m, err := session.New(store, session.Options{Keys: []session.KeyPair{key}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range values {
			session.From(r).Put(k, v)
		}
	})))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "session" {
			return c.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

func TestInspectRevokeStats(t *testing.T) {
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
	inPG := appSession(t, pg, map[string]any{"user_id": 42, "role": "admin"})
	inRedis := appSession(t, rs, map[string]any{"cart": "3 items"})

	stdout, stderr, code := ctl(t, env, "inspect", inPG)
	if code != exitOK || !strings.Contains(stdout, "backend   postgres") || !strings.Contains(stdout, "user_id = 42") || !strings.Contains(stdout, `role = "admin"`) {
		t.Fatalf("inspect: exit %d\n%s%s", code, stdout, stderr)
	}
	stdout, _, code = ctl(t, env, "inspect", "-json", "session="+inRedis)
	var got sessionJSON
	if err := json.Unmarshal([]byte(stdout), &got); code != exitOK || err != nil || got.Backend != "redis" || got.Values["cart"] != "3 items" {
		t.Fatalf("inspect -json: exit %d %v\n%s", code, err, stdout)
	}

	stdout, _, code = ctl(t, env, "stats", "-json")
	var st []backendStats
	if err := json.Unmarshal([]byte(stdout), &st); code != exitOK || err != nil || len(st) != 2 || *st[0].Sessions != 1 || *st[1].Sessions != 1 {
		t.Fatalf("stats: exit %d %v\n%s", code, err, stdout)
	}

	// A forged or mistyped value is refused, never looked up.
	tampered := inPG[:len(inPG)-2] + "xx"
	if _, stderr, code := ctl(t, env, "inspect", tampered); code != exitNotFound || !strings.Contains(stderr, "does not verify") {
		t.Fatalf("tampered value: exit %d\n%s", code, stderr)
	}
	other := map[string]string{}
	for k, v := range env {
		other[k] = v
	}
	other["SESSION_SECRET"] = "another secret that is also 32+ bytes"
	if _, _, code := ctl(t, other, "inspect", inPG); code != exitNotFound {
		t.Fatalf("another secret: exit %d", code)
	}

	stdout, stderr, code = ctl(t, env, "revoke", inPG)
	if code != exitOK || !strings.Contains(stdout, "revoked session") || !strings.Contains(stdout, "was live in postgres") {
		t.Fatalf("revoke: exit %d\n%s%s", code, stdout, stderr)
	}
	if _, stderr, code := ctl(t, env, "inspect", inPG); code != exitNotFound || !strings.Contains(stderr, "no live session") {
		t.Fatalf("inspect after revoke: exit %d\n%s", code, stderr)
	}
	if stdout, _, code := ctl(t, env, "revoke", inPG); code != exitOK || !strings.Contains(stdout, "nothing to revoke") {
		t.Fatalf("second revoke: exit %d\n%s", code, stdout)
	}
	// By store id, as an app may log it.
	key, _ := session.KeyFromSecret(secret, false)
	token, _ := ops.DecodeCookie([]session.KeyPair{key}, "session", inRedis)
	id := ops.StoreID(token)
	if stdout, _, code := ctl(t, env, "revoke", "-store-id", id); code != exitOK || !strings.Contains(stdout, "was live in redis") {
		t.Fatalf("revoke -store-id: exit %d\n%s", code, stdout)
	}
	if _, err := rs.Get(t.Context(), id); err != session.ErrNotFound {
		t.Fatalf("after revoke the Redis record is still there: %v", err)
	}
}

func TestPurge(t *testing.T) {
	env := backendsEnv(t)
	if _, stderr, code := ctl(t, env, "migrate"); code != exitOK {
		t.Fatal(stderr)
	}
	conn := exampletest.NeedPostgres(t)
	table := env["SESSION_TABLE"]
	if _, err := conn.Exec(t.Context(), `INSERT INTO `+table+` (id, data, expires) SELECT 'expired-'||g, '\x7b7d'::bytea, now() - interval '1 minute' FROM generate_series(1, 12) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), `INSERT INTO `+table+` (id, data, expires) VALUES ('live', '\x7b7d'::bytea, now() + interval '1 hour')`); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := ctl(t, env, "purge", "-batch", "5")
	if code != exitOK || !strings.Contains(stdout, "purged 12 expired sessions") || !strings.Contains(stderr, "purging: 5 rows deleted") {
		t.Fatalf("purge: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	var n int
	conn.QueryRow(t.Context(), `SELECT count(*) FROM `+table).Scan(&n)
	if n != 1 {
		t.Fatalf("%d rows left, want the live one", n)
	}
	if stdout, _, code := ctl(t, map[string]string{"REDIS_URL": exampletest.RedisURL()}, "purge"); code != exitOK || !strings.Contains(stdout, "Redis expires sessions by itself") {
		t.Fatalf("purge with Redis only: exit %d\n%s", code, stdout)
	}
}
