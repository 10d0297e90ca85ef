// Package sqlitestore is a reference [session.Store] on database/sql,
// written to be read: each method is one SQL statement, and the comments
// say which rule of the contract it keeps. The guide it goes with is the
// documentation of package sessiontest; its test runs sessiontest.Run and
// a real server through session.New.
//
// It is an example, in a module of its own so that the library never
// depends on a SQLite driver. The SQL is SQLite's (through the pure-Go
// modernc.org/sqlite), but only the upsert is dialect-specific.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/sessionkit/session"
)

// Store keeps sessions in one table:
//
//	id      BLOB PRIMARY KEY  -- any byte sequence is a valid id
//	data    BLOB NOT NULL     -- opaque, never NULL (empty is a value)
//	expires INTEGER NOT NULL  -- Unix milliseconds: sub-second precision
//
// It implements session.Store, CompareAndSetter, Counter, Cleaner and
// Pinger. It is not a UserIndex (it ignores Record.UserID), and not a
// io.Closer: the caller owns db.
type Store struct{ db *sql.DB }

// New creates the table if it is missing and returns a Store on db.
func New(ctx context.Context, db *sql.DB) (*Store, error) {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS sessions (
		id BLOB PRIMARY KEY, data BLOB NOT NULL, expires INTEGER NOT NULL);
		CREATE INDEX IF NOT EXISTS sessions_expires ON sessions (expires)`)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: create table: %w", err)
	}
	return &Store{db: db}, nil
}

// ms is the one unit of time in the table. Every "is it live?" test
// compares with now passed from Go, so the store has one clock (the
// process's) and never depends on the database server's.
func ms(t time.Time) int64 { return t.UnixMilli() }

// notNil turns a nil Data into an empty one: a nil []byte would be stored
// as NULL, and a live record's Data must read back non-nil.
func notNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Get returns the live record, or session.ErrNotFound. The expiry test is
// in the WHERE clause: an expired row that cleanup has not yet deleted is
// never returned.
func (s *Store) Get(ctx context.Context, id string) (session.Record, error) {
	var rec session.Record
	var exp int64
	err := s.db.QueryRowContext(ctx,
		`SELECT data, expires FROM sessions WHERE id = ? AND expires > ?`,
		[]byte(id), ms(time.Now())).Scan(&rec.Data, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return session.Record{}, session.ErrNotFound
	}
	if err != nil {
		return session.Record{}, fmt.Errorf("sqlitestore: get: %w", err) // wraps ctx.Err() too
	}
	rec.Data = notNil(rec.Data) // the driver may scan an empty BLOB as nil
	rec.Expires = time.UnixMilli(exp)
	return rec, nil // UserID left empty: allowed for Get
}

// Set writes data and expiry together with one upsert; an expiry not in
// the future removes the record instead.
func (s *Store) Set(ctx context.Context, id string, rec session.Record) error {
	if !rec.Expires.After(time.Now()) {
		return s.Destroy(ctx, id)
	}
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO sessions (id, data, expires) VALUES (?, ?, ?)
		 ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires = excluded.expires`,
		[]byte(id), notNil(rec.Data), ms(rec.Expires))
	if err != nil {
		return fmt.Errorf("sqlitestore: set: %w", err)
	}
	return nil
}

// Destroy deletes the row; deleting nothing is not an error.
func (s *Store) Destroy(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE id = ?`, []byte(id)); err != nil {
		return fmt.Errorf("sqlitestore: destroy: %w", err)
	}
	return nil
}

// Touch moves the expiry of a live row only, never its data. One UPDATE
// covers every case: an expired or missing row matches nothing
// (ErrNotFound), and an expiry in the past leaves the row expired, which
// ends the record as the contract asks.
func (s *Store) Touch(ctx context.Context, id string, expires time.Time) error {
	res, err := s.db.ExecContext(ctx,
		`UPDATE sessions SET expires = ? WHERE id = ? AND expires > ?`,
		ms(expires), []byte(id), ms(time.Now()))
	return changed(res, err, "touch", session.ErrNotFound)
}

// CompareAndSet writes rec only if the live row still holds old, in one
// statement, which SQLite runs atomically: the comparison is in the WHERE
// clause, never a SELECT followed by a write.
func (s *Store) CompareAndSet(ctx context.Context, id string, old []byte, rec session.Record) error {
	now, del := ms(time.Now()), !rec.Expires.After(time.Now())
	var res sql.Result
	var err error
	switch {
	case old == nil && del:
		// "No live record" holds unless there is one; nothing to write.
		var live bool
		err = s.db.QueryRowContext(ctx,
			`SELECT EXISTS (SELECT 1 FROM sessions WHERE id = ? AND expires > ?)`,
			[]byte(id), now).Scan(&live)
		if err == nil && live {
			return session.ErrConflict
		}
		return wrap(err, "compare-and-set")
	case old == nil:
		// Create, or replace a row that has expired (it counts as absent);
		// a live row makes the upsert's WHERE false and changes nothing.
		res, err = s.db.ExecContext(ctx,
			`INSERT INTO sessions (id, data, expires) VALUES (?, ?, ?)
			 ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires = excluded.expires
			 WHERE sessions.expires <= ?`,
			[]byte(id), notNil(rec.Data), ms(rec.Expires), now)
	case del:
		// old is non-nil here, so []byte{} matches only a live empty row.
		res, err = s.db.ExecContext(ctx,
			`DELETE FROM sessions WHERE id = ? AND expires > ? AND data = ?`,
			[]byte(id), now, old)
	default:
		res, err = s.db.ExecContext(ctx,
			`UPDATE sessions SET data = ?, expires = ? WHERE id = ? AND expires > ? AND data = ?`,
			notNil(rec.Data), ms(rec.Expires), []byte(id), now, old)
	}
	return changed(res, err, "compare-and-set", session.ErrConflict)
}

// Count counts live rows only: expired ones are not sessions any more.
func (s *Store) Count(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sessions WHERE expires > ?`, ms(time.Now())).Scan(&n)
	return n, wrap(err, "count")
}

// DeleteExpired deletes expired rows and says how many. No goroutine calls
// it: run it from a cron job, or a ticker of your own.
func (s *Store) DeleteExpired(ctx context.Context) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE expires <= ?`, ms(time.Now()))
	if err != nil {
		return 0, wrap(err, "delete expired")
	}
	return res.RowsAffected()
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return wrap(s.db.PingContext(ctx), "ping") }

// changed turns a write that matched no row into none.
func changed(res sql.Result, err error, op string, none error) error {
	if err != nil {
		return wrap(err, op)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return wrap(err, op)
	}
	if n == 0 {
		return none
	}
	return nil
}

func wrap(err error, op string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("sqlitestore: %s: %w", op, err)
}

// The abilities the store claims, checked by the compiler.
var (
	_ session.CompareAndSetter = (*Store)(nil)
	_ session.Counter          = (*Store)(nil)
	_ session.Cleaner          = (*Store)(nil)
	_ session.Pinger           = (*Store)(nil)
)
