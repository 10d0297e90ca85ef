package session_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sessionkit/session"
)

// newUserApp is newApp with the user routes: /login?user=U binds, /me reads, /devices lists,
// /signout-others, /signout-all and /signout-one?h=H revoke.
func newUserApp(t *testing.T, store session.Store, opts session.Options) *app {
	t.Helper()
	if opts.Keys == nil {
		opts.Keys = []session.KeyPair{testKey}
	}
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	if _, ok := lastWriterWins.Load(store); ok {
		opts.AllowLastWriterWins = true
	}
	cs := &countingStore{inner: store}
	m, err := session.New(cs.store(), opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(m.Handler(mux))
	t.Cleanup(srv.Close)
	a := &app{t: t, store: cs, m: m, srv: srv, client: newClient(t), mux: mux}
	routes(a)
	mux.HandleFunc("POST /bind", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		if err := s.SetUser(r.URL.Query().Get("user")); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("GET /me", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		fmt.Fprintf(w, "%s|%s", s.UserID(), s.GetString("user"))
	})
	mux.HandleFunc("GET /devices", func(w http.ResponseWriter, r *http.Request) {
		list, err := m.UserSessions(r.Context(), session.From(r).UserID())
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		for _, us := range list {
			fmt.Fprintf(w, "%s %v %s %s %v\n", us.Handle, us.Current, us.UserAgent, us.IP, !us.LastSeen.IsZero())
		}
	})
	revoke := func(w http.ResponseWriter, r *http.Request, others bool) {
		revoke := m.RevokeUser
		if others {
			revoke = m.RevokeOtherSessions
		}
		n, err := revoke(r.Context(), session.From(r).UserID())
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, n)
	}
	mux.HandleFunc("POST /signout-others", func(w http.ResponseWriter, r *http.Request) { revoke(w, r, true) })
	mux.HandleFunc("POST /signout-all", func(w http.ResponseWriter, r *http.Request) { revoke(w, r, false) })
	mux.HandleFunc("POST /signout-one", func(w http.ResponseWriter, r *http.Request) {
		n, err := m.RevokeSession(r.Context(), session.From(r).UserID(), r.URL.Query().Get("h"))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, n)
	})
	return a
}

func TestUsers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store session.Store) {
		t.Run("DevicesAndSignOut", func(t *testing.T) { testDevices(t, store) })
		t.Run("BoundReadOnlyIsOneRead", func(t *testing.T) { testBoundReadOnly(t, store) })
		t.Run("RevokeDuringInFlightRequest", func(t *testing.T) { testRevokeInFlight(t, store) })
		t.Run("RevokeAll10000", func(t *testing.T) { testRevoke10000(t, store) })
	})
}

func devices(t *testing.T, a *app, c *http.Client) []string {
	t.Helper()
	_, body := a.doWith(c, "GET", "/devices", nil)
	return strings.Split(strings.TrimSpace(body), "\n")
}

func testDevices(t *testing.T, store session.Store) {
	a := newUserApp(t, store, session.Options{TrustProxy: true, Metadata: session.Metadata{LastSeen: true, UserAgent: true, ClientIP: true}})
	laptop, phone, other := a.client, newClient(t), newClient(t)
	hdr := func(ua, xff string) http.Header { return http.Header{"User-Agent": {ua}, "X-Forwarded-For": {xff}} }
	a.doWith(laptop, "POST", "/put?k=user&v=ada", nil)
	before := a.cookie(laptop)
	a.doWith(laptop, "POST", "/bind?user=u1", hdr("Laptop/1.0", "203.0.113.9, 10.0.0.7"))
	if a.cookie(laptop) == before {
		t.Fatal("SetUser did not renew the session's token")
	}
	a.doWith(phone, "POST", "/bind?user=u1", hdr("Phone/2.0", "198.51.100.4"))
	a.doWith(other, "POST", "/bind?user=u2", nil)
	if _, body := a.doWith(laptop, "GET", "/me", nil); body != "u1|ada" {
		t.Fatalf("/me = %q, want u1|ada (values survive SetUser)", body)
	}
	list := devices(t, a, laptop)
	if len(list) != 2 {
		t.Fatalf("u1's devices: %q, want 2", list)
	}
	var laptopLine, phoneHandle string
	for _, l := range list {
		f := strings.Fields(l)
		if f[1] == "true" {
			laptopLine = l
		} else {
			phoneHandle = f[0]
			if f[2] != "Phone/2.0" || f[3] != "198.51.100.4" || f[4] != "true" {
				t.Fatalf("phone's entry %q: want its User-Agent, IP and last seen", l)
			}
		}
	}
	// TrustProxy: the last X-Forwarded-For entry, the proxy's view.
	if f := strings.Fields(laptopLine); len(f) != 5 || f[2] != "Laptop/1.0" || f[3] != "10.0.0.7" {
		t.Fatalf("current device's entry %q: want Laptop/1.0 10.0.0.7", laptopLine)
	}
	// A handle cannot end another user's session.
	if _, body := a.doWith(other, "POST", "/signout-one?h="+phoneHandle, nil); body != "0" {
		t.Fatalf("u2 ended u1's session by handle: %q", body)
	}
	if _, body := a.doWith(laptop, "POST", "/signout-one?h="+phoneHandle, nil); body != "1" {
		t.Fatalf("/signout-one = %q, want 1", body)
	}
	if _, body := a.doWith(phone, "GET", "/me", nil); body != "|" {
		t.Fatalf("phone after being signed out: %q, want an anonymous session", body)
	}
	a.doWith(phone, "POST", "/bind?user=u1", nil)
	if _, body := a.doWith(laptop, "POST", "/signout-others", nil); body != "1" {
		t.Fatalf("/signout-others = %q, want 1", body)
	}
	if _, body := a.doWith(phone, "GET", "/me", nil); body != "|" {
		t.Fatalf("phone after sign-out of other devices: %q", body)
	}
	if _, body := a.doWith(laptop, "GET", "/me", nil); body != "u1|ada" {
		t.Fatalf("the current device was signed out too: %q", body)
	}
	resp, body := a.doWith(laptop, "POST", "/signout-all", nil)
	if body != "1" {
		t.Fatalf("/signout-all = %q, want 1", body)
	}
	if c := setCookies(resp, "session"); len(c) != 1 || !strings.Contains(c[0], "Max-Age=0") {
		t.Fatalf("signing out everywhere did not expire the current cookie: %q", c)
	}
	if _, body := a.doWith(other, "GET", "/me", nil); body != "u2|" {
		t.Fatalf("another user's session was touched: %q", body)
	}
}

// testBoundReadOnly: a bound session's read-only request is one read and
// no write, like an unbound one; the throttled refresh is one write that
// moves the expiry and the last-seen time together.
func testBoundReadOnly(t *testing.T, store session.Store) {
	a := newUserApp(t, store, session.Options{TouchInterval: 300 * time.Millisecond, Metadata: session.Metadata{LastSeen: true}})
	a.do("POST", "/put?k=user&v=ada")
	a.do("POST", "/bind?user=ro")
	a.store.reset()
	for i := 0; i < 5; i++ {
		if _, body := a.do("GET", "/me"); body != "ro|ada" {
			t.Fatalf("/me = %q", body)
		}
	}
	if g, w, tc := a.store.gets.Load(), a.store.writes(), a.store.touches.Load(); g != 5 || w != 0 || tc != 0 {
		t.Fatalf("5 read-only requests on a bound session: %d reads, %d writes, %d touches; want 5, 0, 0", g, w, tc)
	}
	time.Sleep(350 * time.Millisecond)
	a.store.reset()
	a.do("GET", "/me")
	if g, w, tc := a.store.gets.Load(), a.store.writes(), a.store.touches.Load(); g != 1 || w != 1 || tc != 0 {
		t.Fatalf("refresh of a bound session: %d reads, %d writes, %d touches; want 1, 1, 0", g, w, tc)
	}
	a.store.reset()
	a.do("GET", "/me")
	if w := a.store.writes(); w != 0 {
		t.Fatalf("refreshed again right after a refresh: %d writes", w)
	}
}

// testRevokeInFlight: a request that loaded a bound session before the
// user's sessions were revoked cannot write it back when it ends.
func testRevokeInFlight(t *testing.T, store session.Store) {
	a := newUserApp(t, store, session.Options{TouchInterval: time.Nanosecond, Metadata: session.Metadata{LastSeen: true}})
	loaded, release := make(chan struct{}), make(chan struct{})
	a.mux.HandleFunc("POST /slowput", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		s.GetString("user")
		close(loaded)
		<-release
		s.Put("late", "write")
	})
	a.do("POST", "/bind?user=inflight")
	id := func() string { _, b := a.do("GET", "/id"); return b }()
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	done := make(chan struct{})
	go func() { defer close(done); a.do("POST", "/slowput") }()
	<-loaded
	other := newClient(t)
	a.doWith(other, "POST", "/bind?user=inflight", nil)
	if _, body := a.doWith(other, "POST", "/signout-others", nil); body != "1" {
		t.Fatalf("/signout-others = %q, want 1", body)
	}
	once.Do(func() { close(release) })
	<-done
	if _, err := store.Get(t.Context(), id); err == nil {
		t.Fatal("a request in flight wrote a revoked session back")
	}
	if _, body := a.do("GET", "/me"); body != "|" {
		t.Fatalf("revoked client still has %q", body)
	}
	if list := devices(t, a, other); len(list) != 1 {
		t.Fatalf("inflight's devices after revocation: %q, want only the current one", list)
	}
}

// testRevoke10000 is the must-show: a user with 10,000 sessions is signed
// out everywhere in one RevokeUser call, and each of the 10,000
// cookies then gets a fresh anonymous session through the middleware.
func testRevoke10000(t *testing.T, store session.Store) {
	const n = 10000
	a := newUserApp(t, store, session.Options{})
	codec, err := session.NewSecureCookieCodec(testKey)
	if err != nil {
		t.Fatal(err)
	}
	// Set up the sessions directly in the store (what 10,000 logins would
	// have written), from several goroutines.
	payload, err := session.JSONCodec{}.Encode(fmt.Appendf(nil, `{"created":%d,"user":"u10k"}`, time.Now().UnixMilli()), map[string]any{"user": "ada"})
	if err != nil {
		t.Fatal(err)
	}
	cookies := make([]string, n)
	ids := make([]string, n)
	exp := time.Now().Add(time.Hour)
	ps, isPG := store.(*session.PostgresStore)
	parallel(t, n, func(i int) error {
		token := fmt.Sprintf("token-%d-%s", i, t.Name())
		ids[i] = session.SHA256Hasher{}.StoreID(token)
		var err error
		if cookies[i], err = codec.Encode("session", token); err != nil {
			return err
		}
		if isPG {
			return nil
		}
		return store.Set(context.Background(), ids[i], session.Record{Data: payload, Expires: exp, UserID: "u10k"})
	})
	if isPG {
		// One COPY instead of 10,000 INSERTs through a pool of four.
		rows := make([][]any, n)
		for i := range rows {
			rows[i] = []any{ids[i], payload, exp, "u10k"}
		}
		if _, err := ps.Pool().CopyFrom(context.Background(), pgx.Identifier(strings.Split(ps.Table(), ".")), []string{"id", "data", "expires", "user_id"}, pgx.CopyFromRows(rows)); err != nil {
			t.Fatal(err)
		}
	}
	serve := func(cookie string) string {
		req := httptest.NewRequest("GET", "/me", nil)
		req.AddCookie(&http.Cookie{Name: "session", Value: cookie})
		rec := httptest.NewRecorder()
		a.srv.Config.Handler.ServeHTTP(rec, req)
		b, _ := io.ReadAll(rec.Body)
		return string(b)
	}
	if got := serve(cookies[n-1]); got != "u10k|ada" {
		t.Fatalf("a logged-in cookie reads %q before revocation", got)
	}
	start := time.Now()
	got, err := a.m.RevokeUser(context.Background(), "u10k")
	took := time.Since(start)
	if err != nil || got != n {
		t.Fatalf("RevokeUser = %d, %v; want %d", got, err, n)
	}
	t.Logf("revoked %d sessions in %v", n, took)
	var stillIn atomic.Int64
	parallel(t, n, func(i int) error {
		if body := serve(cookies[i]); body != "|" {
			stillIn.Add(1)
		}
		return nil
	})
	if s := stillIn.Load(); s != 0 {
		t.Fatalf("%d of %d revoked cookies still carry the user's session", s, n)
	}
	if list, err := a.m.UserSessions(context.Background(), "u10k"); err != nil || len(list) != 0 {
		t.Fatalf("UserSessions after revocation = %d, %v", len(list), err)
	}
}

// parallel runs fn(0..n-1) on 32 goroutines and fails t on the first error.
func parallel(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	var first atomic.Value
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 32 {
				if err := fn(i); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := first.Load().(error); err != nil {
		t.Fatal(err)
	}
}
