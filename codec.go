package session

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Payload is what the manager keeps in a store record: the session's
// values and the few facts the manager itself needs. A [Codec] turns it
// into the record's bytes and back; nothing else knows the byte layout.
type Payload struct {
	// Values are the handler's keys and values.
	Values map[string]any
	// CreatedAt is when the session was created (or last renewed); the
	// absolute lifetime counts from it.
	CreatedAt time.Time
	// Transient marks a session whose cookie lasts for the browser session
	// only (remember-me off).
	Transient bool

	// UserID is the user the session is bound to ([Session.SetUser]); ""
	// for an anonymous session. The manager passes it to the store as
	// [Record.UserID] on every write.
	UserID string
	// The rest is metadata of a bound session, kept only as far as
	// [Options.Metadata] asks: when the client was last seen (to the
	// touch interval), its User-Agent and its IP address.
	LastSeen  time.Time
	UserAgent string
	IP        string
}

// Codec encodes session payloads for storage. Implementations must be safe
// for concurrent use, and Decode must return an error, never panic, on
// bytes it did not write.
type Codec interface {
	Encode(p Payload) ([]byte, error)
	Decode(data []byte) (Payload, error)
}

// ErrEncode wraps every error a built-in codec returns for values it
// cannot encode: a bug in the handler that put them, answered with 500.
var ErrEncode = errors.New("session: values do not encode")

// ErrBadPayload wraps every error a built-in codec returns for bytes it
// cannot decode.
var ErrBadPayload = errors.New("session: stored payload does not decode")

// JSONCodec stores a session as a JSON object an operator can read with
// redis-cli GET or SELECT:
//
//	{"created":1764300000000,"values":{"user_id":42,"flash":"Saved."}}
//
// created is Unix milliseconds; "transient":true appears for a
// browser-session cookie. A session bound to a user adds "user" and, as
// [Options.Metadata] asks, "seen" (Unix ms), "ua" and "ip". After a round trip numbers come back as
// [json.Number], times as RFC 3339 strings and byte slices as base64
// strings: the typed getters ([Session.GetInt], [Session.GetTime],
// [Session.GetBytes]) convert them back. It is the default codec.
type JSONCodec struct{}

type jsonPayload struct {
	Created   int64          `json:"created"`
	Transient bool           `json:"transient,omitempty"`
	User      string         `json:"user,omitempty"`
	Seen      int64          `json:"seen,omitempty"`
	UA        string         `json:"ua,omitempty"`
	IP        string         `json:"ip,omitempty"`
	Values    map[string]any `json:"values"`
}

// unixMilli is t in Unix ms, 0 for the zero time; fromUnixMilli undoes it.
func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromUnixMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// Encode implements [Codec].
func (JSONCodec) Encode(p Payload) ([]byte, error) {
	values := p.Values
	if values == nil {
		values = map[string]any{}
	}
	b, err := json.Marshal(jsonPayload{Created: p.CreatedAt.UnixMilli(), Transient: p.Transient,
		User: p.UserID, Seen: unixMilli(p.LastSeen), UA: p.UserAgent, IP: p.IP, Values: values})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEncode, err)
	}
	// Refuse now what Decode would refuse on the next request, so a
	// deeply nested value cannot ruin the session it is put in.
	if err := checkJSONDepth(b, maxJSONDepth); err != nil {
		return nil, fmt.Errorf("%w: values nested deeper than %d", ErrTooLarge, maxJSONDepth)
	}
	return b, nil
}

// maxJSONDepth bounds nesting in stored JSON, so a hostile or corrupt
// record cannot make decoding recurse without end.
const maxJSONDepth = 64

// Decode implements [Codec]. Field names match exactly (unlike
// encoding/json's struct decoding, which ignores case).
func (c JSONCodec) Decode(data []byte) (Payload, error) {
	p, raw, err := c.decode(data, true)
	if err != nil {
		return Payload{}, err
	}
	if p.Values, err = decodeValues(raw); err != nil {
		return Payload{}, err
	}
	return p, nil
}

// checkJSONDepth rejects data nested deeper than max, scanning bytes
// without allocating.
func checkJSONDepth(data []byte, max int) error {
	depth, inString, escaped := 0, false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > max {
				return fmt.Errorf("%w: nested deeper than %d", ErrBadPayload, max)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// GobCodec stores a session with encoding/gob, so values keep their Go
// types across a round trip (a time.Time stays a time.Time, an int stays
// an int). Types stored behind an interface must be registered with
// [gob.Register], and the stored bytes are not readable by an operator.
type GobCodec struct{}

func init() {
	// Types a session commonly holds behind the values map's interface.
	gob.Register(time.Time{})
	gob.Register([]any{})
	gob.Register(map[string]any{})
	gob.Register([]string{})
}

type gobPayload struct {
	Created   int64
	Transient bool
	Values    map[string]any
	User      string
	Seen      int64
	UA        string
	IP        string
}

// Encode implements [Codec].
func (GobCodec) Encode(p Payload) ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(gobPayload{Created: p.CreatedAt.UnixMilli(), Transient: p.Transient, Values: p.Values,
		User: p.UserID, Seen: unixMilli(p.LastSeen), UA: p.UserAgent, IP: p.IP}); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEncode, err)
	}
	return buf.Bytes(), nil
}

// Decode implements [Codec].
func (GobCodec) Decode(data []byte) (p Payload, err error) {
	defer func() {
		// encoding/gob documents that it may panic on corrupt input in
		// rare cases; a bad record must never take the process down.
		if r := recover(); r != nil {
			p, err = Payload{}, fmt.Errorf("%w: %v", ErrBadPayload, r)
		}
	}()
	var gp gobPayload
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&gp); err != nil {
		return Payload{}, fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	if gp.Created <= 0 {
		return Payload{}, fmt.Errorf("%w: no creation time", ErrBadPayload)
	}
	if gp.Values == nil {
		gp.Values = map[string]any{}
	}
	return Payload{Values: gp.Values, CreatedAt: time.UnixMilli(gp.Created), Transient: gp.Transient,
		UserID: gp.User, LastSeen: fromUnixMilli(gp.Seen), UserAgent: gp.UA, IP: gp.IP}, nil
}
