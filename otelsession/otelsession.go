// Package otelsession reports what package session does as OpenTelemetry
// metrics and spans. It is a module of its own, so that an app that does
// not use OpenTelemetry never downloads it.
//
//	tel, err := otelsession.New(otelsession.Options{}) // the global providers
//	if err != nil {
//		return err
//	}
//	backend, err := session.Open(ctx, cfg, session.OpenOptions{Observe: tel.Observe})
//	…
//	sessions, err := session.New(backend.Store, opts)
//	…
//	if err := tel.Watch(sessions); err != nil {
//		return err
//	}
//	defer tel.Close()
//
// # Metrics
//
// The manager's counters ([session.ManagerStats]), as monotonic counters
// read when the metrics are collected:
//
//	session.manager.loads       {load}      sessions read from the store
//	session.manager.misses      {load}      reads that found nothing
//	session.manager.saves       {save}      records written
//	session.manager.touches     {touch}     expiries moved
//	session.manager.destroys    {session}   records destroyed
//	session.manager.conflicts   {conflict}  concurrent writes merged
//	session.manager.errors      {error}     store calls that failed
//	session.manager.events.dropped  {event} lifecycle events dropped (queue full)
//
// and any counter a later ManagerStats adds as session.manager.<its name
// in snake_case>. Through
// [session.OpenOptions.Observe], every call to a backend:
//
//	session.store.operation.duration   histogram, seconds
//
// with the attributes session.backend ("redis", "postgres", "memory"),
// session.operation ("get", "set", "compare_and_set", "destroy", "touch",
// "list_user", "destroy_user", "count", "delete_expired", "ping", "epoch",
// "raise_epoch") and, for
// a call that failed, error.type ("timeout" or "_OTHER"), as OpenTelemetry's
// semantic conventions name a failure; the buckets are those the
// conventions advise for database calls. And the live sessions, when the
// store can count them ([session.Counter]):
//
//	session.store.sessions   gauge   {session}
//
// Counting walks a Redis keyspace or a Postgres table, so it runs at most
// once per [Options.CountInterval]; collections in between report the last
// count.
//
// # Spans
//
// Each backend call is an internal span named after the call and the
// backend ("get redis", "compare_and_set postgres") with the same
// attributes; a failure sets the span's status to Error and records the
// error. A session not found and a compare-and-set conflict are answers,
// not failures: the span says so in session.result ("not_found",
// "conflict"). The spans of a Redis or Postgres client instrumented
// itself (redisotel, otelpgx) are their children. No span or metric
// carries a token, a store id or a user id.
package otelsession

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/sessionkit/session"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of every metric and span.
const ScopeName = "github.com/sessionkit/session/otelsession"

// The attribute keys.
const (
	// BackendKey is the backend a call went to: "redis", "postgres",
	// "memory".
	BackendKey = attribute.Key("session.backend")
	// OperationKey is the store call: "get", "set", …
	OperationKey = attribute.Key("session.operation")
	// ResultKey, on spans only, marks an answer that is not a success
	// and not a failure: "not_found", "conflict".
	ResultKey = attribute.Key("session.result")
	// ErrorTypeKey is OpenTelemetry's error.type, on calls that failed.
	ErrorTypeKey = attribute.Key("error.type")
)

// Options configures [New]. The zero value reports to OpenTelemetry's
// global providers.
type Options struct {
	// MeterProvider makes the meter. The default is otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// TracerProvider makes the tracer. The default is
	// otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// CountInterval is the least time between two counts of the live
	// sessions (session.store.sessions). The default (0) is one minute; a
	// negative value is an error. To count nothing, set DisableCount.
	CountInterval time.Duration
	// CountTimeout bounds one count. The default (0) is five seconds; a
	// negative value is an error.
	CountTimeout time.Duration
	// DisableCount reports no live-session gauge, and never counts.
	DisableCount bool
}

// Telemetry turns a session store's calls and a manager's counters into
// OpenTelemetry metrics and spans. Make one with [New]; it is safe for
// concurrent use.
type Telemetry struct {
	opts     Options
	meter    metric.Meter
	tracer   trace.Tracer
	duration metric.Float64Histogram

	mu   sync.Mutex
	regs []metric.Registration
}

// liveCount caches a store's last count.
type liveCount struct {
	mu sync.Mutex
	at time.Time
	n  int64
	ok bool
}

// New returns a Telemetry reporting to opts' providers, or an error for a
// negative option or an instrument the meter refuses.
func New(opts Options) (*Telemetry, error) {
	if opts.CountInterval < 0 {
		return nil, fmt.Errorf("otelsession: Options.CountInterval is negative (%v); use 0 for the default, DisableCount for none", opts.CountInterval)
	}
	if opts.CountTimeout < 0 {
		return nil, fmt.Errorf("otelsession: Options.CountTimeout is negative (%v); use 0 for the default", opts.CountTimeout)
	}
	if opts.CountInterval == 0 {
		opts.CountInterval = time.Minute
	}
	if opts.CountTimeout == 0 {
		opts.CountTimeout = 5 * time.Second
	}
	if opts.MeterProvider == nil {
		opts.MeterProvider = otel.GetMeterProvider()
	}
	if opts.TracerProvider == nil {
		opts.TracerProvider = otel.GetTracerProvider()
	}
	t := &Telemetry{
		opts:   opts,
		meter:  opts.MeterProvider.Meter(ScopeName),
		tracer: opts.TracerProvider.Tracer(ScopeName),
	}
	var err error
	t.duration, err = t.meter.Float64Histogram("session.store.operation.duration",
		metric.WithDescription("Duration of the calls the session store makes to each backend."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10))
	if err != nil {
		return nil, fmt.Errorf("otelsession: %w", err)
	}
	return t, nil
}

// Observe is the function for [session.OpenOptions.Observe]: it starts a
// span for the call and records its duration when the call returns.
func (t *Telemetry) Observe(ctx context.Context, backend, op string) (context.Context, func(error)) {
	attrs := []attribute.KeyValue{BackendKey.String(backend), OperationKey.String(op)}
	ctx, span := t.tracer.Start(ctx, op+" "+backend, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
	start := time.Now()
	return ctx, func(err error) {
		elapsed := time.Since(start).Seconds()
		switch {
		case err == nil:
		case errors.Is(err, session.ErrNotFound):
			span.SetAttributes(ResultKey.String("not_found"))
		case errors.Is(err, session.ErrConflict):
			span.SetAttributes(ResultKey.String("conflict"))
		default:
			et := "_OTHER"
			if errors.Is(err, context.DeadlineExceeded) {
				et = "timeout"
			}
			attrs = append(attrs, ErrorTypeKey.String(et))
			span.SetAttributes(ErrorTypeKey.String(et))
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		t.duration.Record(context.WithoutCancel(ctx), elapsed, metric.WithAttributes(attrs...))
		span.End()
	}
}

// managerCounters names the counters of session.ManagerStats: its field,
// the metric, its unit and description.
var managerCounters = []struct{ field, name, unit, desc string }{
	{"Loads", "session.manager.loads", "{load}", "Sessions the manager read from the store."},
	{"LoadMisses", "session.manager.misses", "{load}", "Reads that found no live session (unknown or expired id)."},
	{"Saves", "session.manager.saves", "{save}", "Session records the manager wrote."},
	{"Touches", "session.manager.touches", "{touch}", "Expiries moved without rewriting the record."},
	{"Destroys", "session.manager.destroys", "{session}", "Session records destroyed (logout, renew, revocation)."},
	{"Conflicts", "session.manager.conflicts", "{conflict}", "Concurrent writes to one session resolved by merging."},
	{"Errors", "session.manager.errors", "{error}", "Store calls of the manager that failed."},
	{"EventsDropped", "session.manager.events.dropped", "{event}", "Lifecycle events not delivered to Options.OnEvent because its queue was full."},
}

// Watch reports m's counters, and its store's live sessions when the
// store can count, until [Telemetry.Close]. Watch one manager per
// Telemetry, or give each its own MeterProvider: two would report under
// the same names.
func (t *Telemetry) Watch(m *session.Manager) error {
	if m == nil {
		return errors.New("otelsession: Watch: manager is nil")
	}
	st := reflect.TypeOf(session.ManagerStats{})
	type instrument struct {
		field int
		obs   metric.Int64ObservableCounter
	}
	var ins []instrument
	var observables []metric.Observable
	known := map[string]bool{}
	add := func(field, name, unit, desc string) error {
		f, ok := st.FieldByName(field)
		if !ok || f.Type.Kind() != reflect.Int64 {
			return nil // a counter this version of session lacks
		}
		c, err := t.meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		if err != nil {
			return fmt.Errorf("otelsession: %w", err)
		}
		ins = append(ins, instrument{f.Index[0], c})
		observables = append(observables, c)
		return nil
	}
	for _, c := range managerCounters {
		known[c.field] = true
		if err := add(c.field, c.name, c.unit, c.desc); err != nil {
			return err
		}
	}
	for i := 0; i < st.NumField(); i++ {
		f := st.Field(i)
		if known[f.Name] || !f.IsExported() {
			continue
		}
		if err := add(f.Name, "session.manager."+snake(f.Name), "1", "The manager's "+f.Name+" counter."); err != nil {
			return err
		}
	}
	var gauge metric.Int64ObservableGauge
	counter, canCount := m.Store().(session.Counter)
	if canCount && !t.opts.DisableCount {
		var err error
		gauge, err = t.meter.Int64ObservableGauge("session.store.sessions",
			metric.WithUnit("{session}"),
			metric.WithDescription("Live sessions in the store, counted at most once per CountInterval."))
		if err != nil {
			return fmt.Errorf("otelsession: %w", err)
		}
		observables = append(observables, gauge)
	}
	lc := &liveCount{}
	reg, err := t.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		v := reflect.ValueOf(m.Stats())
		for _, in := range ins {
			o.ObserveInt64(in.obs, v.Field(in.field).Int())
		}
		if gauge != nil {
			if n, ok := t.live(ctx, lc, counter); ok {
				o.ObserveInt64(gauge, n)
			}
		}
		return nil
	}, observables...)
	if err != nil {
		return fmt.Errorf("otelsession: %w", err)
	}
	t.mu.Lock()
	t.regs = append(t.regs, reg)
	t.mu.Unlock()
	return nil
}

// live returns the store's live sessions: counted now when the last count
// is older than CountInterval, else the last count. A count that fails
// reports nothing rather than a stale number.
func (t *Telemetry) live(ctx context.Context, lc *liveCount, c session.Counter) (int64, bool) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if !lc.at.IsZero() && time.Since(lc.at) < t.opts.CountInterval {
		return lc.n, lc.ok
	}
	ctx, cancel := context.WithTimeout(ctx, t.opts.CountTimeout)
	defer cancel()
	n, err := c.Count(ctx)
	lc.at, lc.n, lc.ok = time.Now(), n, err == nil
	return lc.n, lc.ok
}

// Close stops reporting the counters and gauges of every watched manager.
// Observe keeps working: the histogram and spans need no callback.
func (t *Telemetry) Close() error {
	t.mu.Lock()
	regs := t.regs
	t.regs = nil
	t.mu.Unlock()
	var errs []error
	for _, r := range regs {
		errs = append(errs, r.Unregister())
	}
	return errors.Join(errs...)
}

func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
