package session_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/session"
)

// The manager remembers recent proofs about repeated bytes (memo.go).
// These tests show that what it remembers never lets anything through
// that the full check would refuse.

// memoApp serves /login (puts user "alice"), /who (the user) and /logout
// on a memory store whose last-read id it records.
type memoApp struct {
	h     http.Handler
	store *idStore
}

// idStore records the id of the last Get, so a test can rewrite the
// record behind the manager's back, as another process would.
type idStore struct {
	session.Store
	mu   sync.Mutex
	last string
	gets atomic.Int64
}

func (s *idStore) Get(ctx context.Context, id string) (session.Record, error) {
	s.mu.Lock()
	s.last = id
	s.mu.Unlock()
	s.gets.Add(1)
	return s.Store.Get(ctx, id)
}

func (s *idStore) CompareAndSet(ctx context.Context, id string, old []byte, rec session.Record) error {
	return s.Store.(session.CompareAndSetter).CompareAndSet(ctx, id, old, rec)
}

func (s *idStore) lastID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func newMemoApp(t *testing.T, opts session.Options) *memoApp {
	t.Helper()
	return newMemoAppOn(t, memStore(t), opts)
}

// newMemoAppOn is newMemoApp on store, which must compare and set.
func newMemoAppOn(t *testing.T, store session.Store, opts session.Options) *memoApp {
	t.Helper()
	st := &idStore{Store: store}
	if opts.Keys == nil && opts.TokenCodec == nil {
		opts.Keys = []session.KeyPair{testKey}
	}
	opts.Logger = discardLogger()
	m, err := session.New(st, opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		if err := s.Put("user", r.URL.Query().Get("u")); err != nil {
			t.Error(err)
		}
	})
	mux.HandleFunc("/who", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(session.FromContext(r.Context()).GetString("user")))
	})
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		if err := session.FromContext(r.Context()).Destroy(); err != nil {
			t.Error(err)
		}
	})
	return &memoApp{h: m.Handler(mux), store: st}
}

// get serves path with cookie value v (none if empty) and returns the
// status, the body and the session cookie value set, if any.
func (a *memoApp) get(t *testing.T, path, v string) (int, string, string) {
	t.Helper()
	r := httptest.NewRequest("GET", path, nil)
	if v != "" {
		r.Header.Set("Cookie", "session="+v)
	}
	w := httptest.NewRecorder()
	a.h.ServeHTTP(w, r)
	var set string
	for _, c := range w.Result().Cookies() {
		if c.Name == "session" {
			set = c.Value
		}
	}
	return w.Code, w.Body.String(), set
}

func (a *memoApp) login(t *testing.T, user string) string {
	t.Helper()
	code, _, v := a.get(t, "/login?u="+user, "")
	if code != 200 || v == "" {
		t.Fatalf("login: %d, cookie %q", code, v)
	}
	return v
}

func (a *memoApp) who(t *testing.T, v string) string {
	t.Helper()
	code, body, _ := a.get(t, "/who", v)
	if code != 200 {
		t.Fatalf("/who: status %d, want 200 (client input never makes a 500)", code)
	}
	return body
}

// TestMemoTamperedValueRefused: a remembered cookie value does not make
// any value like it pass. Every one-character change of a value verified
// a moment ago is verified in full and refused.
func TestMemoTamperedValueRefused(t *testing.T) {
	a := newMemoApp(t, session.Options{})
	v := a.login(t, "alice")
	for range 3 { // now remembered
		if got := a.who(t, v); got != "alice" {
			t.Fatalf("genuine value: user %q, want alice", got)
		}
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="
	for i := range len(v) {
		c := alphabet[(strings.IndexByte(alphabet, v[i])+1)%len(alphabet)]
		bad := v[:i] + string(c) + v[i+1:]
		if got := a.who(t, bad); got != "" && !sameBase64(bad, v) {
			t.Fatalf("value changed at byte %d of %d was accepted as %q", i, len(v), got)
		}
	}
	for _, bad := range []string{v[:len(v)-1], v + "A", v + v, strings.ToUpper(v)} {
		if got := a.who(t, bad); got != "" {
			t.Fatalf("value %q accepted as %q", bad, got)
		}
	}
	if got := a.who(t, v); got != "alice" {
		t.Fatalf("genuine value after the tampered ones: user %q, want alice", got)
	}
}

// sameBase64 reports that two values decode to the same bytes: the last
// character of base64 carries bits the decoder ignores, so securecookie
// (and the same checks here) accept either spelling of the same signed
// bytes. That is no forgery: the signed content is identical.
func sameBase64(a, b string) bool {
	x, err1 := base64.URLEncoding.DecodeString(a)
	y, err2 := base64.URLEncoding.DecodeString(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// TestMemoDestroyedSessionRefused: a remembered value only proves the
// signature; the store is read on every request, so a session destroyed
// by another request (another device's logout) ends at once.
func TestMemoDestroyedSessionRefused(t *testing.T) {
	a := newMemoApp(t, session.Options{})
	v := a.login(t, "alice")
	a.who(t, v)
	a.who(t, v)
	before := a.store.gets.Load()
	a.who(t, v)
	if n := a.store.gets.Load() - before; n != 1 {
		t.Fatalf("a read-only request made %d store reads, want 1", n)
	}
	if code, _, _ := a.get(t, "/logout", v); code != 200 {
		t.Fatalf("logout: %d", code)
	}
	if got := a.who(t, v); got != "" {
		t.Fatalf("destroyed session still served user %q", got)
	}
}

// TestMemoRewrittenRecordReadAfresh: a remembered record is matched on
// its whole content, so a record another process rewrote (a new user, or
// garbage) is decoded in full: the new user is seen, garbage is refused
// without a 500 and dropped.
func TestMemoRewrittenRecordReadAfresh(t *testing.T) {
	a := newMemoApp(t, session.Options{})
	ctx := context.Background()
	va := a.login(t, "alice")
	a.who(t, va)
	idA := a.store.lastID()
	vb := a.login(t, "bob")
	a.who(t, vb)
	idB := a.store.lastID()
	recB, err := a.store.Store.Get(ctx, idB)
	if err != nil {
		t.Fatal(err)
	}
	// alice's record now holds bob's bytes, which were decoded (and
	// remembered) for bob's id.
	if err := a.store.Store.Set(ctx, idA, recB); err != nil {
		t.Fatal(err)
	}
	if got := a.who(t, va); got != "bob" {
		t.Fatalf("after the rewrite: user %q, want bob (the store is the truth)", got)
	}
	// Garbage under a remembered record's id, the same length and
	// almost the same bytes.
	garbage := append([]byte(nil), recB.Data...)
	garbage[len(garbage)/2] = '{'
	if err := a.store.Store.Set(ctx, idA, session.Record{Data: garbage, Expires: recB.Expires}); err != nil {
		t.Fatal(err)
	}
	if got := a.who(t, va); got != "" {
		t.Fatalf("garbage record served user %q", got)
	}
	if _, err := a.store.Store.Get(ctx, idA); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("garbage record not dropped: %v", err)
	}
	if got := a.who(t, vb); got != "bob" {
		t.Fatalf("bob's own session: user %q, want bob", got)
	}
}

// countingTokens is a TokenCodec of one's own: the manager must call it
// on every request, never remembering its answers (it may check a time).
type countingTokens struct{ decodes atomic.Int64 }

func (c *countingTokens) Encode(name, token string) (string, error) {
	return "t." + base64.RawURLEncoding.EncodeToString([]byte(token)), nil
}

func (c *countingTokens) Decode(name, value string) (string, bool, error) {
	c.decodes.Add(1)
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(value, "t."))
	if err != nil || !strings.HasPrefix(value, "t.") {
		return "", false, errors.New("bad token")
	}
	return string(b), false, nil
}

// countingCodec is the JSON codec inside a type of one's own, so it has
// the optional methods; the manager must still call them every time.
type countingCodec struct {
	session.JSONCodec
	metas *atomic.Int64
}

func (c countingCodec) DecodeMeta(data []byte) ([]byte, error) {
	c.metas.Add(1)
	return c.JSONCodec.DecodeMeta(data)
}

func TestMemoOwnCodecsAlwaysCalled(t *testing.T) {
	tokens := &countingTokens{}
	var metas atomic.Int64
	a := newMemoApp(t, session.Options{TokenCodec: tokens, Codec: countingCodec{metas: &metas}})
	v := a.login(t, "alice")
	d0, m0 := tokens.decodes.Load(), metas.Load()
	for range 5 {
		if got := a.who(t, v); got != "alice" {
			t.Fatalf("user %q, want alice", got)
		}
	}
	if d := tokens.decodes.Load() - d0; d != 5 {
		t.Errorf("own TokenCodec decoded %d times in 5 requests, want 5", d)
	}
	if n := metas.Load() - m0; n != 5 {
		t.Errorf("own Codec's DecodeMeta ran %d times in 5 requests, want 5", n)
	}
}

// TestMemoRacing: many clients, each with its own session, read, write
// and log out concurrently through one manager (run with -race): every
// answer is the client's own, and a logged-out value is refused.
func TestMemoRacing(t *testing.T) {
	a := newMemoApp(t, session.Options{IdleTimeout: time.Hour})
	var wg sync.WaitGroup
	for c := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := "u" + strings.Repeat("x", c)
			v := a.login(t, user)
			for range 50 {
				if got := a.who(t, v); got != user {
					t.Errorf("client %d: user %q, want %q", c, got, user)
					return
				}
			}
			a.get(t, "/logout", v)
			if got := a.who(t, v); got != "" {
				t.Errorf("client %d: logged-out value served %q", c, got)
			}
		}()
	}
	wg.Wait()
}
