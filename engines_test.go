package session_test

// The store on the engines users scale out to: Redis Cluster, Redis
// Sentinel, Postgres behind PgBouncer in transaction pooling mode, and
// Redis over TLS. Each test starts its servers (engine_servers_test.go) and kills
// them when it ends. RELIABILITY.md reports what these tests measure.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/sessionkit/session"
	"github.com/sessionkit/session/sessiontest"
)

// openRedisStore opens a store on url under a fresh prefix; the store owns
// its client and is closed when t ends.
func openRedisStore(t testing.TB, url string) *session.RedisStore {
	t.Helper()
	s, _ := openRedisStorePrefix(t, url)
	return s
}

// openRedisStorePrefix is openRedisStore that also returns the prefix.
func openRedisStorePrefix(t testing.TB, url string) (*session.RedisStore, string) {
	t.Helper()
	prefix := randomName("sessiontest:") + ":"
	s, err := session.OpenRedis(url, session.RedisOptions{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, prefix
}

// failoverStats is what writeThroughFailover measured.
type failoverStats struct {
	acked, failed       int           // Set calls that returned nil / an error
	lost, corrupt, errs int           // acknowledged writes read back missing / different / with an error
	recovery            time.Duration // from the kill to the first successful probe write
	lostIDs             []string
}

// writeThroughFailover has writers goroutines Set fresh ids in a loop, each
// call with a one-second deadline. After warmup it calls kill, then probes
// until a write that must reach the failed node succeeds (the recovery
// time, at most limit), lets the writers run half a second more, stops them
// and reads back every acknowledged write.
func writeThroughFailover(t *testing.T, s session.Store, writers int, warmup time.Duration, kill func(), probe func(context.Context) error, limit time.Duration) failoverStats {
	t.Helper()
	type write struct{ id, data string }
	var (
		mu     sync.Mutex
		acked  []write
		failed int
		stop   atomic.Bool
		wg     sync.WaitGroup
	)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				id := fmt.Sprintf("fo-%d-%d", w, i)
				sum := sha256.Sum256([]byte(id))
				data := id + ":" + hex.EncodeToString(sum[:])
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				err := s.Set(ctx, id, session.Record{Data: []byte(data), Expires: time.Now().Add(time.Hour)})
				cancel()
				mu.Lock()
				if err == nil {
					acked = append(acked, write{id, data})
				} else {
					failed++
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	defer func() { stop.Store(true); wg.Wait() }()

	time.Sleep(warmup)
	killed := time.Now()
	kill()
	var st failoverStats
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := probe(ctx)
		cancel()
		if err == nil {
			st.recovery = time.Since(killed)
			break
		}
		if time.Since(killed) > limit {
			t.Fatalf("no write succeeded within %v of the kill: %v", limit, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()

	st.acked, st.failed = len(acked), failed
	for _, w := range acked {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		rec, err := s.Get(ctx, w.id)
		cancel()
		switch {
		case errors.Is(err, session.ErrNotFound):
			st.lost++
			if len(st.lostIDs) < 5 {
				st.lostIDs = append(st.lostIDs, w.id)
			}
		case err != nil:
			st.errs++
			t.Errorf("Get(%s) after failover: %v", w.id, err)
		case string(rec.Data) != w.data:
			st.corrupt++
			t.Errorf("Get(%s) = %q, want %q: record corrupted", w.id, rec.Data, w.data)
		}
	}
	return st
}

func TestRedisCluster(t *testing.T) {
	c := startRedisCluster(t)
	url := "redis://" + c.addrs[0] + "?addr=" + c.addrs[1] + "&addr=" + c.addrs[2] +
		"&dial_timeout=300ms&read_timeout=1s&write_timeout=1s"

	t.Run("Conformance", func(t *testing.T) {
		sessiontest.Run(t, func(t *testing.T) session.Store { return openRedisStore(t, url) })
	})

	// The middleware's tests and the hostile-request table through a
	// ClusterClient, on the cluster this test started (before the kill).
	newStore := func(t testing.TB) session.Store { return openRedisStore(t, url) }
	t.Run("Middleware", func(t *testing.T) { middlewareSuite(t, newStore) })
	t.Run("Hardening", func(t *testing.T) { hardeningSuite(t, newStore) })
	t.Run("Hostile", func(t *testing.T) { testHostileRequests(t, newStore(t)) })

	t.Run("CountCoversEveryMaster", func(t *testing.T) {
		s := openRedisStore(t, url)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		const n = 300
		for i := 0; i < n; i++ {
			if err := s.Set(ctx, fmt.Sprint("count-", i), session.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		cc := s.Client().(*redis.ClusterClient)
		var perMaster []int64
		var mu sync.Mutex
		err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			n, err := m.DBSize(ctx).Result()
			mu.Lock()
			perMaster = append(perMaster, n)
			mu.Unlock()
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range perMaster {
			if k == 0 || len(perMaster) != 3 {
				t.Fatalf("keys per master = %v: want three masters each holding some", perMaster)
			}
		}
		if got, err := s.Count(ctx); err != nil || got != n {
			t.Fatalf("Count = %d, %v; want %d (keys per master %v)", got, err, n, perMaster)
		}
		t.Logf("Count = %d over masters holding %v keys", n, perMaster)
	})

	// A user's sessions land on every master (session keys are spread by
	// id; only the user's index carries a hash tag): listing them and
	// revoking them through the Manager must reach all of them.
	t.Run("UserSessionsCoverEveryMaster", func(t *testing.T) {
		s, prefix := openRedisStorePrefix(t, url)
		a := newApp(t, s, session.Options{})
		a.mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
			if err := session.From(r).SetUser("ada"); err != nil {
				http.Error(w, err.Error(), 500)
			}
		})
		a.mux.HandleFunc("GET /user", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, session.From(r).UserID())
		})
		const n = 60
		clients := make([]*http.Client, n)
		for i := range clients {
			clients[i] = newClient(t)
			if resp, _ := a.doWith(clients[i], "POST", "/login", nil); resp.StatusCode != 200 {
				t.Fatalf("login %d: %s", i, resp.Status)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		listed, err := s.ListUser(ctx, "ada")
		if err != nil || len(listed) != n {
			t.Fatalf("ListUser = %d records, %v; want %d", len(listed), err, n)
		}
		// Which master holds each session's key.
		cc := s.Client().(*redis.ClusterClient)
		var mu sync.Mutex
		perMaster := map[string]int{}
		err = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			for _, r := range listed {
				k, err := m.Exists(ctx, prefix+r.ID).Result()
				if redis.HasErrorPrefix(err, "MOVED") {
					continue // another master's slot
				}
				if err != nil {
					return err
				}
				mu.Lock()
				perMaster[m.Options().Addr] += int(k)
				mu.Unlock()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, k := range perMaster {
			total += k
			if k == 0 {
				t.Fatalf("sessions per master %v: want the user's sessions on every master", perMaster)
			}
		}
		if len(perMaster) != 3 || total != n {
			t.Fatalf("sessions per master %v: want %d over 3 masters", perMaster, n)
		}
		// (a.m sits on a call-counting wrapper without UserIndex.)
		m, err := session.New(s, session.Options{Keys: []session.KeyPair{testKey}, Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		us, err := m.UserSessions(ctx, "ada")
		if err != nil || len(us) != n {
			t.Fatalf("UserSessions = %d, %v; want %d", len(us), err, n)
		}
		got, err := m.RevokeUser(ctx, "ada")
		if err != nil || got != n {
			t.Fatalf("RevokeUser = %d, %v; want %d", got, err, n)
		}
		for i, c := range clients {
			if _, body := a.doWith(c, "GET", "/user", nil); body != "" {
				t.Fatalf("client %d still logged in as %q after the revocation", i, body)
			}
		}
		if left, err := s.ListUser(ctx, "ada"); err != nil || len(left) != 0 {
			t.Fatalf("after RevokeUser ListUser = %d, %v", len(left), err)
		}
		for _, r := range listed {
			if _, err := s.Get(ctx, r.ID); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("session %s survives the revocation: %v", r.ID, err)
			}
		}
		t.Logf("%d sessions of one user over masters %v: all listed (store and Manager), all %d revoked", n, perMaster, got)
	})

	t.Run("MasterKilledMidRun", func(t *testing.T) {
		noLeaks(t)
		s, prefix := openRedisStorePrefix(t, url)
		nodes, err := c.topology(clusterBasePort)
		if err != nil {
			t.Fatal(err)
		}
		var victim, heir *clusterNode
		for i := range nodes {
			if nodes[i].master && nodes[i].port != clusterBasePort && victim == nil {
				victim = &nodes[i]
			}
		}
		for i := range nodes {
			if victim != nil && nodes[i].masterID == victim.id {
				heir = &nodes[i]
			}
		}
		if victim == nil || heir == nil {
			t.Fatalf("no master with a replica in %+v", nodes)
		}
		// A probe id whose key hashes to a slot of the victim.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		admin := redisAt(clusterBasePort)
		defer admin.Close()
		probeID := ""
		for i := 0; probeID == ""; i++ {
			id := fmt.Sprint("probe-", i)
			slot, err := admin.ClusterKeySlot(ctx, prefix+id).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range victim.slots {
				if int(slot) >= r[0] && int(slot) <= r[1] {
					probeID = id
				}
			}
		}
		st := writeThroughFailover(t, s, 16, time.Second,
			func() { c.nodes[victim.port].kill() },
			func(ctx context.Context) error {
				return s.Set(ctx, probeID, session.Record{Data: []byte("probe"), Expires: time.Now().Add(time.Hour)})
			}, 20*time.Second)
		t.Logf("Redis Cluster: killed master %s (replica %s), node timeout 1s: recovery %v, writes acked %d, failed %d (not acknowledged), acked writes lost %d (%.3f%%), corrupted %d, read errors %d, lost e.g. %v",
			victim.addr, heir.addr, st.recovery.Round(time.Millisecond), st.acked, st.failed, st.lost, 100*float64(st.lost)/float64(max(st.acked, 1)), st.corrupt, st.errs, st.lostIDs)
		if st.acked == 0 {
			t.Fatal("no write was acknowledged")
		}
		// The promoted replica now serves the victim's slots.
		after, err := c.topology(heir.port)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range after {
			if n.port == heir.port && !n.master {
				t.Fatalf("replica %s was not promoted: %+v", heir.addr, n)
			}
		}
	})
}

func TestRedisSentinel(t *testing.T) {
	s := startRedisSentinel(t)
	url := "redis://" + s.addrs[0] + "?master_name=" + sentinelMasterSet + "&addr=" + s.addrs[1] + "&addr=" + s.addrs[2] +
		"&dial_timeout=300ms&read_timeout=1s&write_timeout=1s"

	t.Run("Conformance", func(t *testing.T) {
		sessiontest.Run(t, func(t *testing.T) session.Store { return openRedisStore(t, url) })
	})

	newStore := func(t testing.TB) session.Store { return openRedisStore(t, url) }
	t.Run("Middleware", func(t *testing.T) { middlewareSuite(t, newStore) })
	t.Run("Hardening", func(t *testing.T) { hardeningSuite(t, newStore) })
	t.Run("Hostile", func(t *testing.T) { testHostileRequests(t, newStore(t)) })

	t.Run("MasterKilled", func(t *testing.T) {
		noLeaks(t)
		st := openRedisStore(t, url)
		stats := writeThroughFailover(t, st, 8, time.Second,
			func() { s.master.kill() },
			func(ctx context.Context) error {
				return st.Set(ctx, "probe", session.Record{Data: []byte("probe"), Expires: time.Now().Add(time.Hour)})
			}, 20*time.Second)
		t.Logf("Redis Sentinel: killed master :%d (down-after 1s, failover-timeout 3s): writes resumed after %v, acked %d, failed %d (not acknowledged), acked writes lost %d (%.3f%%), corrupted %d, read errors %d, lost e.g. %v",
			sentinelMaster, stats.recovery.Round(time.Millisecond), stats.acked, stats.failed, stats.lost, 100*float64(stats.lost)/float64(max(stats.acked, 1)), stats.corrupt, stats.errs, stats.lostIDs)
		if stats.acked == 0 {
			t.Fatal("no write was acknowledged")
		}
		repl, err := redisInfo(sentinelReplica, "replication")
		if err != nil || repl["role"] != "master" {
			t.Fatalf("replica :%d role = %q, %v; want master after the failover", sentinelReplica, repl["role"], err)
		}
	})
}

// bouncerStore opens a pool through PgBouncer with the given query exec
// mode and returns a store on a fresh table, migrated through PgBouncer.
func bouncerStore(t testing.TB, b *pgbouncer, mode string, maxConns int) (*session.PostgresStore, error) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(b.URL + "&default_query_exec_mode=" + mode)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = int32(maxConns)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	table := randomName("sessions_b")
	direct := testPool(t)
	t.Cleanup(func() {
		direct.Exec(context.Background(), `DROP TABLE IF EXISTS `+table+`, `+table+`_schema_migrations`)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := session.Migrate(ctx, pool, table); err != nil {
		return nil, err
	}
	s, err := session.NewPostgresStore(pool, session.PostgresOptions{Table: table, DisableCleanup: true})
	if err != nil {
		t.Fatal(err)
	}
	return s, nil
}

// bouncerWorkload runs every store method from 24 goroutines over a pool of
// 12 connections multiplexed by PgBouncer onto 3 server connections, so
// that consecutive statements of one client connection land on different
// server connections. It returns the first error.
func bouncerWorkload(s *session.PostgresStore) error {
	var wg sync.WaitGroup
	errs := make(chan error, 24)
	for w := 0; w < 24; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for i := 0; i < 15; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				exp := time.Now().Add(time.Hour)
				err := s.Set(ctx, id, session.Record{Data: []byte(id), Expires: exp})
				if err == nil {
					var rec session.Record
					rec, err = s.Get(ctx, id)
					if err == nil && string(rec.Data) != id {
						err = fmt.Errorf("Get(%s) = %q", id, rec.Data)
					}
				}
				if err == nil {
					err = s.Touch(ctx, id, exp.Add(time.Minute))
				}
				if err == nil {
					err = s.CompareAndSet(ctx, id, []byte(id), session.Record{Data: []byte(id + "+"), Expires: exp})
				}
				if err == nil {
					_, err = s.Count(ctx)
				}
				if err == nil && i%2 == 0 {
					err = s.Destroy(ctx, id)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func TestPgBouncer(t *testing.T) {
	b := startPgBouncer(t, 3)

	t.Run("Conformance", func(t *testing.T) {
		// Migrate runs through PgBouncer for every store the suite makes.
		sessiontest.Run(t, func(t *testing.T) session.Store {
			s, err := bouncerStore(t, b, "exec", 8)
			if err != nil {
				t.Fatalf("Migrate through PgBouncer: %v", err)
			}
			return s
		})
	})

	// The middleware's tests and the hostile-request table through
	// PgBouncer in transaction pooling mode, in the documented exec mode.
	newStore := func(t testing.TB) session.Store {
		s, err := bouncerStore(t, b, "exec", 8)
		if err != nil {
			t.Fatalf("Migrate through PgBouncer: %v", err)
		}
		return s
	}
	t.Run("Middleware", func(t *testing.T) { middlewareSuite(t, newStore) })
	t.Run("Hardening", func(t *testing.T) { hardeningSuite(t, newStore) })
	t.Run("Hostile", func(t *testing.T) { testHostileRequests(t, newStore(t)) })

	// Which of pgx's query exec modes work through a transaction pooler.
	// PgBouncer 1.18 (Debian 12) does not track prepared statements, and
	// between transactions it may hand a client's next statement to another
	// server connection: a mode that prepares a named statement once per
	// connection (cache_statement) or that prepares in one round trip and
	// executes in the next (describe_exec) breaks; modes that send
	// everything a statement needs in one round trip work.
	t.Run("QueryExecModes", func(t *testing.T) {
		works := map[string]bool{"exec": true, "simple_protocol": true, "cache_describe": true}
		for _, mode := range []string{"cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol"} {
			s, err := bouncerStore(t, b, mode, 12)
			if err == nil {
				err = bouncerWorkload(s)
			}
			switch {
			case err != nil && works[mode]:
				t.Errorf("default_query_exec_mode=%s through PgBouncer (transaction pooling): %v", mode, err)
			case err != nil:
				t.Logf("default_query_exec_mode=%s through PgBouncer (transaction pooling): fails, as documented: %v", mode, err)
			case works[mode]:
				t.Logf("default_query_exec_mode=%s through PgBouncer (transaction pooling): Migrate and every store method work", mode)
			default:
				t.Logf("default_query_exec_mode=%s through PgBouncer (transaction pooling): passed this time, but it is unsafe (see PostgresStore's doc)", mode)
			}
		}
	})

	// Migrate with a statement-caching connection: a second client
	// connection reaching the same server connection finds the statement
	// the first one prepared there, and Postgres refuses to prepare it
	// again. Migrate's error must say what to do.
	t.Run("MigrateErrorNamesDirectURL", func(t *testing.T) {
		b.kill()
		b1 := startPgBouncer(t, 1) // one server connection: deterministic
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		connect := func() *pgx.Conn {
			cfg, err := pgx.ParseConfig(b1.URL + "&default_query_exec_mode=cache_statement")
			if err != nil {
				t.Fatal(err)
			}
			c, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close(context.Background()) })
			return c
		}
		a, c := connect(), connect()
		table := randomName("sessions_m")
		direct := testPool(t)
		drop := func() {
			direct.Exec(context.Background(), `DROP TABLE IF EXISTS `+table+`, `+table+`_schema_migrations`)
		}
		t.Cleanup(drop)
		if err := session.Migrate(ctx, a, table); err != nil {
			t.Fatalf("first Migrate through PgBouncer: %v", err)
		}
		drop()
		err := session.Migrate(ctx, c, table)
		if err == nil {
			t.Fatal("second Migrate through PgBouncer with cache_statement succeeded; expected the prepared-statement clash")
		}
		if !strings.Contains(err.Error(), "DIRECT_URL") || !strings.Contains(err.Error(), "default_query_exec_mode=exec") {
			t.Fatalf("Migrate error does not say what to do: %v", err)
		}
		t.Logf("Migrate through PgBouncer with cache_statement: %v", err)
	})
}

// TestRedisTLS is the Upstash shape: a Redis that speaks only TLS, reached
// with a rediss:// URL, its certificate verified.
func TestRedisTLS(t *testing.T) {
	certs := newTestCerts(t, "session")
	startTLSRedis(t, certs)
	url := fmt.Sprintf("rediss://127.0.0.1:%d/0", tlsRedisPort)

	t.Run("Conformance", func(t *testing.T) {
		// In code, a private CA goes into the parsed options' TLSConfig.
		sessiontest.Run(t, func(t *testing.T) session.Store {
			o, err := redis.ParseURL(url)
			if err != nil {
				t.Fatal(err)
			}
			o.TLSConfig.RootCAs = certs.pool
			c := redis.NewClient(o)
			t.Cleanup(func() { c.Close() })
			s, err := session.NewRedisStore(c, session.RedisOptions{Prefix: randomName("sessiontest:") + ":"})
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})

	t.Run("Middleware", func(t *testing.T) {
		middlewareSuite(t, func(t testing.TB) session.Store {
			o, err := redis.ParseURL(url)
			if err != nil {
				t.Fatal(err)
			}
			o.TLSConfig.RootCAs = certs.pool
			c := redis.NewClient(o)
			t.Cleanup(func() { c.Close() })
			s, err := session.NewRedisStore(c, session.RedisOptions{Prefix: randomName("sessiontest:") + ":"})
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})

	t.Run("UnknownCARejected", func(t *testing.T) {
		// The system roots do not hold the test CA: the URL alone must fail
		// verification, with an error that says so.
		s := openRedisStore(t, url)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := s.Ping(ctx)
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("Ping with an unknown CA = %v; want a certificate verification error", err)
		}
		t.Logf("unknown CA: %v", err)
	})

	// SSL_CERT_FILE is read once per process, so these run the test binary
	// again with it set: the rediss:// URL alone, no code, then trusts (or
	// not) the CA in that file.
	other := newTestCerts(t, "other")
	for _, tc := range []struct {
		name, caFile string
		ok           bool
	}{
		{"SSL_CERT_FILE", certs.caFile, true},
		{"SSL_CERT_FILE_WrongCA", other.caFile, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestRedisTLSChild$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+tc.caFile, "SSL_CERT_DIR=/nonexistent",
				"SESSION_TEST_TLS_CHILD_URL="+url, fmt.Sprintf("SESSION_TEST_TLS_CHILD_OK=%v", tc.ok))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child test failed: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "child: ") {
				t.Fatalf("child test did not run:\n%s", out)
			}
			for _, line := range strings.Split(string(out), "\n") {
				if strings.Contains(line, "child: ") {
					t.Log(strings.TrimSpace(line))
				}
			}
		})
	}
}

// TestRedisTLSChild runs only as the child of TestRedisTLS.
func TestRedisTLSChild(t *testing.T) {
	url := os.Getenv("SESSION_TEST_TLS_CHILD_URL")
	if url == "" {
		t.Skip("runs only as a child of TestRedisTLS")
	}
	s, err := session.OpenRedis(url, session.RedisOptions{Prefix: randomName("sessiontest:") + ":"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = s.Set(ctx, "a", session.Record{Data: []byte("over TLS"), Expires: time.Now().Add(time.Minute)})
	if os.Getenv("SESSION_TEST_TLS_CHILD_OK") != "true" {
		if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Fatalf("Set with a CA that did not sign the server's certificate = %v; want a verification error", err)
		}
		t.Logf("child: wrong CA in SSL_CERT_FILE rejected: %v", err)
		return
	}
	if err != nil {
		t.Fatalf("Set over rediss:// with SSL_CERT_FILE: %v", err)
	}
	rec, err := s.Get(ctx, "a")
	if err != nil || string(rec.Data) != "over TLS" {
		t.Fatalf("Get = %q, %v", rec.Data, err)
	}
	s.Destroy(ctx, "a")
	t.Logf("child: rediss:// verified the server with the CA in SSL_CERT_FILE and round-tripped a record")
}
