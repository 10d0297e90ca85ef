package session

import (
	"strconv"
	"testing"
)

// TestMemoTable checks the table itself: what it returns is only ever
// what was stored under that exact key, it keeps the last two keys of a
// pair, and it refuses keys over the size cap.
func TestMemoTable(t *testing.T) {
	c := newMemo[int]()
	for i := range 3 * memoSlots {
		c.remember("k"+strconv.Itoa(i), i)
	}
	hits := 0
	for i := range 3 * memoSlots {
		k := "k" + strconv.Itoa(i)
		v, ok := c.lookupSecret(k)
		if ok && v != i {
			t.Fatalf("key %q: got %d", k, v)
		}
		if v2, ok2 := c.lookup([]byte(k)); ok2 != ok || v2 != v {
			t.Fatalf("key %q: lookup and lookupSecret disagree", k)
		}
		if ok {
			hits++
		}
	}
	if hits > memoSlots || hits < memoSlots/2 {
		t.Fatalf("%d of %d keys remembered by %d slots", hits, 3*memoSlots, memoSlots)
	}
	// The last key stored is always found, and so is the one it pushed
	// to the other slot of its pair.
	c.remember("a", 1)
	c.remember("b", 2)
	if v, ok := c.lookupSecret("b"); !ok || v != 2 {
		t.Fatalf("last key: %d %v", v, ok)
	}
	if _, ok := c.lookupSecret("b\x00"); ok {
		t.Fatal("a longer key matched")
	}
	if _, ok := c.lookupSecret(""); ok {
		t.Fatal("the empty key matched")
	}
	big := string(make([]byte, memoMaxKey+1))
	c.remember(big, 9)
	if _, ok := c.lookupSecret(big); ok {
		t.Fatal("a key over the cap was remembered")
	}
	var nilMemo *memo[int]
	nilMemo.remember("x", 1)
	if _, ok := nilMemo.lookup([]byte("x")); ok {
		t.Fatal("a nil memo remembered")
	}
}

// TestWithin checks the values-object offset the record memo keeps.
func TestWithin(t *testing.T) {
	data := []byte(`{"created":1,"values":{"a":1}}`)
	vals, err := valuesOf(data)
	if err != nil {
		t.Fatal(err)
	}
	off, ok := within(data, vals)
	if !ok || string(data[off:off+len(vals)]) != `{"a":1}` {
		t.Fatalf("within: %d %v", off, ok)
	}
	if _, ok := within(data, []byte(`{"a":1}`)); ok {
		t.Fatal("a copy was taken for a piece")
	}
	none, _ := valuesOf([]byte(`{"created":1}`))
	if _, ok := within([]byte(`{"created":1}`), none); ok {
		t.Fatal(`"{}" for a record without values was taken for a piece`)
	}
}
