package session_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/session"
)

// soakDuration is 60 seconds per backend, 5 with -short, or
// SESSION_SOAK_DURATION.
func soakDuration(t *testing.T) time.Duration {
	if v := os.Getenv("SESSION_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SESSION_SOAK_DURATION: %v", err)
		}
		return d
	}
	if testing.Short() {
		return 5 * time.Second
	}
	return 60 * time.Second
}

// TestSoak runs 64 clients through the middleware against each backend
// over real HTTP. Each client increments a counter of its own session on
// every third request and checks the value on every request, so a lost
// write or a stale read is an error. It ends with zero errors, zero lost
// writes, and goroutine and heap figures that do not grow.
func TestSoak(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store session.Store) {
		testSoak(t, store, soakDuration(t))
	})
}

func testSoak(t *testing.T, store session.Store, d time.Duration) {
	a := newApp(t, store, session.Options{TouchInterval: 10 * time.Millisecond, Logger: discardLogger()})
	a.mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		n := s.GetInt("n")
		if r.Method == http.MethodPost {
			n++
			if err := s.Put("n", n); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprint(w, n)
	})
	const clients = 64
	var requests, failures, writes atomic.Int64
	var firstErr atomic.Value
	fail := func(err error) {
		failures.Add(1)
		firstErr.CompareAndSwap(nil, err)
	}
	transport := &http.Transport{MaxIdleConnsPerHost: clients}
	defer transport.CloseIdleConnections()

	sample := func() (int, uint64) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return runtime.NumGoroutine(), ms.HeapAlloc
	}
	gStart, _ := sample()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient(t)
			c.Transport = transport
			want := 0
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
				req, _ := http.NewRequest(method, a.srv.URL+"/count", nil)
				resp, err := c.Do(req)
				requests.Add(1)
				if err != nil {
					fail(err)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					fail(fmt.Errorf("client %d: %s %s", i, resp.Status, body))
					continue
				}
				if method == http.MethodPost {
					want++
					writes.Add(1)
				}
				if got, _ := strconv.Atoi(string(body)); got != want {
					fail(fmt.Errorf("client %d: counter %s, want %d (a write was lost)", i, body, want))
					want = got
				}
			}
		}()
	}
	// Warm up, then take the baseline the end is compared with.
	warm := min(d/6, 5*time.Second)
	time.Sleep(warm)
	g0, h0 := sample()
	time.Sleep(d - warm)
	g1, h1 := sample()
	close(stop)
	wg.Wait()
	transport.CloseIdleConnections()
	// Once the clients are gone, so are their goroutines and the
	// server's: nothing the middleware started outlives its requests.
	gEnd := 0
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if gEnd, _ = sample(); gEnd <= gStart+2 {
			break
		}
	}

	t.Logf("%v: %d requests (%.0f/s), %d writes, %d failures; goroutines %d idle, %d -> %d under load, %d after; heap %d KiB -> %d KiB",
		d, requests.Load(), float64(requests.Load())/d.Seconds(), writes.Load(), failures.Load(), gStart, g0, g1, gEnd, h0>>10, h1>>10)
	if failures.Load() != 0 {
		t.Fatalf("%d of %d requests failed; first: %v", failures.Load(), requests.Load(), firstErr.Load())
	}
	// Under load the count moves with the requests in flight (a few per
	// client); it must not climb beyond that.
	if g1 > g0+2*clients {
		t.Errorf("goroutines grew from %d to %d under steady load", g0, g1)
	}
	if gEnd > gStart+2 {
		t.Errorf("%d goroutines after the soak, %d before", gEnd, gStart)
	}
	if h1 > h0*3/2+8<<20 {
		t.Errorf("heap grew from %d KiB to %d KiB under steady load", h0>>10, h1>>10)
	}
	if n := a.m.Stats().Errors; n != 0 {
		t.Errorf("manager counted %d store errors", n)
	}
}
