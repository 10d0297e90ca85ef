package session

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
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

	// Epoch is the store's epoch when the session was created (see
	// [Manager.RevokeAll]); a session of an older epoch than the store's
	// has been ended. A codec must give back the Epoch it was given, or
	// RevokeAll is unsupported with it.
	Epoch int64
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
// [Options.Metadata] asks, "seen" (Unix ms), "ua" and "ip"; "epoch" appears
// after the first [Manager.RevokeAll]. After a round trip numbers come back as
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
	Epoch     int64          `json:"epoch,omitempty"`
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
		User: p.UserID, Seen: unixMilli(p.LastSeen), UA: p.UserAgent, IP: p.IP, Epoch: p.Epoch, Values: values})
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

// A read-only request usually reads one or two values of a session. The
// JSON codec therefore decodes lazily: load validates the whole record but
// keeps the values object as bytes, Get finds a key by scanning those
// bytes and decodes just its value, and the map is built only when the
// session changes or is listed. This keeps the common request from paying
// for every value it does not read.

// lazyDecoder is implemented by codecs that can leave the values undecoded.
type lazyDecoder interface {
	// decodeLazy returns the payload without Values, and the raw values:
	// a validated JSON object.
	decodeLazy(data []byte) (Payload, []byte, error)
}

func (c JSONCodec) decodeLazy(data []byte) (Payload, []byte, error) { return c.decode(data, false) }

// decode is decodeLazy; with all it also decodes the metadata fields a
// request does not need ("ua", "ip": see [Metadata]), which a lazy load
// skips so that a bound session's read costs next to nothing more than an
// anonymous one's. A session written while Metadata records them records
// them afresh.
func (JSONCodec) decode(data []byte, all bool) (Payload, []byte, error) {
	if err := checkJSONDepth(data, maxJSONDepth); err != nil {
		return Payload{}, nil, err
	}
	// json.Valid checks all of data, values included, without
	// allocating; after it the scanners below can trust the syntax.
	if !json.Valid(data) {
		return Payload{}, nil, fmt.Errorf("%w: not valid JSON", ErrBadPayload)
	}
	var p Payload
	var raw []byte
	var created int64
	ok := eachField(data, func(key []byte, v []byte) {
		switch string(key) { // compared, not converted: no allocation
		case "created":
			created = parseInt(v)
		case "transient":
			p.Transient = string(v) == "true"
		case "values":
			raw = v
		case "user":
			p.UserID = jsonString(v)
		case "seen":
			p.LastSeen = fromUnixMilli(parseInt(v))
		case "epoch":
			p.Epoch = parseInt(v)
		case "ua":
			if all {
				p.UserAgent = jsonString(v)
			}
		case "ip":
			if all {
				p.IP = jsonString(v)
			}
		}
	})
	if !ok {
		return Payload{}, nil, fmt.Errorf("%w: not a JSON object", ErrBadPayload)
	}
	if created <= 0 {
		return Payload{}, nil, fmt.Errorf("%w: no creation time", ErrBadPayload)
	}
	switch {
	case len(raw) == 0 || string(raw) == "null":
		raw = []byte("{}")
	case raw[0] != '{':
		return Payload{}, nil, fmt.Errorf("%w: values is not an object", ErrBadPayload)
	}
	p.CreatedAt = time.UnixMilli(created)
	return p, raw, nil
}

// jsonString decodes a JSON string value, or returns "". Only bound
// sessions have string fields besides the values, so an anonymous
// session's load never gets here.
func jsonString(v []byte) string {
	if n := len(v); n >= 2 && v[0] == '"' && v[n-1] == '"' && bytes.IndexByte(v, '\\') < 0 && utf8.Valid(v[1:n-1]) {
		return string(v[1 : n-1]) // no escapes: the common case, one allocation
	}
	var str string
	if json.Unmarshal(v, &str) != nil {
		return ""
	}
	return str
}

// parseInt parses a JSON integer, or returns 0.
func parseInt(v []byte) int64 {
	var n int64
	if len(v) == 0 || len(v) > 18 {
		return 0
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// eachField calls fn with each top-level key of the valid JSON object obj
// (keys with escapes are unescaped) and its raw value. It reports false
// when obj is not an object.
func eachField(obj []byte, fn func(key, value []byte)) bool {
	return eachMember(obj, func(key, _, value []byte) { fn(key, value) })
}

// eachMember is eachField that also passes each key as it is written in
// obj, quotes and escapes included.
func eachMember(obj []byte, fn func(key, rawKey, value []byte)) bool {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return false
	}
	i++
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) {
			return false
		}
		switch obj[i] {
		case '}':
			return true
		case ',':
			i++
			continue
		}
		end, escaped := scanString(obj, i)
		if end < 0 {
			return false
		}
		// The key is passed as bytes, so that a caller comparing it with
		// constants allocates nothing.
		rawKey := obj[i:end]
		key := obj[i+1 : end-1]
		if escaped || !utf8.Valid(key) {
			var k string
			if json.Unmarshal(obj[i:end], &k) != nil {
				return false
			}
			key = []byte(k)
		}
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return false
		}
		i = skipSpace(obj, i+1)
		vend := skipValue(obj, i)
		if vend < 0 {
			return false
		}
		fn(key, rawKey, obj[i:vend])
		i = vend
	}
}

// decodeValues builds the values map from a raw object.
func decodeValues(raw []byte) (map[string]any, error) {
	var values map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&values); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	if values == nil {
		values = map[string]any{}
	}
	return values, nil
}

// lookupJSON finds key in obj, a JSON object already validated, and
// decodes its value as decodeValues would (the last of duplicate keys
// wins, as in encoding/json).
func lookupJSON(obj []byte, key string) (any, bool) {
	var found []byte
	if !eachMember(obj, func(k, _, v []byte) {
		if string(k) == key {
			found = v
		}
	}) || found == nil {
		return nil, false
	}
	return decodeValue(found)
}

func decodeValue(v []byte) (any, bool) {
	switch {
	case len(v) == 0:
		return nil, false
	case v[0] == '"':
		if end, escaped := scanString(v, 0); !escaped && end == len(v) && utf8.Valid(v[1:end-1]) {
			return string(v[1 : len(v)-1]), true
		}
	case v[0] == '-' || (v[0] >= '0' && v[0] <= '9'):
		return json.Number(v), true
	case string(v) == "true":
		return true, true
	case string(v) == "false":
		return false, true
	case string(v) == "null":
		return nil, true
	}
	var out any
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	if dec.Decode(&out) != nil {
		return nil, false
	}
	return out, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// scanString returns the index just past the string starting at b[i]
// (a '"'), and whether it holds escapes; -1 if it does not end.
func scanString(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return -1, false
	}
	escaped := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j + 1, escaped
		}
	}
	return -1, false
}

// skipValue returns the index just past the JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		end, _ := scanString(b, i)
		return end
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, _ := scanString(b, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\r' && b[j] != '\t' {
			j++
		}
		return j
	}
}

// rawEncoder is implemented by codecs that can write a session whose
// values were never decoded, splicing a request's changes into the stored
// bytes: a request that puts one key does not pay for decoding and
// re-encoding every other value.
type rawEncoder interface {
	encodeRaw(p Payload, raw []byte, ops map[string]change) ([]byte, error)
}

func (JSONCodec) encodeRaw(p Payload, raw []byte, ops map[string]change) ([]byte, error) {
	b := make([]byte, 0, len(raw)+64+32*len(ops))
	b = append(b, `{"created":`...)
	b = strconv.AppendInt(b, p.CreatedAt.UnixMilli(), 10)
	if p.Transient {
		b = append(b, `,"transient":true`...)
	}
	var err error
	appendString := func(name, v string) {
		if v == "" || err != nil {
			return
		}
		var q []byte
		if q, err = json.Marshal(v); err == nil {
			b = append(append(append(b, `,"`...), name...), `":`...)
			b = append(b, q...)
		}
	}
	appendString("user", p.UserID)
	if ms := unixMilli(p.LastSeen); ms != 0 {
		b = strconv.AppendInt(append(b, `,"seen":`...), ms, 10)
	}
	appendString("ua", p.UserAgent)
	appendString("ip", p.IP)
	if p.Epoch != 0 {
		b = strconv.AppendInt(append(b, `,"epoch":`...), p.Epoch, 10)
	}
	b = append(b, `,"values":{`...)
	first := true
	sep := func() {
		if !first {
			b = append(b, ',')
		}
		first = false
	}
	// Unchanged members are copied byte for byte, in their order.
	if !eachMember(raw, func(key, rawKey, value []byte) {
		if _, changed := ops[string(key)]; changed {
			return
		}
		sep()
		b = append(append(append(b, rawKey...), ':'), value...)
	}) {
		return nil, fmt.Errorf("%w: values is not an object", ErrBadPayload)
	}
	keys := make([]string, 0, len(ops))
	for k, c := range ops {
		if !c.deleted {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		qk, err := json.Marshal(k)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrEncode, err)
		}
		v, err := json.Marshal(ops[k].value)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrEncode, err)
		}
		sep()
		b = append(append(append(b, qk...), ':'), v...)
	}
	b = append(b, "}}"...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEncode, err)
	}
	if err := checkJSONDepth(b, maxJSONDepth); err != nil {
		return nil, fmt.Errorf("%w: values nested deeper than %d", ErrTooLarge, maxJSONDepth)
	}
	return b, nil
}
