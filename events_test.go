package session_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessionkit/session"
	"github.com/sessionkit/session/audit"
)

// eventLog records the events a Manager delivers.
type eventLog struct {
	mu  sync.Mutex
	evs []audit.Event
}

func (l *eventLog) add(e audit.Event) {
	l.mu.Lock()
	l.evs = append(l.evs, e)
	l.mu.Unlock()
}

func (l *eventLog) all() []audit.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]audit.Event(nil), l.evs...)
}

// find returns the events of kind about id ("" for any id).
func (l *eventLog) find(kind audit.Kind, id string) []audit.Event {
	var out []audit.Event
	for _, e := range l.all() {
		if e.Kind == kind && (id == "" || e.ID == id) {
			out = append(out, e)
		}
	}
	return out
}

// await waits up to d for an event of kind about id and returns it.
func (l *eventLog) await(t testing.TB, kind audit.Kind, id string, d time.Duration) audit.Event {
	t.Helper()
	var got []audit.Event
	within(t, "event "+string(kind)+" "+id, d, func() bool {
		got = l.find(kind, id)
		return len(got) > 0
	})
	return got[0]
}

// checkRequestMeta fails t unless e carries the metadata of secApp's
// requests.
func checkRequestMeta(t testing.TB, e audit.Event, path string) {
	t.Helper()
	if e.IP != "203.0.113.7" || e.UserAgent != "secops-test/1.0" || e.Path != path || e.Time.IsZero() || time.Since(e.Time) > time.Minute {
		t.Errorf("%s event: request metadata %+v, want IP 203.0.113.7, UA secops-test/1.0, path %s", e.Kind, e, path)
	}
}

// checkNoToken fails t when an event carries any of the tokens or
// cookie values the test's clients held.
func checkNoToken(t testing.TB, log *eventLog, cookies ...string) {
	t.Helper()
	for _, e := range log.all() {
		s := e.String() + "|" + e.ID + "|" + e.PreviousID + "|" + e.UserID + "|" + e.Reason
		for _, c := range cookies {
			if c != "" && strings.Contains(s, c) {
				t.Fatalf("event %v carries a cookie value", e)
			}
		}
	}
}

// TestEvents: every event kind, with its reason, ids, user and request
// metadata, on every backend directly and through each mode of Open.
func TestEvents(t *testing.T) {
	for _, c := range epochStores() {
		t.Run(c.name, func(t *testing.T) { testEvents(t, c.new(t, false)) })
	}
}

func testEvents(t *testing.T, store session.Store) {
	log := &eventLog{}
	a := newSecApp(t, store, session.Options{OnEvent: log.add, MaxUserSessions: 2})
	user := randomName("u")

	t.Run("Created", func(t *testing.T) {
		c := a.put("", "k", "v")
		e := log.await(t, audit.Created, a.storeID(c), time.Second)
		if e.UserID != "" || e.PreviousID != "" {
			t.Errorf("created: %+v", e)
		}
		checkRequestMeta(t, e, "/put")
	})
	t.Run("Renewed", func(t *testing.T) {
		c := a.put("", "k", "v")
		old := a.storeID(c)
		_, _, c2 := a.serve("POST", "/renew", c)
		e := log.await(t, audit.Renewed, a.storeID(c2), time.Second)
		if e.PreviousID != old || e.Reason != "renew" || e.ID == old {
			t.Errorf("renewed: %+v, previous want %s", e, old)
		}
		checkRequestMeta(t, e, "/renew")
	})
	t.Run("Bound", func(t *testing.T) {
		anon := a.put("", "k", "v")
		old := a.storeID(anon)
		_, _, c := a.serve("POST", "/login?user="+user, anon)
		e := log.await(t, audit.Bound, a.storeID(c), time.Second)
		if e.UserID != user || e.PreviousID != old {
			t.Errorf("bound: %+v", e)
		}
		checkRequestMeta(t, e, "/login")
		// A login on a brand-new session: created, then bound.
		c = a.login(user)
		id := a.storeID(c)
		log.await(t, audit.Bound, id, time.Second)
		if len(log.find(audit.Created, id)) != 1 {
			t.Error("a login on a new session was not reported as created")
		}
		checkNoToken(t, log, anon, c)
	})
	t.Run("Destroyed", func(t *testing.T) {
		c := a.login(user)
		id := a.storeID(c)
		a.serve("POST", "/logout", c)
		e := log.await(t, audit.Destroyed, id, time.Second)
		if e.UserID != user || e.Reason != "logout" {
			t.Errorf("destroyed: %+v", e)
		}
		checkRequestMeta(t, e, "/logout")
		// A logout of a session that does not exist reports nothing.
		n := len(log.find(audit.Destroyed, ""))
		a.serve("POST", "/logout", c)
		time.Sleep(50 * time.Millisecond)
		if len(log.find(audit.Destroyed, "")) != n {
			t.Error("a logout of an ended session was reported")
		}
	})
	t.Run("Revoked", func(t *testing.T) {
		u := randomName("r")
		c1, c2 := a.login(u), a.login(u)
		id1, id2 := a.storeID(c1), a.storeID(c2)
		a.serve("POST", "/revoke-others", c2)
		e := log.await(t, audit.Revoked, id1, time.Second)
		if e.Reason != "others" || e.UserID != u {
			t.Errorf("revoked (others): %+v", e)
		}
		checkRequestMeta(t, e, "/revoke-others")
		a.serve("POST", "/revoke-user?user="+u, "")
		if e := log.await(t, audit.Revoked, id2, time.Second); e.Reason != "user" {
			t.Errorf("revoked (user): %+v", e)
		}
		c3 := a.login(u)
		id3 := a.storeID(c3)
		list, err := a.m.UserSessions(bg(), u)
		if err != nil || len(list) != 1 {
			t.Fatal(list, err)
		}
		if n, err := a.m.RevokeSession(bg(), u, list[0].Handle); err != nil || n != 1 {
			t.Fatal(n, err)
		}
		if e := log.await(t, audit.Revoked, id3, time.Second); e.Reason != "session" || e.IP != "" {
			t.Errorf("revoked (session, no request): %+v", e)
		}
		if err := a.m.RevokeAll(bg()); err != nil {
			t.Fatal(err)
		}
		within(t, "RevokeAll reported", time.Second, func() bool {
			for _, e := range log.find(audit.Revoked, "") {
				if e.Reason == "all" && e.ID == "" && e.UserID == "" {
					return true
				}
			}
			return false
		})
	})
	t.Run("Evicted", func(t *testing.T) {
		u := randomName("e")
		c1 := a.login(u)
		id1 := a.storeID(c1)
		time.Sleep(5 * time.Millisecond)
		a.login(u)
		time.Sleep(5 * time.Millisecond)
		a.login(u) // over MaxUserSessions 2: the first goes
		e := log.await(t, audit.Evicted, id1, time.Second)
		if e.UserID != u || e.Reason != "limit" {
			t.Errorf("evicted: %+v", e)
		}
		checkRequestMeta(t, e, "/login")
		if a.whoami(c1) != "" {
			t.Error("the evicted session still works")
		}
	})
	t.Run("ExpiredAbsoluteOnRead", func(t *testing.T) {
		// A store that still holds a session past its lifetime (its
		// expiry moved by hand): the request that finds it reports it.
		short := newSecApp(t, store, session.Options{OnEvent: log.add, Lifetime: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
		c := short.login(user)
		id := short.storeID(c)
		rec, err := store.Get(bg(), id)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(400 * time.Millisecond)
		rec.Expires, rec.UserID = time.Now().Add(time.Hour), user
		if err := store.Set(bg(), id, rec); err != nil {
			t.Fatal(err)
		}
		if short.whoami(c) != "" {
			t.Fatal("a session past its lifetime was served")
		}
		e := log.await(t, audit.Expired, id, time.Second)
		if e.Reason != "absolute" || e.UserID != user {
			t.Errorf("expired: %+v", e)
		}
	})
	if dropped := a.m.Stats().EventsDropped; dropped != 0 {
		t.Errorf("%d events dropped", dropped)
	}
}

// TestEventsExpired: the store's own expirations are reported, idle and
// absolute told apart, bound sessions with their user: memory (janitor),
// Postgres (cleanup), directly and through Open; Redis through its own
// server with keyspace notifications on, directly and through Open.
func TestEventsExpired(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		s := session.NewMemoryStore(session.MemoryOptions{CleanupInterval: 50 * time.Millisecond})
		t.Cleanup(func() { s.Close() })
		testExpired(t, s, true)
	})
	t.Run("postgres", func(t *testing.T) {
		testExpired(t, newPostgresStore(t, session.PostgresOptions{CleanupInterval: 100 * time.Millisecond}), true)
	})
	t.Run("redis", func(t *testing.T) {
		startRedis(t, "redis with keyspace events", secopsRedisPort, "--notify-keyspace-events", "Ex")
		c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:7310", ContextTimeoutEnabled: true})
		t.Cleanup(func() { c.Close() })
		s, err := session.NewRedisStore(c, session.RedisOptions{Prefix: randomName("sessiontest:") + ":"})
		if err != nil {
			t.Fatal(err)
		}
		watch(t, s.WatchExpirations)
		testExpired(t, s, false)
	})
	t.Run("Open/memory", func(t *testing.T) {
		b := openWith(t, map[string]string{}, session.OpenOptions{Memory: session.MemoryOptions{CleanupInterval: 50 * time.Millisecond}})
		testExpired(t, b.Store, true)
	})
	t.Run("Open/postgres", func(t *testing.T) {
		testPool(t)
		table := randomName("sessions_e")
		t.Cleanup(func() {
			testPool(t).Exec(bg(), `DROP TABLE IF EXISTS `+table+`, `+table+`_schema_migrations`)
		})
		b := openWith(t, map[string]string{"DATABASE_URL": databaseURL(), "SESSION_TABLE": table},
			session.OpenOptions{Postgres: session.PostgresOptions{CleanupInterval: 100 * time.Millisecond}})
		testExpired(t, b.Store, true)
	})
	t.Run("Open/redis", func(t *testing.T) {
		startRedis(t, "redis with keyspace events", secopsRedisPort, "--notify-keyspace-events", "Ex")
		b := openWith(t, map[string]string{"REDIS_URL": "redis://127.0.0.1:7310/0", "SESSION_REDIS_PREFIX": randomName("sessiontest:") + ":"}, session.OpenOptions{})
		if b.Name != "redis" {
			t.Fatalf("Open chose %s", b.Name)
		}
		watch(t, b.WatchExpirations)
		testExpired(t, b.Store, false)
	})
}

// openWith opens a Backend from env, closed when t ends.
func openWith(t *testing.T, env map[string]string, opts session.OpenOptions) *session.Backend {
	t.Helper()
	cfg, err := session.ConfigFromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = discardLogger()
	b, err := session.Open(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// watch runs a WatchExpirations until t ends, and fails t if it returned
// an error.
func watch(t *testing.T, fn func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("WatchExpirations: %v", err)
		}
	})
	time.Sleep(200 * time.Millisecond) // subscribed
}

// testExpired lets an idle session and one past its absolute lifetime
// expire in store and waits for their events.
func testExpired(t *testing.T, store session.Store, knowsReason bool) {
	// Two managers (processes) with their own options and event logs:
	// each hears every expiration, and judges idle or absolute by its own
	// options, as the sessions of one app share them.
	idleLog, absLog := &eventLog{}, &eventLog{}
	idle := newSecApp(t, store, session.Options{OnEvent: idleLog.add, IdleTimeout: 300 * time.Millisecond, Lifetime: time.Hour})
	abs := newSecApp(t, store, session.Options{OnEvent: absLog.add, IdleTimeout: 400 * time.Millisecond, Lifetime: 400 * time.Millisecond})
	user := randomName("x")
	bound := idle.login(user)
	boundID := idle.storeID(bound)
	anon := abs.put("", "k", "v")
	anonID := abs.storeID(anon)
	e := idleLog.await(t, audit.Expired, boundID, 10*time.Second)
	if e.UserID != user || e.IP != "" {
		t.Errorf("expired (bound, idle): %+v", e)
	}
	if knowsReason && e.Reason != "idle" {
		t.Errorf("expired (idle): reason %q", e.Reason)
	}
	e = absLog.await(t, audit.Expired, anonID, 10*time.Second)
	if e.UserID != "" {
		t.Errorf("expired (anonymous, absolute): %+v", e)
	}
	if knowsReason && e.Reason != "absolute" {
		t.Errorf("expired (absolute): reason %q", e.Reason)
	}
	// Each manager hears each expiration, once.
	absLog.await(t, audit.Expired, boundID, 5*time.Second)
	idleLog.await(t, audit.Expired, anonID, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	for _, l := range []*eventLog{idleLog, absLog} {
		if n := len(l.find(audit.Expired, "")); n != 2 {
			t.Errorf("a manager heard %d expirations, want 2: %v", n, l.all())
		}
	}
}

// TestEventsWatchNeedsNotifications: on a Redis that sends no expired-key
// events (the default), WatchExpirations says so at once, and what to do.
func TestEventsWatchNeedsNotifications(t *testing.T) {
	startRedis(t, "redis without keyspace events", secopsRedisPort+1)
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:7311"})
	t.Cleanup(func() { c.Close() })
	s, err := session.NewRedisStore(c, session.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.WatchExpirations(tctx(t))
	if err == nil || !strings.Contains(err.Error(), "notify-keyspace-events") || !strings.Contains(err.Error(), "CONFIG SET notify-keyspace-events Ex") {
		t.Fatalf("WatchExpirations without notifications = %v", err)
	}
	// Close stops a watcher that runs.
	c.ConfigSet(tctx(t), "notify-keyspace-events", "Ex")
	done := make(chan error, 1)
	go func() { done <- s.WatchExpirations(context.Background()) }()
	time.Sleep(100 * time.Millisecond)
	s.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("WatchExpirations after Close = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop WatchExpirations")
	}
}

// TestEventsQueue: a request never waits for OnEvent; a full queue drops
// and counts; Close delivers what is queued.
func TestEventsQueue(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var delivered []audit.Event
	hook := func(e audit.Event) {
		<-release
		mu.Lock()
		delivered = append(delivered, e)
		mu.Unlock()
	}
	a := newSecApp(t, memStore(t), session.Options{OnEvent: hook, EventQueue: 4})
	start := time.Now()
	for range 20 {
		a.put("", "k", "v") // one created event each
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("20 requests took %v with OnEvent blocked", d)
	}
	dropped := a.m.Stats().EventsDropped
	if dropped < 20-4-1 {
		t.Fatalf("EventsDropped = %d with a queue of 4 and a blocked hook, want at least 15", dropped)
	}
	closed := make(chan struct{})
	go func() { a.m.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned before delivering the queued events")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	<-closed
	mu.Lock()
	n := len(delivered)
	mu.Unlock()
	if int64(n)+dropped != 20 {
		t.Fatalf("%d delivered + %d dropped, want 20", n, dropped)
	}
	// After Close, events are dropped and counted; requests still work.
	a.put("", "k", "v")
	if a.m.Stats().EventsDropped != dropped+1 {
		t.Fatal("an event after Close was not counted as dropped")
	}
}

// TestEventsHookPanics: a panic in OnEvent is logged, and the next event
// is still delivered.
func TestEventsHookPanics(t *testing.T) {
	log := &eventLog{}
	first := true
	a := newSecApp(t, memStore(t), session.Options{OnEvent: func(e audit.Event) {
		if first {
			first = false
			panic("boom")
		}
		log.add(e)
	}})
	a.put("", "k", "v")
	c := a.put("", "k", "v")
	log.await(t, audit.Created, a.storeID(c), time.Second)
}
