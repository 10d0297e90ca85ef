// Package exampletest helps the tests of the example programs and of
// sessionctl: it builds a program, runs it as a real process with the
// environment a test chooses, and finds the test servers.
package exampletest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// RedisURL is the test Redis: SESSION_TEST_REDIS_URL, by default
// redis://127.0.0.1:6379/0.
func RedisURL() string {
	if u := os.Getenv("SESSION_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// DatabaseURL is the test Postgres: SESSION_TEST_DATABASE_URL, by default
// postgres://127.0.0.1:5432/test.
func DatabaseURL() string {
	if u := os.Getenv("SESSION_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://127.0.0.1:5432/test"
}

// Unavailable skips t because what is unreachable, or fails it when
// SESSION_TEST_REQUIRE_BACKENDS=1 (CI).
func Unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("SESSION_TEST_REQUIRE_BACKENDS") == "1" {
		t.Fatalf("%s is required (SESSION_TEST_REQUIRE_BACKENDS=1) but unreachable: %v", what, err)
	}
	t.Skipf("skipping: %s unreachable: %v (set SESSION_TEST_REQUIRE_BACKENDS=1 to fail instead)", what, err)
}

// NeedRedis skips (or fails) t unless the test Redis answers, and returns
// a client on it, closed when t ends.
func NeedRedis(t testing.TB) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(RedisURL())
	if err != nil {
		t.Fatalf("SESSION_TEST_REDIS_URL: %v", err)
	}
	c := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		Unavailable(t, "Redis", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// NeedPostgres skips (or fails) t unless the test Postgres answers, and
// returns a connection to it, closed when t ends.
func NeedPostgres(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, DatabaseURL())
	if err != nil {
		Unavailable(t, "Postgres", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// RandomName returns prefix followed by 12 random hex digits.
func RandomName(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

var (
	buildMu sync.Mutex
	built   = map[string]string{}
)

// Build compiles the package at pkg (a path relative to the module root,
// such as "./examples/server") with go build, once per test process, and
// returns the binary's path.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := built[pkg]; ok {
		return bin
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "sessionkit-example-")
	if err != nil {
		t.Fatal(err)
	}
	// The binary is named after the package's last element; "." (the
	// test's own module) gets a name too, so that bin is a file inside
	// dir and Cleanup removes dir, never dir's parent.
	name := filepath.Base(pkg)
	if name == "." || name == ".." || name == string(filepath.Separator) {
		name = "program"
	}
	bin := filepath.Join(dir, name)
	cmd := exec.Command(goTool(), "build", "-o", bin, pkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	built[pkg] = bin
	return bin
}

// Cleanup removes the binaries Build made; call it from TestMain.
func Cleanup() {
	buildMu.Lock()
	defer buildMu.Unlock()
	for _, bin := range built {
		if dir := filepath.Dir(bin); strings.HasPrefix(filepath.Base(dir), "sessionkit-example-") {
			os.RemoveAll(dir)
		}
	}
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// Process is a program started by Start.
type Process struct {
	t      testing.TB
	cmd    *exec.Cmd
	mu     sync.Mutex
	output bytes.Buffer // stdout and stderr, interleaved
	lines  chan string  // output lines, for WaitLine
	done   chan struct{}
	err    error
}

// Start runs bin with args and exactly the environment env (nothing is
// inherited), and kills it when t ends if it is still running.
func Start(t testing.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	p := &Process{t: t, lines: make(chan string, 1000), done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	if p.cmd.Env == nil {
		p.cmd.Env = []string{} // nil would inherit the test's environment
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var readers sync.WaitGroup
	for _, r := range []io.Reader{stdout, stderr} {
		readers.Go(func() {
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				p.mu.Lock()
				p.output.WriteString(sc.Text() + "\n")
				p.mu.Unlock()
				select {
				case p.lines <- sc.Text():
				default:
				}
			}
			io.Copy(io.Discard, r)
		})
	}
	go func() {
		readers.Wait()
		p.err = p.cmd.Wait()
		close(p.lines)
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// Output returns what the process wrote so far, stdout and stderr.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

// WaitLine waits for an output line (stdout or stderr) containing substr and returns it.
func (p *Process) WaitLine(substr string, timeout time.Duration) string {
	p.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("process exited (%v) before printing %q; output:\n%s", p.err, substr, p.Output())
			}
			if strings.Contains(l, substr) {
				return l
			}
		case <-deadline:
			p.t.Fatalf("no line with %q within %v; output:\n%s", substr, timeout, p.Output())
		}
	}
}

// Stop sends SIGTERM and waits for the process to exit, returning its
// exit code; it fails t if the process does not exit within timeout.
func (p *Process) Stop(timeout time.Duration) int {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	return p.Wait(timeout)
}

// Wait waits for the process to exit and returns its exit code.
func (p *Process) Wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("process did not exit within %v; output:\n%s", timeout, p.Output())
	}
	return p.cmd.ProcessState.ExitCode()
}

// Run runs bin to completion with exactly env, and returns its stdout,
// stderr and exit code.
func Run(t testing.TB, bin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("running %s: %v", bin, err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}
