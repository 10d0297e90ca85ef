package session

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/sessionkit/session/audit"
)

// outcome is what a flush did that the client must hear about.
type outcome int

const (
	unchanged outcome = iota // nothing the client must hear about
	written                  // saved: the token goes to the client
	touched                  // expiry moved: a persistent cookie is re-sent
	emptied                  // the client's session ended, none replaced it
)

// commit saves what the request changed, once, before the response's
// first byte, and sets the response's session headers. It makes no store
// call at all for a session the handler never used or did not change,
// except a Touch when the idle expiry is due to move. The caller holds no
// lock.
func (s *Session) commit(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.has(stCommitted) {
		return nil
	}
	s.st |= stCommitted
	if !s.st.has(stLoaded) {
		return nil // untouched: the response does not depend on it
	}
	m := s.m
	h := w.Header()
	m.vary(h, &s.hdr)
	if s.loadErr != nil {
		return s.loadErr
	}
	if s.flushErr != nil {
		return s.flushErr
	}
	now := time.Now()
	out, err := s.flush(s.ctx, now, true)
	if err != nil {
		return err
	}
	exp := m.expiry(s.p.CreatedAt, now)
	switch {
	case s.st.has(stWrote) && (s.st.has(stIssue) || s.st.has(stRemember) || !s.p.Transient):
		// The expiry the write stored (see writeExpiry), so that the
		// cookie and the record expire together.
		m.sendToken(w, r, s, s.p.Transient, s.expires, now)
	case out == touched && !s.p.Transient:
		m.sendToken(w, r, s, false, exp, now)
	case out == emptied:
		m.expireToken(w, r, s)
	case s.st.has(stFromClient) && s.value == "" && s.stored != nil && !s.st.has(stGone):
		// The client's value verified with an older key (rotate): it
		// is re-signed on this response, not only on the next write or
		// touch, so that retiring the key logs nobody out.
		m.sendToken(w, r, s, s.p.Transient, s.expires, now)
	}
	privateCache(h, s.st.has(stSentToken))
	return nil
}

// commitContext is the context of the store calls that end a session (a
// destroy, a renew's deletion of the old id, a revocation): the request's
// values without its cancellation, so that what the handler asked for
// reaches the store even when the client has gone or a timeout handler
// gave up, bounded by CommitTimeout instead. Other calls follow the
// request's context, so a slow store never holds a request past its
// deadline for a mere save.
func (m *Manager) commitContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), m.opts.CommitTimeout)
}

// flush makes the store hold what the request changed: it destroys the
// ids to destroy, then saves a changed session. final is the commit's
// flush, which also moves the idle expiry of an unchanged session; a
// flush before the commit (Pop) writes only a change. Callers hold s.mu.
func (s *Session) flush(ctx context.Context, now time.Time, final bool) (outcome, error) {
	m := s.m
	killed := len(s.dead) > 0 || s.renewFrom != ""
	if killed {
		var cancel context.CancelFunc
		ctx, cancel = m.commitContext(ctx)
		defer cancel()
	}
	for len(s.dead) > 0 {
		if err := m.store.Destroy(ctx, s.dead[0]); err != nil {
			m.stats.errors.Add(1)
			return unchanged, err
		}
		m.stats.destroys.Add(1)
		s.dead = s.dead[1:]
	}
	for _, ev := range s.pending {
		m.emit(ev)
	}
	s.pending = nil
	exp := m.expiry(s.p.CreatedAt, now)

	switch {
	case s.st.has(stDirty) && s.stored == nil && s.renewFrom == "" && len(s.values()) == 0 && s.p.UserID == "":
		// A new session left empty is not worth storing; a client still
		// holding a now-dead token is told to drop it.
		if !final {
			s.settle()
		}
		if s.st.has(stFromClient) && (killed || s.st.has(stDestroyed)) {
			return emptied, nil
		}
		return unchanged, nil
	case s.st.has(stDirty):
		s.stampMeta(s.r, now)
		wasNew := s.stored == nil && s.renewFrom == "" && s.prevID == ""
		if s.stored == nil && s.renewFrom == "" {
			// A new session (a renewed one keeps its epoch).
			s.p.Epoch = m.currentEpoch(ctx)
		}
		if gone, err := s.save(ctx, s.writeExpiry(exp)); err != nil || gone {
			return unchanged, err
		}
		if s.st.has(stBound) && m.opts.MaxUserSessions > 0 {
			if err := s.enforceLimit(ctx); err != nil {
				return unchanged, err
			}
		}
		s.emitWrite(wasNew)
		s.st |= stWrote
		if !final {
			s.settle()
		}
		return written, nil
	case !final:
		return unchanged, nil
	case s.stored != nil && s.p.UserID != "" && m.cas != nil && s.refreshDue(exp, now):
		// A bound session is refreshed with a write of its own bytes
		// (plus its metadata), so that the store's user index follows
		// its expiry; see users.go. A session revoked meanwhile makes
		// it fail, so a revoked session stays dead.
		s.stampMeta(s.r, now)
		if gone, err := s.save(ctx, exp); err != nil || gone {
			return unchanged, err
		}
		return touched, nil
	case s.stored != nil && exp.Sub(s.expires) >= m.opts.TouchInterval:
		err := m.store.Touch(ctx, s.id, exp)
		if errors.Is(err, ErrNotFound) {
			s.st |= stGone
			return unchanged, nil // destroyed meanwhile: never bring it back
		}
		if err != nil {
			m.stats.errors.Add(1)
			return unchanged, err
		}
		m.stats.touches.Add(1)
		return touched, nil
	case s.st.has(stDestroyed) && s.st.has(stFromClient):
		return emptied, nil
	}
	return unchanged, nil
}

// writeExpiry is the expiry a write stores: exp, the idle deadline from
// now, unless the record's stored expiry is less than TouchInterval
// behind it, in which case the write keeps that one, as a read-only
// request would (no Touch before it is due). The idle expiry then moves
// at most once per TouchInterval whatever the requests do, and a write
// that changes only values leaves every indexed column as it was, so
// Postgres can update the row in place (a HOT update: no new index
// entries, less WAL). An expiry that must move back (a shorter
// IdleTimeout, the absolute lifetime) always does. Callers hold s.mu.
func (s *Session) writeExpiry(exp time.Time) time.Time {
	if s.stored != nil && s.renewFrom == "" && exp.After(s.expires) && exp.Sub(s.expires) < s.m.opts.TouchInterval {
		return s.expires
	}
	return exp
}

// emitWrite reports what the write of a session that just succeeded
// did: created it, renewed it, or bound it to a user. Callers hold s.mu.
func (s *Session) emitWrite(wasNew bool) {
	m := s.m
	if m.eventsOn() {
		switch {
		case s.prevID != "" && s.st.has(stBound):
			ev := m.event(audit.Bound, "", s.id, s.p.UserID, s.r)
			ev.PreviousID = m.eventID(s.prevID)
			m.emit(ev)
		case s.prevID != "":
			reason := "renew"
			if s.st.has(stUnbound) {
				reason = "unbound"
			}
			ev := m.event(audit.Renewed, reason, s.id, s.p.UserID, s.r)
			ev.PreviousID = m.eventID(s.prevID)
			m.emit(ev)
		case wasNew:
			m.emit(m.event(audit.Created, "", s.id, s.p.UserID, s.r))
			if s.st.has(stBound) {
				m.emit(m.event(audit.Bound, "", s.id, s.p.UserID, s.r))
			}
		}
	}
	s.prevID = ""
	s.st &^= stBound | stUnbound
}

// settle records that the store now holds the session as it stands, after
// a flush before the commit: later changes are merged onto what was
// written. Callers hold s.mu.
func (s *Session) settle() {
	s.values() // the raw bytes no longer hold the session
	s.ops = nil
	s.st &^= stCleared | stDirty
}

// save writes the session with one Set, or, when the store can compare
// and set, with one CompareAndSet that on conflict reloads the record,
// re-applies this request's changes and tries again until it succeeds or
// ctx ends. A renewed session is written under its new id first; then the
// record it was renewed from is deleted only if it is still as read (see
// claim). gone reports that the session was destroyed by someone else
// meanwhile, in which case nothing of it is left in the store.
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
		s.stored, s.expires = data, exp
		return false, nil
	}
	for attempt := 0; ; attempt++ {
		err := cas.CompareAndSet(ctx, s.id, s.stored, Record{Data: data, Expires: exp, UserID: s.p.UserID})
		var base []byte
		switch {
		case err == nil:
			m.stats.saves.Add(1)
			s.stored, s.expires = data, exp
			if s.renewFrom == "" {
				return false, nil
			}
			changed, gone, err := s.claim(ctx)
			if err != nil || gone {
				// The old session was ended meanwhile (or the claim
				// failed): the renewed copy must not outlive it.
				if derr := m.store.Destroy(ctx, s.id); derr != nil && err == nil {
					err = derr
				}
				s.stored = nil
				if err != nil {
					m.stats.errors.Add(1)
					return false, err
				}
				s.lost()
				return true, nil
			}
			if changed == nil {
				return false, nil // the old record is deleted: renewed
			}
			base = changed
			// The old record changed: merge onto it and write again.
		case !errors.Is(err, ErrConflict):
			m.stats.errors.Add(1)
			return false, err
		default:
			m.stats.conflicts.Add(1)
			if s.stored == nil {
				// A new id already taken: only a token collision could
				// do this, which 256 random bits make impossible in
				// practice; a fresh token settles it either way.
				s.newToken()
				continue
			}
			if err := backoff(ctx, attempt); err != nil {
				return false, err
			}
			rec, err := m.store.Get(ctx, s.id)
			if errors.Is(err, ErrNotFound) {
				s.lost()
				return true, nil
			}
			if err != nil {
				m.stats.errors.Add(1)
				return false, err
			}
			base = rec.Data
			s.stored = rec.Data
		}
		p, err := m.decode(base)
		if err != nil && m.opts.KeepUnreadable {
			return false, unreadable(err) // maybe another program's: never overwritten
		}
		if err != nil {
			p = payload{Values: map[string]any{}, CreatedAt: s.p.CreatedAt}
		}
		if err := s.rebase(p); err != nil {
			m.stats.errors.Add(1)
			return false, err
		}
		if exp2 := m.expiry(s.p.CreatedAt, time.Now()); exp2.Before(exp) {
			exp = exp2
		}
		if data, err = s.encode(); err != nil {
			return false, err
		}
	}
}

// claim deletes the record the session was renewed from if it still holds
// the bytes the request read; then changed and gone are zero. gone
// reports that the record is gone: a logout or revocation ended it, which
// the renewal must not undo. When it changed instead (a concurrent request
// saved it), claim returns its new bytes for the caller to merge onto,
// and remembers them for the next attempt. Callers hold s.mu.
func (s *Session) claim(ctx context.Context) (changed []byte, gone bool, err error) {
	m := s.m
	err = m.cas.CompareAndSet(ctx, s.renewFrom, s.renewOld, Record{})
	if err == nil {
		m.stats.destroys.Add(1)
		s.renewFrom, s.renewOld = "", nil
		return nil, false, nil
	}
	if !errors.Is(err, ErrConflict) {
		return nil, false, err
	}
	m.stats.conflicts.Add(1)
	rec, err := m.store.Get(ctx, s.renewFrom)
	if errors.Is(err, ErrNotFound) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	s.renewOld = rec.Data
	return rec.Data, false, nil
}

// lost makes s a fresh, empty session after another request ended it
// while this one was saving: nothing of it is written back, and changes
// made afterwards start a new session. Callers hold s.mu.
func (s *Session) lost() {
	s.st |= stGone
	s.prevID = ""
	s.st &^= stBound | stUnbound
	s.renewFrom, s.renewOld = "", nil
	s.fresh()
	s.st &^= stIssue
	s.ops = nil
	s.st &^= stCleared | stDirty
}

// take writes the session now, with key (already deleted by the caller)
// gone from it, and returns the value key held in the stored session at
// that moment: nil when a concurrent request took it first. v is the value
// this request read. Callers hold s.mu.
func (s *Session) take(key string, v any) (any, error) {
	s.taking, s.taken = key, v
	defer func() { s.taking, s.taken = "", nil }()
	// A save like any other: it follows the request's context (flush
	// detaches what ends a session, as at the commit).
	if _, err := s.flush(s.ctx, time.Now(), false); err != nil || s.st.has(stGone) {
		return nil, err
	}
	return s.taken, nil
}

// rebase replaces the session's values with base's plus this request's
// own changes: what a concurrent request saved survives unless this one
// changed the same key or cleared the session. A key this request read
// and then wrote must still hold the value it read: if not, its Update
// function runs again on the new value, and a plain write fails with
// ErrConflict rather than overwrite a change it never saw. Callers hold
// s.mu.
func (s *Session) rebase(base payload) error {
	values := base.Values
	if s.taking != "" {
		s.taken = values[s.taking] // nil when another request took it
	}
	for k, c := range s.ops {
		rm := s.readOf(k)
		if rm == nil || k == s.taking {
			continue // a Pop takes whatever is there
		}
		bv, ok := values[k]
		if ok == rm.present && reflect.DeepEqual(bv, rm.value) {
			continue
		}
		if c.update == nil {
			return fmt.Errorf("%w: the session's %q changed after this request read it", ErrConflict, k)
		}
		c.value = c.update(bv)
		s.ops[k] = c
		rm.value, rm.present = bv, ok
	}
	if s.st.has(stCleared) || values == nil {
		values = map[string]any{}
	}
	s.applyOps(values)
	transient := base.Transient
	if s.st.has(stRemember) {
		transient = s.p.Transient
	}
	p := payload{Values: values, CreatedAt: base.CreatedAt, Transient: transient,
		UserID: base.UserID, LastSeen: base.LastSeen, UserAgent: base.UserAgent, IP: base.IP, Epoch: base.Epoch}
	if s.renewFrom != "" {
		// Merging onto the record a renewal replaces: the renewed
		// session keeps its own start, binding, epoch and metadata.
		p.CreatedAt, p.UserID, p.Epoch = s.p.CreatedAt, s.p.UserID, s.p.Epoch
		p.LastSeen, p.UserAgent, p.IP = s.p.LastSeen, s.p.UserAgent, s.p.IP
	} else {
		// The binding is base's (an id keeps its user); metadata is
		// this request's when it recorded some, as it is the newer.
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
	}
	s.p = p
	s.raw, s.vals = nil, nil
	return nil
}

func (s *Session) encode() ([]byte, error) {
	var data []byte
	var err error
	if s.rawMode() {
		// The values were never decoded: splice this request's changes
		// into their bytes instead.
		set := make(map[string]any, len(s.ops))
		var deleted []string
		for k, c := range s.ops {
			if c.deleted {
				deleted = append(deleted, k)
			} else {
				set[k] = c.value
			}
		}
		if s.vals != nil {
			// The package's JSON codec, on values load checked.
			data, err = patchValues(s.vals, s.p.meta(), set, deleted)
		} else {
			data, err = s.m.lazy.Patch(s.raw, s.p.meta(), set, deleted)
		}
	} else {
		data, err = s.m.codec.Encode(s.p.meta(), s.values())
	}
	if err != nil {
		return nil, err
	}
	if len(data) > s.m.opts.MaxSize {
		return nil, ErrTooLarge
	}
	return data, nil
}

// unreadable is err, a Codec's error on a record kept as it is
// (Options.KeepUnreadable), wrapping ErrBadPayload whatever the codec.
func unreadable(err error) error {
	if errors.Is(err, ErrBadPayload) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrBadPayload, err)
}

// backoff sleeps a little longer on each attempt, with jitter so that
// colliding requests spread out.
func backoff(ctx context.Context, attempt int) error {
	if attempt == 0 {
		return ctx.Err()
	}
	limit := time.Duration(1<<min(attempt, 6)) * 100 * time.Microsecond
	return rest(ctx, rand.N(limit)+50*time.Microsecond)
}

// load reads the session from the store on first use. Callers hold s.mu.
func (s *Session) load() error {
	if s.st.has(stLoaded) {
		return s.loadErr
	}
	s.st |= stLoaded
	if !s.st.has(stFromClient) {
		s.fresh()
		return nil
	}
	rec, err := s.m.store.Get(s.ctx, s.id)
	switch {
	case errors.Is(err, ErrNotFound):
		s.m.stats.loadMisses.Add(1)
		s.fresh()
		return nil
	case err != nil:
		s.m.stats.errors.Add(1)
		s.loadErr = err
		s.p.Values = map[string]any{}
		return err
	}
	s.m.stats.loads.Add(1)
	var p payload
	var raw []byte
	var vals []byte
	switch {
	case s.m.recordMemo != nil:
		// The package's JSON codec (see memo.go).
		p, vals, err = s.m.decodeOwn(rec.Data)
		raw = rec.Data
	case s.m.lazy != nil:
		var meta []byte
		if meta, err = s.m.lazy.DecodeMeta(rec.Data); err == nil {
			p, err = parseMeta(meta, false)
			raw = rec.Data
		}
	default:
		p, err = s.m.decode(rec.Data)
	}
	if err != nil && s.m.opts.KeepUnreadable {
		// Maybe another program's record (see Options.KeepUnreadable):
		// never destroyed or overwritten by a request that cannot read
		// it.
		err = unreadable(err)
		s.loadErr = err
		s.p.Values = map[string]any{}
		return err
	}
	if err != nil {
		// Garbage in the store must not become a 500 on every request:
		// drop the record and start over.
		s.m.logger.Warn("session: stored session does not decode; destroying it and starting a fresh session", "error", err)
		s.dead = append(s.dead, s.id)
		s.fresh()
		return nil
	}
	if !p.CreatedAt.Add(s.m.opts.Lifetime).After(time.Now()) {
		s.dead = append(s.dead, s.id)
		if s.m.eventsOn() {
			s.pending = append(s.pending, s.m.event(audit.Expired, "absolute", s.id, p.UserID, nil))
		}
		s.fresh()
		return nil
	}
	if s.m.staleEpoch(s.ctx, p.Epoch) {
		// Ended by RevokeAll: gone, as if it had expired.
		s.dead = append(s.dead, s.id)
		s.fresh()
		return nil
	}
	s.stored, s.expires, s.p, s.raw, s.vals = rec.Data, rec.Expires, p, raw, vals
	s.storedUser = p.UserID
	return nil
}

// values returns the values map, decoding the raw values first if that
// has not happened. Callers hold s.mu.
func (s *Session) values() map[string]any {
	if s.p.Values == nil {
		_, v, err := s.m.codec.Decode(s.raw)
		if err != nil || v == nil {
			// DecodeMeta accepted these bytes; only a codec that
			// disagrees with itself gets here.
			v = map[string]any{}
		}
		// While the values were raw, changes went to s.ops only.
		s.applyOps(v)
		s.p.Values, s.raw, s.vals = v, nil, nil
	}
	return s.p.Values
}

// applyOps writes this request's changes onto values. Callers hold s.mu.
func (s *Session) applyOps(values map[string]any) {
	for k, c := range s.ops {
		if c.deleted {
			delete(values, k)
		} else {
			values[k] = c.value
		}
	}
}

// stampMeta records the request's metadata in a bound session's payload.
// Callers hold s.mu and are about to write the session anyway.
func (s *Session) stampMeta(r *http.Request, now time.Time) {
	md := s.m.opts.Metadata
	if s.p.UserID == "" {
		return
	}
	if md.LastSeen {
		s.p.LastSeen = now
	}
	if md.UserAgent {
		ua := r.UserAgent()
		if len(ua) > maxUserAgent {
			ua = strings.ToValidUTF8(ua[:maxUserAgent], "")
		}
		s.p.UserAgent = ua
	}
	if md.ClientIP {
		s.p.IP = clientIP(r, s.m.opts.TrustProxy)
	}
}

// refreshDue reports whether an unchanged bound session must be written to
// move its idle expiry or its last-seen time.
func (s *Session) refreshDue(exp, now time.Time) bool {
	return exp.Sub(s.expires) >= s.m.opts.TouchInterval ||
		(s.m.opts.Metadata.LastSeen && now.Sub(s.p.LastSeen) >= s.m.opts.TouchInterval)
}

// decode reads a whole record: its meta and its values.
func (m *Manager) decode(data []byte) (payload, error) {
	meta, values, err := m.codec.Decode(data)
	if err != nil {
		return payload{}, err
	}
	p, err := parseMeta(meta, true)
	if err != nil {
		return payload{}, err
	}
	if values == nil {
		values = map[string]any{}
	}
	p.Values = values
	return p, nil
}
