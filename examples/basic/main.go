// Command basic is the smallest complete use of the session package: no
// server, no configuration. It keeps sessions in memory and serves a page
// that counts your visits, a login and a logout (with SetUser and
// Destroy), a flash message shown once, and a "your devices" page that
// lists where you are signed in and signs out one device or all the
// others.
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

	srv := &http.Server{Handler: manager.Handler(routes(manager)), ReadHeaderTimeout: 10 * time.Second}
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
//
// The devices page shows each signed-in session's last request, browser
// and IP address. Those are personal data, so the library records them
// only when asked (Options.Metadata), and only for sessions bound to a
// user: say so in your privacy notice.
func newManager(store session.Store) (*session.Manager, error) {
	key := session.KeyPair{Hash: make([]byte, 32)}
	rand.Read(key.Hash)
	return session.New(store, session.Options{
		Keys:     []session.KeyPair{key},
		Metadata: session.Metadata{LastSeen: true, UserAgent: true, ClientIP: true},
	})
}

// routes returns the app's pages. Every form is a POST, the cookie is
// SameSite=Lax (the default), and http.CrossOriginProtection rejects a
// POST that a browser says comes from another site (Sec-Fetch-Site, or
// Origin), so another site cannot log you in or out or sign out your
// devices.
func routes(m *session.Manager) http.Handler {
	d := devices{m: m}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", home)
	mux.HandleFunc("POST /login", login)
	mux.HandleFunc("POST /logout", logout)
	mux.HandleFunc("GET /devices", d.list)
	mux.HandleFunc("POST /devices/signout", d.signOut)
	mux.HandleFunc("POST /devices/signout-others", d.signOutOthers)
	return http.NewCrossOriginProtection().Handler(mux)
}

var page = template.Must(template.New("home").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>session: basic example</title></head>
<body>
{{with .Flash}}<p style="background:#ffd"><strong>{{.}}</strong></p>{{end}}
<h1>Hello, {{with .User}}{{.}}{{else}}guest{{end}}</h1>
<p>You have visited this page <span id="visits">{{.Visits}}</span> time{{if ne .Visits 1}}s{{end}} in this session.</p>
{{if .User}}
<p><a href="/devices">Your devices</a></p>
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
	visits, err := s.Add("visits", 1) // concurrent requests each count
	if err != nil {
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
	// SetUser binds the session to the user, so that the store can list
	// and end the user's sessions (the devices page), and gives it a new
	// id: a token someone planted or saw before the login (session
	// fixation) is now worthless. The values are kept. Logging in again
	// as the same user only renews.
	var err error
	if s.UserID() == user {
		err = s.Renew()
	} else {
		err = s.SetUser(user)
	}
	if err != nil {
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

var devicesPage = template.Must(template.New("devices").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>session: your devices</title></head>
<body>
{{with .Flash}}<p style="background:#ffd"><strong>{{.}}</strong></p>{{end}}
<h1>Your devices, {{.User}}</h1>
<p>You are signed in on {{len .Devices}} device{{if ne (len .Devices) 1}}s{{end}}.</p>
<table>
<tr><th>Browser</th><th>IP address</th><th>Signed in</th><th>Last seen</th><th></th></tr>
{{range .Devices}}<tr class="device{{if .Current}} current{{end}}">
  <td class="ua">{{or .UserAgent "unknown"}}</td>
  <td class="ip">{{or .IP "unknown"}}</td>
  <td>{{.CreatedAt.Format "2006-01-02 15:04:05 MST"}}</td>
  <td>{{if .LastSeen.IsZero}}unknown{{else}}{{.LastSeen.Format "2006-01-02 15:04:05 MST"}}{{end}}</td>
  <td>{{if .Current}}<strong>this device</strong>{{else}}<form method="post" action="/devices/signout">
    <input type="hidden" name="handle" value="{{.Handle}}"><button>Sign out</button></form>{{end}}</td>
</tr>
{{end}}</table>
{{if gt (len .Devices) 1}}<form method="post" action="/devices/signout-others"><button>Sign out all other devices</button></form>{{end}}
<p><a href="/">Home</a></p>
</body></html>
`))

// devices serves the "your devices" page and its two forms.
type devices struct{ m *session.Manager }

// user returns the signed-in user, or "" after redirecting home.
func (d devices) user(w http.ResponseWriter, r *http.Request) string {
	user := session.From(r).UserID()
	if user == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
	}
	return user
}

func (d devices) list(w http.ResponseWriter, r *http.Request) {
	user := d.user(w, r)
	if user == "" {
		return
	}
	// r.Context() lets the manager mark this request's session Current.
	list, err := d.m.UserSessions(r.Context(), user)
	if err != nil {
		http.Error(w, "sessions unavailable", http.StatusServiceUnavailable)
		return
	}
	devicesPage.Execute(w, map[string]any{
		"User":    user,
		"Devices": list,
		"Flash":   session.From(r).PopString("flash"),
	})
}

// signOut ends one of the user's sessions, named by the handle the list
// showed. A handle of anyone else's session ends nothing: the manager
// only looks among this user's sessions.
func (d devices) signOut(w http.ResponseWriter, r *http.Request) {
	user := d.user(w, r)
	if user == "" {
		return
	}
	n, err := d.m.RevokeSession(r.Context(), user, r.FormValue("handle"))
	if err != nil {
		http.Error(w, "sessions unavailable", http.StatusServiceUnavailable)
		return
	}
	d.done(w, r, n, "That device was already signed out.")
}

// signOutOthers ends every session of the user but this one.
func (d devices) signOutOthers(w http.ResponseWriter, r *http.Request) {
	user := d.user(w, r)
	if user == "" {
		return
	}
	n, err := d.m.RevokeOtherSessions(r.Context(), user)
	if err != nil {
		http.Error(w, "sessions unavailable", http.StatusServiceUnavailable)
		return
	}
	d.done(w, r, n, "No other device was signed in.")
}

func (d devices) done(w http.ResponseWriter, r *http.Request, n int, none string) {
	msg := none
	switch {
	case n == 1:
		msg = "Signed out 1 device."
	case n > 1:
		msg = fmt.Sprintf("Signed out %d devices.", n)
	}
	session.From(r).Put("flash", msg)
	http.Redirect(w, r, "/devices", http.StatusSeeOther)
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
