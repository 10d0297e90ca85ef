// Command server is the production shape of an app on the session
// package: the store chosen from the environment, logs with log/slog, an
// audit line for every session event, graceful shutdown, a health check
// and an admin statistics endpoint.
//
//	REDIS_URL=redis://127.0.0.1:6379/0 SESSION_SECRET=$(openssl rand -base64 48) go run ./examples/server
//
// It reads the variables of session.ConfigFromEnv (REDIS_URL,
// DATABASE_URL, DIRECT_URL, SESSION_SECRET, APP_ENV, …) and chooses Redis,
// then Postgres, then memory outside production. It also reads:
//
//	ADDR           listen address, default :8080
//	ADMIN_TOKEN    bearer token for /admin/sessions/stats (unset: 404)
//	TRUST_PROXY    true: X-Forwarded-Proto: https makes the cookie Secure
//	LOG_FORMAT     json for JSON logs, otherwise text (on stderr)
//	MAX_USER_SESSIONS  live sessions per user (Options.MaxUserSessions), default no limit
//	WATCH_EXPIRATIONS  false: leave Redis expirations to another process (one is enough)
//
// Every session event (created, renewed, bound, destroyed, revoked,
// expired, evicted) is logged as one line with msg=audit.
//
// Endpoints:
//
//	POST /api/test-session     merge a JSON object into the session; answers its values
//	GET  /api/test-session     the session's values as JSON
//	POST /api/login            {"user":"…"}: bind the session to a user
//	POST /api/logout           destroy the session
//	GET  /healthz              health report: 200 ok or degraded, 503 down
//	GET  /admin/sessions/stats live sessions per backend and store counters
//
// On SIGINT or SIGTERM it stops accepting connections, finishes the
// requests in flight (up to 15 seconds), logs the events still queued,
// closes the store and exits 0.
package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/audit"
	"github.com/sessionkit/session/health"
)

func main() {
	logger := newLogger(os.Getenv("LOG_FORMAT"))
	slog.SetDefault(logger)
	if err := run(logger); err != nil {
		logger.Error("examples/server: " + err.Error())
		os.Exit(1)
	}
}

func newLogger(format string) *slog.Logger {
	if strings.EqualFold(format, "json") {
		return slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}

func run(logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := session.ConfigFromEnv(os.LookupEnv) // validates; never echoes a password or the secret
	if err != nil {
		return err
	}
	logger.Info("configuration", "config", cfg)
	backend, err := session.Open(ctx, cfg, session.OpenOptions{Logger: logger})
	if err != nil {
		return err
	}
	defer backend.Close()
	logger.Info("session store ready", "backend", backend.Name, "active", backend.Active())

	app, sessions, err := newApp(cfg, backend, os.Getenv("ADMIN_TOKEN"), os.Getenv("TRUST_PROXY"), os.Getenv("MAX_USER_SESSIONS"), logger)
	if err != nil {
		return err
	}
	defer sessions.Close()
	if watch, err := strconv.ParseBool(os.Getenv("WATCH_EXPIRATIONS")); err != nil || watch {
		// Expirations on Redis come from keyspace notifications (on
		// memory and Postgres the store reports them by itself).
		go func() {
			if err := backend.WatchExpirations(ctx); err != nil {
				logger.Warn("session expirations will not be audited", "error", err)
			}
		}()
	}
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = ":8080"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           app,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("listening", "addr", ln.Addr().String())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing requests in flight")
	shutdown, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	sessions.Close() // the audit lines still queued
	if err := backend.Close(); err != nil {
		return fmt.Errorf("closing the store: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// newApp wires the handlers. Only /api/ goes through the session
// middleware: probes and admin calls never create sessions.
func newApp(cfg session.Config, backend *session.Backend, adminToken, trustProxy, maxUserSessions string, logger *slog.Logger) (http.Handler, *session.Manager, error) {
	// COOKIE_DOMAIN, and the keys: SESSION_SECRET signs,
	// SESSION_SECRET_PREVIOUS still verifies. Outside production the
	// secret may be unset: session.New then uses a random key and warns
	// that sessions will not survive a restart.
	opts, err := cfg.Options()
	if err != nil {
		return nil, nil, err
	}
	opts.Logger = logger
	opts.TrustProxy, _ = strconv.ParseBool(trustProxy)
	if maxUserSessions != "" {
		if opts.MaxUserSessions, err = strconv.Atoi(maxUserSessions); err != nil {
			return nil, nil, fmt.Errorf("MAX_USER_SESSIONS: %w", err)
		}
	}
	opts.OnEvent = auditLog(logger)
	sessions, err := session.New(backend.Store, opts)
	if err != nil {
		return nil, nil, err
	}

	api := http.NewServeMux()
	api.HandleFunc("GET /api/test-session", showSession)
	api.HandleFunc("POST /api/test-session", mergeSession)
	api.HandleFunc("POST /api/login", login)
	api.HandleFunc("POST /api/logout", logout)

	mux := http.NewServeMux()
	mux.Handle("/api/", sessions.Handler(api))
	mux.Handle("GET /healthz", health.Handler(backend.Store, health.Options{}))
	mux.Handle("GET /admin/sessions/stats", adminOnly(adminToken, statsHandler(backend)))
	return mux, sessions, nil
}

// auditLog logs a session event as one line: the audit trail SOC 2 and the
// like ask for. It never sees a token: Event.ID is a hash of it.
func auditLog(logger *slog.Logger) func(audit.Event) {
	return func(e audit.Event) {
		logger.Info("audit",
			slog.String("event", string(e.Kind)),
			slog.String("reason", e.Reason),
			slog.String("session", e.ID),
			slog.String("previous", e.PreviousID),
			slog.String("user", e.UserID),
			slog.Time("at", e.Time),
			slog.String("ip", e.IP),
			slog.String("user_agent", e.UserAgent),
			slog.String("path", e.Path))
	}
}

func showSession(w http.ResponseWriter, r *http.Request) {
	s := session.From(r)
	if err := s.Err(); err != nil {
		http.Error(w, "session store unavailable", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, values(s))
}

func mergeSession(w http.ResponseWriter, r *http.Request) {
	var in map[string]any
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 32<<10))
	dec.UseNumber() // keep numbers exact
	if err := dec.Decode(&in); err != nil || in == nil {
		http.Error(w, "want a JSON object", http.StatusBadRequest)
		return
	}
	s := session.From(r)
	for k, v := range in {
		if err := s.Put(k, v); err != nil {
			http.Error(w, "session store unavailable", http.StatusServiceUnavailable)
			return
		}
	}
	writeJSON(w, http.StatusOK, values(s))
}

func login(w http.ResponseWriter, r *http.Request) {
	var in struct {
		User string `json:"user"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&in); err != nil || in.User == "" {
		http.Error(w, `want {"user":"…"}`, http.StatusBadRequest)
		return
	}
	// A real app checks a password first; SetUser also renews the id.
	err := session.From(r).SetUser(in.User)
	switch {
	case errors.Is(err, session.ErrTooManySessions):
		http.Error(w, err.Error(), http.StatusForbidden)
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
	default:
		writeJSON(w, http.StatusOK, map[string]string{"user": in.User})
	}
}

func logout(w http.ResponseWriter, r *http.Request) {
	if err := session.From(r).Destroy(); err != nil {
		http.Error(w, "session store unavailable", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"destroyed": true})
}

func values(s *session.Session) map[string]any {
	out := map[string]any{}
	for _, k := range s.Keys() {
		out[k] = s.Get(k)
	}
	return out
}

// adminOnly serves h to requests bearing token; with no token configured
// the endpoint does not exist.
func adminOnly(token string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token == "" {
			http.NotFound(w, r)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="admin"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// statsJSON is the answer of /admin/sessions/stats.
type statsJSON struct {
	Backend  string           `json:"backend"` // chosen backend or mode
	Active   string           `json:"active"`  // where requests go now
	Status   health.Status    `json:"status"`  // ok, degraded, down
	Backends []health.Backend `json:"backends"`
	Stats    session.Stats    `json:"stats"`
}

func statsHandler(backend *session.Backend) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep := health.Check(r.Context(), backend.Store, health.Options{CountSessions: true, Timeout: 10 * time.Second})
		code := http.StatusOK
		if !rep.Healthy() {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, statsJSON{Backend: backend.Name, Active: rep.Active, Status: rep.Status, Backends: rep.Backends, Stats: backend.Stats()})
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v) // a client gone mid-answer needs no log
}
