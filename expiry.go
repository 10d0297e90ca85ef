package session

import (
	"sync"
	"time"

	"github.com/sessionkit/session/audit"
)

// Expirations, for audit.Expired (see Options.OnEvent). A session expires
// in the store, not in a request, so each built-in store reports the
// records it finds expired to the Managers built on it:
//
//   - memory: its janitor (every CleanupInterval, a minute by default),
//     and DeleteExpired;
//   - Postgres: its cleanup (every CleanupInterval, five minutes by
//     default), DeleteExpired and sessionctl purge: the rows they delete,
//     each reported by the one process that deleted it;
//   - Redis: RedisStore.WatchExpirations, from the server's keyspace
//     notifications, which Redis sends once to every subscriber and to
//     none that is not connected at that moment.
//
// The wrappers pass on the reports of the stores that hold the sessions:
// instrument its store's, tiered its source's (a cache's copies expiring
// is not a session ending), failover every store's.

// expiredRecord is one record a store found expired and removed. Data is
// nil when the store no longer has it (Redis), and UserID "" when it
// cannot tell.
type expiredRecord struct {
	ID      string
	UserID  string
	Data    []byte
	Expires time.Time
}

// expiryReporter is implemented by the built-in stores: reportExpired
// registers fn to be called with the records the store finds expired,
// from the goroutine that found them, until stop is called.
type expiryReporter interface {
	reportExpired(fn func([]expiredRecord)) (stop func())
}

// expiryForwarder is implemented by the wrappers: the reporters of the
// stores they are made of that hold sessions.
type expiryForwarder interface {
	expiryReporters() []expiryReporter
}

// expiryReportersOf returns the reporters behind s.
func expiryReportersOf(s Store) []expiryReporter {
	switch v := s.(type) {
	case expiryReporter:
		return []expiryReporter{v}
	case expiryForwarder:
		return v.expiryReporters()
	}
	return nil
}

// expiryHub is a store's registry of expiry callbacks.
type expiryHub struct {
	mu   sync.Mutex
	next int
	fns  map[int]func([]expiredRecord)
}

func (h *expiryHub) reportExpired(fn func([]expiredRecord)) (stop func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fns == nil {
		h.fns = map[int]func([]expiredRecord){}
	}
	k := h.next
	h.next++
	h.fns[k] = fn
	return func() {
		h.mu.Lock()
		delete(h.fns, k)
		h.mu.Unlock()
	}
}

// watched reports whether anyone listens, so that a store does the work
// of collecting expired records only then.
func (h *expiryHub) watched() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.fns) > 0
}

// report calls every callback with recs.
func (h *expiryHub) report(recs []expiredRecord) {
	if len(recs) == 0 {
		return
	}
	h.mu.Lock()
	fns := make([]func([]expiredRecord), 0, len(h.fns))
	for _, fn := range h.fns {
		fns = append(fns, fn)
	}
	h.mu.Unlock()
	for _, fn := range fns {
		fn(recs)
	}
}

// watchExpired subscribes m to its store's expirations when OnEvent is
// set; Close unsubscribes.
func (m *Manager) watchExpired() {
	if !m.eventsOn() {
		return
	}
	for _, r := range expiryReportersOf(m.store) {
		m.unwatch = append(m.unwatch, r.reportExpired(m.onExpired))
	}
}

// onExpired turns the records a store found expired into events: idle or
// absolute as the record's meta tells, and none for a record RevokeAll
// had already ended.
func (m *Manager) onExpired(recs []expiredRecord) {
	for _, r := range recs {
		ev := m.event(audit.Expired, "", r.ID, r.UserID, nil)
		if r.Data != nil {
			p, err := m.decodeMeta(r.Data)
			if err != nil {
				continue // not a session of this manager's
			}
			if m.epoch != nil && p.Epoch < m.epoch.value.Load() {
				continue // ended by RevokeAll, reported then
			}
			ev.UserID = p.UserID
			ev.Reason = "idle"
			// Stores keep expiries to the millisecond at least.
			if !r.Expires.Before(p.CreatedAt.Add(m.opts.Lifetime).Add(-time.Millisecond)) {
				ev.Reason = "absolute"
			}
		}
		m.emit(ev)
	}
}

// The wrappers' reporters.

func (s *instrumented) expiryReporters() []expiryReporter { return expiryReportersOf(s.inner) }

func (t *tiered) expiryReporters() []expiryReporter { return expiryReportersOf(t.source) }

func (f *failover) expiryReporters() []expiryReporter {
	var out []expiryReporter
	for _, s := range f.stores {
		out = append(out, expiryReportersOf(s)...)
	}
	return out
}
