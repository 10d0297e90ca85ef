package session

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"

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

// sha256Hasher maps a token to the hex SHA-256 of its text: the default
// store id, which makes a dump of the store useless as cookies.
type sha256Hasher struct{}

func (sha256Hasher) StoreID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// TokenCodec turns a token into the value a client carries (the cookie
// value, or the header token) and back, refusing values it did not make.
//
// A TokenCodec may also have these methods, which the manager then uses
// for a format that shares a store with another program (the
// express-session mode of package
// [github.com/sessionkit/session/express] has both):
//
//	// NewToken returns the token of a new session, instead of the
//	// manager's own (32 bytes from crypto/rand, base64url), for tokens
//	// of another shape. They must be unguessable (at least 128 bits
//	// from crypto/rand) and never repeat.
//	NewToken() string
//	// StoreID returns the store id of token, instead of the hex
//	// SHA-256 of the token, which makes a dump of the store useless as
//	// cookies: to keep the other program's ids (express-session keys
//	// records by the raw session id). The manager cannot know that
//	// these ids do not reveal the token, so [Session.ID] then shows a
//	// hash of the store id, never the store id.
//	StoreID(token string) string
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

// storeIDer is a [TokenCodec] with the optional StoreID method.
type storeIDer interface {
	StoreID(token string) string
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

// secureCookieCodec is the default [TokenCodec]: the token signed with
// HMAC-SHA256, and optionally encrypted with AES, by
// github.com/gorilla/securecookie. With several key pairs, the first signs
// and all of them verify, so keys can be rotated without logging anyone
// out: put the new pair first, keep the old one until every session it
// signed has expired, then remove it.
type secureCookieCodec struct {
	codecs []securecookie.Codec
}

// maxValueLen caps the cookie or header value accepted for decoding.
const maxValueLen = 4096

// newSecureCookieCodec returns a codec for keys; it needs at least one.
func newSecureCookieCodec(keys ...KeyPair) (*secureCookieCodec, error) {
	if len(keys) == 0 {
		return nil, errors.New("session: no cookie keys")
	}
	c := &secureCookieCodec{}
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
func (c *secureCookieCodec) Encode(name, token string) (string, error) {
	return securecookie.EncodeMulti(name, []byte(token), c.codecs...)
}

// Decode implements [TokenCodec]: rotate is true when a key other than the
// first verified value.
func (c *secureCookieCodec) Decode(name, value string) (token string, rotate bool, err error) {
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
