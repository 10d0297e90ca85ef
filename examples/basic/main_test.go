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
	srv := httptest.NewServer(m.Handler(routes(m)))
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

// The devices page, with two browsers (two cookie jars, two User-Agents)
// signed in as the same user and a third as someone else: both of the
// user's are listed and the current one marked; "sign out" by handle ends
// exactly that device, and a handle used by another user ends nothing;
// "sign out all other devices" keeps the device that asked signed in and
// makes the other anonymous on its next request; a cross-site POST is
// refused.
func TestDevices(t *testing.T) {
	store := session.NewMemoryStore(session.MemoryOptions{})
	defer store.Close()
	m, err := newManager(store)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler(routes(m)))
	defer srv.Close()
	laptop, phone, mallory := browser("Laptop/1.0"), browser("Phone/2.0"), browser("Mallory/6.6")
	login := func(c *http.Client, user string) {
		t.Helper()
		if body := post(t, c, srv.URL+"/login", url.Values{"user": {user}}); !strings.Contains(body, "Hello, "+user) {
			t.Fatalf("login as %s:\n%s", user, body)
		}
	}
	signedIn := func(c *http.Client) bool {
		t.Helper()
		body := get(t, c, srv.URL+"/")
		return strings.Contains(body, "Hello, ada")
	}
	login(laptop, "ada")
	login(phone, "ada")
	login(mallory, "eve")

	// Both of ada's devices are listed, each marked from its own side.
	page := get(t, laptop, srv.URL+"/devices")
	rows := deviceRows(page)
	if len(rows) != 2 {
		t.Fatalf("laptop sees %d devices, want 2:\n%s", len(rows), page)
	}
	if !rows["Laptop/1.0"].current || rows["Phone/2.0"].current || rows["Phone/2.0"].handle == "" {
		t.Fatalf("laptop's list = %+v; want the laptop marked current, the phone with a sign-out handle:\n%s", rows, page)
	}
	if !strings.Contains(page, "127.0.0.1") || !strings.Contains(page, "this device") {
		t.Fatalf("devices page lacks the IP or the marker:\n%s", page)
	}
	if rows := deviceRows(get(t, phone, srv.URL+"/devices")); !rows["Phone/2.0"].current || rows["Laptop/1.0"].current {
		t.Fatalf("phone's list = %+v; want the phone marked current", rows)
	}
	phoneHandle := rows["Phone/2.0"].handle

	// Another user posting ada's phone's handle ends nothing.
	if body := post(t, mallory, srv.URL+"/devices/signout", url.Values{"handle": {phoneHandle}}); !strings.Contains(body, "already signed out") {
		t.Fatalf("eve signing out ada's phone:\n%s", body)
	}
	if !signedIn(phone) {
		t.Fatal("another user's handle signed ada's phone out")
	}
	// A cross-site form post is refused before the handler runs.
	req, _ := http.NewRequest("POST", srv.URL+"/devices/signout-others", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, err := laptop.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site POST = %v, %v; want 403", resp, err)
	} else {
		resp.Body.Close()
	}
	if !signedIn(phone) {
		t.Fatal("a cross-site POST signed the phone out")
	}

	// Sign out other devices, from the laptop.
	body := post(t, laptop, srv.URL+"/devices/signout-others", nil)
	if !strings.Contains(body, "Signed out 1 device.") || len(deviceRows(body)) != 1 {
		t.Fatalf("after signing out other devices:\n%s", body)
	}
	if !signedIn(laptop) {
		t.Fatal("signing out other devices signed out the laptop")
	}
	if signedIn(phone) {
		t.Fatal("the phone is still signed in after 'sign out other devices'")
	}
	if body := get(t, phone, srv.URL+"/"); !strings.Contains(body, "Hello, guest") {
		t.Fatalf("phone after sign-out:\n%s", body)
	}

	// Sign out one device by its handle.
	login(phone, "ada")
	rows = deviceRows(get(t, laptop, srv.URL+"/devices"))
	if len(rows) != 2 || rows["Phone/2.0"].handle == "" {
		t.Fatalf("after the phone signed in again: %+v", rows)
	}
	body = post(t, laptop, srv.URL+"/devices/signout", url.Values{"handle": {rows["Phone/2.0"].handle}})
	if !strings.Contains(body, "Signed out 1 device.") {
		t.Fatalf("after signing out the phone:\n%s", body)
	}
	if signedIn(phone) || !signedIn(laptop) {
		t.Fatal("signing out the phone by handle: want the phone anonymous and the laptop signed in")
	}
	// Eve was never touched.
	if body := get(t, mallory, srv.URL+"/"); !strings.Contains(body, "Hello, eve") {
		t.Fatalf("eve after ada's sign-outs:\n%s", body)
	}
}

// browser is a client with its own cookie jar and User-Agent.
func browser(ua string) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 5 * time.Second, Transport: uaTransport(ua)}
}

type uaTransport string

func (u uaTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", string(u))
	return http.DefaultTransport.RoundTrip(r)
}

type deviceRow struct {
	current bool
	handle  string
}

// deviceRows parses the devices table: User-Agent to its row.
func deviceRows(page string) map[string]deviceRow {
	rows := map[string]deviceRow{}
	for _, tr := range strings.Split(page, "<tr class=\"device")[1:] {
		tr, _, _ = strings.Cut(tr, "</tr>")
		ua := between(tr, `<td class="ua">`, "</td>")
		rows[ua] = deviceRow{
			current: strings.HasPrefix(tr, " current") && strings.Contains(tr, "this device"),
			handle:  between(tr, `name="handle" value="`, `"`),
		}
	}
	return rows
}

func between(s, start, end string) string {
	_, s, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	s, _, _ = strings.Cut(s, end)
	return s
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
