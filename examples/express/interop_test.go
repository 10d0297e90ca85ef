package main

// TestInterop runs the real express-session app (node/app.js) side by side
// with this example, on Redis (connect-redis) and on Postgres
// (connect-pg-simple), and drives both with one client and one cookie jar:
// the cookie one side sets is the cookie the other side reads. It also runs
// the Go side alone on a Prisma-shaped table.
//
// Node and npm must be installed (.ci/run installs Debian's); node_modules
// is made with npm ci from the committed lockfile when missing. Without
// node, or a reachable Redis and Postgres, the test skips and says why,
// unless SESSION_TEST_REQUIRE_BACKENDS=1, where it fails.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

const (
	secretA = "new secret, the one that signs now"
	secretB = "old" // short, as old express apps' secrets often are
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func unavailable(t *testing.T, what string, err error) {
	t.Helper()
	if os.Getenv("SESSION_TEST_REQUIRE_BACKENDS") == "1" {
		t.Fatalf("%s is required (SESSION_TEST_REQUIRE_BACKENDS=1): %v", what, err)
	}
	t.Skipf("skipping: %s: %v (set SESSION_TEST_REQUIRE_BACKENDS=1 to fail instead)", what, err)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// nodeReady makes sure node and node_modules are there.
func nodeReady(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		unavailable(t, "node is not installed (apt-get install nodejs npm)", err)
	}
	dir, _ := filepath.Abs("node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "express-session")); err != nil {
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			unavailable(t, "npm ci in examples/express/node failed", fmt.Errorf("%v\n%s", err, out))
		}
	}
	return node
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startNode runs app.js with env and returns its base URL.
func startNode(t *testing.T, node string, env map[string]string) string {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(node, "app.js")
	cmd.Dir = "node"
	cmd.Env = append(os.Environ(), "ADDR="+addr)
	if os.Getenv("PGUSER") == "" && os.Getenv("USER") == "" {
		// node-postgres takes the user from these; pgx from the OS.
		if u, err := user.Current(); err == nil {
			cmd.Env = append(cmd.Env, "PGUSER="+u.Username)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "listening") {
				ready <- true
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatalf("node app.js did not start: %s", stderr.String())
	}
	return "http://" + addr
}

// startGo runs this example's handler in process with env.
func startGo(t *testing.T, env map[string]string) string {
	t.Helper()
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, closeStore, err := setup(t.Context(), lookup, logger)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); closeStore() })
	return srv.URL
}

// client is one browser: one cookie jar for every server on 127.0.0.1
// (cookies ignore ports, so both apps see the same connect.sid).
type client struct {
	t   *testing.T
	c   *http.Client
	jar *cookiejar.Jar
}

func newClient(t *testing.T) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}, jar: jar}
}

type reply struct {
	code      int
	body      map[string]any
	setCookie string
}

func (c *client) do(method, base, path string, body any) reply {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	r := reply{code: resp.StatusCode, setCookie: resp.Header.Get("Set-Cookie")}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &r.body); err != nil {
		r.body = map[string]any{"_raw": string(raw)}
	}
	return r
}

func (c *client) get(base string) reply { return c.do("GET", base, "/api/test-session", nil) }
func (c *client) post(base string, v map[string]any) reply {
	return c.do("POST", base, "/api/test-session", v)
}
func (c *client) logout(base string) reply { return c.do("POST", base, "/api/logout", nil) }

// cookie is the connect.sid value the jar holds.
func (c *client) cookie() string {
	u, _ := url.Parse("http://127.0.0.1/")
	for _, ck := range c.jar.Cookies(u) {
		if ck.Name == "connect.sid" {
			return ck.Value
		}
	}
	return ""
}

// sign is cookie-signature's sign, URL-encoded as express sends it.
func sign(sid, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(sid))
	v := "s:" + sid + "." + base64.RawStdEncoding.EncodeToString(mac.Sum(nil))
	return strings.NewReplacer(":", "%3A", "+", "%2B", "/", "%2F", "=", "%3D").Replace(v)
}

// sidOf returns the sid inside a connect.sid value.
func sidOf(value string) string {
	v, _ := url.PathUnescape(value)
	v = strings.TrimPrefix(v, "s:")
	return v[:strings.LastIndexByte(v, '.')]
}

// values drops express's cookie object from a reply.
func values(r reply) map[string]any {
	out := map[string]any{}
	for k, v := range r.body {
		if k != "cookie" {
			out[k] = v
		}
	}
	return out
}

// backend reaches the shared store directly, to check and to age records.
type backend struct {
	name   string
	env    map[string]string
	exists func(sid string) bool
	// age rewrites a record's JSON so that cookie.expires is hours stale,
	// and its real expiry (TTL, expire) a minute away.
	age func(sid string)
	// ttl is the time left before the record's real expiry.
	ttl func(sid string) time.Duration
}

func redisBackend(t *testing.T) backend {
	ctx := context.Background()
	opts, err := redis.ParseURL(envOr("SESSION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opts)
	if err := rc.Ping(ctx).Err(); err != nil {
		rc.Close()
		unavailable(t, "Redis", err)
	}
	prefix := "interop" + randHex(4) + ":"
	t.Cleanup(func() {
		iter := rc.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rc.Del(ctx, iter.Val())
		}
		rc.Close()
	})
	return backend{
		name: "redis",
		env:  map[string]string{"REDIS_URL": envOr("SESSION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"), "SESSION_REDIS_PREFIX": prefix},
		exists: func(sid string) bool {
			return rc.Exists(ctx, prefix+sid).Val() == 1
		},
		age: func(sid string) {
			v, err := rc.Get(ctx, prefix+sid).Result()
			if err != nil {
				t.Fatal(err)
			}
			rc.Set(ctx, prefix+sid, staleJSON(t, v), time.Minute)
		},
		ttl: func(sid string) time.Duration { return rc.PTTL(ctx, prefix+sid).Val() },
	}
}

func staleJSON(t *testing.T, v string) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		t.Fatalf("record %s: %v", v, err)
	}
	m["cookie"].(map[string]any)["expires"] = time.Now().Add(-5 * time.Hour).UTC().Format("2006-01-02T15:04:05.000Z")
	b, _ := json.Marshal(m)
	return string(b)
}

func pgPool(t *testing.T) (*pgxpool.Pool, string) {
	u := envOr("SESSION_TEST_DATABASE_URL", "postgres://127.0.0.1:5432/test")
	pool, err := pgxpool.New(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		unavailable(t, "Postgres", err)
	}
	t.Cleanup(pool.Close)
	return pool, u
}

func pgBackend(t *testing.T) backend {
	ctx := context.Background()
	pool, u := pgPool(t)
	table := "interop_" + randHex(4)
	// connect-pg-simple's table.sql.
	if _, err := pool.Exec(ctx, `CREATE TABLE `+table+` ("sid" varchar NOT NULL COLLATE "default", "sess" json NOT NULL, "expire" timestamp(6) NOT NULL, CONSTRAINT "`+table+`_pkey" PRIMARY KEY ("sid") NOT DEFERRABLE INITIALLY IMMEDIATE) WITH (OIDS=FALSE);
		CREATE INDEX "IDX_`+table+`_expire" ON `+table+` ("expire")`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+table) })
	return backend{
		name: "connect-pg-simple",
		env:  map[string]string{"DATABASE_URL": u, "SESSION_TABLE": table},
		exists: func(sid string) bool {
			var n int
			pool.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE sid = $1 AND expire > localtimestamp`, sid).Scan(&n)
			return n == 1
		},
		age: func(sid string) {
			var v string
			if err := pool.QueryRow(ctx, `SELECT sess::text FROM `+table+` WHERE sid = $1`, sid).Scan(&v); err != nil {
				t.Fatal(err)
			}
			if _, err := pool.Exec(ctx, `UPDATE `+table+` SET sess = $2::json, expire = localtimestamp + interval '1 minute' WHERE sid = $1`, sid, staleJSON(t, v)); err != nil {
				t.Fatal(err)
			}
		},
		ttl: func(sid string) time.Duration {
			var secs float64
			pool.QueryRow(ctx, `SELECT extract(epoch from expire - localtimestamp)::float8 FROM `+table+` WHERE sid = $1`, sid).Scan(&secs)
			return time.Duration(secs * float64(time.Second))
		},
	}
}

func with(base map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func TestInterop(t *testing.T) {
	node := nodeReady(t)
	for _, mk := range []func(*testing.T) backend{redisBackend, pgBackend} {
		b := mk(t)
		t.Run(b.name, func(t *testing.T) { interop(t, node, b) })
	}
}

func interop(t *testing.T, node string, b backend) {
	// After the rotation: A signs, B verifies. Before it: B alone.
	rotated := with(b.env, "SESSION_SECRET", secretA, "SESSION_SECRET_PREVIOUS", secretB)
	before := with(b.env, "SESSION_SECRET", secretB)
	nodeURL, goURL := startNode(t, node, rotated), startGo(t, rotated)
	sides := map[string]string{"node": nodeURL, "go": goURL}
	other := map[string]string{"node": "go", "go": "node"}

	for _, first := range []string{"node", "go"} {
		t.Run("login on "+first, func(t *testing.T) {
			c := newClient(t)
			second := other[first]
			r := c.post(sides[first], map[string]any{"user": "alice", "n": 1, "cookie": "ignored"})
			if r.code != 200 || r.body["user"] != "alice" || !strings.Contains(r.setCookie, "connect.sid=s%3A") {
				t.Fatalf("login on %s: %d %v %q", first, r.code, r.body, r.setCookie)
			}
			sid := sidOf(c.cookie())
			if len(sid) != 32 || !b.exists(sid) {
				t.Fatalf("sid %q (%d chars) not stored", sid, len(sid))
			}
			// Read and write on the other side, read back on the first.
			if r := c.get(sides[second]); r.code != 200 || r.body["user"] != "alice" || r.body["n"] != 1.0 {
				t.Fatalf("read on %s: %d %v", second, r.code, r.body)
			}
			if r := c.post(sides[second], map[string]any{"n": 2, "by": second}); r.code != 200 {
				t.Fatalf("write on %s: %d %v", second, r.code, r.body)
			}
			if r := c.get(sides[first]); r.body["user"] != "alice" || r.body["n"] != 2.0 || r.body["by"] != second {
				t.Fatalf("read back on %s: %v", first, r.body)
			}
			if sidOf(c.cookie()) != sid {
				t.Fatalf("the sid changed: %s -> %s", sid, sidOf(c.cookie()))
			}

			// Rolling expiry from a stale cookie.expires, on each side:
			// the real expiry is the TTL / expire column.
			for _, side := range []string{first, second} {
				b.age(sid)
				if left := b.ttl(sid); left > 2*time.Minute {
					t.Fatalf("aging failed: %v left", left)
				}
				r := c.get(sides[side])
				if r.code != 200 || r.body["user"] != "alice" {
					t.Fatalf("%s on a record with a stale cookie.expires: %d %v", side, r.code, r.body)
				}
				if left := b.ttl(sid); left < 23*time.Hour {
					t.Errorf("%s did not roll the expiry: %v left", side, left)
				}
				if !strings.Contains(r.setCookie, "connect.sid=") {
					t.Errorf("%s did not re-send the cookie (rolling)", side)
				}
			}

			// Forged, unsigned and tampered cookies: a fresh, empty
			// session on both sides, and nothing destroyed.
			good := c.cookie()
			forged := []string{
				sign(sid, "not the secret"),
				url.PathEscape(sid),
				"s%3A" + sid,
				strings.Replace(good, sid[:6], "AAAAAA", 1),
				good[:len(good)-3] + "xyz",
			}
			for _, bad := range forged {
				for side, base := range sides {
					req, _ := http.NewRequest("GET", base+"/api/test-session", nil)
					req.Header.Set("Cookie", "connect.sid="+bad)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					var body map[string]any
					json.NewDecoder(resp.Body).Decode(&body)
					resp.Body.Close()
					delete(body, "cookie")
					if resp.StatusCode != 200 || len(body) != 0 {
						t.Errorf("%s with cookie %q: %d %v, want 200 and no values", side, bad, resp.StatusCode, body)
					}
				}
			}
			if !b.exists(sid) {
				t.Fatal("a refused cookie destroyed the session")
			}
			for side, base := range sides {
				if r := c.get(base); r.body["user"] != "alice" {
					t.Errorf("after refused cookies, %s: %v", side, r.body)
				}
			}

			// Logout on the second side is seen by the first.
			if r := c.logout(sides[second]); r.code != 200 || r.body["ok"] != true {
				t.Fatalf("logout on %s: %d %v", second, r.code, r.body)
			}
			if b.exists(sid) {
				t.Errorf("logout on %s left the record", second)
			}
			c.jar.SetCookies(&url.URL{Scheme: "http", Host: "127.0.0.1"}, []*http.Cookie{{Name: "connect.sid", Value: good, Path: "/"}})
			if r := c.get(sides[first]); r.code != 200 || len(values(r)) != 0 {
				t.Errorf("after logout on %s, %s still has %v", second, first, values(r))
			}
			if b.exists(sid) {
				t.Errorf("a read after logout wrote the session back")
			}
		})
	}

	// Key rotation, both ways: a session logged in before the rotation
	// (secret B alone) lives on after it (A signs, B verifies), and the
	// first response re-signs its cookie with A, whichever side answers.
	nodeBefore, goBefore := startNode(t, node, before), startGo(t, before)
	for _, tc := range []struct{ loginOn, loginURL, readOn string }{
		{"node", nodeBefore, "go"}, {"go", goBefore, "node"},
	} {
		t.Run(fmt.Sprintf("rotation %s then %s", tc.loginOn, tc.readOn), func(t *testing.T) {
			c := newClient(t)
			if r := c.post(tc.loginURL, map[string]any{"user": "carol"}); r.code != 200 {
				t.Fatalf("login before rotation: %d %v", r.code, r.body)
			}
			sid := sidOf(c.cookie())
			if c.cookie() != sign(sid, secretB) {
				t.Fatalf("cookie %q is not signed with B", c.cookie())
			}
			r := c.get(sides[tc.readOn])
			if r.body["user"] != "carol" {
				t.Fatalf("%s after rotation: %v", tc.readOn, r.body)
			}
			if c.cookie() != sign(sid, secretA) {
				t.Errorf("%s did not re-sign with A: %q", tc.readOn, c.cookie())
			}
			if r := c.get(sides[tc.loginOn]); r.body["user"] != "carol" {
				t.Errorf("%s after re-signing: %v", tc.loginOn, r.body)
			}
		})
	}

	// Measurements: one GET of a logged-in session on each side.
	c := newClient(t)
	c.post(nodeURL, map[string]any{"user": "dave", "n": 1})
	for _, side := range []string{"node", "go"} {
		const n = 200
		start := time.Now()
		for range n {
			c.get(sides[side])
		}
		t.Logf("%s: GET /api/test-session with a session: %v per request (%d requests, rolling)", side, time.Since(start)/n, n)
	}
}

// TestPrisma: the Go side alone on a Prisma-shaped express_sessions table:
// expire and "updatedAt" in UTC, "createdAt" left to its default.
func TestPrisma(t *testing.T) {
	pool, u := pgPool(t)
	ctx := context.Background()
	table := "prisma_" + randHex(4)
	if _, err := pool.Exec(ctx, `CREATE TABLE `+table+` ("sid" TEXT NOT NULL, "sess" JSONB NOT NULL, "expire" TIMESTAMP(3) NOT NULL,
		"createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, "updatedAt" TIMESTAMP(3) NOT NULL,
		CONSTRAINT "`+table+`_pkey" PRIMARY KEY ("sid"));
		CREATE INDEX "`+table+`_expire_idx" ON `+table+`("expire")`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+table) })
	goURL := startGo(t, map[string]string{"DATABASE_URL": u, "SESSION_TABLE": table, "SESSION_TABLE_LAYOUT": "prisma", "SESSION_SECRET": secretA})
	c := newClient(t)
	if r := c.post(goURL, map[string]any{"user": "erin"}); r.code != 200 {
		t.Fatalf("login: %d %v", r.code, r.body)
	}
	sid := sidOf(c.cookie())
	var expireAhead, updatedSkew float64
	var user string
	if err := pool.QueryRow(ctx, `SELECT sess->>'user', extract(epoch from expire - (now() AT TIME ZONE 'UTC'))::float8,
		abs(extract(epoch from "updatedAt" - (now() AT TIME ZONE 'UTC')))::float8 FROM `+table+` WHERE sid = $1`, sid).Scan(&user, &expireAhead, &updatedSkew); err != nil {
		t.Fatal(err)
	}
	if user != "erin" || (expireAhead-86400) > 5 || (expireAhead-86400) < -5 || updatedSkew > 5 {
		t.Errorf("row: user %q, expire %vs ahead of UTC now (want 86400), updatedAt %vs off UTC", user, expireAhead, updatedSkew)
	}
	if r := c.post(goURL, map[string]any{"n": 1}); r.body["user"] != "erin" || r.body["n"] != 1.0 {
		t.Errorf("read/write: %v", r.body)
	}
	if r := c.logout(goURL); r.code != 200 {
		t.Errorf("logout: %d", r.code)
	}
	var n int
	pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n)
	if n != 0 {
		t.Errorf("%d rows after logout", n)
	}
}
