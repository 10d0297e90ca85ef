package express

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sessionkit/session"
	"github.com/sessionkit/session/internal/ops"
)

// Secrets returns cfg's SESSION_SECRET then SESSION_SECRET_PREVIOUS,
// verbatim, in the order express-session's secret option takes them (the
// first signs, all verify), for [New]. It is nil when no secret is set.
func Secrets(cfg session.Config) []string {
	if len(cfg.Secret) == 0 {
		return nil
	}
	out := []string{string(cfg.Secret)}
	for _, p := range cfg.PreviousSecrets {
		out = append(out, string(p))
	}
	return out
}

// OpenStore opens the store an express-session app shares, as cfg names
// it: a [RedisStore] on RedisURL with RedisPrefix when RedisURL is set
// (Redis wins when both are), else a [PostgresStore] on DatabaseURL's
// Table in TableLayout (checked, never migrated). It pings the store
// within cfg.Timeout (default three seconds). There is no memory fallback
// and no tiered or failover mode: Node reads only the one store. The
// store owns its connection: Close it.
//
// Give it a Config from [session.ConfigFromEnv] with SESSION_TABLE_LAYOUT
// set: Table then defaults to "session" and RedisPrefix to "sess:", as
// Node's stores name them, and short secrets are accepted.
func OpenStore(ctx context.Context, cfg session.Config) (session.Store, error) {
	if cfg.Mode != "" && cfg.Mode != session.ModeSelect {
		return nil, fmt.Errorf("express: SESSION_BACKEND=%s: the express-session mode runs on one store, which Node reads: %w", cfg.Mode, errors.ErrUnsupported)
	}
	timeout := cfg.Timeout
	if timeout < 0 {
		return nil, fmt.Errorf("express: Config.Timeout is negative (%v); use 0 for the default", timeout)
	}
	if timeout == 0 {
		timeout = 3 * time.Second
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case cfg.RedisURL != "":
		opts := cfg.RedisOptions()
		if opts.Prefix == "" {
			opts.Prefix = "sess:"
		}
		rs, err := session.OpenRedis(cfg.RedisURL, redisOptions(opts.Prefix))
		if err != nil {
			return nil, err
		}
		s := wrapRedis(rs, opts.Prefix)
		if err := s.Ping(pctx); err != nil {
			s.Close()
			return nil, ops.Scrub(err, cfg.RedisURL)
		}
		return s, nil
	case cfg.DatabaseURL != "":
		pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
		if err != nil {
			return nil, errors.New("express: DATABASE_URL is not a valid Postgres URL")
		}
		pool, err := pgxpool.NewWithConfig(ctx, pcfg)
		if err != nil {
			return nil, ops.Scrub(fmt.Errorf("express: postgres: %w", err), cfg.DatabaseURL)
		}
		s, err := OpenPostgres(pctx, pool, cfg.PostgresOptions().Table, cfg.TableLayout)
		if err != nil {
			pool.Close()
			return nil, ops.Scrub(err, cfg.DatabaseURL)
		}
		s.ownsPool = true
		return s, nil
	}
	return nil, errors.New("express: the express-session mode needs REDIS_URL or DATABASE_URL: Node's store, shared")
}
