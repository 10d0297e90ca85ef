package session_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/sessionkit/session"
)

// The session of a request is reached with session.From. Login puts the
// user id and renews the session, so that a token from before the login is
// worthless; logout destroys it; a flash message is put once and popped
// once.
func Example() {
	store := session.NewMemoryStore(session.MemoryOptions{})
	defer store.Close()
	key, _ := session.KeyFromSecret("a secret of at least thirty-two bytes!", false)
	sessions, err := session.New(store, session.Options{Keys: []session.KeyPair{key}})
	if err != nil {
		panic(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		if err := s.Renew(); err != nil { // new id after a privilege change
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		s.Put("user", r.FormValue("user"))
		s.Put("flash", "Welcome back!")
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		user := s.GetString("user")
		flash := s.PopString("flash") // shown once
		if user == "" {
			user = "guest"
		}
		fmt.Fprintf(w, "hello %s %s", user, flash)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Destroy() // record deleted, cookie expired
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})

	srv := httptest.NewServer(sessions.Handler(mux))
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	show := func(resp *http.Response, err error) {
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(strings.TrimSpace(string(body)))
	}
	show(client.PostForm(srv.URL+"/login", url.Values{"user": {"ada"}}))
	show(client.Get(srv.URL + "/"))
	show(client.Post(srv.URL+"/logout", "", nil))
	// Output:
	// hello ada Welcome back!
	// hello ada
	// hello guest
}
