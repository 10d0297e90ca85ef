// Command embedded is an app meant to live in another site's iframe: a
// widget with a click counter kept in its session.
//
//	go run ./examples/embedded
//
// Inside a cross-site iframe a browser sends the app's cookie only when it
// is SameSite=None and Secure, and browsers that partition or block
// third-party cookies keep it only when it is Partitioned (CHIPS). So the
// cookie here is __Host-embed; SameSite=None; Secure; Partitioned. When the
// browser blocks it anyway, the page's script falls back to the
// header-token transport: it sends X-Session-Token (at first with the value
// "new"), gets each new token back in that response header, and sends it
// on every API call. The library answers each transport in its own: a
// request with the header never gets a cookie, and a cookie request never
// sees its token in a header the script could read.
//
// Open the printed /host URL: a page on http://localhost:PORT that embeds
// the app from http://127.0.0.1:PORT, a different site.
//
// A SameSite=None cookie rides along on cross-site requests, so the
// state-changing endpoints are behind http.CrossOriginProtection, which
// refuses cross-site POSTs (Sec-Fetch-Site, Origin).
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sessionkit/session"
)

// TokenHeader carries the session token for API calls when cookies are
// blocked.
const TokenHeader = "X-Session-Token"

func main() {
	addr := flag.String("addr", envOr("ADDR", "localhost:8090"), "address to listen on")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	// Who may frame the app: EMBED_PARENTS (space-separated origins), by
	// default the demo host page.
	parents := envOr("EMBED_PARENTS", "http://localhost:"+port)
	appURL := "http://127.0.0.1:" + port + "/"

	store := session.NewMemoryStore(session.MemoryOptions{})
	defer store.Close()
	h, err := newApp(store, os.Getenv("SESSION_SECRET"), strings.Fields(parents), appURL)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("examples/embedded: the app is %s; open http://localhost:%s/host to see it in a cross-site iframe (Ctrl-C to stop)\n", appURL, port)

	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// newManager configures sessions for an embedded app.
func newManager(store session.Store, secret string) (*session.Manager, error) {
	var key session.KeyPair
	if secret != "" {
		k, err := session.KeyFromSecret(secret, false)
		if err != nil {
			return nil, err
		}
		key = k
	} else {
		key.Hash = make([]byte, 32) // a demo with no secret: random key
		rand.Read(key.Hash)
	}
	return session.New(store, session.Options{
		Keys: []session.KeyPair{key},
		// __Host-: Secure, Path=/, no Domain, checked by session.New.
		CookieName: "__Host-embed",
		Cookie: session.CookieOptions{
			SameSite:    http.SameSiteNoneMode, // sent inside a cross-site iframe; forces Secure
			Partitioned: true,                  // CHIPS: a cookie jar per top-level site
		},
		// The header transport, for browsers that block the cookie
		// altogether: a request that sends this header is answered in it.
		TokenHeader: TokenHeader,
	})
}

// newApp returns the app's handler: the widget, its API and the demo
// host page. parents are the origins allowed to frame the widget.
func newApp(store session.Store, secret string, parents []string, appURL string) (http.Handler, error) {
	m, err := newManager(store, secret)
	if err != nil {
		return nil, err
	}
	api := http.NewServeMux()
	api.HandleFunc("GET /api/state", state)
	api.HandleFunc("POST /api/click", click)
	// A SameSite=None cookie is sent on cross-site requests too: refuse
	// cross-site writes.
	csrf := http.NewCrossOriginProtection()

	mux := http.NewServeMux()
	mux.Handle("/api/", csrf.Handler(m.Handler(api)))
	frameAncestors := "frame-ancestors " + strings.Join(parents, " ")
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", frameAncestors)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		widget.Execute(w, TokenHeader)
	})
	mux.HandleFunc("GET /host", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		host.Execute(w, appURL)
	})
	return mux, nil
}

type stateJSON struct {
	Clicks int `json:"clicks"`
	// Transport is how this request carried its session: "header",
	// "cookie", or "none" (a new session).
	Transport string `json:"transport"`
}

func transport(r *http.Request) string {
	switch {
	case r.Header.Get(TokenHeader) != "" && r.Header.Get(TokenHeader) != "new",
		strings.HasPrefix(strings.ToLower(r.Header.Get("Authorization")), "bearer "):
		return "header"
	case len(r.CookiesNamed("__Host-embed")) > 0:
		return "cookie"
	}
	return "none"
}

func state(w http.ResponseWriter, r *http.Request) {
	s := session.From(r)
	if err := s.Err(); err != nil {
		http.Error(w, "session unavailable", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, stateJSON{Clicks: s.GetInt("clicks"), Transport: transport(r)})
}

func click(w http.ResponseWriter, r *http.Request) {
	s := session.From(r)
	n, err := s.Add("clicks", 1) // concurrent clicks all count
	if err != nil {
		http.Error(w, "session unavailable", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, stateJSON{Clicks: int(n), Transport: transport(r)})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

var widget = template.Must(template.New("widget").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>embedded widget</title></head>
<body style="font-family:sans-serif">
<p>Clicks in this session: <strong id="clicks">…</strong> <small>(session via <span id="transport">…</span>)</small></p>
<button id="click">Click</button>
<script>
// Cookies first. If the browser does not keep the cookie (third-party
// cookies blocked), switch to the header transport: ask for a token with
// the value "new", then send back the token from the last response that
// carried one. Kept in memory only: a page that must survive reloads
// without cookies can use sessionStorage.
let useHeader = false, token = "";
async function call(method, path) {
  const headers = useHeader ? {"{{.}}": token || "new"} : {};
  const resp = await fetch(path, {method, headers, credentials: "same-origin"});
  const t = resp.headers.get("{{.}}");
  if (t !== null) token = t;
  const s = await resp.json();
  document.getElementById("clicks").textContent = s.clicks;
  document.getElementById("transport").textContent = s.transport;
  return s;
}
document.getElementById("click").onclick = async () => {
  const s = await call("POST", "/api/click");
  if (!useHeader && s.clicks === 1 && (await call("GET", "/api/state")).clicks === 0) {
    useHeader = true; // the cookie did not stick
    await call("POST", "/api/click");
  }
};
call("GET", "/api/state");
</script>
</body></html>
`))

var host = template.Must(template.New("host").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>a site that embeds the widget</title></head>
<body style="font-family:sans-serif">
<h1>Another site</h1>
<p>The frame below is the widget from {{.}}, a different site.</p>
<iframe src="{{.}}" width="480" height="120" style="border:1px solid #888"></iframe>
</body></html>
`))

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
