package session_test

// Store-level faults: a slow backend, a backend that dies mid-run, and a
// pool far smaller than the number of callers. The contract (store.go):
// every call honours its context and returns promptly with an error
// wrapping the cause; nothing panics; nothing leaks. RELIABILITY.md
// reports what these tests measure.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sessionkit/session"
)

// overshootSlack is how far past its deadline a call may return: the time
// to notice the deadline and unwind, with the race detector on a loaded
// two-core machine.
const overshootSlack = 750 * time.Millisecond

// storeCalls is every Store method and optional ability, as calls that
// each return their error.
func storeCalls(s session.Store, id string) map[string]func(context.Context) error {
	exp := time.Now().Add(time.Hour)
	calls := map[string]func(context.Context) error{
		"Get": func(ctx context.Context) error { _, err := s.Get(ctx, id); return err },
		"Set": func(ctx context.Context) error {
			return s.Set(ctx, id, session.Record{Data: []byte("v"), Expires: exp})
		},
		"Touch":   func(ctx context.Context) error { return s.Touch(ctx, id, exp) },
		"Destroy": func(ctx context.Context) error { return s.Destroy(ctx, id) },
	}
	if c, ok := s.(session.Counter); ok {
		calls["Count"] = func(ctx context.Context) error { _, err := c.Count(ctx); return err }
	}
	if c, ok := s.(session.CompareAndSetter); ok {
		calls["CompareAndSet"] = func(ctx context.Context) error {
			return c.CompareAndSet(ctx, id, []byte("v"), session.Record{Data: []byte("w"), Expires: exp})
		}
	}
	if p, ok := s.(session.Pinger); ok {
		calls["Ping"] = func(ctx context.Context) error { return p.Ping(ctx) }
	}
	return calls
}

// timed runs call with a deadline d and returns its error and duration.
func timed(d time.Duration, call func(context.Context) error) (error, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	err := call(ctx)
	return err, time.Since(start)
}

// slowBackendCheck makes each of calls with a 300ms deadline while the
// backend is stalled: each must fail with an error wrapping
// context.DeadlineExceeded, within the deadline plus overshootSlack.
func slowBackendCheck(t *testing.T, calls map[string]func(context.Context) error) {
	t.Helper()
	const d = 300 * time.Millisecond
	var worst time.Duration
	names := make([]string, 0, len(calls))
	for name := range calls {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		err, took := timed(d, calls[name])
		worst = max(worst, took)
		switch {
		case err == nil:
			t.Errorf("%s on a stalled backend succeeded", name)
		case !errors.Is(err, context.DeadlineExceeded):
			t.Errorf("%s on a stalled backend = %v, want an error wrapping context.DeadlineExceeded", name, err)
		}
		if took > d+overshootSlack {
			t.Errorf("%s with a %v deadline returned after %v", name, d, took)
		}
	}
	t.Logf("%d calls with a %v deadline on a stalled backend: slowest returned after %v", len(calls), d, worst.Round(time.Millisecond))
}

func TestStoreFaultSlowRedis(t *testing.T) {
	noLeaks(t)
	startRedis(t, "slow redis", faultRedisPort)
	s := openRedisStore(t, fmt.Sprintf("redis://127.0.0.1:%d/0", faultRedisPort))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Set(ctx, "slow", session.Record{Data: []byte("v"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// DEBUG SLEEP blocks the whole server, as a long Lua script or a
	// fork on a huge dataset would.
	done := make(chan error, 1)
	go func() { _, err := redisDo(faultRedisPort, "debug", "sleep", "3"); done <- err }()
	time.Sleep(200 * time.Millisecond)
	slowBackendCheck(t, storeCalls(s, "slow"))
	if err := <-done; err != nil {
		t.Fatalf("DEBUG SLEEP: %v", err)
	}
	// A command whose caller gave up may still have reached the server and
	// run when the stall ended: the record is then destroyed or rewritten,
	// but never anything else.
	rec, err := s.Get(ctx, "slow")
	if err != nil && !errors.Is(err, session.ErrNotFound) || err == nil && string(rec.Data) != "v" && string(rec.Data) != "w" {
		t.Fatalf("after the stall Get = %q, %v; want v, w or not found", rec.Data, err)
	}
	if err := s.Set(ctx, "after", session.Record{Data: []byte("ok"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("Set after the stall: %v", err)
	}
}

func TestStoreFaultSlowPostgres(t *testing.T) {
	noLeaks(t)
	s := newPostgresStore(t, session.PostgresOptions{DisableCleanup: true})
	pool := s.Pool()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Set(ctx, "slow", session.Record{Data: []byte("v"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// Another connection holds an exclusive lock on the store's table: every
	// statement on it waits, as behind a long migration or VACUUM FULL.
	locker, err := testPool(t).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := locker.Exec(ctx, `LOCK TABLE `+s.Table()+` IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	calls := storeCalls(s, "slow")
	delete(calls, "Ping") // Ping does not touch the table
	slowBackendCheck(t, calls)
	if err := locker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if rec, err := s.Get(ctx, "slow"); err != nil || string(rec.Data) != "v" {
		t.Fatalf("after the lock Get = %q, %v; want the record unharmed", rec.Data, err)
	}
	if st := pool.Stat(); st.TotalConns() > pool.Config().MaxConns {
		t.Fatalf("pool holds %d connections", st.TotalConns())
	}
}

// killedMidRun has 32 goroutines call s in a loop, each call with a 500ms
// deadline, kills the backend after 500ms and goes on for 1.5s. Every call
// must return within its deadline plus overshootSlack, and every call made
// after the kill must fail with an error that says which operation failed.
func killedMidRun(t *testing.T, s session.Store, kill func()) {
	t.Helper()
	const d = 500 * time.Millisecond
	var (
		killedAt    atomic.Int64
		okBefore    atomic.Int64
		failedAfter atomic.Int64
		okAfter     atomic.Int64
		worst       atomic.Int64
		mu          sync.Mutex
		examples    = map[string]bool{}
		wg          sync.WaitGroup
		stop        atomic.Bool
	)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				calls := storeCalls(s, fmt.Sprintf("k-%d-%d", w, i%10))
				for name, call := range calls {
					start := time.Now()
					err, took := timed(d, call)
					if int64(took) > worst.Load() {
						worst.Store(int64(took))
					}
					if took > d+overshootSlack {
						t.Errorf("%s returned after %v with a %v deadline", name, took, d)
					}
					after := killedAt.Load() != 0 && start.UnixNano() > killedAt.Load()
					switch {
					case err == nil && after:
						okAfter.Add(1)
					case err == nil:
						okBefore.Add(1)
					case errors.Is(err, session.ErrNotFound) || errors.Is(err, session.ErrConflict):
					case after:
						failedAfter.Add(1)
						if !knownCause(err) {
							t.Errorf("%s after the kill = %v: does not wrap a network error, EOF or the deadline", name, err)
						}
						mu.Lock()
						if len(examples) < 3 {
							examples[err.Error()] = true
						}
						mu.Unlock()
					}
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	killedAt.Store(time.Now().UnixNano())
	kill()
	time.Sleep(1500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	t.Logf("before the kill %d calls succeeded; after it %d failed, %d succeeded; slowest call %v (deadline %v); errors e.g. %v",
		okBefore.Load(), failedAfter.Load(), okAfter.Load(), time.Duration(worst.Load()).Round(time.Millisecond), d, keys(examples))
	if okBefore.Load() == 0 || failedAfter.Load() == 0 {
		t.Fatal("the run did not cover both sides of the kill")
	}
	if okAfter.Load() != 0 {
		t.Errorf("%d calls succeeded on a dead backend", okAfter.Load())
	}
}

// knownCause reports whether err wraps what a dead backend causes.
func knownCause(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, context.DeadlineExceeded)
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestStoreFaultRedisKilledMidRun(t *testing.T) {
	noLeaks(t)
	p := startRedis(t, "doomed redis", faultRedisPort+1)
	s := openRedisStore(t, fmt.Sprintf("redis://127.0.0.1:%d/0?dial_timeout=200ms", faultRedisPort+1))
	killedMidRun(t, s, p.kill)
}

func TestStoreFaultPostgresKilledMidRun(t *testing.T) {
	// The shared Postgres must stay up: the PgBouncer in front of it is
	// the backend that dies.
	noLeaks(t)
	b := startPgBouncer(t, 4)
	s, err := bouncerStore(t, b, "exec", 8)
	if err != nil {
		t.Fatal(err)
	}
	killedMidRun(t, s, b.kill)
}

// exhaust runs 256 goroutines against s, whose pool holds 4 connections.
// While the backend is stalled by stall (which returns a func that ends the
// stall), each makes one Get with a 300ms deadline: every call must end by
// its deadline with an error. Then, the stall over, each makes 10 Set+Get
// pairs with 10s deadlines: every one must be served correctly.
func exhaust(t *testing.T, s session.Store, stall func() (release func())) {
	t.Helper()
	const n, d = 256, 300 * time.Millisecond
	release := stall()
	var wg sync.WaitGroup
	var late, succeeded atomic.Int64
	var worst atomic.Int64
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err, took := timed(d, func(ctx context.Context) error { _, err := s.Get(ctx, fmt.Sprint("x-", i)); return err })
			if took > d+overshootSlack {
				late.Add(1)
			}
			if int64(took) > worst.Load() {
				worst.Store(int64(took))
			}
			if err == nil || errors.Is(err, session.ErrNotFound) {
				succeeded.Add(1)
			} else if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Get on an exhausted pool = %v, want an error wrapping context.DeadlineExceeded", err)
			}
		}()
	}
	wg.Wait()
	release()
	t.Logf("stalled: %d callers on a pool of 4, %v deadline: %d answered, %d late, slowest %v",
		n, d, succeeded.Load(), late.Load(), time.Duration(worst.Load()).Round(time.Millisecond))
	if late.Load() > 0 {
		t.Errorf("%d of %d calls returned later than %v past their deadline", late.Load(), n, overshootSlack)
	}

	start := time.Now()
	var lat []time.Duration
	var mu sync.Mutex
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				id := fmt.Sprintf("ok-%d-%d", i, j)
				err, took := timed(10*time.Second, func(ctx context.Context) error {
					if err := s.Set(ctx, id, session.Record{Data: []byte(id), Expires: time.Now().Add(time.Hour)}); err != nil {
						return err
					}
					rec, err := s.Get(ctx, id)
					if err == nil && string(rec.Data) != id {
						err = fmt.Errorf("Get(%s) = %q: another caller's record", id, rec.Data)
					}
					return err
				})
				if err != nil {
					t.Errorf("Set+Get through a pool of 4 under %d callers: %v", n, err)
					return
				}
				mu.Lock()
				lat = append(lat, took)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		t.Logf("served: %d Set+Get pairs from %d callers through a pool of 4 in %v; latency p50 %v, p99 %v, max %v",
			len(lat), n, time.Since(start).Round(time.Millisecond), lat[len(lat)/2].Round(time.Microsecond),
			lat[len(lat)*99/100].Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))
	}
}

func TestStoreFaultPoolExhaustionRedis(t *testing.T) {
	noLeaks(t)
	startRedis(t, "busy redis", faultRedisPort+2)
	s := openRedisStore(t, fmt.Sprintf("redis://127.0.0.1:%d/0?pool_size=4", faultRedisPort+2))
	exhaust(t, s, func() func() {
		done := make(chan struct{})
		go func() { redisDo(faultRedisPort+2, "debug", "sleep", "1.5"); close(done) }()
		time.Sleep(100 * time.Millisecond)
		return func() { <-done }
	})
}

func TestStoreFaultPoolExhaustionPostgres(t *testing.T) {
	noLeaks(t)
	table := newPostgresStore(t, session.PostgresOptions{DisableCleanup: true}).Table()
	cfg, err := pgxpool.ParseConfig(databaseURL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s, err := session.NewPostgresStore(pool, session.PostgresOptions{Table: table, DisableCleanup: true})
	if err != nil {
		t.Fatal(err)
	}
	exhaust(t, s, func() func() {
		ctx := context.Background()
		locker, err := testPool(t).Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := locker.Exec(ctx, `LOCK TABLE `+table+` IN ACCESS EXCLUSIVE MODE`); err != nil {
			t.Fatal(err)
		}
		return func() { locker.Rollback(ctx) }
	})
}
