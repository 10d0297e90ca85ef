package bench

import (
	"context"
	"net/http"
	"strconv"
	"syscall"
	"testing"

	"github.com/sessionkit/session"
)

// BenchmarkUserBinding measures what binding a session to a user (issue 7:
// Session.SetUser at login) costs a read-only request, against the same
// session unbound: bound=false (Renew at login), bound=true (SetUser),
// bound=meta (SetUser with every Options.Metadata field on). The setup is ours'
// (same options, stores and counting wrapper); only /login differs.
//
//	go test -run '^$' -bench '^BenchmarkUserBinding$' -benchtime 400ms -count 6 . | tee users.txt
//	go tool benchstat -col /bound users.txt
//
// On a shared machine compare cpu-ns/op (the process's CPU time per
// request) rather than sec/op.
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
			variants := []string{"false", "true", "meta"}
			cs := []*contender{usersContender(b, be, false, false), usersContender(b, be, true, false), usersContender(b, be, true, true)}
			for _, n := range clientCounts {
				b.Run("clients="+strconv.Itoa(n), func(b *testing.B) {
					for i, c := range cs {
						b.Run("bound="+variants[i], func(b *testing.B) {
							cpu := processCPU()
							run(b, c, wl, n)
							// CPU time of the whole process per request: on
							// a shared machine, steadier than wall time.
							b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
						})
					}
				})
			}
		})
	}
}

// usersContender is ours on backend, with /login binding the session to
// its user id when bound is set, and every Options.Metadata field on when
// meta is.
func usersContender(b *testing.B, backend string, bound, meta bool) *contender {
	name := "users_unbound"
	switch {
	case meta:
		name = "users_meta"
	case bound:
		name = "users_bound"
	}
	var md session.Metadata
	if meta {
		md = session.Metadata{LastSeen: true, UserAgent: true, ClientIP: true}
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
		ps, err := session.NewPostgresStore(pool, session.PostgresOptions{Table: table, DisableCleanup: true})
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
		Metadata:    md,
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

// processCPU is the process's user and system CPU time so far, in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
