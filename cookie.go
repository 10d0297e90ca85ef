package session

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

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

// newSession reads the client's token without calling the store.
func (m *Manager) newSession(r *http.Request) *Session {
	s := &Session{m: m, r: r}
	if h := m.opts.TokenHeader; h != "" {
		v, ok := headerToken(r, h)
		if ok {
			// The client chose the header transport: its cookie, which
			// may belong to another session, is not consulted.
			s.st |= stViaHeader
			if t, ok := m.verifyValue(v); ok {
				s.setToken(t, v)
			}
			return s
		}
	}
	// Browsers send the most specific cookie first; a cookie that does not
	// verify (tossed by a sibling subdomain, signed with a removed key) is
	// skipped. Only a few are tried, so a flood of cookies costs little.
	for i, c := range r.CookiesNamed(m.opts.CookieName) {
		if i == 4 {
			break
		}
		if t, ok := m.verifyValue(c.Value); ok {
			s.setToken(t, c.Value)
			break
		}
	}
	return s
}

// headerToken returns the token a request carries in header h or as a
// Bearer token, and whether it carries either at all (possibly empty).
func headerToken(r *http.Request, h string) (string, bool) {
	if vs, ok := r.Header[http.CanonicalHeaderKey(h)]; ok {
		if len(vs) == 0 {
			return "", true
		}
		return strings.TrimSpace(vs[0]), true
	}
	if a := r.Header.Get("Authorization"); len(a) >= 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:]), true
	}
	return "", false
}

// decodeToken verifies a cookie or header value. current reports that the
// value needs no re-signing: it was signed with the key that signs now.
func (m *Manager) decodeToken(value string) (token string, current bool, err error) {
	token, rotate, err := m.tokens.Decode(m.opts.CookieName, value)
	return token, !rotate, err
}

// verifyValue verifies a client's cookie or header value and finds its
// store id, or remembers having done so for the very same value (see
// memo.go).
func (m *Manager) verifyValue(value string) (verifiedToken, bool) {
	if t, ok := m.tokenMemo.lookupSecret(value); ok {
		return t, true
	}
	token, current, err := m.decodeToken(value)
	if err != nil {
		return verifiedToken{}, false
	}
	t := verifiedToken{token: token, id: m.storeID(token), current: current}
	m.tokenMemo.remember(value, t)
	return t, true
}

func (s *Session) setToken(t verifiedToken, value string) {
	s.token = t.token
	s.id = t.id
	s.st |= stFromClient
	if t.current {
		// Re-sending the cookie (to move its expiry) can reuse what the
		// client sent instead of signing again.
		s.value = value
	}
}

// clientValue returns the signed value of the session's token for the
// cookie or header, signing it only if the client's own value cannot be
// sent back. Callers hold s.mu.
func (s *Session) clientValue() (string, error) {
	if s.value == "" {
		v, err := s.m.tokens.Encode(s.m.opts.CookieName, s.token)
		if err != nil {
			return "", err
		}
		s.value = v
	}
	return s.value, nil
}

func (m *Manager) cookie(r *http.Request, value string) *http.Cookie {
	o := m.opts.Cookie
	return &http.Cookie{
		Name:        m.opts.CookieName,
		Value:       value,
		Path:        o.Path,
		Domain:      o.Domain,
		Secure:      o.Secure || isHTTPS(r, m.opts.TrustProxy),
		HttpOnly:    !o.AllowScript,
		SameSite:    o.SameSite,
		Partitioned: o.Partitioned,
	}
}

// sendToken gives the client the session's token in the transport it
// uses: the response header for a header client, the cookie otherwise.
func (m *Manager) sendToken(w http.ResponseWriter, r *http.Request, s *Session, transient bool, exp, now time.Time) {
	value, err := s.clientValue()
	if err != nil {
		m.logger.Error("session: encoding the token failed", "error", err)
		return
	}
	s.st |= stSentToken
	if s.st.has(stViaHeader) {
		w.Header().Set(m.opts.TokenHeader, value)
		return
	}
	c := m.cookie(r, value)
	if !transient {
		c.Expires = exp.UTC().Truncate(time.Second)
		c.MaxAge = max(int(exp.Sub(now)/time.Second), 1)
	}
	w.Header().Add("Set-Cookie", c.String())
}

// expireToken tells the client its session has ended: an expired cookie,
// or an empty token header for a header client.
func (m *Manager) expireToken(w http.ResponseWriter, r *http.Request, s *Session) {
	s.st |= stSentToken
	if s.st.has(stViaHeader) {
		w.Header().Set(m.opts.TokenHeader, "")
		return
	}
	c := m.cookie(r, "")
	c.MaxAge = -1
	c.Expires = time.Unix(1, 0)
	w.Header().Add("Set-Cookie", c.String())
}
