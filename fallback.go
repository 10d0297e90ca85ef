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
)

// Candidate is one backend that [Select] may choose at startup.
type Candidate struct {
	// Name identifies the candidate in logs, errors and health reports:
	// "redis", "postgres", "memory", or any name.
	Name string

	// Addr is the backend's host:port, logged with each attempt. It must
	// never hold credentials; "" for memory.
	Addr string

	// Persistent is false for a store that loses its records when the
	// process exits (memory). Such a candidate is refused in production
	// unless SelectOptions.AllowMemory is set.
	Persistent bool

	// Open makes the store and checks that it works (ping; for Postgres,
	// also Migrate), within ctx. On error it releases whatever it opened.
	// The caller of Select closes the chosen store (see [Selection]).
	Open func(ctx context.Context) (Store, error)
}

// RedisCandidate returns a candidate for the Redis at rawURL (see
// [NewRedisClient] for the forms it takes). The URL is checked now, so a
// malformed one is an error at startup; the server is contacted only by
// Open, which pings it.
func RedisCandidate(rawURL string, opts RedisOptions) (Candidate, error) {
	if err := opts.check(); err != nil {
		return Candidate{}, err
	}
	c, err := NewRedisClient(rawURL)
	if err != nil {
		return Candidate{}, err
	}
	c.Close()
	return Candidate{
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

// PostgresCandidate returns a candidate for the Postgres database at
// databaseURL, which requests use and which may point at a transaction
// pooler (PgBouncer, Supabase's pooler). When directURL is not empty,
// Migrate runs on one connection made to it instead: a direct connection
// to the server, needed for anything session-level that a transaction
// pooler breaks. Both URLs are checked now; Open pings, then migrates.
func PostgresCandidate(databaseURL, directURL string, opts PostgresOptions) (Candidate, error) {
	if err := opts.check(); err != nil {
		return Candidate{}, err
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return Candidate{}, fmt.Errorf("session: malformed Postgres URL %s", RedactURL(databaseURL))
	}
	if directURL != "" {
		if _, err := pgx.ParseConfig(directURL); err != nil {
			return Candidate{}, fmt.Errorf("session: malformed Postgres direct URL %s", RedactURL(directURL))
		}
	}
	if _, err := checkTable(opts.Table); err != nil {
		return Candidate{}, err
	}
	cc := cfg.ConnConfig
	return Candidate{
		Name:       "postgres",
		Addr:       net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))),
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
			if err := Migrate(ctx, conn, s.Table()); err != nil {
				return fail(err)
			}
			return s, nil
		},
	}, nil
}

// MemoryCandidate returns a candidate for a new [MemoryStore]. It is not
// persistent: [Select] accepts it in production only when AllowMemory is
// set. A negative option makes its Open fail with an error naming the
// field (where [NewMemoryStore] would panic).
func MemoryCandidate(opts MemoryOptions) Candidate {
	return Candidate{
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

// StoreCandidate returns a candidate for a store the caller already made:
// Open pings it when it is a [Pinger]. Select does not close it when it
// fails.
func StoreCandidate(name, addr string, s Store, persistent bool) Candidate {
	return Candidate{
		Name:       name,
		Addr:       addr,
		Persistent: persistent,
		Open: func(ctx context.Context) (Store, error) {
			if err := ping(ctx, s); err != nil {
				return nil, err
			}
			return s, nil
		},
	}
}

// SelectOptions configures [Select]. The zero value selects for
// development: memory is accepted.
type SelectOptions struct {
	// Production refuses candidates that are not persistent (memory),
	// unless AllowMemory is set. The default is false.
	Production bool

	// AllowMemory accepts a non-persistent candidate even in production:
	// sessions are then lost on every restart and not shared between
	// processes. The default is false.
	AllowMemory bool

	// RequirePersistent refuses non-persistent candidates even outside
	// production (FORCE_PERSISTENT_SESSIONS); it wins over AllowMemory.
	// The default is false.
	RequirePersistent bool

	// Timeout bounds each candidate's Open (connect, ping, migrate). The
	// default (0) is three seconds; a negative value is an error.
	Timeout time.Duration

	// Logger receives one record per candidate tried, skipped or chosen,
	// with its name and host:port, never a password. The default is
	// slog.Default().
	Logger *slog.Logger
}

// Outcomes of a candidate in a [CandidateResult].
const (
	OutcomeChosen   = "chosen"
	OutcomeFailed   = "failed"
	OutcomeSkipped  = "skipped"
	OutcomeNotTried = "not tried"
)

// CandidateResult is what became of one candidate.
type CandidateResult struct {
	Name string `json:"name"`
	Addr string `json:"addr,omitempty"`
	// Outcome is OutcomeChosen, OutcomeFailed, OutcomeSkipped or
	// OutcomeNotTried (a candidate after the chosen one).
	Outcome string `json:"outcome"`
	// Reason says why a candidate failed or was skipped. It never holds
	// credentials.
	Reason string `json:"reason,omitempty"`
	// Duration is how long Open took.
	Duration time.Duration `json:"duration"`
}

func (r CandidateResult) String() string {
	s := r.Name
	if r.Addr != "" {
		s += " (" + r.Addr + ")"
	}
	s += ": " + r.Outcome
	if r.Reason != "" {
		s += ": " + r.Reason
	}
	return s
}

// Selection is the result of [Select].
type Selection struct {
	// Name and Addr are those of the chosen candidate.
	Name string
	Addr string
	// Store is the chosen store, open and working. The caller closes it
	// when it is a [Closer].
	Store Store
	// Candidates reports every candidate, in order.
	Candidates []CandidateResult
}

// SelectError is returned by [Select] when no candidate is acceptable.
// Its message names every candidate and why it was not chosen.
type SelectError struct {
	Candidates []CandidateResult
}

func (e *SelectError) Error() string {
	parts := make([]string, len(e.Candidates))
	for i, c := range e.Candidates {
		parts[i] = c.String()
	}
	if len(parts) == 0 {
		return "session: no session store: no candidate configured"
	}
	return "session: no session store: " + strings.Join(parts, "; ")
}

// Select opens the candidates in order and returns the first that works:
// by default Redis, then Postgres, then memory where that is allowed (see
// [Config.Candidates]). Each Open is bounded by opts.Timeout and by ctx.
// A non-persistent candidate is skipped in production unless
// opts.AllowMemory, and always with opts.RequirePersistent. When none
// works the error is a *[SelectError] naming each candidate and why.
func Select(ctx context.Context, candidates []Candidate, opts SelectOptions) (*Selection, error) {
	if err := checkNonNegative("SelectOptions", "Timeout", opts.Timeout); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	results := make([]CandidateResult, len(candidates))
	for i, c := range candidates {
		results[i] = CandidateResult{Name: c.Name, Addr: c.Addr, Outcome: OutcomeNotTried}
	}
	for i, c := range candidates {
		s, res := tryCandidate(ctx, c, opts)
		results[i] = res
		if s != nil {
			return &Selection{Name: c.Name, Addr: c.Addr, Store: s, Candidates: results}, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("session: selecting a store: %w", err)
		}
	}
	opts.Logger.Error("session: no usable session store", "candidates", len(candidates))
	return nil, &SelectError{Candidates: results}
}

func (o SelectOptions) withDefaults() SelectOptions {
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
func tryCandidate(ctx context.Context, c Candidate, opts SelectOptions) (Store, CandidateResult) {
	res := CandidateResult{Name: c.Name, Addr: c.Addr}
	log := opts.Logger.With("backend", c.Name, "addr", c.Addr)
	if !c.Persistent && (opts.RequirePersistent || (opts.Production && !opts.AllowMemory)) {
		res.Outcome = OutcomeSkipped
		if opts.RequirePersistent {
			res.Reason = "not persistent, and persistent sessions are required (FORCE_PERSISTENT_SESSIONS)"
		} else {
			res.Reason = "not persistent, refused in production unless allowed (SESSION_ALLOW_MEMORY)"
		}
		log.Warn("session: store candidate skipped", "reason", res.Reason)
		return nil, res
	}
	if c.Open == nil {
		res.Outcome, res.Reason = OutcomeFailed, "candidate has no Open function"
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
		res.Outcome, res.Reason = OutcomeFailed, err.Error()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			res.Reason = fmt.Sprintf("no answer within %v: %v", opts.Timeout, err)
		}
		log.Warn("session: store candidate failed", "reason", res.Reason, "duration", res.Duration)
		return nil, res
	}
	res.Outcome = OutcomeChosen
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
