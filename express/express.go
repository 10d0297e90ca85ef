// Package express shares live sessions with a running Node app on
// express-session (1.x), so that a service can move from Node to Go one
// route at a time: the same cookie, the same records in the same store.
//
// It is built on the seams of package session that any program can use,
// not on special cases in its request path:
//
//   - the cookie format is a [session.TokenCodec]: express's
//     "s:<sid>.<sig>", URL-encoded, signed with cookie-signature's
//     HMAC-SHA256 by a list of verbatim secrets; its NewToken makes sids
//     of express's shape;
//   - the store id is the raw sid (the TokenCodec's StoreID method), as
//     connect-redis and connect-pg-simple key it, so [session.Session.ID]
//     shows a hash of it;
//   - the payload is express's JSON (a [session.Codec]): the app's keys
//     at the top level and a "cookie" object;
//   - a record Go cannot read may be Node's: [session.Options.KeepUnreadable]
//     leaves it as it is;
//   - the stores are layouts of their own ([RedisStore], [PostgresStore])
//     whose expiry is the key's TTL or the expire column, as Node's stores
//     keep it.
//
// [New] makes the Manager; [OpenStore] opens the store a
// [session.Config] names. What differs from the default mode, and why, is
// in the README's section "Moving from express-session".
package express

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/internal/ops"
)

// DefaultCookieName is express-session's default cookie name.
const DefaultCookieName = "connect.sid"

// New returns a Manager that shares sessions with an express-session app:
// the same cookie, the same records in the same store. store must be an
// express layout: a [RedisStore] (connect-redis), a [PostgresStore]
// (connect-pg-simple or Prisma), or a store of your own that keeps
// express's JSON under the raw sid (a [session.MemoryStore] is accepted,
// for tests).
//
// secrets are express-session's secret option, verbatim and in its order
// ([Secrets] reads them from a Config): the first signs, every one
// verifies, and a cookie verified by a later one is re-signed with the
// first when the Manager next sends it. express accepts secrets of any
// length, and so does this mode, but a secret shorter than 32 bytes is
// logged as a warning.
//
// opts are the usual options, with these differences:
//
//   - CookieName defaults to "connect.sid"; IdleTimeout (express's
//     cookie.maxAge, default 24 hours) is also the cookie's max age and
//     the originalMaxAge written into records; Cookie's Path, Domain,
//     SameSite, Secure and AllowScript are written into the record's
//     cookie object of sessions Go creates, as express would.
//   - Keys, TokenCodec and Codec must be unset: the mode supplies the
//     last two (and needs no Keys). TokenHeader must be unset: express
//     has no header transport. KeepUnreadable is always set.
//   - Lifetime must be unset: an express record has no creation time, so
//     there is no absolute lifetime.
//
// What the mode cannot offer is refused with an error wrapping
// [errors.ErrUnsupported], never silently ignored: an absolute lifetime,
// binding a session to a user ([session.Session.SetUser], which fails the
// save) with its user index, and stores that are not express layouts
// (tiered and failover compositions, package session's own Redis and
// Postgres layouts).
//
// A record that does not decode (not JSON, no cookie object, package
// session's own layout) is answered 500, as Node answers it, by the
// default ErrorHandler, and left as it is.
func New(store session.Store, secrets []string, opts session.Options) (*session.Manager, error) {
	if len(secrets) == 0 || secrets[0] == "" {
		return nil, errors.New("express: New: express-session needs a secret")
	}
	switch {
	case len(opts.Keys) > 0, opts.TokenCodec != nil, opts.Codec != nil:
		return nil, errors.New("express: New: Keys, TokenCodec and Codec are the express mode's own; leave them unset")
	case opts.TokenHeader != "":
		return nil, errors.New("express: New: express-session has no header transport; leave TokenHeader unset")
	case opts.Lifetime != 0:
		return nil, fmt.Errorf("express: New: an absolute Lifetime (express records have no creation time); leave Lifetime unset: %w", errors.ErrUnsupported)
	}
	if err := checkStore(store); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.CookieName == "" {
		opts.CookieName = DefaultCookieName
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 24 * time.Hour
	}
	if opts.IdleTimeout < 0 {
		return nil, errors.New("express: Options.IdleTimeout is negative")
	}
	// No absolute lifetime: a horizon no session reaches, so that the
	// expiry is always the idle one, as express's.
	opts.Lifetime = 100 * 365 * 24 * time.Hour
	tokens, err := newCookieCodec(secrets, opts.Logger)
	if err != nil {
		return nil, err
	}
	opts.TokenCodec = tokens
	c := &codec{maxAge: opts.IdleTimeout}
	opts.Codec = c
	opts.KeepUnreadable = true // a record Go cannot read may be Node's
	m, err := session.New(store, opts)
	if err != nil {
		return nil, err
	}
	// The cookie options as New completed them (Path "/", SameSite,
	// Secure for the prefixes that need it), for the cookie object of
	// the sessions Go creates. No request has run yet.
	c.cookie = m.Options().Cookie
	return m, nil
}

// checkStore refuses the stores that cannot hold express's records. The
// stores of session.Open, NewTiered and NewFailover are of unexported
// types; internal/ops lists the stores they are made of.
func checkStore(store session.Store) error {
	if store == nil {
		return errors.New("express: New: store is nil")
	}
	stores := ops.Stores(store)
	if len(stores) > 1 {
		return fmt.Errorf("express: New: a store made of %d stores (tiered and failover compositions copy records between stores in package session's own layout; use one RedisStore or PostgresStore of package express): %w", len(stores), errors.ErrUnsupported)
	}
	switch stores[0].(type) {
	case *session.RedisStore:
		return fmt.Errorf("express: New: *session.RedisStore writes its own layout, which Node cannot read; use express.NewRedisStore: %w", errors.ErrUnsupported)
	case *session.PostgresStore:
		return fmt.Errorf("express: New: *session.PostgresStore writes its own table, which Node cannot read; use express.OpenPostgres: %w", errors.ErrUnsupported)
	}
	return nil
}

// sidBytes is the entropy of an express sid: uid-safe's 24 bytes, 32
// characters of base64url.
const sidBytes = 24

// newSID returns a sid as express-session's default genid makes it.
func newSID() string {
	var b [sidBytes]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
