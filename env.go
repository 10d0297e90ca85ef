package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sessionkit/session/internal/ops"
)

// Mode is how [Open] runs the configured backends: the value of
// SESSION_BACKEND.
type Mode string

// The modes.
const (
	// ModeSelect uses the first backend that works at startup: Redis,
	// then Postgres, then memory where allowed. A backend that fails
	// later fails requests until it is back. The default.
	ModeSelect Mode = "select"
	// ModeTiered keeps Redis in front of Postgres ([NewTiered]). Postgres
	// must work at startup; Redis may be down and is used when it comes.
	ModeTiered Mode = "tiered"
	// ModeFailover moves requests between the backends that work
	// ([NewFailover]).
	ModeFailover Mode = "failover"
)

// The values of SESSION_TABLE_LAYOUT: the table layouts of package
// express (express.LayoutConnectPgSimple, express.LayoutPrisma), which
// this package only validates.
const (
	layoutConnectPgSimple = "connect-pg-simple"
	layoutPrisma          = "prisma"
)

// minSecretLen is the shortest SESSION_SECRET accepted in production, and
// the shortest secret [KeyFromSecret] takes.
const minSecretLen = 32

// Secret is a key that must never be printed: its String, GoString and
// LogValue all say "[redacted]".
type Secret []byte

func (Secret) String() string               { return "[redacted]" }
func (Secret) GoString() string             { return "[redacted]" }
func (Secret) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Config is the session configuration an app takes from its environment;
// see [ConfigFromEnv] for the variables. It holds connection passwords and
// the secret: its String, GoString and LogValue redact them, so it can be
// printed and logged.
type Config struct {
	// Env is APP_ENV, or GO_ENV when APP_ENV is unset.
	Env string
	// Production is true when Env is "production" or "prod".
	Production bool

	// RedisURL is the Redis to use, "" for none. It may hold a password.
	RedisURL string
	// DatabaseURL is the Postgres for requests (possibly a transaction
	// pooler), "" for none. It may hold a password.
	DatabaseURL string
	// DirectURL is a direct connection to the same Postgres, used by
	// Migrate when set. It may hold a password.
	DirectURL string

	// Secret is SESSION_SECRET: the cookie signing key material.
	Secret Secret
	// PreviousSecrets is SESSION_SECRET_PREVIOUS, comma-separated: retired
	// secrets whose cookies are still accepted (never used to sign), for
	// rotating SESSION_SECRET without logging anyone out.
	PreviousSecrets []Secret
	// CookieDomain is COOKIE_DOMAIN, "" for a host-only cookie. [Config.Options]
	// puts it in the manager's options.
	CookieDomain string

	// ForcePersistent refuses the memory store even outside production.
	ForcePersistent bool
	// AllowMemory accepts the memory store in production.
	AllowMemory bool

	// Mode is SESSION_BACKEND. The default, "", is ModeSelect.
	Mode Mode
	// Table is the Postgres table (default "sessions").
	Table string
	// RedisPrefix is the Redis key prefix (default "session:").
	RedisPrefix string
	// Timeout bounds each backend's startup check. The default (0) is
	// three seconds; a negative value is an error.
	Timeout time.Duration

	// CookieName is SESSION_COOKIE_NAME, "" for the Manager's default.
	CookieName string
	// TableLayout is SESSION_TABLE_LAYOUT: "" for the package's own
	// layout, or "connect-pg-simple" or "prisma" for the express-session
	// mode of package [github.com/sessionkit/session/express], whose
	// OpenStore reads it.
	TableLayout string
}

// ConfigFromEnv reads the configuration from environment variables:
//
//	APP_ENV, GO_ENV              "production" or "prod" means production
//	REDIS_URL                    redis:// or rediss:// URL
//	REDIS_HOST, REDIS_PORT,      used when REDIS_URL is unset (port 6379)
//	  REDIS_PASSWORD
//	UPSTASH_REDIS_HOST,          used when both above are unset; TLS,
//	  UPSTASH_REDIS_PASSWORD,      user "default", port 6379
//	  UPSTASH_REDIS_PORT
//	DATABASE_URL                 Postgres for requests (may be a pooler)
//	DIRECT_URL                   direct Postgres, for Migrate
//	SESSION_SECRET               required in production, >= 32 bytes
//	SESSION_SECRET_PREVIOUS      retired secrets, comma-separated: verify only
//	COOKIE_DOMAIN                cookie Domain attribute
//	FORCE_PERSISTENT_SESSIONS    true: never the memory store
//	SESSION_ALLOW_MEMORY         true: memory store allowed in production
//	SESSION_BACKEND              select (default), tiered or failover
//	SESSION_TABLE                Postgres table, default sessions
//	SESSION_REDIS_PREFIX         Redis key prefix, default session:
//	SESSION_BACKEND_TIMEOUT      startup check per backend, default 3s (also for 0)
//	SESSION_COOKIE_NAME          cookie name (default: the Manager's)
//	SESSION_TABLE_LAYOUT         connect-pg-simple or prisma: the express-session
//	                               mode; SESSION_TABLE then defaults to session,
//	                               SESSION_REDIS_PREFIX to sess:, and secrets may
//	                               be short (express.New warns)
//
// Everything is validated now: a malformed URL, an unknown mode, a bad
// boolean or a missing or short secret in production is an error that
// names the variable and never contains a password or the secret.
//
// lookup reads a variable: os.LookupEnv in an app, or a function over
// settings kept elsewhere (and in tests). nil means os.LookupEnv.
func ConfigFromEnv(lookup func(string) (string, bool)) (Config, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	get := func(k string) string {
		v, _ := lookup(k)
		return strings.TrimSpace(v)
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("session: "+format, a...)) }
	boolVar := func(k string) bool {
		v := get(k)
		if v == "" {
			return false
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad("%s=%q: want true or false", k, v)
		}
		return b
	}

	c := Config{Env: get("APP_ENV")}
	if c.Env == "" {
		c.Env = get("GO_ENV")
	}
	switch strings.ToLower(c.Env) {
	case "production", "prod":
		c.Production = true
	}

	// Redis.
	switch {
	case get("REDIS_URL") != "":
		c.RedisURL = get("REDIS_URL")
		if rc, err := newRedisClient(c.RedisURL); err != nil {
			bad("REDIS_URL: %v", strings.TrimPrefix(err.Error(), "session: "))
		} else {
			rc.Close()
		}
	case get("REDIS_HOST") != "":
		c.RedisURL = hostURL("redis", "", get("REDIS_PASSWORD"), get("REDIS_HOST"), get("REDIS_PORT"), "REDIS", bad)
	case get("UPSTASH_REDIS_HOST") != "":
		host := get("UPSTASH_REDIS_HOST")
		// Upstash shows the host with a scheme at times; accept it.
		if u, err := url.Parse(host); err == nil && u.Host != "" {
			host = u.Hostname()
		}
		c.RedisURL = hostURL("rediss", "default", get("UPSTASH_REDIS_PASSWORD"), host, get("UPSTASH_REDIS_PORT"), "UPSTASH_REDIS", bad)
	}

	// Postgres.
	c.DatabaseURL = get("DATABASE_URL")
	c.DirectURL = get("DIRECT_URL")
	if c.DirectURL != "" && c.DatabaseURL == "" {
		bad("DIRECT_URL is set but DATABASE_URL is not")
	}
	if c.DatabaseURL != "" {
		if _, err := postgresAddr(c.DatabaseURL); err != nil {
			bad("DATABASE_URL: %s is not a valid Postgres URL", redactURL(c.DatabaseURL))
		}
	}
	if c.DirectURL != "" {
		if _, err := postgresAddr(c.DirectURL); err != nil {
			bad("DIRECT_URL: %s is not a valid Postgres URL", redactURL(c.DirectURL))
		}
	}

	c.TableLayout = strings.ToLower(get("SESSION_TABLE_LAYOUT"))
	switch c.TableLayout {
	case "", layoutConnectPgSimple, layoutPrisma:
	default:
		bad("SESSION_TABLE_LAYOUT=%q: want %s or %s", c.TableLayout, layoutConnectPgSimple, layoutPrisma)
	}
	express := c.TableLayout != "" // express-session's secrets are verbatim, of any length
	c.CookieName = get("SESSION_COOKIE_NAME")
	if c.CookieName != "" {
		if err := checkCookieName(c.CookieName); err != nil {
			bad("SESSION_COOKIE_NAME: %v", strings.TrimPrefix(err.Error(), "session: "))
		}
	}

	// Secret, cookie.
	if s, ok := lookup("SESSION_SECRET"); ok && s != "" {
		c.Secret = Secret(s)
	}
	switch {
	case c.Production && len(c.Secret) == 0:
		bad("SESSION_SECRET is required in production (at least %d bytes, e.g. openssl rand -base64 48)", minSecretLen)
	case c.Production && len(c.Secret) < minSecretLen && !express:
		bad("SESSION_SECRET is %d bytes; production needs at least %d", len(c.Secret), minSecretLen)
	}
	if s, ok := lookup("SESSION_SECRET_PREVIOUS"); ok && s != "" {
		for i, p := range strings.Split(s, ",") {
			p = strings.TrimSpace(p)
			if len(p) < minSecretLen && !(express && p != "") {
				bad("SESSION_SECRET_PREVIOUS: secret %d is %d bytes; want at least %d", i+1, len(p), minSecretLen)
				continue
			}
			c.PreviousSecrets = append(c.PreviousSecrets, Secret(p))
		}
	}
	if len(c.PreviousSecrets) > 0 && len(c.Secret) == 0 {
		bad("SESSION_SECRET_PREVIOUS is set but SESSION_SECRET is not")
	}
	c.CookieDomain = get("COOKIE_DOMAIN")
	if d := c.CookieDomain; d != "" {
		if strings.ContainsAny(d, "/:@ ;,") || strings.HasPrefix(strings.TrimPrefix(d, "."), ".") || strings.HasSuffix(d, ".") || !validCookieDomain(d) {
			bad("COOKIE_DOMAIN=%q: want a bare domain such as example.com (no scheme, port or path)", d)
		}
	}

	c.ForcePersistent = boolVar("FORCE_PERSISTENT_SESSIONS")
	c.AllowMemory = boolVar("SESSION_ALLOW_MEMORY")

	c.Mode = Mode(strings.ToLower(get("SESSION_BACKEND")))
	switch c.Mode {
	case "":
		c.Mode = ModeSelect
	case ModeSelect, ModeFailover:
	case ModeTiered:
		if c.RedisURL == "" || c.DatabaseURL == "" {
			bad("SESSION_BACKEND=tiered needs both Redis (REDIS_URL or REDIS_HOST) and DATABASE_URL")
		}
	default:
		bad("SESSION_BACKEND=%q: want select, tiered or failover", c.Mode)
	}
	if express && c.Mode != ModeSelect {
		bad("SESSION_BACKEND=%s is not available with SESSION_TABLE_LAYOUT (the express-session mode runs on one store: Redis if configured, else Postgres)", c.Mode)
	}
	c.Table = get("SESSION_TABLE")
	if c.Table == "" {
		c.Table = "sessions"
		if express {
			c.Table = "session"
		}
	}
	if _, err := checkTable(c.Table); err != nil {
		bad("SESSION_TABLE: %v", strings.TrimPrefix(err.Error(), "session: "))
	}
	c.RedisPrefix = get("SESSION_REDIS_PREFIX")
	if c.RedisPrefix == "" {
		c.RedisPrefix = "session:"
		if express {
			c.RedisPrefix = "sess:"
		}
	}
	c.Timeout = 3 * time.Second
	if v := get("SESSION_BACKEND_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil || d < 0:
			bad("SESSION_BACKEND_TIMEOUT=%q: want a duration such as 3s (0 for the default, never negative)", v)
		case d > 0:
			c.Timeout = d
		}
	}
	if c.Production && c.RedisURL == "" && c.DatabaseURL == "" && !c.AllowMemory {
		bad("production needs a persistent session store: set REDIS_URL or DATABASE_URL (or SESSION_ALLOW_MEMORY=true to accept losing sessions on restart)")
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return c, nil
}

// hostURL builds a Redis URL from host, port and password variables.
func hostURL(scheme, user, password, host, port, prefix string, bad func(string, ...any)) string {
	if port == "" {
		port = "6379"
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		bad("%s_PORT=%q: want a port number", prefix, port)
	}
	if strings.ContainsAny(host, "/@ ") {
		bad("%s_HOST=%q: want a host name or address", prefix, host)
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port)}
	switch {
	case password != "":
		u.User = url.UserPassword(user, password)
	case user != "":
		u.User = url.User(user)
	}
	return u.String()
}

// String describes c without passwords or the secret.
func (c Config) String() string {
	redact := func(s string) string {
		if s == "" {
			return ""
		}
		return redactURL(s)
	}
	return fmt.Sprintf("session.Config{Env:%q Production:%v Redis:%q Database:%q Direct:%q Secret:%d bytes CookieDomain:%q ForcePersistent:%v AllowMemory:%v Mode:%s Table:%s RedisPrefix:%q Timeout:%v CookieName:%q TableLayout:%q}",
		c.Env, c.Production, redact(c.RedisURL), redact(c.DatabaseURL), redact(c.DirectURL), len(c.Secret), c.CookieDomain, c.ForcePersistent, c.AllowMemory, c.Mode, c.Table, c.RedisPrefix, c.Timeout, c.CookieName, c.TableLayout)
}

// GoString is String, so that %#v does not print passwords either.
func (c Config) GoString() string { return c.String() }

// LogValue implements slog.LogValuer without passwords or the secret.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("env", c.Env),
		slog.Bool("production", c.Production),
		slog.String("redis", urlAddr(c.RedisURL, "6379")),
		slog.String("database", pgAddr(c.DatabaseURL)),
		slog.Bool("direct_url", c.DirectURL != ""),
		slog.String("mode", string(c.Mode)),
		slog.String("table", c.Table),
	)
}

func pgAddr(rawURL string) string {
	if rawURL == "" {
		return ""
	}
	addr, _ := postgresAddr(rawURL)
	return addr
}

// Options returns the manager's options for c, for [New]: the cookie's
// Domain from COOKIE_DOMAIN, and Keys from SESSION_SECRET (which signs)
// and SESSION_SECRET_PREVIOUS (which only verify), each pair signing
// only. Every other field is zero, that is the documented default (a
// Secure cookie on HTTPS, HttpOnly, SameSite=Lax, 24-hour idle timeout,
// 7-day lifetime); set the fields an app wants on the result.
//
// With no secret, Keys is nil: New then makes a random key and warns that
// sessions do not survive a restart. That is an error in production,
// where the secret must be at least 32 bytes, as for a secret shorter
// than 32 bytes anywhere. To also encrypt the cookie, replace Keys with
// pairs from [KeyFromSecret] with encrypt set.
func (c Config) Options() (Options, error) {
	opts := Options{Cookie: CookieOptions{Domain: c.CookieDomain}}
	if len(c.Secret) == 0 {
		if c.Production {
			return Options{}, fmt.Errorf("session: SESSION_SECRET is required in production (at least %d bytes)", minSecretLen)
		}
		if len(c.PreviousSecrets) > 0 {
			return Options{}, errors.New("session: SESSION_SECRET_PREVIOUS is set but SESSION_SECRET is not")
		}
		return opts, nil
	}
	for i, s := range append([]Secret{c.Secret}, c.PreviousSecrets...) {
		k, err := KeyFromSecret(string(s), false)
		if err != nil {
			if i == 0 {
				return Options{}, fmt.Errorf("session: SESSION_SECRET: %w", err)
			}
			return Options{}, fmt.Errorf("session: SESSION_SECRET_PREVIOUS: %w", err)
		}
		opts.Keys = append(opts.Keys, k)
	}
	return opts, nil
}

// RedisOptions returns the options of the Redis store c configures: its
// key Prefix, from SESSION_REDIS_PREFIX. [Open] uses them for Redis,
// under any field its OpenOptions.Redis sets.
func (c Config) RedisOptions() RedisOptions { return c.redisOptions(RedisOptions{}) }

// PostgresOptions returns the options of the Postgres store c configures:
// its Table, from SESSION_TABLE. [Open] uses them for Postgres, under any
// field its OpenOptions.Postgres sets.
func (c Config) PostgresOptions() PostgresOptions { return c.postgresOptions(PostgresOptions{}) }

// redisOptions is o with the fields c configures filled in where o leaves
// them zero: the one place a Config becomes RedisOptions.
func (c Config) redisOptions(o RedisOptions) RedisOptions {
	if o.Prefix == "" {
		o.Prefix = c.RedisPrefix
	}
	return o
}

// postgresOptions is o with the fields c configures filled in where o
// leaves them zero: the one place a Config becomes PostgresOptions.
func (c Config) postgresOptions(o PostgresOptions) PostgresOptions {
	if o.Table == "" {
		o.Table = c.Table
	}
	return o
}

// selectOptions returns the selection rules c asks for.
func (c Config) selectOptions(logger *slog.Logger) selectOptions {
	return selectOptions{Production: c.Production, AllowMemory: c.AllowMemory, RequirePersistent: c.ForcePersistent, Timeout: c.Timeout, Logger: logger}
}

// candidates returns the configured backends in the order selectStore
// tries them: Redis, then Postgres, then memory (which is refused in
// production unless allowed). A negative option in opts is an error.
func (c Config) candidates(opts OpenOptions) ([]candidate, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	var cs []candidate
	if c.RedisURL != "" {
		rc, err := redisCandidate(c.RedisURL, c.redisOptions(opts.Redis))
		if err != nil {
			return nil, err
		}
		cs = append(cs, rc)
	}
	if c.DatabaseURL != "" {
		po := c.postgresOptions(opts.Postgres)
		if po.Logger == nil {
			po.Logger = opts.Logger
		}
		pc, err := postgresCandidate(c.DatabaseURL, c.DirectURL, po)
		if err != nil {
			return nil, err
		}
		cs = append(cs, pc)
	}
	cs = append(cs, memoryCandidate(opts.Memory))
	return cs, nil
}

// OpenOptions tunes [Open]. The zero value is ready to use.
type OpenOptions struct {
	// Redis, Postgres and Memory configure each store. Where Redis.Prefix
	// or Postgres.Table is empty, the Config's is used.
	Redis    RedisOptions
	Postgres PostgresOptions
	Memory   MemoryOptions
	// Tiered and Failover configure the runtime mode, when chosen.
	Tiered   TieredOptions
	Failover FailoverOptions
	// Logger receives the selection and runtime events. The default is
	// slog.Default().
	Logger *slog.Logger
}

// Backend is the session store an app runs on, as opened by [Open]: what
// to give the middleware, and what operators need to see.
type Backend struct {
	// Name is the chosen backend ("redis", "postgres", "memory") in
	// select mode, or the mode ("tiered", "failover").
	Name string
	// Store is what requests use: give it to [New]. It counts its
	// operations (see [Backend.Stats]), and package health reports each
	// backend behind it.
	Store Store

	opened   []Store       // closed by Close, last first
	attempts []ops.Attempt // every backend considered at startup, in order
}

// Active names the backend requests go to now: in select mode the chosen
// one, in tiered mode "postgres" (the source of truth), in failover mode
// the store currently serving.
func (b *Backend) Active() string {
	if a := activeBackend(b.Store); a != "" {
		return a
	}
	return b.Name
}

// Stats returns the operation counters of Store. To publish them with
// expvar: expvar.Publish("sessions", expvar.Func(func() any { return
// backend.Stats() })).
func (b *Backend) Stats() Stats {
	if r, ok := b.Store.(statsReporter); ok {
		return r.Stats()
	}
	return Stats{}
}

// Close stops Store and closes every store Open opened. Calling it again
// is a no-op.
func (b *Backend) Close() error {
	var errs []error
	// The Store itself first: it stops a failover's probe, and in select
	// mode (instrument) closes the chosen store.
	if c, ok := b.Store.(io.Closer); ok {
		errs = append(errs, c.Close())
	}
	for i := len(b.opened) - 1; i >= 0; i-- {
		if c, ok := b.opened[i].(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	b.opened = nil
	return errors.Join(errs...)
}

// Open builds the configured backend. In select mode (the default) it
// uses the first backend that works at startup: Redis (when configured
// and it answers a ping within Config.Timeout), then Postgres (ping, then
// Migrate), then memory, which is refused in production unless
// Config.AllowMemory. In tiered mode it puts Redis in front of Postgres
// ([NewTiered]); Postgres must work, Redis may come later. In failover
// mode it moves requests between the backends that work ([NewFailover]).
//
// In every mode the Store counts its operations and offers exactly the
// optional abilities its backends honour (see [NewTiered] and
// [NewFailover]). Every backend considered is logged with host and port
// only (`sessionctl doctor` shows the same for an operator). When no backend is acceptable,
// the error names each one and why ("session: no session store: redis
// (10.0.0.5:6379): failed: …; memory: skipped: …"). The Backend's Close
// releases everything Open made. A negative option, in cfg or in any of
// opts' structs, is an error before anything is contacted.
func Open(ctx context.Context, cfg Config, opts OpenOptions) (*Backend, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cands, err := cfg.candidates(opts)
	if err != nil {
		return nil, err
	}
	sel := cfg.selectOptions(opts.Logger).withDefaults()
	switch cfg.Mode {
	case "", ModeSelect:
		s, err := selectStore(ctx, cands, sel)
		if err != nil {
			return nil, err
		}
		// The instrumented store offers exactly the abilities of the
		// chosen one, and its Close closes it.
		return &Backend{Name: s.Name, Store: instrument(s.Store), attempts: s.Attempts}, nil
	case ModeTiered:
		return openTiered(ctx, cfg, cands, sel, opts)
	case ModeFailover:
		return openFailover(ctx, cfg, cands, sel, opts)
	}
	return nil, fmt.Errorf("session: unknown mode %q", cfg.Mode)
}

func openTiered(ctx context.Context, cfg Config, cands []candidate, sel selectOptions, opts OpenOptions) (*Backend, error) {
	if len(cands) < 2 || cands[0].Name != "redis" || cands[1].Name != "postgres" {
		return nil, errors.New("session: tiered mode needs both Redis and Postgres configured")
	}
	results := []ops.Attempt{}
	pg, pres := tryCandidate(ctx, cands[1], sel)
	if pg == nil {
		results = append(results, ops.Attempt{Name: "redis", Addr: cands[0].Addr, Outcome: ops.OutcomeNotTried}, pres)
		return nil, &selectError{Attempts: results}
	}
	// Redis may be down now: the tiered store serves from Postgres and
	// starts using Redis when it answers. So the store is made without
	// the ping that decides a candidate.
	rres := ops.Attempt{Name: "redis", Addr: cands[0].Addr, Outcome: ops.OutcomeChosen}
	rs, err := OpenRedis(cfg.RedisURL, cfg.redisOptions(opts.Redis))
	if err != nil {
		pg.(io.Closer).Close()
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, sel.Timeout)
	if err := rs.Ping(pctx); err != nil {
		rres.Reason = "not answering; serving from Postgres until it does: " + scrub(err, cfg.RedisURL).Error()
		sel.Logger.Warn("session: cache not answering at startup; serving from Postgres", "backend", "redis", "addr", cands[0].Addr, "error", rres.Reason)
	} else {
		sel.Logger.Info("session: store chosen", "backend", "redis", "addr", cands[0].Addr, "role", "cache")
	}
	cancel()
	to := opts.Tiered
	if to.Logger == nil {
		to.Logger = opts.Logger
	}
	t, err := NewTiered(rs, pg, to)
	if err != nil {
		rs.Close()
		pg.(io.Closer).Close()
		return nil, err
	}
	return &Backend{Name: string(ModeTiered), Store: t, attempts: append(results, rres, pres), opened: []Store{pg, rs}}, nil
}

func openFailover(ctx context.Context, cfg Config, cands []candidate, sel selectOptions, opts OpenOptions) (*Backend, error) {
	var stores []Store
	var results []ops.Attempt
	active := -1
	for _, c := range cands {
		s, res := tryCandidate(ctx, c, sel)
		results = append(results, res)
		switch {
		case s != nil:
			if active < 0 {
				active = len(stores)
			}
			stores = append(stores, s)
		case c.Name == "redis" && res.Outcome == ops.OutcomeFailed:
			// Redis needs no migration: keep it in the order, so the
			// probe moves requests to it once it answers.
			if rs, err := OpenRedis(cfg.RedisURL, cfg.redisOptions(opts.Redis)); err == nil {
				stores = append(stores, rs)
			}
		}
	}
	if active < 0 {
		for _, s := range stores {
			s.(io.Closer).Close()
		}
		return nil, &selectError{Attempts: results}
	}
	fo := opts.Failover
	if fo.Logger == nil {
		fo.Logger = opts.Logger
	}
	fo.Active = active
	f, err := NewFailover(stores, fo)
	if err != nil {
		for _, s := range stores {
			if c, ok := s.(io.Closer); ok {
				c.Close()
			}
		}
		return nil, err
	}
	return &Backend{Name: string(ModeFailover), Store: f, attempts: results, opened: stores}, nil
}
