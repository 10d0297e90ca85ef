package session

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/sessionkit/session/internal/ops"
)

// What cmd/sessionctl and package express need of this package and no
// app does, through internal/ops.
func init() {
	ops.Candidates = func(cfg any) ([]ops.Candidate, error) {
		cands, err := cfg.(Config).candidates(OpenOptions{})
		if err != nil {
			return nil, err
		}
		out := make([]ops.Candidate, len(cands))
		for i, c := range cands {
			out[i] = ops.Candidate{Name: c.Name, Addr: c.Addr, Persistent: c.Persistent}
		}
		return out, nil
	}
	ops.Try = func(ctx context.Context, cfg any, c ops.Candidate, check func(context.Context) error) any {
		sel := cfg.(Config).selectOptions(slog.New(slog.NewTextHandler(io.Discard, nil))).withDefaults()
		_, a := tryCandidate(ctx, candidate{Name: c.Name, Addr: c.Addr, Persistent: c.Persistent,
			Open: func(ctx context.Context) (Store, error) {
				if err := check(ctx); err != nil {
					return nil, err
				}
				return checked{}, nil
			}}, sel)
		return a
	}
	ops.Migrations = func() ([]ops.Migration, error) {
		ms, err := loadMigrations("")
		if err != nil {
			return nil, err
		}
		out := make([]ops.Migration, len(ms))
		for i, m := range ms {
			out[i] = ops.Migration{Version: m.Version, Name: m.Name}
		}
		return out, nil
	}
	ops.PurgeExpired = func(ctx context.Context, store any, progress func(int64)) (int64, error) {
		return store.(*PostgresStore).deleteExpired(ctx, progress, false)
	}
	ops.Partitions = func(ctx context.Context, store any) ([]ops.Partition, bool, error) {
		s := store.(*PostgresStore)
		part, err := s.partitioned(ctx)
		if err != nil || !part {
			return nil, false, err
		}
		ps, err := s.partitions(ctx, true)
		if err != nil {
			return nil, true, fmt.Errorf("session: postgres partitions of %s: %w", s.table, err)
		}
		out := make([]ops.Partition, len(ps))
		for i, p := range ps {
			out[i] = ops.Partition{Name: p.Name, Bounds: p.Bounds, Rows: p.Rows, Droppable: p.Dead || p.Detached, Detached: p.Detached}
		}
		return out, true, nil
	}
	ops.RedactURL = redactURL
	ops.CheckJSONDepth = func(data []byte) error { return checkJSONDepth(data, maxJSONDepth) }
	ops.Scrub = scrub
	ops.ValidTable = tableName.MatchString
	ops.RedisFail = func(store any, op string, err error) error { return store.(*RedisStore).fail(op, err) }

	// What the operator's console (package console) needs.
	ops.RecentFailures = func(store any) []ops.StoreFailure {
		r, ok := store.(failureReporter)
		if !ok {
			return nil
		}
		fs := r.recentFailures()
		out := make([]ops.StoreFailure, len(fs))
		for i, f := range fs {
			out[i] = ops.StoreFailure{Time: f.at, Op: f.op.String(), Error: f.msg}
		}
		return out
	}
	ops.DecodeWith = func(manager any, data []byte) (ops.Record, error) {
		p, err := manager.(*Manager).decode(data)
		return ops.Record{Created: p.CreatedAt, Transient: p.Transient, UserID: p.UserID,
			LastSeen: p.LastSeen, UserAgent: p.UserAgent, IP: p.IP, Values: p.Values}, err
	}
	ops.Handle = handle
	ops.Attempts = func(backend any) []ops.Attempt { return backend.(*Backend).attempts }
	ops.IDsAreSecret = func(manager any) bool { return manager.(*Manager).publicID != nil }

	ops.Components = func(store any) []ops.Component {
		cs := components(store.(Store))
		out := make([]ops.Component, len(cs))
		for i, c := range cs {
			out[i] = ops.Component{Name: c.Name, Addr: c.Addr, Store: c.Store, Required: c.Required}
		}
		return out
	}
	ops.Active = func(store any) string { return activeBackend(store.(Store)) }
	ops.DecodeRecord = func(data []byte) (ops.Record, error) {
		p, err := (&Manager{codec: JSONCodec{}}).decode(data)
		return ops.Record{Created: p.CreatedAt, Transient: p.Transient, UserID: p.UserID,
			LastSeen: p.LastSeen, UserAgent: p.UserAgent, IP: p.IP, Values: p.Values}, err
	}
	ops.DecodeCookie = func(keys any, name, value string) (string, error) {
		c, err := newSecureCookieCodec(keys.([]KeyPair)...)
		if err != nil {
			return "", err
		}
		token, _, err := c.Decode(name, value)
		return token, err
	}
	ops.EncodeCookie = func(keys any, name, token string) (string, error) {
		c, err := newSecureCookieCodec(keys.([]KeyPair)...)
		if err != nil {
			return "", err
		}
		return c.Encode(name, token)
	}
	ops.StoreID = sha256Hasher{}.StoreID
	ops.Stores = func(store any) []any {
		cs := components(store.(Store))
		out := make([]any, len(cs))
		for i, c := range cs {
			out[i] = c.Store
		}
		return out
	}
}

// checked stands for a store whose check passed, for ops.Try: the caller
// made and closed the store itself.
type checked struct{ Store }
