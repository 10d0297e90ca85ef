package bench

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/session"
)

// countingStore wraps one of our stores to count the middleware's store
// calls by kind, and to see the bytes it asks the store to keep. It passes
// CompareAndSet through, since the middleware saves with it when the store
// has it (all three built-in stores do).
type countingStore struct {
	s   session.Store
	cas session.CompareAndSetter
	rt  *rtCounter // nil when the driver counts round trips itself
	pfx string     // the key prefix the backend adds to an id

	gets, sets, touches, destroys, cases atomic.Int64
	last                                 *lastWrite
}

var (
	_ session.Store            = (*countingStore)(nil)
	_ session.CompareAndSetter = (*countingStore)(nil)
)

func (c *countingStore) count(write bool) {
	if c.rt != nil {
		c.rt.add(write)
	}
}

func (c *countingStore) Get(ctx context.Context, id string) (session.Record, error) {
	c.gets.Add(1)
	c.count(false)
	return c.s.Get(ctx, id)
}

func (c *countingStore) Set(ctx context.Context, id string, rec session.Record) error {
	c.sets.Add(1)
	c.count(true)
	c.last.set(c.pfx+id, rec.Data)
	return c.s.Set(ctx, id, rec)
}

func (c *countingStore) Destroy(ctx context.Context, id string) error {
	c.destroys.Add(1)
	c.count(true)
	return c.s.Destroy(ctx, id)
}

func (c *countingStore) Touch(ctx context.Context, id string, expires time.Time) error {
	c.touches.Add(1)
	c.count(true)
	return c.s.Touch(ctx, id, expires)
}

func (c *countingStore) CompareAndSet(ctx context.Context, id string, old []byte, rec session.Record) error {
	c.cases.Add(1)
	c.count(true)
	c.last.set(c.pfx+id, rec.Data)
	return c.cas.CompareAndSet(ctx, id, old, rec)
}

func (c *countingStore) reset() {
	c.gets.Store(0)
	c.sets.Store(0)
	c.touches.Store(0)
	c.destroys.Store(0)
	c.cases.Store(0)
}

func (c *countingStore) report(b *testing.B, n int) {
	f := func(v *atomic.Int64) float64 { return float64(v.Load()) / float64(n) }
	b.ReportMetric(f(&c.gets), "get/op")
	b.ReportMetric(f(&c.sets)+f(&c.cases), "set/op")
	b.ReportMetric(f(&c.touches), "touch/op")
}

// ours returns our middleware on backend in the production setting: idle
// timeout and absolute lifetime on, signed cookies, the default JSON codec
// and touch interval.
func ours(b *testing.B, backend string) *contender { return oursWith(b, backend, true) }

// oursWith is ours; without cas the store's CompareAndSet is hidden, so
// the middleware saves with a plain Set (last writer wins), the write path
// before concurrent writes were merged (issue 8's comparison).
func oursWith(b *testing.B, backend string, cas bool) *contender {
	var st session.Store
	var pfx string
	rt := &rtCounter{}
	countCalls := false
	switch backend {
	case "memory":
		ms := session.NewMemoryStore(session.MemoryOptions{})
		b.Cleanup(func() { ms.Close() })
		st, countCalls = ms, true
	case "redis":
		pfx = keyPrefix + "ours:"
		rs, err := session.NewRedisStore(newRedisClient(b, rt), session.RedisOptions{Prefix: pfx})
		if err != nil {
			b.Fatal(err)
		}
		st = rs
	case "postgres":
		table := pgSchema + ".ours"
		pool := newPgPool(b, rt, "")
		if err := session.Migrate(context.Background(), pool, table); err != nil {
			b.Fatal(err)
		}
		ps, err := session.NewPostgresStore(pool, session.PostgresOptions{Table: table, DisableCleanup: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ps.Close() })
		st = ps
		rt.reset()
	default:
		return nil
	}
	cs := &countingStore{s: st, last: &lastWrite{}, pfx: pfx}
	cs.cas, _ = st.(session.CompareAndSetter)
	var managed session.Store = cs
	lib := "ours"
	if !cas {
		managed, lib = setOnly{cs}, "ours-set"
	}
	if countCalls {
		cs.rt = rt
	}
	m, err := session.New(managed, session.Options{
		CookieName:  "session",
		IdleTimeout: idleTimeout,
		Lifetime:    lifetime,
		Keys:        []session.KeyPair{{Hash: hashKey}},
	})
	if err != nil {
		b.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		switch r.URL.Path {
		case "/login":
			if err := s.Renew(); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			for _, kv := range []struct {
				k string
				v any
			}{
				{"user_id", r.URL.Query().Get("uid")},
				{"email", sessEmail},
				{"roles", sessRoles},
				{"csrf_token", sessCSRF},
				{"flash", sessFlash},
			} {
				if err := s.Put(kv.k, kv.v); err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
			}
			w.Write([]byte("ok"))
		case "/read":
			w.Write([]byte(s.GetString("user_id")))
		case "/write":
			uid := s.GetString("user_id")
			n := s.GetInt("counter") + 1
			if err := s.Put("counter", n); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			writeCounter(w, uid, n)
		default:
			http.NotFound(w, r)
		}
	})
	return &contender{
		lib:     lib,
		handler: m.Handler(h),
		cookie:  "session",
		rt:      rt,
		extra:   cs.report,
		reset:   cs.reset,
		stored:  cs.last.get,
		last:    cs.last,
	}
}

// setOnly exposes only the four Store methods of the store it wraps.
type setOnly struct{ session.Store }
