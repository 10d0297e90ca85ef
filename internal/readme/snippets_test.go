package readme

// Each function holds one README.md snippet, verbatim, so that the
// compiler checks it; TestReadmeSnippetsCompile keeps the two in step.
// Only TestMyStore runs.

import (
	"context"
	"crypto/x509"
	"errors"
	"expvar"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/sessionkit/session"
	"github.com/sessionkit/session/audit"
	"github.com/sessionkit/session/console"
	"github.com/sessionkit/session/express"
	"github.com/sessionkit/session/health"
	"github.com/sessionkit/session/sessiontest"
)

// Quick start (a func main outside package main is an ordinary function).
func main() {
	cfg, err := session.ConfigFromEnv(os.LookupEnv) // REDIS_URL, DATABASE_URL, SESSION_SECRET, APP_ENV, …
	if err != nil {
		log.Fatal(err)
	}
	backend, err := session.Open(context.Background(), cfg, session.OpenOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	opts, err := cfg.Options() // COOKIE_DOMAIN; keys from SESSION_SECRET (at least 32 bytes) and SESSION_SECRET_PREVIOUS
	if err != nil {
		log.Fatal(err)
	}
	sessions, err := session.New(backend.Store, opts)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		n, err := session.From(r).Add("visits", 1) // concurrent requests each count
		if err != nil {
			http.Error(w, "session unavailable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "visit %d\n", n)
	})
	log.Fatal(http.ListenAndServe(":8080", sessions.Handler(mux)))
}

func memoryBackend() {
	store := session.NewMemoryStore(session.MemoryOptions{MaxSessions: 100_000})
	defer store.Close()
}

func redisBackend() error {
	store, err := session.OpenRedis("rediss://default:secret@example.upstash.io:6379", session.RedisOptions{})
	if err != nil {
		return err
	}
	defer store.Close()
	return nil
}

func redisPrivateCA(myCAPool *x509.CertPool) error {
	opts, err := redis.ParseURL("rediss://127.0.0.1:6480/0")
	if err != nil {
		return err
	}
	opts.TLSConfig.RootCAs = myCAPool
	opts.ContextTimeoutEnabled = true
	store, err := session.NewRedisStore(redis.NewClient(opts), session.RedisOptions{})
	_ = store
	return err
}

func postgresBackend(ctx context.Context) error {
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		return err
	}
	if err := session.Migrate(ctx, pool, "sessions"); err != nil {
		return err
	}
	store, err := session.NewPostgresStore(pool, session.PostgresOptions{})
	if err != nil {
		return err
	}
	defer store.Close()
	return nil
}

func postgresPartitioned(ctx context.Context, pool *pgxpool.Pool) error {
	store, err := session.NewPostgresStore(pool, session.PostgresOptions{Table: "sessions_by_day", Partitioned: true})
	if err != nil {
		return err
	}
	if err := store.Migrate(ctx); err != nil { // creates the partitioned table
		return err
	}
	defer store.Close()
	return nil
}

func newMyStore(t *testing.T) session.Store {
	s := session.NewMemoryStore(session.MemoryOptions{})
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMyStore(t *testing.T) {
	sessiontest.Run(t, func(t *testing.T) session.Store { return newMyStore(t) })
}

func choosingABackend(ctx context.Context) {
	cfg, err := session.ConfigFromEnv(os.LookupEnv) // validates everything, no I/O
	if err != nil {
		log.Fatal(err) // never contains a password or the secret
	}
	backend, err := session.Open(ctx, cfg, session.OpenOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	store := backend.Store // give this to the middleware
	http.Handle("/healthz", health.Handler(backend.Store, health.Options{}))
	expvar.Publish("sessions", expvar.Func(func() any { return backend.Stats() })) // on /debug/vars
	_ = store
}

func rotatingKeys(store session.Store) error {
	current, err := session.KeyFromSecret(os.Getenv("SESSION_SECRET"), false)
	if err != nil {
		return err
	}
	previous, err := session.KeyFromSecret(os.Getenv("SESSION_SECRET_PREVIOUS"), false)
	if err != nil {
		return err
	}
	sessions, err := session.New(store, session.Options{Keys: []session.KeyPair{current, previous}})
	_ = sessions
	return err
}

// Operations: publishing the store's counters.
func publishStats(backend *session.Backend) {
	expvar.Publish("sessions", expvar.Func(func() any { return backend.Stats() }))
}

var (
	_ = publishStats
	_ = main
	_ = memoryBackend
	_ = redisBackend
	_ = redisPrivateCA
	_ = postgresBackend
	_ = choosingABackend
	_ = rotatingKeys
)

func usersSessions(ctx context.Context, r *http.Request, sessions *session.Manager, userID string) error {
	s := session.From(r)
	if err := s.SetUser(userID); err != nil { // also renews the session id, as a login must
		return err
	}
	devices, err := sessions.UserSessions(r.Context(), userID) // "your devices"; Current marks this one
	if err != nil {
		return err
	}
	n, err := sessions.RevokeOtherSessions(r.Context(), userID) // sign out other devices
	n, err = sessions.RevokeSession(r.Context(), userID, devices[0].Handle)
	n, err = sessions.RevokeUser(ctx, userID) // password change, ban: everywhere
	_ = n
	return err
}

// Moving from express-session.
func expressMode(ctx context.Context, mux *http.ServeMux) error {
	cfg, err := session.ConfigFromEnv(os.LookupEnv) // SESSION_TABLE_LAYOUT=connect-pg-simple or prisma; REDIS_URL or DATABASE_URL; SESSION_SECRET
	if err != nil {
		return err
	}
	store, err := express.OpenStore(ctx, cfg) // Node's store: connect-redis keys, or connect-pg-simple or Prisma rows
	if err != nil {
		return err
	}
	defer store.(io.Closer).Close()
	sessions, err := express.New(store, express.Secrets(cfg), session.Options{
		IdleTimeout:   24 * time.Hour,  // the Node app's cookie.maxAge
		TouchInterval: time.Nanosecond, // rolling: true
	})
	if err != nil {
		return err
	}
	return http.ListenAndServe(":3001", sessions.Handler(mux))
}

func operatorConsole(mux *http.ServeMux, sessions *session.Manager, backend *session.Backend, requireOperator func(http.Handler) http.Handler) error {
	admin, err := console.New(console.Options{Manager: sessions, Backend: backend})
	if err != nil {
		return err
	}
	mux.Handle("/admin/", requireOperator(http.StripPrefix("/admin", admin)))
	return nil
}

// Security operations.
func securityOperations(ctx context.Context, backend *session.Backend, keys []session.KeyPair, logger *slog.Logger) error {
	logEvent := func(e audit.Event) { // one goroutine calls it, in order; never with a token
		logger.Info("audit", "event", string(e.Kind), "reason", e.Reason, "session", e.ID,
			"previous", e.PreviousID, "user", e.UserID, "ip", e.IP, "user_agent", e.UserAgent, "path", e.Path, "at", e.Time)
	}
	sessions, err := session.New(backend.Store, session.Options{Keys: keys, OnEvent: logEvent})
	if err != nil {
		return err
	}
	defer sessions.Close() // delivers the events still queued
	go func() {
		// Redis tells of expirations through keyspace notifications; run this on one process.
		if err := backend.WatchExpirations(ctx); err != nil {
			logger.Warn("expirations are not audited", "error", err)
		}
	}()

	sessions, err = session.New(backend.Store, session.Options{
		Keys:            keys,
		MaxUserSessions: 3,     // a fourth login ends the least recently used session (an "evicted" event)
		RefuseOverLimit: false, // true: the fourth login fails with ErrTooManySessions instead
	})
	if err != nil {
		return err
	}

	if err := sessions.RevokeAll(ctx); err != nil { // every user's, anonymous ones too
		return err
	}
	return nil
}

func refuseLogin(w http.ResponseWriter, r *http.Request, userID string) {
	if err := session.From(r).SetUser(userID); errors.Is(err, session.ErrTooManySessions) {
		http.Error(w, "You are signed in on too many devices: sign out on one of them first.", http.StatusForbidden)
		return
	}
}
