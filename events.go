package session

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Lifecycle events, for an audit trail (SOC 2 and the like ask that the
// start and end of every session be logged): see [Options.OnEvent].
//
// A request never waits for the hook: events go into a bounded queue that
// one goroutine per Manager empties into OnEvent, in order; when the queue
// is full an event is dropped and counted (ManagerStats.EventsDropped),
// and the request goes on. [Manager.Close] delivers what is queued.

// EventKind is what happened to a session: the reason of an [Event].
type EventKind string

// The kinds of [Event].
const (
	// EventCreated: a new session was first stored (not a renewal of
	// one).
	EventCreated EventKind = "created"
	// EventRenewed: a stored session got a new id ([Session.Renew], or
	// [Session.SetUser] with "", Reason "unbound"); PreviousID is the id
	// it had.
	EventRenewed EventKind = "renewed"
	// EventBound: [Session.SetUser] bound the session to UserID (a login);
	// PreviousID is the id it had, "" when it was new.
	EventBound EventKind = "bound"
	// EventDestroyed: [Session.Destroy] ended a stored session (a
	// logout), Reason "logout".
	EventDestroyed EventKind = "destroyed"
	// EventRevoked: the Manager ended sessions on request: Reason
	// "session" ([Manager.RevokeSession]), "user" ([Manager.RevokeUser]),
	// "others" ([Manager.RevokeOtherSessions]), one event per session
	// ended; or "all" ([Manager.RevokeAll]), one event with no ID, for
	// every session at once.
	EventRevoked EventKind = "revoked"
	// EventExpired: a session reached its idle timeout (Reason "idle") or
	// its absolute lifetime ("absolute"); "" when the store cannot tell
	// which (Redis). Reported by the store's cleanup, see
	// [Options.OnEvent].
	EventExpired EventKind = "expired"
	// EventEvicted: a login went over [Options.MaxUserSessions] and this,
	// the user's least recently used session, was ended to make room;
	// Reason "limit".
	EventEvicted EventKind = "evicted"
)

// Event is one step of a session's life, delivered to [Options.OnEvent].
// It never carries a token.
type Event struct {
	// Kind is what happened.
	Kind EventKind
	// Reason details Kind, as each kind's documentation says.
	Reason string
	// ID is the session's store id, as [Session.ID] shows it: a hash of
	// the token, safe to log. It is "" for the one event of
	// [Manager.RevokeAll].
	ID string
	// PreviousID is the id the session had before a renewal (EventRenewed,
	// EventBound); "" otherwise.
	PreviousID string
	// UserID is the user the session is (or was) bound to; "" for an
	// anonymous session, or where the store could not tell (see
	// [RedisStore.WatchExpirations]).
	UserID string
	// Time is when it happened.
	Time time.Time
	// IP, UserAgent and Path describe the request that caused the event
	// (the client's address as [Options.TrustProxy] decides it, its
	// User-Agent header cut to 256 bytes, the URL path): a login, a
	// logout, an administrator's revocation. They are "" where no request
	// did (expirations; a call with a context that is not a request's).
	IP        string
	UserAgent string
	Path      string
}

// String renders the event on one line, for logs.
func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", e.Time.UTC().Format(time.RFC3339Nano), e.Kind)
	for _, f := range [][2]string{{"reason", e.Reason}, {"id", e.ID}, {"previous_id", e.PreviousID}, {"user", e.UserID}, {"ip", e.IP}, {"path", e.Path}} {
		if f[1] != "" {
			fmt.Fprintf(&b, " %s=%q", f[0], f[1])
		}
	}
	return b.String()
}

// eventQueue is a Manager's queue of events for OnEvent.
type eventQueue struct {
	mu     sync.RWMutex // held to send (read) and to close (write)
	ch     chan Event
	closed bool
}

// startEvents starts the delivery goroutine when OnEvent is set.
func (m *Manager) startEvents() {
	if m.opts.OnEvent == nil {
		return
	}
	q := &eventQueue{ch: make(chan Event, m.opts.EventQueue)}
	m.events = q
	m.goBackground(func() {
		for ev := range q.ch {
			m.deliver(ev)
		}
	})
}

// deliver calls OnEvent; a panic in it is logged, not fatal.
func (m *Manager) deliver(ev Event) {
	defer func() {
		if r := recover(); r != nil {
			m.logger.Error("session: Options.OnEvent panicked", "panic", r, "event", string(ev.Kind))
		}
	}()
	m.opts.OnEvent(ev)
}

// emit queues ev for OnEvent without waiting; a full queue drops it (and
// counts it).
func (m *Manager) emit(ev Event) {
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
func (m *Manager) event(kind EventKind, reason, id, userID string, r *http.Request) Event {
	ev := Event{Kind: kind, Reason: reason, ID: m.eventID(id), UserID: userID, Time: time.Now()}
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
