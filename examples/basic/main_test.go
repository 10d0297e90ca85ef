package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/internal/exampletest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	exampletest.Cleanup()
	os.Exit(code)
}

// The README's first command: the program, built as `go run` builds it
// and started with an empty environment, prints its URL and serves the
// page there.
func TestRunsWithNoEnvironment(t *testing.T) {
	bin := exampletest.Build(t, "./examples/basic")
	// An empty environment; only the port is chosen, so that the test
	// never takes 8080 from someone else.
	p := exampletest.Start(t, bin, nil, "-addr", "127.0.0.1:0")
	line := p.WaitLine("http://", 20*time.Second)
	u := line[strings.Index(line, "http://"):]
	u = strings.Fields(u)[0]

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 5 * time.Second}
	for want := 1; want <= 2; want++ {
		body := get(t, c, u)
		if !strings.Contains(body, `<span id="visits">`+itoa(want)+`</span>`) {
			t.Fatalf("visit %d: page does not count it:\n%s", want, body)
		}
	}
	if code := p.Stop(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; output:\n%s", code, p.Output())
	}
}

// Login renews the session (new cookie, counter kept) and shows a flash
// once; logout destroys it (counter gone) and shows its own flash.
func TestLoginLogoutFlash(t *testing.T) {
	store := session.NewMemoryStore(session.MemoryOptions{})
	defer store.Close()
	m, err := newManager(store)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler(routes()))
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 5 * time.Second}
	base, _ := url.Parse(srv.URL)

	get(t, c, srv.URL+"/")
	before := jar.Cookies(base)[0].Value

	body := post(t, c, srv.URL+"/login", url.Values{"user": {"<ada>"}})
	if !strings.Contains(body, "Hello, &lt;ada&gt;") || !strings.Contains(body, "Welcome, &lt;ada&gt;!") {
		t.Fatalf("after login:\n%s", body)
	}
	if !strings.Contains(body, `<span id="visits">2</span>`) {
		t.Fatalf("login lost the visit count:\n%s", body)
	}
	if after := jar.Cookies(base)[0].Value; after == before {
		t.Fatal("login did not renew the session's cookie")
	}
	body = get(t, c, srv.URL+"/")
	if strings.Contains(body, "Welcome") {
		t.Fatalf("flash shown twice:\n%s", body)
	}

	body = post(t, c, srv.URL+"/logout", nil)
	if !strings.Contains(body, "Hello, guest") || !strings.Contains(body, "You are logged out.") || !strings.Contains(body, `<span id="visits">1</span>`) {
		t.Fatalf("after logout:\n%s", body)
	}
	if n, _ := store.Count(t.Context()); n != 1 {
		t.Fatalf("store holds %d sessions after logout, want only the fresh one", n)
	}
}

func get(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return body(t, resp)
}

func post(t *testing.T, c *http.Client, u string, form url.Values) string {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	return body(t, resp)
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s\n%s", resp.Request.Method, resp.Request.URL, resp.Status, b)
	}
	return string(b)
}

func itoa(n int) string { return strconv.Itoa(n) }
