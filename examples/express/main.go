// Command express is a Go service that shares live sessions with a running
// express-session app (express-session 1.x with connect-redis 7 or
// connect-pg-simple 10, or a Prisma express_sessions table): the same
// cookie, the same records, so that routes can move from Node to Go one at
// a time. It has the endpoints of the minimal Node app in node/app.js,
// which interop_test.go runs side by side with it.
//
//	REDIS_URL=redis://127.0.0.1:6379 SESSION_SECRET='keyboard cat' go run ./examples/express
//
// Environment (the Node app's names and defaults):
//
//	ADDR                     listen address, default 127.0.0.1:3001
//	SESSION_SECRET           express-session's secret (verbatim; short ones are warned about)
//	SESSION_SECRET_PREVIOUS  older secrets, comma-separated: verify, and re-sign with the first
//	REDIS_URL                connect-redis's Redis (wins when DATABASE_URL is set too)
//	DATABASE_URL             Postgres with connect-pg-simple's or Prisma's table
//	SESSION_REDIS_PREFIX     default sess:
//	SESSION_COOKIE_NAME      default connect.sid
//	SESSION_TABLE            default session
//	SESSION_TABLE_LAYOUT     connect-pg-simple (default) or prisma
//
// Cookie: max age 24 h, HttpOnly, Path=/, SameSite=Lax, rolling (the
// expiry moves and the cookie is re-sent on every request with a session).
//
//	POST /api/test-session   merge a JSON object into the session (a "cookie" key is ignored); answers the session
//	GET  /api/test-session   the session's values as top-level keys ("cookie" too, as express's)
//	POST /api/logout         destroy the session: {"ok":true}
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/express"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(logger); err != nil {
		logger.Error("examples/express: " + err.Error())
		os.Exit(1)
	}
}

func run(logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h, closeStore, err := setup(ctx, os.LookupEnv, logger)
	if err != nil {
		return err
	}
	defer closeStore()
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = "127.0.0.1:3001"
	}
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("listening", "addr", addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// setup builds the handler from the environment read through lookup; the
// returned func closes the store.
func setup(ctx context.Context, lookup func(string) (string, bool), logger *slog.Logger) (http.Handler, func() error, error) {
	withDefaults := func(k string) (string, bool) {
		v, ok := lookup(k)
		if k == "SESSION_TABLE_LAYOUT" && v == "" {
			// The express-session mode, whichever store: its defaults
			// (table session, prefix sess:) and verbatim secrets.
			return express.LayoutConnectPgSimple, true
		}
		return v, ok
	}
	cfg, err := session.ConfigFromEnv(withDefaults)
	if err != nil {
		return nil, nil, err
	}
	store, err := express.OpenStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	closeStore := func() error {
		if c, ok := store.(io.Closer); ok {
			return c.Close()
		}
		return nil
	}
	m, err := express.New(store, express.Secrets(cfg), session.Options{
		CookieName:  cfg.CookieName,
		IdleTimeout: 24 * time.Hour,
		// rolling: true. Every request with a session moves its expiry
		// (one EXPIRE or UPDATE, as Node's touch) and re-sends the cookie.
		TouchInterval: time.Nanosecond,
		Cookie:        session.CookieOptions{Domain: cfg.CookieDomain, SameSite: http.SameSiteLaxMode},
		Logger:        logger,
	})
	if err != nil {
		closeStore()
		return nil, nil, err
	}
	return m.Handler(routes()), closeStore, nil
}

func routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/test-session", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
		dec.UseNumber()
		if err := dec.Decode(&body); err != nil || body == nil {
			http.Error(w, `{"error":"want a JSON object"}`, http.StatusBadRequest)
			return
		}
		s := session.From(r)
		for k, v := range body {
			if k == "cookie" {
				continue // express-session's own
			}
			if err := s.Put(k, v); err != nil {
				http.Error(w, `{"error":"session unavailable"}`, http.StatusServiceUnavailable)
				return
			}
		}
		writeSession(w, s)
	})
	mux.HandleFunc("GET /api/test-session", func(w http.ResponseWriter, r *http.Request) {
		writeSession(w, session.From(r))
	})
	mux.HandleFunc("POST /api/logout", func(w http.ResponseWriter, r *http.Request) {
		if err := session.From(r).Destroy(); err != nil && !errors.Is(err, session.ErrHeadersSent) {
			http.Error(w, `{"error":"session unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	})
	return mux
}

// writeSession answers the session's values as one JSON object. Its
// changes are committed before the first byte.
func writeSession(w http.ResponseWriter, s *session.Session) {
	out := map[string]any{}
	for _, k := range s.Keys() {
		out[k] = s.Get(k)
	}
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(out); err != nil {
		http.Error(w, `{"error":"values do not encode"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b.Bytes())
}
