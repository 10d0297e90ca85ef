// Package health reports whether the session store an app runs on can
// serve requests: each backend behind it (a [session.Open] store in
// tiered or failover mode has two), its reachability and latency, and the
// store's counters. [Handler] serves the report to load balancers and
// dashboards; [Check] returns it.
package health

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/internal/ops"
)

// Status sums up a [Report]; in JSON it is "ok", "degraded"
// or "down".
type Status string

// The health statuses.
const (
	// OK: every backend answered.
	OK Status = "ok"
	// Degraded: requests are served, but a backend that is not
	// required (a cache, a standby) did not answer.
	Degraded Status = "degraded"
	// Down: requests cannot be served.
	Down Status = "down"
)

// Report is the result of [Check].
type Report struct {
	// Status sums the backends up.
	Status Status `json:"status"`
	// Active names the backend requests go to (for a Failover, the
	// active store; otherwise the first required backend).
	Active string `json:"active"`
	// Backends reports each backend, in the store's order.
	Backends []Backend `json:"backends"`
	// Stats are the store's counters, when it counts (every store [session.Open],
	// [session.NewTiered] and [session.NewFailover] return does).
	Stats *session.Stats `json:"stats,omitempty"`
}

// Healthy reports whether requests can be served (Status is not
// Down).
func (r Report) Healthy() bool { return r.Status != Down }

// Backend is one backend's part of a [Report].
type Backend struct {
	// Name is the backend: "redis", "postgres", "memory", or the store's
	// type for other stores; a repeated name gets "#2", "#3".
	Name string `json:"name"`
	// Addr is its host:port, "" for memory. It never holds credentials.
	Addr string `json:"addr,omitempty"`
	// Required is true when requests cannot be served without it.
	Required bool `json:"required"`
	// Active is true for the backend requests go to.
	Active bool `json:"active"`
	// Reachable is true when it answered the ping.
	Reachable bool `json:"reachable"`
	// Latency is how long the ping took. In JSON it is "latency_ms", in
	// milliseconds with microsecond precision.
	Latency time.Duration `json:"-"`
	// Error is why the ping failed ("" when it did not). It never holds
	// credentials.
	Error string `json:"error,omitempty"`
	// Sessions is the number of live sessions, when counting was asked
	// for and the backend can count.
	Sessions *int64 `json:"sessions,omitempty"`
}

// backendHealthJSON is Backend as JSON, Latency in milliseconds.
type backendHealthJSON struct {
	Name      string  `json:"name"`
	Addr      string  `json:"addr,omitempty"`
	Required  bool    `json:"required"`
	Active    bool    `json:"active"`
	Reachable bool    `json:"reachable"`
	LatencyMS float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
	Sessions  *int64  `json:"sessions,omitempty"`
}

// MarshalJSON writes Latency as "latency_ms".
func (b Backend) MarshalJSON() ([]byte, error) {
	return json.Marshal(backendHealthJSON{b.Name, b.Addr, b.Required, b.Active, b.Reachable,
		float64(b.Latency.Microseconds()) / 1000, b.Error, b.Sessions})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (b *Backend) UnmarshalJSON(data []byte) error {
	var j backendHealthJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*b = Backend{j.Name, j.Addr, j.Required, j.Active, j.Reachable,
		time.Duration(j.LatencyMS * float64(time.Millisecond)), j.Error, j.Sessions}
	return nil
}

// Options configures [Check] and [Handler]. The zero
// value is ready to use.
type Options struct {
	// Timeout bounds the whole check, all backends being pinged at once.
	// The default (0) is two seconds. A negative value is invalid:
	// Handler panics, and Check reports every backend down
	// with the error.
	Timeout time.Duration

	// CountSessions also counts the live sessions of each backend that is
	// a [session.Counter]. Counting walks a Redis keyspace or a Postgres table, so
	// it is off by default: leave it off for load-balancer probes.
	CountSessions bool
}

// Check pings every backend of s at once and reports their
// reachability and latency: for a store from [session.Open], pass Backend.Store. The status is Down when a required
// backend, or every backend, is unreachable; Degraded when another
// one is; OK otherwise.
//
// With an invalid (negative) option it pings nothing and reports
// Down, the error in every backend's Error: a health check returns
// no error, and a misconfigured one must not look healthy.
func Check(ctx context.Context, s session.Store, opts Options) Report {
	if err := opts.check(); err != nil {
		return invalid(s, err)
	}
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	cs := ops.Components(s)
	active := ops.Active(s)
	rep := Report{Active: active, Backends: make([]Backend, len(cs))}
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := Backend{Name: c.Name, Addr: c.Addr, Required: c.Required, Active: c.Name == active}
			start := time.Now()
			err := ping(ctx, c.Store.(session.Store))
			b.Latency = time.Since(start)
			b.Reachable = err == nil
			if err != nil {
				b.Error = err.Error()
			}
			if err == nil && opts.CountSessions {
				if cn, ok := c.Store.(session.Counter); ok {
					if n, err := cn.Count(ctx); err == nil {
						b.Sessions = &n
					}
				}
			}
			rep.Backends[i] = b
		}()
	}
	wg.Wait()
	reachable, down, degraded := 0, false, false
	for _, b := range rep.Backends {
		switch {
		case b.Reachable:
			reachable++
		case b.Required:
			down = true
		default:
			degraded = true
		}
	}
	switch {
	case down || reachable == 0:
		rep.Status = Down
	case degraded:
		rep.Status = Degraded
	default:
		rep.Status = OK
	}
	if r, ok := s.(interface{ Stats() session.Stats }); ok {
		st := r.Stats()
		rep.Stats = &st
	}
	return rep
}

// Handler returns an http.Handler that serves [Check] of s as
// JSON: 200 when requests can be served (ok or degraded), 503 when not,
// for load balancers. HEAD gets the status code alone. The response is
// never cached.
//
// It panics when an option is negative, as time.NewTicker does: the
// mistake shows at startup rather than as an instance that every load
// balancer probe finds down.
func Handler(s session.Store, opts Options) http.Handler {
	if err := opts.check(); err != nil {
		panic(err.Error())
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep := Check(r.Context(), s, opts)
		code := http.StatusOK
		if !rep.Healthy() {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		if r.Method == http.MethodHead {
			return
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	})
}

// check returns an error for an invalid (negative) option.
func (o Options) check() error {
	if o.Timeout < 0 {
		return fmt.Errorf("health: Options.Timeout is negative (%v); use 0 for the default", o.Timeout)
	}
	return nil
}

// invalid is the report of a check that could not run: down, with
// err on every backend.
func invalid(s session.Store, err error) Report {
	cs := ops.Components(s)
	rep := Report{Status: Down, Backends: make([]Backend, len(cs))}
	for i, c := range cs {
		rep.Backends[i] = Backend{Name: c.Name, Addr: c.Addr, Required: c.Required, Error: err.Error()}
	}
	return rep
}

// ping is the rule for every store: a [session.Pinger] pings; any other
// store is reachable while ctx is live.
func ping(ctx context.Context, s session.Store) error {
	if p, ok := s.(session.Pinger); ok {
		return p.Ping(ctx)
	}
	return ctx.Err()
}
