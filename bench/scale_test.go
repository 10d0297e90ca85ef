package bench

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/session"
)

// The scale runs are long and heavy (a million rows or keys), so they only
// run with BENCH_SCALE=1 (bash bench/run.sh -scale) and with -benchtime=1x:
// each iteration is one whole experiment. They use their own table and key
// prefix and remove them afterwards.

const (
	scaleRows    = 1_000_000
	scaleLive    = 10_000 // live sessions the concurrent Gets read
	scaleWorkers = 8      // concurrent Get loops
	// scaleInterval paces each Get loop (open loop, about 2,000 Gets/s in
	// all) so that p99 measures what the cleanup does to a served load,
	// not how a saturated 2-core machine queues.
	scaleInterval = 4 * time.Millisecond
	scaleIdleFor  = 10 * time.Second
)

func scaleCount(b *testing.B) int {
	if s := envInt("BENCH_SCALE_ROWS"); s > 0 {
		return s
	}
	return scaleRows
}

func envInt(name string) int {
	n, _ := strconv.Atoi(os.Getenv(name))
	return n
}

// latencies runs scaleWorkers paced loops of get, each call on an index
// drawn uniformly from [0, n), until stop is closed and returns every
// call's latency, sorted.
func latencies(stop <-chan struct{}, n int, get func(i int) error) ([]time.Duration, error) {
	var mu sync.Mutex
	var all []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	for w := range scaleWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			t := time.NewTicker(scaleInterval)
			defer t.Stop()
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for {
				select {
				case <-stop:
					mu.Lock()
					all = append(all, local...)
					mu.Unlock()
					return
				case <-t.C:
				}
				start := time.Now()
				err := get(r.IntN(n))
				local = append(local, time.Since(start))
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	slices.Sort(all)
	return all, firstErr
}

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(float64(len(d))*q))]
}

func usec(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// BenchmarkScalePostgresCleanup fills a table of our PostgresStore with a
// million expired rows (and scaleLive live ones), then measures the p99
// latency of paced concurrent Gets with no cleanup running, and again
// while DeleteExpired removes the million rows, and how long that takes.
//
// layout=rows is a plain table, cleaned by batched DELETEs; in
// layout=partitioned (PostgresOptions.Partitioned) the expired rows sit in
// scalePastDays finished days' partitions, the live ones in today's, and
// the cleanup drops the dead partitions.
func BenchmarkScalePostgresCleanup(b *testing.B) {
	scale(b)
	for _, layout := range []string{"rows", "partitioned"} {
		b.Run("layout="+layout, func(b *testing.B) { benchScaleCleanup(b, layout == "partitioned") })
	}
}

// scalePastDays is how many finished days' partitions hold the expired
// rows in layout=partitioned.
const scalePastDays = 10

func benchScaleCleanup(b *testing.B, partitioned bool) {
	rows := scaleCount(b)
	table := pgSchema + ".scale"
	if partitioned {
		table = pgSchema + ".scale_part"
	}
	pool := newPgPoolN(b, nil, "", scaleWorkers+2)
	ctx := context.Background()
	b.Cleanup(func() {
		pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+table+`, `+table+`_schema_migrations`)
	})
	store, err := session.NewPostgresStore(pool, session.PostgresOptions{Table: table, DisableCleanup: true, Partitioned: partitioned})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 400) // a realistic record's size (see StoredBytes)
	ids := make([]string, scaleLive)
	for i := range ids {
		sum := sha256.Sum256([]byte("live-" + strconv.Itoa(i)))
		ids[i] = hex.EncodeToString(sum[:])
	}
	y, m, d := time.Now().UTC().Date()
	today := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	for range b.N {
		b.StopTimer()
		if _, err := pool.Exec(ctx, `TRUNCATE `+table); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `INSERT INTO `+table+` (id, data, expires) SELECT encode(sha256(('live-' || i)::bytea), 'hex'), $1, now() + interval '1 hour' FROM generate_series(0, $2 - 1) AS i`, data, scaleLive); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if !partitioned {
			if _, err := pool.Exec(ctx, `INSERT INTO `+table+` (id, data, expires) SELECT encode(sha256(('expired-' || i)::bytea), 'hex'), $1, now() - interval '1 minute' - (i || ' seconds')::interval FROM generate_series(1, $2) AS i`, data, rows); err != nil {
				b.Fatal(err)
			}
		} else {
			// The expired rows were written on the past days: each day's
			// share in that day's partition.
			for day := 1; day <= scalePastDays; day++ {
				from := today.AddDate(0, 0, -day-1)
				part := table + "_p" + from.Format("20060102")
				if _, err := pool.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')`,
					part, table, from.Format(time.RFC3339), from.AddDate(0, 0, 1).Format(time.RFC3339))); err != nil {
					b.Fatal(err)
				}
				lo, hi := (day-1)*rows/scalePastDays+1, day*rows/scalePastDays
				if _, err := pool.Exec(ctx, `INSERT INTO `+table+` (id, data, expires, bucket) SELECT encode(sha256(('expired-' || i)::bytea), 'hex'), $1, now() - interval '1 minute' - (i || ' seconds')::interval, $4 FROM generate_series($2::int, $3::int) AS i`, data, lo, hi, from); err != nil {
					b.Fatal(err)
				}
			}
		}
		if _, err := pool.Exec(ctx, `VACUUM ANALYZE `+table); err != nil {
			b.Fatal(err)
		}
		b.Logf("inserted %d expired rows in %v", rows, time.Since(start).Round(time.Millisecond))
		get := func(i int) error {
			_, err := store.Get(ctx, ids[i])
			return err
		}
		// Idle: no cleanup.
		stop := make(chan struct{})
		time.AfterFunc(scaleIdleFor, func() { close(stop) })
		idle, err := latencies(stop, scaleLive, get)
		if err != nil {
			b.Fatal(err)
		}
		// During the cleanup.
		b.StartTimer()
		stop = make(chan struct{})
		var during []time.Duration
		var derr error
		done := make(chan struct{})
		go func() { during, derr = latencies(stop, scaleLive, get); close(done) }()
		start = time.Now()
		n, err := store.DeleteExpired(ctx)
		took := time.Since(start)
		close(stop)
		<-done
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if derr != nil {
			b.Fatal(derr)
		}
		if n != int64(rows) {
			b.Fatalf("DeleteExpired deleted %d rows, want %d", n, rows)
		}
		b.ReportMetric(float64(n), "rows")
		b.ReportMetric(took.Seconds(), "cleanup-s")
		b.ReportMetric(float64(n)/took.Seconds(), "rows/s")
		b.ReportMetric(usec(quantile(idle, 0.50)), "idle-p50-µs")
		b.ReportMetric(usec(quantile(idle, 0.99)), "idle-p99-µs")
		b.ReportMetric(usec(quantile(during, 0.50)), "cleanup-p50-µs")
		b.ReportMetric(usec(quantile(during, 0.99)), "cleanup-p99-µs")
		b.ReportMetric(float64(quantile(during, 0.99))/float64(quantile(idle, 0.99)), "p99-ratio")
		b.Logf("%d Gets idle, %d during the cleanup", len(idle), len(during))
	}
}

// BenchmarkScaleRedisMemory stores a million live sessions in Redis in each
// library's own format (value and key shape, as captured from a /login of
// the contender on Redis) and reports what INFO memory says each costs.
func BenchmarkScaleRedisMemory(b *testing.B) {
	scale(b)
	rows := scaleCount(b)
	cl := newRedisClient(b, nil)
	ctx := context.Background()
	for _, c := range contenders(b, "redis") {
		if c.last == nil || c.lib == "scs-noidle" { // scs-noidle stores what scs-idle does
			continue
		}
		b.Run("lib="+c.lib, func(b *testing.B) {
			if _, err := newClient(c, 1_000_000); err != nil {
				b.Fatal(err)
			}
			val, lastKey := redisValue(b, c.last)
			keyLen := len(lastKey)
			// Keys of the same length as the library's (its token or hash,
			// under a prefix of ours as long as the one the run used).
			pfx := keyPrefix + "scale:" + c.lib + ":"
			key := func(i int) string {
				sum := sha256.Sum256([]byte(strconv.Itoa(i)))
				k := pfx + base64.RawURLEncoding.EncodeToString(sum[:]) + hex.EncodeToString(sum[:])
				if keyLen > 0 && keyLen < len(k) {
					k = k[:max(keyLen, len(pfx)+8)]
				}
				return k
			}
			cleanup := func() {
				for i := 0; i < rows; i += 1000 {
					p := cl.Pipeline()
					for j := i; j < min(i+1000, rows); j++ {
						p.Unlink(ctx, key(j))
					}
					if _, err := p.Exec(ctx); err != nil {
						b.Errorf("cleanup: %v", err)
						return
					}
				}
			}
			defer cleanup()
			for b.Loop() {
				before, err := redisInfoInt(cl, "memory", "used_memory")
				if err != nil {
					b.Fatal(err)
				}
				exp := time.Now().Add(time.Hour)
				for i := 0; i < rows; i += 1000 {
					p := cl.Pipeline()
					for j := i; j < min(i+1000, rows); j++ {
						p.Set(ctx, key(j), val, 0)
						p.PExpireAt(ctx, key(j), exp)
					}
					if _, err := p.Exec(ctx); err != nil {
						b.Fatal(err)
					}
				}
				after, err := redisInfoInt(cl, "memory", "used_memory")
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(after-before)/float64(rows), "mem-B/session")
				b.ReportMetric(float64(len(val)), "value-B")
				b.ReportMetric(float64(len(key(0))), "key-B")
				cleanup()
			}
		})
	}
}

// BenchmarkPostgresGetLayout measures one store Get (one round trip, one
// client) of a live session among scaleLive, on a plain table and on
// partitioned ones (PostgresOptions.Partitioned): "daily-5" is a freshly
// migrated daily table (today, three days ahead, DEFAULT), "daily-36" a
// daily table serving 30-day sessions (31 days of partitions still live),
// "weekly-8" a weekly one serving them (5 past weeks, the current one,
// one ahead, DEFAULT). The layouts take turns Get by Get, so that the
// shared machine's load drifts alike for all; each reports its mean
// (µs/get) and its ratio to the plain table.
func BenchmarkPostgresGetLayout(b *testing.B) {
	pool := newPgPoolN(b, nil, "", 2)
	ctx := context.Background()
	layouts := []struct {
		name        string
		partitioned bool
		width       time.Duration
		past        int // partitions of past days or weeks
	}{
		{"rows", false, 0, 0},
		{"daily-5", true, 24 * time.Hour, 0},
		{"daily-36", true, 24 * time.Hour, 31},
		{"weekly-8", true, 7 * 24 * time.Hour, 5},
	}
	stores := make([]*session.PostgresStore, len(layouts))
	for i, c := range layouts {
		table := pgSchema + ".getlayout_" + strings.ReplaceAll(c.name, "-", "_")
		b.Cleanup(func() {
			pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+table+`, `+table+`_schema_migrations`)
		})
		store, err := session.NewPostgresStore(pool, session.PostgresOptions{Table: table, DisableCleanup: true, Partitioned: c.partitioned, PartitionWidth: c.width})
		if err != nil {
			b.Fatal(err)
		}
		defer store.Close()
		if err := store.Migrate(ctx); err != nil {
			b.Fatal(err)
		}
		stores[i] = store
		if c.partitioned {
			// The current partition's start, as the bucket column has it.
			unit := "day"
			if c.width > 24*time.Hour {
				unit = "week"
			}
			var cur time.Time
			if err := pool.QueryRow(ctx, `SELECT date_trunc('`+unit+`', now(), 'UTC')`).Scan(&cur); err != nil {
				b.Fatal(err)
			}
			for k := 1; k <= c.past; k++ {
				from := cur.Add(-time.Duration(k) * c.width).UTC()
				if _, err := pool.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s_p%s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')`,
					table, from.Format("20060102"), table, from.Format(time.RFC3339), from.Add(c.width).Format(time.RFC3339))); err != nil {
					b.Fatal(err)
				}
			}
			if next := cur.Add(c.width); c.width > 24*time.Hour {
				pool.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s_p%s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')`,
					table, next.UTC().Format("20060102"), table, next.UTC().Format(time.RFC3339), next.Add(c.width).UTC().Format(time.RFC3339)))
			}
		}
		data := make([]byte, 400)
		if _, err := pool.Exec(ctx, `INSERT INTO `+table+` (id, data, expires) SELECT encode(sha256(('live-' || i)::bytea), 'hex'), $1, now() + interval '1 hour' FROM generate_series(0, $2 - 1) AS i`, data, scaleLive); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `VACUUM ANALYZE `+table); err != nil {
			b.Fatal(err)
		}
		var parts int
		pool.QueryRow(ctx, `SELECT count(*) FROM pg_inherits WHERE inhparent = $1::regclass`, table).Scan(&parts)
		b.Logf("%s: %d partitions", c.name, parts)
	}
	ids := make([]string, scaleLive)
	for i := range ids {
		sum := sha256.Sum256([]byte("live-" + strconv.Itoa(i)))
		ids[i] = hex.EncodeToString(sum[:])
	}
	took := make([]time.Duration, len(layouts))
	n := 0
	for b.Loop() {
		id := ids[(n*7919)%scaleLive]
		for i, s := range stores {
			start := time.Now()
			if _, err := s.Get(ctx, id); err != nil {
				b.Fatal(err)
			}
			took[i] += time.Since(start)
		}
		n++
	}
	for i, c := range layouts {
		b.ReportMetric(usec(took[i])/float64(n), c.name+"-µs/get")
		if i > 0 {
			b.ReportMetric(float64(took[i])/float64(took[0]), c.name+"/rows")
		}
	}
}
