package session_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/session"
)

// Helpers of the security operations tests (issue 16): lifecycle events,
// the per-user session limit and RevokeAll. Each secApp is one "process":
// a Manager of its own (its own epoch cache, event queue and limit) on a
// store several of them may share. Requests are served in process, with
// the cookie passed by hand, so that one client's cookie can be presented
// to any process.

// secApp is one process serving the security operations routes.
type secApp struct {
	t testing.TB
	m *session.Manager
	h http.Handler
}

func newSecApp(t testing.TB, store session.Store, opts session.Options) *secApp {
	t.Helper()
	if opts.Keys == nil {
		opts.Keys = []session.KeyPair{testKey}
	}
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	m, err := session.New(store, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if err := session.From(r).SetUser(r.URL.Query().Get("user")); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
		}
	})
	mux.HandleFunc("POST /put", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if err := session.From(r).Put(q.Get("k"), q.Get("v")); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, session.From(r).GetString(r.URL.Query().Get("k")))
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, session.From(r).UserID())
	})
	mux.HandleFunc("GET /id", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, session.From(r).ID())
	})
	mux.HandleFunc("POST /renew", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Renew()
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Destroy()
	})
	mux.HandleFunc("POST /revoke-user", func(w http.ResponseWriter, r *http.Request) {
		if _, err := m.RevokeUser(r.Context(), r.URL.Query().Get("user")); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("POST /revoke-others", func(w http.ResponseWriter, r *http.Request) {
		if _, err := m.RevokeOtherSessions(r.Context(), session.From(r).UserID()); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("POST /revoke-all", func(w http.ResponseWriter, r *http.Request) {
		if err := m.RevokeAll(r.Context()); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	return &secApp{t: t, m: m, h: m.Handler(mux)}
}

// serve sends one request carrying cookie (the session cookie's value,
// "" for none) and returns the status, the body and the session cookie
// the response sets ("" when it sets none; the old value when the
// response keeps it).
func (a *secApp) serve(method, path, cookie string) (code int, body, newCookie string) {
	req := httptest.NewRequest(method, path, nil)
	req.Header.Set("User-Agent", "secops-test/1.0")
	req.RemoteAddr = "203.0.113.7:4242"
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: "session", Value: cookie})
	}
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	newCookie = cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == "session" {
			newCookie = c.Value
			if c.MaxAge < 0 {
				newCookie = ""
			}
		}
	}
	return rec.Code, rec.Body.String(), newCookie
}

// login binds a new session to user and returns its cookie.
func (a *secApp) login(user string) string {
	a.t.Helper()
	code, body, c := a.serve("POST", "/login?user="+user, "")
	if code != 200 || c == "" {
		a.t.Fatalf("login %s: %d %q, cookie %q", user, code, body, c)
	}
	return c
}

// put stores k=v in the session of cookie ("" for a new one) and returns
// the cookie.
func (a *secApp) put(cookie, k, v string) string {
	a.t.Helper()
	code, body, c := a.serve("POST", "/put?k="+k+"&v="+v, cookie)
	if code != 200 || c == "" {
		a.t.Fatalf("put: %d %q", code, body)
	}
	return c
}

// get reads k in the session of cookie.
func (a *secApp) get(cookie, k string) string {
	a.t.Helper()
	code, body, _ := a.serve("GET", "/get?k="+k, cookie)
	if code != 200 {
		a.t.Fatalf("get: %d %q", code, body)
	}
	return body
}

// whoami returns the user the session of cookie is bound to.
func (a *secApp) whoami(cookie string) string {
	a.t.Helper()
	code, body, _ := a.serve("GET", "/whoami", cookie)
	if code != 200 {
		a.t.Fatalf("whoami: %d %q", code, body)
	}
	return body
}

// storeID returns the store id of the session cookie carries.
func (a *secApp) storeID(cookie string) string {
	a.t.Helper()
	_, body, _ := a.serve("GET", "/id", cookie)
	return body
}

// epochStores lists the stores RevokeAll must work on: each built-in
// backend directly, and what Open returns in each mode over them.
func epochStores() []composedStore {
	out := []composedStore{}
	for _, b := range backends() {
		out = append(out, composedStore{"direct/" + b.name, func(t testing.TB, quiet bool) session.Store { return b.new(t) }})
	}
	for _, c := range composedStores() {
		if !strings.HasPrefix(c.name, "plain/") {
			out = append(out, c)
		}
	}
	return out
}

// within polls cond every 10ms for up to d, and reports how long it took
// to hold, or fails t.
func within(t testing.TB, what string, d time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not after %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func bg() context.Context { return context.Background() }
