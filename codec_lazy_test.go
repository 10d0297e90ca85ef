package session

import (
	"reflect"
	"testing"
	"time"
)

// FuzzLazyJSON: the lazy decoder agrees with the full one on every input:
// the same records are accepted, with the same creation time, flags and
// values.
func FuzzLazyJSON(f *testing.F) {
	good, _ := JSONCodec{}.Encode(Payload{CreatedAt: time.UnixMilli(1764300000000), Values: map[string]any{
		"user_id": 42, "email": "ada@example.com", "roles": []string{"admin", "dev"}, "esc\"aped": "tab\there", "n": nil, "b": true, "f": -1.5e3, "obj": map[string]any{"x": []any{1, "}"}},
	}})
	for _, s := range []string{string(good), `{"created":1,"values":{}}`, `{"values":{"a":1},"created":5,"transient":true}`, `{"created":1,"values":null}`,
		`{"created":1,"values":[]}`, `{"created":1, "values" : { "a" : "b" , "c":[ ] } }`, `{"created":1,"created":2,"values":{"a":1,"a":2}}`, `{"created":1e3,"values":{}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		full, errFull := JSONCodec{}.Decode(data)
		lazy, raw, errLazy := JSONCodec{}.decodeLazy(data)
		if (errFull == nil) != (errLazy == nil) {
			t.Fatalf("full decode error %v, lazy decode error %v, for %q", errFull, errLazy, data)
		}
		if errFull != nil {
			return
		}
		if !full.CreatedAt.Equal(lazy.CreatedAt) || full.Transient != lazy.Transient {
			t.Fatalf("header differs: full %+v, lazy %+v", full, lazy)
		}
		values, err := decodeValues(raw)
		if err != nil || !reflect.DeepEqual(values, full.Values) {
			t.Fatalf("values differ: %v (%v) vs %v", values, err, full.Values)
		}
		for k, want := range full.Values {
			got, ok := lookupJSON(raw, k)
			if !ok || !reflect.DeepEqual(got, want) {
				t.Fatalf("lookup %q = %#v, %v; want %#v", k, got, ok, want)
			}
		}
		if _, ok := lookupJSON(raw, "\x00absent"); ok {
			t.Fatal("lookup found an absent key")
		}
	})
}
