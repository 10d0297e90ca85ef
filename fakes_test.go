package session_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/session"
)

// Modes of a flakyStore.
const (
	modeUp   = iota // answers as the memory store it wraps
	modeDown        // fails every call at once, like a refused connection
	modeHung        // blocks every call until its context ends
)

var errBackendDown = errors.New("flaky: backend down")

// flakyStore is a MemoryStore that can be switched down or hung, for unit
// tests of the resilient stores that need no server.
type flakyStore struct {
	*session.MemoryStore
	mode  atomic.Int32
	calls atomic.Int64
}

func newFlaky(t testing.TB) *flakyStore {
	m := session.NewMemoryStore(session.MemoryOptions{DisableCleanup: true})
	t.Cleanup(func() { m.Close() })
	return &flakyStore{MemoryStore: m}
}

func (f *flakyStore) set(mode int32) { f.mode.Store(mode) }

func (f *flakyStore) gate(ctx context.Context) error {
	f.calls.Add(1)
	switch f.mode.Load() {
	case modeDown:
		return errBackendDown
	case modeHung:
		<-ctx.Done()
		return ctx.Err()
	}
	return ctx.Err()
}

func (f *flakyStore) Get(ctx context.Context, id string) (session.Record, error) {
	if err := f.gate(ctx); err != nil {
		return session.Record{}, err
	}
	return f.MemoryStore.Get(ctx, id)
}

func (f *flakyStore) Set(ctx context.Context, id string, rec session.Record) error {
	if err := f.gate(ctx); err != nil {
		return err
	}
	return f.MemoryStore.Set(ctx, id, rec)
}

func (f *flakyStore) Destroy(ctx context.Context, id string) error {
	if err := f.gate(ctx); err != nil {
		return err
	}
	return f.MemoryStore.Destroy(ctx, id)
}

func (f *flakyStore) Touch(ctx context.Context, id string, exp time.Time) error {
	if err := f.gate(ctx); err != nil {
		return err
	}
	return f.MemoryStore.Touch(ctx, id, exp)
}

func (f *flakyStore) CompareAndSet(ctx context.Context, id string, old []byte, rec session.Record) error {
	if err := f.gate(ctx); err != nil {
		return err
	}
	return f.MemoryStore.CompareAndSet(ctx, id, old, rec)
}

func (f *flakyStore) Count(ctx context.Context) (int64, error) {
	if err := f.gate(ctx); err != nil {
		return 0, err
	}
	return f.MemoryStore.Count(ctx)
}

func (f *flakyStore) ListUser(ctx context.Context, userID string) ([]session.UserRecord, error) {
	if err := f.gate(ctx); err != nil {
		return nil, err
	}
	return f.MemoryStore.ListUser(ctx, userID)
}

func (f *flakyStore) DestroyUser(ctx context.Context, userID, except string) ([]string, error) {
	if err := f.gate(ctx); err != nil {
		return nil, err
	}
	return f.MemoryStore.DestroyUser(ctx, userID, except)
}

func (f *flakyStore) Ping(ctx context.Context) error { return f.gate(ctx) }

// logBuffer collects slog output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

func rec(data string, ttl time.Duration) session.Record {
	return session.Record{Data: []byte(data), Expires: time.Now().Add(ttl)}
}

func tctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// eventually polls cond every 10ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
