// Package sessiontest is the conformance suite for implementations of
// [session.Store], and the guide to writing one.
//
// # Running the suite
//
// A store proves itself with
//
//	func TestConformance(t *testing.T) {
//		sessiontest.Run(t, func(t *testing.T) session.Store { return newMyStore(t) })
//	}
//
// newStore must return a fresh, empty store for each call (its own key
// prefix, table or database file), so that subtests never see each
// other's records. Run closes each store it is given, when the store
// implements [io.Closer]; anything else newStore opens it closes
// with t.Cleanup.
//
// Run skips the tests of each optional ability the store does not
// implement. It logs each skipped ability with what it costs (with -v, or
// when the test fails) and returns them as [Skipped] values, so that a
// test can pin the list and notice when an ability goes missing.
//
// A reference store lives in examples/sqlitestore in this repository: a
// Store on database/sql (SQLite through modernc.org/sqlite) in about 200
// commented lines, each method one SQL statement. It implements
// CompareAndSetter, Counter, Cleaner and Pinger, and its test also runs a
// server through [session.New]. Start from it.
//
// # The contract in plain words
//
// The doc comments of [session.Store], [session.Record] and the optional
// interfaces are the reference; this is the same, in the order a store
// author meets it.
//
//   - An id is data. It is usually a hash, but any byte sequence is a
//     valid id: bind it as a query parameter (a BLOB column keeps every
//     byte), put it after a fixed prefix in a key, never into a pattern.
//     The suite writes ids such as "*", "' OR '1'='1", "a%" and 4 KiB of
//     "x", and checks that no two share a record.
//   - Data is opaque bytes, kept and returned byte for byte (binary, up
//     to at least 1 MiB). The store keeps its own copy: changing the
//     slice given to Set, or returned by Get, changes nothing stored.
//   - Data of a live record is never nil. An empty record reads back as
//     []byte{}, and a nil Data given to Set or CompareAndSet is stored as
//     empty. The reason is CompareAndSet, below: the Data of any read is
//     passed back as old, where nil means "no record".
//   - A record is live while the current time is before Expires. A store
//     checks that on every read (Get, Touch, CompareAndSet, Count,
//     ListUser), whether or not its cleanup has run: cleanup only frees
//     space. Compare with one clock; the reference store passes the
//     process's time to each query instead of using the database's now().
//   - Expires is kept to the millisecond at least. Truncating to whole
//     milliseconds is fine; whole seconds are not: the Manager and the
//     suite write expiries less than a second away. A store that keeps
//     seconds fails [Run] at random elsewhere with "not found" or "record
//     changed"; the ExpiryPrecision subtest says so directly.
//   - Set creates or replaces the record, data and expiry together. An
//     Expires not in the future removes the record instead.
//   - Destroy removes the record; destroying what is not there is not an
//     error.
//   - Touch moves the expiry of a live record without rewriting its data,
//     and returns [session.ErrNotFound] when there is no live record: it
//     never creates a record and never revives an expired one. A Touch to
//     a time not in the future ends the record as if it had expired (and
//     returns nil, or ErrNotFound when there was no live record).
//   - Get returns ErrNotFound for a missing or expired record. It may
//     leave Record.UserID empty; [session.UserIndex.ListUser] fills it in.
//   - Every method honours ctx: a cancelled ctx or a passed deadline ends
//     the call promptly with an error wrapping ctx.Err(), and changes
//     nothing. database/sql does this by itself when every call is a
//     ...Context method. Other errors wrap their cause; nothing found in
//     the backend makes a method panic.
//   - Every method is safe for concurrent use.
//
// # Compare-and-set
//
// [session.CompareAndSetter] is the one optional ability to implement if
// the backend can do it at all: without it [session.New] refuses the store
// (unless the application sets Options.AllowLastWriterWins and accepts
// lost writes). CompareAndSet(ctx, id, old, rec) writes rec only if:
//
//   - old == nil: no live record has the id. An expired record that
//     cleanup has not removed yet counts as absent and is replaced.
//   - old != nil: a live record has the id and its Data equals old byte
//     for byte. old == []byte{} therefore means "a live record whose Data
//     is empty", and never matches a missing or expired record. Note that
//     bytes.Equal(nil, []byte{}) is true: test old == nil first.
//
// Otherwise it changes nothing and returns [session.ErrConflict]. A rec
// whose Expires is not in the future deletes the record when the
// comparison holds. The comparison and the write must be one atomic step:
// one SQL statement with the comparison in its WHERE clause (as the
// reference store does), a transaction that locks the row, a server-side
// script. A SELECT followed by a separate UPDATE loses updates, and the
// CompareAndSetConcurrent subtest counts them.
//
// # Optional abilities, and what each buys
//
// Implement an ability only when the store can honour it; a method that
// always fails with errors.ErrUnsupported makes callers believe in an
// ability that is not there. The doc comment of [session.Store] says
// which callers use which; in short:
//
//   - [session.CompareAndSetter]: safe concurrent requests. The Manager
//     merges concurrent changes to one session instead of losing them,
//     keeps a logged-out or revoked session from being written back by a
//     request still in flight, and hands a [session.Session.Pop] value to
//     one request only. [session.Tiered] and [session.Failover] compare
//     and set on the stores under them.
//   - [session.UserIndex]: a user's sessions. [session.Manager.UserSessions]
//     lists them and RevokeUser ends them ("sign out everywhere",
//     after a password change); without it they return
//     an error wrapping [errors.ErrUnsupported]. Records are indexed by Record.UserID as
//     Set and CompareAndSet write it; expired and destroyed records are
//     never listed or counted even where the index still holds them.
//   - [session.Counter]: the session count of health checks and sessionctl
//     stats. Expired records are not counted.
//   - [session.Cleaner]: freeing expired records on demand, for a backend
//     that does not expire them by itself. It returns how many it deleted
//     and never deletes a live record.
//   - [session.Pinger]: an honest health check. Startup selection, health
//     checks and Failover's probes treat a store without it as always
//     reachable.
//   - [io.Closer]: releasing goroutines and connections the store
//     opened itself. A store on a *sql.DB or a client the caller owns
//     does not need it.
//
// # Reading a failure
//
// A failure that a store author is likely to meet ends with a hint: the
// rule broken and, where there is a usual cause, the cause (a store that
// keeps whole seconds, nil confused with an empty slice, expired records
// counted or returned because cleanup has not run, a compare-and-set in
// two steps).
package sessiontest
