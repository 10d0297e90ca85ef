package session_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/session"
)

// countingStore counts the calls that reach the store it wraps, and can be
// made to fail them. It is itself only a Store: [countingStore.store]
// gives the manager a value offering exactly the CompareAndSetter and
// UserIndex abilities of the wrapped store (the two the manager looks
// for), so that a test can never hide a missing ability behind it.
type countingStore struct {
	inner                              session.Store
	gets, sets, cas, touches, destroys atomic.Int64
	fail                               atomic.Bool
}

var errInjected = io.ErrUnexpectedEOF

func (c *countingStore) Get(ctx context.Context, id string) (session.Record, error) {
	c.gets.Add(1)
	if c.fail.Load() {
		return session.Record{}, errInjected
	}
	return c.inner.Get(ctx, id)
}

func (c *countingStore) Set(ctx context.Context, id string, rec session.Record) error {
	c.sets.Add(1)
	if c.fail.Load() {
		return errInjected
	}
	return c.inner.Set(ctx, id, rec)
}

func (c *countingStore) Touch(ctx context.Context, id string, exp time.Time) error {
	c.touches.Add(1)
	if c.fail.Load() {
		return errInjected
	}
	return c.inner.Touch(ctx, id, exp)
}

func (c *countingStore) Destroy(ctx context.Context, id string) error {
	c.destroys.Add(1)
	if c.fail.Load() {
		return errInjected
	}
	return c.inner.Destroy(ctx, id)
}

// countingCAS is the CompareAndSetter of a countingStore whose inner
// store has one.
type countingCAS struct{ c *countingStore }

func (x countingCAS) CompareAndSet(ctx context.Context, id string, old []byte, rec session.Record) error {
	x.c.cas.Add(1)
	if x.c.fail.Load() {
		return errInjected
	}
	return x.c.inner.(session.CompareAndSetter).CompareAndSet(ctx, id, old, rec)
}

// countingUsers passes the UserIndex of a countingStore's inner store
// through.
type countingUsers struct{ c *countingStore }

func (x countingUsers) ListUser(ctx context.Context, user string) ([]session.UserRecord, error) {
	return x.c.inner.(session.UserIndex).ListUser(ctx, user)
}

func (x countingUsers) DestroyUser(ctx context.Context, user, except string) ([]string, error) {
	return x.c.inner.(session.UserIndex).DestroyUser(ctx, user, except)
}

// store returns c offering exactly the CompareAndSetter and UserIndex
// abilities of its inner store.
func (c *countingStore) store() session.Store {
	_, cas := c.inner.(session.CompareAndSetter)
	_, ui := c.inner.(session.UserIndex)
	switch {
	case cas && ui:
		return struct {
			session.Store
			session.CompareAndSetter
			session.UserIndex
		}{c, countingCAS{c}, countingUsers{c}}
	case cas:
		return struct {
			session.Store
			session.CompareAndSetter
		}{c, countingCAS{c}}
	case ui:
		return struct {
			session.Store
			session.UserIndex
		}{c, countingUsers{c}}
	}
	return c
}

// writes is the number of calls that wrote data (Set or CompareAndSet).
func (c *countingStore) writes() int64 { return c.sets.Load() + c.cas.Load() }

func (c *countingStore) reset() {
	c.gets.Store(0)
	c.sets.Store(0)
	c.cas.Store(0)
	c.touches.Store(0)
	c.destroys.Store(0)
}

var testKey = session.KeyPair{Hash: []byte("0123456789abcdef0123456789abcdef")}

// app is a manager on a counting store, served by an httptest server,
// with a cookie-jar client.
type app struct {
	t      *testing.T
	store  *countingStore
	m      *session.Manager
	srv    *httptest.Server
	client *http.Client
	mux    *http.ServeMux
}

func newApp(t *testing.T, store session.Store, opts session.Options) *app {
	t.Helper()
	if opts.Keys == nil && opts.TokenCodec == nil {
		opts.Keys = []session.KeyPair{testKey}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	if _, ok := lastWriterWins.Load(store); ok {
		opts.AllowLastWriterWins = true
	}
	cs := &countingStore{inner: store}
	m, err := session.New(cs.store(), opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(m.Handler(mux))
	t.Cleanup(srv.Close)
	return &app{t: t, store: cs, m: m, srv: srv, client: newClient(t), mux: mux}
}

func newClient(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

// do sends a request with the app's client and returns the response with
// its body read.
func (a *app) do(method, path string) (*http.Response, string) {
	a.t.Helper()
	return a.doWith(a.client, method, path, nil)
}

func (a *app) doWith(c *http.Client, method, path string, hdr http.Header) (*http.Response, string) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.srv.URL+path, nil)
	if err != nil {
		a.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// cookie returns the client's current session cookie value for the app.
func (a *app) cookie(c *http.Client) string {
	req, _ := http.NewRequest("GET", a.srv.URL, nil)
	for _, ck := range c.Jar.Cookies(req.URL) {
		if ck.Name == a.m.Options().CookieName {
			return ck.Value
		}
	}
	return ""
}

func setCookies(resp *http.Response, name string) []string {
	var out []string
	for _, v := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, name+"=") {
			out = append(out, v)
		}
	}
	return out
}

// forEachBackend runs fn once per built-in backend as a subtest.
func forEachBackend(t *testing.T, fn func(t *testing.T, store session.Store)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { fn(t, b.new(t)) })
	}
}

type urlURL = url.URL

func parseURL(s string) (*url.URL, error) { return url.Parse(s) }

func memStore(t testing.TB) *session.MemoryStore {
	s := session.NewMemoryStore(session.MemoryOptions{})
	t.Cleanup(func() { s.Close() })
	return s
}

// fullStore is a store with every optional ability and the wrappers'
// reporting interfaces, as the wrappers are over the built-in stores and
// the fakes that have them all.
type fullStore interface {
	session.Store
	session.CompareAndSetter
	session.UserIndex
	session.Counter
	session.Cleaner
	session.Pinger
	io.Closer
	session.StatsReporter
	session.Componenter
	session.Activer
}

// full returns s as a fullStore, failing t when s lacks an ability.
func full(t testing.TB, s session.Store) fullStore {
	t.Helper()
	f, ok := s.(fullStore)
	if !ok {
		t.Fatalf("%T does not offer every ability", s)
	}
	return f
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
