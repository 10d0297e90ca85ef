package session

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sessionkit/session/audit"
)

// Options configures a [Manager]. The zero value gives the secure
// defaults; only Keys should always be set. As in every options struct of
// this package, a zero duration or size means the documented default and
// a negative one is invalid: [New] returns an error naming the field.
type Options struct {
	// CookieName is the session cookie's name. The default is "session".
	// It must be an RFC 6265 token (printable ASCII, no spaces or
	// separators such as / : ; = ,): net/http sends an empty Set-Cookie
	// for any other name, so New refuses it. The prefixes browsers give
	// rules to are matched case-insensitively, as browsers do: a
	// "__Host-" name may not have a Domain, its Path must be "/", and it
	// is always Secure; a "__Secure-" name is always Secure.
	CookieName string

	// IdleTimeout ends a session the client has not used for this long.
	// It is enforced by the store's expiry, so it holds whichever server
	// the next request reaches. The default (0) is 24 hours; a negative
	// value is an error. To keep only the absolute Lifetime, set it equal
	// to Lifetime: a session then lasts exactly Lifetime however idle.
	IdleTimeout time.Duration

	// Lifetime ends a session this long after it was created or renewed,
	// however active it is. The default (0) is 7 days; a negative value
	// is an error.
	Lifetime time.Duration

	// TouchInterval is how far the idle expiry must move before a request
	// that changed nothing spends a store call (Touch) on moving it, and
	// before a request that writes moves it at all: a write within it
	// keeps the stored expiry, which lets Postgres update the row in
	// place. It bounds how early a session can expire: by at most this
	// much before IdleTimeout. The default (0) is one minute, or a tenth
	// of IdleTimeout if that is shorter; a negative value is an error. To
	// move the expiry on every request, set it to a nanosecond.
	TouchInterval time.Duration

	// Cookie sets the cookie's attributes; see [CookieOptions].
	Cookie CookieOptions

	// TrustProxy makes X-Forwarded-Proto: https count as HTTPS when
	// deciding whether the cookie is Secure. Set it only behind a proxy
	// that sets that header itself. The default is false.
	TrustProxy bool

	// Metadata chooses what a session bound to a user records about its
	// client (last seen, User-Agent, IP address) for the user's list of
	// sessions. All off by default; see [Metadata] for the privacy notes.
	Metadata Metadata

	// TokenHeader, when set (e.g. "X-Session-Token"), adds a second
	// transport for the session token, for API clients and embedded apps
	// whose browser blocks third-party cookies: the request header of
	// that name, or "Authorization: Bearer <token>". The token is the
	// same signed value the cookie carries.
	//
	// Each transport is answered in its own: a request that carries the
	// header (or a Bearer token), valid or not, uses the header only; its
	// cookie is neither read nor changed, and a new token, or an empty
	// header value when its session ended, comes back in the same
	// response header, never in Set-Cookie. A client without a token yet
	// asks for the header transport by sending the header with any value
	// (e.g. "new"). Every other request uses the cookie only, and the
	// token never appears in a header that page script could read. The
	// default, "", is cookies only.
	TokenHeader string

	// Keys sign (and, with a Block key, encrypt) the token in the cookie.
	// The first pair signs and every pair verifies, so keys rotate
	// without logging anyone out: put the new pair first, keep the old
	// one until every session it signed has expired, then remove it. A
	// cookie verified by an older pair is re-signed with the first on the
	// response. [KeyFromSecret] derives a pair from a secret. With no
	// keys, New makes a random key and logs a warning: sessions then do
	// not survive a restart and are not shared between processes.
	Keys []KeyPair

	// TokenCodec replaces the signed-cookie format; it may also name the
	// store id of a token (see [TokenCodec]). The default signs with
	// HMAC-SHA256, and encrypts with AES when Keys have a Block key, by
	// github.com/gorilla/securecookie.
	TokenCodec TokenCodec

	// Codec encodes values for the store. The default is [JSONCodec].
	Codec Codec

	// KeepUnreadable leaves a stored record that the Codec cannot decode
	// as it is, for a store shared with another program that may write
	// records this manager cannot read: the request fails with
	// [ErrBadPayload] (the default ErrorHandler answers 500), and the
	// record is never destroyed or overwritten. The default, false,
	// treats such a record as garbage: it is destroyed and the client
	// gets a fresh session, so that a corrupt record does not fail every
	// request that carries its cookie.
	KeepUnreadable bool

	// MaxSize caps a session's encoded size in bytes; a larger session is
	// not saved and the request fails with [ErrTooLarge]. The default (0)
	// is 64 KiB; a negative value is an error.
	MaxSize int

	// CommitTimeout bounds the store calls that end a session: a
	// Destroy, the deletion of the old id by a Renew or SetUser, a
	// revocation ([Manager.RevokeUser]). They run even when the
	// request's context has ended (the client went away,
	// http.TimeoutHandler gave up), so that a logout the handler asked for
	// is never lost half-way. Other store calls follow the request's
	// context. The default is five seconds; a negative value is an
	// error.
	CommitTimeout time.Duration

	// MaxUserSessions caps how many live sessions one user may have at
	// once (sessions are bound to users by [Session.SetUser]): for "3
	// devices per account" plans, and so that a stolen password cannot
	// open sessions without end. A login that goes over it ends the
	// user's least recently used sessions (reported as [audit.Evicted]),
	// or, with RefuseOverLimit, fails with [ErrTooManySessions]. It holds
	// under concurrent logins on any number of processes. It needs a
	// store with a [UserIndex] (New returns an error otherwise); each
	// login then lists the user's sessions once. The default (0) is no
	// limit; a negative value is an error.
	MaxUserSessions int

	// RefuseOverLimit makes a login over MaxUserSessions fail instead of
	// ending an older session: [Session.SetUser] returns
	// [ErrTooManySessions] (the session is left as it was), or, when
	// concurrent logins raced past that check, the response does (the
	// default error handler answers 403 and the new session is not
	// kept). Under a burst of simultaneous logins of one user it may
	// refuse more than strictly needed, never fewer. The default, false,
	// ends the least recently used sessions instead.
	RefuseOverLimit bool

	// OnEvent, when set, receives every session's lifecycle events ([audit.Event]:
	// created, renewed, bound to a user, destroyed, revoked, expired,
	// evicted), one at a time and in order, from a goroutine of the
	// Manager's: for an audit trail. A request never waits for it: events
	// wait in a queue of EventQueue, and when it is full they are dropped
	// and counted in [ManagerStats].EventsDropped. [Manager.Close]
	// delivers what is queued, then returns. A panic in OnEvent is
	// logged, not fatal.
	//
	// Expirations come from the store's own cleanup: the memory store's
	// janitor and the Postgres store's cleanup (the rows it deletes, on
	// whichever process deletes them) report them to every Manager with
	// OnEvent; on Redis, run [Backend.WatchExpirations] (or
	// [RedisStore.WatchExpirations]) on one process. To report whose
	// session a logout ended, [Session.Destroy] reads the session first
	// when the handler has not. The default is nil: no events, no
	// goroutine.
	OnEvent func(audit.Event)

	// EventQueue is how many events may wait for OnEvent. The default (0)
	// is 1024; a negative value is an error.
	EventQueue int

	// EpochInterval is how often a process re-reads its store's epoch,
	// which [Manager.RevokeAll] raises to end every session: it bounds how
	// long another process may still accept a session RevokeAll ended.
	// The read happens in the background while requests come, at most
	// once per interval, never on a request's path, except the first
	// request that needs it and one arriving after an idle spell of twice
	// the interval. The default (0) is five seconds; a negative value is
	// an error.
	EpochInterval time.Duration

	// Logger receives store failures and misuse. It never receives a
	// token. The default is slog.Default().
	Logger *slog.Logger

	// AllowLastWriterWins lets New accept a store that is not a
	// [CompareAndSetter]. Such a store cannot give three guarantees:
	// concurrent requests on one session may lose each other's changes
	// (the last writer wins), a request still in flight after a logout,
	// renew or revocation may write the session back, and [Session.Pop]
	// may hand one value to several requests. The default, false, makes
	// New return an error wrapping [errors.ErrUnsupported] for such a store, so that the loss
	// is a decision, not a surprise.
	AllowLastWriterWins bool

	// ErrorHandler answers a request whose session could not be loaded or
	// saved. It is called before any of the handler's output has been
	// sent, and that output is then discarded: the handler's writes
	// return an error and write nothing. The default logs the error
	// and answers 503 Service Unavailable (413 for ErrTooLarge, 409 for
	// ErrConflict, 403 for ErrTooManySessions, 500 for ErrEncode and
	// ErrBadPayload).
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
}

// Manager issues and verifies session cookies and loads and saves sessions
// in a [Store]. Create one with [New] and wrap handlers with
// [Manager.Handler]. It is safe for concurrent use.
type Manager struct {
	store   Store
	opts    Options
	tokens  TokenCodec
	storeID func(token string) string // the TokenCodec's StoreID, or SHA-256
	codec   Codec
	lazy    lazyCodec // codec, when it has the optional methods

	// Recent proofs about repeated bytes (memo.go); nil when the codec
	// is not one of the package's own.
	tokenMemo  *memo[verifiedToken]
	recordMemo *memo[decodedRecord]
	logger     *slog.Logger
	stats      managerStats
	cas        CompareAndSetter // the store's, or nil

	newToken func() string               // the TokenCodec's NewToken, or nil: the package's newToken
	publicID func(storeID string) string // what Session.ID shows: handle with the TokenCodec's StoreID, nil for the store id

	epoch   *epochState // nil: RevokeAll is unsupported, for the reason in noEpoch
	noEpoch error
	events  *eventQueue // nil: no OnEvent
	bg      background
	unwatch []func() // stop the store's expiry reports to this manager
}

// New returns a Manager that keeps sessions in store. It returns an error
// for a configuration that could not work or would be insecure.
func New(store Store, opts Options) (*Manager, error) {
	if store == nil {
		return nil, errors.New("session: New: store is nil")
	}
	if opts.CookieName == "" {
		opts.CookieName = "session"
	}
	if err := opts.Cookie.validate(opts.CookieName); err != nil {
		return nil, err
	}
	if err := checkNonNegative("Options",
		"IdleTimeout", opts.IdleTimeout, "Lifetime", opts.Lifetime,
		"TouchInterval", opts.TouchInterval, "MaxSize", opts.MaxSize,
		"CommitTimeout", opts.CommitTimeout, "EpochInterval", opts.EpochInterval,
		"MaxUserSessions", opts.MaxUserSessions, "EventQueue", opts.EventQueue); err != nil {
		return nil, err
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 24 * time.Hour
	}
	if opts.Lifetime == 0 {
		opts.Lifetime = 7 * 24 * time.Hour
	}
	if opts.TouchInterval == 0 {
		opts.TouchInterval = min(time.Minute, opts.IdleTimeout/10)
	}
	if opts.CommitTimeout == 0 {
		opts.CommitTimeout = 5 * time.Second
	}
	if opts.EpochInterval == 0 {
		opts.EpochInterval = 5 * time.Second
	}
	if opts.EventQueue == 0 {
		opts.EventQueue = 1024
	}
	if opts.MaxSize == 0 {
		opts.MaxSize = 64 << 10
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Codec == nil {
		opts.Codec = JSONCodec{}
	}
	ownCodec := opts.Codec == Codec(JSONCodec{})
	ownTokens := opts.TokenCodec == nil
	if opts.TokenCodec == nil {
		keys := opts.Keys
		if len(keys) == 0 {
			opts.Logger.Warn("session: no cookie keys configured; using a random key, so sessions will not survive a restart or be shared between processes")
			keys = []KeyPair{{Hash: []byte(newToken())}}
		}
		c, err := newSecureCookieCodec(keys...)
		if err != nil {
			return nil, err
		}
		opts.TokenCodec = c
	}
	m := &Manager{store: store, opts: opts, tokens: opts.TokenCodec, codec: opts.Codec, logger: opts.Logger}
	if g, ok := opts.TokenCodec.(interface{ NewToken() string }); ok {
		m.newToken = g.NewToken // see TokenCodec
	}
	m.cas, _ = store.(CompareAndSetter)
	m.lazy, _ = opts.Codec.(lazyCodec)
	m.storeID = sha256Hasher{}.StoreID
	if s, ok := opts.TokenCodec.(storeIDer); ok {
		m.storeID = s.StoreID
		// Its store ids may reveal the token: Session.ID shows a hash
		// of them (see TokenCodec).
		m.publicID = handle
	}
	if ownCodec && m.lazy != nil {
		m.recordMemo = newMemo[decodedRecord]()
	}
	if ownTokens && m.publicID == nil {
		m.tokenMemo = newMemo[verifiedToken]()
	}
	if m.cas == nil {
		if !opts.AllowLastWriterWins {
			return nil, fmt.Errorf("%w (%T); set Options.AllowLastWriterWins to accept that", errNoCompareAndSet, store)
		}
		opts.Logger.Warn("session: the store cannot compare and set: concurrent writes to one session may be lost, and a logout may not stop a request already in flight", "store", fmt.Sprintf("%T", store))
	}
	if opts.ErrorHandler == nil {
		m.opts.ErrorHandler = m.defaultErrorHandler
	}
	if opts.MaxUserSessions > 0 {
		if _, ok := store.(UserIndex); !ok {
			return nil, fmt.Errorf("session: Options.MaxUserSessions needs a store that can list a user's sessions: %w (%T)", errNoUserIndex, store)
		}
	}
	m.setupEpoch()
	m.startEvents()
	m.watchExpired()
	return m, nil
}

// Store returns the store the manager uses.
func (m *Manager) Store() Store { return m.store }

// Options returns the manager's options with their defaults filled in.
func (m *Manager) Options() Options { return m.opts }

// expiry is when a session created at created expires if its client is
// idle from now on.
func (m *Manager) expiry(created, now time.Time) time.Time {
	end := created.Add(m.opts.Lifetime)
	if m.opts.IdleTimeout > 0 {
		if idle := now.Add(m.opts.IdleTimeout); idle.Before(end) {
			return idle
		}
	}
	return end
}

// Handler wraps next so that its requests carry a session, reached with
// [From]. It has the func(http.Handler) http.Handler shape that routers
// (chi, gorilla/mux) take as middleware.
func (m *Manager) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := m.newSession(r)
		// The context, the writer and the default caching headers live in
		// the Session: one allocation for all of a request's state.
		s.vctx = sessionCtx{Context: r.Context(), s: s}
		s.ctx = &s.vctx
		r = r.WithContext(s.ctx)
		s.rw = responseWriter{ResponseWriter: w, s: s, r: r}
		sw := &s.rw
		completed := false
		defer func() {
			if !completed {
				// The handler panicked: save nothing half-done.
				s.abandon()
			}
		}()
		next.ServeHTTP(sw, r)
		completed = true
		sw.commit()
	})
}

func (m *Manager) defaultErrorHandler(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrTooLarge) {
		m.logger.Warn("session: session too large to save", "max_bytes", m.opts.MaxSize, "path", r.URL.Path)
		http.Error(w, "Session too large", http.StatusRequestEntityTooLarge)
		return
	}
	if errors.Is(err, ErrTooManySessions) {
		m.logger.Info("session: login refused: the user has as many sessions as Options.MaxUserSessions allows", "path", r.URL.Path)
		http.Error(w, "Forbidden: too many sessions for this account; sign out on another device first", http.StatusForbidden)
		return
	}
	if errors.Is(err, ErrConflict) {
		m.logger.Info("session: a concurrent request changed a value this request read and then wrote; answering 409 so the client can retry", "error", err, "path", r.URL.Path)
		http.Error(w, "Conflict: the session changed meanwhile; retry", http.StatusConflict)
		return
	}
	if errors.Is(err, ErrEncode) {
		m.logger.Error("session: a value put in the session cannot be encoded", "error", err, "path", r.URL.Path)
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	if errors.Is(err, ErrBadPayload) {
		// Only with Options.KeepUnreadable: otherwise such a record is
		// destroyed and the client gets a fresh session.
		m.logger.Error("session: stored session does not decode; left as it is (Options.KeepUnreadable)", "error", err, "path", r.URL.Path)
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The client went away before its session loaded: nobody reads
		// this answer, and the store is not at fault.
		m.logger.Debug("session: request ended before its session loaded", "path", r.URL.Path)
		http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
		return
	}
	m.logger.Error("session: store unavailable", "error", err, "path", r.URL.Path)
	http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
}

// errNoCompareAndSet is what [New] returns for a store that is not a
// [CompareAndSetter], unless [Options.AllowLastWriterWins] is set.
var errNoCompareAndSet = fmt.Errorf("session: the store cannot compare and set, so concurrent requests may lose each other's writes and a logout may not stop a request in flight: %w", errors.ErrUnsupported)

// errSaveFailed is returned by writes to the response after the session
// could not be saved: the error handler has answered instead.
var errSaveFailed = errors.New("session: the session could not be saved; the error handler answered the request")

// responseWriter commits the session before the first byte of the
// response, whichever way the handler starts it.
type responseWriter struct {
	http.ResponseWriter
	s      *Session
	r      *http.Request
	done   bool
	failed bool
}

// commit saves the session once; it reports false when that failed and
// the error handler has answered instead.
func (w *responseWriter) commit() bool {
	if w.done {
		return !w.failed
	}
	w.done = true
	if err := w.s.commit(w.ResponseWriter, w.r); err != nil {
		w.failed = true
		w.s.m.opts.ErrorHandler(w.ResponseWriter, w.r, err)
		return false
	}
	return true
}

func (w *responseWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code) // informational: headers still to come
		return
	}
	if w.commit() {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.commit() {
		return 0, errSaveFailed
	}
	return w.ResponseWriter.Write(p)
}

// ReadFrom keeps io.Copy's fast path (sendfile) of the underlying writer.
func (w *responseWriter) ReadFrom(src io.Reader) (int64, error) {
	if !w.commit() {
		return 0, errSaveFailed
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(writerOnly{w.ResponseWriter}, src)
}

type writerOnly struct{ io.Writer }

// Flush implements http.Flusher.
func (w *responseWriter) Flush() { _ = w.FlushError() }

// FlushError is the Flush that http.ResponseController calls.
func (w *responseWriter) FlushError() error {
	if !w.commit() {
		return errSaveFailed
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker; the session is committed first.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !w.commit() {
		return nil, nil, errSaveFailed
	}
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// managerStats counts what the manager did to its store.
type managerStats struct {
	loads, loadMisses, saves, touches, destroys, conflicts, errors atomic.Int64
	eventsDropped                                                  atomic.Int64
}

// ManagerStats is a snapshot of a manager's counters since it was made.
type ManagerStats struct {
	Loads      int64 // sessions read from the store
	LoadMisses int64 // reads that found nothing (unknown or expired id)
	Saves      int64 // Set or CompareAndSet calls that succeeded
	Touches    int64 // expiries moved without rewriting data
	Destroys   int64 // records destroyed (logout, renew, bad records)
	Conflicts  int64 // compare-and-set conflicts resolved by merging
	Errors     int64 // store calls that failed
	// EventsDropped counts the events not delivered to Options.OnEvent
	// because its queue was full (or the manager closed).
	EventsDropped int64
}

// Stats returns the manager's counters, for an app to export (expvar,
// Prometheus) as it likes.
func (m *Manager) Stats() ManagerStats {
	s := &m.stats
	return ManagerStats{
		Loads: s.loads.Load(), LoadMisses: s.loadMisses.Load(), Saves: s.saves.Load(),
		Touches: s.touches.Load(), Destroys: s.destroys.Load(), Conflicts: s.conflicts.Load(), Errors: s.errors.Load(),
		EventsDropped: s.eventsDropped.Load(),
	}
}
