package session

import (
	"context"

	"github.com/sessionkit/session/internal/ops"
)

// Test-only views of the wrappers' internals, for package session_test.

// CacheUp reports whether the cache of s, a store made by NewTiered, is in
// use.
func CacheUp(s Store) bool { return s.(wrapperCore).impl().(*tiered).cacheUp() }

// Reconciling returns how many ids s, a store made by NewFailover, still
// has to carry back after a move back.
func Reconciling(s Store) int { return s.(wrapperCore).impl().(*failover).reconciling() }

// ActiveIndex returns the index of the store s, made by NewFailover,
// sends requests to.
func ActiveIndex(s Store) int { return s.(wrapperCore).impl().(*failover).activeIndex() }

// Startup selection, which Open runs.
type (
	Candidate     = candidate
	SelectOptions = selectOptions
	SelectError   = selectError
)

var (
	Select            = selectStore
	MemoryCandidate   = memoryCandidate
	RedisCandidate    = redisCandidate
	PostgresCandidate = postgresCandidate
)

// Instrument is what Open wraps the chosen store in, in select mode.
func Instrument(s Store) Store { return instrument(s) }

// RedactURL and NewRedisClient are the package's URL helpers.
var (
	RedactURL      = redactURL
	NewRedisClient = newRedisClient
)

// The interfaces every wrapper implements.
type (
	StatsReporter = statsReporter
	Componenter   = componenter
	Activer       = activer
)

// ActiveBackend names the backend s, a wrapper, sends requests to.
func ActiveBackend(s Store) string { return s.(activer).activeBackend() }

// Candidates is Config.candidates, for tests of its checks.
func (c Config) Candidates(opts *OpenOptions) ([]Candidate, error) {
	if opts == nil {
		opts = &OpenOptions{}
	}
	return c.candidates(*opts)
}

// StoreCandidate returns a candidate for a store the caller already made:
// Open pings it when it is a [Pinger]. Select does not close it when
// it fails.
func StoreCandidate(name, addr string, s Store, persistent bool) candidate {
	return candidate{
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

// For the external tests: the default token codec and hasher, and the
// longest user id.
var NewSecureCookieCodec = newSecureCookieCodec

type SHA256Hasher = sha256Hasher

const MaxUserIDLen = maxUserIDLen

// Attempts is what became of each backend b considered at startup.
func Attempts(b *Backend) []ops.Attempt { return b.attempts }
