package express_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/sessionkit/session/internal/ops"
)

// The test servers, as the root package's tests find them.

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
		unavailable(t, "Redis at "+ops.RedactURL(redisURL()), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testPool returns a pool on the test Postgres, closed when t ends.
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
		unavailable(t, "Postgres at "+ops.RedactURL(databaseURL()), err)
	}
	t.Cleanup(pool.Close)
	return pool
}
