package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/console"
	"github.com/sessionkit/session/express"
)

var testKey = session.KeyPair{Hash: []byte("console test key, at least 32 bytes long")}

// testApp is an app on the session middleware with the console mounted
// at /admin/, as examples/server mounts it (without authentication: the
// tests of examples/server cover that).
type testApp struct {
	t     *testing.T
	m     *session.Manager
	store session.Store
	srv   *httptest.Server
}

func newTestApp(t *testing.T, store session.Store, edit func(*console.Options)) *testApp {
	t.Helper()
	m, err := session.New(store, session.Options{
		Keys:     []session.KeyPair{testKey},
		Logger:   slog.New(slog.DiscardHandler),
		Metadata: session.Metadata{LastSeen: true, UserAgent: true, ClientIP: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	opts := console.Options{Manager: m, Logger: slog.New(slog.DiscardHandler)}
	if edit != nil {
		edit(&opts)
	}
	admin, err := console.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	api := http.NewServeMux()
	api.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		if err := s.SetUser(r.URL.Query().Get("user")); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		s.Put("cart", []string{"apple", "pear"})
		s.Put("csrf", "very secret value")
		fmt.Fprint(w, s.ID())
	})
	api.HandleFunc("POST /anon", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		s.Put("theme", "dark")
		fmt.Fprint(w, s.ID())
	})
	api.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, session.From(r).UserID())
	})
	mux := http.NewServeMux()
	mux.Handle("/app/", m.Handler(http.StripPrefix("/app", api)))
	mux.Handle("/admin/", http.StripPrefix("/admin", admin))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &testApp{t: t, m: m, store: store, srv: srv}
}

func memStore(t *testing.T) session.Store {
	s := session.NewMemoryStore(session.MemoryOptions{})
	t.Cleanup(func() { s.Close() })
	return s
}

// user is one browser: a cookie jar.
func (a *testApp) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (a *testApp) do(c *http.Client, method, path string, form url.Values, hdr ...string) (*http.Response, string) {
	a.t.Helper()
	if c == nil {
		c = a.browser()
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, a.srv.URL+path, body)
	if err != nil {
		a.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// login makes a new browser signed in as user; it returns the browser and
// its session's store id.
func (a *testApp) login(user string) (*http.Client, string) {
	a.t.Helper()
	c := a.browser()
	resp, id := a.do(c, "POST", "/app/login?user="+url.QueryEscape(user), nil)
	if resp.StatusCode != 200 {
		a.t.Fatalf("login: %d %s", resp.StatusCode, id)
	}
	return c, id
}

func (a *testApp) whoami(c *http.Client) string {
	a.t.Helper()
	_, body := a.do(c, "GET", "/app/whoami", nil)
	return body
}

func (a *testApp) getJSON(path string, v any) int {
	a.t.Helper()
	resp, body := a.do(nil, "GET", path, nil, "Accept", "application/json")
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		a.t.Fatalf("GET %s: Content-Type %q: %s", path, ct, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		a.t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	return resp.StatusCode
}

// checkPage fails t unless resp is an HTML page with the console's
// security headers and no script.
func checkPage(t *testing.T, resp *http.Response, body string) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("Content-Type %q", ct)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "style-src 'self'", "form-action 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "script-src") {
		t.Errorf("CSP allows scripts: %q", csp)
	}
	for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	low := strings.ToLower(body)
	for _, bad := range []string{"<script", "javascript:", "http://", "https://"} {
		if strings.Contains(low, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	if m := inlineCode.FindString(low); m != "" {
		t.Errorf("page has inline code or style in a tag: %q", m)
	}
}

// inlineCode finds an event handler or a style attribute inside a tag.
var inlineCode = regexp.MustCompile(`<[a-z]+(\s+[a-z-]+(="[^"]*")?)*\s+(on[a-z]+|style)\s*=`)

func TestNewValidates(t *testing.T) {
	store := memStore(t)
	m, err := session.New(store, session.Options{Keys: []session.KeyPair{testKey}})
	if err != nil {
		t.Fatal(err)
	}
	other := &session.Backend{Name: "memory", Store: memStore(t)}
	for _, tc := range []struct {
		opts console.Options
		want string
	}{
		{console.Options{}, "Manager is required"},
		{console.Options{Manager: m, Backend: other}, "not the store of Options.Manager"},
		{console.Options{Manager: m, Timeout: -time.Second}, "Timeout is negative"},
	} {
		if _, err := console.New(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v): %v, want %q", tc.opts, err, tc.want)
		}
	}
	if _, err := console.New(console.Options{Manager: m, Backend: &session.Backend{Name: "memory", Store: store}}); err != nil {
		t.Fatal(err)
	}
}

func TestOverview(t *testing.T) {
	a := newTestApp(t, memStore(t), nil)
	a.login("alice")
	a.login("bob")
	resp, body := a.do(nil, "GET", "/admin/", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	checkPage(t, resp, body)
	for _, want := range []string{`id="backend">memory<`, `id="live-sessions">2<`, "saves", `href="style.css"`} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	var d struct {
		Backend      string
		LiveSessions *int64 `json:"live_sessions"`
		Manager      []struct {
			Name  string
			Value int64
		}
		CanListUsers bool `json:"can_list_users"`
		Policy       struct {
			IdleTimeout     string `json:"idle_timeout"`
			MaxUserSessions int    `json:"max_user_sessions"`
			Events          bool
		}
	}
	if code := a.getJSON("/admin/?format=json", &d); code != 200 || d.Backend != "memory" || d.LiveSessions == nil || *d.LiveSessions != 2 || !d.CanListUsers ||
		d.Policy.IdleTimeout != "24h0m0s" || d.Policy.MaxUserSessions != 0 || d.Policy.Events {
		t.Fatalf("JSON: %d %+v", code, d)
	}
	saves := int64(-1)
	for _, c := range d.Manager {
		if c.Name == "saves" {
			saves = c.Value
		}
	}
	if saves != 2 {
		t.Errorf("manager saves %d, want 2: %+v", saves, d.Manager)
	}
	resp, css := a.do(nil, "GET", "/admin/style.css", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") || !strings.Contains(css, "body") {
		t.Fatalf("style.css: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp, _ := a.do(nil, "GET", "/admin/nope", nil); resp.StatusCode != 404 {
		t.Fatalf("unknown page: %d", resp.StatusCode)
	}
}

// TestUserSessions: a user with three sessions; ending one stops that
// browser's session only; ending all stops the others.
func TestUserSessions(t *testing.T) {
	a := newTestApp(t, memStore(t), nil)
	var browsers [3]*http.Client
	for i := range browsers {
		browsers[i], _ = a.login("carol")
	}
	resp, body := a.do(nil, "GET", "/admin/user?id=carol", nil)
	checkPage(t, resp, body)
	if !strings.Contains(body, "3 live sessions") {
		t.Fatalf("user page: %s", body)
	}
	var d struct {
		User     string
		Sessions []struct {
			Handle    string
			CreatedAt time.Time `json:"created_at"`
			UserAgent string    `json:"user_agent"`
			IP        string
		}
	}
	if code := a.getJSON("/admin/user?id=carol", &d); code != 200 || len(d.Sessions) != 3 || d.Sessions[0].CreatedAt.IsZero() || d.Sessions[0].IP != "127.0.0.1" || d.Sessions[0].UserAgent == "" {
		t.Fatalf("%d %+v", code, d)
	}
	// Which browser has the first listed session? Each one's handle is
	// what the page links; end it and see which browser is signed out.
	resp, body = a.do(nil, "POST", "/admin/user", url.Values{"user": {"carol"}, "handle": {d.Sessions[0].Handle}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "user?ended=1&id=carol" {
		t.Fatalf("end one: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	out := 0
	for _, b := range browsers {
		if a.whoami(b) == "" {
			out++
		}
	}
	if out != 1 {
		t.Fatalf("%d browsers signed out, want 1", out)
	}
	_, body = a.do(nil, "GET", "/admin/user?id=carol&ended=1", nil)
	if !strings.Contains(body, "Ended 1 session.") || !strings.Contains(body, "2 live sessions") {
		t.Fatalf("after ending one: %s", body)
	}
	var res struct{ Ended int }
	resp, body = a.do(nil, "POST", "/admin/user", url.Values{"user": {"carol"}, "all": {"1"}}, "Accept", "application/json")
	if err := json.Unmarshal([]byte(body), &res); err != nil || resp.StatusCode != 200 || res.Ended != 2 {
		t.Fatalf("end all: %d %s", resp.StatusCode, body)
	}
	for i, b := range browsers {
		if who := a.whoami(b); who != "" {
			t.Errorf("browser %d still signed in as %q", i, who)
		}
	}
}

// TestSessionPage: keys and sizes, values hidden unless asked for; by
// store id and by user and handle; ending it.
func TestSessionPage(t *testing.T) {
	store := memStore(t)
	a := newTestApp(t, store, nil)
	b, id := a.login("dave")
	resp, body := a.do(nil, "GET", "/admin/session?id="+id, nil)
	checkPage(t, resp, body)
	if resp.StatusCode != 200 || !strings.Contains(body, "cart") || !strings.Contains(body, "csrf") || strings.Contains(body, "very secret value") || strings.Contains(body, "apple") {
		t.Fatalf("session page: %d %s", resp.StatusCode, body)
	}
	var d struct {
		StoreID string `json:"store_id"`
		Handle  string
		User    string
		Keys    []struct {
			Name  string
			Size  int
			Value any
		}
	}
	if code := a.getJSON("/admin/session?id="+id, &d); code != 200 || d.StoreID != id || d.User != "dave" || len(d.Keys) != 2 || d.Keys[0].Name != "cart" || d.Keys[0].Size != len(`["apple","pear"]`) || d.Keys[0].Value != nil {
		t.Fatalf("%d %+v", code, d)
	}
	// The same session by user and handle, as the user page links it.
	if code := a.getJSON("/admin/session?user=dave&handle="+d.Handle, &d); code != 200 || d.StoreID != id {
		t.Fatalf("by handle: %d %+v", code, d)
	}
	// Values, when the app opts in.
	shown := newTestApp(t, store, func(o *console.Options) { o.ShowValues = true })
	_, body = shown.do(nil, "GET", "/admin/session?id="+id, nil)
	if !strings.Contains(body, "very secret value") {
		t.Fatalf("ShowValues: %s", body)
	}
	if resp, _ := a.do(nil, "GET", "/admin/session?id="+strings.Repeat("0", 64), nil); resp.StatusCode != 404 {
		t.Fatalf("unknown id: %d", resp.StatusCode)
	}
	// An anonymous session is ended by destroying it.
	anon := a.browser()
	_, anonID := a.do(anon, "POST", "/app/anon", nil)
	resp, _ = a.do(nil, "POST", "/admin/session", url.Values{"id": {anonID}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("end anonymous: %d", resp.StatusCode)
	}
	if _, err := store.Get(context.Background(), anonID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("anonymous session still stored: %v", err)
	}
	// A bound one through the Manager.
	resp, _ = a.do(nil, "POST", "/admin/session", url.Values{"id": {id}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "user?ended=1&id=dave" || a.whoami(b) != "" {
		t.Fatalf("end bound: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestEndAllConfirmation: ending every session needs the phrase typed; a
// wrong one does nothing.
func TestEndAllConfirmation(t *testing.T) {
	a := newTestApp(t, memStore(t), nil)
	b, _ := a.login("erin")
	resp, body := a.do(nil, "GET", "/admin/end-all", nil)
	checkPage(t, resp, body)
	for _, confirm := range []string{"", "end all", "END EVERY SESSION", "yes"} {
		resp, body = a.do(nil, "POST", "/admin/end-all", url.Values{"confirm": {confirm}})
		if resp.StatusCode != 400 {
			t.Fatalf("confirm %q: %d %s", confirm, resp.StatusCode, body)
		}
		if a.whoami(b) != "erin" {
			t.Fatalf("confirm %q ended sessions", confirm)
		}
	}
}

// TestEndAll ends every session, when package session can.
func TestEndAll(t *testing.T) {
	a := newTestApp(t, memStore(t), nil)
	var browsers []*http.Client
	for _, u := range []string{"f1", "f2", "f3"} {
		b, _ := a.login(u)
		browsers = append(browsers, b)
	}
	resp, body := a.do(nil, "POST", "/admin/end-all", url.Values{"confirm": {"end every session"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "./?ended=all" {
		t.Fatalf("end all: %d %s", resp.StatusCode, body)
	}
	for i, b := range browsers {
		if who := a.whoami(b); who != "" {
			t.Errorf("browser %d still signed in as %q", i, who)
		}
	}
}

// TestHostileInput: markup in a user id is shown as text; a huge search,
// a huge form, an invalid id are refused with 4xx; a POST from another
// origin is refused and does nothing. Never a 500.
func TestHostileInput(t *testing.T) {
	a := newTestApp(t, memStore(t), nil)
	const evil = `<script>alert(1)</script>"><img src=x onerror=alert(1)>`
	b, _ := a.login(evil)
	victim, victimID := a.login("victim")

	resp, body := a.do(nil, "GET", "/admin/user?id="+url.QueryEscape(evil), nil)
	checkPage(t, resp, body)
	if resp.StatusCode != 200 || strings.Contains(body, "<script>alert") || strings.Contains(body, "<img") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Fatalf("markup in a user id: %d %s", resp.StatusCode, body)
	}
	// The session page of that user's session: the user id is text there too.
	var d struct{ Sessions []struct{ Handle string } }
	a.getJSON("/admin/user?id="+url.QueryEscape(evil), &d)
	resp, body = a.do(nil, "GET", "/admin/session?user="+url.QueryEscape(evil)+"&handle="+d.Sessions[0].Handle, nil)
	checkPage(t, resp, body)
	if resp.StatusCode != 200 || strings.Contains(body, "<script>alert") || strings.Contains(body, "<img") {
		t.Fatalf("session page: %d %s", resp.StatusCode, body)
	}

	for name, path := range map[string]string{
		"huge user id":       "/admin/user?id=" + strings.Repeat("a", 200_000),
		"huge store id":      "/admin/session?id=" + strings.Repeat("a", 200_000),
		"control characters": "/admin/user?id=" + url.QueryEscape("a\x00b\nc"),
		"invalid UTF-8":      "/admin/user?id=%ff%fe",
		"markup store id":    "/admin/session?id=" + url.QueryEscape(evil),
		"handle of another":  "/admin/session?user=victim&handle=" + d.Sessions[0].Handle,
	} {
		resp, body := a.do(nil, "GET", path, nil)
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("%s: %d, want 4xx", name, resp.StatusCode)
		}
		if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img") || len(body) > 20_000 {
			t.Errorf("%s: the answer echoes the input (%d bytes)", name, len(body))
		}
	}
	resp, _ = a.do(nil, "POST", "/admin/user", url.Values{"user": {"victim"}, "all": {"1"}, "pad": {strings.Repeat("x", 100_000)}})
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("huge form: %d, want 413", resp.StatusCode)
	}

	// Forged POSTs: what a page on another site can make a browser send.
	forged := []struct {
		name string
		hdr  []string
	}{
		{"cross-site fetch", []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}},
		{"same-site fetch", []string{"Sec-Fetch-Site", "same-site", "Origin", "https://sub.evil.example"}},
		{"old browser", []string{"Origin", "https://evil.example"}},
	}
	for _, f := range forged {
		for path, form := range map[string]url.Values{
			"/admin/user":    {"user": {"victim"}, "all": {"1"}},
			"/admin/session": {"id": {victimID}},
			"/admin/end-all": {"confirm": {"end every session"}},
		} {
			resp, body := a.do(nil, "POST", path, form, f.hdr...)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s POST %s: %d, want 403: %s", f.name, path, resp.StatusCode, body)
			}
		}
	}
	if a.whoami(victim) != "victim" || a.whoami(b) != evil {
		t.Fatal("a forged POST ended a session")
	}
	// The same POST from the console's own page goes through.
	resp, _ = a.do(nil, "POST", "/admin/user", url.Values{"user": {"victim"}, "all": {"1"}}, "Sec-Fetch-Site", "same-origin", "Origin", a.srv.URL)
	if resp.StatusCode != http.StatusSeeOther || a.whoami(victim) != "" {
		t.Fatalf("same-origin POST: %d", resp.StatusCode)
	}
}

// failingStore fails every call while down is set.
type failingStore struct {
	session.Store
	down atomic.Bool
}

var errDown = errors.New("backend down (test)")

func (f *failingStore) Get(ctx context.Context, id string) (session.Record, error) {
	if f.down.Load() {
		return session.Record{}, errDown
	}
	return f.Store.Get(ctx, id)
}

func (f *failingStore) ListUser(ctx context.Context, user string) ([]session.UserRecord, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.(session.UserIndex).ListUser(ctx, user)
}

func (f *failingStore) DestroyUser(ctx context.Context, user, except string) ([]string, error) {
	return f.Store.(session.UserIndex).DestroyUser(ctx, user, except)
}

func (f *failingStore) CompareAndSet(ctx context.Context, id string, old []byte, rec session.Record) error {
	return f.Store.(session.CompareAndSetter).CompareAndSet(ctx, id, old, rec)
}

// TestStoreFailures: a store that fails gives 503 pages, and the overview
// lists its recent failures.
func TestStoreFailures(t *testing.T) {
	fs := &failingStore{Store: memStore(t)}
	store, err := session.NewFailover([]session.Store{fs}, session.FailoverOptions{Logger: slog.New(slog.DiscardHandler), FailureThreshold: 1000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.(io.Closer).Close() })
	a := newTestApp(t, store, nil)
	_, id := a.login("gina")
	fs.down.Store(true)
	for path, want := range map[string]int{
		"/admin/user?id=gina":     503,
		"/admin/session?id=" + id: 503,
	} {
		resp, body := a.do(nil, "GET", path, nil)
		if resp.StatusCode != want || !strings.Contains(body, errDown.Error()) {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
	resp, body := a.do(nil, "GET", "/admin/", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, errDown.Error()) {
		t.Fatalf("overview: %d %s", resp.StatusCode, body)
	}
	var d struct {
		RecentFailures []struct{ Op, Error string } `json:"recent_failures"`
	}
	a.getJSON("/admin/?format=json", &d)
	if len(d.RecentFailures) == 0 || d.RecentFailures[0].Op != "load" {
		t.Fatalf("recent failures: %+v", d.RecentFailures)
	}
}

// TestExpressModeHidesStoreIDs: in the express-session mode a store id is
// the session's token, so the console neither looks one up nor shows one.
func TestExpressModeHidesStoreIDs(t *testing.T) {
	store := memStore(t)
	m, err := express.New(store, []string{"keyboard cat"}, session.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := console.New(console.Options{Manager: m, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	sid := "abcdefghijklmnopqrstuvwxyz012345"
	if err := store.Set(context.Background(), sid, session.Record{Data: []byte(`{"cookie":{"originalMaxAge":60000},"n":1}`), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"GET", "POST"} {
		var req *http.Request
		if method == "GET" {
			req = httptest.NewRequest("GET", "/session?id="+sid, nil)
		} else {
			req = httptest.NewRequest("POST", "/session", strings.NewReader("id="+sid))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		w := httptest.NewRecorder()
		admin.ServeHTTP(w, req)
		if w.Code != http.StatusBadRequest || strings.Contains(w.Body.String(), sid) {
			t.Fatalf("%s: %d %s", method, w.Code, w.Body)
		}
	}
	if _, err := store.Get(context.Background(), sid); err != nil {
		t.Fatalf("the session was touched: %v", err)
	}
}

// TestEveryPageAnswersJSON: with Accept: application/json, or with
// format=json, every page and every error answers JSON.
func TestEveryPageAnswersJSON(t *testing.T) {
	a := newTestApp(t, memStore(t), nil)
	_, id := a.login("hana")
	for path, want := range map[string]int{
		"/admin/":                 200,
		"/admin/user?id=hana":     200,
		"/admin/session?id=" + id: 200,
		"/admin/end-all":          200,
		"/admin/user":             400, // no user id
		"/admin/session?id=nope":  404,
		"/admin/nowhere":          404,
	} {
		for _, how := range []string{"accept", "format"} {
			p, hdr := path, []string{"Accept", "application/json"}
			if how == "format" {
				sep := "?"
				if strings.Contains(p, "?") {
					sep = "&"
				}
				p, hdr = p+sep+"format=json", nil
			}
			resp, body := a.do(nil, "GET", p, nil, hdr...)
			var v map[string]any
			if resp.StatusCode != want || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(body), &v) != nil {
				t.Errorf("%s (%s): %d %q %.100s", path, how, resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
		}
	}
	// A browser's Accept gets HTML.
	resp, _ := a.do(nil, "GET", "/admin/", nil, "Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("a browser got %q", resp.Header.Get("Content-Type"))
	}
}
