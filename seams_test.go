package session_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/session"
)

// The seams a store shared with another program needs (package express is
// built on them): a TokenCodec's NewToken, its StoreID (whose store ids
// Session.ID hides behind a hash), and Options.KeepUnreadable.

// pickyCodec is JSONCodec, except that records another program wrote
// ("foreign:…") do not decode, with an error of its own that does not
// wrap ErrBadPayload.
type pickyCodec struct{ json session.JSONCodec }

func (c pickyCodec) Encode(meta []byte, values map[string]any) ([]byte, error) {
	return c.json.Encode(meta, values)
}

func (c pickyCodec) Decode(data []byte) ([]byte, map[string]any, error) {
	if bytes.HasPrefix(data, []byte("foreign:")) {
		return nil, nil, errors.New("not a record of mine")
	}
	return c.json.Decode(data)
}

// countedTokens is a TokenCodec (unsigned: for this test only) whose
// NewToken makes the tokens, and remembers them.
type countedTokens struct {
	mu     sync.Mutex
	tokens []string
}

func (c *countedTokens) Encode(_, token string) (string, error) { return "v1." + token, nil }

func (c *countedTokens) Decode(_, value string) (string, bool, error) {
	token, ok := strings.CutPrefix(value, "v1.")
	if !ok {
		return "", false, errors.New("not a value of mine")
	}
	return token, false, nil
}

func (c *countedTokens) NewToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tokens = append(c.tokens, "counted-"+hex.EncodeToString(b))
	return c.tokens[len(c.tokens)-1]
}

func (c *countedTokens) last() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.tokens) == 0 {
		return "(NewToken never called)"
	}
	return c.tokens[len(c.tokens)-1]
}

// seamsServer serves GET / (counts in the session, answers Session.ID)
// with a manager on store and opts.
func seamsServer(t *testing.T, store session.Store, opts session.Options) (*httptest.Server, *http.Client) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	m, err := session.New(store, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		if err := s.Put("n", s.GetInt("n")+1); err != nil {
			return
		}
		io.WriteString(w, s.ID())
	})))
	t.Cleanup(srv.Close)
	return srv, newClient(t)
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

// TestOptionsTokenCodecNewToken: a TokenCodec with NewToken makes every
// new session's token; without StoreID, Session.ID is still the store id,
// the SHA-256 of the token.
func TestOptionsTokenCodecNewToken(t *testing.T) {
	codec := &countedTokens{}
	store := memStore(t)
	srv, c := seamsServer(t, store, session.Options{TokenCodec: codec})
	_, id := get(t, c, srv.URL)
	token := codec.last()
	if want := (session.SHA256Hasher{}).StoreID(token); id != want {
		t.Errorf("Session.ID = %q, want the store id %q", id, want)
	}
	if _, err := store.Get(t.Context(), id); err != nil {
		t.Errorf("no record under the SHA-256 of NewToken's token: %v", err)
	}
}

// TestOptionsTokenCodecStoreID: with a TokenCodec that names store ids
// (here the identity: the store id is the token), Session.ID is a stable
// hash of the store id, never the store id.
func TestOptionsTokenCodecStoreID(t *testing.T) {
	codec := identityTokens{&countedTokens{}}
	store := memStore(t)
	srv, c := seamsServer(t, store, session.Options{TokenCodec: codec})
	_, id := get(t, c, srv.URL)
	token := codec.last()
	if _, err := store.Get(t.Context(), token); err != nil {
		t.Fatalf("no record under the token itself: %v", err)
	}
	if id == "" || bytes.Contains([]byte(id), []byte(token)) {
		t.Errorf("Session.ID = %q shows the store id %q", id, token)
	}
	if _, again := get(t, c, srv.URL); again != id {
		t.Errorf("Session.ID changed from %q to %q", id, again)
	}
}

// identityTokens names a token's record by the token itself.
type identityTokens struct{ *countedTokens }

func (identityTokens) StoreID(token string) string { return token }

// TestOptionsKeepUnreadable: with KeepUnreadable, a record the codec
// cannot read is left as it is and the request fails with ErrBadPayload
// (500 by the default ErrorHandler), whatever error the codec returned;
// without it, the record is destroyed and the client gets a fresh
// session.
func TestOptionsKeepUnreadable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		keep    bool
		handler bool // a custom ErrorHandler that records the error
	}{
		{"keep, default handler", true, false},
		{"keep, own handler", true, true},
		{"default", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := memStore(t)
			var handled error
			opts := session.Options{Keys: []session.KeyPair{testKey}, Codec: pickyCodec{}, KeepUnreadable: tc.keep}
			if tc.handler {
				opts.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
					handled = err
					http.Error(w, "unreadable", http.StatusInternalServerError)
				}
			}
			srv, c := seamsServer(t, store, opts)
			code, id := get(t, c, srv.URL)
			if code != 200 || id == "" {
				t.Fatalf("first request: %d %q", code, id)
			}
			foreign := session.Record{Data: []byte("foreign:another program's"), Expires: time.Now().Add(time.Hour)}
			if err := store.Set(t.Context(), id, foreign); err != nil {
				t.Fatal(err)
			}
			code, newID := get(t, c, srv.URL)
			after, err := store.Get(t.Context(), id)
			if !tc.keep {
				if code != 200 || newID == id || err == nil {
					t.Errorf("without KeepUnreadable: %d, id %q -> %q, old record %q (%v); want 200, a fresh session, the record gone", code, id, newID, after.Data, err)
				}
				return
			}
			if code != 500 {
				t.Errorf("status %d, want 500", code)
			}
			if err != nil || !bytes.Equal(after.Data, foreign.Data) {
				t.Errorf("record became %q (%v), want it left as it was", after.Data, err)
			}
			if tc.handler && !errors.Is(handled, session.ErrBadPayload) {
				t.Errorf("ErrorHandler got %v, want ErrBadPayload", handled)
			}
		})
	}
}
