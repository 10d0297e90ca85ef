package session_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/session"
)

// The hardening suite: the guarantees that broke when requests raced each
// other (a renew against a logout, a client that went away, five requests
// popping one nonce) and the rules for user ids. hardeningSuite runs on a
// store made by newStore; TestHardening runs it on each built-in backend,
// and TestComposed on every store session.Open can return.

func TestHardening(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { hardeningSuite(t, b.new) })
	}
}

func hardeningSuite(t *testing.T, newStore func(t testing.TB) session.Store) {
	store := newStore(t)
	_, cas := store.(session.CompareAndSetter)
	_, users := store.(session.UserIndex)
	if cas {
		t.Run("RenewRacingLogout", func(t *testing.T) { testRenewRacingEnd(t, store, "renew", "logout") })
		t.Run("SetUserRacingLogout", func(t *testing.T) { testRenewRacingEnd(t, store, "setuser", "logout") })
		if users {
			t.Run("RenewRacingRevocation", func(t *testing.T) { testRenewRacingEnd(t, store, "renew", "revoke") })
			t.Run("SetUserRacingRevocation", func(t *testing.T) { testRenewRacingEnd(t, store, "setuser", "revoke") })
		}
		t.Run("RenewRacingWrite", func(t *testing.T) { testRenewRacingWrite(t, store) })
		t.Run("PopIsExactlyOnce", func(t *testing.T) { testPopExactlyOnce(t, store) })
	}
	t.Run("LogoutSurvivesCancelledContext", func(t *testing.T) { testCancelledEnd(t, store, "logout") })
	t.Run("RenewSurvivesCancelledContext", func(t *testing.T) { testCancelledEnd(t, store, "renew") })
	t.Run("LogoutSurvivesTimeoutHandler", func(t *testing.T) { testCancelledEnd(t, store, "timeout") })
	if users {
		t.Run("RevocationSurvivesCancelledContext", func(t *testing.T) { testCancelledEnd(t, store, "revoke") })
		t.Run("UserIDRule", func(t *testing.T) { testUserIDRule(t, store) })
	}
}

// hardApp serves the routes the hardening tests share on store.
type hardApp struct {
	t   *testing.T
	m   *session.Manager
	srv *httptest.Server
	mux *http.ServeMux
}

func newHardApp(t *testing.T, store session.Store, opts session.Options) *hardApp {
	t.Helper()
	if opts.Keys == nil {
		opts.Keys = []session.KeyPair{testKey}
	}
	opts.Logger = discardLogger()
	_, cas := store.(session.CompareAndSetter)
	opts.AllowLastWriterWins = !cas
	m, err := session.New(store, opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(m.Handler(mux))
	t.Cleanup(srv.Close)
	a := &hardApp{t: t, m: m, srv: srv, mux: mux}
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		if err := s.SetUser(r.URL.Query().Get("user")); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		s.Put("user", r.URL.Query().Get("user"))
	})
	mux.HandleFunc("POST /put", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		session.From(r).Put(q.Get("k"), q.Get("v"))
	})
	mux.HandleFunc("GET /me", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		fmt.Fprintf(w, "%s|%s", s.UserID(), s.GetString("user"))
	})
	mux.HandleFunc("GET /id", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, session.From(r).ID())
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Destroy()
	})
	return a
}

// call sends a request carrying cookie (a session cookie value, or "")
// and returns the response, its body, and the session cookie it set ("" if
// none; "-" if it expired the cookie).
func (a *hardApp) call(method, path, cookie string) (*http.Response, string, string) {
	a.t.Helper()
	req, _ := http.NewRequest(method, a.srv.URL+path, nil)
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: "session", Value: cookie})
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	set := ""
	for _, c := range resp.Cookies() {
		if c.Name == "session" {
			set = c.Value
			if c.MaxAge < 0 {
				set = "-"
			}
		}
	}
	return resp, string(body), set
}

// login returns the cookie of a new session bound to user.
func (a *hardApp) login(user string) string {
	a.t.Helper()
	resp, body, c := a.call("POST", "/login?user="+user, "")
	if resp.StatusCode != 200 || c == "" || c == "-" {
		a.t.Fatalf("login: %d %q cookie %q", resp.StatusCode, body, c)
	}
	return c
}

func (a *hardApp) id(cookie string) string {
	_, body, _ := a.call("GET", "/id", cookie)
	return body
}

// testRenewRacingEnd: request A renews (Renew, or SetUser to another
// user) and is held before it commits; meanwhile the session is ended
// (logout with the same cookie, or its user's sessions revoked). When A
// finishes, no cookie it sent may lead to a live session, and nothing of
// the old session may be left in the store.
func testRenewRacingEnd(t *testing.T, store session.Store, renew, end string) {
	a := newHardApp(t, store, session.Options{})
	user := randomName("u")
	loaded, release := make(chan struct{}), make(chan struct{})
	var newID atomic.Value
	a.mux.HandleFunc("POST /slowrenew", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		s.GetString("user")
		var err error
		if renew == "renew" {
			err = s.Renew()
		} else {
			err = s.SetUser(user + "-admin")
		}
		if err != nil {
			http.Error(w, err.Error(), 500)
		}
		newID.Store(s.ID())
		close(loaded)
		<-release // a slow request body, held by an attacker
	})
	cookie := a.login(user)
	oldID := a.id(cookie)
	type result struct {
		resp   *http.Response
		cookie string
	}
	done := make(chan result, 1)
	go func() {
		resp, _, c := a.call("POST", "/slowrenew", cookie)
		done <- result{resp, c}
	}()
	<-loaded
	switch end {
	case "logout":
		if resp, _, c := a.call("POST", "/logout", cookie); resp.StatusCode != 200 || c != "-" {
			t.Fatalf("logout: %d, cookie %q", resp.StatusCode, c)
		}
	case "revoke":
		if n, err := a.m.RevokeUser(t.Context(), user); err != nil || n != 1 {
			t.Fatalf("RevokeUser = %d, %v; want 1", n, err)
		}
	}
	close(release)
	res := <-done
	if res.resp.StatusCode != 200 {
		t.Fatalf("the renewing request answered %d", res.resp.StatusCode)
	}
	for _, id := range []string{oldID, newID.Load().(string)} {
		if _, err := store.Get(t.Context(), id); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("after the %s, the store still holds a session it ended (%v)", end, err)
		}
	}
	for _, c := range []string{res.cookie, cookie} {
		if c == "" || c == "-" {
			continue
		}
		if _, body, _ := a.call("GET", "/me", c); body != "|" {
			t.Errorf("after the %s, a cookie from the racing %s still opens the session: %q", end, renew, body)
		}
	}
}

// testRenewRacingWrite: a renew racing a request that only writes keeps
// both: the renewed session carries the other request's value, and the old
// id is gone.
func testRenewRacingWrite(t *testing.T, store session.Store) {
	a := newHardApp(t, store, session.Options{})
	loaded, release := make(chan struct{}), make(chan struct{})
	a.mux.HandleFunc("POST /slowrenew", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		s.GetString("user")
		s.Renew()
		close(loaded)
		<-release
	})
	cookie := a.login(randomName("u"))
	oldID := a.id(cookie)
	done := make(chan string, 1)
	go func() { _, _, c := a.call("POST", "/slowrenew", cookie); done <- c }()
	<-loaded
	a.call("POST", "/put?k=cart&v=3", cookie)
	close(release)
	renewed := <-done
	if renewed == "" || renewed == "-" {
		t.Fatalf("renew sent cookie %q", renewed)
	}
	if _, err := store.Get(t.Context(), oldID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("old id still live after renew: %v", err)
	}
	a.mux.HandleFunc("GET /cart", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, session.From(r).GetString("cart"))
	})
	if _, body, _ := a.call("GET", "/cart", renewed); body != "3" {
		t.Fatalf("the renewed session lost a concurrent write: cart = %q", body)
	}
}

// testPopExactlyOnce: a one-time value (an OAuth state, a CSRF nonce)
// popped by many requests at once is handed to exactly one of them.
func testPopExactlyOnce(t *testing.T, store session.Store) {
	a := newHardApp(t, store, session.Options{})
	const n = 8
	var loaded sync.WaitGroup
	var gate atomic.Value // chan struct{}, one per round
	a.mux.HandleFunc("POST /take", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		s.Has("state") // every request has read the value...
		loaded.Done()
		<-gate.Load().(chan struct{})         // ...before any takes it
		s.Put("seen", r.URL.Query().Get("i")) // another change in the same request
		io.WriteString(w, s.PopString("state"))
	})
	for round := range 5 {
		cookie := a.login(randomName("u"))
		a.call("POST", "/put?k=state&v=nonce", cookie)
		var got atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		loaded.Add(n)
		g := make(chan struct{})
		gate.Store(g)
		go func() { loaded.Wait(); close(g) }()
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				resp, body, _ := a.call("POST", fmt.Sprintf("/take?i=%d", i), cookie)
				if resp.StatusCode != 200 {
					t.Errorf("take answered %d", resp.StatusCode)
				}
				if body == "nonce" {
					got.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		if g := got.Load(); g != 1 {
			t.Fatalf("round %d: %d of %d concurrent Pops received the one-time value, want exactly 1", round, g, n)
		}
		if _, body, _ := a.call("GET", "/me", cookie); !strings.HasPrefix(body, "u") {
			t.Fatalf("the session was lost by the takes: %q", body)
		}
	}
	// A value put by the request itself is popped without a store write.
	a.mux.HandleFunc("POST /putpop", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		s.Put("flash", "hi")
		io.WriteString(w, s.PopString("flash"))
	})
	if _, body, _ := a.call("POST", "/putpop", ""); body != "hi" {
		t.Fatalf("pop of a value put by the same request = %q", body)
	}
}

// testCancelledEnd: the request's context ends (the client disconnects,
// http.TimeoutHandler fires) after the handler asked for a logout, a renew
// or a revocation; what it asked for still reaches the store.
func testCancelledEnd(t *testing.T, store session.Store, what string) {
	a := newHardApp(t, store, session.Options{})
	user := randomName("u")
	cookie := a.login(user)
	oldID := a.id(cookie)
	var handler http.Handler = a.m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		s.GetString("user")
		switch what {
		case "logout":
			s.Destroy()
		case "renew":
			s.Renew()
		case "timeout":
			s.Destroy()
			<-r.Context().Done() // the timeout handler has given up
		case "revoke":
			cancel := r.Context().Value(cancelKey{}).(context.CancelFunc)
			cancel()
			if n, err := a.m.RevokeUser(r.Context(), user); err != nil || n != 1 {
				t.Errorf("RevokeUser on a cancelled context = %d, %v; want 1", n, err)
			}
			return
		}
		if cancel, ok := r.Context().Value(cancelKey{}).(context.CancelFunc); ok {
			cancel() // the client went away before the commit
		}
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	finished := make(chan struct{})
	if what != "timeout" {
		ctx = context.WithValue(ctx, cancelKey{}, cancel)
		close(finished)
	} else {
		managed := handler
		handler = http.TimeoutHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer close(finished)
			managed.ServeHTTP(w, r)
		}), 50*time.Millisecond, "timeout")
	}
	req := httptest.NewRequestWithContext(ctx, "POST", "/", nil)
	req.AddCookie(&http.Cookie{Name: "session", Value: cookie})
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	<-finished // the handler (and its commit) ran to the end
	if _, err := store.Get(t.Context(), oldID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("%s asked for, then the context ended: the session is still live (%v)", what, err)
	}
	if _, body, _ := a.call("GET", "/me", cookie); body != "|" {
		t.Fatalf("the old cookie still opens the session: %q", body)
	}
}

type cancelKey struct{}

// testUserIDRule: user ids that a codec would rewrite or a backend refuse
// are rejected by SetUser (and by the Manager's user methods) on every
// backend alike; every id the rule accepts binds, lists and revokes.
func testUserIDRule(t *testing.T, store session.Store) {
	a := newHardApp(t, store, session.Options{})
	a.mux.HandleFunc("POST /bindraw", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := session.From(r).SetUser(string(b)); err != nil {
			if !errors.Is(err, session.ErrInvalidUserID) {
				t.Errorf("SetUser(%q): %v, want ErrInvalidUserID", b, err)
			}
			w.WriteHeader(400)
		}
	})
	bind := func(id string) (int, string) {
		req, _ := http.NewRequest("POST", a.srv.URL+"/bindraw", strings.NewReader(id))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, c := range resp.Cookies() {
			if c.Name == "session" {
				return resp.StatusCode, c.Value
			}
		}
		return resp.StatusCode, ""
	}
	for _, bad := range []string{"\xff\xfe", "a\x00b", "tab\there", "line\nbreak", "c1\u0085", strings.Repeat("a", session.MaxUserIDLen+1), strings.Repeat("é", session.MaxUserIDLen/2) + "x"} {
		if code, c := bind(bad); code != 400 || c != "" {
			t.Errorf("SetUser(%q) answered %d with cookie %q; want 400 and no session", bad, code, c)
		}
		if _, err := a.m.UserSessions(t.Context(), bad); !errors.Is(err, session.ErrInvalidUserID) {
			t.Errorf("UserSessions(%q): %v, want ErrInvalidUserID", bad, err)
		}
		if _, err := a.m.RevokeUser(t.Context(), bad); !errors.Is(err, session.ErrInvalidUserID) {
			t.Errorf("RevokeUser(%q): %v, want ErrInvalidUserID", bad, err)
		}
	}
	suffix := randomName("")
	for _, good := range []string{"ünïcødé@example.com" + suffix, "with space " + suffix, "{braces}" + suffix, suffix + strings.Repeat("z", session.MaxUserIDLen-len(suffix))} {
		code, c := bind(good)
		if code != 200 || c == "" {
			t.Errorf("SetUser(%q) answered %d, cookie %q", good, code, c)
			continue
		}
		list, err := a.m.UserSessions(t.Context(), good)
		if err != nil || len(list) != 1 {
			t.Errorf("UserSessions(%q) = %d sessions, %v; want 1", good, len(list), err)
		}
		if n, err := a.m.RevokeUser(t.Context(), good); err != nil || n != 1 {
			t.Errorf("RevokeUser(%q) = %d, %v; want 1", good, n, err)
		}
		req, _ := http.NewRequest("GET", a.srv.URL+"/me", nil)
		req.AddCookie(&http.Cookie{Name: "session", Value: c})
		resp, _ := http.DefaultClient.Do(req)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "|" {
			t.Errorf("revoked %q still answers %q", good, body)
		}
	}
}
