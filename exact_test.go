package session_test

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sessionkit/session"
)

// The same-key read-modify-write guarantee: 50 requests increment one key
// of one session at once. With Add (or Update) every increment lands: the
// result is exactly 50. With a plain Put of a value computed from a Get,
// no increment is silently lost: the result equals the number of requests
// that succeeded, and every other one was answered 409.

func TestSameKeyIncrements(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { exactSuite(t, b.new) })
	}
}

func exactSuite(t *testing.T, newStore func(t testing.TB) session.Store) {
	store := newStore(t)
	if _, ok := store.(session.CompareAndSetter); !ok {
		t.Skip("the store cannot compare and set: the last writer wins (Options.AllowLastWriterWins)")
	}
	t.Run("Add50", func(t *testing.T) { testIncrements(t, store, "add") })
	t.Run("GetPut50", func(t *testing.T) { testIncrements(t, store, "put") })
}

func testIncrements(t *testing.T, store session.Store, how string) {
	a := newHardApp(t, store, session.Options{})
	a.mux.HandleFunc("POST /inc", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		switch how {
		case "add":
			if _, err := s.Add("n", 1); err != nil {
				http.Error(w, err.Error(), 500)
			}
		case "put":
			s.Put("n", s.GetInt("n")+1)
		}
		s.Put("last", r.URL.Query().Get("i")) // a key every request writes blindly
	})
	a.mux.HandleFunc("GET /n", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, session.From(r).GetInt("n"))
	})
	cookie := a.login(randomName("u"))
	const n = 50
	var ok, conflict atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, body, _ := a.call("POST", fmt.Sprintf("/inc?i=%d", i), cookie)
			switch resp.StatusCode {
			case 200:
				ok.Add(1)
			case 409:
				conflict.Add(1)
			default:
				t.Errorf("increment answered %d: %s", resp.StatusCode, body)
			}
		}()
	}
	close(start)
	wg.Wait()
	_, body, _ := a.call("GET", "/n", cookie)
	got := 0
	fmt.Sscan(body, &got)
	switch how {
	case "add":
		if got != n || ok.Load() != n {
			t.Fatalf("%d concurrent Adds: n = %d, %d answered 200; want exactly %d", n, got, ok.Load(), n)
		}
	case "put":
		if int32(got) != ok.Load() || ok.Load()+conflict.Load() != n {
			t.Fatalf("%d concurrent Get+Put: n = %d but %d requests succeeded and %d were told of a conflict: an increment was lost silently", n, got, ok.Load(), conflict.Load())
		}
		t.Logf("%d concurrent Get+Put increments: %d landed, %d answered 409, n = %d", n, ok.Load(), conflict.Load(), got)
	}
}
