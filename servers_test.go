package session_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Fault tests need servers they can stop. Redis: a redis-server of their
// own, a child process on a loopback port in 6390-6399 (never the shared
// one on 6379). Postgres: the shared server must not be stopped, so a
// tcpProxy stands in front of it and is cut instead (see tcpProxy).

// freeRedisPort returns a port in 6390-6399 that nothing listens on, and
// holds no lock on it: a concurrent test run may take it, in which case
// redis-server fails to start and the test says so.
func freeRedisPort(t testing.TB) int {
	t.Helper()
	for p := 6390; p <= 6399; p++ {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
	unavailable(t, "a free port in 6390-6399 for a test redis-server", errors.New("all taken"))
	return 0
}

// redisServer is a redis-server child process the test can kill and
// restart on the same port.
type redisServer struct {
	t    testing.TB
	port int
	// dir, when set, makes the server write every command to an
	// append-only file there, so a SIGKILL and a restart keep its data.
	dir  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// startRedisServer starts a redis-server on a free port in 6390-6399,
// with no persistence, and kills it when t ends.
func startRedisServer(t testing.TB) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		unavailable(t, "redis-server binary", err)
	}
	r := &redisServer{t: t, port: freeRedisPort(t)}
	r.start()
	t.Cleanup(r.stop)
	return r
}

// startDurableRedis is startRedisServer with an append-only file in a
// temporary directory, as a production Redis with persistence (or one cut
// off by a network partition) has: after a kill and a restart the cache
// comes back holding the copies it had.
func startDurableRedis(t testing.TB) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		unavailable(t, "redis-server binary", err)
	}
	r := &redisServer{t: t, port: freeRedisPort(t), dir: t.TempDir()}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// start runs redis-server and waits (at most five seconds) until it
// answers PING.
func (r *redisServer) start() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	args := []string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--daemonize", "no", "--save", "", "--appendonly", "no", "--loglevel", "warning"}
	if r.dir != "" {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always", "--dir", r.dir)
	}
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		unavailable(r.t, "redis-server", err)
	}
	r.cmd, r.done = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(r.done)
	c := redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	// A restart that replays an append-only file may take longer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		select {
		case <-r.done:
			r.t.Fatalf("redis-server on port %d exited at start (port taken?)", r.port)
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on port %d not answering after 10s: %v", r.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the server (SIGKILL: no clean shutdown) and waits for it.
func (r *redisServer) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		r.t.Errorf("redis-server on port %d did not exit", r.port)
	}
	r.cmd = nil
}

// tcpProxy forwards a loopback port to a target and can be cut: while
// cut, existing connections are closed and new ones are accepted and
// closed at once, as a restarting server does to its clients. It is used
// instead of restarting the shared Postgres, which other test runs are
// using at the same time: cutting the proxy gives this test's pool the
// same experience (its connections die, reconnecting fails fast until the
// "server" is back) without touching anyone else's.
type tcpProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func startProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{l: l, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) addr() string { return p.l.Addr().String() }

func (p *tcpProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.mu.Unlock()
		up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			up.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// setCut cuts (true) or restores (false) the proxy.
func (p *tcpProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
	}
}

func (p *tcpProxy) close() {
	p.l.Close()
	p.setCut(true)
	p.wg.Wait()
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}
