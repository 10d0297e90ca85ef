package sqlitestore

import (
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/sessiontest"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// newStore returns a Store on a database file of its own.
func newStore(t *testing.T) *Store {
	path := filepath.Join(t.TempDir(), "sessions.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	// One connection: SQLite has one writer at a time anyway, and this
	// way concurrent writers queue in database/sql instead of failing
	// with SQLITE_BUSY.
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	s, err := New(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConformance runs the suite every store must pass, and checks which
// optional abilities it skipped: exactly the two this store leaves out.
func TestConformance(t *testing.T) {
	skipped := sessiontest.Run(t, func(t *testing.T) session.Store { return newStore(t) })
	var names []string
	for _, s := range skipped {
		names = append(names, s.Ability)
	}
	if want := []string{"session.UserIndex", "io.Closer"}; !slices.Equal(names, want) {
		t.Errorf("skipped %q, want %q", names, want)
	}
}

// TestServer runs the store under the middleware, end to end: a visit
// counter kept across requests, and a logout that ends the session.
func TestServer(t *testing.T) {
	store := newStore(t)
	key, err := session.KeyFromSecret("a test secret of at least thirty-two bytes", false)
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := session.New(store, session.Options{Keys: []session.KeyPair{key}})
	if err != nil {
		t.Fatal(err) // ErrNoCompareAndSet, were the store not a CompareAndSetter
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /visit", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		n := s.GetInt("visits") + 1
		s.Put("visits", n)
		fmt.Fprint(w, n)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Destroy()
	})
	srv := httptest.NewServer(sessions.Handler(mux))
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	visit := func() string {
		t.Helper()
		res, err := client.Get(srv.URL + "/visit")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return string(body)
	}
	for want := 1; want <= 3; want++ {
		if got := visit(); got != fmt.Sprint(want) {
			t.Fatalf("visit %d answered %q", want, got)
		}
	}
	if n, err := store.Count(t.Context()); err != nil || n != 1 {
		t.Fatalf("Count = %d, %v; want 1 session", n, err)
	}
	res, err := client.Post(srv.URL+"/logout", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if n, _ := store.Count(t.Context()); n != 0 {
		t.Fatalf("after logout, Count = %d, want 0", n)
	}
	if got := visit(); got != "1" {
		t.Fatalf("after logout, visit answered %q, want a fresh session", got)
	}
}
