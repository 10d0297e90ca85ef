package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sessionkit/session/internal/ops"
)

// candidate is one backend that Open may choose at startup.
type candidate struct {
	// Name identifies the candidate in logs, errors and health reports:
	// "redis", "postgres", "memory", or any name.
	Name string

	// Addr is the backend's host:port, logged with each attempt. It must
	// never hold credentials; "" for memory.
	Addr string

	// Persistent is false for a store that loses its records when the
	// process exits (memory). Such a candidate is refused in production
	// unless selectOptions.AllowMemory is set.
	Persistent bool

	// Open makes the store and checks that it works (ping; for Postgres,
	// also Migrate), within ctx. On error it releases whatever it opened.
	// The caller of selectStore closes the chosen store.
	Open func(ctx context.Context) (Store, error)
}

// redisCandidate returns a candidate for the Redis at rawURL (see
// [OpenRedis] for the forms it takes). The URL is checked now, so a
// malformed one is an error at startup; the server is contacted only by
// Open, which pings it.
func redisCandidate(rawURL string, opts RedisOptions) (candidate, error) {
	if err := opts.check(); err != nil {
		return candidate{}, err
	}
	c, err := newRedisClient(rawURL)
	if err != nil {
		return candidate{}, err
	}
	c.Close()
	return candidate{
		Name:       "redis",
		Addr:       urlAddr(rawURL, "6379"),
		Persistent: true,
		Open: func(ctx context.Context) (Store, error) {
			s, err := OpenRedis(rawURL, opts)
			if err != nil {
				return nil, err
			}
			if err := s.Ping(ctx); err != nil {
				s.Close()
				return nil, scrub(err, rawURL)
			}
			return s, nil
		},
	}, nil
}

// postgresCandidate returns a candidate for the Postgres database at
// databaseURL, which requests use and which may point at a transaction
// pooler (PgBouncer, Supabase's pooler). When directURL is not empty,
// Migrate runs on one connection made to it instead: a direct connection
// to the server, needed for anything session-level that a transaction
// pooler breaks. Both URLs are checked now; Open pings, then migrates.
func postgresCandidate(databaseURL, directURL string, opts PostgresOptions) (candidate, error) {
	if err := opts.check(); err != nil {
		return candidate{}, err
	}
	addr, err := postgresAddr(databaseURL)
	if err != nil {
		return candidate{}, err
	}
	if directURL != "" {
		if _, err := pgx.ParseConfig(directURL); err != nil {
			return candidate{}, fmt.Errorf("session: malformed Postgres direct URL %s", redactURL(directURL))
		}
	}
	if _, err := checkTable(opts.Table); err != nil {
		return candidate{}, err
	}
	return candidate{
		Name:       "postgres",
		Addr:       addr,
		Persistent: true,
		Open: func(ctx context.Context) (Store, error) {
			s, err := OpenPostgres(databaseURL, opts)
			if err != nil {
				return nil, err
			}
			fail := func(err error) (Store, error) {
				s.Close()
				return nil, scrub(scrub(err, databaseURL), directURL)
			}
			if err := s.Ping(ctx); err != nil {
				return fail(err)
			}
			if directURL == "" {
				if err := s.Migrate(ctx); err != nil {
					return fail(err)
				}
				return s, nil
			}
			conn, err := pgx.Connect(ctx, directURL)
			if err != nil {
				return fail(fmt.Errorf("session: postgres direct connection for Migrate: %w", err))
			}
			defer conn.Close(context.WithoutCancel(ctx))
			if err := migrateTable(ctx, conn, s.Table(), s.wantPartitioned, s.wantWidth); err != nil {
				return fail(err)
			}
			return s, nil
		},
	}, nil
}

// postgresAddr returns the host:port of the Postgres at rawURL, or an
// error without the password when the URL does not parse.
func postgresAddr(rawURL string) (string, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return "", fmt.Errorf("session: malformed Postgres URL %s", redactURL(rawURL))
	}
	cc := cfg.ConnConfig
	return net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))), nil
}

// memoryCandidate returns a candidate for a new [MemoryStore]. It is not
// persistent: selectStore accepts it in production only when AllowMemory
// is set. A negative option makes its Open fail with an error naming the
// field (where [NewMemoryStore] would panic).
func memoryCandidate(opts MemoryOptions) candidate {
	return candidate{
		Name: "memory",
		Open: func(ctx context.Context) (Store, error) {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := opts.check(); err != nil {
				return nil, err
			}
			return NewMemoryStore(opts), nil
		},
	}
}

// selectOptions configures selectStore, from a [Config]. The zero value
// selects for development: memory is accepted.
type selectOptions struct {
	// Production refuses candidates that are not persistent (memory),
	// unless AllowMemory is set.
	Production bool

	// AllowMemory accepts a non-persistent candidate even in production.
	AllowMemory bool

	// RequirePersistent refuses non-persistent candidates even outside
	// production (FORCE_PERSISTENT_SESSIONS); it wins over AllowMemory.
	RequirePersistent bool

	// Timeout bounds each candidate's Open (connect, ping, migrate). The
	// default (0) is three seconds; a negative value is an error.
	Timeout time.Duration

	// Logger receives one record per candidate tried, skipped or chosen,
	// with its name and host:port, never a password. The default is
	// slog.Default().
	Logger *slog.Logger
}

// selection is the result of selectStore.
type selection struct {
	// Name and Addr are those of the chosen candidate.
	Name string
	Addr string
	// Store is the chosen store, open and working. The caller closes it
	// when it is a [io.Closer].
	Store Store
	// Attempts reports every candidate, in order.
	Attempts []ops.Attempt
}

// selectError is returned by selectStore (and so by [Open]) when no
// candidate is acceptable. Its message names every candidate and why it
// was not chosen.
type selectError struct {
	Attempts []ops.Attempt
}

func (e *selectError) Error() string {
	parts := make([]string, len(e.Attempts))
	for i, a := range e.Attempts {
		parts[i] = a.String()
	}
	if len(parts) == 0 {
		return "session: no session store: no candidate configured"
	}
	return "session: no session store: " + strings.Join(parts, "; ")
}

// selectStore opens the candidates in order and returns the first that
// works: by default Redis, then Postgres, then memory where that is
// allowed (see Config.candidates). Each Open is bounded by opts.Timeout
// and by ctx. A non-persistent candidate is skipped in production unless
// opts.AllowMemory, and always with opts.RequirePersistent. When none
// works the error is a *selectError naming each candidate and why.
func selectStore(ctx context.Context, candidates []candidate, opts selectOptions) (*selection, error) {
	if err := checkNonNegative("Config", "Timeout", opts.Timeout); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	results := make([]ops.Attempt, len(candidates))
	for i, c := range candidates {
		results[i] = ops.Attempt{Name: c.Name, Addr: c.Addr, Outcome: ops.OutcomeNotTried}
	}
	for i, c := range candidates {
		s, res := tryCandidate(ctx, c, opts)
		results[i] = res
		if s != nil {
			return &selection{Name: c.Name, Addr: c.Addr, Store: s, Attempts: results}, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("session: selecting a store: %w", err)
		}
	}
	opts.Logger.Error("session: no usable session store", "candidates", len(candidates))
	return nil, &selectError{Attempts: results}
}

func (o selectOptions) withDefaults() selectOptions {
	if o.Timeout == 0 {
		o.Timeout = 3 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// tryCandidate opens one candidate, logs the outcome and returns the
// store (nil unless chosen).
func tryCandidate(ctx context.Context, c candidate, opts selectOptions) (Store, ops.Attempt) {
	res := ops.Attempt{Name: c.Name, Addr: c.Addr}
	log := opts.Logger.With("backend", c.Name, "addr", c.Addr)
	if !c.Persistent && (opts.RequirePersistent || (opts.Production && !opts.AllowMemory)) {
		res.Outcome = ops.OutcomeSkipped
		if opts.RequirePersistent {
			res.Reason = "not persistent, and persistent sessions are required (FORCE_PERSISTENT_SESSIONS)"
		} else {
			res.Reason = "not persistent, refused in production unless allowed (SESSION_ALLOW_MEMORY)"
		}
		log.Warn("session: store candidate skipped", "reason", res.Reason)
		return nil, res
	}
	if c.Open == nil {
		res.Outcome, res.Reason = ops.OutcomeFailed, "candidate has no Open function"
		log.Warn("session: store candidate failed", "reason", res.Reason)
		return nil, res
	}
	log.Info("session: trying store candidate")
	cctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	start := time.Now()
	s, err := c.Open(cctx)
	res.Duration = time.Since(start)
	if err == nil && s == nil {
		err = errors.New("Open returned no store")
	}
	if err != nil {
		res.Outcome, res.Reason = ops.OutcomeFailed, err.Error()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			res.Reason = fmt.Sprintf("no answer within %v: %v", opts.Timeout, err)
		}
		log.Warn("session: store candidate failed", "reason", res.Reason, "duration", res.Duration)
		return nil, res
	}
	res.Outcome = ops.OutcomeChosen
	log.Info("session: store chosen", "duration", res.Duration, "persistent", c.Persistent)
	return s, res
}

// urlAddr returns the host:port of rawURL, with def as the port when it
// has none, and "" when it does not parse.
func urlAddr(rawURL, def string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return ""
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), def)
	}
	return u.Host
}

// scrub removes rawURL's password from err's message, should a driver
// have quoted it.
func scrub(err error, rawURL string) error {
	if err == nil || rawURL == "" {
		return err
	}
	u, perr := url.Parse(rawURL)
	if perr != nil || u.User == nil {
		return err
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" || !strings.Contains(err.Error(), pw) {
		return err
	}
	return &scrubbed{msg: strings.ReplaceAll(err.Error(), pw, "xxxxx"), err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }

// Unwrap keeps errors.Is working (context errors, ErrNotFound).
func (s *scrubbed) Unwrap() error { return s.err }
