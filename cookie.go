package session

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/gorilla/securecookie"
)

// tokenBytes is the entropy of a session token: 256 bits from crypto/rand.
const tokenBytes = 32

// newToken returns a fresh random token, base64url without padding.
func newToken() string {
	var b [tokenBytes]byte
	// crypto/rand.Read never returns an error on supported platforms (Go
	// 1.24+ crashes the program instead of returning a weak token).
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// TokenHasher maps the token a client holds to the id a store sees. The
// default, [SHA256Hasher], makes a dump of the store useless as cookies.
type TokenHasher interface {
	StoreID(token string) string
}

// SHA256Hasher maps a token to the hex SHA-256 of its text. It is the
// default [TokenHasher].
type SHA256Hasher struct{}

// StoreID implements [TokenHasher].
func (SHA256Hasher) StoreID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// TokenCodec turns a token into the value a client carries (the cookie
// value, or the header token) and back, refusing values it did not make.
type TokenCodec interface {
	// Encode returns the value that carries token in the cookie (or
	// header) called name.
	Encode(name, token string) (string, error)
	// Decode returns the token inside value, or an error when value was
	// not made by Encode with one of the codec's keys. rotate reports
	// that value verified with an older key: the middleware then sends
	// the client a value made by Encode whenever it next sends the token,
	// instead of echoing the old one, so that old keys can be retired.
	Decode(name, value string) (token string, rotate bool, err error)
}

// KeyPair is one generation of cookie keys.
type KeyPair struct {
	// Hash signs cookies with HMAC-SHA256. It must be at least 32 bytes.
	Hash []byte
	// Block, when set, also encrypts cookies with AES; it must be 16, 24
	// or 32 bytes. Signing alone is enough for a random token; encryption
	// hides even the token's existence from the client.
	Block []byte
}

// KeyFromSecret derives a KeyPair from a secret string (SESSION_SECRET),
// so one variable holds everything. With encrypt the pair also has an AES
// key. The secret must be at least 32 bytes.
func KeyFromSecret(secret string, encrypt bool) (KeyPair, error) {
	if len(secret) < 32 {
		return KeyPair{}, fmt.Errorf("session: secret is %d bytes, want at least 32", len(secret))
	}
	derive := func(label string) []byte {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte("sessionkit/session " + label))
		return mac.Sum(nil)
	}
	kp := KeyPair{Hash: derive("cookie signing key")}
	if encrypt {
		kp.Block = derive("cookie encryption key")
	}
	return kp, nil
}

// SecureCookieCodec is the default [TokenCodec]: the token signed with
// HMAC-SHA256, and optionally encrypted with AES, by
// github.com/gorilla/securecookie. With several key pairs, the first signs
// and all of them verify, so keys can be rotated without logging anyone
// out: put the new pair first, keep the old one until every session it
// signed has expired, then remove it.
type SecureCookieCodec struct {
	codecs []securecookie.Codec
}

// maxValueLen caps the cookie or header value accepted for decoding.
const maxValueLen = 4096

// NewSecureCookieCodec returns a codec for keys; it needs at least one.
func NewSecureCookieCodec(keys ...KeyPair) (*SecureCookieCodec, error) {
	if len(keys) == 0 {
		return nil, errors.New("session: no cookie keys")
	}
	c := &SecureCookieCodec{}
	for i, k := range keys {
		if len(k.Hash) < 32 {
			return nil, fmt.Errorf("session: cookie key %d: hash key is %d bytes, want at least 32", i, len(k.Hash))
		}
		switch len(k.Block) {
		case 0, 16, 24, 32:
		default:
			return nil, fmt.Errorf("session: cookie key %d: block key is %d bytes, want 16, 24 or 32", i, len(k.Block))
		}
		var block []byte
		if len(k.Block) > 0 {
			block = k.Block
		}
		sc := securecookie.New(k.Hash, block)
		sc.SetSerializer(securecookie.NopEncoder{})
		sc.MaxAge(0) // the server enforces lifetimes, not the cookie's timestamp
		sc.MaxLength(maxValueLen)
		c.codecs = append(c.codecs, sc)
	}
	return c, nil
}

// Encode implements [TokenCodec].
func (c *SecureCookieCodec) Encode(name, token string) (string, error) {
	return securecookie.EncodeMulti(name, []byte(token), c.codecs...)
}

// Decode implements [TokenCodec]: rotate is true when a key other than the
// first verified value.
func (c *SecureCookieCodec) Decode(name, value string) (token string, rotate bool, err error) {
	if value == "" || len(value) > maxValueLen {
		return "", false, errors.New("session: token value empty or too long")
	}
	var raw []byte
	for i, sc := range c.codecs {
		if err = sc.Decode(name, value, &raw); err == nil {
			if len(raw) == 0 || len(raw) > 128 {
				return "", false, errors.New("session: bad token")
			}
			return string(raw), i != 0, nil
		}
	}
	return "", false, err
}

// CookieOptions sets the attributes of the session cookie. The zero value
// gives the secure defaults: HttpOnly, SameSite=Lax, Path=/, host-only,
// Secure whenever the request is HTTPS. [New] refuses values that
// net/http or browsers would silently drop or ignore.
type CookieOptions struct {
	// Domain shares the cookie with subdomains. The default is host-only.
	// It must be a domain name (letters, digits, '-', dots between
	// labels; one leading dot is allowed and ignored) or an IPv4 address:
	// net/http drops any other Domain, with only a log line.
	Domain string
	// Path is the cookie's path. The default is "/". It must start with
	// '/' (browsers replace any other path with the request's directory)
	// and hold only printable ASCII without ';' (net/http strips other
	// bytes).
	Path string
	// SameSite is the cookie's SameSite mode. The default is Lax. None
	// forces Secure. Values other than net/http's SameSite constants are
	// refused: net/http would send no SameSite attribute for them.
	SameSite http.SameSite
	// Secure, when true, always marks the cookie Secure. Otherwise it is
	// Secure when the request came over TLS, or, with
	// [Options.TrustProxy], when X-Forwarded-Proto is https.
	Secure bool
	// Partitioned sets the CHIPS Partitioned attribute, for apps embedded
	// in another site's iframe. It forces Secure.
	Partitioned bool
	// AllowScript drops HttpOnly, letting page scripts read the cookie.
	// Leave it false unless a script must read the cookie itself. It is
	// refused for an "__Http-" or "__Host-Http-" name, which browsers
	// accept only with HttpOnly.
	AllowScript bool
}

// Cookie name prefixes that browsers give rules to. Browsers match them
// case-insensitively, so "__host-sid" is held to the "__Host-" rules.
const (
	hostPrefix     = "__Host-"
	securePrefix   = "__Secure-"
	httpPrefix     = "__Http-"
	hostHTTPPrefix = "__Host-Http-"
)

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// checkCookieName returns an error naming the first byte of name that is
// not allowed in a cookie name. A cookie name is an RFC 6265 token
// (RFC 9110 tchar): printable ASCII except the separators
// ()<>@,;:\"/[]?={} and space. For any other name net/http sends an empty
// Set-Cookie, so the session would never stick.
func checkCookieName(name string) error {
	if name == "" {
		return errors.New("session: cookie name is empty")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isTokenByte(c) {
			what := fmt.Sprintf("%q", rune(c))
			if c >= 0x80 {
				what = fmt.Sprintf("non-ASCII byte 0x%02x", c)
			}
			return fmt.Errorf("session: cookie name %q: %s at offset %d is not allowed (a cookie name must be an RFC 6265 token: printable ASCII without spaces or any of ()<>@,;:\\\"/[]?={})", name, what, i)
		}
	}
	return nil
}

func isTokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// checkCookieDomain accepts what net/http sends as a Domain attribute: a
// domain name, optionally with one leading dot, or an IPv4 address.
func checkCookieDomain(name, d string) error {
	if d == "" || validCookieDomain(d) {
		return nil
	}
	return fmt.Errorf("session: cookie %q: Domain %q is not a domain name or IPv4 address (no scheme, port, path or spaces); net/http would drop it", name, d)
}

// validCookieDomain is net/http's rule for a Domain it will send.
func validCookieDomain(v string) bool {
	if ip := net.ParseIP(v); ip != nil && !strings.Contains(v, ":") {
		return true
	}
	if len(v) == 0 || len(v) > 255 {
		return false
	}
	if v[0] == '.' {
		v = v[1:]
	}
	last := byte('.')
	letter := false
	partlen := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
			letter = true
			partlen++
		case '0' <= c && c <= '9':
			partlen++
		case c == '-':
			if last == '.' {
				return false
			}
			partlen++
		case c == '.':
			if last == '.' || last == '-' || partlen > 63 || partlen == 0 {
				return false
			}
			partlen = 0
		default:
			return false
		}
		last = c
	}
	return letter && last != '-' && partlen <= 63
}

// checkCookiePath accepts a path that starts with '/' and holds only the
// bytes net/http sends (0x20-0x7e except ';').
func checkCookiePath(name, p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("session: cookie %q: Path %q must start with '/' (browsers ignore any other path)", name, p)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c >= 0x7f || c == ';' {
			return fmt.Errorf("session: cookie %q: Path %q: byte %q at offset %d is not allowed (printable ASCII without ';'); net/http would strip it", name, p, c, i)
		}
	}
	return nil
}

func (o *CookieOptions) validate(name string) error {
	if err := checkCookieName(name); err != nil {
		return err
	}
	if o.Path == "" {
		o.Path = "/"
	}
	if err := checkCookiePath(name, o.Path); err != nil {
		return err
	}
	if err := checkCookieDomain(name, o.Domain); err != nil {
		return err
	}
	switch o.SameSite {
	case 0, http.SameSiteDefaultMode:
		o.SameSite = http.SameSiteLaxMode
	case http.SameSiteLaxMode, http.SameSiteStrictMode, http.SameSiteNoneMode:
	default:
		return fmt.Errorf("session: cookie %q: CookieOptions.SameSite %d is not one of net/http's SameSite modes", name, o.SameSite)
	}
	if hasPrefixFold(name, hostPrefix) {
		if o.Domain != "" {
			return fmt.Errorf("session: cookie %q: a __Host- cookie cannot have a Domain", name)
		}
		if o.Path != "/" {
			return fmt.Errorf("session: cookie %q: a __Host- cookie must have Path=/", name)
		}
		o.Secure = true
	}
	if (hasPrefixFold(name, httpPrefix) || hasPrefixFold(name, hostHTTPPrefix)) && o.AllowScript {
		return fmt.Errorf("session: cookie %q: an __Http- or __Host-Http- cookie must be HttpOnly (CookieOptions.AllowScript is set)", name)
	}
	if hasPrefixFold(name, securePrefix) || hasPrefixFold(name, httpPrefix) || o.SameSite == http.SameSiteNoneMode || o.Partitioned {
		o.Secure = true
	}
	return nil
}

// isHTTPS reports whether the request reached the client over TLS.
func isHTTPS(r *http.Request, trustProxy bool) bool {
	if r.TLS != nil {
		return true
	}
	if trustProxy {
		proto := r.Header.Get("X-Forwarded-Proto")
		if i := strings.IndexByte(proto, ','); i >= 0 {
			proto = proto[:i] // the first hop's view
		}
		return strings.EqualFold(strings.TrimSpace(proto), "https")
	}
	return false
}
