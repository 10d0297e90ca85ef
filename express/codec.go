package express

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/internal/ops"
)

// codec reads and writes a session as express-session stores it, a
// [session.Codec]:
// one JSON object with the app's keys at the top level and a "cookie"
// object, e.g.
//
//	{"cookie":{"originalMaxAge":86400000,"expires":"2026-11-30T06:59:51.886Z","httpOnly":true,"path":"/","sameSite":"lax"},"user":"alice","n":1}
//
// The cookie object is handed to handlers as the value of "cookie" (a
// [Cookie]) and written back with every attribute and unknown key
// it had, its originalMaxAge and expires set from the Manager's idle
// timeout; a session Go creates gets one made from the Manager's cookie
// options. A handler cannot replace it: a "cookie" value of any other
// type fails the save. A record without a cookie object, or that is not a
// JSON object, does not decode, and [New] has the Manager leave it as it
// is (Node answers such a record with 500, and so does Go).
//
// The JSON logic is in the decode and encode helpers, which work on plain
// values, so that the Codec's shape can change around them.
type codec struct {
	maxAge time.Duration
	cookie session.CookieOptions // set by New once session.New has completed it
}

// Cookie is the "cookie" object of an express-session record, as
// [session.Session.Get]("cookie") returns it in the express-session mode
// ([New]). It is read-only for handlers: the Manager writes its
// originalMaxAge and expires, and refuses to save any other value under
// "cookie".
type Cookie map[string]any

// Decode implements [session.Codec].
func (*codec) Decode(data []byte) ([]byte, map[string]any, error) {
	values, transient, err := decode(data)
	if err != nil {
		return nil, nil, err
	}
	// An express record has no creation time: the session counts as
	// created now, so no absolute lifetime ever ends it (New sets none).
	meta := strconv.AppendInt([]byte(`{"created":`), time.Now().UnixMilli(), 10)
	if transient {
		meta = append(meta, `,"transient":true`...)
	}
	return append(meta, '}'), values, nil
}

// meta is what the codec reads of the manager's meta.
type meta struct {
	Transient bool   `json:"transient"`
	User      string `json:"user"`
}

// Encode implements [session.Codec].
func (c *codec) Encode(metaJSON []byte, values map[string]any) ([]byte, error) {
	var m meta
	if err := json.Unmarshal(metaJSON, &m); err != nil {
		return nil, fmt.Errorf("%w: meta is not a JSON object", session.ErrEncode)
	}
	if m.User != "" {
		return nil, fmt.Errorf("%w: Session.SetUser: express records have no user binding and the stores no user index; keep the user id as a value: %w", session.ErrEncode, errors.ErrUnsupported)
	}
	cookie, err := c.cookieFor(values, m.Transient, time.Now())
	if err != nil {
		return nil, err
	}
	return encode(cookie, values)
}

// decode parses an express record into its values ("cookie" included, as
// a Cookie) and whether its cookie is a browser-session one
// (originalMaxAge null).
func decode(data []byte) (map[string]any, bool, error) {
	if err := ops.CheckJSONDepth(data); err != nil {
		return nil, false, err
	}
	if !json.Valid(data) {
		return nil, false, fmt.Errorf("%w: express record is not JSON", session.ErrBadPayload)
	}
	var values map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&values); err != nil || values == nil {
		return nil, false, fmt.Errorf("%w: express record is not a JSON object", session.ErrBadPayload)
	}
	cookie, ok := values["cookie"].(map[string]any)
	if !ok {
		return nil, false, fmt.Errorf("%w: express record has no cookie object", session.ErrBadPayload)
	}
	values["cookie"] = Cookie(cookie)
	return values, cookie["originalMaxAge"] == nil, nil
}

// cookieFor returns the cookie object to write with values: the record's
// own, or a new one from the options, with originalMaxAge and expires set
// as express's touch sets them.
func (c *codec) cookieFor(values map[string]any, transient bool, now time.Time) (Cookie, error) {
	out := Cookie{}
	switch v := values["cookie"].(type) {
	case nil:
		if _, present := values["cookie"]; present {
			return nil, fmt.Errorf("%w: the session's \"cookie\" key is express-session's; a handler may not set it", session.ErrEncode)
		}
		out["httpOnly"] = !c.cookie.AllowScript
		out["path"] = c.cookie.Path
		if c.cookie.Domain != "" {
			out["domain"] = c.cookie.Domain
		}
		if c.cookie.Secure {
			out["secure"] = true
		}
		switch c.cookie.SameSite {
		case http.SameSiteStrictMode:
			out["sameSite"] = "strict"
		case http.SameSiteNoneMode:
			out["sameSite"] = "none"
		default:
			out["sameSite"] = "lax"
		}
		if c.cookie.Partitioned {
			out["partitioned"] = true
		}
	case Cookie:
		for k, x := range v {
			out[k] = x
		}
	default:
		return nil, fmt.Errorf("%w: the session's \"cookie\" key is express-session's; a handler may not set it (got %T)", session.ErrEncode, v)
	}
	if transient {
		out["originalMaxAge"] = nil
		out["expires"] = nil
	} else {
		out["originalMaxAge"] = c.maxAge.Milliseconds()
		// JavaScript's Date.prototype.toISOString.
		out["expires"] = now.Add(c.maxAge).UTC().Format("2006-01-02T15:04:05.000Z")
	}
	return out, nil
}

// cookieOrder is the order express-session writes a cookie's keys
// in; other keys follow, sorted.
var cookieOrder = []string{"originalMaxAge", "partitioned", "priority", "expires", "secure", "httpOnly", "domain", "path", "sameSite"}

// encode writes an express record: the cookie object first, then every
// other value at the top level in key order.
func encode(cookie Cookie, values map[string]any) ([]byte, error) {
	b := make([]byte, 0, 256)
	b = append(b, `{"cookie":{`...)
	var err error
	first := true
	member := func(k string, v any) {
		if err != nil {
			return
		}
		var qk, qv []byte
		if qk, err = json.Marshal(k); err != nil {
			return
		}
		if qv, err = json.Marshal(v); err != nil {
			return
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(append(append(b, qk...), ':'), qv...)
	}
	for _, k := range cookieOrder {
		if v, ok := cookie[k]; ok {
			member(k, v)
		}
	}
	for _, k := range sortedKeys(cookie) {
		if !slices.Contains(cookieOrder, k) {
			member(k, cookie[k])
		}
	}
	b = append(b, '}')
	first = false
	for _, k := range sortedKeys(values) {
		if k != "cookie" {
			member(k, values[k])
		}
	}
	b = append(b, '}')
	if err != nil {
		return nil, fmt.Errorf("%w: %v", session.ErrEncode, err)
	}
	if err := ops.CheckJSONDepth(b); err != nil {
		return nil, fmt.Errorf("%w: values nested deeper than %d", session.ErrTooLarge, maxDepth)
	}
	return b, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// maxDepth bounds nesting in a record, as package session bounds its
// own: encoding/json would recurse up to 10,000 levels on a hostile or
// corrupt one.
const maxDepth = 64
