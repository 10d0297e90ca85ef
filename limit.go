package session

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/sessionkit/session/audit"
)

// The per-user session limit (Options.MaxUserSessions).
//
// A login writes its session first and then lists the user's sessions;
// what is over the limit is ended after that. Since every login lists
// after its own write, the last login to list sees every session written
// before, and ends all but MaxUserSessions of them; so once concurrent
// logins have finished, at most MaxUserSessions are live, on every store
// and any number of processes. Which ones:
//
//   - evicting (the default): every login keeps its own session and the
//     most recently used others, by one order all logins agree on, so no
//     login ends a session another keeps; each session ended is reported
//     once (audit.Evicted), as the one compare-and-set delete that ended it
//     succeeded;
//   - refusing: a login that finds the user over the limit after its own
//     write ends its own session and fails. SetUser checks first, so the
//     common case fails before anything is written, with an error the
//     handler can show.

// ErrTooManySessions is returned when a login would give its user more
// live sessions than [Options.MaxUserSessions] allows and
// [Options.RefuseOverLimit] is set: by [Session.SetUser], or, when
// concurrent logins raced past that check, by the save (the default error
// handler answers 403 Forbidden). The user has to end one of their
// sessions first ([Manager.RevokeSession], "sign out other devices").
var ErrTooManySessions = errors.New("session: the user already has as many sessions as allowed; sign out on another device first")

// limitedSession is one of a user's sessions as the limit sees it.
type limitedSession struct {
	id   string
	data []byte
	used time.Time // when it was last used, as far as the store tells
}

// countedSessions lists the user's sessions that count against the
// limit: live, and not ended by RevokeAll.
func (m *Manager) countedSessions(ctx context.Context, userID string) ([]limitedSession, error) {
	recs, err := m.store.(UserIndex).ListUser(ctx, userID)
	if err != nil {
		m.stats.errors.Add(1)
		return nil, err
	}
	out := make([]limitedSession, 0, len(recs))
	for _, r := range recs {
		ls := limitedSession{id: r.ID, data: r.Data, used: r.Expires.Add(-m.opts.IdleTimeout)}
		if p, err := m.decodeMeta(r.Data); err == nil {
			if m.staleEpoch(ctx, p.Epoch) {
				continue
			}
			// The last use is known to within TouchInterval: the
			// last-seen time when Metadata records it, else the idle
			// expiry the last refresh set; never before the login.
			ls.used = maxTime(ls.used, p.CreatedAt, p.LastSeen)
		}
		out = append(out, ls)
	}
	return out, nil
}

func maxTime(ts ...time.Time) time.Time {
	var t time.Time
	for _, u := range ts {
		if u.After(t) {
			t = u
		}
	}
	return t
}

// decodeMeta returns what the manager knows of a record, without its
// values where the codec can skip them.
func (m *Manager) decodeMeta(data []byte) (payload, error) {
	if m.lazy != nil {
		meta, err := m.lazy.DecodeMeta(data)
		if err != nil {
			return payload{}, err
		}
		return parseMeta(meta, false)
	}
	return m.decode(data)
}

// roomFor is SetUser's check under RefuseOverLimit: ErrTooManySessions
// when userID already has MaxUserSessions sessions.
func (m *Manager) roomFor(ctx context.Context, userID string) error {
	if m.opts.MaxUserSessions == 0 || !m.opts.RefuseOverLimit {
		return nil
	}
	list, err := m.countedSessions(ctx, userID)
	if err != nil {
		return err
	}
	if len(list) >= m.opts.MaxUserSessions {
		return ErrTooManySessions
	}
	return nil
}

// enforceLimit runs after a login stored s (bound by SetUser in this
// request): it ends what is over the limit, or, refusing, s itself.
// Callers hold s.mu.
func (s *Session) enforceLimit(ctx context.Context) error {
	m := s.m
	ctx, cancel := m.commitContext(ctx)
	defer cancel()
	list, err := m.countedSessions(ctx, s.p.UserID)
	if err != nil {
		if m.opts.RefuseOverLimit {
			s.endOwn(ctx)
			return err
		}
		// The login stands; the next one ends what is over.
		m.logger.Warn("session: could not list the user's sessions to apply MaxUserSessions", "error", err)
		return nil
	}
	limit := m.opts.MaxUserSessions
	if len(list) <= limit {
		return nil
	}
	if m.opts.RefuseOverLimit {
		s.endOwn(ctx)
		return ErrTooManySessions
	}
	// This login's session first, then the most recently used; ties by
	// id, so that concurrent logins agree on the order.
	slices.SortFunc(list, func(a, b limitedSession) int {
		switch {
		case a.id == s.id:
			return -1
		case b.id == s.id:
			return 1
		}
		if c := b.used.Compare(a.used); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	for _, ls := range list[limit:] {
		if err := m.evict(ctx, s, ls); err != nil {
			return err
		}
	}
	return nil
}

// endOwn deletes the session this request just stored, refused by the
// limit: the response fails, and the client keeps no cookie for it.
// Callers hold s.mu.
func (s *Session) endOwn(ctx context.Context) {
	if err := s.m.store.Destroy(ctx, s.id); err != nil {
		s.m.stats.errors.Add(1)
		s.m.logger.Warn("session: could not delete a session refused by MaxUserSessions; it expires unused", "error", err)
	} else {
		s.m.stats.destroys.Add(1)
	}
	s.stored = nil
	s.prevID = ""
	s.st &^= stBound | stUnbound
}

// evict ends ls, one of the user's sessions over the limit, and reports
// it, unless another request ended it first. With a compare-and-set
// store the delete only succeeds on the record as listed (read again
// when a request changed it meanwhile), so that each eviction is
// reported exactly once.
func (m *Manager) evict(ctx context.Context, s *Session, ls limitedSession) error {
	data := ls.data
	for attempt := 0; ; attempt++ {
		var err error
		if m.cas != nil {
			err = m.cas.CompareAndSet(ctx, ls.id, data, Record{})
		} else {
			err = m.store.Destroy(ctx, ls.id)
		}
		if err == nil {
			m.stats.destroys.Add(1)
			if m.eventsOn() {
				m.emit(m.event(audit.Evicted, "limit", ls.id, s.p.UserID, s.r))
			}
			return nil
		}
		if !errors.Is(err, ErrConflict) || attempt == 5 {
			m.stats.errors.Add(1)
			return err
		}
		m.stats.conflicts.Add(1)
		rec, err := m.store.Get(ctx, ls.id)
		if errors.Is(err, ErrNotFound) {
			return nil // ended by someone else (another login, a logout)
		}
		if err != nil {
			m.stats.errors.Add(1)
			return err
		}
		data = rec.Data
	}
}
