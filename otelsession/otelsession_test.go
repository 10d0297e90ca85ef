package otelsession_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessionkit/session"
	"github.com/sessionkit/session/audit"
	"github.com/sessionkit/session/otelsession"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// harness is a Telemetry on an in-memory reader and span recorder.
type harness struct {
	t      *testing.T
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
	tel    *otelsession.Telemetry
}

func newHarness(t *testing.T, opts otelsession.Options) *harness {
	h := &harness{t: t, reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	opts.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))
	opts.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	tel, err := otelsession.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Close() })
	h.tel = tel
	return h
}

// collect returns every metric, by name.
func (h *harness) collect() map[string]metricdata.Metrics {
	h.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(context.Background(), &rm); err != nil {
		h.t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != otelsession.ScopeName {
			h.t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// intValue is the value of the one data point of an int64 sum or gauge.
func intValue(t *testing.T, m metricdata.Metrics) int64 {
	t.Helper()
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		if len(d.DataPoints) != 1 || !d.IsMonotonic {
			t.Fatalf("%s: %d points, monotonic %v", m.Name, len(d.DataPoints), d.IsMonotonic)
		}
		return d.DataPoints[0].Value
	case metricdata.Gauge[int64]:
		if len(d.DataPoints) != 1 {
			t.Fatalf("%s: %d points", m.Name, len(d.DataPoints))
		}
		return d.DataPoints[0].Value
	}
	t.Fatalf("%s: %T", m.Name, m.Data)
	return 0
}

// calls returns the histogram's counts by "backend/operation", with
// "!type" appended for failed calls.
func calls(t *testing.T, m metricdata.Metrics) map[string]uint64 {
	t.Helper()
	h, ok := m.Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("%s: %T", m.Name, m.Data)
	}
	if m.Unit != "s" {
		t.Errorf("%s: unit %q", m.Name, m.Unit)
	}
	out := map[string]uint64{}
	for _, p := range h.DataPoints {
		b, _ := p.Attributes.Value(otelsession.BackendKey)
		op, _ := p.Attributes.Value(otelsession.OperationKey)
		k := b.AsString() + "/" + op.AsString()
		if et, ok := p.Attributes.Value(otelsession.ErrorTypeKey); ok {
			k += "!" + et.AsString()
		}
		out[k] += p.Count
		if p.Count > 0 && (p.Sum < 0 || p.Sum > 10) {
			t.Errorf("%s: sum %v s", k, p.Sum)
		}
	}
	return out
}

// app is an HTTP app on a Backend opened with the Telemetry's observer.
type app struct {
	t       *testing.T
	backend *session.Backend
	m       *session.Manager
	srv     *httptest.Server
}

func newApp(t *testing.T, h *harness, env map[string]string) *app {
	return newAppWith(t, h, env, session.Options{})
}

// newAppWith is newApp with the manager's options opts (keys and logger
// set here).
func newAppWith(t *testing.T, h *harness, env map[string]string, opts session.Options) *app {
	t.Helper()
	cfg, err := session.ConfigFromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	b, err := session.Open(context.Background(), cfg, session.OpenOptions{Logger: logger, Observe: h.tel.Observe})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	opts.Logger = logger
	opts.Keys = []session.KeyPair{{Hash: []byte("otelsession test key, 32 bytes or more")}}
	m, err := session.New(b.Store, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.tel.Watch(m); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /put", func(w http.ResponseWriter, r *http.Request) { session.From(r).Put("k", r.URL.Query().Get("v")) })
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, session.From(r).GetString("k")) })
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) { session.From(r).Destroy() })
	srv := httptest.NewServer(m.Handler(mux))
	t.Cleanup(srv.Close)
	return &app{t: t, backend: b, m: m, srv: srv}
}

func (a *app) do(c *http.Client, method, path string, cookie ...*http.Cookie) string {
	a.t.Helper()
	req, _ := http.NewRequest(method, a.srv.URL+path, nil)
	for _, ck := range cookie {
		req.AddCookie(ck)
	}
	resp, err := c.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		a.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return string(b)
}

func browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

// script runs a fixed sequence of requests: two users write (2 saves, as
// compare-and-sets of new records), each reads back (2 loads), one logs
// out (1 destroy, without reading), and its old cookie, replayed, finds
// nothing (a read, counted as a miss). One session is left.
func (a *app) script() {
	a.t.Helper()
	alice, bob := browser(), browser()
	a.do(alice, "POST", "/put?v=a")
	a.do(bob, "POST", "/put?v=b")
	if a.do(alice, "GET", "/get") != "a" || a.do(bob, "GET", "/get") != "b" {
		a.t.Fatal("values not read back")
	}
	u, _ := http.NewRequest("GET", a.srv.URL, nil)
	old := alice.Jar.Cookies(u.URL)
	a.do(alice, "POST", "/logout")
	if got := a.do(http.DefaultClient, "GET", "/get", old...); got != "" {
		a.t.Fatalf("a destroyed session answered %q", got)
	}
}

// TestMetricsAfterScript: each metric is present with the value the
// scripted requests give, on the memory store through session.Open.
func TestMetricsAfterScript(t *testing.T) {
	h := newHarness(t, otelsession.Options{})
	a := newApp(t, h, map[string]string{})
	a.script()
	ms := h.collect()
	want := map[string]int64{
		"session.manager.loads":          2,
		"session.manager.misses":         1,
		"session.manager.saves":          2,
		"session.manager.touches":        0,
		"session.manager.destroys":       1,
		"session.manager.conflicts":      0,
		"session.manager.errors":         0,
		"session.store.sessions":         1,
		"session.manager.events.dropped": 0,
	}
	for name, v := range want {
		m, ok := ms[name]
		if !ok {
			t.Errorf("no metric %s", name)
			continue
		}
		if got := intValue(t, m); got != v {
			t.Errorf("%s = %d, want %d", name, got, v)
		}
	}
	st := a.m.Stats()
	if intValue(t, ms["session.manager.loads"]) != st.Loads || intValue(t, ms["session.manager.saves"]) != st.Saves {
		t.Errorf("metrics differ from Manager.Stats %+v", st)
	}
	got := calls(t, ms["session.store.operation.duration"])
	for k, n := range map[string]uint64{"memory/get": 3, "memory/compare_and_set": 2, "memory/destroy": 1, "memory/count": 1} {
		if got[k] != n {
			t.Errorf("%s: %d calls, want %d (all: %v)", k, got[k], n, got)
		}
	}
	// Spans: one per store call, named after call and backend.
	names := map[string]int{}
	for _, s := range h.spans.Ended() {
		names[s.Name()]++
		if b, _ := attrOf(s.Attributes(), otelsession.BackendKey); b != "memory" {
			t.Errorf("span %s: backend %q", s.Name(), b)
		}
	}
	if names["get memory"] != 3 || names["compare_and_set memory"] != 2 || names["destroy memory"] != 1 {
		t.Errorf("spans: %v", names)
	}
	// The live count is cached for CountInterval: no new count now.
	a.do(browser(), "POST", "/put?v=c")
	ms = h.collect()
	if n := intValue(t, ms["session.store.sessions"]); n != 1 {
		t.Errorf("cached count %d, want 1 until CountInterval passes", n)
	}
	if c := calls(t, ms["session.store.operation.duration"])["memory/count"]; c != 1 {
		t.Errorf("%d counts, want 1", c)
	}
	// Close: the manager's metrics stop.
	if err := h.tel.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.collect()["session.manager.loads"]; ok {
		t.Error("manager metrics after Close")
	}
}

func attrOf(kvs []attribute.KeyValue, k attribute.Key) (string, bool) {
	for _, kv := range kvs {
		if kv.Key == k {
			return kv.Value.AsString(), true
		}
	}
	return "", false
}

// TestObserveOutcomes: a failure carries error.type and marks its span;
// not found and conflict are answers.
func TestObserveOutcomes(t *testing.T) {
	h := newHarness(t, otelsession.Options{})
	for _, err := range []error{nil, session.ErrNotFound, session.ErrConflict, errors.New("connection refused"), context.DeadlineExceeded} {
		_, done := h.tel.Observe(context.Background(), "redis", "get")
		done(err)
	}
	got := calls(t, h.collect()["session.store.operation.duration"])
	want := map[string]uint64{"redis/get": 3, "redis/get!_OTHER": 1, "redis/get!timeout": 1}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s: %d, want %d (all %v)", k, got[k], n, got)
		}
	}
	spans := h.spans.Ended()
	if len(spans) != 5 {
		t.Fatalf("%d spans", len(spans))
	}
	for i, wantResult := range []string{"", "not_found", "conflict", "", ""} {
		s := spans[i]
		r, _ := attrOf(s.Attributes(), otelsession.ResultKey)
		failed := s.Status().Code == codes.Error
		if r != wantResult || failed != (i >= 3) {
			t.Errorf("span %d: result %q, status %v", i, r, s.Status())
		}
	}
}

// TestValidates: negative options are errors; DisableCount counts
// nothing.
func TestValidates(t *testing.T) {
	if _, err := otelsession.New(otelsession.Options{CountInterval: -1}); err == nil {
		t.Error("negative CountInterval accepted")
	}
	if _, err := otelsession.New(otelsession.Options{CountTimeout: -1}); err == nil {
		t.Error("negative CountTimeout accepted")
	}
	h := newHarness(t, otelsession.Options{DisableCount: true})
	newApp(t, h, map[string]string{})
	if _, ok := h.collect()["session.store.sessions"]; ok {
		t.Error("a gauge with DisableCount")
	}
	if err := h.tel.Watch(nil); err == nil {
		t.Error("Watch(nil) accepted")
	}
}

// TestRedis: through session.Open on the shared Redis, calls are reported
// under backend "redis", and the gauge counts what the store holds.
func TestRedis(t *testing.T) {
	url := os.Getenv("SESSION_TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opts)
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rc.Ping(ctx).Err(); err != nil {
		if os.Getenv("SESSION_TEST_REQUIRE_BACKENDS") == "1" {
			t.Fatalf("Redis is required (SESSION_TEST_REQUIRE_BACKENDS=1) but unreachable: %v", err)
		}
		t.Skipf("skipping: Redis unreachable: %v (set SESSION_TEST_REQUIRE_BACKENDS=1 to fail instead)", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "otelsession:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := rc.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			rc.Del(ctx, keys...)
		}
	})
	h := newHarness(t, otelsession.Options{})
	a := newApp(t, h, map[string]string{"REDIS_URL": url, "SESSION_REDIS_PREFIX": prefix})
	if a.backend.Name != "redis" {
		t.Fatalf("backend %s", a.backend.Name)
	}
	a.script()
	ms := h.collect()
	got := calls(t, ms["session.store.operation.duration"])
	if got["redis/get"] != 3 || got["redis/compare_and_set"] != 2 || got["redis/destroy"] != 1 {
		t.Errorf("calls: %v", got)
	}
	n, err := rc.Keys(context.Background(), prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if g := intValue(t, ms["session.store.sessions"]); g != int64(len(n)) || g != 1 {
		t.Errorf("gauge %d, Redis holds %d keys under the prefix", g, len(n))
	}
	if strings.Contains(h.spans.Ended()[0].Name(), prefix) {
		t.Error("a span names a key")
	}
}

// TestEventsDropped: lifecycle events the queue has no room for are
// counted, as ManagerStats counts them.
func TestEventsDropped(t *testing.T) {
	h := newHarness(t, otelsession.Options{DisableCount: true})
	release := make(chan struct{})
	a := newAppWith(t, h, map[string]string{}, session.Options{
		OnEvent:    func(audit.Event) { <-release }, // holds the first event
		EventQueue: 1,
	})
	for range 5 {
		a.do(browser(), "POST", "/put?v=x") // one "created" event each
	}
	dropped := a.m.Stats().EventsDropped
	if dropped < 3 {
		t.Fatalf("ManagerStats.EventsDropped = %d, want at least 3 of 5", dropped)
	}
	if got := intValue(t, h.collect()["session.manager.events.dropped"]); got != dropped {
		t.Errorf("session.manager.events.dropped = %d, ManagerStats says %d", got, dropped)
	}
	close(release)
	a.m.Close()
}
