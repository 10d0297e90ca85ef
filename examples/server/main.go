// Command server is the production shape of an app on the session
// package: the store chosen from the environment, logs with log/slog, an
// audit line for every session event, graceful shutdown, a health check,
// an admin statistics endpoint, the operator's console and OpenTelemetry
// metrics in Prometheus' format.
//
//	REDIS_URL=redis://127.0.0.1:6379/0 SESSION_SECRET=$(openssl rand -base64 48) go run ./examples/server
//
// It reads the variables of session.ConfigFromEnv (REDIS_URL,
// DATABASE_URL, DIRECT_URL, SESSION_SECRET, APP_ENV, …) and chooses Redis,
// then Postgres, then memory outside production. It also reads:
//
//	ADDR           listen address, default :8080
//	ADMIN_TOKEN    the admin password: /admin/ (the operator's console) and
//	               /admin/sessions/stats answer HTTP Basic auth with any user
//	               name and this password, or "Authorization: Bearer <token>";
//	               unset: neither is mounted (404)
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
//	POST /api/login            bind the session to a user: JSON {"user": "id"}
//	GET  /api/me               the session's user and store id as JSON
//	POST /api/logout           destroy the session
//	GET  /healthz              health report: 200 ok or degraded, 503 down
//	GET  /metrics              OpenTelemetry metrics, Prometheus text format
//	GET  /admin/sessions/stats live sessions per backend and store counters
//	     /admin/               the operator's console (package console)
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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sessionkit/session"
	"github.com/sessionkit/session/audit"
	"github.com/sessionkit/session/console"
	"github.com/sessionkit/session/health"
	"github.com/sessionkit/session/otelsession"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
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
	metrics, err := newMetrics()
	if err != nil {
		return err
	}
	defer metrics.Close()
	backend, err := session.Open(ctx, cfg, session.OpenOptions{Logger: logger, Observe: metrics.tel.Observe})
	if err != nil {
		return err
	}
	defer backend.Close()
	logger.Info("session store ready", "backend", backend.Name, "active", backend.Active())

	app, sessions, err := newApp(cfg, backend, metrics, os.Getenv("ADMIN_TOKEN"), os.Getenv("TRUST_PROXY"), os.Getenv("MAX_USER_SESSIONS"), logger)
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

// metrics is the app's OpenTelemetry metrics, exported in Prometheus'
// text format by /metrics.
type metrics struct {
	tel     *otelsession.Telemetry
	handler http.Handler
	mp      *sdkmetric.MeterProvider
}

// newMetrics makes a meter provider whose reader is the Prometheus
// exporter, on a registry of its own, and the session telemetry on it.
// Traces go to OpenTelemetry's global tracer provider, which does nothing
// until the app sets one.
func newMetrics() (*metrics, error) {
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	tel, err := otelsession.New(otelsession.Options{MeterProvider: mp, CountInterval: 15 * time.Second})
	if err != nil {
		return nil, err
	}
	return &metrics{tel: tel, mp: mp, handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}, nil
}

func (m *metrics) Close() error {
	m.tel.Close()
	return m.mp.Shutdown(context.Background())
}

// newApp wires the handlers. Only /api/ goes through the session
// middleware: probes and admin calls never create sessions.
func newApp(cfg session.Config, backend *session.Backend, metrics *metrics, adminToken, trustProxy, maxUserSessions string, logger *slog.Logger) (http.Handler, *session.Manager, error) {
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
	// What the operator's console shows of a user's sessions. Personal
	// data: say so in your privacy notice (see session.Metadata).
	opts.Metadata = session.Metadata{LastSeen: true, UserAgent: true, ClientIP: true}
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
	if err := metrics.tel.Watch(sessions); err != nil {
		return nil, nil, err
	}

	api := http.NewServeMux()
	api.HandleFunc("GET /api/test-session", showSession)
	api.HandleFunc("POST /api/test-session", mergeSession)
	api.HandleFunc("POST /api/login", login)
	api.HandleFunc("GET /api/me", me)
	api.HandleFunc("POST /api/logout", logout)

	mux := http.NewServeMux()
	mux.Handle("/api/", sessions.Handler(api))
	mux.Handle("GET /healthz", health.Handler(backend.Store, health.Options{}))
	mux.Handle("GET /metrics", metrics.handler)
	if adminToken != "" {
		admin, err := console.New(console.Options{Manager: sessions, Backend: backend, Logger: logger})
		if err != nil {
			return nil, nil, err
		}
		mux.Handle("GET /admin/sessions/stats", adminOnly(adminToken, statsHandler(backend)))
		mux.Handle("/admin/", adminOnly(adminToken, http.StripPrefix("/admin", admin)))
	}
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

// login binds the session to the user named in the JSON body, as an app
// does once it has checked a password (this example checks none).
func login(w http.ResponseWriter, r *http.Request) {
	var in struct {
		User string `json:"user"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&in); err != nil || in.User == "" {
		http.Error(w, `want {"user": "id"}`, http.StatusBadRequest)
		return
	}
	s := session.From(r)
	err := s.SetUser(in.User) // renews the session id, as a login must
	switch {
	case errors.Is(err, session.ErrTooManySessions):
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	case errors.Is(err, session.ErrInvalidUserID):
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	case err != nil:
		http.Error(w, "session store unavailable", http.StatusServiceUnavailable)
		return
	}
	if err := s.Put("signed_in_at", time.Now().UTC().Format(time.RFC3339)); err != nil {
		http.Error(w, "session store unavailable", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"user": in.User})
}

// me answers the session's user ("" when anonymous) and its store id
// (what the operator's console and logs name it by; never the token).
func me(w http.ResponseWriter, r *http.Request) {
	s := session.From(r)
	if err := s.Err(); err != nil {
		http.Error(w, "session store unavailable", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"user": s.UserID(), "id": s.ID()})
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

// adminOnly serves h to requests that present token: as the password of
// HTTP Basic auth (any user name), so that a browser can log in, or as
// "Authorization: Bearer <token>" for scripts. Others get 401 and a Basic
// challenge. The comparison takes constant time.
func adminOnly(token string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			_, got, ok = r.BasicAuth()
		}
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="sessions admin", charset="UTF-8"`)
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
