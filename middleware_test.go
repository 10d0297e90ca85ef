package session_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/session"
)

// routes registers the handlers the middleware tests share.
func routes(a *app) {
	a.mux.HandleFunc("GET /noop", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "no session used")
	})
	a.mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, session.From(r).GetString(r.URL.Query().Get("k")))
	})
	a.mux.HandleFunc("POST /put", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if err := session.From(r).Put(q.Get("k"), q.Get("v")); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	a.mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		if err := s.Renew(); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		s.Put("user", r.URL.Query().Get("user"))
	})
	a.mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Destroy()
	})
	a.mux.HandleFunc("GET /id", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, session.From(r).ID())
	})
}

func TestMiddleware(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { middlewareSuite(t, b.new) })
	}
}

// middlewareSuite runs the middleware tests against one store made by
// newStore, as subtests of t. TestMiddleware runs it on each built-in
// backend; the engine tests (engines_test.go) run it through a Redis
// Cluster, a Sentinel failover client and PgBouncer.
func middlewareSuite(t *testing.T, newStore func(t testing.TB) session.Store) {
	store := newStore(t)
	t.Run("UntouchedSessionCostsNothing", func(t *testing.T) { testUntouched(t, store) })
	t.Run("ReadOnlyRequestIsOneRead", func(t *testing.T) { testReadOnly(t, store) })
	t.Run("ChangeIsOneWrite", func(t *testing.T) { testOneWrite(t, store) })
	t.Run("TouchAfterInterval", func(t *testing.T) { testTouch(t, store) })
	t.Run("IdleTimeout", func(t *testing.T) { testIdleTimeout(t, store) })
	t.Run("AbsoluteLifetime", func(t *testing.T) { testLifetime(t, store) })
	t.Run("StrictIDs", func(t *testing.T) { testStrictIDs(t, store) })
	t.Run("RenewAndDestroy", func(t *testing.T) { testRenewDestroy(t, store) })
	t.Run("LogoutDuringInFlightRequest", func(t *testing.T) { testLogoutInFlight(t, store) })
	t.Run("ConcurrentReadAndWrite", func(t *testing.T) { testReadWrite(t, store) })
	t.Run("ConcurrentWritesMerge", func(t *testing.T) { testMerge(t, store) })
	t.Run("DistinctKeysNeverLoseIncrements", func(t *testing.T) { testCounters(t, store) })
	t.Run("DestroyRacingWithWrites", func(t *testing.T) { testDestroyRace(t, store) })
	t.Run("BadPayloadIsFreshSession", func(t *testing.T) { testBadPayload(t, store) })
	t.Run("RememberMe", func(t *testing.T) { testRememberMe(t, store) })
}

func testUntouched(t *testing.T, store session.Store) {
	a := newApp(t, store, session.Options{})
	routes(a)
	resp, _ := a.do("GET", "/noop")
	if n := a.store.gets.Load() + a.store.writes() + a.store.touches.Load(); n != 0 {
		t.Fatalf("a handler that never used the session made %d store calls", n)
	}
	if c := setCookies(resp, "session"); len(c) != 0 {
		t.Fatalf("untouched session set a cookie: %v", c)
	}
	// Reading a session that does not exist yet writes nothing either.
	resp, _ = a.do("GET", "/get?k=x")
	if a.store.writes() != 0 || len(setCookies(resp, "session")) != 0 {
		t.Fatalf("a session never written was stored (%d writes) or got a cookie", a.store.writes())
	}
	if a.store.gets.Load() != 0 {
		t.Fatalf("a request without a cookie read the store %d times", a.store.gets.Load())
	}
}

func testReadOnly(t *testing.T, store session.Store) {
	a := newApp(t, store, session.Options{TouchInterval: time.Hour})
	routes(a)
	a.do("POST", "/put?k=user&v=ada")
	a.store.reset()
	for i := 0; i < 5; i++ {
		resp, body := a.do("GET", "/get?k=user")
		if body != "ada" {
			t.Fatalf("read %q, want ada", body)
		}
		if c := setCookies(resp, "session"); len(c) != 0 {
			t.Fatalf("read-only request sent Set-Cookie: %v", c)
		}
	}
	if g, w, tc := a.store.gets.Load(), a.store.writes(), a.store.touches.Load(); g != 5 || w != 0 || tc != 0 {
		t.Fatalf("5 read-only requests made %d reads, %d writes, %d touches; want 5, 0, 0", g, w, tc)
	}
}

func testOneWrite(t *testing.T, store session.Store) {
	a := newApp(t, store, session.Options{})
	routes(a)
	resp, _ := a.do("POST", "/put?k=a&v=1")
	if a.store.gets.Load() != 0 || a.store.writes() != 1 {
		t.Fatalf("first write: %d reads, %d writes; want 0, 1", a.store.gets.Load(), a.store.writes())
	}
	c := setCookies(resp, "session")
	if len(c) != 1 {
		t.Fatalf("want one Set-Cookie, got %v", c)
	}
	for _, attr := range []string{"HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="} {
		if !strings.Contains(c[0], attr) {
			t.Errorf("cookie %q lacks %s", c[0], attr)
		}
	}
	if strings.Contains(c[0], "Secure") {
		t.Errorf("cookie on plain HTTP is Secure: %q", c[0])
	}
	if resp.Header.Get("Cache-Control") != "no-store" || !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Cookie") {
		t.Errorf("response setting a cookie has Cache-Control %q, Vary %q", resp.Header.Get("Cache-Control"), resp.Header.Values("Vary"))
	}
	a.store.reset()
	a.do("POST", "/put?k=b&v=2")
	if a.store.gets.Load() != 1 || a.store.writes() != 1 {
		t.Fatalf("change: %d reads, %d writes; want 1, 1", a.store.gets.Load(), a.store.writes())
	}
	if _, body := a.do("GET", "/get?k=a"); body != "1" {
		t.Fatalf("a = %q after writing b, want 1", body)
	}
}

func testTouch(t *testing.T, store session.Store) {
	a := newApp(t, store, session.Options{IdleTimeout: time.Hour, TouchInterval: 300 * time.Millisecond})
	routes(a)
	a.do("POST", "/put?k=user&v=ada")
	a.store.reset()
	resp, _ := a.do("GET", "/get?k=user")
	if a.store.touches.Load() != 0 || len(setCookies(resp, "session")) != 0 {
		t.Fatal("touched before the interval passed")
	}
	time.Sleep(400 * time.Millisecond)
	resp, body := a.do("GET", "/get?k=user")
	if body != "ada" {
		t.Fatalf("read %q", body)
	}
	if a.store.touches.Load() != 1 || a.store.writes() != 0 {
		t.Fatalf("after the interval: %d touches, %d writes; want 1, 0", a.store.touches.Load(), a.store.writes())
	}
	if len(setCookies(resp, "session")) != 1 {
		t.Fatal("persistent cookie not re-sent with its new expiry after a touch")
	}
	a.store.reset()
	a.do("GET", "/get?k=user")
	if a.store.touches.Load() != 0 {
		t.Fatal("touched again right after a touch")
	}
}

func testIdleTimeout(t *testing.T, store session.Store) {
	a := newApp(t, store, session.Options{IdleTimeout: 500 * time.Millisecond, TouchInterval: 50 * time.Millisecond})
	routes(a)
	a.do("POST", "/put?k=user&v=ada")
	// Activity keeps it alive past the idle timeout...
	for i := 0; i < 6; i++ {
		time.Sleep(150 * time.Millisecond)
		if _, body := a.do("GET", "/get?k=user"); body != "ada" {
			t.Fatalf("active session lost after %d requests", i)
		}
	}
	// ...and idleness ends it, on the server, whatever the cookie says.
	time.Sleep(700 * time.Millisecond)
	if _, body := a.do("GET", "/get?k=user"); body != "" {
		t.Fatalf("idle session still served %q", body)
	}
}

func testLifetime(t *testing.T, store session.Store) {
	a := newApp(t, store, session.Options{IdleTimeout: time.Hour, Lifetime: 700 * time.Millisecond, TouchInterval: 10 * time.Millisecond})
	routes(a)
	a.do("POST", "/put?k=user&v=ada")
	deadline := time.Now().Add(700 * time.Millisecond)
	for time.Now().Before(deadline.Add(-200 * time.Millisecond)) {
		if _, body := a.do("GET", "/get?k=user"); body != "ada" {
			t.Fatal("session lost before its lifetime")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Until(deadline) + 200*time.Millisecond)
	if _, body := a.do("GET", "/get?k=user"); body != "" {
		t.Fatalf("session served %q past its absolute lifetime despite activity", body)
	}
}

func testStrictIDs(t *testing.T, store session.Store) {
	a := newApp(t, store, session.Options{})
	routes(a)
	// A validly signed cookie for an id the store does not know gets a
	// new id, never the one the client offered.
	codec, _ := session.NewSecureCookieCodec(testKey)
	chosen, _ := codec.Encode("session", "attacker-chosen-token")
	req, _ := http.NewRequest("POST", a.srv.URL+"/put?k=x&v=1", nil)
	req.AddCookie(&http.Cookie{Name: "session", Value: chosen})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c := setCookies(resp, "session")
	if len(c) != 1 || strings.Contains(c[0], chosen) {
		t.Fatalf("unknown id was adopted: %v", c)
	}
	if _, err := store.Get(t.Context(), session.SHA256Hasher{}.StoreID("attacker-chosen-token")); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("store holds the client-chosen id: %v", err)
	}
}

func testRenewDestroy(t *testing.T, store session.Store) {
	a := newApp(t, store, session.Options{})
	routes(a)
	a.do("POST", "/put?k=cart&v=3")
	before := a.cookie(a.client)
	_, oldID := a.do("GET", "/id")
	a.do("POST", "/login?user=ada")
	after := a.cookie(a.client)
	_, newID := a.do("GET", "/id")
	if before == after || oldID == newID {
		t.Fatal("Renew kept the id")
	}
	if _, body := a.do("GET", "/get?k=cart"); body != "3" {
		t.Fatalf("Renew lost values: cart = %q", body)
	}
	if _, err := store.Get(t.Context(), oldID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("old record survives Renew: %v", err)
	}
	// The pre-login cookie is dead.
	old := newClient(t)
	u, _ := http.NewRequest("GET", a.srv.URL, nil)
	old.Jar.SetCookies(u.URL, []*http.Cookie{{Name: "session", Value: before}})
	if _, body := a.doWith(old, "GET", "/get?k=user", nil); body != "" {
		t.Fatalf("pre-login cookie still works after Renew: %q", body)
	}

	resp, _ := a.do("POST", "/logout")
	c := setCookies(resp, "session")
	if len(c) != 1 || !strings.Contains(c[0], "Max-Age=0") {
		t.Fatalf("logout did not expire the cookie: %v", c)
	}
	if _, err := store.Get(t.Context(), newID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("record survives Destroy: %v", err)
	}
	// Replaying the logged-out cookie gives a fresh session.
	replay := newClient(t)
	replay.Jar.SetCookies(u.URL, []*http.Cookie{{Name: "session", Value: after}})
	if _, body := a.doWith(replay, "GET", "/get?k=user", nil); body != "" {
		t.Fatalf("cookie replayed after logout still works: %q", body)
	}
}

// testLogoutInFlight: a slow request loads the session, the user logs
// out meanwhile, then the slow request ends. Neither a read-only nor a
// writing slow request may bring the session back.
func testLogoutInFlight(t *testing.T, store session.Store) {
	for _, write := range []bool{false, true} {
		t.Run(fmt.Sprintf("write=%v", write), func(t *testing.T) {
			a := newApp(t, store, session.Options{TouchInterval: time.Nanosecond})
			routes(a)
			loaded, release := make(chan struct{}), make(chan struct{})
			a.mux.HandleFunc("POST /slow", func(w http.ResponseWriter, r *http.Request) {
				s := session.From(r)
				s.GetString("user")
				close(loaded)
				<-release
				if write {
					s.Put("late", "write")
				}
				io.WriteString(w, "done")
			})
			a.do("POST", "/login?user=ada")
			cookie := a.cookie(a.client)
			_, id := a.do("GET", "/id")
			done := make(chan struct{})
			go func() {
				defer close(done)
				a.do("POST", "/slow")
			}()
			<-loaded
			a.do("POST", "/logout")
			close(release)
			<-done
			if _, err := store.Get(t.Context(), id); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("in-flight request resurrected the session: %v", err)
			}
			c := newClient(t)
			u, _ := http.NewRequest("GET", a.srv.URL, nil)
			c.Jar.SetCookies(u.URL, []*http.Cookie{{Name: "session", Value: cookie}})
			if _, body := a.doWith(c, "GET", "/get?k=user", nil); body != "" {
				t.Fatalf("old cookie works again after logout: %q", body)
			}
		})
	}
}

// testReadWrite: a read-only request that loaded the session before a
// concurrent write must not undo that write when it ends.
func testReadWrite(t *testing.T, store session.Store) {
	a := newApp(t, store, session.Options{TouchInterval: time.Nanosecond})
	routes(a)
	loaded, release := make(chan struct{}), make(chan struct{})
	a.mux.HandleFunc("GET /slowread", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).GetString("a")
		close(loaded)
		<-release
	})
	a.do("POST", "/put?k=a&v=1")
	done := make(chan struct{})
	go func() { defer close(done); a.do("GET", "/slowread") }()
	<-loaded
	a.do("POST", "/put?k=b&v=2")
	close(release)
	<-done
	if _, body := a.do("GET", "/get?k=b"); body != "2" {
		t.Fatalf("a concurrent read-only request undid a write: b = %q", body)
	}
}

// testMerge: 50 concurrent requests on one session, each putting its own
// key, end with all 50 keys present.
func testMerge(t *testing.T, store session.Store) {
	a := newApp(t, store, session.Options{})
	routes(a)
	a.do("POST", "/put?k=start&v=1")
	const n = 50
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := a.do("POST", fmt.Sprintf("/put?k=k%d&v=%d", i, i))
			if resp.StatusCode != 200 {
				t.Errorf("request %d: %s", i, resp.Status)
			}
		}()
	}
	wg.Wait()
	a.mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Join(session.From(r).Keys(), ","))
	})
	_, body := a.do("GET", "/keys")
	for i := 0; i < n; i++ {
		if !strings.Contains(","+body+",", fmt.Sprintf(",k%d,", i)) {
			t.Fatalf("key k%d lost among concurrent writes; keys: %s", i, body)
		}
	}
	t.Logf("compare-and-set conflicts merged: %d", a.m.Stats().Conflicts)
}

// testCounters: two kinds of requests increment different counters
// concurrently; no increment is lost.
func testCounters(t *testing.T, store session.Store) {
	a := newApp(t, store, session.Options{})
	routes(a)
	a.mux.HandleFunc("POST /inc", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		k := r.URL.Query().Get("k")
		s.Put(k, s.GetInt(k)+1)
	})
	a.do("POST", "/put?k=init&v=1")
	const per = 20
	var wg sync.WaitGroup
	for _, k := range []string{"x", "y"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				a.do("POST", "/inc?k="+k)
			}
		}()
	}
	wg.Wait()
	a.mux.HandleFunc("GET /int", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, session.From(r).GetInt(r.URL.Query().Get("k")))
	})
	for _, k := range []string{"x", "y"} {
		if _, body := a.do("GET", "/int?k="+k); body != fmt.Sprint(per) {
			t.Fatalf("counter %s = %s after %d increments", k, body, per)
		}
	}
}

// testDestroyRace: writes racing with a Destroy never bring the session
// back.
func testDestroyRace(t *testing.T, store session.Store) {
	a := newApp(t, store, session.Options{})
	routes(a)
	a.do("POST", "/login?user=ada")
	_, id := a.do("GET", "/id")
	cookie := a.cookie(a.client)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient(t)
			u, _ := http.NewRequest("GET", a.srv.URL, nil)
			c.Jar.SetCookies(u.URL, []*http.Cookie{{Name: "session", Value: cookie}})
			<-start
			a.doWith(c, "POST", fmt.Sprintf("/put?k=w%d&v=1", i), nil)
		}()
	}
	close(start)
	a.do("POST", "/logout")
	wg.Wait()
	if _, err := store.Get(t.Context(), id); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("session destroyed while writes raced is back: %v", err)
	}
}

func testBadPayload(t *testing.T, store session.Store) {
	a := newApp(t, store, session.Options{})
	routes(a)
	a.do("POST", "/put?k=user&v=ada")
	_, id := a.do("GET", "/id")
	// Someone edits the record by hand.
	if err := store.Set(t.Context(), id, session.Record{Data: []byte("{not json"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		resp, body := a.do("GET", "/get?k=user")
		if resp.StatusCode != 200 || body != "" {
			t.Fatalf("corrupt record: %s %q; want a fresh session", resp.Status, body)
		}
	}
	if _, err := store.Get(t.Context(), id); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("corrupt record not destroyed: %v", err)
	}
	if resp, _ := a.do("POST", "/put?k=user&v=bob"); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	if _, body := a.do("GET", "/get?k=user"); body != "bob" {
		t.Fatalf("fresh session after corruption does not work: %q", body)
	}
}

func testRememberMe(t *testing.T, store session.Store) {
	a := newApp(t, store, session.Options{TouchInterval: time.Nanosecond})
	routes(a)
	a.mux.HandleFunc("POST /forget", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).RememberMe(false)
		session.From(r).Put("user", "ada")
	})
	resp, _ := a.do("POST", "/forget")
	c := setCookies(resp, "session")
	if len(c) != 1 || strings.Contains(c[0], "Max-Age") || strings.Contains(c[0], "Expires") {
		t.Fatalf("remember-me off should give a browser-session cookie: %v", c)
	}
	time.Sleep(5 * time.Millisecond)
	resp, body := a.do("GET", "/get?k=user")
	if body != "ada" || len(setCookies(resp, "session")) != 0 {
		t.Fatalf("browser-session cookie re-sent on touch (%v) or value lost (%q)", setCookies(resp, "session"), body)
	}
}

func TestStoreErrors(t *testing.T) {
	a := newApp(t, memStore(t), session.Options{})
	routes(a)
	a.do("POST", "/put?k=user&v=ada")
	a.store.fail.Store(true)
	resp, body := a.do("GET", "/get?k=user")
	if resp.StatusCode != 503 || strings.Contains(body, "ada") {
		t.Fatalf("store down: %s %q; want 503", resp.Status, body)
	}
	resp, _ = a.do("POST", "/put?k=user&v=bob")
	if resp.StatusCode != 503 {
		t.Fatalf("store down on write: %s; want 503", resp.Status)
	}
	a.store.fail.Store(false)
	if _, body := a.do("GET", "/get?k=user"); body != "ada" {
		t.Fatalf("after recovery: %q, want ada (nothing lost)", body)
	}
	// A custom error handler is used instead.
	var got error
	m, _ := session.New(a.m.Store(), session.Options{Keys: []session.KeyPair{testKey}, ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
		got = err
		w.WriteHeader(599)
	}})
	a.store.fail.Store(true)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/", nil)
	for _, c := range a.client.Jar.Cookies(mustURL(a.srv.URL)) {
		req.AddCookie(c)
	}
	m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Get("user")
		io.WriteString(w, "should not be sent")
	})).ServeHTTP(rec, req)
	if rec.Code != 599 || !errors.Is(got, errInjected) || strings.Contains(rec.Body.String(), "should not") {
		t.Fatalf("custom error handler: code %d, err %v, body %q", rec.Code, got, rec.Body)
	}
}

func TestPanicDoesNotCommit(t *testing.T) {
	a := newApp(t, memStore(t), session.Options{})
	routes(a)
	a.mux.HandleFunc("POST /panic", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Put("half", "done")
		panic(http.ErrAbortHandler)
	})
	a.do("POST", "/put?k=user&v=ada")
	a.store.reset()
	req, _ := http.NewRequest("POST", a.srv.URL+"/panic", nil)
	if resp, err := a.client.Do(req); err == nil {
		resp.Body.Close()
	}
	if a.store.writes() != 0 {
		t.Fatalf("a panicking handler's change was saved (%d writes)", a.store.writes())
	}
	if _, body := a.do("GET", "/get?k=half"); body != "" {
		t.Fatalf("half-done change visible: %q", body)
	}
}

// TestCommitBeforeFirstByte: each way of starting the response commits the
// session first; a change after that is an error the handler sees.
func TestCommitBeforeFirstByte(t *testing.T) {
	starts := map[string]func(w http.ResponseWriter){
		"WriteHeader": func(w http.ResponseWriter) { w.WriteHeader(201) },
		"Write":       func(w http.ResponseWriter) { io.WriteString(w, "body") },
		"Flush":       func(w http.ResponseWriter) { w.(http.Flusher).Flush() },
		"ResponseController.Flush": func(w http.ResponseWriter) {
			if err := http.NewResponseController(w).Flush(); err != nil {
				panic(err)
			}
		},
		"ReadFrom": func(w http.ResponseWriter) { io.Copy(w, strings.NewReader("body")) },
	}
	for name, start := range starts {
		t.Run(name, func(t *testing.T) {
			a := newApp(t, memStore(t), session.Options{})
			routes(a)
			lateErr := make(chan error, 1)
			a.mux.HandleFunc("POST /late", func(w http.ResponseWriter, r *http.Request) {
				s := session.From(r)
				s.Put("early", "yes")
				start(w)
				lateErr <- s.Put("late", "yes")
			})
			resp, _ := a.do("POST", "/late")
			if len(setCookies(resp, "session")) != 1 {
				t.Fatalf("cookie not sent with the first byte")
			}
			if err := <-lateErr; !errors.Is(err, session.ErrHeadersSent) {
				t.Fatalf("Put after the first byte = %v, want ErrHeadersSent", err)
			}
			if _, body := a.do("GET", "/get?k=early"); body != "yes" {
				t.Fatalf("change before the first byte lost: %q", body)
			}
		})
	}
}

func TestWrapperKeepsHijackerAndController(t *testing.T) {
	a := newApp(t, memStore(t), session.Options{})
	a.mux.HandleFunc("GET /hijack", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Put("k", "v")
		if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Second)); err != nil {
			http.Error(w, "no deadline: "+err.Error(), 500)
			return
		}
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		buf.Flush()
	})
	conn, err := net.Dial("tcp", strings.TrimPrefix(a.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /hijack HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "hijacked" {
		t.Fatalf("hijack through the wrapper: %s %q", resp.Status, body)
	}
	if a.store.writes() != 1 {
		t.Fatalf("session not committed before Hijack: %d writes", a.store.writes())
	}
}

func TestCookieAttributes(t *testing.T) {
	mem := memStore(t)
	defer mem.Close()
	put := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { session.From(r).Put("k", "v") })
	serve := func(opts session.Options, req *http.Request) string {
		opts.Keys = []session.KeyPair{testKey}
		m, err := session.New(mem, opts)
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		m.Handler(put).ServeHTTP(rec, req)
		return rec.Header().Get("Set-Cookie")
	}
	plain := httptest.NewRequest("GET", "http://example.com/", nil)
	tlsReq := httptest.NewRequest("GET", "https://example.com/", nil)
	proxied := httptest.NewRequest("GET", "http://example.com/", nil)
	proxied.Header.Set("X-Forwarded-Proto", "https")

	if c := serve(session.Options{}, tlsReq); !strings.Contains(c, "Secure") {
		t.Errorf("HTTPS request: cookie %q not Secure", c)
	}
	if c := serve(session.Options{}, proxied); strings.Contains(c, "Secure") {
		t.Errorf("untrusted X-Forwarded-Proto made the cookie Secure: %q", c)
	}
	if c := serve(session.Options{TrustProxy: true}, proxied); !strings.Contains(c, "Secure") {
		t.Errorf("trusted X-Forwarded-Proto: cookie %q not Secure", c)
	}
	if c := serve(session.Options{Cookie: session.CookieOptions{SameSite: http.SameSiteNoneMode}}, plain); !strings.Contains(c, "SameSite=None") || !strings.Contains(c, "Secure") {
		t.Errorf("SameSite=None must force Secure: %q", c)
	}
	if c := serve(session.Options{Cookie: session.CookieOptions{SameSite: http.SameSiteNoneMode, Partitioned: true}}, tlsReq); !strings.Contains(c, "Partitioned") {
		t.Errorf("Partitioned missing: %q", c)
	}
	if c := serve(session.Options{CookieName: "__Host-sid"}, plain); !strings.Contains(c, "Secure") || strings.Contains(c, "Domain") {
		t.Errorf("__Host- cookie: %q", c)
	}
	for _, bad := range []session.Options{
		{CookieName: "__Host-sid", Cookie: session.CookieOptions{Domain: "example.com"}},
		{CookieName: "__Host-sid", Cookie: session.CookieOptions{Path: "/app"}},
		{CookieName: "bad name"},
	} {
		if _, err := session.New(mem, bad); err == nil {
			t.Errorf("New(%+v) accepted an invalid cookie configuration", bad)
		}
	}
	// A response that carries a token is never cached, whatever the
	// handler chose (see TestCachingRule for the whole rule).
	m, _ := session.New(mem, session.Options{Keys: []session.KeyPair{testKey}})
	rec := httptest.NewRecorder()
	m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, max-age=60")
		session.From(r).Put("k", "v")
	})).ServeHTTP(rec, plain)
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("a response setting the cookie has Cache-Control %q, want no-store", rec.Header().Get("Cache-Control"))
	}
}

func mustURL(s string) *urlURL { u, _ := parseURL(s); return u }

// Routers such as chi and gorilla/mux take middleware of this shape.
var _ func(http.Handler) http.Handler = (*session.Manager)(nil).Handler
