package session_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/sessionkit/session"
)

// TestTokenTransports: with Options.TokenHeader set, each transport is
// answered in its own. A cookie client never sees its token in a header
// that page script could read; a header client never gets a cookie; and
// a request carrying both never moves the cookie to the header's session.
func TestTokenTransports(t *testing.T) {
	const hdr = "X-Session-Token"
	m, err := session.New(memStore(t), session.Options{Keys: []session.KeyPair{testKey}, TokenHeader: hdr, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		switch r.URL.Path {
		case "/put":
			s.Put("who", r.URL.Query().Get("v"))
		case "/login":
			s.Renew()
			s.Put("who", r.URL.Query().Get("v"))
		case "/logout":
			s.Destroy()
		}
		io.WriteString(w, s.GetString("who"))
	}))
	serve := func(path string, header http.Header) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", path, nil)
		for k, v := range header {
			req.Header[k] = v
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	cookieOf := func(rec *httptest.ResponseRecorder) string {
		for _, c := range (&http.Response{Header: rec.Header()}).Cookies() {
			if c.Name == "session" {
				return c.Value
			}
		}
		return ""
	}

	// A cookie client: the token goes in Set-Cookie only.
	rec := serve("/put?v=browser", nil)
	browser := cookieOf(rec)
	if browser == "" {
		t.Fatal("a cookie client got no cookie")
	}
	if v, ok := rec.Header()[hdr]; ok {
		t.Fatalf("a cookie client's token was also sent in %s: %q (readable by page script)", hdr, v)
	}

	// A header client (asking with any value): the token goes in the
	// header only, never in Set-Cookie.
	for _, ask := range []http.Header{{hdr: {"new"}}, {hdr: {""}}, {"Authorization": {"Bearer none"}}} {
		rec = serve("/put?v=api", ask)
		if rec.Header().Get(hdr) == "" {
			t.Fatalf("%v: a header client got no token in %s", ask, hdr)
		}
		if c := rec.Header().Values("Set-Cookie"); len(c) != 0 {
			t.Fatalf("%v: a header client got a cookie: %q", ask, c)
		}
	}
	api := rec.Header().Get(hdr)
	if rec = serve("/get", http.Header{"Authorization": {"Bearer " + api}}); rec.Body.String() != "api" {
		t.Fatalf("Bearer token reads %q, want api", rec.Body.String())
	}

	// Both at once: the header's session answers, in the header; the
	// browser's cookie is neither read nor replaced.
	both := http.Header{hdr: {api}, "Cookie": {"session=" + browser}}
	rec = serve("/login?v=api2", both)
	if rec.Body.String() != "api2" || rec.Header().Get(hdr) == "" || rec.Header().Get(hdr) == api {
		t.Fatalf("renew over the header: body %q, token %q", rec.Body.String(), rec.Header().Get(hdr))
	}
	if c := rec.Header().Values("Set-Cookie"); len(c) != 0 {
		t.Fatalf("a request with a header token re-pointed the browser's cookie: %q", c)
	}
	if rec = serve("/get", http.Header{"Cookie": {"session=" + browser}}); rec.Body.String() != "browser" {
		t.Fatalf("the browser's cookie session after the header renew: %q, want browser", rec.Body.String())
	}
	// An invalid header token with a valid cookie: a fresh session, not
	// the cookie's (which would leak its token into the header).
	rec = serve("/put?v=fresh", http.Header{hdr: {"forged"}, "Cookie": {"session=" + browser}})
	if tok := rec.Header().Get(hdr); tok == "" || tok == browser {
		t.Fatalf("invalid header token + cookie: header token %q", tok)
	}
	if c := rec.Header().Values("Set-Cookie"); len(c) != 0 {
		t.Fatalf("invalid header token + cookie: Set-Cookie %q", c)
	}

	// Logout over the header ends the session with an empty header.
	rec = serve("/logout", http.Header{hdr: {rec.Header().Get(hdr)}})
	if v, ok := rec.Header()[hdr]; !ok || v[0] != "" || len(rec.Header().Values("Set-Cookie")) != 0 {
		t.Fatalf("logout over the header: %s %q, Set-Cookie %q", hdr, v, rec.Header().Values("Set-Cookie"))
	}
}

// TestCachingRule: a response whose content depended on a session is never
// stored by a shared cache, and one that carries a token by no cache; a
// response that did not use the session is left alone.
func TestCachingRule(t *testing.T) {
	store := memStore(t)
	for _, tokenHeader := range []string{"", "X-Session-Token"} {
		m, err := session.New(store, session.Options{Keys: []session.KeyPair{testKey}, TokenHeader: tokenHeader, Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		var cookie string
		{
			rec := httptest.NewRecorder()
			m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { session.From(r).Put("k", "v") })).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			cookie = rec.Result().Cookies()[0].Value
		}
		serve := func(cc string, use func(*session.Session)) http.Header {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/", nil)
			req.AddCookie(&http.Cookie{Name: "session", Value: cookie})
			m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if cc != "" {
					w.Header().Set("Cache-Control", cc)
				}
				if use != nil {
					use(session.From(r))
				}
				io.WriteString(w, "page")
			})).ServeHTTP(rec, req)
			return rec.Header()
		}
		read := func(s *session.Session) { s.GetString("k") }
		write := func(s *session.Session) { s.Put("k", "changed") } // re-sends the cookie
		vary := func(h http.Header) []string {
			var out []string
			for _, v := range h.Values("Vary") {
				for _, f := range strings.Split(v, ",") {
					out = append(out, strings.TrimSpace(f))
				}
			}
			return out
		}
		wantVary := []string{"Cookie"}
		if tokenHeader != "" {
			wantVary = append(wantVary, tokenHeader, "Authorization")
		}
		for _, c := range []struct {
			name, handlerCC string
			use             func(*session.Session)
			wantCC          string
			varies          bool
		}{
			{"untouched, no Cache-Control", "", nil, "", false},
			{"untouched, public", "public, max-age=600", nil, "public, max-age=600", false},
			{"read, no Cache-Control", "", read, "no-store", true},
			{"read, public", "public, max-age=60", read, "private, max-age=60", true},
			{"read, s-maxage", "max-age=60, s-maxage=600", read, "private, max-age=60", true},
			{"read, private", "private, max-age=60", read, "private, max-age=60", true},
			{"new token, public", "public, max-age=60", write, "no-store", true},
			{"new token, private", "private, max-age=60", write, "no-store", true},
		} {
			h := serve(c.handlerCC, c.use)
			if got := h.Get("Cache-Control"); got != c.wantCC {
				t.Errorf("header %q, %s: Cache-Control %q, want %q", tokenHeader, c.name, got, c.wantCC)
			}
			v := vary(h)
			for _, want := range wantVary {
				if slices.Contains(v, want) != c.varies {
					t.Errorf("header %q, %s: Vary %q; want %q listed: %v", tokenHeader, c.name, v, want, c.varies)
				}
			}
		}
	}
}
