package express

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
)

// minSecretLen is the length below which a secret is warned about: the
// length package session requires of its own secrets.
const minSecretLen = 32

// maxValueLen caps the cookie value accepted for decoding, as package
// session caps its own.
const maxValueLen = 4096

// cookieCodec is express-session's cookie format, a [session.TokenCodec]:
// encodeURIComponent("s:" + sid + "." + sig), sig being
// base64(HMAC-SHA256(secret, sid)) without "=" padding (cookie-signature).
type cookieCodec struct {
	secrets [][]byte
}

func newCookieCodec(secrets []string, logger *slog.Logger) (*cookieCodec, error) {
	c := &cookieCodec{}
	for i, s := range secrets {
		if s == "" {
			return nil, fmt.Errorf("express: secret %d is empty", i+1)
		}
		if len(s) < minSecretLen {
			logger.Warn("express: express-session secret is short; accepted as express accepts it, but a secret of at least 32 random bytes is what keeps cookies unforgeable", "secret", i+1, "bytes", len(s), "want", minSecretLen)
		}
		c.secrets = append(c.secrets, []byte(s))
	}
	return c, nil
}

func sign(secret []byte, sid string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(sid))
	return base64.RawStdEncoding.EncodeToString(mac.Sum(nil))
}

// NewToken makes the sids of new sessions of express's shape (see
// [session.TokenCodec]).
func (*cookieCodec) NewToken() string { return newSID() }

// StoreID is the identity (see [session.TokenCodec]): connect-redis and
// connect-pg-simple key records by the raw sid. It also makes
// Session.ID show a hash of the sid, never what (with the secret) is a
// cookie.
func (*cookieCodec) StoreID(sid string) string { return sid }

// Encode implements [session.TokenCodec].
func (c *cookieCodec) Encode(_, sid string) (string, error) {
	return encodeURIComponent("s:" + sid + "." + sign(c.secrets[0], sid)), nil
}

// Decode implements [session.TokenCodec]: rotate is true when a secret
// other than the first verified value. An unsigned cookie is refused, as
// express refuses it.
func (c *cookieCodec) Decode(_, value string) (string, bool, error) {
	if value == "" || len(value) > maxValueLen {
		return "", false, errors.New("express: cookie empty or too long")
	}
	raw := value
	if strings.IndexByte(value, '%') >= 0 {
		v, err := url.PathUnescape(value)
		if err != nil {
			return "", false, errors.New("express: cookie is not URL-encoded")
		}
		raw = v
	}
	if !strings.HasPrefix(raw, "s:") {
		return "", false, errors.New("express: cookie is not signed")
	}
	raw = raw[2:]
	dot := strings.LastIndexByte(raw, '.')
	if dot <= 0 || dot > 256 {
		return "", false, errors.New("express: cookie has no signature")
	}
	sid, sig := raw[:dot], raw[dot+1:]
	for i, s := range c.secrets {
		if hmac.Equal([]byte(sig), []byte(sign(s, sid))) {
			return sid, i != 0, nil
		}
	}
	return "", false, errors.New("express: cookie signature does not verify")
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
