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

// Codec turns a session into a store record's bytes and back.
//
// meta is the manager's own facts about the session (when it was created,
// whether its cookie is a browser-session one, the user it is bound to and
// what [Options.Metadata] records): a JSON object that a codec keeps as it
// is and gives back from Decode. A codec need not interpret it, so a fact
// a later version of this package adds survives any codec that keeps it.
// (A codec for another program's record format, which has nowhere to keep
// it, may read the members it can map instead, as package express does
// with "transient" and "user", and give back what it can; the manager
// requires only "created".) Decode may return an object with more members
// than Encode was given (the built-in codec returns the whole record); the
// manager ignores members it does not know.
// values are the handler's.
//
// Implementations must be safe for concurrent use, and Decode must return
// an error, never panic, on bytes it did not write.
//
// A Codec may also have these methods, which the manager then uses so that
// a read-only request decodes only the values it reads and a write that
// never decoded the values re-encodes only what changed. [JSONCodec] has
// them; a codec of your own can too.
//
//	// DecodeMeta returns the meta of data, checking that all of data
//	// decodes, without building the values.
//	DecodeMeta(data []byte) (meta []byte, err error)
//	// Lookup returns the value under key in data (which DecodeMeta
//	// accepted) as Decode would return it.
//	Lookup(data []byte, key string) (value any, ok bool)
//	// Patch returns data with its meta replaced by meta, the values in
//	// set put and the keys in deleted removed: what Encode would return
//	// for the changed session.
//	Patch(data, meta []byte, set map[string]any, deleted []string) ([]byte, error)
type Codec interface {
	Encode(meta []byte, values map[string]any) ([]byte, error)
	Decode(data []byte) (meta []byte, values map[string]any, err error)
}

// lazyCodec is the optional methods of a [Codec], as the manager asserts them.
type lazyCodec interface {
	DecodeMeta(data []byte) (meta []byte, err error)
	Lookup(data []byte, key string) (value any, ok bool)
	Patch(data, meta []byte, set map[string]any, deleted []string) ([]byte, error)
}

// ErrEncode wraps every error a built-in codec returns for values it
// cannot encode: a bug in the handler that put them, answered with 500.
var ErrEncode = errors.New("session: values do not encode")

// ErrBadPayload wraps every error a built-in codec returns for bytes it
// cannot decode.
var ErrBadPayload = errors.New("session: stored payload does not decode")

// JSONCodec stores a session as a JSON object an operator can read with
// redis-cli GET or SELECT: the members of the manager's meta, then the
// values.
//
//	{"created":1764300000000,"values":{"user_id":42,"flash":"Saved."}}
//
// created is Unix milliseconds; "transient":true appears for a
// browser-session cookie. A session bound to a user adds "user" and, as
// [Options.Metadata] asks, "seen" (Unix ms), "ua" and "ip"; "epoch"
// appears after the first [Manager.RevokeAll]. After a round trip numbers come back as [json.Number], times as RFC 3339 strings and
// byte slices as base64 strings: the typed getters ([Session.GetInt],
// [Session.GetTime], [Session.GetBytes]) convert them back. It is the
// default codec, and has the optional methods [Codec] describes.
type JSONCodec struct{}

// payload is what the manager knows of a session: its values and its meta.
type payload struct {
	Values    map[string]any // nil while the values are still the stored bytes
	CreatedAt time.Time      // the absolute lifetime counts from it
	Transient bool           // a browser-session cookie (remember-me off)
	UserID    string         // see Session.SetUser
	LastSeen  time.Time      // the rest as Options.Metadata asks
	UserAgent string
	IP        string
	Epoch     int64 // the store's epoch when the session was created: see Manager.RevokeAll
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

// meta returns the manager's facts as the JSON object a Codec keeps.
func (p *payload) meta() []byte {
	b := make([]byte, 0, 32+len(p.UserID)+len(p.UserAgent)+len(p.IP))
	b = append(b, `{"created":`...)
	b = strconv.AppendInt(b, p.CreatedAt.UnixMilli(), 10)
	if p.Transient {
		b = append(b, `,"transient":true`...)
	}
	b = appendMetaString(b, "user", p.UserID)
	if ms := unixMilli(p.LastSeen); ms != 0 {
		b = strconv.AppendInt(append(b, `,"seen":`...), ms, 10)
	}
	b = appendMetaString(b, "ua", p.UserAgent)
	b = appendMetaString(b, "ip", p.IP)
	if p.Epoch != 0 {
		b = strconv.AppendInt(append(b, `,"epoch":`...), p.Epoch, 10)
	}
	return append(b, '}')
}

func appendMetaString(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	q, _ := json.Marshal(v) // a string always marshals
	b = append(append(append(b, `,"`...), name...), `":`...)
	return append(b, q...)
}

// parseMeta reads the manager's facts from meta, a JSON object a codec
// returned. With all false it skips what a request does not need ("ua",
// "ip": see [Metadata]), so that a bound session's read costs next to
// nothing more than an anonymous one's; a session written while Metadata
// records them records them afresh.
func parseMeta(meta []byte, all bool) (payload, error) {
	var p payload
	var created int64
	ok := eachMember(meta, func(key, _, v []byte) {
		switch string(key) { // compared, not converted: no allocation
		case "created":
			created = parseInt(v)
		case "transient":
			p.Transient = string(v) == "true"
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
		return payload{}, fmt.Errorf("%w: meta is not a JSON object", ErrBadPayload)
	}
	if created <= 0 {
		return payload{}, fmt.Errorf("%w: no creation time", ErrBadPayload)
	}
	p.CreatedAt = time.UnixMilli(created)
	return p, nil
}

// Encode implements [Codec].
func (JSONCodec) Encode(meta []byte, values map[string]any) ([]byte, error) {
	if values == nil {
		values = map[string]any{}
	}
	v, err := json.Marshal(values)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEncode, err)
	}
	b, err := withMeta(meta, len(v))
	if err != nil {
		return nil, err
	}
	b = append(append(b, v...), '}')
	// Refuse now what Decode would refuse on the next request, so a
	// deeply nested value cannot ruin the session it is put in.
	if err := checkJSONDepth(b, maxJSONDepth); err != nil {
		return nil, fmt.Errorf("%w: values nested deeper than %d", ErrTooLarge, maxJSONDepth)
	}
	return b, nil
}

// withMeta starts a record: meta's members but "values" (a meta Decode
// returned holds the record's), then `"values":`, with room for n more
// bytes.
func withMeta(meta []byte, n int) ([]byte, error) {
	b := make([]byte, 0, len(meta)+n+12)
	b = append(b, '{')
	if !json.Valid(meta) || !eachMember(meta, func(key, rawKey, v []byte) {
		if string(key) != "values" {
			b = append(append(append(b, rawKey...), ':'), v...)
			b = append(b, ',')
		}
	}) {
		return nil, fmt.Errorf("%w: meta is not a JSON object", ErrEncode)
	}
	return append(b, `"values":`...), nil
}

// maxJSONDepth bounds nesting in stored JSON, so a hostile or corrupt
// record cannot make decoding recurse without end.
const maxJSONDepth = 64

// Decode implements [Codec]. The meta it returns is the whole record, an
// object whose "values" member the manager ignores. Member names match
// exactly (unlike encoding/json's struct decoding, which ignores case).
func (JSONCodec) Decode(data []byte) ([]byte, map[string]any, error) {
	raw, err := valuesOf(data)
	if err != nil {
		return nil, nil, err
	}
	values, err := decodeValues(raw)
	if err != nil {
		return nil, nil, err
	}
	return data, values, nil
}

// DecodeMeta implements the optional method of [Codec]: it checks all of
// data and returns it whole as the meta.
func (JSONCodec) DecodeMeta(data []byte) ([]byte, error) {
	if _, err := valuesOf(data); err != nil {
		return nil, err
	}
	return data, nil
}

// Lookup implements the optional method of [Codec]. The last of duplicate
// keys wins, as in encoding/json. It trusts that DecodeMeta checked data
// (it scans, it does not validate again), and finds nothing in bytes that
// are not a record.
func (JSONCodec) Lookup(data []byte, key string) (any, bool) {
	raw := valuesMember(data)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	return lookupJSON(raw, key)
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
// JSON codec therefore decodes lazily (see the optional methods of Codec):
// load validates the whole record but keeps it as bytes, Get finds a key by
// scanning those bytes and decodes just its value, and the map is built
// only when the session changes or is listed. This keeps the common request
// from paying for every value it does not read.

// valuesMember returns the raw value of data's last "values" member, nil
// when it has none or data is not an object.
func valuesMember(data []byte) []byte {
	var raw []byte
	eachMember(data, func(key, _, v []byte) {
		if string(key) == "values" {
			raw = v
		}
	})
	return raw
}

// valuesOf checks that data is a record of this codec and returns its
// values object, "{}" when it has none.
func valuesOf(data []byte) ([]byte, error) {
	if err := checkJSONDepth(data, maxJSONDepth); err != nil {
		return nil, err
	}
	// json.Valid checks all of data, values included, without
	// allocating; after it the scanners below can trust the syntax.
	if !json.Valid(data) {
		return nil, fmt.Errorf("%w: not valid JSON", ErrBadPayload)
	}
	if data = bytes.TrimSpace(data); len(data) == 0 || data[0] != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrBadPayload)
	}
	raw := valuesMember(data)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return []byte("{}"), nil
	case raw[0] != '{':
		return nil, fmt.Errorf("%w: values is not an object", ErrBadPayload)
	}
	return raw, nil
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

// eachMember calls fn with each top-level key of the valid JSON object obj
// (unescaped, and as written in obj, quotes and escapes included) and its
// raw value. It reports false when obj is not an object. It is the one
// object walker of the codec: records, meta and values all go through it.
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

// Patch implements the optional method of [Codec]: unchanged values are
// copied byte for byte, in their order, and the ones in set follow, sorted.
func (JSONCodec) Patch(data, meta []byte, set map[string]any, deleted []string) ([]byte, error) {
	raw, err := valuesOf(data)
	if err != nil {
		return nil, err
	}
	return patchValues(raw, meta, set, deleted)
}

// patchValues is Patch on a record's values object raw, already checked.
func patchValues(raw, meta []byte, set map[string]any, deleted []string) ([]byte, error) {
	b, err := withMeta(meta, len(raw)+32*len(set))
	if err != nil {
		return nil, err
	}
	b = append(b, '{')
	first := true
	sep := func() {
		if !first {
			b = append(b, ',')
		}
		first = false
	}
	eachMember(raw, func(key, rawKey, value []byte) {
		if _, changed := set[string(key)]; changed || slices.Contains(deleted, string(key)) {
			return
		}
		sep()
		b = append(append(append(b, rawKey...), ':'), value...)
	})
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		qk, err := json.Marshal(k)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrEncode, err)
		}
		v, err := json.Marshal(set[k])
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrEncode, err)
		}
		sep()
		b = append(append(append(b, qk...), ':'), v...)
	}
	b = append(b, "}}"...)
	if err := checkJSONDepth(b, maxJSONDepth); err != nil {
		return nil, fmt.Errorf("%w: values nested deeper than %d", ErrTooLarge, maxJSONDepth)
	}
	return b, nil
}
