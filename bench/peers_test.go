package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/goredisstore"
	"github.com/alexedwards/scs/pgxstore"
	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	"github.com/boj/redistore"
	"github.com/gorilla/sessions"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"
)

// Production-like settings shared by every contender.
const (
	idleTimeout = 30 * time.Minute
	lifetime    = 24 * time.Hour
)

// hashKey signs cookies (HMAC-SHA256) for every contender that signs.
var hashKey = []byte("0123456789abcdef0123456789abcdef")

// writeCounter writes "<uid>:<n>", the body of /write.
func writeCounter(w http.ResponseWriter, uid string, n int) {
	var buf [64]byte
	b := append(buf[:0], uid...)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(n), 10)
	w.Write(b)
}

// lastWrite remembers the sizes of the last record a store was asked to
// keep: the bytes one session costs in its store.
type lastWrite struct {
	mu  sync.Mutex
	key string
	val []byte
}

func (l *lastWrite) set(key string, val []byte) {
	l.mu.Lock()
	l.key, l.val = key, append(l.val[:0], val...)
	l.mu.Unlock()
}

func (l *lastWrite) get(testing.TB, string) (int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.val), len(l.key)
}

// value returns a copy of the last value written.
func (l *lastWrite) value() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.val...)
}

// ---------------------------------------------------------------- scs

// scsStore wraps an scs store to count its calls (memstore has no driver
// to hook) and to see the bytes it is asked to keep. It passes the context
// through when the wrapped store takes one.
type scsStore struct {
	s    scs.Store
	ctx  scs.CtxStore // nil unless s is one
	rt   *rtCounter   // nil: the driver counts
	last *lastWrite
	key  string // the key prefix the store adds
}

func (w *scsStore) count(write bool) {
	if w.rt != nil {
		w.rt.add(write)
	}
}

func (w *scsStore) Find(token string) ([]byte, bool, error) {
	w.count(false)
	return w.s.Find(token)
}

func (w *scsStore) Commit(token string, b []byte, expiry time.Time) error {
	w.count(true)
	w.last.set(w.key+token, b)
	return w.s.Commit(token, b, expiry)
}

func (w *scsStore) Delete(token string) error {
	w.count(true)
	return w.s.Delete(token)
}

func (w *scsStore) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	if w.ctx == nil {
		return w.Find(token)
	}
	w.count(false)
	return w.ctx.FindCtx(ctx, token)
}

func (w *scsStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	if w.ctx == nil {
		return w.Commit(token, b, expiry)
	}
	w.count(true)
	w.last.set(w.key+token, b)
	return w.ctx.CommitCtx(ctx, token, b, expiry)
}

func (w *scsStore) DeleteCtx(ctx context.Context, token string) error {
	if w.ctx == nil {
		return w.Delete(token)
	}
	w.count(true)
	return w.ctx.DeleteCtx(ctx, token)
}

func newSCS(lib string, store scs.Store, rt *rtCounter, countCalls bool, keyPfx string, idle bool) *contender {
	last := &lastWrite{}
	ws := &scsStore{s: store, last: last, key: keyPfx}
	if cs, ok := store.(scs.CtxStore); ok {
		ws.ctx = cs
	}
	if countCalls {
		ws.rt = rt
	}
	sm := scs.New()
	sm.Store = ws
	sm.Lifetime = lifetime
	if idle {
		sm.IdleTimeout = idleTimeout
	}
	sm.Cookie.Name = "session"
	sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		switch r.URL.Path {
		case "/login":
			if err := sm.RenewToken(ctx); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			sm.Put(ctx, "user_id", r.URL.Query().Get("uid"))
			sm.Put(ctx, "email", sessEmail)
			sm.Put(ctx, "roles", sessRoles)
			sm.Put(ctx, "csrf_token", sessCSRF)
			sm.Put(ctx, "flash", sessFlash)
			w.Write([]byte("ok"))
		case "/read":
			w.Write([]byte(sm.GetString(ctx, "user_id")))
		case "/write":
			uid := sm.GetString(ctx, "user_id")
			n := sm.GetInt(ctx, "counter") + 1
			sm.Put(ctx, "counter", n)
			writeCounter(w, uid, n)
		default:
			http.NotFound(w, r)
		}
	})
	return &contender{lib: lib, handler: sm.LoadAndSave(h), cookie: "session", rt: rt, stored: last.get, last: last}
}

func scsMemory(b *testing.B) []*contender {
	var out []*contender
	for _, idle := range []bool{true, false} {
		ms := memstore.New()
		b.Cleanup(ms.StopCleanup)
		rt := &rtCounter{}
		out = append(out, newSCS(scsName(idle), ms, rt, true, "", idle))
	}
	return out
}

func scsName(idle bool) string {
	if idle {
		return "scs-idle"
	}
	return "scs-noidle"
}

func scsRedis(b *testing.B) []*contender {
	var out []*contender
	for _, idle := range []bool{true, false} {
		rt := &rtCounter{}
		cl := newRedisClient(b, rt)
		pfx := keyPrefix + scsName(idle) + ":"
		out = append(out, newSCS(scsName(idle), goredisstore.NewWithPrefix(cl, pfx), rt, false, pfx, idle))
	}
	return out
}

// scsPgSchema holds scs's table: pgxstore hard-codes the name "sessions",
// so it gets a schema of its own (through search_path) to stay clear of
// everyone else's "sessions".
var scsPgSchema = pgSchema + "_scs"

func scsPostgres(b *testing.B) []*contender {
	setup := newPgPool(b, nil, "")
	for _, q := range []string{
		`CREATE SCHEMA IF NOT EXISTS ` + scsPgSchema,
		// pgxstore's documented schema.
		`CREATE TABLE IF NOT EXISTS ` + scsPgSchema + `.sessions (token TEXT PRIMARY KEY, data BYTEA NOT NULL, expiry TIMESTAMPTZ NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS sessions_expiry_idx ON ` + scsPgSchema + `.sessions (expiry)`,
	} {
		if _, err := setup.Exec(ctxBG, q); err != nil {
			b.Fatal(err)
		}
	}
	var out []*contender
	for _, idle := range []bool{true, false} {
		rt := &rtCounter{}
		pool := newPgPool(b, rt, scsPgSchema)
		st := pgxstore.NewWithCleanupInterval(pool, 0)
		out = append(out, newSCS(scsName(idle), st, rt, false, "", idle))
	}
	return out
}

// ------------------------------------------------------ gorilla/sessions

func newGorilla(lib string, store sessions.Store, rt *rtCounter, stored func(testing.TB, string) (int, int)) *contender {
	const name = "gsession"
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := store.Get(r, name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		switch r.URL.Path {
		case "/login":
			s.Values["user_id"] = r.URL.Query().Get("uid")
			s.Values["email"] = sessEmail
			s.Values["roles"] = sessRoles
			s.Values["csrf_token"] = sessCSRF
			s.Values["flash"] = sessFlash
			if err := s.Save(r, w); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Write([]byte("ok"))
		case "/read":
			uid, _ := s.Values["user_id"].(string)
			w.Write([]byte(uid))
		case "/write":
			uid, _ := s.Values["user_id"].(string)
			n, _ := s.Values["counter"].(int)
			n++
			s.Values["counter"] = n
			if err := s.Save(r, w); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			writeCounter(w, uid, n)
		default:
			http.NotFound(w, r)
		}
	})
	return &contender{lib: lib, handler: h, cookie: name, rt: rt, stored: stored}
}

func gorillaCookie() *contender {
	cs := sessions.NewCookieStore(hashKey)
	cs.MaxAge(int(lifetime / time.Second))
	// The whole session lives in the cookie: what it costs is the cookie.
	return newGorilla("gorilla-cookie", cs, nil, func(_ testing.TB, v string) (int, int) { return len(v), 0 })
}

func gorillaRedis(b *testing.B) *contender {
	rt := &rtCounter{}
	last := &lastWrite{}
	pool := newRedigoPool(b, rt, last)
	rs, err := redistore.NewRediStoreWithPool(pool, hashKey)
	if err != nil {
		b.Skipf("redistore: %v", err)
	}
	rs.SetKeyPrefix(keyPrefix + "gorilla:")
	rs.SetMaxAge(int(lifetime / time.Second))
	rt.reset()
	c := newGorilla("gorilla-redis", rs, rt, last.get)
	c.last = last
	return c
}

// -------------------------------------------------------------- floors

// The floor is what a request costs with no session library at all: the
// cookie carries a raw key (no signature), /read is exactly one lookup of
// the stored blob and /write one lookup plus one store. The blob holds the
// user id and counter as "<uid>:<n>".

type floorBackend interface {
	get(ctx context.Context, key string) (string, bool, error)
	set(ctx context.Context, key, val string) error
}

func newFloor(be floorBackend, rt *rtCounter, countCalls bool) *contender {
	const name = "sid"
	var cnt *rtCounter
	if countCalls {
		cnt = rt
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.URL.Path == "/login" {
			var raw [32]byte
			rand.Read(raw[:])
			key := base64.RawURLEncoding.EncodeToString(raw[:])
			if err := be.set(ctx, key, r.URL.Query().Get("uid")+":0"); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			http.SetCookie(w, &http.Cookie{Name: name, Value: key, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
			w.Write([]byte("ok"))
			return
		}
		c, err := r.Cookie(name)
		if err != nil {
			http.Error(w, "no cookie", http.StatusBadRequest)
			return
		}
		if cnt != nil {
			cnt.add(false)
		}
		v, ok, err := be.get(ctx, c.Value)
		if err != nil || !ok {
			http.Error(w, "no session", http.StatusInternalServerError)
			return
		}
		i := len(v) - 1
		for i >= 0 && v[i] != ':' {
			i--
		}
		uid := v[:max(i, 0)]
		switch r.URL.Path {
		case "/read":
			w.Write([]byte(uid))
		case "/write":
			n, _ := strconv.Atoi(v[i+1:])
			n++
			if cnt != nil {
				cnt.add(true)
			}
			var buf [64]byte
			nv := strconv.AppendInt(append(append(buf[:0], uid...), ':'), int64(n), 10)
			if err := be.set(ctx, c.Value, string(nv)); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			writeCounter(w, uid, n)
		default:
			http.NotFound(w, r)
		}
	})
	return &contender{lib: "floor", handler: h, cookie: name, rt: rt}
}

// mapFloor: one map read under a lock.
type mapFloor struct {
	mu sync.RWMutex
	m  map[string]string
}

func (f *mapFloor) get(_ context.Context, key string) (string, bool, error) {
	f.mu.RLock()
	v, ok := f.m[key]
	f.mu.RUnlock()
	return v, ok, nil
}

func (f *mapFloor) set(_ context.Context, key, val string) error {
	f.mu.Lock()
	f.m[key] = val
	f.mu.Unlock()
	return nil
}

// redisFloor: one raw GET (and one SET on /write).
type redisFloor struct {
	cl  *goredis.Client
	pfx string
}

func (f *redisFloor) get(ctx context.Context, key string) (string, bool, error) {
	v, err := f.cl.Get(ctx, f.pfx+key).Result()
	if errors.Is(err, goredis.Nil) {
		return "", false, nil
	}
	return v, err == nil, err
}

func (f *redisFloor) set(ctx context.Context, key, val string) error {
	return f.cl.Set(ctx, f.pfx+key, val, lifetime).Err()
}

// pgFloor: one SELECT by primary key (and one UPDATE on /write).
type pgFloor struct{ pool *pgxpool.Pool }

var pgFloorTable = pgSchema + ".floor"

func (f *pgFloor) get(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := f.pool.QueryRow(ctx, `SELECT data FROM `+pgFloorTable+` WHERE id = $1`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	return v, err == nil, err
}

func (f *pgFloor) set(ctx context.Context, key, val string) error {
	_, err := f.pool.Exec(ctx, `INSERT INTO `+pgFloorTable+` (id, data) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET data = excluded.data`, key, val)
	return err
}

func floorMemory() *contender {
	return newFloor(&mapFloor{m: map[string]string{}}, &rtCounter{}, true)
}

func floorRedis(b *testing.B) *contender {
	rt := &rtCounter{}
	return newFloor(&redisFloor{cl: newRedisClient(b, rt), pfx: keyPrefix + "floor:"}, rt, false)
}

func floorPostgres(b *testing.B) *contender {
	rt := &rtCounter{}
	pool := newPgPool(b, rt, "")
	if _, err := pool.Exec(ctxBG, `CREATE TABLE IF NOT EXISTS `+pgFloorTable+` (id text PRIMARY KEY, data text NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	rt.reset()
	return newFloor(&pgFloor{pool: pool}, rt, false)
}
