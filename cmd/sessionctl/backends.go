package main

import (
	"context"
	"fmt"
	"io"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/internal/ops"
)

// backend is one configured persistent store, opened directly: no
// selection, no migration, no background cleanup.
type backend struct {
	name  string // "redis" or "postgres"
	addr  string // host:port, no credentials
	store session.Store
}

// openBackends opens every configured persistent backend, in the order
// the app tries them. It contacts no server. Close them with closeAll.
func openBackends(cfg session.Config) ([]backend, error) {
	var bs []backend
	if cfg.RedisURL != "" {
		s, err := session.OpenRedis(cfg.RedisURL, cfg.RedisOptions())
		if err != nil {
			return nil, err
		}
		bs = append(bs, backend{name: "redis", addr: addrOf(cfg, "redis"), store: s})
	}
	if cfg.DatabaseURL != "" {
		po := cfg.PostgresOptions()
		po.DisableCleanup = true
		s, err := session.OpenPostgres(cfg.DatabaseURL, po)
		if err != nil {
			closeAll(bs)
			return nil, err
		}
		bs = append(bs, backend{name: "postgres", addr: addrOf(cfg, "postgres"), store: s})
	}
	return bs, nil
}

func closeAll(bs []backend) {
	for _, b := range bs {
		if c, ok := b.store.(io.Closer); ok {
			c.Close()
		}
	}
}

// addrOf is the host:port of the configured backend name, as the
// selector logs it.
func addrOf(cfg session.Config, name string) string {
	cands, err := ops.Candidates(cfg)
	if err != nil {
		return ""
	}
	for _, c := range cands {
		if c.Name == name {
			return c.Addr
		}
	}
	return ""
}

func (b backend) String() string {
	if b.addr == "" {
		return b.name
	}
	return fmt.Sprintf("%s (%s)", b.name, b.addr)
}

// needPersistent reports, and returns false, when no persistent backend
// is configured: sessionctl cannot see an app's memory store.
func (c *cli) needPersistent(cfg session.Config) bool {
	if cfg.RedisURL == "" && cfg.DatabaseURL == "" {
		c.errorf("no persistent backend configured: set REDIS_URL (or REDIS_HOST) or DATABASE_URL as the app has them (an app's memory store lives only inside the app)")
		return false
	}
	return true
}

// persistentBackends opens every configured persistent backend, or says
// why it cannot (none configured, or one fails to open) and reports false:
// the caller exits with exitConfig.
func (c *cli) persistentBackends(cfg session.Config) ([]backend, bool) {
	if !c.needPersistent(cfg) {
		return nil, false
	}
	bs, err := openBackends(cfg)
	if err != nil {
		c.errorf("%v", err)
		return nil, false
	}
	return bs, true
}

func ping(ctx context.Context, s session.Store) error {
	if p, ok := s.(session.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}
