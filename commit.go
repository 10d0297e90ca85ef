package session

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"time"
)

// commit saves what the request changed, once, before the response's
// first byte. It makes no store call at all for a session the handler
// never used or did not change, except a Touch when the idle expiry is due
// to move. The caller holds no lock.
func (s *Session) commit(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.committed {
		return nil
	}
	s.committed = true
	if !s.loaded {
		return nil
	}
	if s.loadErr != nil {
		return s.loadErr
	}
	m := s.m
	ctx := s.ctx
	for _, id := range s.dead {
		if err := m.store.Destroy(ctx, id); err != nil {
			m.stats.errors.Add(1)
			return err
		}
		m.stats.destroys.Add(1)
	}
	now := time.Now()
	exp := m.expiry(s.p.CreatedAt, now)

	switch {
	case s.dirty && s.stored == nil && len(s.values()) == 0 && s.p.UserID == "":
		// A new (or renewed) session left empty is not worth storing;
		// a client still holding a now-dead cookie is told to drop it.
		if s.fromClient && (len(s.dead) > 0 || s.destroyed) {
			m.expireCookie(w, r)
		}
		return nil
	case s.dirty:
		s.stampMeta(r, now)
		gone, err := s.save(ctx, exp)
		if err != nil {
			return err
		}
		if gone {
			// Destroyed by a concurrent request: that request's
			// logout stands.
			return nil
		}
		if s.issue || s.remember || !s.p.Transient {
			m.setCookie(w, r, s, s.p.Transient, exp, now)
		}
	case s.stored != nil && s.p.UserID != "" && m.cas != nil && s.refreshDue(exp, now):
		// A bound session is refreshed with a write of its own bytes
		// (plus its metadata), so that the store's user index follows
		// its expiry; see users.go.
		s.stampMeta(r, now)
		gone, err := s.save(ctx, exp)
		if err != nil {
			return err
		}
		if gone {
			return nil // revoked meanwhile: never bring it back
		}
		if !s.p.Transient {
			m.setCookie(w, r, s, false, exp, now)
		}
	case s.stored != nil && exp.Sub(s.expires) >= m.opts.TouchInterval:
		err := m.store.Touch(ctx, s.id, exp)
		if errors.Is(err, ErrNotFound) {
			return nil // destroyed meanwhile: never bring it back
		}
		if err != nil {
			m.stats.errors.Add(1)
			return err
		}
		m.stats.touches.Add(1)
		if !s.p.Transient {
			m.setCookie(w, r, s, false, exp, now)
		}
	case s.destroyed && s.fromClient:
		m.expireCookie(w, r)
	}
	return nil
}

// save writes the session with one Set, or, when the store can compare
// and set, with one CompareAndSet that on conflict reloads the record,
// re-applies this request's changes and tries again until it succeeds or
// ctx ends. gone reports that the session was destroyed by someone else
// meanwhile, in which case nothing is written.
func (s *Session) save(ctx context.Context, exp time.Time) (gone bool, err error) {
	m := s.m
	data, err := s.encode()
	if err != nil {
		return false, err
	}
	cas := m.cas
	if cas == nil {
		if err := m.store.Set(ctx, s.id, Record{Data: data, Expires: exp, UserID: s.p.UserID}); err != nil {
			m.stats.errors.Add(1)
			return false, err
		}
		m.stats.saves.Add(1)
		return false, nil
	}
	for attempt := 0; ; attempt++ {
		err := cas.CompareAndSet(ctx, s.id, s.stored, Record{Data: data, Expires: exp, UserID: s.p.UserID})
		if err == nil {
			m.stats.saves.Add(1)
			s.stored = data
			return false, nil
		}
		if !errors.Is(err, ErrConflict) {
			m.stats.errors.Add(1)
			return false, err
		}
		m.stats.conflicts.Add(1)
		if s.stored == nil {
			// A new id already taken: only a token collision could do
			// this, which 256 random bits make impossible in practice;
			// a fresh token settles it either way.
			s.newToken()
			continue
		}
		if err := backoff(ctx, attempt); err != nil {
			return false, err
		}
		rec, err := m.store.Get(ctx, s.id)
		if errors.Is(err, ErrNotFound) {
			return true, nil
		}
		if err != nil {
			m.stats.errors.Add(1)
			return false, err
		}
		base, err := m.codec.Decode(rec.Data)
		if err != nil {
			base = Payload{Values: map[string]any{}, CreatedAt: s.p.CreatedAt}
		}
		s.rebase(base)
		s.stored = rec.Data
		if exp2 := m.expiry(s.p.CreatedAt, time.Now()); exp2.Before(exp) {
			exp = exp2
		}
		if data, err = s.encode(); err != nil {
			return false, err
		}
	}
}

// rebase replaces the session's values with base's plus this request's
// own changes: what a concurrent request saved survives unless this one
// changed the same key or cleared the session.
func (s *Session) rebase(base Payload) {
	values := base.Values
	if s.cleared || values == nil {
		values = map[string]any{}
	}
	s.applyOps(values)
	transient := base.Transient
	if s.remember {
		transient = s.p.Transient
	}
	// The binding is base's (an id keeps its user); metadata is this
	// request's when it recorded some, as it is the newer.
	p := Payload{Values: values, CreatedAt: base.CreatedAt, Transient: transient,
		UserID: base.UserID, LastSeen: base.LastSeen, UserAgent: base.UserAgent, IP: base.IP}
	if s.p.LastSeen.After(p.LastSeen) {
		p.LastSeen = s.p.LastSeen
	}
	md := s.m.opts.Metadata
	if md.UserAgent && s.p.UserAgent != "" {
		p.UserAgent = s.p.UserAgent
	}
	if md.ClientIP && s.p.IP != "" {
		p.IP = s.p.IP
	}
	s.p = p
	s.raw = nil
}

func (s *Session) encode() ([]byte, error) {
	var data []byte
	var err error
	if re, ok := s.m.codec.(rawEncoder); ok && s.p.Values == nil && s.raw != nil {
		// The values were never decoded: splice this request's changes
		// into their bytes instead.
		data, err = re.encodeRaw(s.p, s.raw, s.ops)
	} else {
		s.values()
		data, err = s.m.codec.Encode(s.p)
	}
	if err != nil {
		return nil, err
	}
	if len(data) > s.m.opts.MaxSize {
		return nil, ErrTooLarge
	}
	return data, nil
}

// backoff sleeps a little longer on each attempt, with jitter so that
// colliding requests spread out.
func backoff(ctx context.Context, attempt int) error {
	if attempt == 0 {
		return ctx.Err()
	}
	limit := time.Duration(1<<min(attempt, 6)) * 100 * time.Microsecond
	t := time.NewTimer(rand.N(limit) + 50*time.Microsecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
