package session_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/audit"
)

// TestUserLimit: Options.MaxUserSessions on every backend, directly and
// through each mode of Open: the least recently used sessions go, or,
// refusing, the login fails with a clear error; and 20 simultaneous
// logins of one user on two processes with a limit of 3 leave at most 3
// live, each session ended reported as evicted exactly once.
func TestUserLimit(t *testing.T) {
	for _, c := range epochStores() {
		t.Run(c.name, func(t *testing.T) {
			store := c.new(t, false)
			t.Run("EvictsLeastRecentlyUsed", func(t *testing.T) { testLimitEvicts(t, store) })
			t.Run("Refuses", func(t *testing.T) { testLimitRefuses(t, store) })
			t.Run("TwentyLoginsLimitThree", func(t *testing.T) { testLimitRace(t, store, false) })
			t.Run("TwentyLoginsLimitThreeRefusing", func(t *testing.T) { testLimitRace(t, store, true) })
		})
	}
}

func testLimitEvicts(t *testing.T, store session.Store) {
	log := &eventLog{}
	a := newSecApp(t, store, session.Options{MaxUserSessions: 3, OnEvent: log.add, Metadata: session.Metadata{LastSeen: true}, TouchInterval: time.Nanosecond})
	u := randomName("lru")
	var cookies, ids []string
	for range 3 {
		c := a.login(u)
		cookies, ids = append(cookies, c), append(ids, a.storeID(c))
		time.Sleep(5 * time.Millisecond)
	}
	// The first login is used again: now the second is the least
	// recently used.
	if a.whoami(cookies[0]) != u {
		t.Fatal("first session lost")
	}
	time.Sleep(5 * time.Millisecond)
	fourth := a.login(u)
	if a.whoami(cookies[1]) != "" {
		t.Fatal("the least recently used session was not ended")
	}
	for _, c := range []string{cookies[0], cookies[2], fourth} {
		if a.whoami(c) != u {
			t.Fatal("a session that was used more recently was ended")
		}
	}
	if list, err := a.m.UserSessions(bg(), u); err != nil || len(list) != 3 {
		t.Fatalf("UserSessions: %d, %v; want 3", len(list), err)
	}
	if e := log.await(t, audit.Evicted, ids[1], time.Second); e.UserID != u || e.Reason != "limit" {
		t.Errorf("evicted: %+v", e)
	}
	if n := len(log.find(audit.Evicted, "")); n != 1 {
		t.Errorf("%d sessions reported evicted, want 1", n)
	}
}

func testLimitRefuses(t *testing.T, store session.Store) {
	a := newSecApp(t, store, session.Options{MaxUserSessions: 2, RefuseOverLimit: true})
	u := randomName("refuse")
	c1, c2 := a.login(u), a.login(u)
	code, body, _ := a.serve("POST", "/login?user="+u, "")
	if code != 403 || !strings.Contains(body, session.ErrTooManySessions.Error()) {
		t.Fatalf("third login: %d %q, want 403 with ErrTooManySessions", code, body)
	}
	if a.whoami(c1) != u || a.whoami(c2) != u {
		t.Fatal("a refused login ended an existing session")
	}
	// Once one ends, a login fits again.
	a.serve("POST", "/logout", c1)
	a.login(u)
}

func testLimitRace(t *testing.T, store session.Store, refuse bool) {
	log := &eventLog{}
	opts := session.Options{MaxUserSessions: 3, RefuseOverLimit: refuse, OnEvent: log.add}
	procs := []*secApp{newSecApp(t, store, opts), newSecApp(t, store, opts)}
	u := randomName("race")
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			code, body, _ := procs[i%2].serve("POST", "/login?user="+u, "")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case code == 200:
				ok++
			case code == 403 && refuse:
				refused++
			default:
				t.Errorf("login: %d %q", code, body)
			}
		}()
	}
	close(start)
	wg.Wait()
	for _, p := range procs {
		p.m.Close() // every event delivered
	}
	list, err := store.(session.UserIndex).ListUser(bg(), u)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) > 3 || len(list) == 0 && !refuse {
		t.Fatalf("after %d simultaneous logins with a limit of 3: %d live sessions", n, len(list))
	}
	evicted := log.find(audit.Evicted, "")
	if refuse {
		if ok+refused != n || ok > 3 || len(evicted) != 0 {
			t.Fatalf("refusing: %d logins in, %d refused, %d evicted; %d live", ok, refused, len(evicted), len(list))
		}
		t.Logf("refusing: %d logins in, %d refused; %d live", ok, refused, len(list))
		return
	}
	// Every login got in; every session ended was reported once.
	if ok != n {
		t.Fatalf("%d of %d logins succeeded", ok, n)
	}
	seen := map[string]bool{}
	for _, e := range evicted {
		if seen[e.ID] {
			t.Errorf("session %s reported evicted twice", e.ID)
		}
		seen[e.ID] = true
		if e.UserID != u || e.Reason != "limit" {
			t.Errorf("evicted: %+v", e)
		}
	}
	for _, r := range list {
		if seen[r.ID] {
			t.Errorf("session %s reported evicted but live", r.ID)
		}
	}
	if len(evicted)+len(list) != n {
		t.Fatalf("%d evicted + %d live, want %d", len(evicted), len(list), n)
	}
	t.Logf("evicting: %d logins, %d live, %d evicted", n, len(list), len(evicted))
}

// TestUserLimitOptions: the limit needs a store that can list a user's
// sessions, and a negative one is an error.
func TestUserLimitOptions(t *testing.T) {
	if _, err := session.New(fakeStore(t, abCAS), session.Options{MaxUserSessions: 3}); !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "MaxUserSessions") {
		t.Errorf("MaxUserSessions on a store without UserIndex: %v", err)
	}
	if _, err := session.New(memStore(t), session.Options{MaxUserSessions: -1}); err == nil || !strings.Contains(err.Error(), "Options.MaxUserSessions") {
		t.Errorf("negative MaxUserSessions: %v", err)
	}
}
