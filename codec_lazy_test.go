package session

import (
	"reflect"
	"testing"
	"time"
)

// FuzzLazyJSON: the lazy methods agree with the full decoder on every
// input: the same records are accepted, with the same meta and values.
func FuzzLazyJSON(f *testing.F) {
	p := payload{CreatedAt: time.UnixMilli(1764300000000), UserID: "ada", UserAgent: "ua", IP: "ip"}
	good, _ := JSONCodec{}.Encode(p.meta(), map[string]any{
		"user_id": 42, "email": "ada@example.com", "roles": []string{"admin", "dev"}, "esc\"aped": "tab\there", "n": nil, "b": true, "f": -1.5e3, "obj": map[string]any{"x": []any{1, "}"}},
	})
	for _, s := range []string{string(good), `{"created":1,"values":{}}`, `{"values":{"a":1},"created":5,"transient":true}`, `{"created":1,"values":null}`,
		`{"created":1,"values":[]}`, `{"created":1, "values" : { "a" : "b" , "c":[ ] } }`, `{"created":1,"created":2,"values":{"a":1,"a":2}}`, `{"created":1e3,"values":{}}`} {
		f.Add([]byte(s))
	}
	c := JSONCodec{}
	f.Fuzz(func(t *testing.T, data []byte) {
		meta, values, errFull := c.Decode(data)
		lazyMeta, errLazy := c.DecodeMeta(data)
		if (errFull == nil) != (errLazy == nil) {
			t.Fatalf("full decode error %v, lazy decode error %v, for %q", errFull, errLazy, data)
		}
		if errFull != nil {
			return
		}
		full, errFull := parseMeta(meta, true)
		lazy, errLazy := parseMeta(lazyMeta, false)
		if (errFull == nil) != (errLazy == nil) {
			t.Fatalf("meta: full error %v, lazy error %v, for %q", errFull, errLazy, data)
		}
		if !full.CreatedAt.Equal(lazy.CreatedAt) || full.Transient != lazy.Transient || full.UserID != lazy.UserID {
			t.Fatalf("meta differs: full %+v, lazy %+v", full, lazy)
		}
		for k, want := range values {
			got, ok := c.Lookup(data, k)
			if !ok || !reflect.DeepEqual(got, want) {
				t.Fatalf("lookup %q = %#v, %v; want %#v", k, got, ok, want)
			}
		}
		if _, ok := c.Lookup(data, "\x00absent"); ok {
			t.Fatal("lookup found an absent key")
		}
		// Patch with no change re-encodes to what Encode makes.
		patched, err := c.Patch(data, meta, nil, nil)
		if err != nil {
			t.Fatalf("patch: %v", err)
		}
		if _, v2, err := c.Decode(patched); err != nil || !reflect.DeepEqual(v2, values) {
			t.Fatalf("patched values %v (%v), want %v", v2, err, values)
		}
	})
}
