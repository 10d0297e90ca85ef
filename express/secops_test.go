package express_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/audit"
	"github.com/sessionkit/session/express"
)

// TestRevokeAllUnsupported: express-session records cannot carry the
// epoch RevokeAll needs (the codec keeps no meta), so RevokeAll says so
// instead of pretending.
func TestRevokeAllUnsupported(t *testing.T) {
	mem := session.NewMemoryStore(session.MemoryOptions{})
	t.Cleanup(func() { mem.Close() })
	m := expressManager(t, mem, "secret")
	if err := m.RevokeAll(t.Context()); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("RevokeAll in the express mode = %v, want ErrUnsupported", err)
	}
}

// TestEventsHideTheSID: in the express mode the store id is the sid, which
// with the secret is a cookie: events show what Session.ID shows instead.
func TestEventsHideTheSID(t *testing.T) {
	mem := session.NewMemoryStore(session.MemoryOptions{})
	t.Cleanup(func() { mem.Close() })
	var mu sync.Mutex
	var evs []audit.Event
	m, err := express.New(mem, []string{"a secret of at least 32 bytes, for the test"}, session.Options{
		OnEvent: func(e audit.Event) { mu.Lock(); evs = append(evs, e); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	var id string
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		s.Put("k", "v")
		id = s.ID()
		io.WriteString(w, "ok")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	m.Close() // delivers the events
	mu.Lock()
	defer mu.Unlock()
	if len(evs) != 1 || evs[0].Kind != audit.Created || evs[0].ID != id {
		t.Fatalf("events %+v, want one created with ID %q", evs, id)
	}
	for _, c := range rec.Result().Cookies() {
		sid, _, _ := strings.Cut(strings.TrimPrefix(c.Value, "s%3A"), ".")
		if sid == "" || strings.Contains(evs[0].String()+evs[0].ID, sid) {
			t.Fatalf("the event carries the sid %q: %+v", sid, evs[0])
		}
	}
}
