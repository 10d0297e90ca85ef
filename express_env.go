package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ExpressSecrets returns SESSION_SECRET then SESSION_SECRET_PREVIOUS,
// verbatim, in the order express-session's secret option takes them (the
// first signs, all verify), for [NewExpress].
func (c Config) ExpressSecrets() []string {
	if len(c.Secret) == 0 {
		return nil
	}
	out := []string{string(c.Secret)}
	for _, p := range c.PreviousSecrets {
		out = append(out, string(p))
	}
	return out
}

// OpenExpressStore opens the store an express-session app shares, as cfg
// names it: an [ExpressRedisStore] on RedisURL with RedisPrefix when
// RedisURL is set (Redis wins when both are), else an
// [ExpressPostgresStore] on DatabaseURL's Table in TableLayout (checked,
// never migrated). It pings the store within cfg.Timeout. There is no
// memory fallback and no tiered or failover mode: Node reads only the one
// store. The store owns its connection: Close it.
func OpenExpressStore(ctx context.Context, cfg Config) (Store, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Mode != "" && cfg.Mode != ModeSelect {
		return nil, fmt.Errorf("%w: SESSION_BACKEND=%s", ErrExpressMode, cfg.Mode)
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 3 * time.Second
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case cfg.RedisURL != "":
		client, err := newRedisClient(cfg.RedisURL)
		if err != nil {
			return nil, err
		}
		s, err := NewExpressRedisStore(client, cfg.RedisPrefix)
		if err != nil {
			client.Close()
			return nil, err
		}
		s.rs.ownsClient = true
		if err := s.Ping(pctx); err != nil {
			s.Close()
			return nil, scrub(err, cfg.RedisURL)
		}
		return s, nil
	case cfg.DatabaseURL != "":
		pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("session: malformed Postgres URL %s", redactURL(cfg.DatabaseURL))
		}
		pool, err := pgxpool.NewWithConfig(ctx, pcfg)
		if err != nil {
			return nil, fmt.Errorf("session: postgres %s: %w", redactURL(cfg.DatabaseURL), err)
		}
		s, err := OpenExpressPostgres(pctx, pool, cfg.Table, cfg.TableLayout)
		if err != nil {
			pool.Close()
			return nil, scrub(err, cfg.DatabaseURL)
		}
		s.ownsPool = true
		return s, nil
	}
	return nil, errors.New("session: the express-session mode needs REDIS_URL or DATABASE_URL: Node's store, shared")
}
