package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Every contender serves the same three routes:
//
//	/login  puts a realistic session (user id, email, roles, CSRF token,
//	        flash); used only to set up the clients' sessions
//	/read   reads the user id and writes it as the body
//	/write  reads the user id and the counter, puts counter+1 and writes
//	        "<user id>:<counter+1>" as the body
//
// The client checks every body, so a contender that lost the session or a
// write fails the benchmark instead of looking fast.

// The realistic session (see /login). The user id differs per client.
const (
	sessEmail = "jane.doe@example.com"
	sessCSRF  = "q3Zt0w8cS2m9bXvK1yH4nR7pL6dE5aF0gJ2iU8oT3sW" // 32 random bytes, base64url
	sessFlash = "Your profile has been saved."
)

var sessRoles = []string{"editor", "billing-admin"}

func userID(i int) string { return "user-" + strconv.Itoa(100000+i) }

// A contender is one library on one backend, ready to serve.
type contender struct {
	lib     string
	handler http.Handler
	cookie  string     // the session cookie's name
	rt      *rtCounter // store round trips (nil: the contender has no server store)
	// extra reports contender-specific metrics (ours: store calls).
	extra func(b *testing.B, n int)
	reset func()
	// stored returns the bytes one realistic session costs in its store
	// (value, key), looked up after one /login.
	stored func(tb testing.TB, cookieValue string) (value, key int)
	// last is the last record the contender's store was asked to keep.
	last *lastWrite

	mu      sync.Mutex
	clients []*client
}

// discardWriter is the cheapest ResponseWriter that still keeps headers
// (for Set-Cookie), the status and the first bytes of the body. It is
// reused by one client across requests.
type discardWriter struct {
	h    http.Header
	code int
	n    int
	body [64]byte
}

func (w *discardWriter) Header() http.Header { return w.h }

func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *discardWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if w.n < len(w.body) {
		copy(w.body[w.n:], p)
	}
	w.n += len(p)
	return len(p), nil
}

func (w *discardWriter) reset() {
	clear(w.h)
	w.code = 0
	w.n = 0
}

func (w *discardWriter) bodyBytes() []byte { return w.body[:min(w.n, len(w.body))] }

// client is one browser: it keeps its cookie and sends it with every
// request, and takes whatever cookie the server sets, as a browser does.
type client struct {
	c       *contender
	uid     string
	hdr     http.Header // shared by read and write
	read    *http.Request
	write   *http.Request
	value   string // the cookie value
	counter int    // the counter the next /write must return
	w       discardWriter
	want    []byte
	i       int
}

func newClient(c *contender, i int) (*client, error) {
	cl := &client{c: c, uid: userID(i), hdr: http.Header{}, w: discardWriter{h: http.Header{}}}
	mk := func(path string) *http.Request {
		r, err := http.NewRequest(http.MethodGet, "http://app.example"+path, nil)
		if err != nil {
			panic(err)
		}
		r.Header = cl.hdr
		r.RemoteAddr = "127.0.0.1:4242"
		return r
	}
	cl.read, cl.write = mk("/read"), mk("/write")
	login := mk("/login?uid=" + cl.uid)
	cl.w.reset()
	c.handler.ServeHTTP(&cl.w, login)
	if cl.w.code != http.StatusOK {
		return nil, fmt.Errorf("%s: /login: status %d: %s", c.lib, cl.w.code, cl.w.bodyBytes())
	}
	cl.takeCookie()
	if cl.value == "" {
		return nil, fmt.Errorf("%s: /login set no %q cookie (headers %v)", c.lib, c.cookie, cl.w.h)
	}
	// Learn the counter (0 on a fresh session).
	if err := cl.do(cl.read); err != nil {
		return nil, err
	}
	cl.want = []byte(cl.uid)
	return cl, nil
}

// takeCookie updates the cookie from the response's Set-Cookie, if any.
func (cl *client) takeCookie() {
	for _, sc := range cl.w.h["Set-Cookie"] {
		v, ok := strings.CutPrefix(sc, cl.c.cookie+"=")
		if !ok {
			continue
		}
		if i := strings.IndexByte(v, ';'); i >= 0 {
			v = v[:i]
		}
		if v != cl.value {
			cl.value = v
			cl.hdr["Cookie"] = []string{cl.c.cookie + "=" + v}
		}
	}
}

func (cl *client) do(tmpl *http.Request) error {
	// A fresh *http.Request per request, as net/http's server makes: some
	// libraries (gorilla/sessions) store per-request state in it.
	r := new(http.Request)
	*r = *tmpl
	cl.w.reset()
	cl.c.handler.ServeHTTP(&cl.w, r)
	if cl.w.code != http.StatusOK {
		return fmt.Errorf("%s %s: status %d: %s", cl.c.lib, tmpl.URL.Path, cl.w.code, cl.w.bodyBytes())
	}
	cl.takeCookie()
	return nil
}

var errMismatch = fmt.Errorf("unexpected body")

func (cl *client) doRead() error {
	if err := cl.do(cl.read); err != nil {
		return err
	}
	if !bytes.Equal(cl.w.bodyBytes(), cl.want) {
		return fmt.Errorf("%s /read: body %q, want %q: %w", cl.c.lib, cl.w.bodyBytes(), cl.want, errMismatch)
	}
	return nil
}

func (cl *client) doWrite() error {
	if err := cl.do(cl.write); err != nil {
		return err
	}
	body := cl.w.bodyBytes()
	uid, n, ok := bytes.Cut(body, []byte{':'})
	if !ok || !bytes.Equal(uid, cl.want) {
		return fmt.Errorf("%s /write: body %q, want %q:<n>: %w", cl.c.lib, body, cl.want, errMismatch)
	}
	got, err := strconv.Atoi(string(n))
	if err != nil {
		return fmt.Errorf("%s /write: body %q: %w", cl.c.lib, body, err)
	}
	if cl.counter != 0 && got != cl.counter {
		return fmt.Errorf("%s /write: counter %d, want %d (a write was lost): %w", cl.c.lib, got, cl.counter, errMismatch)
	}
	cl.counter = got + 1
	return nil
}

// Workloads.
type workload struct {
	name string
	// write reports whether a client's i-th request writes.
	write func(i int) bool
}

var workloads = []workload{
	{"read", func(int) bool { return false }},
	{"write", func(int) bool { return true }},
	{"mixed", func(i int) bool { return i%10 == 9 }}, // 90% read, 10% write
}

func (cl *client) step(wl *workload) error {
	i := cl.i
	cl.i++
	if wl.write(i) {
		return cl.doWrite()
	}
	return cl.doRead()
}

// clientsFor returns n clients of c with sessions, creating the missing
// ones. Clients (and their sessions) are reused across the b.N rounds of a
// benchmark so that rounds do not pile up sessions.
func (c *contender) clientsFor(n int) ([]*client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.clients) < n {
		cl, err := newClient(c, len(c.clients))
		if err != nil {
			return nil, err
		}
		c.clients = append(c.clients, cl)
	}
	return c.clients[:n], nil
}

// run drives c with wl from the given number of concurrent clients. One
// client is a plain loop; more use b.RunParallel with SetParallelism so
// that exactly that many goroutines (rounded up to a multiple of
// GOMAXPROCS) send requests.
func run(b *testing.B, c *contender, wl *workload, clients int) {
	procs := runtime.GOMAXPROCS(0)
	par := 1
	n := 1
	if clients > 1 {
		par = (clients + procs - 1) / procs
		n = par * procs
	}
	cls, err := c.clientsFor(n)
	if err != nil {
		b.Fatal(err)
	}
	var srv *srvCounter
	if c.rt != nil && strings.HasPrefix(b.Name(), "BenchmarkRequest/backend=redis") {
		srv = newSrvCounter(b)
	}
	if c.rt != nil {
		c.rt.reset()
	}
	if c.reset != nil {
		c.reset()
	}
	srv.start()
	b.ReportAllocs()
	b.ResetTimer()
	if clients == 1 {
		cl := cls[0]
		for range b.N {
			if err := cl.step(wl); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		var next atomic.Int64
		var failed atomic.Bool
		b.SetParallelism(par)
		b.RunParallel(func(pb *testing.PB) {
			cl := cls[next.Add(1)-1]
			for pb.Next() {
				if err := cl.step(wl); err != nil {
					if failed.CompareAndSwap(false, true) {
						b.Error(err)
					}
					return
				}
			}
		})
	}
	b.StopTimer()
	c.rt.report(b, b.N)
	if c.extra != nil {
		c.extra(b, b.N)
	}
	srv.report(b, b.N)
}

// srvCounter reads the Redis server's own command count around a run.
type srvCounter struct {
	b      *testing.B
	before int64
	ok     bool
}

var (
	srvClientOnce sync.Once
	srvClient     *srvClientT
)

type srvClientT struct{ get func() (int64, error) }

func newSrvCounter(b *testing.B) *srvCounter {
	srvClientOnce.Do(func() {
		cl := newRedisClientNoSkip()
		if cl != nil {
			srvClient = &srvClientT{get: func() (int64, error) { return redisCommandCalls(cl) }}
		}
	})
	if srvClient == nil {
		return nil
	}
	return &srvCounter{b: b}
}

func (s *srvCounter) start() {
	if s == nil {
		return
	}
	var err error
	s.before, err = srvClient.get()
	s.ok = err == nil
}

func (s *srvCounter) report(b *testing.B, n int) {
	if s == nil || !s.ok || n == 0 {
		return
	}
	after, err := srvClient.get()
	if err != nil {
		return
	}
	b.ReportMetric(float64(after-s.before)/float64(n), "srv-cmds/op")
}

// ctxBG is the context setup code uses.
var ctxBG = context.Background()
