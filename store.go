package session

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by [Store.Get] and [Store.Touch] when no live
// record has the id: it was never stored, was destroyed, or has expired.
var ErrNotFound = errors.New("session: not found")

// ErrStoreFull is returned by [Store.Set] on a store with a size limit when
// creating one more record would exceed it. Replacing an existing record
// never returns it.
var ErrStoreFull = errors.New("session: store is full")

// ErrConflict is returned by [CompareAndSetter.CompareAndSet] when the
// stored record is no longer the one the caller read.
var ErrConflict = errors.New("session: record changed since it was read")

// Record is what a Store keeps for one session.
type Record struct {
	// Data is opaque to the store: it is stored and returned byte for byte.
	// Get returns a non-nil Data for a live record (an empty slice when the
	// record's Data is empty), so that the Data of any read can be passed
	// as old to [CompareAndSetter.CompareAndSet]. A nil Data given to Set
	// or CompareAndSet is stored as empty.
	Data []byte
	// Expires is the absolute expiry. A record is live while the current
	// time is before Expires: a store never returns a record at or past
	// this instant, whether or not its cleanup has run.
	//
	// A store keeps Expires to the millisecond at least: it may truncate
	// to whole milliseconds (Redis does), no coarser. Expiries have
	// sub-second parts (the Manager computes them from the current time,
	// and [github.com/sessionkit/session/sessiontest] writes records that
	// live a few hundred milliseconds); a store that keeps whole seconds
	// ends records up to a second early or keeps them up to a second too
	// long.
	Expires time.Time
	// UserID binds the record to a user, so that a [UserIndex] store can
	// find it by user without scanning. "" (the zero value) is an unbound
	// record, which costs a store nothing extra. It is read by Set and
	// CompareAndSet. Get may return it or leave it empty, and callers do
	// not rely on it (the Manager keeps the binding in Data as well);
	// [UserIndex.ListUser] always fills it in. A store that does not
	// implement UserIndex ignores it. An id keeps the binding it was first
	// written with: callers never rewrite an id under another UserID (the
	// Manager gives a session a new id whenever its user changes).
	UserID string
}

// Store keeps session records by id.
//
// The id a store receives is already derived from the client's token (by
// default its SHA-256), but a store still treats it as data: any byte
// sequence is a valid id and two different ids never share a record.
//
// Every method honours ctx: when it is cancelled or its deadline passes the
// call returns promptly with an error wrapping ctx.Err(). A backend that is
// down returns an error wrapping the cause; no method panics on anything
// found in the backend.
//
// Writing a store: the package documentation of
// [github.com/sessionkit/session/sessiontest] is the guide, with the
// contract in plain words and the conformance suite every store must pass;
// examples/sqlitestore in this repository is a reference store on
// database/sql.
//
// # Optional abilities, and who uses them
//
// Beyond these four methods a store may implement [CompareAndSetter],
// [UserIndex], [Counter], [Cleaner], [Pinger] and [io.Closer]; callers find
// them by type assertion. A store implements only those it can honour: a
// method that always fails with [errors.ErrUnsupported] makes callers
// believe in an ability that is not there. What each caller does without
// one:
//
//   - The Manager ([New]) saves with CompareAndSetter. Without it New
//     returns an error wrapping [errors.ErrUnsupported] unless [Options.AllowLastWriterWins] is
//     set; with that option concurrent requests on one session may lose
//     each other's writes, a request in flight after a logout, renew or
//     revocation may write the session back, and [Session.Pop] may hand
//     one value to several requests. Its user methods
//     ([Manager.UserSessions], [Manager.RevokeUser],
//     [Manager.RevokeSession]) need UserIndex and return
//     an error wrapping [errors.ErrUnsupported] without it: no "sign out everywhere".
//   - [Tiered] compares and sets, and lists and revokes users, on its
//     source, so those abilities need a source that has them. A cache that
//     is a CompareAndSetter is refilled after each write; without it the
//     cached copy is evicted, and the next read misses. Count, cleanup and
//     ping are the source's.
//   - [Failover] sends CompareAndSet, ListUser, DestroyUser and Count to
//     the active store, so each needs every store to have it. Its probes
//     ping every store: one that is not a Pinger always looks healthy, so
//     requests move back to it after RecoverAfter probes even while it is
//     down. DeleteExpired cleans every store that is a Cleaner.
//   - [Open], package health and sessionctl ping with Pinger (a
//     store without it counts as reachable), count with Counter (no
//     session count without it), and [Backend.Close] closes with io.Closer.
//     Without Cleaner, expired records are still never returned, but stay
//     in the backend until the store removes them by itself.
type Store interface {
	// Get returns the live record stored under id. It returns ErrNotFound
	// when there is none or it has expired. Data in the backend that the
	// store did not write (a hand-edited row) is an error or ErrNotFound.
	Get(ctx context.Context, id string) (Record, error)

	// Set creates or replaces the record under id, data and expiry
	// together, whether or not a record (live or expired) is there. A
	// record whose Expires is not in the future is removed instead of
	// stored. The store keeps its own copy of rec.Data.
	Set(ctx context.Context, id string, rec Record) error

	// Destroy removes the record under id. Destroying an id that does not
	// exist is not an error: Destroy is idempotent.
	Destroy(ctx context.Context, id string) error

	// Touch moves the expiry of a live record to expires without rewriting
	// its data. It returns ErrNotFound when no live record has the id (an
	// expired record is not revived). An expires that is not in the future
	// ends the record: Touch returns nil and the record is gone from then
	// on, as if it had expired (or ErrNotFound, when no live record had
	// the id). Touch never creates a record.
	Touch(ctx context.Context, id string, expires time.Time) error
}

// Counter is implemented by stores that can count their live records.
type Counter interface {
	// Count returns the number of live records: expired records are not
	// counted, whether or not cleanup has removed them yet. On large
	// stores it may be approximate by the records that expire while it
	// runs.
	Count(ctx context.Context) (int64, error)
}

// Cleaner is implemented by stores that can delete expired records on
// demand. Stores whose backend expires records by itself (Redis) implement
// it as a no-op that returns 0.
type Cleaner interface {
	// DeleteExpired deletes records that have expired and returns how many
	// it deleted. It never deletes a live record.
	DeleteExpired(ctx context.Context) (int64, error)
}

// Pinger is implemented by stores that can check that their backend
// answers.
type Pinger interface {
	// Ping returns nil when the backend answered within ctx.
	Ping(ctx context.Context) error
}

// CompareAndSetter is implemented by stores that can replace a record only
// if it has not changed since it was read. The middleware uses it so that
// concurrent requests on one session never lose each other's writes, and
// so that a request still in flight cannot write back a session that was
// destroyed or renewed meanwhile.
//
// The version of a record is its Data: two reads that return the same
// bytes see the same version. That needs no extra field in the backend, so
// a record stays a plain value an operator can read, and it is exact for
// the middleware, which merges a request's changes onto whatever bytes it
// finds.
type CompareAndSetter interface {
	// CompareAndSet stores rec under id only if the comparison with old
	// holds, and otherwise changes nothing and returns ErrConflict. The
	// comparison and the write are one atomic step: of two concurrent
	// calls with the same old, at most one succeeds.
	//
	//   - old == nil: it holds when no live record has the id. An expired
	//     record counts as absent, whether or not cleanup has removed it,
	//     so CompareAndSet replaces it.
	//   - old != nil (including an empty, non-nil slice): it holds when a
	//     live record has the id and its Data equals old byte for byte.
	//     []byte{} thus means "a live record whose Data is empty", never
	//     "no record". An expired record never matches.
	//
	// Note that bytes.Equal(nil, []byte{}) is true: test old == nil first.
	// As with Set, a rec whose Expires is not in the future removes the
	// record (when the comparison holds), and a nil rec.Data is stored as
	// empty.
	CompareAndSet(ctx context.Context, id string, old []byte, rec Record) error
}

// UserIndex is implemented by stores that index records by
// [Record.UserID], so that one user's sessions are listed and ended without
// scanning the store: after a password change, an account ban or "sign out
// everywhere". The Manager uses it in [Manager.UserSessions],
// [Manager.RevokeUser] and [Manager.RevokeSession].
//
// What a store must do, which [github.com/sessionkit/session/sessiontest]
// checks:
//
//   - A record written by Set or CompareAndSet with a UserID is listed by
//     ListUser (and ended by DestroyUser) from the moment that write
//     returns until it is destroyed or expires, including when a later
//     write of it (with the same UserID) moved its expiry. Unbound records
//     (UserID "") are never listed.
//   - Expired and destroyed records are never listed or counted, whether
//     or not the index has been pruned yet: the index may hold stale
//     entries, but ListUser and DestroyUser check each record they report.
//   - Touch has no UserID, so a store may keep its index by writes only:
//     a bound record whose expiry only Touch moved may stop being listed
//     once the expiry of its last write has passed (the built-in Redis
//     store does this; memory and Postgres keep listing it). A caller
//     that extends a bound record therefore writes it (Set or
//     CompareAndSet with its UserID), as the Manager does.
//   - User ids are data like session ids: any string names exactly one
//     user, and no user id matches another as a pattern.
//   - DestroyUser is safe against concurrent writers: a record it ended
//     cannot be written back by a CompareAndSet that read it before, and a
//     record created while it runs is either ended or still listed, never
//     live and unlisted.
type UserIndex interface {
	// ListUser returns the live records bound to userID, in no particular
	// order, with ID and Record (Data, Expires, UserID) filled in.
	ListUser(ctx context.Context, userID string) ([]UserRecord, error)

	// DestroyUser destroys every live record bound to userID except the
	// one whose id is except ("" spares none), and returns the ids of the
	// live records it destroyed, in no particular order: a cache in front
	// of the store buries them, and the manager reports each as ended. It
	// may also delete the user's expired records; those are not returned.
	// On an error it returns the ids it had destroyed so far.
	DestroyUser(ctx context.Context, userID, except string) (ids []string, err error)
}

// UserRecord is one record listed by [UserIndex.ListUser].
type UserRecord struct {
	// ID is the record's store id, as Get takes it.
	ID string
	// Record is the record, its UserID filled in.
	Record
}
