package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sessionkit/session"
)

func newTestApp(t *testing.T) *httptest.Server {
	t.Helper()
	store := session.NewMemoryStore(session.MemoryOptions{})
	t.Cleanup(func() { store.Close() })
	h, err := newApp(store, "a test secret that is long enough to use", []string{"https://parent.example"}, "https://widget.example/")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, method, url string, hdr map[string]string) (*http.Response, stateJSON) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req) // no cookie jar: a browser that blocks the cookie
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s stateJSON
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
			t.Fatal(err)
		}
	}
	return resp, s
}

// The cookie is what a cross-site iframe needs: __Host-, SameSite=None,
// Secure, Partitioned, HttpOnly.
func TestCookieAttributes(t *testing.T) {
	srv := newTestApp(t)
	resp, _ := call(t, "POST", srv.URL+"/api/click", nil)
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"__Host-embed=", "Path=/", "HttpOnly", "Secure", "SameSite=None", "Partitioned"} {
		if !strings.Contains(sc, want) {
			t.Errorf("Set-Cookie %q lacks %s", sc, want)
		}
	}
	if strings.Contains(sc, "Domain=") {
		t.Errorf("Set-Cookie %q has a Domain", sc)
	}
}

// With no cookie at all, the session lives on through the header token;
// a cookie client never sees its token in the header.
func TestHeaderTokenTransport(t *testing.T) {
	srv := newTestApp(t)
	resp, _ := call(t, "POST", srv.URL+"/api/click", nil)
	if v := resp.Header.Get(TokenHeader); v != "" || resp.Header.Get("Set-Cookie") == "" {
		t.Fatalf("a cookie client: token header %q, Set-Cookie %q", v, resp.Header.Get("Set-Cookie"))
	}
	resp, s := call(t, "POST", srv.URL+"/api/click", map[string]string{TokenHeader: "new"})
	token := resp.Header.Get(TokenHeader)
	if token == "" || s.Clicks != 1 || s.Transport != "none" || resp.Header.Get("Set-Cookie") != "" {
		t.Fatalf("first click asking for a header token: token %q, state %+v, Set-Cookie %q", token, s, resp.Header.Get("Set-Cookie"))
	}
	hdr := map[string]string{TokenHeader: token}
	_, s = call(t, "POST", srv.URL+"/api/click", hdr)
	if s.Clicks != 2 || s.Transport != "header" {
		t.Fatalf("second click with the header token: %+v", s)
	}
	// Authorization: Bearer works too.
	_, s = call(t, "GET", srv.URL+"/api/state", map[string]string{"Authorization": "Bearer " + token})
	if s.Clicks != 2 {
		t.Fatalf("state with a bearer token: %+v", s)
	}
	// A forged token is a new, empty session, never an error or a hit.
	_, s = call(t, "GET", srv.URL+"/api/state", map[string]string{TokenHeader: token + "x"})
	if s.Clicks != 0 {
		t.Fatalf("forged token read a session: %+v", s)
	}
}

// A SameSite=None cookie rides on cross-site requests: writes from another
// site are refused; the widget's own same-origin calls pass.
func TestCrossSiteWriteRefused(t *testing.T) {
	srv := newTestApp(t)
	resp, _ := call(t, "POST", srv.URL+"/api/click", map[string]string{"Sec-Fetch-Site": "cross-site"})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site POST: %s, want 403", resp.Status)
	}
	resp, _ = call(t, "POST", srv.URL+"/api/click", map[string]string{"Sec-Fetch-Site": "same-origin"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("same-origin POST: %s", resp.Status)
	}
}

func TestWidgetFramingPolicy(t *testing.T) {
	srv := newTestApp(t)
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); csp != "frame-ancestors https://parent.example" {
		t.Fatalf("CSP %q", csp)
	}
}
