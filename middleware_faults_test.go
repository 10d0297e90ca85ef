package session_test

// Faults seen through the middleware: the backend is killed while requests
// are between loading and saving their session, the backend stalls longer
// than the requests' deadlines, and 256 clients share a pool of four
// connections. Every request must end by its deadline (plus
// overshootSlack) with either a served response or the error handler's
// 503; no goroutine may outlive the test; and every session written
// before the fault must read back intact afterwards. RELIABILITY.md
// reports what these tests measure.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sessionkit/session"
)

// faultApp is the middleware, with its default error handler (503 for a
// store failure), around a counter: GET answers the session's counter,
// POST increments it. POST /hold loads the session, reports on loaded and
// waits for release before it increments: the backend can then be cut
// between the load and the save.
type faultApp struct {
	h       http.Handler
	m       *session.Manager
	loaded  chan struct{}
	release chan struct{}
}

func newFaultApp(t *testing.T, s session.Store) *faultApp {
	m, err := session.New(s, session.Options{
		Keys: []session.KeyPair{testKey}, TouchInterval: time.Millisecond, Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	a := &faultApp{m: m, loaded: make(chan struct{}, 64), release: make(chan struct{})}
	a.h = m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess := session.From(r)
		n := sess.GetInt("n")
		if r.URL.Path == "/hold" {
			a.loaded <- struct{}{}
			<-a.release
		}
		if r.Method == http.MethodPost {
			if err := sess.Put("n", n+1); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprint(w, n)
	}))
	return a
}

// faultClient is one client with a session of its own.
type faultClient struct {
	cookie string
	want   int // the counter the session holds
	// unsure counts saves answered 503 since the last served response:
	// each may still have been applied (a command sent before the
	// connection died or the deadline passed), as with any database.
	unsure int
}

// do makes one request as c with a context deadline d and checks what it
// saw: a served response must show the counter c expects (give or take
// the saves it is unsure of). It returns the status, how long ServeHTTP
// took, and an error for a wrong counter or a status other than 200/503.
func (a *faultApp) do(c *faultClient, method, path string, d time.Duration) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, method, path, nil)
	if c.cookie != "" {
		req.Header.Set("Cookie", c.cookie)
	}
	rec := httptest.NewRecorder()
	start := time.Now()
	a.h.ServeHTTP(rec, req)
	took := time.Since(start)
	switch rec.Code {
	case http.StatusServiceUnavailable:
		if method == http.MethodPost {
			c.unsure++
		}
		return rec.Code, took, nil
	case http.StatusOK:
	default:
		return rec.Code, took, fmt.Errorf("%s %s: %d %q, want 200 or 503", method, path, rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	for _, ck := range rec.Result().Cookies() {
		c.cookie = ck.Name + "=" + ck.Value
	}
	got, err := strconv.Atoi(rec.Body.String())
	if err != nil || got < c.want || got > c.want+c.unsure {
		return rec.Code, took, fmt.Errorf("%s %s: session holds %q, want %d (+%d unsure): lost, stale or corrupted", method, path, rec.Body.String(), c.want, c.unsure)
	}
	c.want, c.unsure = got, 0
	if method == http.MethodPost {
		c.want++
	}
	return rec.Code, took, nil
}

// faultPhase is what the clients saw during one phase.
type faultPhase struct {
	ok, unavailable, late atomic.Int64
	maxLatency            atomic.Int64
	mu                    sync.Mutex
	errs                  []error
}

func (p *faultPhase) add(status int, took, limit time.Duration, err error) {
	if status == http.StatusOK && err == nil {
		p.ok.Add(1)
	} else if status == http.StatusServiceUnavailable {
		p.unavailable.Add(1)
	}
	if took > limit {
		p.late.Add(1)
	}
	for {
		m := p.maxLatency.Load()
		if int64(took) <= m || p.maxLatency.CompareAndSwap(m, int64(took)) {
			break
		}
	}
	if err != nil {
		p.mu.Lock()
		p.errs = append(p.errs, err)
		p.mu.Unlock()
	}
}

func (p *faultPhase) String() string {
	return fmt.Sprintf("%d served, %d × 503, slowest %v", p.ok.Load(), p.unavailable.Load(), time.Duration(p.maxLatency.Load()).Round(time.Millisecond))
}

// mwFault describes one fault run through the middleware.
type mwFault struct {
	clients  int           // clients making requests throughout, each with a session
	deadline time.Duration // each request's context deadline
	faultFor time.Duration // how long the fault lasts
	inject   func()        // starts the fault
	restore  func()        // ends it (restart, release); returns once it has
}

const (
	faultBystanders = 16 // sessions written before the fault, left alone
	faultHeld       = 8  // requests between load and save when the fault starts
	heldDeadline    = time.Second
)

// middlewareFault runs f against s through the middleware: clients make
// requests (every third one saves) before, during and after the fault;
// faultHeld requests have loaded their session and save only once the
// fault has started. It checks that every request ended by its deadline
// plus overshootSlack with 200 or 503, that each held request got 503,
// that served responses never showed a lost or stale counter, that
// requests are served again after the restore, and that every session
// (the bystanders' byte for byte) is intact afterwards.
func middlewareFault(t *testing.T, s session.Store, f mwFault) {
	t.Helper()
	a := newFaultApp(t, s)
	limit := f.deadline + overshootSlack
	seed := func(n int) []faultClient {
		cs := make([]faultClient, n)
		for i := range cs {
			for j := 0; j < 2; j++ {
				if st, _, err := a.do(&cs[i], http.MethodPost, "/", 10*time.Second); st != 200 || err != nil {
					t.Fatalf("seeding session %d: %d %v", i, st, err)
				}
			}
		}
		return cs
	}
	bystanders, held, cls := seed(faultBystanders), seed(faultHeld), seed(f.clients)
	storeID := func(c faultClient) string {
		codec, _ := session.NewSecureCookieCodec(testKey)
		token, _, err := codec.Decode("session", strings.TrimPrefix(c.cookie, "session="))
		if err != nil {
			t.Fatal(err)
		}
		return session.SHA256Hasher{}.StoreID(token)
	}
	snapshot := make([]session.Record, len(bystanders))
	for i, c := range bystanders {
		rec, err := s.Get(tctx(t), storeID(c))
		if err != nil {
			t.Fatal(err)
		}
		snapshot[i] = rec
	}

	var cur atomic.Pointer[faultPhase]
	cur.Store(&faultPhase{})
	phase := func(d time.Duration) *faultPhase {
		p := &faultPhase{}
		cur.Store(p)
		time.Sleep(d)
		return p
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				method := http.MethodGet
				if k%3 == 0 {
					method = http.MethodPost
				}
				st, took, err := a.do(&cls[i], method, "/", f.deadline)
				cur.Load().add(st, took, limit, err)
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	halted := false
	halt := func() {
		if !halted {
			halted = true
			close(stop)
			wg.Wait()
		}
	}
	defer halt()

	before := phase(300 * time.Millisecond)

	// Requests that loaded their session before the fault save during it.
	heldRes := &faultPhase{}
	var hwg sync.WaitGroup
	for i := range held {
		hwg.Add(1)
		go func() {
			defer hwg.Done()
			st, took, err := a.do(&held[i], http.MethodPost, "/hold", heldDeadline)
			heldRes.add(st, took, heldDeadline+overshootSlack, err)
		}()
	}
	for range held {
		select {
		case <-a.loaded:
		case <-time.After(10 * time.Second):
			close(a.release)
			t.Fatal("held requests did not load their sessions")
		}
	}
	during := &faultPhase{}
	cur.Store(during)
	f.inject()
	close(a.release)
	time.Sleep(f.faultFor)
	hwg.Wait()
	f.restore()
	restored := time.Now()

	// Served again: a fresh client's save succeeds.
	recovering := &faultPhase{}
	cur.Store(recovering)
	var recovery time.Duration
	for probe := (faultClient{}); ; {
		if st, _, _ := a.do(&probe, http.MethodPost, "/", time.Second); st == 200 {
			recovery = time.Since(restored)
			break
		}
		if time.Since(restored) > 15*time.Second {
			t.Fatalf("no request served within 15s of the restore")
		}
		time.Sleep(20 * time.Millisecond)
	}
	after := phase(500 * time.Millisecond)
	halt()

	t.Logf("%d clients, %v deadline: before %v; during the fault (%v) %v; held requests (%v deadline): %v; served again %v after the restore; after %v",
		f.clients, f.deadline, before, f.faultFor, during, heldDeadline, heldRes, recovery.Round(time.Millisecond), after)
	for name, p := range map[string]*faultPhase{"before": before, "during": during, "recovering": recovering, "after": after, "held": heldRes} {
		if p.late.Load() > 0 {
			t.Errorf("%s the fault: %d requests ended later than %v past their deadline (slowest %v)", name, p.late.Load(), overshootSlack, time.Duration(p.maxLatency.Load()))
		}
		for i, err := range p.errs {
			if i == 5 {
				t.Errorf("%s: ... %d more", name, len(p.errs)-5)
				break
			}
			t.Errorf("%s: %v", name, err)
		}
	}
	if before.ok.Load() == 0 {
		t.Error("no request served before the fault")
	}
	if during.unavailable.Load() == 0 {
		t.Error("no request answered 503 during the fault")
	}
	if heldRes.unavailable.Load() != faultHeld {
		t.Errorf("held requests: %v; want all %d answered 503", heldRes, faultHeld)
	}
	if after.ok.Load() == 0 {
		t.Error("no request served after the fault")
	}

	// Every session is intact: the bystanders' records are byte for byte
	// what they were (checked first: a request through the middleware
	// would touch them), and each client's counter is what it last saw
	// saved (or one of its unsure saves).
	for i, c := range bystanders {
		rec, err := s.Get(tctx(t), storeID(c))
		if err != nil || string(rec.Data) != string(snapshot[i].Data) || !rec.Expires.Equal(snapshot[i].Expires) {
			t.Errorf("bystander %d: %q %v (%v); want %q %v", i, rec.Data, rec.Expires, err, snapshot[i].Data, snapshot[i].Expires)
		}
	}
	all := append(append(append([]faultClient{}, bystanders...), held...), cls...)
	for i := range all {
		if st, _, err := a.do(&all[i], http.MethodGet, "/", 10*time.Second); st != 200 || err != nil {
			t.Errorf("session %d after the fault: %d %v", i, st, err)
		}
	}
}

// redisAOF starts a redis-server on port that appends every write to a
// file it fsyncs before replying, so that a SIGKILL loses no acknowledged
// write; start again after a kill to restart it on the same files.
func redisAOF(t *testing.T, port int) (start func() *proc) {
	dir := t.TempDir()
	return func() *proc {
		return startRedis(t, fmt.Sprintf("redis (AOF) %d", port), port,
			"--dir", dir, "--appendonly", "yes", "--appendfsync", "always")
	}
}

// TestMiddlewareFaultRedisKilled: the Redis behind the middleware is
// SIGKILLed while 32 clients make requests and 8 requests are between
// loading and saving their session, then restarted on its files.
func TestMiddlewareFaultRedisKilled(t *testing.T) {
	noLeaks(t)
	port := faultRedisPort + 3
	start := redisAOF(t, port)
	p := start()
	s := openRedisStore(t, fmt.Sprintf("redis://127.0.0.1:%d/0?dial_timeout=200ms", port))
	middlewareFault(t, s, mwFault{
		clients: 32, deadline: 500 * time.Millisecond, faultFor: time.Second,
		inject:  func() { p.kill() },
		restore: func() { p = start() },
	})
}

// TestMiddlewareFaultPgBouncerKilled: the PgBouncer between the middleware
// and Postgres is SIGKILLed under the same load, then started again (the
// shared Postgres stays up).
func TestMiddlewareFaultPgBouncerKilled(t *testing.T) {
	noLeaks(t)
	b := startPgBouncer(t, 4)
	s, err := bouncerStore(t, b, "exec", 8)
	if err != nil {
		t.Fatal(err)
	}
	middlewareFault(t, s, mwFault{
		clients: 32, deadline: 500 * time.Millisecond, faultFor: time.Second,
		inject:  func() { b.kill() },
		restore: func() { b = startPgBouncer(t, 4) },
	})
}

// stallRedis returns a fault that blocks the Redis on port with DEBUG
// SLEEP for d, and its end.
func stallRedis(port int, d time.Duration) (inject, restore func()) {
	done := make(chan struct{})
	inject = func() {
		go func() { redisDo(port, "debug", "sleep", strconv.FormatFloat(d.Seconds(), 'f', 3, 64)); close(done) }()
		time.Sleep(100 * time.Millisecond)
	}
	return inject, func() { <-done }
}

// lockTable returns a fault that holds an ACCESS EXCLUSIVE lock on table
// from another connection, and its end.
func lockTable(t *testing.T, table string) (inject, restore func()) {
	pool := testPool(t)
	var release func()
	inject = func() {
		ctx := context.Background()
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `LOCK TABLE `+table+` IN ACCESS EXCLUSIVE MODE`); err != nil {
			t.Fatal(err)
		}
		release = func() { tx.Rollback(ctx) }
	}
	return inject, func() { release() }
}

// TestMiddlewareFaultSlowRedis: Redis stalls (DEBUG SLEEP 1.5s) under
// requests whose deadline is 500ms.
func TestMiddlewareFaultSlowRedis(t *testing.T) {
	noLeaks(t)
	port := faultRedisPort + 4
	startRedis(t, "slow redis", port)
	s := openRedisStore(t, fmt.Sprintf("redis://127.0.0.1:%d/0", port))
	inject, restore := stallRedis(port, 1500*time.Millisecond)
	middlewareFault(t, s, mwFault{clients: 32, deadline: 500 * time.Millisecond, faultFor: 1200 * time.Millisecond, inject: inject, restore: restore})
}

// TestMiddlewareFaultSlowPostgres: the store's table is locked for 1.5s
// under requests whose deadline is 500ms.
func TestMiddlewareFaultSlowPostgres(t *testing.T) {
	noLeaks(t)
	s := newPostgresStore(t, session.PostgresOptions{DisableCleanup: true})
	inject, restore := lockTable(t, s.Table())
	middlewareFault(t, s, mwFault{clients: 32, deadline: 500 * time.Millisecond, faultFor: 1500 * time.Millisecond, inject: inject, restore: restore})
}

// TestMiddlewareFaultPoolExhaustionRedis: 256 clients through a pool of 4
// connections; Redis stalls for 1.5s in the middle.
func TestMiddlewareFaultPoolExhaustionRedis(t *testing.T) {
	noLeaks(t)
	port := faultRedisPort + 5
	startRedis(t, "busy redis", port)
	s := openRedisStore(t, fmt.Sprintf("redis://127.0.0.1:%d/0?pool_size=4", port))
	inject, restore := stallRedis(port, 1500*time.Millisecond)
	middlewareFault(t, s, mwFault{clients: 256, deadline: time.Second, faultFor: 1200 * time.Millisecond, inject: inject, restore: restore})
}

// TestMiddlewareFaultPoolExhaustionPostgres: 256 clients through a pool of
// 4 connections; the table is locked for 1.5s in the middle.
func TestMiddlewareFaultPoolExhaustionPostgres(t *testing.T) {
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
	inject, restore := lockTable(t, table)
	middlewareFault(t, s, mwFault{clients: 256, deadline: time.Second, faultFor: 1500 * time.Millisecond, inject: inject, restore: restore})
}
