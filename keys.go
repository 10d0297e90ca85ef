package session

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"sync"

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
	// Copied to the stack: a token of ours is 43 bytes, and converting it
	// with []byte(token) would allocate.
	var in [128]byte
	var sum [sha256.Size]byte
	if len(token) <= len(in) {
		sum = sha256.Sum256(in[:copy(in[:], token)])
	} else {
		sum = sha256.Sum256([]byte(token))
	}
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], sum[:])
	return string(out[:])
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
	macs   []*sync.Pool // per key pair: HMAC-SHA256 states; nil for an encrypting pair
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
		var macs *sync.Pool
		if block == nil {
			hashKey := slices.Clone(k.Hash)
			macs = &sync.Pool{New: func() any { return &verifier{mac: hmac.New(sha256.New, hashKey)} }}
		}
		c.macs = append(c.macs, macs)
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
	for i := range c.codecs {
		if c.macs[i] != nil {
			if token, ok := c.verify(i, name, value); ok {
				return token, i != 0, nil
			}
			err = securecookie.ErrMacInvalid
			continue
		}
		if token, err = c.decrypt(i, name, value); err == nil {
			return token, i != 0, nil
		}
	}
	return "", false, err
}

// decrypt is Decode with an encrypting key pair, by securecookie itself.
func (c *secureCookieCodec) decrypt(key int, name, value string) (string, error) {
	var raw []byte
	if err := c.codecs[key].Decode(name, value, &raw); err != nil {
		return "", err
	}
	if len(raw) == 0 || len(raw) > 128 {
		return "", errors.New("session: bad token")
	}
	return string(raw), nil
}

// verifier is a pooled HMAC-SHA256 state with its scratch space: a signed
// value is checked without an allocation but the token's string.
type verifier struct {
	mac     hash.Hash
	scratch []byte
	sum     [sha256.Size]byte
}

// verify is securecookie's Decode for a signing-only key pair (what
// [securecookie.SecureCookie.Decode] does with MaxAge 0 and NopEncoder),
// on pooled state: securecookie builds a new HMAC and three buffers for
// every value, the largest cost of a read-only request. The wire format
// and the checks are the same; FuzzTokenVerify compares the two.
func (c *secureCookieCodec) verify(key int, name, value string) (string, bool) {
	v := c.macs[key].Get().(*verifier)
	defer c.macs[key].Put(v)
	// scratch holds "name|" and the decoded value ("date|payload|mac"),
	// then a copy of value to decode from: the MAC covers
	// "name|date|payload".
	head := len(name) + 1
	dlen := base64.URLEncoding.DecodedLen(len(value))
	if need := head + dlen + len(value); cap(v.scratch) < need {
		v.scratch = make([]byte, max(need, 512))
	}
	b := v.scratch[:cap(v.scratch)]
	copy(b, name)
	b[len(name)] = '|'
	src := b[head+dlen : head+dlen+copy(b[head+dlen:], value)]
	n, err := base64.URLEncoding.Decode(b[head:head+dlen], src)
	if err != nil {
		return "", false
	}
	dec := b[head : head+n]
	// "date|payload|mac"; the MAC itself may contain '|'.
	i := bytes.IndexByte(dec, '|')
	if i < 0 {
		return "", false
	}
	j := bytes.IndexByte(dec[i+1:], '|')
	if j < 0 {
		return "", false
	}
	j += i + 1
	v.mac.Reset()
	v.mac.Write(b[:head+j])
	if !hmac.Equal(dec[j+1:], v.mac.Sum(v.sum[:0])) {
		return "", false
	}
	if _, err := strconv.ParseInt(string(dec[:i]), 10, 64); err != nil {
		return "", false // as securecookie: a timestamp that is no integer
	}
	payload := dec[i+1 : j]
	var tok [130]byte
	if base64.URLEncoding.DecodedLen(len(payload)) > len(tok) {
		return "", false // longer than any token (128 bytes at most)
	}
	tn, err := base64.URLEncoding.Decode(tok[:], payload)
	if err != nil || tn == 0 || tn > 128 {
		return "", false
	}
	return string(tok[:tn]), true
}
