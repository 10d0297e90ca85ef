package session_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sessionkit/session"
)

// requestThroughMiddleware stands in for one HTTP request made through
// the session middleware, which is being written in parallel and is not
// available yet. It does what the middleware does with the store on a
// request that changes the session (load, then save) or only reads it
// (load, then touch), bounded by a per-request timeout, and returns the
// status the middleware would answer: 200, or 503 when the store failed.
//
// TODO(middleware): once middleware.go lands, replace the body with a
// real request through session.Middleware on an httptest server (cookie
// jar per client) and keep the same signature, so the fault tests below
// do not change.
//
// cs is the client's view of its session: the value it last saved, and
// whether its last save failed. A save that failed (the connection died
// while the server was committing) may still have been applied, as with
// any database: the next load then accepts either value.
func requestThroughMiddleware(s session.Store, id string, write bool, cs *clientState) (status int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rec, err := s.Get(ctx, id)
	if err != nil {
		return http.StatusServiceUnavailable, fmt.Errorf("load: %w", err)
	}
	got := string(rec.Data)
	switch {
	case got == strconv.Itoa(cs.want):
	case cs.unsure && got == strconv.Itoa(cs.want+1):
		cs.want++
	default:
		return http.StatusOK, fmt.Errorf("session %s holds %q, want %d (lost or stale)", id, got, cs.want)
	}
	cs.unsure = false
	if write {
		if err := s.Set(ctx, id, session.Record{Data: []byte(strconv.Itoa(cs.want + 1)), Expires: time.Now().Add(time.Hour)}); err != nil {
			cs.unsure = true
			return http.StatusServiceUnavailable, fmt.Errorf("save: %w", err)
		}
		cs.want++
		return http.StatusOK, nil
	}
	if err := s.Touch(ctx, id, time.Now().Add(time.Hour)); err != nil {
		return http.StatusServiceUnavailable, fmt.Errorf("touch: %w", err)
	}
	return http.StatusOK, nil
}

type clientState struct {
	want   int
	unsure bool
}

// loadResult is what a phase of client traffic saw.
type loadResult struct {
	requests, failed atomic.Int64
	maxLatency       atomic.Int64
	mu               sync.Mutex
	firstErrs        []error
}

func (r *loadResult) add(d time.Duration, err error) {
	r.requests.Add(1)
	for {
		m := r.maxLatency.Load()
		if int64(d) <= m || r.maxLatency.CompareAndSwap(m, int64(d)) {
			break
		}
	}
	if err != nil {
		r.failed.Add(1)
		r.mu.Lock()
		if len(r.firstErrs) < 5 {
			r.firstErrs = append(r.firstErrs, err)
		}
		r.mu.Unlock()
	}
}

// clients runs n clients, each with a session of its own, making
// requests until stop is closed; every third request saves.
type clients struct {
	store session.Store
	ids   []string
	state []clientState
	res   atomic.Pointer[loadResult]
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startClients(t *testing.T, s session.Store, n int) *clients {
	c := &clients{store: s, ids: make([]string, n), state: make([]clientState, n), stop: make(chan struct{})}
	c.res.Store(&loadResult{})
	for i := range c.ids {
		c.ids[i] = randomName("client-")
		if err := s.Set(tctx(t), c.ids[i], session.Record{Data: []byte("0"), Expires: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range c.ids {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for k := 0; ; k++ {
				select {
				case <-c.stop:
					return
				default:
				}
				start := time.Now()
				_, err := requestThroughMiddleware(s, c.ids[i], k%3 == 0, &c.state[i])
				c.res.Load().add(time.Since(start), err)
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	return c
}

// phase runs the clients for d and returns what they saw.
func (c *clients) phase(d time.Duration) *loadResult {
	r := &loadResult{}
	c.res.Store(r)
	time.Sleep(d)
	c.res.Store(&loadResult{})
	return r
}

func (c *clients) halt() {
	close(c.stop)
	c.wg.Wait()
}

// TestFaultRedisKilledUnderLoad: 32 clients use a Tiered store (a Redis
// of the test's own in front of the shared Postgres). Redis is killed
// (SIGKILL) and restarted under load. Zero requests fail, zero sessions
// are lost or go stale, every read during the outage is served by
// Postgres, and Redis serves reads again after its restart without any
// restart of the store.
func TestFaultRedisKilledUnderLoad(t *testing.T) {
	pg := newPostgresStore(t, session.PostgresOptions{CleanupInterval: -1})
	srv := startRedisServer(t)
	rs, err := session.OpenRedis("redis://"+srv.addr()+"/0", session.RedisOptions{Prefix: randomName("faulttest:") + ":"})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	logger, logs := newLogger()
	ts := newTiered(t, rs, pg, session.TieredOptions{CacheTimeout: 100 * time.Millisecond, RetryInterval: 200 * time.Millisecond, Logger: logger})
	cl := startClients(t, ts, 32)

	before := cl.phase(500 * time.Millisecond)
	hits0, _ := ts.CacheStats()

	srv.stop()
	hitsAtKill, _ := ts.CacheStats()
	fb0 := ts.Stats().Fallbacks
	during := cl.phase(1500 * time.Millisecond)
	hitsDown, _ := ts.CacheStats()
	fbDown := ts.Stats().Fallbacks - fb0
	degraded := session.CheckHealth(tctx(t), ts, session.HealthOptions{Timeout: 300 * time.Millisecond})

	srv.start()
	after := cl.phase(1500 * time.Millisecond)
	hitsAfter, _ := ts.CacheStats()
	cl.halt()

	for name, r := range map[string]*loadResult{"before": before, "during": during, "after": after} {
		t.Logf("%s: %d requests, %d failed, max latency %v", name, r.requests.Load(), r.failed.Load(), time.Duration(r.maxLatency.Load()))
		if r.failed.Load() != 0 {
			t.Errorf("%s the kill: %d of %d requests failed: %v", name, r.failed.Load(), r.requests.Load(), r.firstErrs)
		}
		if r.requests.Load() < 32 {
			t.Errorf("%s: only %d requests", name, r.requests.Load())
		}
	}
	if hits0 == 0 {
		t.Error("Redis served no read before the kill")
	}
	if hitsDown != hitsAtKill {
		t.Errorf("Redis served %d reads while dead", hitsDown-hitsAtKill)
	}
	if fbDown < during.requests.Load()/3 {
		t.Errorf("only %d fallbacks for %d requests during the outage", fbDown, during.requests.Load())
	}
	if degraded.Status != session.HealthDegraded {
		t.Errorf("health during the outage = %+v, want degraded", degraded)
	}
	if hitsAfter == hitsDown {
		t.Error("Redis not used again after its restart")
	}
	if st := ts.Stats(); st.Errors != 0 {
		t.Errorf("Stats.Errors = %d", st.Errors)
	}
	// Every session holds exactly what its client last wrote, in
	// Postgres and through the store.
	for i, id := range cl.ids {
		want := strconv.Itoa(cl.state[i].want)
		for name, s := range map[string]session.Store{"tiered": ts, "postgres": pg} {
			if got, err := s.Get(tctx(t), id); err != nil || string(got.Data) != want {
				t.Errorf("%s: session %d = %q, %v; want %s", name, i, got.Data, err, want)
			}
		}
	}
	t.Logf("reads from Redis: %d before the kill, %d while dead, %d after the restart; fallbacks while dead: %d",
		hitsAtKill, hitsDown-hitsAtKill, hitsAfter-hitsDown, fbDown)
	if !logHas(logs.String(), "cache failed") || !logHas(logs.String(), "cache is back") {
		t.Errorf("log lacks the cache going and coming:\n%s", logs)
	}
}

// TestFaultPostgresRestart: the shared Postgres must not be restarted
// (other engineers' tests use it), so the store reaches it through a
// tcpProxy that the test cuts and restores: cutting drops every pooled
// connection and refuses new ones, which is what a pool sees while a
// server restarts. pg_terminate_backend on our own application_name
// would only cover the dropped connections, not the refused reconnects.
// Requests during the outage fail fast with 503, the health handler says
// 503, and after the restore the pool reconnects by itself and both
// recover.
func TestFaultPostgresRestart(t *testing.T) {
	direct := newPostgresStore(t, session.PostgresOptions{CleanupInterval: -1}) // migrated table of our own
	cfg, err := pgxpool.ParseConfig(databaseURL())
	if err != nil {
		t.Fatal(err)
	}
	target := net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port)))
	proxy := startProxy(t, target)
	host, port, _ := net.SplitHostPort(proxy.addr())
	p, _ := strconv.Atoi(port)
	cfg.ConnConfig.Host, cfg.ConnConfig.Port = host, uint16(p)
	// sslmode=prefer (the default) adds fallback configs, without TLS,
	// to the original host: they must go through the proxy too.
	for _, fb := range cfg.ConnConfig.Fallbacks {
		fb.Host, fb.Port = host, uint16(p)
	}
	cfg.ConnConfig.ConnectTimeout = time.Second
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ps, err := session.NewPostgresStore(pool, session.PostgresOptions{Table: direct.Table(), CleanupInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	s := session.Instrument(ps)
	health := session.HealthHandler(s, session.HealthOptions{Timeout: time.Second})
	status := func() int {
		rr := httptest.NewRecorder()
		health.ServeHTTP(rr, httptest.NewRequest("GET", "/healthz", nil))
		return rr.Code
	}

	cl := startClients(t, s, 32)
	before := cl.phase(300 * time.Millisecond)
	if before.failed.Load() != 0 || status() != 200 {
		cl.halt()
		t.Fatalf("before the restart: %d failed %v; health %d", before.failed.Load(), before.firstErrs, status())
	}

	proxy.setCut(true)
	down := cl.phase(time.Second)
	downHealth := status()

	proxy.setCut(false)
	restored := time.Now()
	var recoveredIn time.Duration
	for time.Since(restored) < 10*time.Second {
		r := cl.phase(100 * time.Millisecond)
		if r.failed.Load() == 0 && r.requests.Load() > 0 {
			recoveredIn = time.Since(restored)
			break
		}
	}
	after := cl.phase(500 * time.Millisecond)
	cl.halt()

	t.Logf("during the outage: %d requests, %d failed (503), max latency %v; recovered %v after the restore; after: %d requests, %d failed",
		down.requests.Load(), down.failed.Load(), time.Duration(down.maxLatency.Load()), recoveredIn, after.requests.Load(), after.failed.Load())
	if down.failed.Load() == 0 {
		t.Error("no request failed with Postgres unreachable")
	}
	if d := time.Duration(down.maxLatency.Load()); d > 1500*time.Millisecond {
		t.Errorf("a request took %v during the outage; want a fast 503", d)
	}
	if downHealth != http.StatusServiceUnavailable {
		t.Errorf("health during the outage = %d, want 503", downHealth)
	}
	if recoveredIn == 0 {
		t.Fatal("requests still failing 10s after Postgres came back")
	}
	if after.failed.Load() != 0 {
		t.Errorf("after recovery %d requests failed: %v", after.failed.Load(), after.firstErrs)
	}
	if status() != 200 {
		t.Error("health not 200 after recovery")
	}
	// Sessions written before the outage are all there.
	for i, id := range cl.ids {
		if _, err := requestThroughMiddleware(s, id, false, &cl.state[i]); err != nil {
			t.Errorf("session %d: %v", i, err)
		}
	}
	if st := s.Stats(); st.Errors == 0 {
		t.Errorf("Stats.Errors = 0 after an outage")
	}
}
