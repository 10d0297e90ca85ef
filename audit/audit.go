// Package audit holds the lifecycle events of package session: what a
// Manager reports to session.Options.OnEvent when a session is created,
// renewed, bound to a user, destroyed, revoked, expired or evicted, for an
// audit trail (SOC 2 and the like ask that the start and end of every
// session be logged). An event never carries a token.
package audit

import (
	"fmt"
	"strings"
	"time"
)

// Kind is what happened to a session.
type Kind string

// The kinds of [Event].
const (
	// Created: a new session was first stored (not a renewal of
	// one).
	Created Kind = "created"
	// Renewed: a stored session got a new id (session.Session.Renew, or
	// session.Session.SetUser with "", Reason "unbound"); PreviousID is the id
	// it had.
	Renewed Kind = "renewed"
	// Bound: session.Session.SetUser bound the session to UserID (a login);
	// PreviousID is the id it had, "" when it was new.
	Bound Kind = "bound"
	// Destroyed: session.Session.Destroy ended a stored session (a
	// logout), Reason "logout".
	Destroyed Kind = "destroyed"
	// Revoked: the Manager ended sessions on request: Reason
	// "session" (session.Manager.RevokeSession), "user" (session.Manager.RevokeUser),
	// "others" (session.Manager.RevokeOtherSessions), one event per session
	// ended; or "all" (session.Manager.RevokeAll), one event with no ID, for
	// every session at once.
	Revoked Kind = "revoked"
	// Expired: a session reached its idle timeout (Reason "idle") or
	// its absolute lifetime ("absolute"); "" when the store cannot tell
	// which (Redis). Reported by the store's cleanup, see
	// session.Options.OnEvent.
	Expired Kind = "expired"
	// Evicted: a login went over session.Options.MaxUserSessions and this,
	// the user's least recently used session, was ended to make room;
	// Reason "limit".
	Evicted Kind = "evicted"
)

// Event is one step of a session's life, delivered to session.Options.OnEvent.
// It never carries a token.
type Event struct {
	// Kind is what happened.
	Kind Kind
	// Reason details Kind, as each kind's documentation says.
	Reason string
	// ID is the session's store id, as session.Session.ID shows it: a hash of
	// the token, safe to log. It is "" for the one event of
	// session.Manager.RevokeAll.
	ID string
	// PreviousID is the id the session had before a renewal (Renewed,
	// Bound); "" otherwise.
	PreviousID string
	// UserID is the user the session is (or was) bound to; "" for an
	// anonymous session, or where the store could not tell (see
	// session.RedisStore.WatchExpirations).
	UserID string
	// Time is when it happened.
	Time time.Time
	// IP, UserAgent and Path describe the request that caused the event
	// (the client's address as session.Options.TrustProxy decides it, its
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
