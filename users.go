package session

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sessionkit/session/audit"
)

// A user's sessions: binding a session to a user at login, listing the
// user's sessions ("your devices"), and ending them all ("sign out
// everywhere") or one.
//
// The binding lives in two places. The payload carries the user id (and the
// metadata below), so a request knows its session's user from the one read
// it already makes. Every write of a bound session also passes the user id
// to the store as Record.UserID, and a store implementing UserIndex keeps
// its own index from it (a Postgres column with a partial index, a Redis
// sorted set per user, a map in memory). An unbound session carries
// neither: its requests make exactly the store calls they made before users
// existed.
//
// A bound session is refreshed (its idle expiry moved, its last-seen time
// recorded) with a CompareAndSet of its own bytes instead of a Touch, once
// per TouchInterval at most. That write carries the user id, so the Redis
// index's expiry follows the session's; it is one round trip like Touch,
// and a session revoked meanwhile makes it fail, so a revoked session
// stays dead for requests in flight.

// errNoUserIndex is what the Manager's user methods return when its store
// does not implement [UserIndex]: an [errors.ErrUnsupported].
var errNoUserIndex = fmt.Errorf("session: the store cannot find a user's sessions (it does not implement session.UserIndex): %w", errors.ErrUnsupported)

// ErrInvalidUserID is returned by [Session.SetUser] and the Manager's user
// methods for a user id that breaks the rule in [Session.SetUser]: such an
// id could be rewritten by a codec or refused by a backend, and a session
// bound to it could then not be found to be revoked.
var ErrInvalidUserID = errors.New("session: invalid user id")

// maxUserIDLen is the longest user id [Session.SetUser] accepts, in bytes.
const maxUserIDLen = 256

// checkUserID enforces the user id rule of [Session.SetUser].
func checkUserID(userID string) error {
	switch {
	case userID == "":
		return fmt.Errorf("%w: empty", ErrInvalidUserID)
	case len(userID) > maxUserIDLen:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidUserID, len(userID), maxUserIDLen)
	case !utf8.ValidString(userID):
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidUserID)
	}
	for _, r := range userID {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: control character %U", ErrInvalidUserID, r)
		}
	}
	return nil
}

// Metadata chooses what a session bound to a user ([Session.SetUser])
// records about its client, for the user's list of sessions
// ([Manager.UserSessions]). The creation time is always known (the
// absolute lifetime counts from it); everything else is off by default.
//
// Privacy: a User-Agent and an IP address are personal data (GDPR, CCPA).
// Turn on only what you show the user, say so in your privacy notice, and
// remember that they are kept in the store, readable by whoever can read
// it, for as long as the session lives. Anonymous sessions never record
// any of it.
type Metadata struct {
	// LastSeen records when the client last made a request, to within
	// TouchInterval: it is updated when the session is written anyway,
	// and otherwise by the throttled refresh (at most once per
	// TouchInterval), never by a write of its own on every request.
	LastSeen bool
	// UserAgent records the client's User-Agent header (its first 256
	// bytes), refreshed like LastSeen.
	UserAgent bool
	// ClientIP records the client's IP address: the connection's, or,
	// with [Options.TrustProxy], the last address in X-Forwarded-For (the
	// one your proxy appended; earlier entries are the client's claim).
	// Refreshed like LastSeen.
	ClientIP bool
}

// maxUserAgent bounds the stored User-Agent.
const maxUserAgent = 256

// UserSession describes one of a user's live sessions.
type UserSession struct {
	// Handle names the session for [Manager.RevokeSession]. It is a
	// hash of the store id (itself a hash of the token): safe to put in a
	// page or a form, and worth nothing as a cookie.
	Handle string
	// Current reports that this is the session of the request whose
	// context was passed.
	Current bool
	// CreatedAt is when the session was created or last renewed (login).
	CreatedAt time.Time
	// Expires is when the session ends if its client stays idle.
	Expires time.Time
	// LastSeen, UserAgent and IP are recorded as [Options.Metadata] asks;
	// zero when off.
	LastSeen  time.Time
	UserAgent string
	IP        string
}

// clientIP is the request's client address: the connection's, or behind a
// trusted proxy the last X-Forwarded-For entry.
func clientIP(r *http.Request, trustProxy bool) string {
	if trustProxy {
		if vs := r.Header.Values("X-Forwarded-For"); len(vs) > 0 {
			last := vs[len(vs)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if a, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
				return a.Unmap().String()
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().String()
	}
	return ""
}

// handle maps a store id to its [UserSession.Handle].
func handle(id string) string {
	sum := sha256.Sum256([]byte("sessionkit handle\x00" + id))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// userIndex returns the store's UserIndex, checking userID first.
func (m *Manager) userIndex(userID string) (UserIndex, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	ui, ok := m.store.(UserIndex)
	if !ok {
		return nil, errNoUserIndex
	}
	return ui, nil
}

// current returns the session of the request ctx belongs to, if it is one
// of m's.
func (m *Manager) current(ctx context.Context) *Session {
	if s, ok := ctx.Value(ctxKey{}).(*Session); ok && s.m == m {
		return s
	}
	return nil
}

// UserSessions lists the live sessions bound to userID, most recently
// seen (or created) first. Pass the request's context (r.Context()) to
// have the request's own session marked Current. It reads each session
// once: one indexed query on Postgres, one ZRANGE and one pipeline on
// Redis.
func (m *Manager) UserSessions(ctx context.Context, userID string) ([]UserSession, error) {
	ui, err := m.userIndex(userID)
	if err != nil {
		return nil, err
	}
	recs, err := ui.ListUser(ctx, userID)
	if err != nil {
		m.stats.errors.Add(1)
		return nil, err
	}
	curID := ""
	if cur := m.current(ctx); cur != nil {
		cur.mu.Lock()
		if cur.st.has(stFromClient) || cur.stored != nil {
			curID = cur.id
		}
		cur.mu.Unlock()
	}
	out := make([]UserSession, 0, len(recs))
	for _, rec := range recs {
		us := UserSession{Handle: handle(rec.ID), Current: rec.ID == curID, Expires: rec.Expires}
		if p, err := m.decode(rec.Data); err == nil {
			if m.staleEpoch(ctx, p.Epoch) {
				continue // ended by RevokeAll
			}
			us.CreatedAt, us.LastSeen, us.UserAgent, us.IP = p.CreatedAt, p.LastSeen, p.UserAgent, p.IP
		}
		out = append(out, us)
	}
	seen := func(u UserSession) time.Time {
		if u.LastSeen.After(u.CreatedAt) {
			return u.LastSeen
		}
		return u.CreatedAt
	}
	slices.SortStableFunc(out, func(a, b UserSession) int { return seen(b).Compare(seen(a)) })
	return out, nil
}

// RevokeUser ends every session bound to userID and returns how many it
// ended: after a password change, an account ban, or a "sign out
// everywhere" click. If the request whose context is passed has one of
// them, its cookie is expired too.
//
// It is one bounded operation on each built-in store whatever the number
// of sessions (one DELETE on Postgres; a ZRANGE, one pipeline and a ZREM
// on Redis; one pass in memory), and a request in flight on a revoked
// session cannot write it back, even one that is renewing it: its next
// request gets a fresh anonymous session. Like a logout, it is not cut
// short by ctx's cancellation (a client that went away): it runs to the
// end, bounded by [Options.CommitTimeout].
func (m *Manager) RevokeUser(ctx context.Context, userID string) (int, error) {
	return m.revoke(ctx, userID, false)
}

// RevokeOtherSessions is [Manager.RevokeUser] that spares the session of
// the request whose context is passed: "sign out other devices".
func (m *Manager) RevokeOtherSessions(ctx context.Context, userID string) (int, error) {
	return m.revoke(ctx, userID, true)
}

func (m *Manager) revoke(ctx context.Context, userID string, spareCurrent bool) (int, error) {
	ui, err := m.userIndex(userID)
	if err != nil {
		return 0, err
	}
	ctx, cancel := m.commitContext(ctx)
	defer cancel()
	cur := m.current(ctx)
	except := ""
	if cur != nil && spareCurrent {
		cur.mu.Lock()
		except = cur.id
		cur.mu.Unlock()
	}
	ids, err := ui.DestroyUser(ctx, userID, except)
	n := len(ids)
	m.stats.destroys.Add(int64(n))
	if m.eventsOn() {
		reason := "user"
		if spareCurrent {
			reason = "others"
		}
		r := cur.request()
		for _, id := range ids {
			m.emit(m.event(audit.Revoked, reason, id, userID, r))
		}
	}
	if err != nil {
		m.stats.errors.Add(1)
		return n, err
	}
	if cur != nil && !spareCurrent {
		cur.endIfUser(userID)
	}
	return n, nil
}

// RevokeSession ends the session of userID named by handle (from
// [Manager.UserSessions]) and returns how many it ended: 1, or 0 when no
// live session of that user has the handle, so a handle never ends another
// user's session. Like [Manager.RevokeUser], it is not cut short by ctx's
// cancellation.
func (m *Manager) RevokeSession(ctx context.Context, userID, handleValue string) (int, error) {
	ui, err := m.userIndex(userID)
	if err != nil {
		return 0, err
	}
	ctx, cancel := m.commitContext(ctx)
	defer cancel()
	recs, err := ui.ListUser(ctx, userID)
	if err != nil {
		m.stats.errors.Add(1)
		return 0, err
	}
	i := slices.IndexFunc(recs, func(r UserRecord) bool { return handle(r.ID) == handleValue })
	if i < 0 {
		return 0, nil
	}
	id := recs[i].ID
	if err := m.store.Destroy(ctx, id); err != nil {
		m.stats.errors.Add(1)
		return 0, err
	}
	m.stats.destroys.Add(1)
	cur := m.current(ctx)
	if m.eventsOn() {
		m.emit(m.event(audit.Revoked, "session", id, userID, cur.request()))
	}
	if cur != nil {
		cur.mu.Lock()
		mine := cur.id == id
		cur.mu.Unlock()
		if mine {
			cur.endIfUser(userID)
		}
	}
	return 1, nil
}
