package sessiontest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/session"
)

// Skipped is an optional ability that [Run] did not test because the
// store does not implement it, and what a deployment on such a store goes
// without.
type Skipped struct {
	Ability string // the interface, as "session.CompareAndSetter"
	Cost    string // what the Manager, Tiered, Failover and tools lose
}

// abilities are the optional interfaces, in the order Run reports them,
// each with what its absence costs.
var abilities = []struct {
	Skipped
	has func(session.Store) bool
}{
	{Skipped{"session.CompareAndSetter", "session.New refuses the store unless Options.AllowLastWriterWins is set, and then concurrent requests on one session may lose each other's writes, a request in flight after a logout or revocation may write the session back, and Session.Pop may hand one value out twice"},
		func(s session.Store) bool { _, ok := s.(session.CompareAndSetter); return ok }},
	{Skipped{"session.UserIndex", "Manager.UserSessions, RevokeUser, RevokeOtherSessions and RevokeSession return an error wrapping errors.ErrUnsupported: no list of a user's sessions, no \"sign out everywhere\" after a password change"},
		func(s session.Store) bool { _, ok := s.(session.UserIndex); return ok }},
	{Skipped{"session.Counter", "health checks (CountSessions) and sessionctl stats show no session count, and Count on a Tiered or Failover over it fails"},
		func(s session.Store) bool { _, ok := s.(session.Counter); return ok }},
	{Skipped{"session.Cleaner", "expired records are never returned but stay in the backend until the store removes them by itself: nothing can free them on demand"},
		func(s session.Store) bool { _, ok := s.(session.Cleaner); return ok }},
	{Skipped{"session.Pinger", "Open and health checks count the store as reachable without asking it, and Failover's probes always find it healthy, so requests move back to it even while it is down"},
		func(s session.Store) bool { _, ok := s.(session.Pinger); return ok }},
	{Skipped{"io.Closer", "none for a store that starts no goroutine and opens no connection of its own; for any other, Backend.Close cannot release them, and Run cannot check that they stop"},
		func(s session.Store) bool { _, ok := s.(io.Closer); return ok }},
}

// skip skips t, a test of ability, saying what its absence costs.
func skip(t *testing.T, ability string) {
	t.Helper()
	for _, a := range abilities {
		if a.Ability == ability {
			t.Skipf("store does not implement %s: %s", ability, a.Cost)
		}
	}
	t.Skipf("store does not implement %s", ability)
}

// Run runs every conformance test against stores made by newStore, each
// subtest on a store of its own.
//
// It returns the optional abilities it skipped because the store does not
// implement them, in a fixed order, and logs each with what it costs (see
// [Skipped]); none for a store that has them all. A test can assert the
// list, so that losing an ability is noticed:
//
//	if skipped := sessiontest.Run(t, newStore); len(skipped) != 0 {
//		t.Errorf("abilities lost: %v", skipped)
//	}
//
// When -run selects no subtest, no store is made and Run returns nil.
func Run(t *testing.T, newStore func(t *testing.T) session.Store) []Skipped {
	t.Helper()
	var first session.Store
	var mu sync.Mutex
	made := func(t *testing.T) session.Store {
		s := newStore(t)
		mu.Lock()
		if first == nil {
			first = s
		}
		mu.Unlock()
		return s
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s session.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"BinaryData", testBinaryData},
		{"LargeValue", testLargeValue},
		{"EmptyData", testEmptyData},
		{"Missing", testMissing},
		{"Replace", testReplace},
		{"ExpiryPrecision", testExpiryPrecision},
		{"ExpiryHonouredBeforeCleanup", testExpiry},
		{"SetInThePastRemoves", testSetPast},
		{"TouchExtends", testTouchExtends},
		{"TouchMissing", testTouchMissing},
		{"TouchExpired", testTouchExpired},
		{"TouchToThePastEnds", testTouchPast},
		{"DestroyIdempotent", testDestroy},
		{"HostileIDs", testHostileIDs},
		{"CallerCannotMutateStoredData", testCopies},
		{"CancelledContext", testCancelled},
		{"Concurrent", testConcurrent},
		{"Counter", testCounter},
		{"Cleaner", testCleaner},
		{"Pinger", testPinger},
		{"CompareAndSet", testCAS},
		{"CompareAndSetConcurrent", testCASConcurrent},
		{"UserListAndDestroy", testUserListAndDestroy},
		{"UserExpiring", testUserExpiring},
		{"UserRewriteExtends", testUserRewriteExtends},
		{"User10000", testUser10000},
		{"UserRevokeRacesLogins", testUserRevokeRacesLogins},
		{"UserRevokeInFlight", testUserRevokeInFlight},
		{"UserHostileIDs", testUserHostileIDs},
		{"UserCancelled", testUserCancelled},
		{"Epoch", testEpoch},
		{"CloseStopsGoroutines", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fn == nil {
				testClose(t, made)
				return
			}
			s := made(t)
			if c, ok := s.(io.Closer); ok {
				t.Cleanup(func() { c.Close() })
			}
			tc.fn(t, s)
		})
	}
	if first == nil {
		return nil
	}
	var skipped []Skipped
	for _, a := range abilities {
		if !a.has(first) {
			skipped = append(skipped, a.Skipped)
			t.Logf("skipped %s, which the store does not implement: %s", a.Ability, a.Cost)
		}
	}
	return skipped
}

// Hints for store authors, appended to the failures they explain.
const (
	hintPrecision = "keep expiry to the millisecond at least (Unix milliseconds, or a timestamp with a fractional part): records written to live less than a second must live until that instant, and a store that keeps whole seconds ends them early or keeps them too long"
	hintExpired   = "a record at or past its Expires is never returned, whether or not cleanup has removed it: compare Expires with the current time on every read"
	hintNotNil    = "a live record's Data is never nil, even when empty (return []byte{}), so that it can be passed to CompareAndSet as old, where nil means \"no live record\""
	hintNilEmpty  = "in CompareAndSet, old == nil means \"no live record\" and old == []byte{} means \"a live record whose Data is empty\"; bytes.Equal(nil, []byte{}) is true, so test old == nil first"
	hintAbsent    = "an expired record counts as absent, whether or not cleanup has removed it: CompareAndSet with old == nil replaces it, and with its old Data fails"
	hintUncounted = "expired records are not counted, whether or not cleanup has removed them"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func mustSet(t *testing.T, s session.Store, id string, data []byte, ttl time.Duration) {
	t.Helper()
	if err := s.Set(ctx(t), id, session.Record{Data: data, Expires: time.Now().Add(ttl)}); err != nil {
		t.Fatalf("Set(%.40q): %v", id, err)
	}
}

// mustGet reads the live record id; a failure ends with hint, if any.
func mustGet(t *testing.T, s session.Store, id string, hint ...string) session.Record {
	t.Helper()
	rec, err := s.Get(ctx(t), id)
	if err != nil {
		t.Fatalf("Get(%.40q): %v%s", id, err, hints(hint))
	}
	return rec
}

// wantNotFound checks that id has no live record; a failure ends with
// hint, if any.
func wantNotFound(t *testing.T, s session.Store, id string, hint ...string) {
	t.Helper()
	rec, err := s.Get(ctx(t), id)
	if !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get(%.40q) = %q, %v; want ErrNotFound%s", id, rec.Data, err, hints(hint))
	}
}

func hints(h []string) string {
	if len(h) == 0 {
		return ""
	}
	return " (hint: " + strings.Join(h, "; ") + ")"
}

func testRoundTrip(t *testing.T, s session.Store) {
	exp := time.Now().Add(time.Hour)
	if err := s.Set(ctx(t), "a", session.Record{Data: []byte("hello"), Expires: exp}); err != nil {
		t.Fatal(err)
	}
	rec := mustGet(t, s, "a")
	if string(rec.Data) != "hello" {
		t.Fatalf("Data = %q, want hello", rec.Data)
	}
	if d := rec.Expires.Sub(exp); d > time.Second || d < -time.Second {
		t.Fatalf("Expires = %v, want about %v", rec.Expires, exp)
	}
}

func testBinaryData(t *testing.T, s session.Store) {
	data := []byte{0, 1, 2, 0, 255, 254, 0, '\n', '\r', 0xc3, 0x28, 0}
	mustSet(t, s, "bin", data, time.Hour)
	if got := mustGet(t, s, "bin").Data; !bytes.Equal(got, data) {
		t.Fatalf("Data = %v, want %v", got, data)
	}
}

func testLargeValue(t *testing.T, s session.Store) {
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	mustSet(t, s, "large", data, time.Hour)
	if got := mustGet(t, s, "large").Data; !bytes.Equal(got, data) {
		t.Fatalf("1 MiB value did not round-trip (got %d bytes)", len(got))
	}
}

func testEmptyData(t *testing.T, s session.Store) {
	mustSet(t, s, "empty", []byte{}, time.Hour)
	if got := mustGet(t, s, "empty").Data; got == nil || len(got) != 0 {
		t.Fatalf("Data = %#v, want []byte{}%s", got, hints([]string{hintNotNil}))
	}
	mustSet(t, s, "nil", nil, time.Hour)
	if got := mustGet(t, s, "nil").Data; got == nil || len(got) != 0 {
		t.Fatalf("Set with nil Data, then Get: Data = %#v, want []byte{}%s", got, hints([]string{"nil Data is stored as empty", hintNotNil}))
	}
}

func testMissing(t *testing.T, s session.Store) {
	wantNotFound(t, s, "never-stored")
}

func testReplace(t *testing.T, s session.Store) {
	mustSet(t, s, "r", []byte("one"), time.Hour)
	mustSet(t, s, "r", []byte("two"), 2*time.Hour)
	rec := mustGet(t, s, "r")
	if string(rec.Data) != "two" {
		t.Fatalf("Data = %q, want two", rec.Data)
	}
	if rec.Expires.Before(time.Now().Add(90 * time.Minute)) {
		t.Fatalf("Expires = %v, want the replaced expiry", rec.Expires)
	}
}

// testExpiryPrecision: Expires comes back as written, to the millisecond,
// from Set and from Touch.
func testExpiryPrecision(t *testing.T, s session.Store) {
	check := func(what string, got, want time.Time) {
		t.Helper()
		if d := got.Sub(want); d >= time.Millisecond || d <= -time.Millisecond {
			t.Fatalf("after %s, Expires = %v, %v from the %v written (hint: %s)", what, got, d, want, hintPrecision)
		}
	}
	exp := time.Now().Add(time.Hour + 123456789*time.Nanosecond)
	if err := s.Set(ctx(t), "p", session.Record{Data: []byte("x"), Expires: exp}); err != nil {
		t.Fatal(err)
	}
	check("Set", mustGet(t, s, "p").Expires, exp)
	exp = exp.Add(987654321 * time.Nanosecond)
	if err := s.Touch(ctx(t), "p", exp); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	check("Touch", mustGet(t, s, "p").Expires, exp)
}

func testExpiry(t *testing.T, s session.Store) {
	mustSet(t, s, "short", []byte("x"), 300*time.Millisecond)
	mustSet(t, s, "long", []byte("y"), time.Hour)
	mustGet(t, s, "short", "a record written to live 300 ms is live at once", hintPrecision)
	time.Sleep(600 * time.Millisecond)
	wantNotFound(t, s, "short", hintExpired, hintPrecision)
	mustGet(t, s, "long")
}

func testSetPast(t *testing.T, s session.Store) {
	mustSet(t, s, "p", []byte("x"), time.Hour)
	if err := s.Set(ctx(t), "p", session.Record{Data: []byte("y"), Expires: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, s, "p")
}

func testTouchExtends(t *testing.T, s session.Store) {
	mustSet(t, s, "t", []byte("keep me"), 400*time.Millisecond)
	later := time.Now().Add(time.Hour)
	if err := s.Touch(ctx(t), "t", later); err != nil {
		t.Fatalf("Touch of a record written to live 400 ms: %v (hint: %s)", err, hintPrecision)
	}
	time.Sleep(700 * time.Millisecond)
	rec := mustGet(t, s, "t")
	if string(rec.Data) != "keep me" {
		t.Fatalf("Touch changed Data to %q", rec.Data)
	}
	if d := rec.Expires.Sub(later); d > time.Second || d < -time.Second {
		t.Fatalf("Expires = %v, want about %v", rec.Expires, later)
	}
}

func testTouchMissing(t *testing.T, s session.Store) {
	err := s.Touch(ctx(t), "missing", time.Now().Add(time.Hour))
	if !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Touch(missing) = %v, want ErrNotFound", err)
	}
	// Touch must not create a record.
	wantNotFound(t, s, "missing")
}

func testTouchExpired(t *testing.T, s session.Store) {
	mustSet(t, s, "e", []byte("x"), 200*time.Millisecond)
	time.Sleep(400 * time.Millisecond)
	err := s.Touch(ctx(t), "e", time.Now().Add(time.Hour))
	if !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Touch(expired) = %v, want ErrNotFound (hint: Touch never revives an expired record; %s)", err, hintExpired)
	}
	wantNotFound(t, s, "e", "Touch never revives an expired record")
}

// testTouchPast: a Touch to a time not in the future ends a live record,
// as if it had expired, and returns nil; on an id with no live record it
// returns ErrNotFound and creates nothing.
func testTouchPast(t *testing.T, s session.Store) {
	mustSet(t, s, "end", []byte("x"), time.Hour)
	mustSet(t, s, "keep", []byte("y"), time.Hour)
	if err := s.Touch(ctx(t), "end", time.Now().Add(-time.Second)); err != nil {
		t.Fatalf("Touch of a live record to a past time = %v, want nil (hint: it ends the record, as if it had expired)", err)
	}
	wantNotFound(t, s, "end", "Touch to a time not in the future ends the record")
	if err := s.Touch(ctx(t), "end", time.Now().Add(time.Hour)); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Touch of a record ended by Touch = %v, want ErrNotFound (hint: it stays ended)", err)
	}
	wantNotFound(t, s, "end", "a record ended by Touch stays ended")
	if err := s.Touch(ctx(t), "never", time.Now().Add(-time.Second)); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Touch of a missing id to a past time = %v, want ErrNotFound", err)
	}
	wantNotFound(t, s, "never", "Touch never creates a record")
	if got := string(mustGet(t, s, "keep").Data); got != "y" {
		t.Fatalf("another record changed to %q", got)
	}
	if c, ok := s.(session.Counter); ok {
		if n, err := c.Count(ctx(t)); err != nil || n != 1 {
			t.Fatalf("Count = %d, %v; want 1 (hint: %s)", n, err, hintUncounted)
		}
	}
}

func testDestroy(t *testing.T, s session.Store) {
	mustSet(t, s, "d", []byte("x"), time.Hour)
	mustSet(t, s, "d2", []byte("y"), time.Hour)
	for i := 0; i < 2; i++ {
		if err := s.Destroy(ctx(t), "d"); err != nil {
			t.Fatalf("Destroy #%d: %v", i+1, err)
		}
	}
	if err := s.Destroy(ctx(t), "never-there"); err != nil {
		t.Fatalf("Destroy(missing): %v", err)
	}
	wantNotFound(t, s, "d")
	mustGet(t, s, "d2")
}

// hostileIDs are ids that would be dangerous in a store that interpolated
// them into a query or a key pattern, or that truncated them.
func hostileIDs() []string {
	return []string{
		"*", "?", "[a-z]", "a*", "key:with:colons", "'", "' OR '1'='1", "%", "_",
		"a%", "a_", "with space", " leading", "trailing ", "\\", "\"quoted\"",
		"ünïcødé", "tab\there", "new\nline", "semi;colon", "--comment",
		strings.Repeat("x", 4096), strings.Repeat("x", 4095), strings.Repeat("x", 4096) + "y",
	}
}

func testHostileIDs(t *testing.T, s session.Store) {
	ids := hostileIDs()
	for i, id := range ids {
		mustSet(t, s, id, []byte(fmt.Sprintf("value-%d", i)), time.Hour)
	}
	for i, id := range ids {
		if got := string(mustGet(t, s, id).Data); got != fmt.Sprintf("value-%d", i) {
			t.Fatalf("Get(%.40q) = %q, want value-%d: ids collide", id, got, i)
		}
	}
	// Pattern-like ids must not match their neighbours.
	for _, id := range []string{"a", "key", "x", "", "a%%", "' OR '1'='2"} {
		if id == "" {
			continue
		}
		wantNotFound(t, s, id)
	}
	if err := s.Destroy(ctx(t), "*"); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, s, "*")
	if got := string(mustGet(t, s, "a*").Data); got == "" {
		t.Fatal("Destroy(\"*\") removed another id")
	}
	if err := s.Touch(ctx(t), "%", time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if rec := mustGet(t, s, "a%"); rec.Expires.After(time.Now().Add(90 * time.Minute)) {
		t.Fatal("Touch(\"%\") moved the expiry of another id")
	}
}

func testCopies(t *testing.T, s session.Store) {
	data := []byte("original")
	mustSet(t, s, "c", data, time.Hour)
	copy(data, "XXXXXXXX")
	rec := mustGet(t, s, "c")
	if string(rec.Data) != "original" {
		t.Fatalf("changing the slice passed to Set changed the stored record to %q", rec.Data)
	}
	copy(rec.Data, "YYYYYYYY")
	if got := string(mustGet(t, s, "c").Data); got != "original" {
		t.Fatalf("changing the slice Get returned changed the stored record to %q", got)
	}
}

func testCancelled(t *testing.T, s session.Store) {
	mustSet(t, s, "x", []byte("x"), time.Hour)
	c, cancel := context.WithCancel(context.Background())
	cancel()
	exp := time.Now().Add(time.Hour)
	calls := map[string]func() error{
		"Get":     func() error { _, err := s.Get(c, "x"); return err },
		"Set":     func() error { return s.Set(c, "y", session.Record{Data: []byte("y"), Expires: exp}) },
		"Destroy": func() error { return s.Destroy(c, "x") },
		"Touch":   func() error { return s.Touch(c, "x", exp) },
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v, want an error wrapping context.Canceled", name, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s with a cancelled context took %v", name, d)
		}
	}
	// Nothing was changed by the cancelled calls.
	if got := string(mustGet(t, s, "x").Data); got != "x" {
		t.Fatalf("record changed to %q", got)
	}

	dl, cancel2 := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel2()
	time.Sleep(time.Millisecond)
	if _, err := s.Get(dl, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get past its deadline = %v, want an error wrapping context.DeadlineExceeded", err)
	}
}

func testConcurrent(t *testing.T, s session.Store) {
	const workers, ops = 64, 60
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			own := fmt.Sprintf("own-%d", w)
			shared := fmt.Sprintf("shared-%d", w%8)
			c := context.Background()
			for i := 0; i < ops; i++ {
				id := shared
				if r.IntN(2) == 0 {
					id = own
				}
				var err error
				switch r.IntN(4) {
				case 0:
					err = s.Set(c, id, session.Record{Data: []byte(fmt.Sprintf("%d-%d", w, i)), Expires: time.Now().Add(time.Hour)})
				case 1:
					_, err = s.Get(c, id)
				case 2:
					err = s.Touch(c, id, time.Now().Add(time.Hour))
				case 3:
					if id != own {
						err = s.Destroy(c, id)
					}
				}
				if err != nil && !errors.Is(err, session.ErrNotFound) {
					errs <- err
					return
				}
			}
			// A worker's own id ends with what it last wrote.
			want := fmt.Sprintf("own-final-%d", w)
			if err := s.Set(c, own, session.Record{Data: []byte(want), Expires: time.Now().Add(time.Hour)}); err != nil {
				errs <- err
				return
			}
			rec, err := s.Get(c, own)
			if err != nil || string(rec.Data) != want {
				errs <- fmt.Errorf("worker %d: Get = %q, %v; want %q", w, rec.Data, err, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testCounter(t *testing.T, s session.Store) {
	c, ok := s.(session.Counter)
	if !ok {
		skip(t, "session.Counter")
	}
	n, err := c.Count(ctx(t))
	if err != nil || n != 0 {
		t.Fatalf("Count on an empty store = %d, %v; want 0", n, err)
	}
	for i := 0; i < 25; i++ {
		mustSet(t, s, fmt.Sprintf("live-%d", i), []byte("x"), time.Hour)
	}
	mustSet(t, s, "dying", []byte("x"), 200*time.Millisecond)
	time.Sleep(400 * time.Millisecond)
	if n, err := c.Count(ctx(t)); err != nil || n != 25 {
		t.Fatalf("Count = %d, %v; want 25 (hint: %s; %s)", n, err, hintUncounted, hintPrecision)
	}
}

func testCleaner(t *testing.T, s session.Store) {
	cl, ok := s.(session.Cleaner)
	if !ok {
		skip(t, "session.Cleaner")
	}
	mustSet(t, s, "stay", []byte("x"), time.Hour)
	for i := 0; i < 10; i++ {
		mustSet(t, s, fmt.Sprintf("go-%d", i), []byte("x"), 200*time.Millisecond)
	}
	time.Sleep(400 * time.Millisecond)
	n, err := cl.DeleteExpired(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if n < 0 || n > 10 {
		t.Fatalf("DeleteExpired = %d, want between 0 and 10 (hint: it counts the expired records it deleted, 0 for a store whose backend expires them by itself)", n)
	}
	mustGet(t, s, "stay", "DeleteExpired never deletes a live record")
	for i := 0; i < 10; i++ {
		wantNotFound(t, s, fmt.Sprintf("go-%d", i), hintExpired)
	}
	if n, err := cl.DeleteExpired(ctx(t)); err != nil || n != 0 {
		t.Fatalf("second DeleteExpired = %d, %v; want 0", n, err)
	}
}

func testPinger(t *testing.T, s session.Store) {
	p, ok := s.(session.Pinger)
	if !ok {
		skip(t, "session.Pinger")
	}
	if err := p.Ping(ctx(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Ping(c); err == nil {
		t.Fatal("Ping with a cancelled context = nil, want an error")
	}
}

func testCAS(t *testing.T, s session.Store) {
	cas, ok := s.(session.CompareAndSetter)
	if !ok {
		skip(t, "session.CompareAndSetter")
	}
	c := ctx(t)
	rec := func(data string, ttl time.Duration) session.Record {
		return session.Record{Data: []byte(data), Expires: time.Now().Add(ttl)}
	}
	wantErr := func(err, want error, what string, hint ...string) {
		t.Helper()
		if !errors.Is(err, want) || (want == nil && err != nil) {
			t.Fatalf("%s = %v, want %v%s", what, err, want, hints(hint))
		}
	}
	wantErr(cas.CompareAndSet(c, "k", nil, rec("v1", time.Hour)), nil, "create when absent")
	wantErr(cas.CompareAndSet(c, "k", nil, rec("other", time.Hour)), session.ErrConflict, "create when present", hintNilEmpty)
	wantErr(cas.CompareAndSet(c, "k", []byte("v0"), rec("other", time.Hour)), session.ErrConflict, "update with a stale old")
	if got := string(mustGet(t, s, "k").Data); got != "v1" {
		t.Fatalf("a failed CompareAndSet changed the record to %q", got)
	}
	wantErr(cas.CompareAndSet(c, "k", []byte("v1"), rec("v2", time.Hour)), nil, "update with the current old")
	if got := string(mustGet(t, s, "k").Data); got != "v2" {
		t.Fatalf("Data = %q, want v2", got)
	}
	wantErr(cas.CompareAndSet(c, "gone", []byte("v1"), rec("v2", time.Hour)), session.ErrConflict, "update of a missing record")
	wantNotFound(t, s, "gone")

	// A destroyed record cannot be written back by a holder of its old data.
	if err := s.Destroy(c, "k"); err != nil {
		t.Fatal(err)
	}
	wantErr(cas.CompareAndSet(c, "k", []byte("v2"), rec("v3", time.Hour)), session.ErrConflict, "update after Destroy")
	wantNotFound(t, s, "k")

	// An expired record counts as absent.
	mustSet(t, s, "e", []byte("old"), 200*time.Millisecond)
	time.Sleep(400 * time.Millisecond)
	wantErr(cas.CompareAndSet(c, "e", []byte("old"), rec("x", time.Hour)), session.ErrConflict, "update of an expired record", hintAbsent)
	wantErr(cas.CompareAndSet(c, "e", nil, rec("new", time.Hour)), nil, "create over an expired record", hintAbsent, hintPrecision)
	if got := string(mustGet(t, s, "e").Data); got != "new" {
		t.Fatalf("Data = %q, want new", got)
	}

	// An expiry in the past deletes, when the comparison holds.
	wantErr(cas.CompareAndSet(c, "e", []byte("stale"), rec("", -time.Second)), session.ErrConflict, "delete with a stale old")
	mustGet(t, s, "e")
	wantErr(cas.CompareAndSet(c, "e", []byte("new"), rec("", -time.Second)), nil, "delete with the current old")
	wantNotFound(t, s, "e")

	// Empty data is a version like any other, distinct from absent.
	wantErr(cas.CompareAndSet(c, "none", []byte{}, rec("x", time.Hour)), session.ErrConflict, "update from empty of a missing record", hintNilEmpty)
	wantNotFound(t, s, "none", hintNilEmpty)
	wantErr(cas.CompareAndSet(c, "z", nil, rec("", time.Hour)), nil, "create empty")
	wantErr(cas.CompareAndSet(c, "z", nil, rec("x", time.Hour)), session.ErrConflict, "create over empty", hintNilEmpty)
	read := mustGet(t, s, "z")
	if read.Data == nil {
		t.Fatalf("Get of a record created empty: Data = nil, want []byte{} (hint: %s)", hintNotNil)
	}
	wantErr(cas.CompareAndSet(c, "z", read.Data, rec("x", time.Hour)), nil, "update from empty", hintNilEmpty)
	wantErr(cas.CompareAndSet(c, "z", []byte{}, rec("y", time.Hour)), session.ErrConflict, "update from empty of a non-empty record")
	wantErr(cas.CompareAndSet(c, "z", []byte("x"), session.Record{Expires: time.Now().Add(time.Hour)}), nil, "update to nil Data")
	if got := mustGet(t, s, "z").Data; got == nil || len(got) != 0 {
		t.Fatalf("after CompareAndSet with nil Data, Get: Data = %#v, want []byte{} (hint: nil Data is stored as empty; %s)", got, hintNotNil)
	}

	// Binary data and hostile ids.
	bin := []byte{0, 1, 0, 255}
	for _, id := range hostileIDs()[:8] {
		wantErr(cas.CompareAndSet(c, id, nil, session.Record{Data: bin, Expires: time.Now().Add(time.Hour)}), nil, "create "+id)
		wantErr(cas.CompareAndSet(c, id, bin, rec(id, time.Hour)), nil, "update "+id)
	}
	for _, id := range hostileIDs()[:8] {
		if got := string(mustGet(t, s, id).Data); got != id {
			t.Fatalf("Get(%q) = %q", id, got)
		}
	}
}

// testCASConcurrent has 50 goroutines increment one counter with
// read-modify-CompareAndSet loops: a store whose comparison is not atomic
// loses increments.
func testCASConcurrent(t *testing.T, s session.Store) {
	cas, ok := s.(session.CompareAndSetter)
	if !ok {
		skip(t, "session.CompareAndSetter")
	}
	const n = 50
	mustSet(t, s, "counter", []byte("0"), time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := ctx(t)
			for {
				rec, err := s.Get(c, "counter")
				if err != nil {
					errs <- err
					return
				}
				var v int
				fmt.Sscan(string(rec.Data), &v)
				err = cas.CompareAndSet(c, "counter", rec.Data, session.Record{Data: []byte(fmt.Sprint(v + 1)), Expires: time.Now().Add(time.Hour)})
				if errors.Is(err, session.ErrConflict) {
					continue
				}
				if err != nil {
					errs <- err
				}
				return
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := string(mustGet(t, s, "counter").Data); got != fmt.Sprint(n) {
		t.Fatalf("counter = %s after %d increments: CompareAndSet is not atomic (hint: compare and write in one step: one SQL statement with the comparison in its WHERE clause, a transaction that locks the row, a server-side script)", got, n)
	}
}

// testClose checks that Close stops every goroutine the store started.
// Only goroutines running the store's own package are considered: the
// caller's clients and pools are the caller's to close.
func testClose(t *testing.T, newStore func(t *testing.T) session.Store) {
	before := map[string]bool{}
	for _, g := range goroutines() {
		before[goroutineID(g)] = true
	}
	s := newStore(t)
	c, ok := s.(io.Closer)
	if !ok {
		skip(t, "io.Closer")
	}
	mustSet(t, s, "x", []byte("x"), time.Hour)
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	pkg := storePackage(s)
	deadline := time.Now().Add(2 * time.Second)
	for {
		left := goroutinesIn(pkg, before)
		if left == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines of %s still running after Close:\n%s", pkg, left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func storePackage(s session.Store) string {
	name := fmt.Sprintf("%T", s) // "*session.MemoryStore"
	name = strings.TrimPrefix(name, "*")
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[:i]
	}
	return name + "."
}

func goroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(string(buf[:n]), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// goroutineID returns the N of a stack's "goroutine N [state]:" line.
func goroutineID(stack string) string {
	f := strings.Fields(stack)
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

// goroutinesIn returns the stacks of goroutines not in skip whose frames
// include a function of pkg (as "session.", the package's short name)
// outside this suite and the testing package.
func goroutinesIn(pkg string, skip map[string]bool) string {
	var out []string
	for _, g := range goroutines() {
		if skip[goroutineID(g)] || strings.Contains(g, "sessiontest.") || strings.Contains(g, "testing.") {
			continue
		}
		for _, line := range strings.Split(g, "\n") {
			line = strings.TrimSpace(line)
			if i := strings.LastIndexByte(line, '/'); i >= 0 && !strings.HasPrefix(line, "/") {
				line = line[i+1:]
			}
			if strings.HasPrefix(line, pkg) {
				out = append(out, g)
				break
			}
		}
	}
	return strings.Join(out, "\n\n")
}

// epocher is the epoch of session.Manager.RevokeAll: a store with these
// two methods ends every session at once (see the Manager's doc).
type epocher interface {
	Epoch(ctx context.Context) (int64, error)
	RaiseEpoch(ctx context.Context, to int64) (int64, error)
}

func testEpoch(t *testing.T, s session.Store) {
	e, ok := s.(epocher)
	if !ok {
		t.Skip("store has no Epoch and RaiseEpoch methods: Manager.RevokeAll returns an error wrapping errors.ErrUnsupported, no ending every session at once")
	}
	if v, err := e.Epoch(ctx(t)); err != nil || v != 0 {
		t.Fatalf("Epoch of a new store = %d, %v; want 0", v, err)
	}
	if v, err := e.RaiseEpoch(ctx(t), 3); err != nil || v != 3 {
		t.Fatalf("RaiseEpoch(3) = %d, %v; want 3", v, err)
	}
	if v, err := e.RaiseEpoch(ctx(t), 2); err != nil || v != 3 {
		t.Fatalf("RaiseEpoch(2) after 3 = %d, %v; want 3 (hint: the epoch never goes down)", v, err)
	}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, err := e.RaiseEpoch(ctx(t), int64(4+i)); err != nil || v < int64(4+i) {
				t.Errorf("RaiseEpoch(%d) = %d, %v (hint: raise and read back in one atomic step)", 4+i, v, err)
			}
		}()
	}
	wg.Wait()
	if v, err := e.Epoch(ctx(t)); err != nil || v != 19 {
		t.Fatalf("Epoch after concurrent raises = %d, %v; want 19", v, err)
	}
	// The epoch is not a session: not counted, not cleaned.
	if c, ok := s.(session.Counter); ok {
		if n, err := c.Count(ctx(t)); err != nil || n != 0 {
			t.Fatalf("Count with only the epoch stored = %d, %v; want 0", n, err)
		}
	}
	if cl, ok := s.(session.Cleaner); ok {
		if _, err := cl.DeleteExpired(ctx(t)); err != nil {
			t.Fatal(err)
		}
		if v, err := e.Epoch(ctx(t)); err != nil || v != 19 {
			t.Fatalf("Epoch after DeleteExpired = %d, %v; want 19", v, err)
		}
	}
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.RaiseEpoch(c, 30); err == nil {
		t.Fatal("RaiseEpoch with a cancelled context = nil, want an error")
	}
}
