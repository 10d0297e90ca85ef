package session_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/session"
)

func TestTypedGettersAfterRoundTrip(t *testing.T) {
	for name, codec := range map[string]session.Codec{"JSON": session.JSONCodec{}, "Gob": session.GobCodec{}} {
		t.Run(name, func(t *testing.T) {
			a := newApp(t, memStore(t), session.Options{Codec: codec})
			when := time.Date(2026, 11, 28, 6, 0, 0, 123456789, time.UTC)
			a.mux.HandleFunc("POST /set", func(w http.ResponseWriter, r *http.Request) {
				s := session.From(r)
				s.Put("s", "text")
				s.Put("i", 42)
				s.Put("i64", int64(1)<<60)
				s.Put("f", 2.5)
				s.Put("b", true)
				s.Put("t", when)
				s.Put("bytes", []byte{0, 1, 2, 255})
				s.Put("flash", "Saved.")
			})
			var got struct {
				s     string
				i     int
				i64   int64
				f     float64
				b     bool
				t     time.Time
				bytes []byte
				flash []string
				has   bool
			}
			a.mux.HandleFunc("GET /read", func(w http.ResponseWriter, r *http.Request) {
				s := session.From(r)
				got.s, got.i, got.i64, got.f, got.b = s.GetString("s"), s.GetInt("i"), s.GetInt64("i64"), s.GetFloat64("f"), s.GetBool("b")
				got.t, got.bytes = s.GetTime("t"), s.GetBytes("bytes")
				got.flash = append(got.flash, s.PopString("flash"), s.PopString("flash"))
				got.has = s.Has("flash")
			})
			a.do("POST", "/set")
			a.do("GET", "/read")
			if got.s != "text" || got.i != 42 || got.i64 != 1<<60 || got.f != 2.5 || !got.b {
				t.Fatalf("scalars: %+v", got)
			}
			if !got.t.Equal(when) || string(got.bytes) != "\x00\x01\x02\xff" {
				t.Fatalf("time %v, bytes %v", got.t, got.bytes)
			}
			if got.flash[0] != "Saved." || got.flash[1] != "" || got.has {
				t.Fatalf("flash: %q, has after pop %v", got.flash, got.has)
			}
			a.do("GET", "/read")
			if got.flash[2] != "" {
				t.Fatal("flash shown twice")
			}
		})
	}
}

// TestJSONIsReadable: an operator reading the store sees plain JSON.
func TestJSONIsReadable(t *testing.T) {
	data, err := session.JSONCodec{}.Encode(session.Payload{Values: map[string]any{"user_id": 42}, CreatedAt: time.UnixMilli(1764300000000)})
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != `{"created":1764300000000,"values":{"user_id":42}}` {
		t.Fatalf("stored JSON = %s", data)
	}
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
}

func TestCodecsRejectGarbage(t *testing.T) {
	bomb := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	inputs := []string{"", "{", "null", "[]", `{"created":0,"values":{}}`, `{"created":1}{}`, bomb,
		`{"created":1,"values":` + strings.Repeat(`{"a":`, 1000) + "1" + strings.Repeat("}", 1000) + "}", "\x00\x01garbage"}
	for _, codec := range []session.Codec{session.JSONCodec{}, session.GobCodec{}} {
		for _, in := range inputs {
			if _, err := codec.Decode([]byte(in)); !errors.Is(err, session.ErrBadPayload) {
				t.Errorf("%T.Decode(%.30q) = %v, want ErrBadPayload", codec, in, err)
			}
		}
	}
}

// FuzzPayloadDecode: no stored bytes make a codec panic, and whatever
// decodes re-encodes.
func FuzzPayloadDecode(f *testing.F) {
	good, _ := session.JSONCodec{}.Encode(session.Payload{Values: map[string]any{"a": 1, "b": []any{"x"}}, CreatedAt: time.Now()})
	gob, _ := session.GobCodec{}.Encode(session.Payload{Values: map[string]any{"a": 1}, CreatedAt: time.Now()})
	for _, s := range [][]byte{good, gob, []byte("{}"), []byte(`{"created":1,"values":null}`), []byte("[[[[")} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range []session.Codec{session.JSONCodec{}, session.GobCodec{}} {
			p, err := c.Decode(data)
			if err != nil {
				continue
			}
			if _, err := c.Encode(p); err != nil {
				t.Fatalf("%T: decoded payload does not re-encode: %v", c, err)
			}
		}
	})
}

func TestTooLarge(t *testing.T) {
	a := newApp(t, memStore(t), session.Options{MaxSize: 1024})
	routes(a)
	a.mux.HandleFunc("POST /big", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Put("big", strings.Repeat("x", 1<<20))
		io.WriteString(w, "ok")
	})
	a.do("POST", "/put?k=user&v=ada")
	resp, _ := a.do("POST", "/big")
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized session: %s, want 413", resp.Status)
	}
	if _, body := a.do("GET", "/get?k=user"); body != "ada" {
		t.Fatalf("an oversized write damaged the session: %q", body)
	}
}
