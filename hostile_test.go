package session_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/session"
)

// hostileApp serves the routes an app typically has, the JSON-merging
// test-session endpoint included, over a real listener whose error log the
// test reads (net/http logs recovered panics there).
type hostileApp struct {
	srv    *httptest.Server
	store  session.Store
	errLog *bytes.Buffer
	mu     sync.Mutex
}

func newHostileApp(t *testing.T, store session.Store, keys []session.KeyPair) *hostileApp {
	m, err := session.New(store, session.Options{
		Keys: keys, TokenHeader: "X-Session-Token", TouchInterval: time.Hour,
		Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/test-session", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		values := map[string]any{}
		for _, k := range s.Keys() {
			values[k] = s.Get(k)
		}
		json.NewEncoder(w).Encode(values)
	})
	mux.HandleFunc("POST /api/test-session", func(w http.ResponseWriter, r *http.Request) {
		var in map[string]any
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20)).Decode(&in); err != nil {
			http.Error(w, "bad JSON", http.StatusBadRequest)
			return
		}
		s := session.From(r)
		for k, v := range in {
			if err := s.Put(k, v); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		s.Renew()
		s.Put("user", r.URL.Query().Get("user"))
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) { session.From(r).Destroy() })
	a := &hostileApp{store: store, errLog: &bytes.Buffer{}}
	a.srv = httptest.NewUnstartedServer(m.Handler(mux))
	a.srv.Config.ErrorLog = log.New(lockedWriter{&a.mu, a.errLog}, "", 0)
	a.srv.Start()
	t.Cleanup(a.srv.Close)
	return a
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// raw sends request bytes as they are, so that malformed headers reach
// the server, and returns the response status (431 and 400 from net/http
// itself count as answers) and its Set-Cookie values.
func (a *hostileApp) raw(t *testing.T, req string) (int, []string, string) {
	t.Helper()
	conn, err := net.Dial("tcp", a.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	go io.WriteString(conn, req)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Values("Set-Cookie"), string(body)
}

func httpReq(method, path string, headers []string, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n", method, path)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	if body != "" {
		fmt.Fprintf(&b, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n" + body)
	return b.String()
}

// cookieFrom returns "name=value" from a Set-Cookie list.
func cookieFrom(setCookies []string) string {
	for _, c := range setCookies {
		if strings.HasPrefix(c, "session=") {
			return strings.SplitN(c, ";", 2)[0]
		}
	}
	return ""
}

// TestHostileRequests sends over forty hostile requests; each is answered
// without a panic or a 5xx, and none touches another client's session.
func TestHostileRequests(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store session.Store) {
		testHostileRequests(t, store)
	})
}

func testHostileRequests(t *testing.T, store session.Store) {
	a := newHostileApp(t, store, []session.KeyPair{testKey})
	codec, _ := session.NewSecureCookieCodec(testKey)
	removed, _ := session.NewSecureCookieCodec(session.KeyPair{Hash: []byte("a-key-that-was-removed-long-ago!!")})

	// A bystander whose session must come through untouched.
	_, sc, _ := a.raw(t, httpReq("POST", "/login?user=bystander", nil, ""))
	bystander := cookieFrom(sc)
	_, sc, _ = a.raw(t, httpReq("POST", "/api/test-session", []string{"Cookie: " + bystander}, `{"cart":[1,2,3]}`))
	if c := cookieFrom(sc); c != "" {
		bystander = c
	}
	bystanderToken, _, _ := codec.Decode("session", strings.TrimPrefix(bystander, "session="))
	bystanderID := session.SHA256Hasher{}.StoreID(bystanderToken)
	before, err := store.Get(t.Context(), bystanderID)
	if err != nil {
		t.Fatal(err)
	}

	// The attacker's own sessions, for replays.
	_, sc, _ = a.raw(t, httpReq("POST", "/api/test-session", nil, `{"a":1}`))
	preLogin := cookieFrom(sc)
	_, sc, _ = a.raw(t, httpReq("POST", "/login?user=mallory", []string{"Cookie: " + preLogin}, ""))
	loggedIn := cookieFrom(sc)
	a.raw(t, httpReq("POST", "/logout", []string{"Cookie: " + loggedIn}, ""))
	rotatedApp := newHostileApp(t, store, []session.KeyPair{{Hash: []byte("the-new-key-after-rotation-0123456")}})
	_ = rotatedApp

	sign := func(token string) string { v, _ := codec.Encode("session", token); return v }
	bv := strings.TrimPrefix(bystander, "session=")
	flipped := []byte(bv)
	flipped[len(flipped)/2] ^= 1
	signedOld, _ := removed.Encode("session", bystanderToken)
	otherName, _ := codec.Encode("csrf", bystanderToken)
	deep := strings.Repeat(`{"a":`, 1000) + "1" + strings.Repeat("}", 1000)
	bomb := strings.Repeat("[", 200000) + strings.Repeat("]", 200000)
	manyKeys := "{" + strings.Repeat(`"k":1,`, 20000) + `"z":1}`
	var wide strings.Builder
	wide.WriteString("{")
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&wide, `"key%d":"%s",`, i, strings.Repeat("v", 20))
	}
	wide.WriteString(`"end":1}`)

	type hostile struct {
		name     string
		req      string
		statusOK func(int) bool
	}
	get := func(h ...string) string { return httpReq("GET", "/api/test-session", h, "") }
	post := func(body string, h ...string) string { return httpReq("POST", "/api/test-session", h, body) }
	any4xxOr2xx := func(c int) bool { return c < 500 }
	cases := []hostile{
		{"empty cookie", get("Cookie: session="), nil},
		{"cookie without value", get("Cookie: session"), nil},
		{"4 KiB cookie", get("Cookie: session=" + strings.Repeat("A", 4096)), nil},
		{"8 KiB cookie", get("Cookie: session=" + strings.Repeat("A", 8192)), nil},
		{"100 KiB cookie", get("Cookie: session=" + strings.Repeat("A", 100<<10)), nil},
		{"2 MiB cookie (over net/http's header limit)", get("Cookie: session=" + strings.Repeat("A", 2<<20)), func(c int) bool { return c == 431 }},
		{"not base64", get("Cookie: session=!!!***$$$"), nil},
		{"base64 garbage", get("Cookie: session=Z2FyYmFnZXxnYXJiYWdlfGdhcmJhZ2U="), nil},
		{"pipe-separated fields", get("Cookie: session=MTIz|YWJj|ZGVm"), nil},
		{"signed with a removed key", get("Cookie: session=" + signedOld), nil},
		{"signed for another cookie name", get("Cookie: session=" + otherName), nil},
		{"bystander's cookie truncated", get("Cookie: session=" + bv[:len(bv)-5]), nil},
		{"bystander's cookie bit-flipped", get("Cookie: session=" + string(flipped)), nil},
		{"quoted cookie", get(`Cookie: session="` + bv[:20] + `"`), nil},
		{"control characters in cookie", get("Cookie: session=abc\x01\x02\x7fdef"), nil},
		{"NUL in cookie", get("Cookie: session=abc\x00def"), nil},
		{"UTF-8 in cookie", get("Cookie: session=ünïcødé"), nil},
		{"two garbage cookies", get("Cookie: session=a; session=b"), nil},
		{"100 duplicate cookies", get("Cookie: " + strings.TrimSuffix(strings.Repeat("session=x; ", 100), "; ")), nil},
		{"200 Cookie header lines", get(strings.Split(strings.TrimSuffix(strings.Repeat("Cookie: session=y\n", 200), "\n"), "\n")...), nil},
		{"upper-case cookie name", get("Cookie: SESSION=" + bv), nil},
		{"empty bearer", get("Authorization: Bearer "), nil},
		{"100 KiB bearer", get("Authorization: Bearer " + strings.Repeat("B", 100<<10)), nil},
		{"garbage bearer", get("Authorization: Bearer !!!"), nil},
		{"bearer signed with a removed key", get("Authorization: Bearer " + signedOld), nil},
		{"Bearer without a space", get("Authorization: Bearer" + bv), nil},
		{"Basic credentials", get("Authorization: Basic dXNlcjpwYXNz"), nil},
		{"control characters in header token", get("X-Session-Token: \x01\x02\x03"), nil},
		{"signed token with control characters", get("Cookie: session=" + sign("tok\x00\x01\r\nen")), nil},
		{"signed 4 KiB token", get("Cookie: session=" + sign(strings.Repeat("t", 2500))), nil},
		{"signed empty token", get("Cookie: session=" + sign("")), nil},
		{"signed token that is the bystander's store id", get("Cookie: session=" + sign(bystanderID)), nil},
		{"1 MiB value over the size limit", post(`{"big":"` + strings.Repeat("x", 1<<20) + `"}`), func(c int) bool { return c == 413 }},
		{"20,000 duplicate keys", post(manyKeys), nil},
		{"5,000 keys over the size limit", post(wide.String()), func(c int) bool { return c == 413 }},
		{"value nested 1,000 deep", post(`{"deep":` + deep + `}`), func(c int) bool { return c == 413 }},
		{"JSON bomb 200,000 deep", post(bomb), func(c int) bool { return c == 400 }},
		{"invalid UTF-8 in JSON", post("{\"k\":\"\xff\xfe\"}"), nil},
		{"control characters in keys", post(`{"a\u0000b":1,"\u001b[31m":2}`), nil},
		{"replay after logout", get("Cookie: " + loggedIn), nil},
		{"write on a replay after logout", post(`{"x":1}`, "Cookie: "+loggedIn), nil},
		{"replay of the pre-login cookie after renew", get("Cookie: " + preLogin), nil},
		{"logout replayed", httpReq("POST", "/logout", []string{"Cookie: " + loggedIn}, ""), nil},
		{"forged cookie next to a replayed one", get("Cookie: session=forged; " + loggedIn), nil},
	}
	if len(cases) < 40 {
		t.Fatalf("only %d hostile requests", len(cases))
	}
	for _, c := range cases {
		status, setCookie, body := a.raw(t, c.req)
		t.Logf("%-45s %d", c.name, status)
		ok := c.statusOK
		if ok == nil {
			ok = any4xxOr2xx
		}
		if !ok(status) || status >= 500 {
			t.Errorf("%s: status %d (%.80q)", c.name, status, body)
		}
		if strings.Contains(body, "bystander") || strings.Contains(body, "mallory") || strings.Contains(body, "cart") {
			t.Errorf("%s: response reveals another session: %.120q", c.name, body)
		}
		for _, sc := range setCookie {
			if strings.Contains(sc, bv) {
				t.Errorf("%s: the bystander's cookie was handed out", c.name)
			}
		}
	}
	// Replay after key rotation: the new deployment refuses old cookies.
	if status, _, body := rotatedApp.raw(t, httpReq("GET", "/api/test-session", []string{"Cookie: " + bystander}, "")); status != 200 || body != "{}\n" {
		t.Errorf("replay after key rotation: %d %q; want a fresh session", status, body)
	}

	after, err := store.Get(t.Context(), bystanderID)
	if err != nil || !bytes.Equal(after.Data, before.Data) || !after.Expires.Equal(before.Expires) {
		t.Fatalf("the bystander's session changed: %q (%v) -> %q (%v), %v", before.Data, before.Expires, after.Data, after.Expires, err)
	}
	if status, _, body := a.raw(t, get("Cookie: "+bystander)); status != 200 || !strings.Contains(body, `"user":"bystander"`) {
		t.Fatalf("bystander's session: %d %q", status, body)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if strings.Contains(a.errLog.String(), "panic") {
		t.Fatalf("server recovered a panic:\n%s", a.errLog)
	}
}
