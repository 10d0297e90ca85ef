// Package console is an operator's console for the sessions of an app
// built on package session: an [http.Handler] the app mounts under a
// path of its choosing, behind its own authentication.
//
// Its pages: an overview (the backend or mode, each backend's
// reachability, latency and live session count, the manager's and the
// store's counters, the store's recent failures); a user's sessions
// (created, last seen, expiry, the client metadata the app records), with
// a button to end one or all of them; one session by store id (its keys
// and their sizes, expiry and user; values only when
// [Options.ShowValues]); and ending every session, behind a typed
// confirmation. Every page also answers JSON, for scripts: send Accept:
// application/json or add format=json to the query.
//
// The console never decides who is an operator: wrap it in the app's own
// authentication, and strip the path it is mounted under:
//
//	admin, err := console.New(console.Options{Manager: sessions, Backend: backend})
//	if err != nil {
//		return err
//	}
//	mux.Handle("/admin/", requireOperator(http.StripPrefix("/admin", admin)))
//
// Mount it at a path ending in a slash: its links are relative. The
// console renders on the server with html/template and serves its own
// style sheet, with no script and nothing from elsewhere, under a strict
// Content-Security-Policy it sets itself; it answers no-store, forbids
// framing and sends no Referer. Every action is a POST, refused when it
// comes from another origin ([http.CrossOriginProtection]), so another
// site cannot make an operator's browser end sessions. It never shows a
// token or a cookie value: a session is named by its store id (a hash of
// its token) or by its handle ([session.UserSession.Handle]); in the
// express-session mode, whose store ids are the tokens themselves, it
// neither shows nor looks up store ids.
package console

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/sessionkit/session"
)

// Options configures a [Console]. Manager is required; every other field
// has a default.
type Options struct {
	// Manager is the app's session manager: the console lists, reads and
	// ends sessions through it and its store ([session.Manager.Store]),
	// and decodes records with its codec. Required.
	Manager *session.Manager

	// Backend is what [session.Open] returned, when the app opened its
	// store that way: the overview then names the backend or mode and
	// shows what became of each backend at startup. Its Store must be the
	// Manager's. The default (nil) names the backend the store reports.
	Backend *session.Backend

	// ShowValues shows the values of a session on its page and in its
	// JSON. The default (false) shows only each key and its size: sessions
	// hold secrets (CSRF tokens, OAuth state, access tokens) that an
	// operator rarely needs to read.
	ShowValues bool

	// Timeout bounds the store calls of one page or action: health
	// checks, counts, listings, revocations. The default (0) is ten
	// seconds; a negative value is an error.
	Timeout time.Duration

	// Logger receives one line per action taken (a session or a user's
	// sessions ended, every session ended), with the user id, handle or
	// store id and the client's address, never a token. The default is
	// slog.Default().
	Logger *slog.Logger
}

// Console is the operator's console: an [http.Handler]. Make one with
// [New]; it is safe for concurrent use.
type Console struct {
	opts    Options
	m       *session.Manager
	store   session.Store
	handler http.Handler
}

// New returns a console over opts.Manager, or an error for options that
// cannot work: no Manager, a Backend whose Store is not the Manager's, a
// negative Timeout.
func New(opts Options) (*Console, error) {
	if opts.Manager == nil {
		return nil, errors.New("console: Options.Manager is required")
	}
	if opts.Backend != nil && !sameStore(opts.Backend.Store, opts.Manager.Store()) {
		return nil, errors.New("console: Options.Backend.Store is not the store of Options.Manager; pass the Backend the Manager was made with")
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("console: Options.Timeout is negative (%v); use 0 for the default", opts.Timeout)
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Console{opts: opts, m: opts.Manager, store: opts.Manager.Store()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", c.overview)
	mux.HandleFunc("GET /style.css", serveCSS)
	mux.HandleFunc("GET /user", c.user)
	mux.HandleFunc("POST /user", c.endUserSessions)
	mux.HandleFunc("GET /session", c.session)
	mux.HandleFunc("POST /session", c.endSession)
	mux.HandleFunc("GET /end-all", c.endAllForm)
	mux.HandleFunc("POST /end-all", c.endAll)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusNotFound, "no such page")
	})
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.opts.Logger.Warn("session console: refused a cross-origin request", "method", r.Method, "path", r.URL.Path, "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
		c.fail(w, r, http.StatusForbidden, "refused: this request came from another site (cross-origin), so nothing was done")
	}))
	c.handler = cop.Handler(mux)
	return c, nil
}

// sameStore reports whether a and b are the same store. Stores whose
// values cannot be compared (a struct holding a map) count as the same:
// comparing them would panic.
func sameStore(a, b session.Store) (same bool) {
	defer func() {
		if recover() != nil {
			same = true
		}
	}()
	return a == b
}

// ServeHTTP serves the console's pages and actions, relative to where it
// is mounted (see the package documentation).
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	c.handler.ServeHTTP(w, r)
}

// The embedded style sheet and page templates.
var (
	//go:embed static/console.css
	css []byte
	//go:embed templates/*.html
	templateFS embed.FS
	pages      = parsePages("overview", "user", "session", "endall", "error")
)

func serveCSS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(css)
}

// parsePages parses each page with the layout around it.
func parsePages(names ...string) map[string]*template.Template {
	funcs := template.FuncMap{
		"when":     when,
		"ago":      ago,
		"ms":       func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) },
		"bytes":    byteSize,
		"deref":    func(p *int64) int64 { return *p },
		"hasValue": func(v any) bool { return v != nil },
		"json":     jsonText,
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		out[n] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+n+".html"))
	}
	return out
}

// wantsJSON reports whether the client asked for JSON: format=json in the
// query, or Accept naming application/json before (or without) HTML.
func wantsJSON(r *http.Request) bool {
	if r.URL.Query().Get("format") == "json" {
		return true
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/json":
			return true
		case "text/html", "application/xhtml+xml":
			return false
		}
	}
	return false
}

// render answers with page filled with data, or with data as JSON when the
// client asked for JSON.
func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, page string, title string, data any) {
	if wantsJSON(r) {
		writeJSON(w, code, data)
		return
	}
	var buf strings.Builder
	err := pages[page].Execute(&buf, struct {
		Title string
		Page  string
		Data  any
	}{title, page, data})
	if err != nil {
		c.opts.Logger.Error("session console: rendering a page", "page", page, "error", err)
		http.Error(w, "the console could not render this page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, buf.String())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) // a client gone mid-answer needs no log
}

// errorJSON is the answer to a request that failed.
type errorJSON struct {
	Status int    `json:"status"`
	Error  string `json:"error"`
}

// fail answers with an error page (or JSON) saying msg.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	c.render(w, r, code, "error", http.StatusText(code), errorJSON{Status: code, Error: msg})
}

// storeFailed answers a request whose store call failed: 503, with why.
func (c *Console) storeFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("no answer within %v: %w", c.opts.Timeout, err)
	}
	c.fail(w, r, http.StatusServiceUnavailable, what+": "+err.Error())
}

// ctx bounds a page's store calls by Options.Timeout.
func (c *Console) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), c.opts.Timeout)
}

func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// ago says how far t is from now, in the largest sensible unit: "3m ago",
// "in 23h".
func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Until(t)
	suffix := ""
	prefix := "in "
	if d < 0 {
		d, prefix, suffix = -d, "", " ago"
	}
	var s string
	switch {
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		s = fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		s = fmt.Sprintf("%dd", int(d.Hours()/24))
	}
	return prefix + s + suffix
}

func byteSize(n int) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d B", n)
	default:
		return fmt.Sprintf("%.1f KiB", float64(n)/1024)
	}
}

// jsonText is v as indented JSON, for showing a value.
func jsonText(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(b)
}
