package session

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"testing"
)

// FuzzTokenVerify: the pooled verifier accepts exactly what securecookie's
// own Decode accepts (with the codec's settings and token rule), and
// returns the same token: for arbitrary values, and for well-signed values
// around arbitrary dates and payloads, which random bytes almost never
// reach.
func FuzzTokenVerify(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	c, err := newSecureCookieCodec(KeyPair{Hash: key})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := c.Encode("session", newToken())
	f.Add(good, "1764300000", []byte("token"), false)
	f.Add("", "", []byte{}, true)
	f.Add("a|b|c", "+1", []byte("x|y"), true)
	f.Add(good[:30], "-5", make([]byte, 129), true)
	f.Add("%%%", "12a", []byte("ok"), true)
	f.Fuzz(func(t *testing.T, value, date string, payload []byte, signed bool) {
		if signed {
			b := date + "|" + base64.URLEncoding.EncodeToString(payload)
			mac := hmac.New(sha256.New, key)
			mac.Write([]byte("session|" + b))
			value = base64.URLEncoding.EncodeToString(append([]byte(b+"|"), mac.Sum(nil)...))
		}
		if len(value) > maxValueLen {
			return // refused before either decoder runs
		}
		var raw []byte
		err := c.codecs[0].Decode("session", value, &raw)
		wantOK := err == nil && len(raw) > 0 && len(raw) <= 128
		got, ok := c.verify(0, "session", value)
		if ok != wantOK || (ok && got != string(raw)) {
			t.Fatalf("value %q: verify = %q, %v; securecookie = %q, %v", value, got, ok, raw, err)
		}
	})
}
