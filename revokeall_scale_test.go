package session_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sessionkit/session"
)

// TestRevokeAllScale ends every session of a store holding many live ones
// (SESSION_TEST_REVOKEALL_N, default 10,000) on each backend, and
// measures the time until no old cookie is accepted: on the process that
// calls RevokeAll and on another process sharing the store, with the
// default EpochInterval (5 s). Then it presents every old cookie to the
// other process and checks that none is accepted. RELIABILITY.md reports
// its numbers for 100,000 sessions:
//
//	SESSION_TEST_REVOKEALL_N=100000 go test -run 'TestRevokeAllScale|TestSecurityOpsCluster/RevokeAllScale' -v -timeout 20m .
func TestRevokeAllScale(t *testing.T) {
	n := revokeAllScaleN(t)
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { revokeAllAtScale(t, b.name, b.new(t), n) })
	}
}

func revokeAllScaleN(t *testing.T) int {
	n := 10_000
	if v := os.Getenv("SESSION_TEST_REVOKEALL_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("SESSION_TEST_REVOKEALL_N=%q", v)
		}
	}
	return n
}

func revokeAllAtScale(t *testing.T, backend string, store session.Store, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	codec, err := session.NewSecureCookieCodec(testKey)
	if err != nil {
		t.Fatal(err)
	}
	// n live sessions of epoch 0, written directly (as n logins would
	// have), and the cookies their clients hold.
	start := time.Now()
	cookies := make([]string, n)
	ids := make([]string, n)
	for i := range n {
		var b [32]byte
		rand.Read(b[:])
		tok := base64.RawURLEncoding.EncodeToString(b[:])
		ids[i] = session.SHA256Hasher{}.StoreID(tok)
		if cookies[i], err = codec.Encode("session", tok); err != nil {
			t.Fatal(err)
		}
	}
	data := func(i int) []byte {
		return fmt.Appendf(nil, `{"created":%d,"values":{"i":"%d"}}`, time.Now().UnixMilli(), i)
	}
	exp := time.Now().Add(time.Hour)
	if pg, ok := store.(*session.PostgresStore); ok {
		rows := make([][]any, n)
		for i := range n {
			rows[i] = []any{ids[i], data(i), exp}
		}
		if _, err := pg.Pool().CopyFrom(ctx, pgx.Identifier{pg.Table()}, []string{"id", "data", "expires"}, pgx.CopyFromRows(rows)); err != nil {
			t.Fatal(err)
		}
	} else {
		inParallel(t, n, 16, func(i int) error {
			return store.Set(ctx, ids[i], session.Record{Data: data(i), Expires: exp})
		})
	}
	if c, err := store.(session.Counter).Count(ctx); err != nil || c != int64(n) {
		t.Fatalf("Count = %d, %v; want %d", c, err, n)
	}
	t.Logf("%s: %d live sessions written in %v", backend, n, time.Since(start).Round(time.Millisecond))

	// Two processes with the default EpochInterval; both have served
	// requests, so both know the epoch.
	a := newSecApp(t, store, session.Options{})
	b := newSecApp(t, store, session.Options{})
	for _, p := range []*secApp{a, b} {
		if got := p.get(cookies[n-1], "i"); got != strconv.Itoa(n-1) {
			t.Fatalf("before RevokeAll a session reads %q", got)
		}
	}

	t0 := time.Now()
	if err := a.m.RevokeAll(ctx); err != nil {
		t.Fatal(err)
	}
	onA := time.Since(t0)
	if a.get(cookies[0], "i") != "" {
		t.Fatal("the calling process still accepts an old cookie")
	}
	// The other process: poll with fresh cookies until one is refused.
	k := 1
	for b.get(cookies[k], "i") != "" {
		if time.Since(t0) > 2*5*time.Second+time.Second {
			t.Fatalf("the other process still accepts old cookies %v after RevokeAll", time.Since(t0))
		}
		k++
		time.Sleep(5 * time.Millisecond)
	}
	onB := time.Since(t0)

	// Every old cookie, on the other process: none is accepted.
	sweep := time.Now()
	var accepted atomic.Int64
	inParallel(t, n, 8, func(i int) error {
		code, body, _ := b.serve("GET", "/get?k=i", cookies[i])
		if code != 200 {
			return fmt.Errorf("cookie %d: %d %q", i, code, body)
		}
		if body != "" {
			accepted.Add(1)
		}
		return nil
	})
	if accepted.Load() != 0 {
		t.Fatalf("%d old cookies accepted after RevokeAll", accepted.Load())
	}
	left, _ := store.(session.Counter).Count(ctx)
	t.Logf("%s: %d sessions: RevokeAll returned in %v and the calling process refused old cookies at once; the other process (EpochInterval 5s) refused them %v after the call; all %d old cookies then refused in %v (each presentation also destroyed its record: %d left)",
		backend, n, onA.Round(time.Microsecond), onB.Round(time.Millisecond), n, time.Since(sweep).Round(time.Millisecond), left)
}

// inParallel runs fn(0..n-1) on workers goroutines and fails t on the
// first error.
func inParallel(t *testing.T, n, workers int, fn func(i int) error) {
	t.Helper()
	var next atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || first.Load() != nil {
					return
				}
				if err := fn(i); err != nil {
					first.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := first.Load().(error); err != nil {
		t.Fatal(err)
	}
}
