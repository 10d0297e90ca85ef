package session_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sessionkit/session"
)

// TestHostileTokens sends malformed cookies and header tokens: each gets a
// fresh session (or the legitimate one it also carries), never a panic, a
// 500, or another user's session.
func TestHostileTokens(t *testing.T) {
	a := newApp(t, memStore(t), session.Options{TokenHeader: "X-Session-Token"})
	routes(a)
	a.do("POST", "/login?user=victim")
	victim := a.cookie(a.client)

	oldKey := session.KeyPair{Hash: []byte("an-old-key-that-was-removed-0123456789")}
	oldCodec, _ := session.NewSecureCookieCodec(oldKey)
	signedOld, _ := oldCodec.Encode("session", "some-token")
	otherName, _ := (func() (string, error) { c, _ := session.NewSecureCookieCodec(testKey); return c.Encode("other", "tok") })()

	cases := map[string]string{
		"empty":                              "",
		"100KiB":                             strings.Repeat("A", 100<<10),
		"not base64":                         "!!!$$$***",
		"base64 garbage":                     base64.URLEncoding.EncodeToString([]byte("garbage|garbage|garbage")),
		"removed key":                        signedOld,
		"signed for a different cookie name": otherName,
		"victim truncated":                   victim[:len(victim)-3],
		"victim bit flip":                    flip(victim),
		"control chars":                      "abc\x01\x02def",
		"pipe-separated":                     "1|2|3|4|5",
	}
	for name, value := range cases {
		t.Run(name, func(t *testing.T) {
			for _, via := range []string{"cookie", "header", "bearer"} {
				req, _ := http.NewRequest("GET", a.srv.URL+"/get?k=user", nil)
				switch via {
				case "cookie":
					req.Header.Set("Cookie", "session="+value)
				case "header":
					req.Header.Set("X-Session-Token", value)
				case "bearer":
					req.Header.Set("Authorization", "Bearer "+value)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					// net/http refuses some header values client-side.
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 500 || string(body) != "" {
					t.Fatalf("%s via %s: %s %q; want 200 and an empty session", name, via, resp.Status, body)
				}
			}
		})
	}

	// Two cookies of our name, one bad: the good one is used.
	req, _ := http.NewRequest("GET", a.srv.URL+"/get?k=user", nil)
	req.Header.Set("Cookie", "session=forged; session="+victim)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "victim" {
		t.Fatalf("duplicated cookie with one valid: %q", body)
	}

	// The header transport works end to end.
	req, _ = http.NewRequest("GET", a.srv.URL+"/get?k=user", nil)
	req.Header.Set("Authorization", "Bearer "+victim)
	resp, _ = http.DefaultClient.Do(req)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "victim" {
		t.Fatalf("bearer token: %q", body)
	}
}

func flip(s string) string {
	b := []byte(s)
	if b[10] == 'A' {
		b[10] = 'B'
	} else {
		b[10] = 'A'
	}
	return string(b)
}

func TestHeaderTokenIssued(t *testing.T) {
	a := newApp(t, memStore(t), session.Options{TokenHeader: "X-Session-Token"})
	routes(a)
	noJar := &http.Client{}
	// A client without a token asks for the header transport by sending
	// the header with any value.
	resp, _ := a.doWith(noJar, "POST", "/put?k=user&v=api", http.Header{"X-Session-Token": {"new"}})
	tok := resp.Header.Get("X-Session-Token")
	if tok == "" {
		t.Fatal("new session's token not sent in the response header")
	}
	_, body := a.doWith(noJar, "GET", "/get?k=user", http.Header{"X-Session-Token": {tok}})
	if body != "api" {
		t.Fatalf("header token: %q", body)
	}
}

func TestKeyRotation(t *testing.T) {
	store := memStore(t)
	oldKey := session.KeyPair{Hash: []byte("old-key-old-key-old-key-old-key-!")}
	newKey := session.KeyPair{Hash: []byte("new-key-new-key-new-key-new-key-!"), Block: []byte("0123456789abcdef")}
	serve := func(keys []session.KeyPair, cookie string) (string, string) {
		m, err := session.New(store, session.Options{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/", nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := session.From(r)
			user := s.GetString("user")
			if user == "" {
				s.Put("user", "ada")
			}
			fmt.Fprint(w, user)
		})).ServeHTTP(rec, req)
		c := rec.Result().Cookies()
		if len(c) == 0 {
			return "", rec.Body.String()
		}
		return c[0].Name + "=" + c[0].Value, rec.Body.String()
	}
	cookie, _ := serve([]session.KeyPair{oldKey}, "")
	// New key first, old key still verifying: the old cookie still works.
	if _, body := serve([]session.KeyPair{newKey, oldKey}, cookie); body != "ada" {
		t.Fatalf("old cookie refused during rotation: %q", body)
	}
	// Old key removed: the old cookie starts a fresh session.
	if _, body := serve([]session.KeyPair{newKey}, cookie); body != "" {
		t.Fatalf("cookie signed with a removed key accepted: %q", body)
	}
	for _, bad := range [][]session.KeyPair{{{Hash: []byte("short")}}, {{Hash: testKey.Hash, Block: []byte("17-bytes-of-block")}}} {
		if _, err := session.New(store, session.Options{Keys: bad}); err == nil {
			t.Errorf("New accepted bad keys %q", bad)
		}
	}
	if _, err := session.KeyFromSecret("too short", false); err == nil {
		t.Error("KeyFromSecret accepted a short secret")
	}
}

// FuzzTokenDecode: no cookie or header value makes decoding panic, and
// only values the codec made decode.
func FuzzTokenDecode(f *testing.F) {
	c, _ := session.NewSecureCookieCodec(testKey, session.KeyPair{Hash: []byte("second-key-second-key-second-key"), Block: []byte("0123456789abcdef")})
	good, _ := c.Encode("session", "token")
	for _, s := range []string{"", good, good[:20], "a|b|c", strings.Repeat("=", 100), "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		// Only "token" was ever signed with these keys, so a value that
		// verifies as anything else is a forgery that got through.
		if tok, _, err := c.Decode("session", value); err == nil && tok != "token" {
			t.Fatalf("%q decoded to %q, a token these keys never signed", value, tok)
		}
	})
}

// FuzzRequestTokens drives whole requests with arbitrary Cookie,
// Authorization and token headers through the middleware: no input makes
// it panic or answer 5xx, and none reaches the one stored session.
func FuzzRequestTokens(f *testing.F) {
	store := session.NewMemoryStore(session.MemoryOptions{DisableCleanup: true})
	m, _ := session.New(store, session.Options{Keys: []session.KeyPair{testKey}, TokenHeader: "X-Session-Token", Logger: discardLogger()})
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		if s.GetString("owner") != "" {
			w.WriteHeader(http.StatusTeapot) // reached the stored session
			return
		}
		s.Put("seen", true)
	}))
	// The one stored session, whose token the fuzzer does not have.
	rec := httptest.NewRecorder()
	m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { session.From(r).Put("owner", "x") })).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	c, _ := session.NewSecureCookieCodec(testKey)
	forged, _ := c.Encode("session", "guess")
	for _, s := range []string{"", "session=" + forged, "session=a; session=b", "session=" + strings.Repeat("x", 5000), "session=\"q\""} {
		f.Add(s, "Bearer "+forged, forged)
	}
	f.Fuzz(func(t *testing.T, cookie, authorization, token string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Cookie", cookie)
		req.Header.Set("Authorization", authorization)
		req.Header.Set("X-Session-Token", token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 || rec.Code == http.StatusTeapot {
			t.Fatalf("status %d", rec.Code)
		}
	})
}
