package session

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// component is one backend inside a store, as reported by [CheckHealth].
type component struct {
	// Name identifies the backend: "redis", "postgres", "memory", or the
	// store's type for other stores.
	Name string
	// Addr is the backend's host:port ("" for memory). It never holds
	// credentials.
	Addr string
	// Store is the backend itself.
	Store Store
	// Required is true when the store cannot serve requests without this
	// backend: the health check is unhealthy whenever a required backend
	// is unreachable.
	Required bool
}

// componenter is implemented by the stores made of other stores (those
// of [NewTiered], [NewFailover] and instrument) to list them for health
// checks.
type componenter interface {
	components() []component
}

// activer is implemented by every wrapper ([NewFailover], [NewTiered],
// instrument); activeBackend names the backend in use.
type activer interface {
	activeBackend() string
}

// components returns the backends of s: its Components, or s itself.
func components(s Store) []component {
	if c, ok := s.(componenter); ok {
		return c.components()
	}
	name, addr := describe(s)
	return []component{{Name: name, Addr: addr, Store: s, Required: true}}
}

// activeBackend names the backend of s that requests go to: its
// activeBackend when it is an activer, else its first required
// component.
func activeBackend(s Store) string {
	if a, ok := s.(activer); ok {
		return a.activeBackend()
	}
	for _, c := range components(s) {
		if c.Required {
			return c.Name
		}
	}
	return ""
}

// describe names a store and gives its address, as a health report shows
// them: a store that is a [fmt.Stringer] names itself (its String's first
// word is the backend, the rest its address without credentials, as the
// built-in stores do); any other is named after its type.
func describe(s Store) (name, addr string) {
	switch s := s.(type) {
	case componenter:
		// A wrapper around a single backend (instrument) is named
		// after it.
		if cs := s.components(); len(cs) == 1 {
			return cs[0].Name, cs[0].Addr
		}
	case fmt.Stringer:
		name, addr, _ = strings.Cut(s.String(), " ")
		return name, addr
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", s), "*"), ""
}

// uniqueNames makes component names unique by suffixing repeats with #2,
// #3, so that a Failover across two memory stores reports two backends.
func uniqueNames(cs []component) {
	seen := map[string]int{}
	for i := range cs {
		seen[cs[i].Name]++
		if n := seen[cs[i].Name]; n > 1 {
			cs[i].Name += "#" + strconv.Itoa(n)
		}
	}
}

// HealthStatus sums up a [HealthReport]; in JSON it is "ok", "degraded"
// or "down".
type HealthStatus string

// The health statuses.
const (
	// HealthOK: every backend answered.
	HealthOK HealthStatus = "ok"
	// HealthDegraded: requests are served, but a backend that is not
	// required (a cache, a standby) did not answer.
	HealthDegraded HealthStatus = "degraded"
	// HealthDown: requests cannot be served.
	HealthDown HealthStatus = "down"
)

// HealthReport is the result of [CheckHealth].
type HealthReport struct {
	// Status sums the backends up.
	Status HealthStatus `json:"status"`
	// Active names the backend requests go to (for a Failover, the
	// active store; otherwise the first required backend).
	Active string `json:"active"`
	// Backends reports each backend, in the store's order.
	Backends []BackendHealth `json:"backends"`
	// Stats are the store's counters, when it counts (every store [Open],
	// [NewTiered] and [NewFailover] return does).
	Stats *Stats `json:"stats,omitempty"`
}

// Healthy reports whether requests can be served (Status is not
// HealthDown).
func (r HealthReport) Healthy() bool { return r.Status != HealthDown }

// BackendHealth is one backend's part of a [HealthReport].
type BackendHealth struct {
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

// backendHealthJSON is BackendHealth as JSON, Latency in milliseconds.
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
func (b BackendHealth) MarshalJSON() ([]byte, error) {
	return json.Marshal(backendHealthJSON{b.Name, b.Addr, b.Required, b.Active, b.Reachable,
		float64(b.Latency.Microseconds()) / 1000, b.Error, b.Sessions})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (b *BackendHealth) UnmarshalJSON(data []byte) error {
	var j backendHealthJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*b = BackendHealth{j.Name, j.Addr, j.Required, j.Active, j.Reachable,
		time.Duration(j.LatencyMS * float64(time.Millisecond)), j.Error, j.Sessions}
	return nil
}

// HealthOptions configures [CheckHealth] and [HealthHandler]. The zero
// value is ready to use.
type HealthOptions struct {
	// Timeout bounds the whole check, all backends being pinged at once.
	// The default (0) is two seconds. A negative value is invalid:
	// HealthHandler panics, and CheckHealth reports every backend down
	// with the error.
	Timeout time.Duration

	// CountSessions also counts the live sessions of each backend that is
	// a [Counter]. Counting walks a Redis keyspace or a Postgres table, so
	// it is off by default: leave it off for load-balancer probes.
	CountSessions bool
}

// CheckHealth pings every backend of s at once and reports their
// reachability and latency: for a store from [Open], pass Backend.Store. The status is HealthDown when a required
// backend, or every backend, is unreachable; HealthDegraded when another
// one is; HealthOK otherwise.
//
// With an invalid (negative) option it pings nothing and reports
// HealthDown, the error in every backend's Error: a health check returns
// no error, and a misconfigured one must not look healthy.
func CheckHealth(ctx context.Context, s Store, opts HealthOptions) HealthReport {
	if err := opts.check(); err != nil {
		return invalidHealth(s, err)
	}
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	cs := components(s)
	active := activeBackend(s)
	rep := HealthReport{Active: active, Backends: make([]BackendHealth, len(cs))}
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := BackendHealth{Name: c.Name, Addr: c.Addr, Required: c.Required, Active: c.Name == active}
			start := time.Now()
			err := ping(ctx, c.Store)
			b.Latency = time.Since(start)
			b.Reachable = err == nil
			if err != nil {
				b.Error = err.Error()
			}
			if err == nil && opts.CountSessions {
				if cn, ok := c.Store.(Counter); ok {
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
		rep.Status = HealthDown
	case degraded:
		rep.Status = HealthDegraded
	default:
		rep.Status = HealthOK
	}
	if r, ok := s.(statsReporter); ok {
		st := r.Stats()
		rep.Stats = &st
	}
	return rep
}

// HealthHandler returns an http.Handler that serves [CheckHealth] of s as
// JSON: 200 when requests can be served (ok or degraded), 503 when not,
// for load balancers. HEAD gets the status code alone. The response is
// never cached.
//
// It panics when an option is negative, as time.NewTicker does: the
// mistake shows at startup rather than as an instance that every load
// balancer probe finds down.
func HealthHandler(s Store, opts HealthOptions) http.Handler {
	if err := opts.check(); err != nil {
		panic(err.Error())
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep := CheckHealth(r.Context(), s, opts)
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
func (o HealthOptions) check() error {
	return checkNonNegative("HealthOptions", "Timeout", o.Timeout)
}

// invalidHealth is the report of a check that could not run: down, with
// err on every backend.
func invalidHealth(s Store, err error) HealthReport {
	cs := components(s)
	rep := HealthReport{Status: HealthDown, Backends: make([]BackendHealth, len(cs))}
	for i, c := range cs {
		rep.Backends[i] = BackendHealth{Name: c.Name, Addr: c.Addr, Required: c.Required, Error: err.Error()}
	}
	return rep
}
