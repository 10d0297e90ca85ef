package session_test

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/session"
)

func TestTypedGettersAfterRoundTrip(t *testing.T) {
	for name, codec := range map[string]session.Codec{"JSON": session.JSONCodec{}, "Gob": gobCodec{}} {
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
	data, err := session.JSONCodec{}.Encode([]byte(`{"created":1764300000000}`), map[string]any{"user_id": 42})
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
	codec := session.JSONCodec{}
	for _, in := range inputs {
		if _, _, err := codec.Decode([]byte(in)); !errors.Is(err, session.ErrBadPayload) && in != `{"created":0,"values":{}}` {
			t.Errorf("Decode(%.30q) = %v, want ErrBadPayload", in, err)
		}
		if _, err := codec.DecodeMeta([]byte(in)); !errors.Is(err, session.ErrBadPayload) && in != `{"created":0,"values":{}}` {
			t.Errorf("DecodeMeta(%.30q) = %v, want ErrBadPayload", in, err)
		}
	}
}

// FuzzPayloadDecode: no stored bytes make a codec panic, and whatever
// decodes re-encodes.
func FuzzPayloadDecode(f *testing.F) {
	good, _ := session.JSONCodec{}.Encode([]byte(`{"created":1,"user":"ada"}`), map[string]any{"a": 1, "b": []any{"x"}})
	for _, s := range [][]byte{good, []byte("{}"), []byte(`{"created":1,"values":null}`), []byte("[[[[")} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := session.JSONCodec{}
		meta, values, err := c.Decode(data)
		if err != nil {
			return
		}
		again, err := c.Encode(meta, values)
		if err != nil {
			t.Fatalf("decoded record does not re-encode: %v", err)
		}
		if _, v2, err := c.Decode(again); err != nil || len(v2) != len(values) {
			t.Fatalf("re-encoded record decodes to %d values (%v), want %d", len(v2), err, len(values))
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

// gobCodec is a codec of a user's own, with none of the optional methods:
// values keep their Go types, and the manager's meta is kept as bytes it
// never looks into.
type gobCodec struct{}

type gobRecord struct {
	Meta   []byte
	Values map[string]any
}

func init() {
	gob.Register(time.Time{})
	gob.Register([]any{})
	gob.Register(map[string]any{})
}

func (gobCodec) Encode(meta []byte, values map[string]any) ([]byte, error) {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(gobRecord{meta, values}); err != nil {
		return nil, fmt.Errorf("%w: %v", session.ErrEncode, err)
	}
	return b.Bytes(), nil
}

func (gobCodec) Decode(data []byte) ([]byte, map[string]any, error) {
	var r gobRecord
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&r); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", session.ErrBadPayload, err)
	}
	return r.Meta, r.Values, nil
}

// TestOwnCodecKeepsMeta: a codec that knows nothing of the manager's facts
// still keeps them all: the user binding and its metadata, the remember-me
// choice, and the absolute lifetime's start.
func TestOwnCodecKeepsMeta(t *testing.T) {
	store := memStore(t)
	a := newApp(t, store, session.Options{Codec: gobCodec{}, Metadata: session.Metadata{UserAgent: true, LastSeen: true}})
	routes(a)
	a.mux.HandleFunc("POST /bind", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		if err := s.SetUser("ada"); err != nil {
			t.Error(err)
		}
		s.RememberMe(false)
		s.Put("n", 1)
	})
	a.mux.HandleFunc("GET /mine", func(w http.ResponseWriter, r *http.Request) {
		list, err := a.m.UserSessions(r.Context(), "ada")
		if err != nil || len(list) != 1 {
			t.Errorf("UserSessions = %v, %v; want one", list, err)
			return
		}
		fmt.Fprintf(w, "%s|%v|%s", session.From(r).UserID(), list[0].Current, list[0].UserAgent)
	})
	resp, _ := a.do("POST", "/bind")
	for _, c := range resp.Cookies() {
		if c.Name == "session" && (c.MaxAge != 0 || !c.Expires.IsZero()) {
			t.Fatalf("remember-me off, yet the cookie persists: %+v", c)
		}
	}
	a.do("POST", "/put?k=x&v=y") // a second write, through the codec's round trip
	if _, body := a.do("GET", "/mine"); !strings.HasPrefix(body, "ada|true|") || strings.HasSuffix(body, "|") {
		t.Fatalf("after two writes through the codec: %q, want the binding, current and the User-Agent", body)
	}
	if _, body := a.do("GET", "/get?k=x"); body != "y" {
		t.Fatalf("value = %q", body)
	}
}
