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
	Data []byte
	// Expires is the absolute expiry. A store never returns a record at or
	// past this instant, whether or not its cleanup has run.
	Expires time.Time
	// UserID binds the record to a user, so that a [UserIndex] store can
	// find it by user without scanning. "" (the zero value) is an unbound
	// record, which costs a store nothing extra. It is read by Set and
	// CompareAndSet; Get may leave it empty (the Manager keeps the binding
	// in Data as well). A store that does not implement UserIndex ignores
	// it. An id keeps the binding it was first written with: callers never
	// rewrite an id under another UserID (the Manager gives a session a new
	// id whenever its user changes).
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
type Store interface {
	// Get returns the live record stored under id. It returns ErrNotFound
	// when there is none or it has expired. Data in the backend that the
	// store did not write (a hand-edited row) is an error or ErrNotFound.
	Get(ctx context.Context, id string) (Record, error)

	// Set creates or replaces the record under id, data and expiry
	// together. A record whose Expires is not in the future is removed
	// instead of stored. The store keeps its own copy of rec.Data.
	Set(ctx context.Context, id string, rec Record) error

	// Destroy removes the record under id. Destroying an id that does not
	// exist is not an error: Destroy is idempotent.
	Destroy(ctx context.Context, id string) error

	// Touch moves the expiry of a live record to expires without rewriting
	// its data. It returns ErrNotFound when no live record has the id.
	Touch(ctx context.Context, id string, expires time.Time) error
}

// Counter is implemented by stores that can count their live records.
type Counter interface {
	// Count returns the number of records that have not expired. On large
	// stores it may be approximate by the records that expire while it
	// runs.
	Count(ctx context.Context) (int64, error)
}

// Cleaner is implemented by stores that can delete expired records on
// demand. Stores whose backend expires records by itself (Redis) implement
// it as a no-op that returns 0.
type Cleaner interface {
	// DeleteExpired deletes records that have expired and returns how many
	// it deleted.
	DeleteExpired(ctx context.Context) (int64, error)
}

// Pinger is implemented by stores that can check that their backend
// answers.
type Pinger interface {
	// Ping returns nil when the backend answered within ctx.
	Ping(ctx context.Context) error
}

// Closer is implemented by stores that hold resources: background
// goroutines, or connections they opened themselves. Close stops them and
// returns when they have stopped; calling it again is a no-op. Methods
// called after Close may fail.
type Closer interface {
	Close() error
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
	// CompareAndSet stores rec under id only if the live record's Data
	// equals old, or, when old is nil, only if there is no live record.
	// Otherwise it changes nothing and returns ErrConflict. As with Set, a
	// rec whose Expires is not in the future removes the record (when the
	// comparison holds).
	CompareAndSet(ctx context.Context, id string, old []byte, rec Record) error
}

// UserIndex is implemented by stores that index records by
// [Record.UserID], so that one user's sessions are listed and ended without
// scanning the store: after a password change, an account ban or "sign out
// everywhere". The Manager uses it in [Manager.UserSessions],
// [Manager.DestroyUserSessions] and [Manager.DestroyUserSession].
//
// The contract, which [sessiontest] checks on every built-in backend:
//
//   - A record written by Set or CompareAndSet with a UserID is listed by
//     ListUser (and ended by DestroyUser) from the moment that write
//     returns until it is destroyed or expires, including when a later
//     write of it (with the same UserID) moved its expiry. Expired and
//     destroyed records are never listed, whether or not the index has been
//     pruned yet.
//   - Store.Touch does not know the user. Memory and Postgres keep the
//     binding on the record itself, so a touched record stays listed; on
//     Redis the index entry lives until the expiry of the record's last
//     write. A caller that extends a bound record therefore writes it (Set
//     or CompareAndSet with its UserID), as the Manager does.
//   - DestroyUser is safe against concurrent writers: a record it ended
//     cannot be written back by a CompareAndSet that read it before, and a
//     record created while it runs is either ended or still listed, never
//     live and unlisted.
type UserIndex interface {
	// ListUser returns the live records bound to userID, in no particular
	// order, with ID and Record (Data, Expires, UserID) filled in.
	ListUser(ctx context.Context, userID string) ([]UserRecord, error)

	// DestroyUser destroys every live record bound to userID except the
	// one whose id is except ("" spares none), and returns how many live
	// records it destroyed.
	DestroyUser(ctx context.Context, userID, except string) (int, error)
}

// UserRecord is one record listed by [UserIndex.ListUser].
type UserRecord struct {
	ID string
	Record
}
