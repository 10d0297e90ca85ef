package session_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sessionkit/session"
	"github.com/sessionkit/session/audit"
)

// utcDay is the start of the UTC day d days from today.
func utcDay(d int) time.Time {
	y, m, day := time.Now().UTC().Date()
	return time.Date(y, m, day, 0, 0, 0, 0, time.UTC).AddDate(0, 0, d)
}

// partitionsOf lists the attached partitions of table by name.
func partitionsOf(t *testing.T, pool *pgxpool.Pool, table string) map[string]bool {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = $1::regclass`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[n] = true
	}
	return out
}

func dayName(table string, d int) string { return table + "_p" + utcDay(d).Format("20060102") }

// pastPartition creates the partition of the day d days from today (d < 0)
// and fills it with n rows expired a minute ago, whose ids start with
// prefix, bound to user (none when "").
func pastPartition(t *testing.T, pool *pgxpool.Pool, table string, d, n int, prefix, user string) {
	t.Helper()
	ctx := context.Background()
	from, to := utcDay(d), utcDay(d+1)
	if _, err := pool.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')`,
		dayName(table, d), table, from.Format(time.RFC3339), to.Format(time.RFC3339))); err != nil {
		t.Fatal(err)
	}
	var u any
	if user != "" {
		u = user
	}
	if _, err := pool.Exec(ctx, `INSERT INTO `+table+` (id, data, expires, user_id, bucket) SELECT $1 || i, '{}', now() - interval '1 minute', $4, $2 FROM generate_series(1, $3) AS i`,
		prefix, from, n, u); err != nil {
		t.Fatal(err)
	}
}

// TestPartitionedLayout: Migrate creates the table partitioned with today's
// and the next three days' partitions and a DEFAULT one; the epoch row
// lives in the DEFAULT partition; a store without the option serves the
// same table (the layout is detected); the opt-in refuses a plain table.
func TestPartitionedLayout(t *testing.T) {
	s := newPartitionedStore(t, session.PostgresOptions{DisableCleanup: true})
	pool, table := s.Pool(), s.Table()
	ctx := tctx(t)
	parts := partitionsOf(t, pool, table)
	for d := 0; d <= 3; d++ {
		if !parts[dayName(table, d)] {
			t.Errorf("no partition %s after Migrate: %v", dayName(table, d), parts)
		}
	}
	if !parts[table+"_default"] || len(parts) != 5 {
		t.Errorf("partitions after Migrate = %v, want today, 3 days ahead, default", parts)
	}
	if _, err := s.RaiseEpoch(ctx, 7); err != nil {
		t.Fatal(err)
	}
	var where string
	if err := pool.QueryRow(ctx, `SELECT tableoid::regclass::text FROM `+table+` WHERE id = 'sessionkit:epoch'`).Scan(&where); err != nil || where != table+"_default" {
		t.Fatalf("epoch row in %q (%v), want the DEFAULT partition", where, err)
	}
	// Migrate again: idempotent.
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := session.Migrate(ctx, pool, table); err != nil {
		t.Fatal(err)
	}
	// Another store, without the option, on the same table.
	plain, err := session.NewPostgresStore(pool, session.PostgresOptions{Table: table, DisableCleanup: true})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	exp := time.Now().Add(time.Hour)
	if err := plain.Set(ctx, "a", session.Record{Data: []byte("1"), Expires: exp}); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "a", session.Record{Data: []byte("2"), Expires: exp}); err != nil {
		t.Fatal(err)
	}
	if err := plain.CompareAndSet(ctx, "a", []byte("2"), session.Record{Data: []byte("3"), Expires: exp}); err != nil {
		t.Fatal(err)
	}
	if err := plain.CompareAndSet(ctx, "a", nil, session.Record{Data: []byte("4"), Expires: exp}); !errors.Is(err, session.ErrConflict) {
		t.Fatalf("CompareAndSet(nil) on a live row = %v, want ErrConflict", err)
	}
	var n int
	pool.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE id = 'a'`).Scan(&n)
	if rec, err := s.Get(ctx, "a"); err != nil || string(rec.Data) != "3" || n != 1 {
		t.Fatalf("Get = %q, %v; %d rows, want \"3\" in one row", rec.Data, err, n)
	}
	if e, err := plain.Epoch(ctx); err != nil || e != 7 {
		t.Fatalf("Epoch through the plain store = %d, %v", e, err)
	}

	// The opt-in refuses an existing plain table, naming it, and changes
	// nothing.
	p := newPostgresStore(t, session.PostgresOptions{Table: randomName("pgpart_plain"), DisableCleanup: true})
	opt, err := session.NewPostgresStore(pool, session.PostgresOptions{Table: p.Table(), Partitioned: true, DisableCleanup: true})
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Close()
	err = opt.Migrate(ctx)
	if err == nil || !strings.Contains(err.Error(), p.Table()) || !strings.Contains(err.Error(), "not partitioned") {
		t.Fatalf("Migrate(Partitioned) on a plain table = %v", err)
	}
	var kind string
	pool.QueryRow(ctx, `SELECT relkind::text FROM pg_class WHERE oid = $1::regclass`, p.Table()).Scan(&kind)
	if kind != "r" {
		t.Fatalf("the plain table became %q", kind)
	}
	// A plain table is still served as it always was.
	if err := opt.Set(ctx, "b", session.Record{Data: []byte("1"), Expires: exp}); err != nil {
		t.Fatal(err)
	}
	if _, err := opt.Get(ctx, "b"); err != nil {
		t.Fatal(err)
	}
}

// TestPartitionedRotation: DeleteExpired drops the partitions of finished
// days in which every row has expired, and only those; the background
// cleanup creates the coming days' partitions and drops dead ones.
func TestPartitionedRotation(t *testing.T) {
	s := newPartitionedStore(t, session.PostgresOptions{DisableCleanup: true})
	pool, table := s.Pool(), s.Table()
	ctx := tctx(t)
	pastPartition(t, pool, table, -10, 300, "dead10-", "")
	pastPartition(t, pool, table, -9, 200, "dead9-", "")
	pastPartition(t, pool, table, -8, 50, "mixed8-", "")
	// One live row in day -8: that partition must stay, and its live row
	// must stay readable.
	if _, err := pool.Exec(ctx, `INSERT INTO `+table+` (id, data, expires, bucket) VALUES ('alive', 'x', now() + interval '1 hour', $1)`, utcDay(-8)); err != nil {
		t.Fatal(err)
	}
	// An expired row today: today's partition is never dropped, and the
	// row is never returned.
	if _, err := pool.Exec(ctx, `INSERT INTO `+table+` (id, data, expires) VALUES ('today-expired', 'x', now() - interval '1 second')`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "today-expired"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get(expired row) = %v", err)
	}
	n, err := s.DeleteExpired(ctx)
	if err != nil || n != 500 {
		t.Fatalf("DeleteExpired = %d, %v; want the 500 rows of days -10 and -9", n, err)
	}
	parts := partitionsOf(t, pool, table)
	if parts[dayName(table, -10)] || parts[dayName(table, -9)] || !parts[dayName(table, -8)] || !parts[dayName(table, 0)] {
		t.Fatalf("partitions after DeleteExpired: %v", parts)
	}
	for _, d := range []int{-10, -9} {
		var gone bool
		pool.QueryRow(ctx, `SELECT to_regclass($1) IS NULL`, dayName(table, d)).Scan(&gone)
		if !gone {
			t.Fatalf("%s detached but not dropped", dayName(table, d))
		}
	}
	if rec, err := s.Get(ctx, "alive"); err != nil || string(rec.Data) != "x" {
		t.Fatalf("Get(alive) in a kept partition = %v", err)
	}
	// Set on an expired row of an old partition revives it in place; the
	// partition is then live, and stays.
	if err := s.Set(ctx, "mixed8-1", session.Record{Data: []byte("y"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	var where string
	pool.QueryRow(ctx, `SELECT tableoid::regclass::text FROM `+table+` WHERE id = 'mixed8-1'`).Scan(&where)
	if where != dayName(table, -8) {
		t.Fatalf("revived row moved to %s", where)
	}

	// The background cleanup: a missing coming day's partition comes
	// back, and day -8 goes once its rows have expired.
	if _, err := pool.Exec(ctx, `DROP TABLE `+dayName(table, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE `+table+` SET expires = now() - interval '1 second' WHERE bucket = $1`, utcDay(-8)); err != nil {
		t.Fatal(err)
	}
	bg, err := session.NewPostgresStore(pool, session.PostgresOptions{Table: table, CleanupInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer bg.Close()
	within(t, "rotation by the background cleanup", 10*time.Second, func() bool {
		p := partitionsOf(t, pool, table)
		return p[dayName(table, 2)] && !p[dayName(table, -8)]
	})
}

// TestPartitionedExpiryReports: when a Manager listens for expirations,
// the rows of a dropped partition are reported as expired before it
// goes; a row of the DEFAULT partition too.
func TestPartitionedExpiryReports(t *testing.T) {
	s := newPartitionedStore(t, session.PostgresOptions{DisableCleanup: true})
	pool, table := s.Pool(), s.Table()
	ctx := tctx(t)
	log := &eventLog{}
	app := newSecApp(t, s, session.Options{OnEvent: log.add, Lifetime: time.Hour})
	user := randomName("u")
	cookie := app.login(user)
	id := app.storeID(cookie)
	// Age the session: it belongs to a finished day and has expired.
	// Three copies of it share its partition.
	pastPartition(t, pool, table, -5, 0, "", "")
	if _, err := pool.Exec(ctx, `INSERT INTO `+table+` (id, data, expires, user_id, bucket) SELECT 'old-' || i, data, now() - interval '1 minute', user_id, $2 FROM `+table+`, generate_series(1, 3) AS i WHERE id = $1`, id, utcDay(-5)); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE `+table+` SET bucket = $2, expires = now() - interval '1 second' WHERE id = $1`, id, utcDay(-5)); err != nil {
		t.Fatal(err)
	}
	// A stray expired row in the DEFAULT partition (a day with no
	// partition).
	if _, err := pool.Exec(ctx, `INSERT INTO `+table+` (id, data, expires, bucket) SELECT 'stray', data, now() - interval '1 second', $1 FROM `+table+` WHERE id = 'old-1'`, utcDay(-400)); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteExpired(ctx)
	if err != nil || n != 5 {
		t.Fatalf("DeleteExpired = %d, %v; want 5 (4 rows of a dropped partition, 1 of the DEFAULT one)", n, err)
	}
	if partitionsOf(t, pool, table)[dayName(table, -5)] {
		t.Fatal("the dead partition is still there")
	}
	e := log.await(t, audit.Expired, id, 5*time.Second)
	if e.UserID != user {
		t.Errorf("expired event: %+v", e)
	}
	for _, other := range []string{"old-1", "old-2", "old-3", "stray"} {
		log.await(t, audit.Expired, other, 5*time.Second)
	}
	if got := len(log.find(audit.Expired, "")); got != 5 {
		t.Errorf("%d expired events, want 5: %v", got, log.all())
	}
}

// TestPartitionedFirstInsertRace: two writers of one new id at once never
// leave two rows: concurrent CompareAndSets (old nil) give one success and
// one ErrConflict, concurrent Sets one row; a unique violation caused by a
// writer that holds no lock is ErrConflict for CompareAndSet and retried
// by Set.
func TestPartitionedFirstInsertRace(t *testing.T) {
	s := newPartitionedStore(t, session.PostgresOptions{DisableCleanup: true})
	pool, table := s.Pool(), s.Table()
	ctx := tctx(t)
	exp := time.Now().Add(time.Hour)
	rows := func(id string) int {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE id = $1`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i := range 40 {
		id := fmt.Sprintf("race-%d", i)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for g := range 2 {
			wg.Go(func() {
				if i%2 == 0 {
					errs[g] = s.CompareAndSet(ctx, id, nil, session.Record{Data: []byte{byte(g)}, Expires: exp})
				} else {
					errs[g] = s.Set(ctx, id, session.Record{Data: []byte{byte(g)}, Expires: exp})
				}
			})
		}
		wg.Wait()
		if i%2 == 0 {
			ok := 0
			for _, err := range errs {
				if err == nil {
					ok++
				} else if !errors.Is(err, session.ErrConflict) {
					t.Fatalf("CompareAndSet: %v", err)
				}
			}
			if ok != 1 {
				t.Fatalf("%s: %d CompareAndSets succeeded (%v), want 1", id, ok, errs)
			}
		} else if errs[0] != nil || errs[1] != nil {
			t.Fatalf("Set: %v", errs)
		}
		if n := rows(id); n != 1 {
			t.Fatalf("%s: %d rows, want 1", id, n)
		}
	}

	// Midnight: the other writer's row went to yesterday's partition (its
	// transaction began before midnight), ours would go to today's, so
	// the primary key (id, bucket) cannot catch it; the id's lock does.
	pastPartition(t, pool, table, -1, 0, "", "")
	for _, cas := range []bool{true, false} {
		id := fmt.Sprintf("midnight-%v", cas)
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('sessionkit/session id `+table+`'), hashtext($1))`, id); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+table+` (id, data, expires, bucket) VALUES ($1, 'theirs', now() + interval '1 hour', $2)`, id, utcDay(-1)); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			if cas {
				done <- s.CompareAndSet(ctx, id, nil, session.Record{Data: []byte("ours"), Expires: exp})
			} else {
				done <- s.Set(ctx, id, session.Record{Data: []byte("ours"), Expires: exp})
			}
		}()
		time.Sleep(300 * time.Millisecond)
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		err = <-done
		if cas && !errors.Is(err, session.ErrConflict) || !cas && err != nil {
			t.Fatalf("write racing a first insert in yesterday's partition (CompareAndSet %v) = %v", cas, err)
		}
		if n := rows(id); n != 1 {
			t.Fatalf("%s: %d rows, want 1", id, n)
		}
	}

	// A writer without the lock inserts the id in a transaction that
	// commits while our statement waits on the primary key.
	for _, cas := range []bool{true, false} {
		id := fmt.Sprintf("nolock-%v", cas)
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+table+` (id, data, expires) VALUES ($1, 'theirs', now() + interval '1 hour')`, id); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			if cas {
				done <- s.CompareAndSet(ctx, id, nil, session.Record{Data: []byte("ours"), Expires: exp})
			} else {
				done <- s.Set(ctx, id, session.Record{Data: []byte("ours"), Expires: exp})
			}
		}()
		time.Sleep(300 * time.Millisecond) // waiting on the other's row
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		err = <-done
		rec, gerr := s.Get(ctx, id)
		switch {
		case cas && !errors.Is(err, session.ErrConflict):
			t.Fatalf("CompareAndSet against a concurrent first insert = %v, want ErrConflict", err)
		case cas && (gerr != nil || string(rec.Data) != "theirs"):
			t.Fatalf("after the conflict: %q, %v", rec.Data, gerr)
		case !cas && (err != nil || gerr != nil || string(rec.Data) != "ours"):
			t.Fatalf("Set against a concurrent first insert = %v; then %q, %v; want the retry to update the row", err, rec.Data, gerr)
		}
		if n := rows(id); n != 1 {
			t.Fatalf("%s: %d rows, want 1", id, n)
		}
	}
}

// TestPartitionedWeekly: PartitionWidth a week gives one partition per
// week, Monday to Monday (UTC); the width is read from the table, so a
// store without the option rotates it by weeks too; other widths are
// refused.
func TestPartitionedWeekly(t *testing.T) {
	for _, w := range []time.Duration{time.Hour, -24 * time.Hour, 48 * time.Hour} {
		if _, err := session.NewPostgresStore(testPool(t), session.PostgresOptions{Partitioned: true, PartitionWidth: w}); err == nil || !strings.Contains(err.Error(), "PartitionWidth") {
			t.Errorf("PartitionWidth %v: %v", w, err)
		}
	}
	s := newPartitionedStore(t, session.PostgresOptions{DisableCleanup: true, PartitionWidth: 7 * 24 * time.Hour})
	pool, table := s.Pool(), s.Table()
	ctx := tctx(t)
	monday := utcDay(0)
	for monday.Weekday() != time.Monday {
		monday = monday.AddDate(0, 0, -1)
	}
	this := table + "_p" + monday.Format("20060102")
	want := map[string]bool{this: true, table + "_default": true}
	if next := monday.AddDate(0, 0, 7); next.Before(time.Now().Add(72 * time.Hour)) {
		want[table+"_p"+next.Format("20060102")] = true
	}
	if got := partitionsOf(t, pool, table); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("weekly partitions = %v, want %v", got, want)
	}
	if err := s.Set(ctx, "w", session.Record{Data: []byte("1"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	var where string
	pool.QueryRow(ctx, `SELECT tableoid::regclass::text FROM `+table+` WHERE id = 'w'`).Scan(&where)
	if where != this {
		t.Fatalf("row written into %s, want %s", where, this)
	}
	// A store without the options, and the plain Migrate, keep weeks.
	if err := session.Migrate(ctx, pool, table); err != nil {
		t.Fatal(err)
	}
	other, err := session.NewPostgresStore(pool, session.PostgresOptions{Table: table, DisableCleanup: true})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.DeleteExpired(ctx); err != nil {
		t.Fatal(err)
	}
	if got := partitionsOf(t, pool, table); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after Migrate and DeleteExpired by another store: %v, want %v", got, want)
	}
}
