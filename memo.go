package session

import (
	"crypto/subtle"
	"hash/maphash"
	"sync/atomic"
)

// A read-only request spends most of its own CPU proving things it proved
// on the client's previous request: that the cookie's HMAC verifies (and
// which store id its token hashes to), and that the stored record is valid
// JSON with sane meta. Both are pure functions of bytes that repeat from
// request to request, so a manager remembers recent answers in two small
// fixed-size tables and skips the work when the very same bytes come back.
//
// What this never changes:
//   - Only what verified or decoded is remembered; a value that failed is
//     checked again in full each time.
//   - A hit needs the whole key equal, byte for byte (the cookie value in
//     constant time), not only its hash: a cookie that differs in one
//     byte, or a record another process rewrote, is checked in full.
//   - The store is still read on every request that uses its session, so
//     a destroyed or revoked session is refused as before; only the proof
//     about the bytes is reused, never the record.
//   - It is used only for the manager's own token codec (signing keys
//     fixed at New, no time check) and the default JSON codec, whose
//     answers depend on nothing but the bytes. A codec of one's own is
//     always called.
//
// Memory is bounded: memoSlots entries per table, keys of at most
// memoMaxKey bytes, so about 1 MB of cookies and at most 5 MB of records
// per manager (usually about 1.5 MB: a typical record is 300 bytes). The
// tables are two-way set-associative (a key may sit in either slot of
// its pair; a new key replaces the pair's other one, so the last two
// keys to land on a pair stay) and lock-free, so 64 clients on 2 cores
// do not queue on them.

const (
	memoSlots  = 4096 // per table; a power of two
	memoMaxKey = 1024 // longer cookies and records are not remembered
)

type memoEntry[V any] struct {
	key string
	val V
}

// memo is one table from a string key to V.
type memo[V any] struct {
	seed  maphash.Seed
	slots [memoSlots]atomic.Pointer[memoEntry[V]]
}

func newMemo[V any]() *memo[V] { return &memo[V]{seed: maphash.MakeSeed()} }

// pair returns the two slots a key of hash h may sit in.
func (c *memo[V]) pair(h uint64) (*atomic.Pointer[memoEntry[V]], *atomic.Pointer[memoEntry[V]]) {
	i := h & (memoSlots - 1)
	return &c.slots[i], &c.slots[i^1]
}

// lookupSecret returns the value remembered for key, comparing the whole
// key in constant time: key is client input, and a timing difference
// must not tell a client how much of another client's cookie it guessed.
func (c *memo[V]) lookupSecret(key string) (V, bool) {
	if c != nil && len(key) <= memoMaxKey {
		a, b := c.pair(maphash.String(c.seed, key))
		for _, e := range [2]*memoEntry[V]{a.Load(), b.Load()} {
			if e != nil && len(e.key) == len(key) && subtle.ConstantTimeCompare([]byte(e.key), []byte(key)) == 1 {
				return e.val, true
			}
		}
	}
	var zero V
	return zero, false
}

// lookup returns the value remembered for key, which is not secret.
func (c *memo[V]) lookup(key []byte) (V, bool) {
	if c != nil && len(key) <= memoMaxKey {
		a, b := c.pair(maphash.Bytes(c.seed, key))
		if e := a.Load(); e != nil && e.key == string(key) {
			return e.val, true
		}
		if e := b.Load(); e != nil && e.key == string(key) {
			return e.val, true
		}
	}
	var zero V
	return zero, false
}

// remember stores val for key in the first slot of its pair, moving
// what was there to the second.
func (c *memo[V]) remember(key string, val V) {
	if c != nil && len(key) <= memoMaxKey {
		a, b := c.pair(maphash.String(c.seed, key))
		if old := a.Swap(&memoEntry[V]{key: key, val: val}); old != nil && old.key != key {
			b.Store(old)
		}
	}
}

// rememberBytes is remember for a key the caller may reuse: it is copied.
func (c *memo[V]) rememberBytes(key []byte, val V) {
	if c != nil && len(key) <= memoMaxKey {
		c.remember(string(key), val)
	}
}

// verifiedToken is what a verified client value proved.
type verifiedToken struct {
	token   string
	id      string // the store id
	current bool   // signed with the key that signs now
}

// decodedRecord is what decoding a record of the JSON codec proved: its
// meta, and where its values object lies in it (off < 0: it has none).
type decodedRecord struct {
	p        payload
	off, end int
}

// decodeOwn is JSONCodec's DecodeMeta and parseMeta for data, or what
// they found for the very same bytes a moment ago, with data's values
// object.
func (m *Manager) decodeOwn(data []byte) (payload, []byte, error) {
	if d, ok := m.recordMemo.lookup(data); ok {
		if d.off < 0 {
			return d.p, emptyObject, nil
		}
		return d.p, data[d.off:d.end:d.end], nil
	}
	vals, err := valuesOf(data)
	if err != nil {
		return payload{}, nil, err
	}
	p, err := parseMeta(data, false)
	if err != nil {
		return payload{}, nil, err
	}
	d := decodedRecord{p: p, off: -1}
	if off, ok := within(data, vals); ok {
		d.off, d.end = off, off+len(vals)
	}
	m.recordMemo.rememberBytes(data, d)
	return p, vals, nil
}

// within returns where sub starts in data, if sub is a piece of data's
// memory (valuesOf returns a piece of the record, or "{}" when it has
// no values).
func within(data, sub []byte) (int, bool) {
	if len(sub) == 0 || len(data) == 0 || cap(sub) > cap(data) {
		return 0, false
	}
	off := cap(data) - cap(sub)
	if off+len(sub) > len(data) || &data[:cap(data)][off] != &sub[0] {
		return 0, false
	}
	return off, true
}

var emptyObject = []byte("{}")
