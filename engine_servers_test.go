package session_test

// Helpers that start private servers for the engine and fault tests
// (engines_test.go, store_faults_test.go): Redis Cluster, Redis Sentinel, a TLS
// Redis, a plain Redis for fault injection and PgBouncer. Every server
// listens on 127.0.0.1 only, on this package's private ports, keeps its
// data and configuration in a temporary directory and is killed when the
// test that started it ends, whether it passed or not.
//
// A missing binary skips the test and says which Debian package brings it,
// unless SESSION_TEST_REQUIRE_BACKENDS=1 (CI), where it fails.

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func init() {
	// go-redis logs every failed dial; the failover and fault tests cause
	// thousands on purpose.
	redis.SetLogger(quietLogger{})
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// Private ports of these tests (see the project's port plan).
const (
	clusterBasePort   = 7000 // 7000-7005
	sentinelMaster    = 7100
	sentinelReplica   = 7101
	sentinelBasePort  = 26380 // 26380-26382
	pgbouncerPort     = 6432
	tlsRedisPort      = 6480
	faultRedisPort    = 7200 // 7200-7210
	secopsClusterPort = 7300 // 7300-7305: the security operations tests (issue 16)
	secopsRedisPort   = 7310 // a Redis with keyspace notifications on
	sentinelMasterSet = "sessiontest"
)

// needBinary returns the path of a server binary, or skips (fails under
// SESSION_TEST_REQUIRE_BACKENDS=1) naming the package to install.
func needBinary(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/bin"} {
			if _, e := os.Stat(filepath.Join(dir, name)); e == nil {
				return filepath.Join(dir, name)
			}
		}
		if os.Getenv("SESSION_TEST_REQUIRE_BACKENDS") == "1" {
			t.Fatalf("%s is required (SESSION_TEST_REQUIRE_BACKENDS=1) but not installed: apt-get install %s", name, pkg)
		}
		t.Skipf("skipping: %s not installed (apt-get install %s; set SESSION_TEST_REQUIRE_BACKENDS=1 to fail instead)", name, pkg)
	}
	return p
}

// portFree fails the test when something already listens on port: most
// likely a server left over by a run that was killed.
func portFree(t testing.TB, port int) {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("port %d on 127.0.0.1 is taken (a server left by an earlier run?): %v", port, err)
	}
	l.Close()
}

// noLeaks checks, after every other cleanup of t, that no goroutine
// started during t is still running. go-redis probes a dead server from a
// goroutine that sleeps a second between dials and only then sees that its
// pool was closed, so it waits up to five seconds.
func noLeaks(t *testing.T) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := goleak.Find(before)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutines leaked: %v", err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// proc is one server process started by a test.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startProc starts bin in its own process group with its output in
// logPath, and kills it when t ends. Its log tail is printed if t failed.
func startProc(t testing.TB, name, logPath, bin string, args ...string) *proc {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Own process group, and killed with the test binary if it dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("last lines of %s's log:\n%s", name, tail(logPath, 15))
		}
	})
	return p
}

// kill sends SIGKILL to the process group and waits for the process to be
// reaped. Calling it again is harmless.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitFor polls cond every 50ms until it returns nil or timeout passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not ready after %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// redisAt returns a short-lived admin client for one server.
func redisAt(port int) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), DialTimeout: 500 * time.Millisecond,
		ReadTimeout: 10 * time.Second, MaxRetries: -1, PoolSize: 2, ContextTimeoutEnabled: true,
	})
}

// redisDo runs one command on the server at port with a fresh connection.
func redisDo(port int, args ...any) (any, error) {
	c := redisAt(port)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Do(ctx, args...).Result()
}

// redisInfo returns the fields of INFO section on the server at port.
func redisInfo(port int, section string) (map[string]string, error) {
	v, err := redisDo(port, "info", section)
	if err != nil {
		return nil, err
	}
	s, _ := v.(string)
	out := map[string]string{}
	for _, line := range strings.Split(s, "\r\n") {
		if k, val, ok := strings.Cut(line, ":"); ok {
			out[k] = val
		}
	}
	return out, nil
}

// startRedis starts a redis-server on 127.0.0.1:port with no persistence,
// its files in a directory of its own, and waits until it answers PING.
func startRedis(t testing.TB, name string, port int, extra ...string) *proc {
	t.Helper()
	bin := needBinary(t, "redis-server", "redis-server")
	portFree(t, port)
	dir := t.TempDir()
	args := []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "no",
		"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", "",
		"--daemonize", "no", "--enable-debug-command", "local",
	}
	p := startProc(t, name, filepath.Join(dir, "redis.log"), bin, append(args, extra...)...)
	waitFor(t, name+" on port "+strconv.Itoa(port), 10*time.Second, func() error {
		if p.exited() {
			t.Fatalf("%s exited at start:\n%s", name, tail(p.log, 15))
		}
		_, err := redisDo(port, "ping")
		return err
	})
	return p
}

// redisCluster is six redis-server processes forming a Cluster of three
// masters with one replica each.
type redisCluster struct {
	nodes map[int]*proc // by port
	addrs []string
}

// startRedisCluster starts the cluster on ports 7000-7005 with a one-second
// node timeout (so a failover takes seconds), creates it with redis-cli and
// waits until every node reports the cluster ok and every replica is in
// sync.
func startRedisCluster(t testing.TB) *redisCluster {
	return startRedisClusterAt(t, clusterBasePort)
}

// startRedisClusterAt is startRedisCluster on ports base to base+5, with
// extra arguments for every node.
func startRedisClusterAt(t testing.TB, base int, extra ...string) *redisCluster {
	t.Helper()
	cli := needBinary(t, "redis-cli", "redis-tools")
	needBinary(t, "redis-server", "redis-server")
	c := &redisCluster{nodes: map[int]*proc{}}
	for i := 0; i < 6; i++ {
		port := base + i
		args := append([]string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "1000", "--cluster-replica-validity-factor", "0"}, extra...)
		c.nodes[port] = startRedis(t, fmt.Sprintf("cluster node %d", port), port, args...)
		c.addrs = append(c.addrs, fmt.Sprintf("127.0.0.1:%d", port))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	waitFor(t, "Redis Cluster", 30*time.Second, func() error {
		for port := range c.nodes {
			info, err := redisDo(port, "cluster", "info")
			if err != nil {
				return err
			}
			s := fmt.Sprint(info)
			if !strings.Contains(s, "cluster_state:ok") || !strings.Contains(s, "cluster_known_nodes:6") {
				return fmt.Errorf("node %d: cluster not ok yet", port)
			}
			repl, err := redisInfo(port, "replication")
			if err != nil {
				return err
			}
			if repl["role"] == "slave" && repl["master_link_status"] != "up" {
				return fmt.Errorf("replica %d not in sync yet", port)
			}
		}
		return nil
	})
	return c
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, addr string
	port     int
	master   bool
	masterID string
	failed   bool
	slots    [][2]int
}

func (c *redisCluster) topology(askPort int) ([]clusterNode, error) {
	v, err := redisDo(askPort, "cluster", "nodes")
	if err != nil {
		return nil, err
	}
	var out []clusterNode
	sc := bufio.NewScanner(strings.NewReader(fmt.Sprint(v)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 {
			continue
		}
		n := clusterNode{id: f[0], addr: strings.Split(f[1], "@")[0], masterID: f[3]}
		_, p, _ := net.SplitHostPort(n.addr)
		n.port, _ = strconv.Atoi(p)
		n.master = strings.Contains(f[2], "master")
		n.failed = strings.Contains(f[2], "fail")
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // a slot being migrated
			}
			lo, hi, found := strings.Cut(r, "-")
			a, _ := strconv.Atoi(lo)
			b := a
			if found {
				b, _ = strconv.Atoi(hi)
			}
			n.slots = append(n.slots, [2]int{a, b})
		}
		out = append(out, n)
	}
	return out, sc.Err()
}

// redisSentinel is a master, its replica and three sentinels.
type redisSentinel struct {
	master, replica *proc
	sentinels       []*proc
	addrs           []string
}

// startRedisSentinel starts a master on 7100, a replica on 7101 and three
// sentinels on 26380-26382 (quorum 2, down-after 1s, failover timeout 3s),
// and waits until the sentinels know the replica and each other.
func startRedisSentinel(t testing.TB) *redisSentinel {
	t.Helper()
	bin := needBinary(t, "redis-server", "redis-server")
	s := &redisSentinel{}
	s.master = startRedis(t, "sentinel master", sentinelMaster)
	s.replica = startRedis(t, "sentinel replica", sentinelReplica, "--replicaof", "127.0.0.1", strconv.Itoa(sentinelMaster))
	for i := 0; i < 3; i++ {
		port := sentinelBasePort + i
		portFree(t, port)
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf(`port %d
bind 127.0.0.1
protected-mode no
daemonize no
dir %s
sentinel resolve-hostnames no
sentinel monitor %s 127.0.0.1 %d 2
sentinel down-after-milliseconds %[3]s 1000
sentinel failover-timeout %[3]s 3000
sentinel parallel-syncs %[3]s 1
`, port, dir, sentinelMasterSet, sentinelMaster)
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		s.sentinels = append(s.sentinels, startProc(t, fmt.Sprintf("sentinel %d", port), filepath.Join(dir, "sentinel.log"), bin, conf, "--sentinel"))
		s.addrs = append(s.addrs, fmt.Sprintf("127.0.0.1:%d", port))
	}
	waitFor(t, "Redis Sentinel", 30*time.Second, func() error {
		repl, err := redisInfo(sentinelReplica, "replication")
		if err != nil {
			return err
		}
		if repl["master_link_status"] != "up" {
			return fmt.Errorf("replica not in sync yet")
		}
		for i, sp := range s.sentinels {
			if sp.exited() {
				t.Fatalf("sentinel exited:\n%s", tail(sp.log, 15))
			}
			port := sentinelBasePort + i
			reps, err := redisDo(port, "sentinel", "replicas", sentinelMasterSet)
			if err != nil {
				return err
			}
			if l, _ := reps.([]any); len(l) != 1 {
				return fmt.Errorf("sentinel %d knows %d replicas", port, len(l))
			}
			sents, err := redisDo(port, "sentinel", "sentinels", sentinelMasterSet)
			if err != nil {
				return err
			}
			if l, _ := sents.([]any); len(l) != 2 {
				return fmt.Errorf("sentinel %d knows %d other sentinels", port, len(l))
			}
		}
		return nil
	})
	return s
}

// testCerts is a CA and a server certificate for 127.0.0.1 and localhost,
// as PEM files in a temporary directory.
type testCerts struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
}

func newTestCerts(t testing.TB, cn string) *testCerts {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn + " test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	c := &testCerts{
		caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "server.pem"), keyFile: filepath.Join(dir, "server.key"),
		pool: x509.NewCertPool(),
	}
	c.pool.AddCert(ca)
	for path, block := range map[string]*pem.Block{
		c.caFile:   {Type: "CERTIFICATE", Bytes: caDER},
		c.certFile: {Type: "CERTIFICATE", Bytes: srvDER},
		c.keyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// startTLSRedis starts a redis-server that speaks only TLS on 6480, with a
// certificate signed by certs' CA, and waits until it answers over TLS.
func startTLSRedis(t testing.TB, certs *testCerts) *proc {
	t.Helper()
	bin := needBinary(t, "redis-server", "redis-server")
	portFree(t, tlsRedisPort)
	dir := t.TempDir()
	p := startProc(t, "TLS redis", filepath.Join(dir, "redis.log"), bin,
		"--port", "0", "--tls-port", strconv.Itoa(tlsRedisPort), "--bind", "127.0.0.1",
		"--tls-cert-file", certs.certFile, "--tls-key-file", certs.keyFile,
		"--tls-ca-cert-file", certs.caFile, "--tls-auth-clients", "no",
		"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", "", "--daemonize", "no")
	waitFor(t, "TLS redis on port 6480", 10*time.Second, func() error {
		if p.exited() {
			t.Fatalf("TLS redis exited at start (built without TLS?):\n%s", tail(p.log, 15))
		}
		c := redis.NewClient(&redis.Options{
			Addr: fmt.Sprintf("127.0.0.1:%d", tlsRedisPort), DialTimeout: 500 * time.Millisecond, MaxRetries: -1,
			TLSConfig: &tls.Config{RootCAs: certs.pool, ServerName: "127.0.0.1"},
		})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Ping(ctx).Err()
	})
	return p
}

// pgbouncer is a PgBouncer in transaction pooling mode on 6432 in front of
// the test database.
type pgbouncer struct {
	*proc
	// URL reaches the test database through PgBouncer, without a query
	// exec mode.
	URL string
}

// startPgBouncer writes a pgbouncer.ini and userlist (trust auth) in a
// temporary directory and starts PgBouncer on 127.0.0.1:6432 in
// transaction pooling mode, with poolSize server connections, in front of
// SESSION_TEST_DATABASE_URL. PgBouncer refuses to run as root, so as root
// it is started with -u postgres (or nobody).
func startPgBouncer(t testing.TB, poolSize int) *pgbouncer {
	t.Helper()
	bin := needBinary(t, "pgbouncer", "pgbouncer")
	testPool(t) // skips unless Postgres answers
	portFree(t, pgbouncerPort)
	cfg, err := pgconn.ParseConfig(databaseURL())
	if err != nil {
		t.Fatalf("SESSION_TEST_DATABASE_URL: %v", err)
	}
	dir, err := os.MkdirTemp("", "session-pgbouncer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var runAs []string
	if os.Geteuid() == 0 {
		name := "postgres"
		u, err := user.Lookup(name)
		if err != nil {
			name = "nobody"
			u, err = user.Lookup(name)
		}
		if err != nil {
			t.Fatalf("PgBouncer will not run as root and neither postgres nor nobody exists: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		runAs = []string{"-u", name}
	}
	users := map[string]bool{cfg.User: true, "postgres": true}
	var userlist strings.Builder
	for u := range users {
		fmt.Fprintf(&userlist, "%q \"\"\n", u)
	}
	ini := fmt.Sprintf(`[databases]
* = host=%s port=%d

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = 1000
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = %s
pidfile = %s
`, cfg.Host, cfg.Port, pgbouncerPort, filepath.Join(dir, "userlist.txt"), poolSize,
		filepath.Join(dir, "pgbouncer.log"), filepath.Join(dir, "pgbouncer.pid"))
	for name, body := range map[string]string{"pgbouncer.ini": ini, "userlist.txt": userlist.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := append(runAs, filepath.Join(dir, "pgbouncer.ini"))
	p := startProc(t, "pgbouncer", filepath.Join(dir, "stdout.log"), bin, args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pgbouncer log:\n%s", tail(filepath.Join(dir, "pgbouncer.log"), 20))
		}
	})
	url := fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", cfg.User, pgbouncerPort, cfg.Database)
	waitFor(t, "pgbouncer on port 6432", 10*time.Second, func() error {
		if p.exited() {
			t.Fatalf("pgbouncer exited at start:\n%s\n%s", tail(p.log, 15), tail(filepath.Join(dir, "pgbouncer.log"), 15))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn, err := pgconn.Connect(ctx, url)
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	})
	return &pgbouncer{proc: p, URL: url}
}
