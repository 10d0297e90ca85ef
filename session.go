package session

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sessionkit/session/audit"
)

// ErrHeadersSent is returned by a change to a session after its response
// headers were sent: the change cannot be saved because the cookie that
// would carry it has already gone out. It is also logged.
var ErrHeadersSent = errors.New("session: changed after the response headers were sent")

// ErrNoSession is returned by every change to the session of a request
// that did not pass through [Manager.Handler].
var ErrNoSession = errors.New("session: no session in this request (is the handler wrapped by Manager.Handler?)")

// ErrTooLarge is reported when a session's encoded values exceed
// [Options.MaxSize]. The default error handler answers 413.
var ErrTooLarge = errors.New("session: values exceed the size limit")

// Session is one request's view of a session. Handlers get it with [From].
// It loads from the store on first use, not before, and is saved before
// the first byte of the response only if it changed.
//
// A Session is safe for use by several goroutines of the same request.
// Getters return the zero value when the key is absent, holds another
// type, or the session could not be loaded (see [Session.Err]).
type Session struct {
	m    *Manager
	ctx  context.Context // &vctx in a request
	vctx sessionCtx
	rw   responseWriter // the writer the handler gets
	hdr  [2]string      // the default Vary and Cache-Control values (see vary)
	r    *http.Request

	mu       sync.Mutex
	st       state  // what has happened to the session in this request
	token    string // what the client holds (verified) or a new one
	value    string // token signed for the client, "" until needed
	id       string // the store's id: m.storeID(token)
	loadErr  error
	flushErr error             // a store write made before commit (Pop) failed
	stored   []byte            // the record's bytes as loaded or last written; nil if none
	expires  time.Time         // the record's expiry as loaded or last written
	p        payload           // p.Values is nil while the values are still raw
	raw      []byte            // the record, values undecoded (see Codec's optional methods)
	vals     []byte            // with the package's JSON codec: raw's values object, for lookups without a rescan
	ops      map[string]change // this request's changes not yet written, for merging
	dead     []string          // store ids to destroy at commit
	// renewFrom is the store id this session was renewed from, with its
	// bytes as read: the renewal only stands if that record is still
	// there at commit (see flush), so a logout racing a renew wins.
	renewFrom string
	renewOld  []byte
	// taking is the key a Pop is taking by writing the session now;
	// rebase records what the stored session held under it.
	taking  string
	taken   any
	reads   []readMark
	readBuf [4]readMark // reads' first elements, without an allocation

	// For events and the per-user limit (events.go, limit.go).
	prevID     string        // the stored id this request renewed from, for audit.Renewed/audit.Bound
	storedUser string        // the user of the record as loaded
	pending    []audit.Event // to emit once the ids in dead are destroyed
}

// state is what has happened to a session in its request, one bit each:
// how the client came, what the handler did, what the commit did. The
// commit reads it to decide what to write and what to tell the client.
type state uint16

const (
	// How the client came.
	stFromClient state = 1 << iota // the token came from a valid cookie or header
	stViaHeader                    // the client uses the header transport (Options.TokenHeader)
	// What the handler did.
	stLoaded    // the store was read, or the session made fresh
	stDirty     // something changed: the session must be saved
	stCleared   // Clear ran: the stored values are not merged back
	stIssue     // the token is new: it must be sent to the client
	stRemember  // the remember-me choice changed
	stDestroyed // Destroy ran
	// What the commit (or an early flush) did.
	stWrote     // this request saved the session: the cookie follows
	stGone      // another request destroyed or revoked it meanwhile
	stSentToken // a token, or its expiry, is in the response
	stCommitted // commit ran: the session no longer changes
	// For events and the per-user limit (events.go, limit.go).
	stBound   // SetUser bound the session to a user in this request
	stUnbound // SetUser("") unbound it
)

// has reports whether every bit of f is set.
func (s state) has(f state) bool { return s&f == f }

type change struct {
	value   any
	deleted bool
	update  func(old any) any // set by Update: re-run on a newer value
}

// readMark is a key's value as this request first read it, before writing
// it: if the stored value has changed by the time the request saves, the
// write would overwrite a change it never saw (see rebase).
type readMark struct {
	key     string
	value   any
	present bool
}

// From returns the session of a request served through [Manager.Handler].
// For any other request it returns a session that holds nothing and
// refuses changes with [ErrNoSession]; it never returns nil.
func From(r *http.Request) *Session { return FromContext(r.Context()) }

// FromContext is [From] for a context derived from the request's.
func FromContext(ctx context.Context) *Session {
	if s, ok := ctx.Value(ctxKey{}).(*Session); ok {
		return s
	}
	return &Session{st: stLoaded, loadErr: ErrNoSession, p: payload{Values: map[string]any{}}}
}

type ctxKey struct{}

// sessionCtx is the request's context with its session under ctxKey, as
// context.WithValue would make it, but kept inside the Session.
type sessionCtx struct {
	context.Context
	s *Session
}

func (c *sessionCtx) Value(key any) any {
	if key == (ctxKey{}) {
		return c.s
	}
	return c.Context.Value(key)
}

// rawMode reports that the values are still the stored bytes, with this
// request's changes in s.ops on top. Callers hold s.mu.
func (s *Session) rawMode() bool { return s.p.Values == nil && s.raw != nil }

// lookup returns the value under key without building the map when the
// values are still raw. Callers hold s.mu.
func (s *Session) lookup(key string) (any, bool) {
	if s.rawMode() {
		if c, ok := s.ops[key]; ok {
			return c.value, !c.deleted
		}
		if s.vals != nil {
			return lookupJSON(s.vals, key)
		}
		return s.m.lazy.Lookup(s.raw, key)
	}
	v, ok := s.p.Values[key]
	return v, ok
}

// fresh makes s a new, empty session under a new token: a client never
// chooses its id.
func (s *Session) fresh() {
	s.newToken()
	s.stored = nil
	s.expires = time.Time{}
	s.p = payload{Values: map[string]any{}, CreatedAt: time.Now()}
	s.raw, s.vals = nil, nil
}

// newToken gives the session a new random token (and so a new id), to be
// sent to the client. Callers hold s.mu.
func (s *Session) newToken() {
	if s.m.newToken != nil {
		s.token = s.m.newToken()
	} else {
		s.token = newToken()
	}
	s.id = s.m.storeID(s.token)
	s.value = ""
	s.st |= stIssue
}

// Err returns the error that kept the session from loading, if any,
// loading it first if that has not happened yet.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.load(); err != nil {
		return err
	}
	return s.flushErr
}

// Get returns the value under key, or nil. With the JSON codec, numbers
// come back as json.Number; prefer the typed getters.
func (s *Session) Get(key string) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.load() != nil {
		return nil
	}
	v, ok := s.lookup(key)
	s.markRead(key, v, ok)
	return v
}

// markRead remembers the value a key had when the request first read it,
// unless the request itself wrote it first. Callers hold s.mu.
func (s *Session) markRead(key string, v any, ok bool) {
	if _, mine := s.ops[key]; mine || s.st.has(stCleared) || s.st.has(stCommitted) {
		return
	}
	for i := range s.reads {
		if s.reads[i].key == key {
			return
		}
	}
	if s.reads == nil {
		s.reads = s.readBuf[:0]
	}
	s.reads = append(s.reads, readMark{key: key, value: v, present: ok})
}

// readOf returns the read mark of key, if the request read it before
// writing it. Callers hold s.mu.
func (s *Session) readOf(key string) *readMark {
	for i := range s.reads {
		if s.reads[i].key == key {
			return &s.reads[i]
		}
	}
	return nil
}

// Has reports whether the session holds key.
func (s *Session) Has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.load() != nil {
		return false
	}
	v, ok := s.lookup(key)
	s.markRead(key, v, ok)
	return ok
}

// Keys returns the session's keys in sorted order.
func (s *Session) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.load() != nil {
		return nil
	}
	keys := make([]string, 0, len(s.values()))
	for k := range s.values() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// mutable loads the session and checks that it can still change. Callers
// hold s.mu.
func (s *Session) mutable() error {
	if err := s.load(); err != nil {
		return err
	}
	if s.st.has(stCommitted) {
		s.m.logger.Error("session: change after the response headers were sent is not saved; change the session before writing the response")
		return ErrHeadersSent
	}
	return nil
}

func (s *Session) record(key string, c change) {
	if s.ops == nil {
		s.ops = make(map[string]change)
	}
	s.ops[key] = c
	s.st |= stDirty
}

// Put sets key to value. The value must be encodable by the manager's
// codec (with the default JSON codec: anything encoding/json accepts).
// It returns ErrHeadersSent after the response headers were sent, and the
// load error if the session could not be loaded.
func (s *Session) Put(key string, value any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.mutable(); err != nil {
		return err
	}
	if !s.rawMode() {
		s.p.Values[key] = value
	}
	s.record(key, change{value: value})
	return nil
}

// Update sets key to fn applied to its current value (nil when absent),
// and makes the change safe against concurrent requests: if another
// request changes key before this one saves, fn runs again on that newer
// value, so no update is lost. fn may therefore run more than once and
// must only compute. A Put of a key the request has read ([Session.Get]
// and the typed getters, [Session.Has]) gets no such retry: if the key
// changed meanwhile, the save fails with [ErrConflict] (answered 409 by the
// default error handler) rather than overwrite a value the handler never
// saw. Without a compare-and-set store ([Options.AllowLastWriterWins])
// neither holds: the last writer wins.
func (s *Session) Update(key string, fn func(old any) any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.mutable(); err != nil {
		return err
	}
	cur, ok := s.lookup(key)
	if !ok {
		cur = nil
	}
	nv := fn(cur)
	c, mine := s.ops[key]
	switch {
	case !mine:
		s.markRead(key, cur, ok)
	case c.update != nil:
		prev := fn
		fn = func(old any) any { return prev(c.update(old)) }
	default:
		// A value this request put: the update builds on it, not on
		// the store, so there is nothing to re-run.
		fn = nil
	}
	if !s.rawMode() {
		s.p.Values[key] = nv
	}
	s.record(key, change{value: nv, update: fn})
	return nil
}

// Add adds delta to the integer under key (0 when absent or not an
// integer, as [Session.GetInt64] reads it) with [Session.Update]'s
// guarantee: concurrent Adds on one session never lose an increment. It
// returns the new value as this request sees it; the value saved is
// delta added to whatever is stored when the request saves.
func (s *Session) Add(key string, delta int64) (int64, error) {
	var n int64
	err := s.Update(key, func(old any) any {
		n = toInt64(old) + delta
		return n
	})
	return n, err
}

// Delete removes key. Deleting an absent key is a no-op that causes no
// write.
func (s *Session) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.mutable(); err != nil {
		return err
	}
	s.delete(key)
	return nil
}

func (s *Session) delete(key string) {
	if _, ok := s.lookup(key); !ok {
		return
	}
	if !s.rawMode() {
		delete(s.p.Values, key)
	}
	s.record(key, change{deleted: true})
}

// Pop returns the value under key and deletes it: the way to read a
// one-time value such as a flash message, an OAuth state or a CSRF nonce.
//
// Pop is exactly-once: when several requests on one session pop the same
// key at once, exactly one of them receives the value and the others get
// nil. To make that so, a Pop that finds the key in the stored session
// writes the session at once (one compare-and-set), instead of at the end
// of the request; a key put by this same request costs nothing. If that
// write fails, Pop returns nil and the request fails as any failed save
// does (see [Session.Err]). With a store that cannot compare and set
// ([Options.AllowLastWriterWins]) the guarantee does not hold: concurrent
// Pops may each receive the value.
func (s *Session) Pop(key string) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mutable() != nil {
		return nil
	}
	v, ok := s.lookup(key)
	if !ok {
		return nil
	}
	c, mine := s.ops[key]
	s.delete(key)
	if s.m.cas == nil || (s.stored == nil && s.renewFrom == "") || (mine && !c.deleted) {
		// Nobody else can hold this value: this request put it, or it
		// was never stored.
		return v
	}
	v, err := s.take(key, v)
	if err != nil {
		s.flushErr = err
		return nil
	}
	return v
}

// PopString is [Session.Pop] for a string value; it returns "" for any
// other type.
func (s *Session) PopString(key string) string {
	v, _ := s.Pop(key).(string)
	return v
}

// Clear removes every key but keeps the session and its id. Concurrent
// requests' changes made before this one commits are cleared too.
func (s *Session) Clear() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.mutable(); err != nil {
		return err
	}
	s.p.Values, s.raw, s.vals = map[string]any{}, nil, nil
	s.ops = nil
	s.st |= stCleared
	s.st |= stDirty
	return nil
}

// Renew gives the session a new id and token, destroys the record under
// the old one and keeps the values. Call it after login and any privilege
// change, so that a token obtained before (session fixation) is worth
// nothing. The absolute lifetime starts again.
func (s *Session) Renew() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.mutable(); err != nil {
		return err
	}
	s.renew()
	return nil
}

// renew is Renew for a caller that holds s.mu and checked mutable.
func (s *Session) renew() {
	if s.stored != nil && s.prevID == "" {
		s.prevID = s.id
	}
	if s.stored != nil {
		if s.m.cas == nil {
			s.dead = append(s.dead, s.id)
		} else if s.renewFrom == "" {
			s.renewFrom, s.renewOld = s.id, s.stored
		}
	}
	s.newToken()
	s.stored = nil
	s.expires = time.Time{}
	s.p.CreatedAt = time.Now()
	s.st |= stIssue
	s.st |= stDirty
}

// Destroy deletes the session from the store and expires the client's
// cookie. A request still in flight with the old session cannot write it
// back. Values put after Destroy start a new session under a new id.
func (s *Session) Destroy() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.has(stCommitted) {
		s.m.logger.Error("session: Destroy after the response headers were sent is not saved")
		return ErrHeadersSent
	}
	if s.loadErr == ErrNoSession {
		return ErrNoSession
	}
	if s.m.eventsOn() {
		// To report the logout: whether there was a session, and whose.
		if s.st.has(stFromClient) && !s.st.has(stLoaded) {
			s.load()
		}
		id, user := s.renewFrom, s.storedUser
		if id == "" {
			id = s.prevID
		}
		if id == "" && s.stored != nil {
			id, user = s.id, s.p.UserID
		}
		if id != "" {
			s.pending = append(s.pending, s.m.event(audit.Destroyed, "logout", id, user, s.r))
		}
	}
	s.destroyLocked()
	return nil
}

// destroyLocked is Destroy for a caller that holds s.mu.
func (s *Session) destroyLocked() {
	// No load is needed to destroy: the id is known from the cookie.
	if s.st.has(stFromClient) && !slices.Contains(s.dead, s.id) {
		s.dead = append(s.dead, s.id)
	}
	if s.renewFrom != "" && !slices.Contains(s.dead, s.renewFrom) {
		s.dead = append(s.dead, s.renewFrom)
	}
	if s.stored != nil && !slices.Contains(s.dead, s.id) {
		s.dead = append(s.dead, s.id) // written earlier in this request (Pop)
	}
	s.renewFrom, s.renewOld = "", nil
	s.prevID = ""
	s.st |= stLoaded
	s.loadErr = nil
	s.fresh()
	s.st &^= stIssue
	s.ops = nil
	s.st &^= stCleared | stDirty | stWrote | stBound | stUnbound
	s.st |= stDestroyed
}

// RememberMe chooses the cookie's lifetime for this session: true (the
// default) sends a persistent cookie that outlives the browser, false a
// browser-session cookie that the browser drops when it closes. The
// server-side timeouts apply either way.
func (s *Session) RememberMe(remember bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.mutable(); err != nil {
		return err
	}
	if s.p.Transient == !remember {
		return nil
	}
	s.p.Transient = !remember
	s.st |= stRemember
	s.st |= stDirty
	return nil
}

// ID returns the session's id as the store knows it (a hash of the
// client's token, not the token): safe to show, log or use as a handle.
// With a [TokenCodec] that names store ids (its StoreID method), whose
// ids may be the token itself, it is a hash of the store id instead. It
// loads the session, and is "" if that failed.
func (s *Session) ID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.load() != nil {
		return ""
	}
	if s.m.publicID != nil {
		return s.m.publicID(s.id)
	}
	return s.id
}

// CreatedAt returns when the session was created or last renewed.
func (s *Session) CreatedAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.load() != nil {
		return time.Time{}
	}
	return s.p.CreatedAt
}

// Expires returns when the session will expire if the client makes no
// further request: the idle deadline, or the absolute lifetime if sooner.
func (s *Session) Expires() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.load() != nil {
		return time.Time{}
	}
	return s.m.expiry(s.p.CreatedAt, time.Now())
}

// GetString returns the string under key, or "".
func (s *Session) GetString(key string) string {
	v, _ := s.Get(key).(string)
	return v
}

// GetBool returns the bool under key, or false.
func (s *Session) GetBool(key string) bool {
	v, _ := s.Get(key).(bool)
	return v
}

// GetInt64 returns the integer under key, or 0. It accepts any Go integer
// type, a json.Number, and a float64 with no fractional part.
func (s *Session) GetInt64(key string) int64 { return toInt64(s.Get(key)) }

// toInt64 converts a stored number to an int64, or 0.
func toInt64(x any) int64 {
	switch v := x.(type) {
	case int:
		return int64(v)
	case int8:
		return int64(v)
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case int64:
		return v
	case uint:
		return int64(v)
	case uint8:
		return int64(v)
	case uint16:
		return int64(v)
	case uint32:
		return int64(v)
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v)
		}
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		if f, err := v.Float64(); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
			return int64(f)
		}
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<63 {
			return int64(v)
		}
	case float32:
		if float64(v) == math.Trunc(float64(v)) {
			return int64(v)
		}
	case string:
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	return 0
}

// GetInt is [Session.GetInt64] as an int.
func (s *Session) GetInt(key string) int { return int(s.GetInt64(key)) }

// GetFloat64 returns the number under key, or 0.
func (s *Session) GetFloat64(key string) float64 {
	switch v := s.Get(key).(type) {
	case float64:
		return v
	case float32:
		return float64(v)
	case json.Number:
		f, _ := v.Float64()
		return f
	case nil:
		return 0
	}
	return float64(s.GetInt64(key))
}

// GetTime returns the time under key, or the zero time. It accepts a
// time.Time and, as the JSON codec stores times, an RFC 3339 string.
func (s *Session) GetTime(key string) time.Time {
	switch v := s.Get(key).(type) {
	case time.Time:
		return v
	case string:
		t, _ := time.Parse(time.RFC3339Nano, v)
		return t
	}
	return time.Time{}
}

// GetBytes returns the byte slice under key, or nil. It accepts a []byte
// and, as the JSON codec stores them, a base64 string.
func (s *Session) GetBytes(key string) []byte {
	switch v := s.Get(key).(type) {
	case []byte:
		return v
	case string:
		b, err := base64.StdEncoding.DecodeString(v)
		if err == nil {
			return b
		}
	}
	return nil
}

// SetUser binds the session to userID, as a login does, and gives it a new
// id (see [Session.Renew]) so that a token obtained before the login is
// worth nothing. The store can then list and end the user's sessions
// ([Manager.UserSessions], [Manager.RevokeUser]). SetUser("")
// unbinds (and renews) the session; binding it to the user it already has
// does nothing.
//
// A user id is valid UTF-8 of at most 256 bytes with no control
// characters; any other id is refused with an error wrapping
// [ErrInvalidUserID], on every backend alike, and the session is left as
// it was. Use your database's primary key, a UUID or an email address.
func (s *Session) SetUser(userID string) error {
	if userID != "" {
		if err := checkUserID(userID); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.mutable(); err != nil {
		return err
	}
	if s.p.UserID == userID {
		return nil
	}
	if userID != "" {
		if err := s.m.roomFor(s.ctx, userID); err != nil {
			return err
		}
	}
	s.renew()
	s.p.UserID = userID
	s.p.LastSeen, s.p.UserAgent, s.p.IP = time.Time{}, "", ""
	s.st &^= stBound | stUnbound
	if userID != "" {
		s.st |= stBound
	} else {
		s.st |= stUnbound
	}
	return nil
}

// UserID returns the user the session is bound to, or "" for an
// anonymous session.
func (s *Session) UserID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.load() != nil {
		return ""
	}
	return s.p.UserID
}

// request returns the request of s, nil for a nil s: the request whose
// metadata an event carries.
func (s *Session) request() *http.Request {
	if s == nil {
		return nil
	}
	return s.r
}

// endIfUser destroys the session if it is bound to userID: its record is
// already gone from the store; this expires the client's cookie.
func (s *Session) endIfUser(userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.load() != nil || s.p.UserID != userID || s.st.has(stCommitted) {
		return
	}
	s.destroyLocked()
}

// endAll destroys the session after RevokeAll ended every session: its
// record is of an older epoch now; this expires the client's cookie.
func (s *Session) endAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.has(stCommitted) || s.loadErr == ErrNoSession {
		return
	}
	s.destroyLocked()
}

func (s *Session) abandon() {
	s.mu.Lock()
	s.st |= stCommitted
	s.mu.Unlock()
}
