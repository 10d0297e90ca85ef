package session_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/session"
)

// fourMethodStore is what a third-party store written from the Store
// interface alone looks like: Get, Set, Destroy and Touch, nothing else.
type fourMethodStore struct{ inner session.Store }

func (s fourMethodStore) Get(ctx context.Context, id string) (session.Record, error) {
	return s.inner.Get(ctx, id)
}
func (s fourMethodStore) Set(ctx context.Context, id string, rec session.Record) error {
	return s.inner.Set(ctx, id, rec)
}
func (s fourMethodStore) Destroy(ctx context.Context, id string) error {
	return s.inner.Destroy(ctx, id)
}
func (s fourMethodStore) Touch(ctx context.Context, id string, exp time.Time) error {
	return s.inner.Touch(ctx, id, exp)
}

// TestStoreWithoutCompareAndSet: New refuses a store that cannot compare
// and set, naming what it would lose, unless the app opts in to
// last-writer-wins; opted in, it works and says so in the log.
func TestStoreWithoutCompareAndSet(t *testing.T) {
	plain := fourMethodStore{memStore(t)}
	_, err := session.New(plain, session.Options{Keys: []session.KeyPair{testKey}})
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "AllowLastWriterWins") {
		t.Fatalf("New(four-method store) = %v; want ErrNoCompareAndSet naming the option", err)
	}
	logger, logs := newLogger()
	m, err := session.New(plain, session.Options{Keys: []session.KeyPair{testKey}, AllowLastWriterWins: true, Logger: logger})
	if err != nil {
		t.Fatalf("New with AllowLastWriterWins: %v", err)
	}
	if !strings.Contains(logs.String(), "cannot compare and set") {
		t.Fatalf("opting in to last-writer-wins logged nothing: %q", logs.String())
	}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		if r.Method == "POST" {
			s.Put("k", "v")
			s.Put("once", "x")
			return
		}
		io.WriteString(w, s.GetString("k")+"|"+s.PopString("once"))
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/", nil))
	if rec.Code != 200 || len(rec.Result().Cookies()) != 1 {
		t.Fatalf("write on a four-method store: %d %v", rec.Code, rec.Result().Cookies())
	}
	for i, want := range []string{"v|x", "v|"} {
		req := httptest.NewRequest("GET", "/", nil)
		req.AddCookie(rec.Result().Cookies()[0])
		got := httptest.NewRecorder()
		h.ServeHTTP(got, req)
		if got.Code != 200 || got.Body.String() != want {
			t.Fatalf("read %d on a four-method store: %d %q, want %q", i, got.Code, got.Body.String(), want)
		}
	}
}
