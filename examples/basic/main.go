// Command basic is the smallest complete use of the session package: no
// server, no configuration. It keeps sessions in memory and serves a page
// that counts your visits, a login and a logout (with Renew and Destroy),
// and a flash message shown once.
//
//	go run ./examples/basic
//
// It prints the URL it listens on (http://localhost:8080/ unless -addr or
// ADDR says otherwise, or a free port if 8080 is taken). Sessions are lost
// when it stops: for sessions that survive a restart, see examples/server.
package main

import (
	"context"
	"crypto/rand"
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

func main() {
	addr := flag.String("addr", envOr("ADDR", "localhost:8080"), "address to listen on")
	flag.Parse()

	store := session.NewMemoryStore(session.MemoryOptions{})
	defer store.Close()
	manager, err := newManager(store)
	if err != nil {
		log.Fatal(err)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil && *addr == "localhost:8080" {
		// The default port is taken: any free port will do for a demo.
		ln, err = net.Listen("tcp", "localhost:0")
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("examples/basic: open %s in your browser (Ctrl-C to stop)\n", displayURL(ln.Addr(), *addr))

	srv := &http.Server{Handler: manager.Handler(routes()), ReadHeaderTimeout: 10 * time.Second}
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

// newManager makes the session manager. A random key is fine here, since
// the memory store forgets every session on restart anyway; a real server
// derives its key from a secret (session.KeyFromSecret) so that cookies
// stay valid across restarts and between processes.
func newManager(store session.Store) (*session.Manager, error) {
	key := session.KeyPair{Hash: make([]byte, 32)}
	rand.Read(key.Hash)
	return session.New(store, session.Options{Keys: []session.KeyPair{key}})
}

// routes returns the app's pages. Forms are POSTs and the cookie is
// SameSite=Lax (the default), so another site cannot log you in or out.
func routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", home)
	mux.HandleFunc("POST /login", login)
	mux.HandleFunc("POST /logout", logout)
	return mux
}

var page = template.Must(template.New("home").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>session: basic example</title></head>
<body>
{{with .Flash}}<p style="background:#ffd"><strong>{{.}}</strong></p>{{end}}
<h1>Hello, {{with .User}}{{.}}{{else}}guest{{end}}</h1>
<p>You have visited this page <span id="visits">{{.Visits}}</span> time{{if ne .Visits 1}}s{{end}} in this session.</p>
{{if .User}}
<form method="post" action="/logout"><button>Log out</button></form>
{{else}}
<form method="post" action="/login">
  <label>Name <input name="user" required maxlength="64"></label>
  <button>Log in</button>
</form>
{{end}}
</body></html>
`))

func home(w http.ResponseWriter, r *http.Request) {
	s := session.From(r)
	visits := s.GetInt("visits") + 1
	if err := s.Put("visits", visits); err != nil {
		http.Error(w, "session unavailable", http.StatusServiceUnavailable)
		return
	}
	page.Execute(w, map[string]any{
		"User":   s.GetString("user"),
		"Visits": visits,
		"Flash":  s.PopString("flash"), // shown once, then gone
	})
}

func login(w http.ResponseWriter, r *http.Request) {
	user := strings.TrimSpace(r.FormValue("user"))
	if user == "" || len(user) > 64 {
		http.Error(w, "a name of 1 to 64 characters, please", http.StatusBadRequest)
		return
	}
	s := session.From(r)
	// A new id after login: a token someone planted or saw before the
	// login (session fixation) is now worthless. The values are kept.
	if err := s.Renew(); err != nil {
		http.Error(w, "session unavailable", http.StatusServiceUnavailable)
		return
	}
	s.Put("user", user)
	s.Put("flash", "Welcome, "+user+"! Your session has a new id.")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func logout(w http.ResponseWriter, r *http.Request) {
	s := session.From(r)
	// Destroy deletes the record and expires the cookie.
	if err := s.Destroy(); err != nil {
		http.Error(w, "session unavailable", http.StatusServiceUnavailable)
		return
	}
	// Values put after Destroy start a fresh session: just the flash.
	s.Put("flash", "You are logged out.")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// displayURL is the URL to open for a listener on addr, which was asked
// for as requested.
func displayURL(addr net.Addr, requested string) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String() + "/"
	}
	if h, _, _ := net.SplitHostPort(requested); h == "localhost" || h == "" || net.ParseIP(host).IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}
