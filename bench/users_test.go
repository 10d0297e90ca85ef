package bench

import (
	"context"
	"net/http"
	"strconv"
	"testing"

	"github.com/sessionkit/session"
)

// BenchmarkUserBinding measures what binding a session to a user (issue 7:
// Session.SetUser at login, with every Options.Metadata field on) costs a
// read-only request, against the same session unbound. The setup is ours'
// (same options, stores and counting wrapper); only /login differs.
//
//	go test -run '^$' -bench '^BenchmarkUserBinding$' -benchtime 400ms -count 6 . | tee users.txt
//	go tool benchstat -col /bound users.txt
//
// A bound read-only request is still one store read (get/op 1, set/op and
// touch/op 0): the payload carries the user id and metadata, and the
// refresh that moves the idle expiry and the last-seen time is one write
// per TouchInterval (a minute), as a Touch is for an unbound session. What
// remains is decoding a few more bytes of header fields.
func BenchmarkUserBinding(b *testing.B) {
	wl := &workloads[0] // read
	if wl.name != "read" {
		b.Fatalf("workloads[0] is %q, want read", wl.name)
	}
	for _, be := range backends {
		b.Run("backend="+be, func(b *testing.B) {
			cs := []*contender{usersContender(b, be, false), usersContender(b, be, true)}
			for _, n := range clientCounts {
				b.Run("clients="+strconv.Itoa(n), func(b *testing.B) {
					for i, c := range cs {
						b.Run("bound="+strconv.FormatBool(i == 1), func(b *testing.B) { run(b, c, wl, n) })
					}
				})
			}
		})
	}
}

// usersContender is ours on backend, with /login binding the session to
// its user id when bound is set.
func usersContender(b *testing.B, backend string, bound bool) *contender {
	name := "users_unbound"
	if bound {
		name = "users_bound"
	}
	var st session.Store
	rt := &rtCounter{}
	countCalls := false
	switch backend {
	case "memory":
		ms := session.NewMemoryStore(session.MemoryOptions{})
		b.Cleanup(func() { ms.Close() })
		st, countCalls = ms, true
	case "redis":
		rs, err := session.NewRedisStore(newRedisClient(b, rt), session.RedisOptions{Prefix: keyPrefix + name + ":"})
		if err != nil {
			b.Fatal(err)
		}
		st = rs
	case "postgres":
		table := pgSchema + "." + name
		pool := newPgPool(b, rt, "")
		if err := session.Migrate(context.Background(), pool, table); err != nil {
			b.Fatal(err)
		}
		ps, err := session.NewPostgresStore(pool, session.PostgresOptions{Table: table, CleanupInterval: -1})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ps.Close() })
		st = ps
		rt.reset()
	default:
		b.Fatalf("unknown backend %q", backend)
	}
	cs := &countingStore{s: st, last: &lastWrite{}}
	cs.cas, _ = st.(session.CompareAndSetter)
	if countCalls {
		cs.rt = rt
	}
	m, err := session.New(cs, session.Options{
		CookieName:  "session",
		IdleTimeout: idleTimeout,
		Lifetime:    lifetime,
		Keys:        []session.KeyPair{{Hash: hashKey}},
		Metadata:    session.Metadata{LastSeen: true, UserAgent: true, ClientIP: true},
	})
	if err != nil {
		b.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		switch r.URL.Path {
		case "/login":
			uid := r.URL.Query().Get("uid")
			var err error
			if bound {
				err = s.SetUser(uid) // renews, as Renew does
			} else {
				err = s.Renew()
			}
			for _, kv := range []struct {
				k string
				v any
			}{
				{"user_id", uid},
				{"email", sessEmail},
				{"roles", sessRoles},
				{"csrf_token", sessCSRF},
				{"flash", sessFlash},
			} {
				if err == nil {
					err = s.Put(kv.k, kv.v)
				}
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Write([]byte("ok"))
		case "/read":
			w.Write([]byte(s.GetString("user_id")))
		default:
			http.NotFound(w, r)
		}
	})
	return &contender{
		lib:     "ours",
		handler: m.Handler(h),
		cookie:  "session",
		rt:      rt,
		extra:   cs.report,
		reset:   cs.reset,
		stored:  cs.last.get,
		last:    cs.last,
	}
}
