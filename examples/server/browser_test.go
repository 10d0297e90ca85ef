package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
	"github.com/sessionkit/session/internal/exampletest"
)

// findChromium returns the path of a Chromium (Debian's "chromium"
// package) or Chrome; without one the test skips, or fails when
// SESSION_TEST_REQUIRE_BACKENDS=1 (CI installs it).
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	exampletest.Unavailable(t, "Chromium (apt-get install chromium)", errors.New("no chromium, chromium-browser or google-chrome on PATH"))
	return ""
}

// TestConsoleInBrowser drives the operator's console of a running
// examples/server on Redis in a real, headless Chromium: it logs in with
// HTTP Basic auth, checks the overview against Redis, finds a user with
// three sessions, ends one from its page and sees exactly that cookie
// stop working, then ends the rest, and ends every session from the
// confirmation page. It writes a screenshot of each page into
// $CONSOLE_SCREENSHOTS (a temporary directory by default).
func TestConsoleInBrowser(t *testing.T) {
	chrome := findChromium(t)
	env, rc, prefix := redisEnv(t)
	s := startServer(t, env)
	user := exampletest.RandomName("customer-")

	// Three devices of one user, and an anonymous visitor.
	agents := []string{
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
		"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
	}
	var devices [3]*http.Client
	var ids [3]string
	for i := range devices {
		devices[i], ids[i] = loginAs(t, s.base, user, "User-Agent", agents[i])
	}
	visitor := &http.Client{Timeout: 10 * time.Second}
	if code, b := do(t, visitor, "POST", s.base+"/api/test-session", `{"theme":"dark"}`); code != 200 {
		t.Fatalf("anonymous session: %d %s", code, b)
	}
	signedIn := func(c *http.Client) bool {
		code, b := do(t, c, "GET", s.base+"/api/me", "")
		return code == 200 && decode(t, b)["user"] == user
	}

	shots := os.Getenv("CONSOLE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()

	// Log in as a person does: the server's 401 with a Basic challenge is
	// answered with a user name and ADMIN_TOKEN as the password.
	authAsked := make(chan struct{}, 100)
	err := chromedp.Listen(bctx, func(ev any) {
		// This runs in the tab's read loop: answer from a goroutine.
		switch ev := ev.(type) {
		case *fetch.EventAuthRequired:
			select {
			case authAsked <- struct{}{}:
			default:
			}
			go chromedp.Call(bctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{
				RequestID: ev.RequestID,
				AuthChallengeResponse: &fetch.AuthChallengeResponse{
					Response: fetch.AuthChallengeResponseResponseProvideCredentials,
					Username: "operator",
					Password: "admin-token",
				},
			})
		case *fetch.EventRequestPaused:
			go chromedp.Call(bctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	})
	if err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	handleAuth := true
	if _, err := chromedp.Call(bctx, fetch.Enable, fetch.EnableParams{HandleAuthRequests: &handleAuth}); err != nil {
		t.Fatal(err)
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel chromedp.CSS) string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(v)
	}
	screenshot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100)) // 100: PNG
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The overview: the backend, and a count that matches Redis.
	do("overview", chromedp.Navigate(s.base+"/admin/"), chromedp.WaitVisible(chromedp.CSS("#backend")))
	screenshot("overview.png")
	if len(authAsked) == 0 {
		t.Error("the browser was never asked to log in")
	}
	if backend := text("#backend"); backend != "redis" {
		t.Errorf("overview backend %q, want redis", backend)
	}
	if live, want := text("#live-sessions"), liveKeys(t, rc, prefix); live != strconv.Itoa(want) || want != 4 {
		t.Errorf("overview shows %s live sessions; Redis holds %d (want 4)", live, want)
	}

	// Find the user with the search box.
	do("user search",
		chromedp.SetValue(chromedp.CSS("#q"), user),
		chromedp.Click(chromedp.CSS("header form.search button")),
		chromedp.WaitVisible(chromedp.CSS("#sessions")),
	)
	screenshot("user.png")
	if count := text("#count"); count != "3 live sessions." {
		t.Fatalf("user page says %q", count)
	}

	// Open the first session, and end it from its page.
	do("session page",
		chromedp.Click(chromedp.CSS("#sessions tbody tr:first-child td a")),
		chromedp.WaitVisible(chromedp.CSS("#store-id")),
	)
	screenshot("session.png")
	storeID := text("#store-id")
	do("end one session",
		chromedp.Click(chromedp.CSS("#end-session")),
		chromedp.WaitVisible(chromedp.CSS("p.notice")),
	)
	if notice, count := text("p.notice"), text("#count"); notice != "Ended 1 session." || count != "2 live sessions." {
		t.Fatalf("after ending one: %q, %q", notice, count)
	}
	ended := -1
	for i, id := range ids {
		if id == storeID {
			ended = i
		}
	}
	if ended < 0 {
		t.Fatalf("the session page's store id %s is none of the user's %v", storeID, ids)
	}
	for i, c := range devices {
		if in := signedIn(c); in == (i == ended) {
			t.Errorf("device %d signed in: %v (the ended one is %d)", i, in, ended)
		}
	}

	// End the other two with the user's "end all" button.
	do("end the user's sessions",
		chromedp.Click(chromedp.CSS("#end-user-all")),
		chromedp.WaitNotPresent(chromedp.CSS("#sessions")),
	)
	screenshot("user-ended.png")
	if notice := text("p.notice"); notice != "Ended 2 sessions." {
		t.Errorf("after ending all of the user's: %q", notice)
	}
	for i, c := range devices {
		if signedIn(c) {
			t.Errorf("device %d still signed in", i)
		}
	}

	// End every session: a wrong phrase does nothing, the right one
	// ends the anonymous visitor's too.
	do("end-all page", chromedp.Navigate(s.base+"/admin/end-all"), chromedp.WaitVisible(chromedp.CSS("h1")))
	screenshot("end-all.png")
	supported, err := chromedp.Run(bctx, chromedp.EvaluateAsDevTools[bool](`document.querySelector("#confirm") !== null`))
	if err != nil {
		t.Fatal(err)
	}
	if supported {
		do("wrong phrase",
			chromedp.SendKeys(chromedp.CSS("#confirm"), "end all"),
			chromedp.Click(chromedp.CSS("#end-all")),
			chromedp.WaitVisible(chromedp.CSS("#confirm-error")),
		)
		if n := liveKeys(t, rc, prefix); n != 1 {
			t.Fatalf("a wrong phrase changed the store: %d live", n)
		}
		do("right phrase", // the refused form comes back empty
			chromedp.SendKeys(chromedp.CSS("#confirm"), "end every session"),
			chromedp.Click(chromedp.CSS("#end-all")),
			chromedp.WaitVisible(chromedp.CSS("#backend")),
		)
		if notice := text("p.notice"); notice != "Every session was ended." {
			t.Errorf("after ending every session: %q", notice)
		}
		if code, b := do2(t, visitor, s.base+"/api/test-session"); code != 200 || strings.Contains(b, "dark") {
			t.Errorf("the visitor's session survived: %d %s", code, b)
		}
	} else {
		t.Error("the end-all page has no confirmation field")
	}

	// The overview again: the count still matches the store.
	do("overview again", chromedp.Navigate(s.base+"/admin/"), chromedp.WaitVisible(chromedp.CSS("#backend")))
	if live, want := text("#live-sessions"), liveKeys(t, rc, prefix); live != strconv.Itoa(want) {
		t.Errorf("overview shows %s live sessions; Redis holds %d", live, want)
	}
	cancelBrowser()
	s.stop()
}

// do2 is a GET with c, for use where do is shadowed.
func do2(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	code, b := do(t, c, "GET", url, "")
	return code, string(b)
}
