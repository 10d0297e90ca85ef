package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessionkit/session/internal/exampletest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	exampletest.Cleanup()
	os.Exit(code)
}

const secret = "examples/server test secret, 32+ bytes long"

// server is one run of the built binary.
type server struct {
	t    *testing.T
	p    *exampletest.Process
	base string
}

func startServer(t *testing.T, env []string) *server {
	t.Helper()
	bin := exampletest.Build(t, "github.com/sessionkit/session/examples/server")
	p := exampletest.Start(t, bin, env)
	line := p.WaitLine("msg=listening", 20*time.Second)
	_, addr, _ := strings.Cut(line, "addr=")
	return &server{t: t, p: p, base: "http://" + strings.Fields(addr)[0]}
}

func (s *server) stop() {
	s.t.Helper()
	if code := s.p.Stop(20 * time.Second); code != 0 {
		s.t.Fatalf("exit code %d after SIGTERM; output:\n%s", code, s.p.Output())
	}
	if out := s.p.Output(); !strings.Contains(out, "msg=stopped") {
		s.t.Fatalf("no clean shutdown in the log:\n%s", out)
	}
}

func do(t *testing.T, c *http.Client, method, url, body string, hdr ...string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	return m
}

// restartKeepsSession is the must-show: write a value over real HTTP, stop
// the server process, start a new one, read the value back.
func restartKeepsSession(t *testing.T, env []string, wantBackend string) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}

	s := startServer(t, env)
	if !strings.Contains(s.p.Output(), "backend="+wantBackend) {
		t.Fatalf("startup log does not name backend %s:\n%s", wantBackend, s.p.Output())
	}
	code, b := do(t, c, "POST", s.base+"/api/test-session", `{"color":"blue","n":42}`)
	want := map[string]any{"color": "blue", "n": json.Number("42")}
	if code != 200 || !reflect.DeepEqual(decode(t, b), want) {
		t.Fatalf("POST /api/test-session: %d %s", code, b)
	}
	code, b = do(t, c, "POST", s.base+"/api/test-session", `{"size":"L"}`) // merged, not replaced
	want["size"] = "L"
	if code != 200 || !reflect.DeepEqual(decode(t, b), want) {
		t.Fatalf("second POST: %d %s", code, b)
	}
	code, b = do(t, c, "GET", s.base+"/healthz", "")
	if h := decode(t, b); code != 200 || h["status"] != "ok" || h["active"] != wantBackend {
		t.Fatalf("/healthz: %d %s", code, b)
	}
	code, b = do(t, c, "GET", s.base+"/admin/sessions/stats", "", "Authorization", "Bearer admin-token")
	if code != 200 || !strings.Contains(string(b), `"name":"`+wantBackend+`"`) || !strings.Contains(string(b), `"sessions":`) {
		t.Fatalf("/admin/sessions/stats: %d %s", code, b)
	}
	if code, _ := do(t, c, "GET", s.base+"/admin/sessions/stats", "", "Authorization", "Bearer wrong"); code != 401 {
		t.Fatalf("stats with a wrong token: %d, want 401", code)
	}
	s.stop()

	s = startServer(t, env) // a new process: nothing survives but the store
	code, b = do(t, c, "GET", s.base+"/api/test-session", "")
	if code != 200 || !reflect.DeepEqual(decode(t, b), want) {
		t.Fatalf("after restart: %d %s, want %v", code, b, want)
	}
	// Every session event is an audit line; none carries the cookie.
	code, _ = do(t, c, "POST", s.base+"/api/login", `{"user":"ada"}`)
	if code != 200 {
		t.Fatalf("login: %d", code)
	}
	line := s.p.WaitLine("msg=audit event=bound", 10*time.Second)
	if !strings.Contains(line, "user=ada") || !strings.Contains(line, "ip=127.0.0.1") || !strings.Contains(line, "path=/api/login") {
		t.Fatalf("audit line of the login: %s", line)
	}
	code, _ = do(t, c, "POST", s.base+"/api/logout", "")
	if code != 200 {
		t.Fatalf("logout: %d", code)
	}
	line = s.p.WaitLine("msg=audit event=destroyed", 10*time.Second)
	if !strings.Contains(line, "reason=logout") || !strings.Contains(line, "user=ada") {
		t.Fatalf("audit line of the logout: %s", line)
	}
	u, _ := url.Parse(s.base)
	for _, ck := range jar.Cookies(u) {
		if strings.Contains(s.p.Output(), ck.Value) {
			t.Fatal("a cookie value is in the log")
		}
	}
	code, b = do(t, c, "GET", s.base+"/api/test-session", "")
	if code != 200 || len(decode(t, b)) != 0 {
		t.Fatalf("after logout: %d %s, want {}", code, b)
	}
	s.stop()
}

func TestRestartKeepsSessionRedis(t *testing.T) {
	rc := exampletest.NeedRedis(t)
	prefix := exampletest.RandomName("issue5:server:") + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := rc.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			rc.Del(ctx, keys...)
		}
	})
	restartKeepsSession(t, []string{
		"APP_ENV=production",
		"ADDR=127.0.0.1:8151",
		"REDIS_URL=" + exampletest.RedisURL(),
		"SESSION_REDIS_PREFIX=" + prefix,
		"SESSION_SECRET=" + secret,
		"ADMIN_TOKEN=admin-token",
	}, "redis")
}

func TestRestartKeepsSessionPostgres(t *testing.T) {
	conn := exampletest.NeedPostgres(t)
	table := exampletest.RandomName("issue5_server_")
	t.Cleanup(func() {
		ctx := context.Background()
		conn.Exec(ctx, "DROP TABLE IF EXISTS "+table)
		conn.Exec(ctx, "DROP TABLE IF EXISTS "+table+"_schema_migrations")
	})
	restartKeepsSession(t, []string{
		"APP_ENV=production",
		"ADDR=127.0.0.1:8152",
		"DATABASE_URL=" + exampletest.DatabaseURL(),
		"SESSION_TABLE=" + table,
		"SESSION_SECRET=" + secret,
		"ADMIN_TOKEN=admin-token",
		"LOG_FORMAT=text",
	}, "postgres")
}

// With nothing configured, development runs on memory, and the admin
// endpoint does not exist without ADMIN_TOKEN.
func TestDevelopmentMemory(t *testing.T) {
	s := startServer(t, []string{"ADDR=127.0.0.1:8153"})
	c := &http.Client{Timeout: 5 * time.Second}
	code, b := do(t, c, "GET", s.base+"/healthz", "")
	if code != 200 || decode(t, b)["active"] != "memory" {
		t.Fatalf("/healthz: %d %s", code, b)
	}
	if code, _ := do(t, c, "GET", s.base+"/admin/sessions/stats", "", "Authorization", "Bearer "); code != 404 {
		t.Fatalf("stats with no ADMIN_TOKEN: %d, want 404", code)
	}
	s.stop()
}

// Production with no persistent store refuses to start, and says why.
func TestProductionNeedsAStore(t *testing.T) {
	bin := exampletest.Build(t, "github.com/sessionkit/session/examples/server")
	_, stderr, code := exampletest.Run(t, bin, []string{"APP_ENV=production", "SESSION_SECRET=" + secret, "ADDR=127.0.0.1:8154"})
	if code != 1 || !strings.Contains(stderr, "REDIS_URL or DATABASE_URL") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}

// redisEnv returns the environment of a server on the shared Redis under
// a prefix of its own, removed (with its user index) when t ends, and a
// client on that Redis.
func redisEnv(t *testing.T) ([]string, *redis.Client, string) {
	rc := exampletest.NeedRedis(t)
	prefix := exampletest.RandomName("issue17:server:") + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := rc.Keys(ctx, strings.TrimSuffix(prefix, ":")+"*").Result()
		if len(keys) > 0 {
			rc.Del(ctx, keys...)
		}
	})
	return []string{
		"APP_ENV=production",
		"ADDR=127.0.0.1:0",
		"REDIS_URL=" + exampletest.RedisURL(),
		"SESSION_REDIS_PREFIX=" + prefix,
		"SESSION_SECRET=" + secret,
		"ADMIN_TOKEN=admin-token",
	}, rc, prefix
}

// liveKeys counts the session records under prefix, as the store counts
// them.
func liveKeys(t *testing.T, rc *redis.Client, prefix string) int {
	t.Helper()
	keys, err := rc.Keys(context.Background(), prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

// loginAs signs a new client in as user, sending hdr (name, value pairs)
// with the login, and returns it with its session's store id.
func loginAs(t *testing.T, base, user string, hdr ...string) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	if code, b := do(t, c, "POST", base+"/api/login", `{"user":"`+user+`"}`, hdr...); code != 200 {
		t.Fatalf("login: %d %s", code, b)
	}
	code, b := do(t, c, "GET", base+"/api/me", "")
	m := decode(t, b)
	if code != 200 || m["user"] != user || m["id"] == "" {
		t.Fatalf("/api/me: %d %s", code, b)
	}
	return c, m["id"].(string)
}

// TestAdminAndMetrics: the console answers Basic auth with ADMIN_TOKEN
// as the password (and Bearer), refuses anything else, and /metrics
// serves the session metrics in Prometheus' format.
func TestAdminAndMetrics(t *testing.T) {
	env, rc, prefix := redisEnv(t)
	s := startServer(t, env)
	c := &http.Client{Timeout: 10 * time.Second}
	user := exampletest.RandomName("metrics-user-")
	for range 2 {
		loginAs(t, s.base, user)
	}

	req, _ := http.NewRequest("GET", s.base+"/admin/", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Fatalf("no credentials: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	for _, pw := range []string{"wrong", "", "admin-token "} {
		req, _ := http.NewRequest("GET", s.base+"/admin/", nil)
		req.SetBasicAuth("anyone", pw)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("password %q: %d", pw, resp.StatusCode)
		}
	}
	req, _ = http.NewRequest("GET", s.base+"/admin/?format=json", nil)
	req.SetBasicAuth("operator", "admin-token")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ov := decode(t, b)
	if resp.StatusCode != 200 || ov["backend"] != "redis" || ov["live_sessions"] != json.Number(strconv.Itoa(liveKeys(t, rc, prefix))) {
		t.Fatalf("overview: %d %s", resp.StatusCode, b)
	}
	code, b := do(t, c, "GET", s.base+"/admin/user?id="+user, "", "Authorization", "Bearer admin-token", "Accept", "application/json")
	if code != 200 || len(decode(t, b)["sessions"].([]any)) != 2 {
		t.Fatalf("user page: %d %s", code, b)
	}

	code, b = do(t, c, "GET", s.base+"/metrics", "")
	text := string(b)
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`session_manager_saves_total{otel_scope_name="github.com/sessionkit/session/otelsession"`,
		"session_manager_loads_total{",
		"session_manager_misses_total{",
		"session_manager_errors_total{",
		`session_store_operation_duration_seconds_bucket{`,
		`session_backend="redis"`,
		`session_operation="compare_and_set"`,
		"session_store_sessions{",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(text, secret) || strings.Contains(text, "admin-token") || strings.Contains(text, user) {
		t.Error("/metrics shows a secret or a user id")
	}
	// Two logins: two saves, and the gauge counts what Redis holds.
	if !strings.Contains(text, "session_manager_saves_total{") || !regexpMatch(`session_manager_saves_total\{[^}]*\} 2\n`, text) {
		t.Errorf("saves not 2:\n%s", grepLines(text, "session_manager_saves"))
	}
	if !regexpMatch(`session_store_sessions\{[^}]*\} `+strconv.Itoa(liveKeys(t, rc, prefix))+`\n`, text) {
		t.Errorf("gauge differs from Redis (%d):\n%s", liveKeys(t, rc, prefix), grepLines(text, "session_store_sessions"))
	}
	s.stop()
}

// TestNoConsoleWithoutToken: without ADMIN_TOKEN the console is not
// mounted.
func TestNoConsoleWithoutToken(t *testing.T) {
	s := startServer(t, []string{"ADDR=127.0.0.1:0"})
	c := &http.Client{Timeout: 5 * time.Second}
	for _, path := range []string{"/admin/", "/admin/user?id=x"} {
		if code, _ := do(t, c, "GET", s.base+path, "", "Authorization", "Basic Og=="); code != 404 {
			t.Fatalf("%s with no ADMIN_TOKEN: %d, want 404", path, code)
		}
	}
	s.stop()
}

func regexpMatch(pattern, text string) bool { return regexp.MustCompile(pattern).MatchString(text) }

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
