package session_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/sessionkit/session"
)

// Backend tests connect to real servers. When one is unreachable the test
// skips and says why, unless SESSION_TEST_REQUIRE_BACKENDS=1 (CI), where it
// fails.

func redisURL() string {
	if u := os.Getenv("SESSION_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

func databaseURL() string {
	if u := os.Getenv("SESSION_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://127.0.0.1:5432/test"
}

func unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("SESSION_TEST_REQUIRE_BACKENDS") == "1" {
		t.Fatalf("%s is required (SESSION_TEST_REQUIRE_BACKENDS=1) but unreachable: %v", what, err)
	}
	t.Skipf("skipping: %s unreachable: %v (set SESSION_TEST_REQUIRE_BACKENDS=1 to fail instead)", what, err)
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// testRedisClient returns a client on the test Redis, closed when t ends.
func testRedisClient(t testing.TB) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(redisURL())
	if err != nil {
		t.Fatalf("SESSION_TEST_REDIS_URL: %v", err)
	}
	c := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		unavailable(t, "Redis at "+session.RedactURL(redisURL()), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newRedisStore returns a store on the test Redis under a prefix of its
// own; its keys are deleted when t ends.
func newRedisStore(t testing.TB) *session.RedisStore {
	t.Helper()
	c := testRedisClient(t)
	prefix := randomName("sessiontest:") + ":"
	s, err := session.NewRedisStore(c, session.RedisOptions{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		// The trimmed prefix also matches the per-user index keys
		// (prefix "sessiontest:<hex>-users:").
		iter := c.Scan(ctx, 0, strings.TrimSuffix(prefix, ":")+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return s
}

// testPool returns a pool on the test database, closed when t ends.
func testPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), databaseURL())
	if err != nil {
		t.Fatalf("SESSION_TEST_DATABASE_URL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		unavailable(t, "Postgres at "+session.RedactURL(databaseURL()), err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// newPostgresStore returns a store on a table of its own, migrated, and
// dropped when t ends.
func newPostgresStore(t testing.TB, opts session.PostgresOptions) *session.PostgresStore {
	t.Helper()
	pool := testPool(t)
	if opts.Table == "" {
		opts.Table = randomName("sessions_t")
	}
	ctx := context.Background()
	if !opts.Partitioned {
		if err := session.Migrate(ctx, pool, opts.Table); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
	}
	t.Cleanup(func() {
		pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+opts.Table+`, `+opts.Table+`_schema_migrations`)
	})
	s, err := session.NewPostgresStore(pool, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if opts.Partitioned {
		// The store's own Migrate creates the table partitioned.
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
	}
	return s
}

// newPartitionedStore is newPostgresStore on a table partitioned by day
// (PostgresOptions.Partitioned).
func newPartitionedStore(t testing.TB, opts session.PostgresOptions) *session.PostgresStore {
	t.Helper()
	opts.Partitioned = true
	if opts.Table == "" {
		opts.Table = randomName("pgpart_t")
	}
	return newPostgresStore(t, opts)
}

// backends lists a constructor per built-in backend, for tests that must
// pass on each.
func backends() []struct {
	name string
	new  func(t testing.TB) session.Store
} {
	return []struct {
		name string
		new  func(t testing.TB) session.Store
	}{
		{"memory", func(t testing.TB) session.Store {
			s := session.NewMemoryStore(session.MemoryOptions{})
			t.Cleanup(func() { s.Close() })
			return s
		}},
		{"redis", func(t testing.TB) session.Store { return newRedisStore(t) }},
		{"postgres", func(t testing.TB) session.Store { return newPostgresStore(t, session.PostgresOptions{}) }},
		{"postgres-partitioned", func(t testing.TB) session.Store { return newPartitionedStore(t, session.PostgresOptions{}) }},
	}
}
