package session

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sessionkit/session/audit"
)

// Lifecycle events, for an audit trail (SOC 2 and the like ask that the
// start and end of every session be logged): see [Options.OnEvent].
//
// A request never waits for the hook: events go into a bounded queue that
// one goroutine per Manager empties into OnEvent, in order; when the queue
// is full an event is dropped and counted (ManagerStats.EventsDropped),
// and the request goes on. [Manager.Close] delivers what is queued.

// eventQueue is a Manager's queue of events for OnEvent.
type eventQueue struct {
	mu     sync.RWMutex // held to send (read) and to close (write)
	ch     chan audit.Event
	closed bool
}

// startEvents starts the delivery goroutine when OnEvent is set.
func (m *Manager) startEvents() {
	if m.opts.OnEvent == nil {
		return
	}
	q := &eventQueue{ch: make(chan audit.Event, m.opts.EventQueue)}
	m.events = q
	m.goBackground(func() {
		for ev := range q.ch {
			m.deliver(ev)
		}
	})
}

// deliver calls OnEvent; a panic in it is logged, not fatal.
func (m *Manager) deliver(ev audit.Event) {
	defer func() {
		if r := recover(); r != nil {
			m.logger.Error("session: Options.OnEvent panicked", "panic", r, "event", string(ev.Kind))
		}
	}()
	m.opts.OnEvent(ev)
}

// emit queues ev for OnEvent without waiting; a full queue drops it (and
// counts it).
func (m *Manager) emit(ev audit.Event) {
	q := m.events
	if q == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		m.stats.eventsDropped.Add(1)
		return
	}
	select {
	case q.ch <- ev:
	default:
		m.stats.eventsDropped.Add(1)
	}
}

// closeEvents stops taking events; the delivery goroutine then delivers
// what is queued and returns.
func (m *Manager) closeEvents() {
	q := m.events
	if q == nil {
		return
	}
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
	q.mu.Unlock()
}

// eventsOn reports whether events are delivered: callers skip the work
// of building one otherwise.
func (m *Manager) eventsOn() bool { return m.events != nil }

// event returns an event of kind about the session stored under id, with
// the metadata of r (nil: none).
func (m *Manager) event(kind audit.Kind, reason, id, userID string, r *http.Request) audit.Event {
	ev := audit.Event{Kind: kind, Reason: reason, ID: m.eventID(id), UserID: userID, Time: time.Now()}
	if r != nil {
		ev.IP = clientIP(r, m.opts.TrustProxy)
		ev.UserAgent = r.UserAgent()
		if len(ev.UserAgent) > maxUserAgent {
			ev.UserAgent = strings.ToValidUTF8(ev.UserAgent[:maxUserAgent], "")
		}
		if r.URL != nil {
			ev.Path = r.URL.Path
		}
	}
	return ev
}

// eventID is the id an event shows for a store id: the store id itself,
// or, where that is the token (the express-session mode), what
// Session.ID shows instead.
func (m *Manager) eventID(id string) string {
	if id != "" && m.publicID != nil {
		return m.publicID(id)
	}
	return id
}
