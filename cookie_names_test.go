package session_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sessionkit/session"
)

// TestCookieNameRejected: every name that is not an RFC 6265 token is
// refused by New with an error naming the cookie and the character. For
// each, net/http would send an empty Set-Cookie: sessions would silently
// never stick.
func TestCookieNameRejected(t *testing.T) {
	bad := map[string]string{ // name -> what the error must show
		"a/b":        `'/'`,
		"sess:id":    `':'`,
		"a b":        `' '`,
		"a\tb":       `'\t'`,
		"a\x00b":     `'\x00'`,
		"a\x01b":     `'\x01'`,
		"a\rb":       `'\r'`,
		"a\nb":       `'\n'`,
		"a\x7fb":     `'\x7f'`,
		"sessión":    "non-ASCII byte 0xc3",
		"\xffsid":    "non-ASCII byte 0xff",
		"__Host-a/b": `'/'`,
		"__host-a:b": `':'`,
	}
	for _, c := range `()<>@,;:\"/[]?={}` {
		bad["s"+string(c)+"id"] = fmt.Sprintf("%q", c)
	}
	for name, want := range bad {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			if s := (&http.Cookie{Name: name, Value: "v"}).String(); s != "" {
				t.Fatalf("net/http sends %q for this name: not a name net/http drops", s)
			}
			_, err := session.New(memStore(t), session.Options{CookieName: name, Keys: []session.KeyPair{testKey}})
			if err == nil {
				t.Fatalf("New accepted cookie name %q", name)
			}
			if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("%q", name)) || !strings.Contains(msg, want) {
				t.Fatalf("error %q does not name the cookie %q and the character %s", msg, name, want)
			}
		})
	}
}

// TestCookiePrefixCaseInsensitive: browsers match __Host- and __Secure-
// in any case, so New holds every spelling to their rules.
func TestCookiePrefixCaseInsensitive(t *testing.T) {
	mem := memStore(t)
	for _, o := range []session.Options{
		{CookieName: "__host-x", Cookie: session.CookieOptions{Domain: "example.com"}},
		{CookieName: "__HOST-x", Cookie: session.CookieOptions{Domain: "example.com"}},
		{CookieName: "__Host-x", Cookie: session.CookieOptions{Domain: "example.com"}},
		{CookieName: "__host-x", Cookie: session.CookieOptions{Path: "/app"}},
		{CookieName: "__http-x", Cookie: session.CookieOptions{AllowScript: true}},
		{CookieName: "__Host-Http-x", Cookie: session.CookieOptions{AllowScript: true}},
	} {
		o.Keys = []session.KeyPair{testKey}
		if _, err := session.New(mem, o); err == nil || !strings.Contains(err.Error(), o.CookieName) {
			t.Errorf("New(%q, %+v): err %v; want an error naming the cookie", o.CookieName, o.Cookie, err)
		}
	}
	for _, name := range []string{"__host-x", "__HoSt-x", "__secure-x", "__SECURE-x", "__http-x"} {
		m, err := session.New(mem, session.Options{CookieName: name, Keys: []session.KeyPair{testKey}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !m.Options().Cookie.Secure {
			t.Errorf("%s: cookie not forced Secure", name)
		}
	}
}

// TestCookieDomainPathRejected: a Domain net/http would drop (logging,
// then sending a host-only cookie) and a Path browsers would ignore or
// net/http would alter are refused by New, naming the cookie.
func TestCookieDomainPathRejected(t *testing.T) {
	mem := memStore(t)
	for _, d := range []string{"https://example.com", "example.com:8080", "example.com/app", "exa mple.com",
		"..example.com", "-example.com", "example-.com", "exam_ple.com", "::1", "[::1]", "example.com;x", "bücher.de", "123"} {
		if s := (&http.Cookie{Name: "s", Value: "v", Domain: d}).String(); strings.Contains(s, "Domain=") {
			t.Errorf("net/http sends Domain %q (%s): the test's list is wrong", d, s)
		}
		if _, err := session.New(mem, session.Options{Keys: []session.KeyPair{testKey}, Cookie: session.CookieOptions{Domain: d}}); err == nil || !strings.Contains(err.Error(), "Domain") {
			t.Errorf("Domain %q: err %v; want an error about the Domain", d, err)
		}
	}
	for _, p := range []string{"app", "./app", "/a;b", "/a\nb", "/a\x00", "/é"} {
		if _, err := session.New(mem, session.Options{Keys: []session.KeyPair{testKey}, Cookie: session.CookieOptions{Path: p}}); err == nil || !strings.Contains(err.Error(), "Path") {
			t.Errorf("Path %q: err %v; want an error about the Path", p, err)
		}
	}
	for _, ss := range []http.SameSite{-1, 5, 100} {
		if _, err := session.New(mem, session.Options{Keys: []session.KeyPair{testKey}, Cookie: session.CookieOptions{SameSite: ss}}); err == nil || !strings.Contains(err.Error(), "CookieOptions.SameSite") {
			t.Errorf("SameSite %d: err %v", ss, err)
		}
	}
	for _, d := range []string{"example.com", ".example.com", "localhost", "a-b.example.co.uk", "127.0.0.1"} {
		if _, err := session.New(mem, session.Options{Keys: []session.KeyPair{testKey}, Cookie: session.CookieOptions{Domain: d}}); err != nil {
			t.Errorf("Domain %q refused: %v", d, err)
		}
		if s := (&http.Cookie{Name: "s", Value: "v", Domain: d}).String(); !strings.Contains(s, "Domain=") {
			t.Errorf("accepted Domain %q is dropped by net/http: %s", d, s)
		}
	}
}

// TestCookieNamesRoundTrip: every kind of name New accepts produces a
// non-empty Set-Cookie that a real client (http.Client with a cookie jar)
// keeps and sends back, so the session sticks. Secure names go over TLS.
// Domain and Path options are exercised the same way.
func TestCookieNamesRoundTrip(t *testing.T) {
	type tc struct {
		name   string
		cookie session.CookieOptions
		host   string // request host, dialled to the test server
		path   string // request path prefix
	}
	cases := []tc{
		{name: "session"}, {name: "sid"}, {name: "SID_2"}, {name: "a.b"}, {name: "x-y"},
		{name: "!#$%&'*+-.^_`|~"}, {name: "9"},
		{name: "__Host-sid"}, {name: "__host-sid"}, {name: "__HOST-sid"},
		{name: "__Secure-sid"}, {name: "__secure-sid"},
		{name: "__Http-sid"}, {name: "__Host-Http-sid"},
		{name: "shared", cookie: session.CookieOptions{Domain: "example.com"}, host: "app.example.com"},
		{name: "dotted", cookie: session.CookieOptions{Domain: ".example.com"}, host: "app.example.com"},
		{name: "__Secure-shared", cookie: session.CookieOptions{Domain: "example.com"}, host: "app.example.com"},
		{name: "scoped", cookie: session.CookieOptions{Path: "/app"}, path: "/app"},
		{name: "strict", cookie: session.CookieOptions{SameSite: http.SameSiteStrictMode}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := session.New(memStore(t), session.Options{CookieName: c.name, Cookie: c.cookie, Keys: []session.KeyPair{testKey}, Logger: discardLogger()})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s := session.From(r)
				if v := r.URL.Query().Get("v"); v != "" {
					s.Put("k", v)
				}
				io.WriteString(w, s.GetString("k"))
			}))
			// Every cookie goes over TLS: Secure ones must.
			srv := httptest.NewTLSServer(h)
			t.Cleanup(srv.Close)
			client := srv.Client()
			jar, _ := cookiejar.New(nil)
			client.Jar = jar
			tr := client.Transport.(*http.Transport)
			tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
			}
			host := c.host
			if host == "" {
				host = "example.com" // in the test certificate
			}
			if c.host != "" {
				tr.TLSClientConfig.ServerName = "example.com"
			}
			base := "https://" + host + c.path
			get := func(q string) (*http.Response, string) {
				resp, err := client.Get(base + "/x" + q)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp, string(b)
			}
			resp, _ := get("?v=kept")
			sc := resp.Header.Values("Set-Cookie")
			if len(sc) != 1 || !strings.HasPrefix(sc[0], c.name+"=") || len(sc[0]) <= len(c.name)+1 {
				t.Fatalf("Set-Cookie %q; want one non-empty %s cookie", sc, c.name)
			}
			if c.cookie.Domain != "" && !strings.Contains(sc[0], "Domain=example.com") {
				t.Fatalf("Set-Cookie %q lost its Domain", sc[0])
			}
			if _, body := get(""); body != "kept" {
				t.Fatalf("the session did not stick: got %q, Set-Cookie was %q", body, sc[0])
			}
			if c.cookie.Domain != "" {
				// A sibling host under the domain shares the session.
				base = "https://other.example.com" + c.path
				if _, body := get(""); body != "kept" {
					t.Fatalf("Domain cookie not sent to a sibling host: %q", body)
				}
			}
		})
	}
}
