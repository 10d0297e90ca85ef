package session

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// This file holds the express-session mode: a Manager that shares live
// sessions with a running Node app on express-session (1.x), so that a
// service can move from Node to Go one route at a time. It is built on
// the package's seams, not on special cases in the request path:
//
//   - the cookie format is a TokenCodec (expressCookieCodec): express's
//     "s:<sid>.<sig>", URL-encoded, signed with cookie-signature's
//     HMAC-SHA256 by a list of verbatim secrets;
//   - the store id is the raw sid (the codec's StoreID), as connect-redis and
//     connect-pg-simple key it;
//   - the payload is express's JSON (expressCodec): the app's keys at the
//     top level and a "cookie" object;
//   - the stores are layouts of their own (express_redis.go,
//     express_postgres.go) whose expiry is the key's TTL or the expire
//     column, as Node's stores keep it.

// ExpressDefaultCookieName is express-session's default cookie name.
const ExpressDefaultCookieName = "connect.sid"

// ErrExpressMode wraps the errors of features the express-session mode
// cannot offer: binding a session to a user ([Session.SetUser]) with its
// user index, an absolute lifetime, and stores that are not express
// layouts (tiered and failover compositions, the package's own Redis and
// Postgres layouts).
var ErrExpressMode = errors.New("session: not available in express-session mode")

// NewExpress returns a Manager that shares sessions with an express-session
// app: the same cookie, the same records in the same store. store must be
// an express layout: an [ExpressRedisStore] (connect-redis), an
// [ExpressPostgresStore] (connect-pg-simple or Prisma), or a store of your
// own that keeps express's JSON under the raw sid (a [MemoryStore] is
// accepted, for tests).
//
// secrets are express-session's secret option, verbatim and in its order:
// the first signs, every one verifies, and a cookie verified by a later
// one is re-signed with the first when the Manager next sends it. express
// accepts secrets of any length, and so does this mode, but a secret
// shorter than 32 bytes is logged as a warning.
//
// opts are the usual options, with these differences:
//
//   - CookieName defaults to "connect.sid"; IdleTimeout (express's
//     cookie.maxAge, default 24 hours) is also the cookie's max age and
//     the originalMaxAge written into records; Cookie's Path, Domain,
//     SameSite, Secure and AllowScript are written into the record's
//     cookie object of sessions Go creates, as express would.
//   - Keys, TokenCodec, Codec and TokenHeader must be unset: the
//     mode supplies the first three, and express has no header transport.
//   - Lifetime must be unset: an express record has no creation time, so
//     there is no absolute lifetime (see [ErrExpressMode]).
//
// What differs from the default mode, and why, is in the README's section
// "Moving from express-session": raw sids at rest, no absolute lifetime,
// short secrets accepted, last-writer-wins against Node's writes.
func NewExpress(store Store, secrets []string, opts Options) (*Manager, error) {
	if len(secrets) == 0 || secrets[0] == "" {
		return nil, errors.New("session: NewExpress: express-session needs a secret")
	}
	switch {
	case len(opts.Keys) > 0, opts.TokenCodec != nil, opts.Codec != nil:
		return nil, errors.New("session: NewExpress: Keys, TokenCodec and Codec are the express mode's own; leave them unset")
	case opts.TokenHeader != "":
		return nil, errors.New("session: NewExpress: express-session has no header transport; leave TokenHeader unset")
	case opts.Lifetime != 0:
		return nil, fmt.Errorf("%w: an absolute Lifetime (express records have no creation time); leave Lifetime unset", ErrExpressMode)
	}
	if err := checkExpressStore(store); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.CookieName == "" {
		opts.CookieName = ExpressDefaultCookieName
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 24 * time.Hour
	}
	if opts.IdleTimeout < 0 {
		return nil, errors.New("session: Options.IdleTimeout is negative")
	}
	// No absolute lifetime: a horizon no session reaches, so that the
	// expiry is always the idle one, as express's.
	opts.Lifetime = 100 * 365 * 24 * time.Hour
	codec, err := newExpressCookieCodec(secrets, opts.Logger)
	if err != nil {
		return nil, err
	}
	opts.TokenCodec = codec
	cookie := opts.Cookie
	if err := cookie.validate(opts.CookieName); err != nil {
		return nil, err
	}
	opts.Codec = expressCodec{maxAge: opts.IdleTimeout, cookie: cookie}
	userHandler := opts.ErrorHandler
	m, err := New(store, opts)
	if err != nil {
		return nil, err
	}
	m.newToken = newExpressSID // sids of express's shape
	// Session.ID shows a hash of the sid, never what (with the secret)
	// is a cookie.
	m.publicID = handle
	m.keepForeign = true // a record Go cannot read may be Node's
	if userHandler == nil {
		// A record that does not decode is answered 500, as Node
		// answers it, and kept: it may be Node's.
		m.opts.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, ErrBadPayload) || errors.Is(err, ErrExpressMode) {
				m.logger.Error("session: express-session record not usable; left as it is", "error", err, "path", r.URL.Path)
				http.Error(w, "Internal Server Error", http.StatusInternalServerError)
				return
			}
			m.defaultErrorHandler(w, r, err)
		}
	}
	return m, nil
}

// checkExpressStore refuses the stores that cannot hold express's records.
func checkExpressStore(store Store) error {
	if store == nil {
		return errors.New("session: NewExpress: store is nil")
	}
	cs := components(store)
	if len(cs) > 1 {
		return fmt.Errorf("%w: a store made of %d stores (tiered and failover compositions copy records between stores in the package's own layout; use one ExpressRedisStore or ExpressPostgresStore)", ErrExpressMode, len(cs))
	}
	switch cs[0].Store.(type) {
	case *RedisStore:
		return fmt.Errorf("%w: *RedisStore writes its own layout, which Node cannot read; use NewExpressRedisStore", ErrExpressMode)
	case *PostgresStore:
		return fmt.Errorf("%w: *PostgresStore writes its own table, which Node cannot read; use OpenExpressPostgres", ErrExpressMode)
	}
	return nil
}

// expressSIDBytes is the entropy of an express sid: uid-safe's 24 bytes,
// 32 characters of base64url.
const expressSIDBytes = 24

// newExpressSID returns a sid as express-session's default genid makes it.
func newExpressSID() string {
	var b [expressSIDBytes]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// StoreID is the identity: connect-redis and connect-pg-simple key
// records by the raw sid.
func (*expressCookieCodec) StoreID(token string) string { return token }

// expressCookieCodec is express-session's cookie format:
// encodeURIComponent("s:" + sid + "." + sig), sig being
// base64(HMAC-SHA256(secret, sid)) without "=" padding (cookie-signature).
type expressCookieCodec struct {
	secrets [][]byte
}

func newExpressCookieCodec(secrets []string, logger *slog.Logger) (*expressCookieCodec, error) {
	c := &expressCookieCodec{}
	for i, s := range secrets {
		if s == "" {
			return nil, fmt.Errorf("session: express secret %d is empty", i+1)
		}
		if len(s) < minSecretLen {
			logger.Warn("session: express-session secret is short; accepted as express accepts it, but a secret of at least 32 random bytes is what keeps cookies unforgeable", "secret", i+1, "bytes", len(s), "want", minSecretLen)
		}
		c.secrets = append(c.secrets, []byte(s))
	}
	return c, nil
}

func expressSign(secret []byte, sid string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(sid))
	return base64.RawStdEncoding.EncodeToString(mac.Sum(nil))
}

// Encode implements [TokenCodec].
func (c *expressCookieCodec) Encode(_, sid string) (string, error) {
	return encodeURIComponent("s:" + sid + "." + expressSign(c.secrets[0], sid)), nil
}

// Decode implements [TokenCodec]: rotate is true when a secret other than
// the first verified value. An unsigned cookie is refused, as express
// refuses it.
func (c *expressCookieCodec) Decode(_, value string) (string, bool, error) {
	if value == "" || len(value) > maxValueLen {
		return "", false, errors.New("session: express cookie empty or too long")
	}
	raw := value
	if strings.IndexByte(value, '%') >= 0 {
		v, err := url.PathUnescape(value)
		if err != nil {
			return "", false, errors.New("session: express cookie is not URL-encoded")
		}
		raw = v
	}
	if !strings.HasPrefix(raw, "s:") {
		return "", false, errors.New("session: express cookie is not signed")
	}
	raw = raw[2:]
	dot := strings.LastIndexByte(raw, '.')
	if dot <= 0 || dot > 256 {
		return "", false, errors.New("session: express cookie has no signature")
	}
	sid, sig := raw[:dot], raw[dot+1:]
	for i, s := range c.secrets {
		if hmac.Equal([]byte(sig), []byte(expressSign(s, sid))) {
			return sid, i != 0, nil
		}
	}
	return "", false, errors.New("session: express cookie signature does not verify")
}

// encodeURIComponent is JavaScript's: every byte but A-Z a-z 0-9 and
// -_.!~*'() is percent-encoded.
func encodeURIComponent(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			strings.IndexByte("-_.!~*'()", c) >= 0:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}
