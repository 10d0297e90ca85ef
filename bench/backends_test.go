package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"
)

// The servers are shared with other engineers (and with other checkouts
// of this module running at the same time): every key this process writes
// starts with keyPrefix and every table lives in the schema pgSchema, both
// unique to the process. They are removed at the end of the run
// (TestMain); Redis keys also carry an expiry, so a killed run leaves
// nothing behind for long.
var (
	keyPrefix = fmt.Sprintf("sessionbench:%d:", os.Getpid())
	pgSchema  = fmt.Sprintf("sessionbench_%d", os.Getpid())
)

func redisAddr() string {
	if a := os.Getenv("BENCH_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

func databaseURL() string {
	if u := os.Getenv("BENCH_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://127.0.0.1:5432/test"
}

// poolSize is the connection pool size every contender gets, for Redis and
// Postgres alike, so that no contender wins by holding more connections.
const poolSize = 8

// rtCounter counts store round trips, split into those that only read and
// those that write. The hooks below fill it from the drivers themselves, so
// every contender is counted the same way whatever its store code does.
type rtCounter struct {
	reads, writes atomic.Int64
}

func (c *rtCounter) reset() {
	c.reads.Store(0)
	c.writes.Store(0)
}

func (c *rtCounter) add(write bool) {
	if write {
		c.writes.Add(1)
	} else {
		c.reads.Add(1)
	}
}

func (c *rtCounter) report(b *testing.B, n int) {
	if c == nil || n == 0 {
		return
	}
	r, w := float64(c.reads.Load()), float64(c.writes.Load())
	b.ReportMetric((r+w)/float64(n), "rt/op")
	b.ReportMetric(r/float64(n), "rd-rt/op")
	b.ReportMetric(w/float64(n), "wr-rt/op")
}

var redisWrites = map[string]bool{
	"set": true, "setex": true, "psetex": true, "del": true, "unlink": true,
	"expire": true, "pexpire": true, "expireat": true, "pexpireat": true,
	"eval": true, "evalsha": true, "getex": true, "getdel": true,
}

// redisConnCmds are what go-redis sends when it opens a connection
// (through the same hooks): not store round trips.
var redisConnCmds = map[string]bool{"hello": true, "client": true, "auth": true, "select": true, "ping": true}

// redisHook counts go-redis round trips: one per command, one per pipeline.
type redisHook struct{ c *rtCounter }

func (h redisHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h redisHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		if !redisConnCmds[cmd.Name()] {
			h.c.add(redisWrites[cmd.Name()])
		}
		return next(ctx, cmd)
	}
}

func (h redisHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		w, conn := false, true
		for _, c := range cmds {
			w = w || redisWrites[c.Name()]
			conn = conn && redisConnCmds[c.Name()]
		}
		if !conn {
			h.c.add(w)
		}
		return next(ctx, cmds)
	}
}

// newRedisClient returns a go-redis client whose round trips are counted in
// c.
func newRedisClient(tb testing.TB, c *rtCounter) *goredis.Client {
	tb.Helper()
	cl := goredis.NewClient(&goredis.Options{Addr: redisAddr(), PoolSize: poolSize * 2})
	if err := cl.Ping(context.Background()).Err(); err != nil {
		cl.Close()
		tb.Skipf("Redis at %s unreachable: %v", redisAddr(), err)
	}
	if c != nil {
		cl.AddHook(redisHook{c})
	}
	tb.Cleanup(func() { cl.Close() })
	return cl
}

// countingConn counts redigo round trips (every Do is one).
type countingConn struct {
	redis.Conn
	c    *rtCounter
	last *lastWrite
}

func (cc countingConn) Do(cmd string, args ...any) (any, error) {
	if cmd != "" {
		cc.c.add(redisWrites[strings.ToLower(cmd)])
	}
	if cc.last != nil && strings.EqualFold(cmd, "SETEX") && len(args) == 3 {
		key, _ := args[0].(string)
		val, _ := args[2].([]byte)
		cc.last.set(key, val)
	}
	return cc.Conn.Do(cmd, args...)
}

// newRedigoPool returns a redigo pool whose round trips are counted in c.
// It has no TestOnBorrow PING: that would cost every request a round trip
// that is not the store's.
func newRedigoPool(tb testing.TB, c *rtCounter, last *lastWrite) *redis.Pool {
	p := &redis.Pool{
		MaxIdle:     poolSize * 8,
		MaxActive:   poolSize * 2,
		Wait:        true,
		IdleTimeout: 240 * time.Second,
		Dial: func() (redis.Conn, error) {
			conn, err := redis.Dial("tcp", redisAddr())
			if err != nil {
				return nil, err
			}
			return countingConn{conn, c, last}, nil
		},
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

// pgTracer counts pgx statements (Query, QueryRow and Exec each are one).
type pgTracer struct{ c *rtCounter }

func (t pgTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	q := strings.TrimSpace(d.SQL)
	w := !strings.HasPrefix(q, "SELECT") && !strings.HasPrefix(q, "select")
	t.c.add(w)
	return ctx
}

func (t pgTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// newPgPool returns a pgx pool whose statements are counted in c. When
// searchPath is set, unqualified table names resolve in that schema.
func newPgPool(tb testing.TB, c *rtCounter, searchPath string) *pgxpool.Pool {
	tb.Helper()
	return newPgPoolN(tb, c, searchPath, poolSize)
}

func newPgPoolN(tb testing.TB, c *rtCounter, searchPath string, size int32) *pgxpool.Pool {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(databaseURL())
	if err != nil {
		tb.Fatal(err)
	}
	cfg.MaxConns = size
	cfg.MinConns = 1
	if searchPath != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = searchPath
	}
	if c != nil {
		cfg.ConnConfig.Tracer = pgTracer{c}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		if pool != nil {
			pool.Close()
		}
		tb.Skipf("Postgres at %s unreachable: %v", databaseURL(), err)
	}
	if _, err := pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgSchema); err != nil {
		pool.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// redisCommandCalls returns the total number of commands the Redis server
// has executed (INFO commandstats), less the INFO calls themselves. The
// delta over a benchmark is the server's own count of its commands; it
// includes other clients' traffic on a shared server, so it is a cross-check
// of the client-side counters, not a replacement for them.
func redisCommandCalls(cl *goredis.Client) (int64, error) {
	s, err := cl.Info(context.Background(), "commandstats").Result()
	if err != nil {
		return 0, err
	}
	var total int64
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") || name == "cmdstat_info" {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		n, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("commandstats line %q: %w", line, err)
		}
		total += n
	}
	return total, nil
}

// redisInfoInt reads one integer field of INFO section.
func redisInfoInt(cl *goredis.Client, section, field string) (int64, error) {
	s, err := cl.Info(context.Background(), section).Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(s, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("INFO %s has no %s", section, field)
}

// deleteRedisKeys removes every key that starts with prefix (SCAN + UNLINK,
// never KEYS or FLUSH*), and returns how many it removed.
func deleteRedisKeys(ctx context.Context, cl *goredis.Client, prefix string) (int64, error) {
	var n int64
	var cursor uint64
	for {
		keys, next, err := cl.Scan(ctx, cursor, prefix+"*", 5000).Result()
		if err != nil {
			return n, err
		}
		if len(keys) > 0 {
			if err := cl.Unlink(ctx, keys...).Err(); err != nil {
				return n, err
			}
			n += int64(len(keys))
		}
		if next == 0 {
			return n, nil
		}
		cursor = next
	}
}

var cleanupOnce sync.Once

// cleanupServers removes everything this package wrote to the shared
// servers. It is best effort: a server that is down has nothing of ours.
func cleanupServers() {
	cleanupOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cl := goredis.NewClient(&goredis.Options{Addr: redisAddr()})
		if cl.Ping(ctx).Err() == nil {
			if _, err := deleteRedisKeys(ctx, cl, keyPrefix); err != nil {
				fmt.Fprintf(os.Stderr, "bench: cleaning Redis keys %s*: %v\n", keyPrefix, err)
			}
		}
		cl.Close()
		if os.Getenv("BENCH_KEEP_SCHEMA") == "1" {
			return
		}
		conn, err := pgx.Connect(ctx, databaseURL())
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		for _, schema := range []string{pgSchema, scsPgSchema} {
			if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`); err != nil {
				fmt.Fprintf(os.Stderr, "bench: dropping schema %s: %v\n", schema, err)
			}
		}
	})
}

func TestMain(m *testing.M) {
	code := m.Run()
	cleanupServers()
	os.Exit(code)
}

// newRedisClientNoSkip returns an uncounted client, or nil when Redis does
// not answer.
func newRedisClientNoSkip() *goredis.Client {
	cl := goredis.NewClient(&goredis.Options{Addr: redisAddr()})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if cl.Ping(ctx).Err() != nil {
		cl.Close()
		return nil
	}
	return cl
}
