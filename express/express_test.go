package express_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sessionkit/session"
	"github.com/sessionkit/session/express"
	"github.com/sessionkit/session/health"
	"github.com/sessionkit/session/sessiontest"
)

// A vector from Node: require('cookie-signature').sign(sid, 'keyboard cat').
const (
	expressVectorSID    = "abcDEF_-0123456789abcdefghijklmn"
	expressVectorSigned = "abcDEF_-0123456789abcdefghijklmn.tJSNmSApJnj4TcztwGP82hwD+sw8nPHI3twOWOXoT/8"
	expressVectorCookie = "s%3AabcDEF_-0123456789abcdefghijklmn.tJSNmSApJnj4TcztwGP82hwD%2Bsw8nPHI3twOWOXoT%2F8"
)

func expressManager(t *testing.T, store session.Store, secrets ...string) *session.Manager {
	t.Helper()
	m, err := express.New(store, secrets, session.Options{TouchInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCookieCodec(t *testing.T) {
	mem := session.NewMemoryStore(session.MemoryOptions{})
	t.Cleanup(func() { mem.Close() })
	m := expressManager(t, mem, "keyboard cat", "old secret")
	codec := m.Options().TokenCodec
	v, err := codec.Encode("connect.sid", expressVectorSID)
	if err != nil || v != expressVectorCookie {
		t.Fatalf("Encode = %q, %v; want Node's %q", v, err, expressVectorCookie)
	}
	for _, value := range []string{expressVectorCookie, "s:" + expressVectorSigned} {
		sid, rotate, err := codec.Decode("connect.sid", value)
		if err != nil || sid != expressVectorSID || rotate {
			t.Errorf("Decode(%q) = %q, %v, %v", value, sid, rotate, err)
		}
	}
	old := expressManager(t, mem, "old secret")
	oldValue, _ := old.Options().TokenCodec.Encode("connect.sid", expressVectorSID)
	if sid, rotate, err := codec.Decode("connect.sid", oldValue); err != nil || sid != expressVectorSID || !rotate {
		t.Errorf("old-secret cookie: %q, rotate %v, %v; want the sid and rotate", sid, rotate, err)
	}
	for _, bad := range []string{
		"", expressVectorSID, // unsigned
		"s%3A" + expressVectorSID,                                   // no signature
		strings.Replace(expressVectorCookie, "tJSN", "tJSM", 1),     // tampered signature
		strings.Replace(expressVectorCookie, "abcDEF", "abcDEG", 1), // tampered sid
		"s%3A" + expressVectorSID + ".", "%zz", "s%3A.x",
	} {
		if sid, _, err := codec.Decode("connect.sid", bad); err == nil {
			t.Errorf("Decode(%q) = %q, want an error", bad, sid)
		}
	}
}

// TestManager: a session Go makes is one Node reads (express's JSON,
// an express-shaped sid and cookie), ID hides the sid, and what Go cannot
// read or must not write is refused without touching the record.
func TestManager(t *testing.T) {
	store := session.NewMemoryStore(session.MemoryOptions{})
	t.Cleanup(func() { store.Close() })
	m := expressManager(t, store, "keyboard cat")
	var lastID string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /put", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		if err := s.Put("user", "alice"); err != nil {
			t.Error(err)
		}
		s.Add("n", 1)
		lastID = s.ID()
	})
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		out := map[string]any{}
		for _, k := range s.Keys() {
			out[k] = s.Get(k)
		}
		json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("POST /cookie", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Put("cookie", map[string]any{"httpOnly": false})
	})
	mux.HandleFunc("POST /user", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).SetUser("alice")
	})
	srv := httptest.NewServer(m.Handler(mux))
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	c := srv.Client()
	c.Jar = jar
	resp, err := c.Post(srv.URL+"/put", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	setCookie := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"connect.sid=s%3A", "Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=86400"} {
		if !strings.Contains(setCookie, want) {
			t.Errorf("Set-Cookie %q lacks %q", setCookie, want)
		}
	}
	u, _ := url.Parse(srv.URL)
	value := jar.Cookies(u)[0].Value
	sid, _, err := m.Options().TokenCodec.Decode("connect.sid", value)
	if err != nil || len(sid) != 32 {
		t.Fatalf("sid %q (%d chars), %v: want express's 32", sid, len(sid), err)
	}
	if lastID == "" || strings.Contains(lastID, sid) {
		t.Errorf("Session.ID() = %q exposes or lacks the sid %q", lastID, sid)
	}
	rec, err := store.Get(t.Context(), sid)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(rec.Data, &got); err != nil {
		t.Fatalf("record %s: %v", rec.Data, err)
	}
	cookie, _ := got["cookie"].(map[string]any)
	if got["user"] != "alice" || got["n"] != 1.0 || cookie["originalMaxAge"] != 86400000.0 || cookie["httpOnly"] != true || cookie["path"] != "/" || cookie["sameSite"] != "lax" {
		t.Errorf("record = %s, want express's shape", rec.Data)
	}
	if exp, err := time.Parse(time.RFC3339Nano, cookie["expires"].(string)); err != nil || exp.Sub(rec.Expires).Abs() > time.Second {
		t.Errorf("cookie.expires %v vs record expiry %v (%v)", cookie["expires"], rec.Expires, err)
	}

	get := func() (int, string) {
		resp, err := c.Get(srv.URL + "/get")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != 200 || !strings.Contains(body, `"user":"alice"`) || !strings.Contains(body, `"cookie":{`) {
		t.Errorf("GET = %d %s", code, body)
	}

	// A handler cannot replace the cookie object, nor bind a user.
	for _, path := range []string{"/cookie", "/user"} {
		resp, err := c.Post(srv.URL+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 500 {
			t.Errorf("POST %s = %d, want 500", path, resp.StatusCode)
		}
	}
	if after, _ := store.Get(t.Context(), sid); string(after.Data) != string(rec.Data) {
		t.Errorf("refused writes changed the record: %s", after.Data)
	}

	// Records Go cannot read (ours, or one without a cookie object) are
	// answered 500, as Node answers them, and left as they are.
	for _, foreign := range []string{`1764300000000|{"created":1,"values":{}}`, `{"user":"bob"}`, `[1]`} {
		exp := time.Now().Add(time.Hour)
		store.Set(t.Context(), sid, session.Record{Data: []byte(foreign), Expires: exp})
		if code, _ := get(); code != 500 {
			t.Errorf("GET on %s = %d, want 500", foreign, code)
		}
		if after, err := store.Get(t.Context(), sid); err != nil || string(after.Data) != foreign {
			t.Errorf("record %s became %s, %v", foreign, after.Data, err)
		}
	}
}

func TestRefuses(t *testing.T) {
	mem := session.NewMemoryStore(session.MemoryOptions{})
	t.Cleanup(func() { mem.Close() })
	cache := session.NewMemoryStore(session.MemoryOptions{})
	t.Cleanup(func() { cache.Close() })
	tiered, err := session.NewTiered(cache, mem, session.TieredOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		store   session.Store
		secrets []string
		opts    session.Options
	}{
		"no secret": {mem, nil, session.Options{}},
		"lifetime":  {mem, []string{"s"}, session.Options{Lifetime: time.Hour}},
		"keys":      {mem, []string{"s"}, session.Options{Keys: []session.KeyPair{{Hash: make([]byte, 32)}}}},
		"header":    {mem, []string{"s"}, session.Options{TokenHeader: "X-Session"}},
		"tiered":    {tiered, []string{"s"}, session.Options{}},
	} {
		if _, err := express.New(tc.store, tc.secrets, tc.opts); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
	if _, err := express.New(tiered, []string{"s"}, session.Options{}); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("tiered: %v, want errors.ErrUnsupported", err)
	}
}

// TestRefusesSessionLayouts: package session's own Redis and Postgres
// stores, bare or as session.Open returns them (instrumented, or composed
// in tiered mode), write records Node cannot read.
func TestRefusesSessionLayouts(t *testing.T) {
	client := testRedisClient(t)
	pool := testPool(t)
	prefix := randomName("expresstest:") + ":"
	rs, err := session.NewRedisStore(client, session.RedisOptions{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	table := randomName("express_own")
	t.Cleanup(func() { pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+table) })
	if err := session.Migrate(t.Context(), pool, table); err != nil {
		t.Fatal(err)
	}
	ps, err := session.NewPostgresStore(pool, session.PostgresOptions{Table: table, DisableCleanup: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	open := func(mode session.Mode, db string) session.Store {
		cfg := session.Config{RedisURL: redisURL(), DatabaseURL: db, Mode: mode, Table: table, RedisPrefix: prefix}
		b, err := session.Open(t.Context(), cfg, session.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b.Store
	}
	for name, store := range map[string]session.Store{
		"RedisStore":     rs,
		"PostgresStore":  ps,
		"Open, select":   open(session.ModeSelect, ""),
		"Open, tiered":   open(session.ModeTiered, databaseURL()),
		"Open, failover": open(session.ModeFailover, databaseURL()),
	} {
		if _, err := express.New(store, []string{"s"}, session.Options{}); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s: %v, want errors.ErrUnsupported", name, err)
		}
	}
}

func newExpressRedisStore(t testing.TB) *express.RedisStore {
	t.Helper()
	c := testRedisClient(t)
	prefix := randomName("expresstest:") + ":"
	s, err := express.NewRedisStore(c, prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		iter := c.Scan(context.Background(), 0, prefix+"*", 1000).Iterator()
		for iter.Next(context.Background()) {
			c.Del(context.Background(), iter.Val())
		}
	})
	return s
}

// createExpressTable creates a table as connect-pg-simple's table.sql or
// Prisma's migration would, dropped when t ends.
func createExpressTable(t testing.TB, pool *pgxpool.Pool, layout string) string {
	t.Helper()
	table := randomName("express_t")
	ddl := `CREATE TABLE ` + table + ` (sid varchar NOT NULL COLLATE "default" PRIMARY KEY, sess json NOT NULL, expire timestamp(6) NOT NULL);
		CREATE INDEX ON ` + table + ` (expire)`
	if layout == express.LayoutPrisma {
		ddl = `CREATE TABLE ` + table + ` ("sid" TEXT NOT NULL, "sess" JSONB NOT NULL, "expire" TIMESTAMP(3) NOT NULL,
			"createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, "updatedAt" TIMESTAMP(3) NOT NULL,
			CONSTRAINT "` + table + `_pkey" PRIMARY KEY ("sid"));
			CREATE INDEX ON ` + table + ` ("expire")`
	}
	if _, err := pool.Exec(context.Background(), ddl); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+table) })
	return table
}

// expressPool is a pool whose sessions run in a time zone far from UTC and
// from the machine's, so that an expiry computed in the wrong zone shows.
func expressPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	testPool(t) // skips when Postgres is unreachable
	cfg, err := pgxpool.ParseConfig(databaseURL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["timezone"] = "Pacific/Kiritimati" // UTC+14
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func TestConformance(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		newExpressRedisStore(t)
		skipped := sessiontest.Run(t, func(t *testing.T) session.Store { return newExpressRedisStore(t) })
		t.Logf("skipped: %v", skipped)
	})
	for _, layout := range []string{express.LayoutConnectPgSimple, express.LayoutPrisma} {
		t.Run(layout, func(t *testing.T) {
			pool := expressPool(t)
			skipped := sessiontest.Run(t, func(t *testing.T) session.Store {
				s, err := express.OpenPostgres(t.Context(), pool, createExpressTable(t, pool, layout), layout)
				if err != nil {
					t.Fatal(err)
				}
				return jsonData{s}
			})
			t.Logf("skipped: %v", skipped)
		})
	}
}

// TestPostgresColumns: expire holds the database session's local
// time (connect-pg-simple) or UTC (Prisma), "updatedAt" is UTC, and a
// table of the wrong shape is refused with what is missing.
func TestPostgresColumns(t *testing.T) {
	pool := expressPool(t)
	ctx := t.Context()
	for _, layout := range []string{express.LayoutConnectPgSimple, express.LayoutPrisma} {
		table := createExpressTable(t, pool, layout)
		s, err := express.OpenPostgres(ctx, pool, table, layout)
		if err != nil {
			t.Fatal(err)
		}
		exp := time.Now().Add(time.Hour)
		if err := s.Set(ctx, "sid1", session.Record{Data: []byte(`{"cookie":{}}`), Expires: exp}); err != nil {
			t.Fatal(err)
		}
		var ahead time.Duration
		q := `SELECT extract(epoch from expire - (now() AT TIME ZONE 'UTC'))::float8 FROM ` + table
		if layout == express.LayoutConnectPgSimple {
			q = `SELECT extract(epoch from expire - localtimestamp)::float8 FROM ` + table
		}
		var secs float64
		if err := pool.QueryRow(ctx, q).Scan(&secs); err != nil {
			t.Fatal(err)
		}
		ahead = time.Duration(secs * float64(time.Second))
		if (ahead - time.Hour).Abs() > 5*time.Second {
			t.Errorf("%s: expire is %v ahead of the right clock, want an hour", layout, ahead)
		}
		if rec, err := s.Get(ctx, "sid1"); err != nil || rec.Expires.Sub(exp).Abs() > time.Millisecond {
			t.Errorf("%s: Get expiry %v, want %v (%v)", layout, rec.Expires, exp, err)
		}
		if layout == express.LayoutPrisma {
			var skew float64
			pool.QueryRow(ctx, `SELECT abs(extract(epoch from "updatedAt" - (now() AT TIME ZONE 'UTC')))::float8 FROM `+table).Scan(&skew)
			if skew > 5 {
				t.Errorf(`"updatedAt" is %vs off UTC`, skew)
			}
		}
	}
	bad := randomName("express_bad")
	pool.Exec(ctx, `CREATE TABLE `+bad+` (sid text PRIMARY KEY, data bytea)`)
	t.Cleanup(func() { pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+bad) })
	_, err := express.OpenPostgres(ctx, pool, bad, "")
	if err == nil || !strings.Contains(err.Error(), `"sess" is missing`) || !strings.Contains(err.Error(), `"expire" is missing`) {
		t.Errorf("wrong table: %v", err)
	}
	if _, err := express.OpenPostgres(ctx, pool, randomName("express_none"), ""); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing table: %v", err)
	}
	cps := createExpressTable(t, pool, express.LayoutConnectPgSimple)
	if _, err := express.OpenPostgres(ctx, pool, cps, express.LayoutPrisma); err == nil || !strings.Contains(err.Error(), "createdAt") {
		t.Errorf("connect-pg-simple table as Prisma: %v", err)
	}
}

func TestConfig(t *testing.T) {
	env := func(kv ...string) func(string) (string, bool) {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	c, err := session.ConfigFromEnv(env("SESSION_TABLE_LAYOUT", "prisma", "SESSION_COOKIE_NAME", "app.sid",
		"SESSION_SECRET", "short", "SESSION_SECRET_PREVIOUS", "old,older"))
	if err != nil {
		t.Fatal(err)
	}
	if c.TableLayout != "prisma" || c.CookieName != "app.sid" || c.Table != "session" || c.RedisPrefix != "sess:" ||
		strings.Join(express.Secrets(c), ",") != "short,old,older" {
		t.Errorf("config = %v, secrets %d", c, len(express.Secrets(c)))
	}
	for _, bad := range [][]string{
		{"SESSION_TABLE_LAYOUT", "sequelize"},
		{"SESSION_COOKIE_NAME", "a b"},
		{"SESSION_TABLE_LAYOUT", "prisma", "SESSION_BACKEND", "tiered", "REDIS_URL", "redis://x", "DATABASE_URL", "postgres://x/y"},
		{"SESSION_SECRET", "s", "SESSION_SECRET_PREVIOUS", "short"}, // outside the express mode, 32 bytes still
	} {
		if _, err := session.ConfigFromEnv(env(bad...)); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// jsonData lets the conformance suite, which stores arbitrary bytes, run
// on a table whose sess column holds JSON: Data travels as base64 in a
// one-key object written as jsonb prints it, so that the text read back is
// the text written in both layouts. Every ability is forwarded.
type jsonData struct{ s *express.PostgresStore }

func toJSON(b []byte) []byte {
	if b == nil {
		return nil
	}
	return []byte(`{"d": "` + base64.StdEncoding.EncodeToString(b) + `"}`)
}

func fromJSON(rec session.Record, err error) (session.Record, error) {
	if err != nil {
		return rec, err
	}
	var v struct{ D []byte }
	if err := json.Unmarshal(rec.Data, &v); err != nil {
		return session.Record{}, err
	}
	if v.D == nil {
		v.D = []byte{}
	}
	rec.Data = v.D
	return rec, nil
}

func (j jsonData) Get(ctx context.Context, id string) (session.Record, error) {
	return fromJSON(j.s.Get(ctx, id))
}
func (j jsonData) Set(ctx context.Context, id string, rec session.Record) error {
	rec.Data = toJSON(append([]byte{}, rec.Data...))
	return j.s.Set(ctx, id, rec)
}
func (j jsonData) CompareAndSet(ctx context.Context, id string, old []byte, rec session.Record) error {
	rec.Data = toJSON(append([]byte{}, rec.Data...))
	return j.s.CompareAndSet(ctx, id, toJSON(old), rec)
}
func (j jsonData) Destroy(ctx context.Context, id string) error { return j.s.Destroy(ctx, id) }
func (j jsonData) Touch(ctx context.Context, id string, exp time.Time) error {
	return j.s.Touch(ctx, id, exp)
}
func (j jsonData) Count(ctx context.Context) (int64, error)         { return j.s.Count(ctx) }
func (j jsonData) DeleteExpired(ctx context.Context) (int64, error) { return j.s.DeleteExpired(ctx) }
func (j jsonData) Ping(ctx context.Context) error                   { return j.s.Ping(ctx) }
func (j jsonData) Close() error                                     { return j.s.Close() }

// TestHealthNames: a health report names the express stores as it names
// package session's, by their String: the backend and its address.
func TestHealthNames(t *testing.T) {
	rs := newExpressRedisStore(t)
	pool := expressPool(t)
	ps, err := express.OpenPostgres(t.Context(), pool, createExpressTable(t, pool, express.LayoutConnectPgSimple), "")
	if err != nil {
		t.Fatal(err)
	}
	for want, store := range map[string]session.Store{"redis": rs, "postgres": ps} {
		rep := health.Check(t.Context(), store, health.Options{})
		if len(rep.Backends) != 1 || rep.Backends[0].Name != want || rep.Backends[0].Addr == "" || rep.Status != health.OK {
			t.Errorf("%T: health %+v, want one %s backend with its address, up", store, rep, want)
		}
	}
}
