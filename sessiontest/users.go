package sessiontest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/session"
)

// The tests of [session.UserIndex]. Each skips on a store without it.

func userIndex(t *testing.T, s session.Store) session.UserIndex {
	t.Helper()
	ui, ok := s.(session.UserIndex)
	if !ok {
		skip(t, "session.UserIndex")
	}
	return ui
}

// setBound writes n records bound to user, ids prefix-0 … prefix-(n-1), from
// several goroutines so that 10,000 records take a moment on a server.
func setBound(t *testing.T, s session.Store, user, prefix string, n int, ttl time.Duration) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	const workers = 32
	var wg sync.WaitGroup
	var failed atomic.Value
	exp := time.Now().Add(ttl)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				rec := session.Record{Data: []byte("data of " + ids[i]), Expires: exp, UserID: user}
				if err := s.Set(context.Background(), ids[i], rec); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		if errors.Is(err, session.ErrStoreFull) {
			t.Skipf("store is capped below the %d records this test needs: %v", n, err)
		}
		t.Fatalf("Set bound records: %v", err)
	}
	return ids
}

func listIDs(t *testing.T, ui session.UserIndex, user string) []string {
	t.Helper()
	recs, err := ui.ListUser(ctx(t), user)
	if err != nil {
		t.Fatalf("ListUser(%q): %v", user, err)
	}
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	sort.Strings(ids)
	return ids
}

func sorted(ids []string) []string {
	out := slices.Clone(ids)
	sort.Strings(out)
	return out
}

func testUserListAndDestroy(t *testing.T, s session.Store) {
	ui := userIndex(t, s)
	if ids := listIDs(t, ui, "nobody"); len(ids) != 0 {
		t.Fatalf("ListUser of an unknown user = %q, want none", ids)
	}
	if n, err := count(ui.DestroyUser(ctx(t), "nobody", "")); err != nil || n != 0 {
		t.Fatalf("DestroyUser of an unknown user = %d, %v; want 0", n, err)
	}
	alice := setBound(t, s, "alice", "a", 3, time.Hour)
	bob := setBound(t, s, "bob", "b", 2, time.Hour)
	mustSet(t, s, "anon", []byte("x"), time.Hour)

	recs, err := ui.ListUser(ctx(t), "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if string(r.Data) != "data of "+r.ID || r.UserID != "alice" || r.Expires.Before(time.Now().Add(50*time.Minute)) {
			t.Fatalf("ListUser returned %q: Data %q, UserID %q, Expires %v (hint: ListUser fills in ID, Data, Expires and UserID, even where Get leaves UserID empty)", r.ID, r.Data, r.UserID, r.Expires)
		}
	}
	if got := listIDs(t, ui, "alice"); !slices.Equal(got, sorted(alice)) {
		t.Fatalf("ListUser(alice) = %q, want %q", got, alice)
	}
	if got := listIDs(t, ui, "bob"); !slices.Equal(got, sorted(bob)) {
		t.Fatalf("ListUser(bob) = %q, want %q", got, bob)
	}

	// Destroy one: it leaves the list.
	if err := s.Destroy(ctx(t), alice[0]); err != nil {
		t.Fatal(err)
	}
	if got := listIDs(t, ui, "alice"); !slices.Equal(got, sorted(alice[1:])) {
		t.Fatalf("after Destroy, ListUser(alice) = %q, want %q", got, alice[1:])
	}

	// All but one.
	ids, err := ui.DestroyUser(ctx(t), "alice", alice[2])
	if err != nil || !slices.Equal(ids, alice[1:2]) {
		t.Fatalf("DestroyUser(alice, except %s) = %q, %v; want %q", alice[2], ids, err, alice[1:2])
	}
	wantNotFound(t, s, alice[1])
	mustGet(t, s, alice[2])
	if got := listIDs(t, ui, "alice"); !slices.Equal(got, alice[2:]) {
		t.Fatalf("ListUser(alice) = %q, want %q", got, alice[2:])
	}
	// All: the survivor, and nothing of anyone else's.
	if n, err := count(ui.DestroyUser(ctx(t), "alice", "")); err != nil || n != 1 {
		t.Fatalf("DestroyUser(alice) = %d, %v; want 1", n, err)
	}
	if n, err := count(ui.DestroyUser(ctx(t), "alice", "")); err != nil || n != 0 {
		t.Fatalf("second DestroyUser(alice) = %d, %v; want 0", n, err)
	}
	wantNotFound(t, s, alice[2])
	mustGet(t, s, "anon")
	for _, id := range bob {
		mustGet(t, s, id)
	}

	// CompareAndSet binds like Set.
	if cas, ok := s.(session.CompareAndSetter); ok {
		rec := session.Record{Data: []byte("v1"), Expires: time.Now().Add(time.Hour), UserID: "carol"}
		if err := cas.CompareAndSet(ctx(t), "c1", nil, rec); err != nil {
			t.Fatal(err)
		}
		rec.Data = []byte("v2")
		if err := cas.CompareAndSet(ctx(t), "c1", []byte("v1"), rec); err != nil {
			t.Fatal(err)
		}
		recs, err := ui.ListUser(ctx(t), "carol")
		if err != nil || len(recs) != 1 || recs[0].ID != "c1" || string(recs[0].Data) != "v2" {
			t.Fatalf("ListUser(carol) after CompareAndSet = %+v, %v", recs, err)
		}
		// A CompareAndSet that deletes takes it off the list.
		rec.Expires = time.Now().Add(-time.Second)
		if err := cas.CompareAndSet(ctx(t), "c1", []byte("v2"), rec); err != nil {
			t.Fatal(err)
		}
		if got := listIDs(t, ui, "carol"); len(got) != 0 {
			t.Fatalf("ListUser(carol) after delete = %q", got)
		}
	}
}

// testUserExpiring: records that expire while indexed are neither listed
// nor counted, before or after any cleanup.
func testUserExpiring(t *testing.T, s session.Store) {
	ui := userIndex(t, s)
	short := setBound(t, s, "dave", "short", 5, 300*time.Millisecond)
	long := setBound(t, s, "dave", "long", 5, time.Hour)
	if got := listIDs(t, ui, "dave"); len(got) != 10 {
		t.Fatalf("ListUser(dave) = %d records, want 10 (hint: %s)", len(got), hintPrecision)
	}
	time.Sleep(600 * time.Millisecond)
	if got := listIDs(t, ui, "dave"); !slices.Equal(got, sorted(long)) {
		t.Fatalf("ListUser(dave) after 5 expired = %q, want %q (hint: expired records are never listed, whether or not the index has been pruned)", got, sorted(long))
	}
	// A new write of the user prunes the index; the live ones stay.
	setBound(t, s, "dave", "more", 1, time.Hour)
	if cl, ok := s.(session.Cleaner); ok {
		if _, err := cl.DeleteExpired(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	if got := listIDs(t, ui, "dave"); len(got) != 6 {
		t.Fatalf("ListUser(dave) = %q, want the 5 long ones and the new one", got)
	}
	n, err := count(ui.DestroyUser(ctx(t), "dave", ""))
	if err != nil || n != 6 {
		t.Fatalf("DestroyUser(dave) = %d, %v; want 6 (hint: %s)", n, err, hintUncounted)
	}
	for _, id := range append(short, long...) {
		wantNotFound(t, s, id)
	}
}

// testUserRewriteExtends: a bound record rewritten with a later expiry stays
// listed past its first expiry (the Redis index must follow it).
func testUserRewriteExtends(t *testing.T, s session.Store) {
	ui := userIndex(t, s)
	ids := setBound(t, s, "erin", "r", 2, 300*time.Millisecond)
	rec := session.Record{Data: []byte("again"), Expires: time.Now().Add(time.Hour), UserID: "erin"}
	if cas, ok := s.(session.CompareAndSetter); ok {
		if err := cas.CompareAndSet(ctx(t), ids[0], []byte("data of "+ids[0]), rec); err != nil {
			t.Fatalf("CompareAndSet of a record written to live 300 ms: %v (hint: %s)", err, hintPrecision)
		}
	} else if err := s.Set(ctx(t), ids[0], rec); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	setBound(t, s, "erin", "prune", 1, time.Hour) // a write that prunes the index
	if got := listIDs(t, ui, "erin"); !slices.Equal(got, []string{"prune-0", ids[0]}) {
		t.Fatalf("ListUser(erin) = %q, want [prune-0 %s]", got, ids[0])
	}
	if n, err := count(ui.DestroyUser(ctx(t), "erin", "")); err != nil || n != 2 {
		t.Fatalf("DestroyUser(erin) = %d, %v; want 2", n, err)
	}
	wantNotFound(t, s, ids[0])
}

// testUser10000: one user with 10,000 sessions is listed and revoked in
// one call each, quickly, and every record is gone afterwards.
func testUser10000(t *testing.T, s session.Store) {
	ui := userIndex(t, s)
	const n = 10000
	ids := setBound(t, s, "frank", "f", n, time.Hour)
	setBound(t, s, "grace", "g", 3, time.Hour)
	start := time.Now()
	recs, err := ui.ListUser(ctx(t), "frank")
	if err != nil || len(recs) != n {
		t.Fatalf("ListUser(frank) = %d records, %v; want %d", len(recs), err, n)
	}
	listed := time.Since(start)
	start = time.Now()
	got, err := count(ui.DestroyUser(ctx(t), "frank", ids[42]))
	if err != nil || got != n-1 {
		t.Fatalf("DestroyUser(frank, except one) = %d, %v; want %d", got, err, n-1)
	}
	revoked := time.Since(start)
	t.Logf("%d sessions: ListUser %v, DestroyUser %v", n, listed, revoked)
	if revoked > 10*time.Second {
		t.Errorf("DestroyUser of %d sessions took %v", n, revoked)
	}
	if left := listIDs(t, ui, "frank"); !slices.Equal(left, []string{ids[42]}) {
		t.Fatalf("ListUser(frank) after DestroyUser = %d records, want only %s", len(left), ids[42])
	}
	// Every record is gone (checked concurrently; Get is one call each).
	var wg sync.WaitGroup
	var alive atomic.Int64
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 32 {
				if i == 42 {
					continue
				}
				if _, err := s.Get(context.Background(), ids[i]); !errors.Is(err, session.ErrNotFound) {
					alive.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if a := alive.Load(); a != 0 {
		t.Fatalf("%d revoked records are still readable", a)
	}
	mustGet(t, s, ids[42])
	if got := listIDs(t, ui, "grace"); len(got) != 3 {
		t.Fatalf("another user's sessions: %q, want 3", got)
	}
}

// testUserRevokeRacesLogins: DestroyUser while new sessions of the user are
// being created. Every session that existed before is ended; every session
// alive afterwards is listed (none escapes the index), and a second
// DestroyUser ends them all.
func testUserRevokeRacesLogins(t *testing.T, s session.Store) {
	ui := userIndex(t, s)
	old := setBound(t, s, "heidi", "old", 300, time.Hour)
	cas, _ := s.(session.CompareAndSetter)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var created []string
	var mu sync.Mutex
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("new-%d-%d", w, i)
				rec := session.Record{Data: []byte("login"), Expires: time.Now().Add(time.Hour), UserID: "heidi"}
				var err error
				if cas != nil {
					err = cas.CompareAndSet(context.Background(), id, nil, rec)
				} else {
					err = s.Set(context.Background(), id, rec)
				}
				if errors.Is(err, session.ErrStoreFull) {
					return
				}
				if err != nil {
					t.Errorf("login %s: %v", id, err)
					return
				}
				mu.Lock()
				created = append(created, id)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	n, err := count(ui.DestroyUser(ctx(t), "heidi", ""))
	close(stop)
	wg.Wait()
	if err != nil || n < len(old) {
		t.Fatalf("DestroyUser(heidi) = %d, %v; want at least the %d old sessions", n, err, len(old))
	}
	for _, id := range old {
		wantNotFound(t, s, id)
	}
	listed := map[string]bool{}
	for _, id := range listIDs(t, ui, "heidi") {
		listed[id] = true
	}
	survivors := 0
	for _, id := range created {
		if _, err := s.Get(ctx(t), id); err == nil {
			survivors++
			if !listed[id] {
				t.Fatalf("session %s created during DestroyUser is alive but not listed", id)
			}
		}
	}
	if n2, err := count(ui.DestroyUser(ctx(t), "heidi", "")); err != nil || n2 != survivors {
		t.Fatalf("second DestroyUser = %d, %v; want the %d survivors", n2, err, survivors)
	}
	for _, id := range created {
		wantNotFound(t, s, id)
	}
	t.Logf("%d logins raced the revocation; it ended %d sessions, %d logins survived it", len(created), n, survivors)
}

// testUserRevokeInFlight: a writer that read a session before it was
// revoked cannot write it back, and the record is not listed again.
func testUserRevokeInFlight(t *testing.T, s session.Store) {
	ui := userIndex(t, s)
	cas, ok := s.(session.CompareAndSetter)
	if !ok {
		skip(t, "session.CompareAndSetter")
	}
	ids := setBound(t, s, "ivan", "i", 3, time.Hour)
	read := mustGet(t, s, ids[0])
	if n, err := count(ui.DestroyUser(ctx(t), "ivan", "")); err != nil || n != 3 {
		t.Fatalf("DestroyUser(ivan) = %d, %v", n, err)
	}
	rec := session.Record{Data: []byte("written back"), Expires: time.Now().Add(time.Hour), UserID: "ivan"}
	if err := cas.CompareAndSet(ctx(t), ids[0], read.Data, rec); !errors.Is(err, session.ErrConflict) {
		t.Fatalf("CompareAndSet of a revoked session = %v, want ErrConflict", err)
	}
	wantNotFound(t, s, ids[0])
	if got := listIDs(t, ui, "ivan"); len(got) != 0 {
		t.Fatalf("ListUser(ivan) = %q, want none", got)
	}
	if n, err := count(ui.DestroyUser(ctx(t), "ivan", "")); err != nil || n != 0 {
		t.Fatalf("DestroyUser(ivan) again = %d, %v; want 0", n, err)
	}
}

// testUserHostileIDs: user ids that are patterns, SQL, or Redis hash tags
// name exactly one user each.
func testUserHostileIDs(t *testing.T, s session.Store) {
	ui := userIndex(t, s)
	users := []string{"*", "a*", "{x}", "x", "}{", "{", "' OR '1'='1", "%", "_", "ünï", "with space", "new\nline"}
	for i, u := range users {
		setBound(t, s, u, fmt.Sprintf("h%d", i), 2, time.Hour)
	}
	for i, u := range users {
		want := []string{fmt.Sprintf("h%d-0", i), fmt.Sprintf("h%d-1", i)}
		if got := listIDs(t, ui, u); !slices.Equal(got, want) {
			t.Fatalf("ListUser(%q) = %q, want %q", u, got, want)
		}
	}
	if n, err := count(ui.DestroyUser(ctx(t), "*", "")); err != nil || n != 2 {
		t.Fatalf("DestroyUser(*) = %d, %v; want 2", n, err)
	}
	if got := listIDs(t, ui, "a*"); len(got) != 2 {
		t.Fatalf("DestroyUser(*) touched user a*: %q", got)
	}
}

func testUserCancelled(t *testing.T, s session.Store) {
	ui := userIndex(t, s)
	setBound(t, s, "judy", "j", 2, time.Hour)
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ui.ListUser(c, "judy"); !errors.Is(err, context.Canceled) {
		t.Errorf("ListUser with a cancelled context = %v", err)
	}
	if _, err := count(ui.DestroyUser(c, "judy", "")); !errors.Is(err, context.Canceled) {
		t.Errorf("DestroyUser with a cancelled context = %v", err)
	}
	if got := listIDs(t, ui, "judy"); len(got) != 2 {
		t.Fatalf("cancelled calls changed the user's sessions: %q", got)
	}
}

// count is how many ids DestroyUser returned, for the checks that count.
func count(ids []string, err error) (int, error) { return len(ids), err }
