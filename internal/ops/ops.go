// Package ops is how cmd/sessionctl, and package express, reach what
// package session keeps unexported: what an operator's tool or a mode
// built on the package needs and an app never should.
// Package session sets every variable here in its init, so a program that
// imports both finds them set. Where a type of package session cannot be
// named here (it would be an import cycle), the doc says what to assert.
package ops

import (
	"context"
	"time"
)

// Candidate is one backend that session.Open would try at startup.
type Candidate struct {
	Name       string // "redis", "postgres" or "memory"
	Addr       string // host:port, never credentials; "" for memory
	Persistent bool   // false for memory
}

// Migration is one numbered schema change of the embedded migrations.
type Migration struct {
	Version int
	Name    string
}

// Partition is one partition of a partitioned Postgres session table.
type Partition struct {
	Name      string `json:"name"`
	Bounds    string `json:"bounds"`             // as Postgres prints them
	Rows      int64  `json:"rows_estimate"`      // the planner's estimate; -1: never analyzed
	Droppable bool   `json:"droppable"`          // its day is over and no row in it is live
	Detached  bool   `json:"detached,omitempty"` // left behind by a failed drop; the next cleanup drops it
}

// StoreFailure is one failed call of a store that counts its calls (every
// store session.Open returns), as the operator's console lists them.
type StoreFailure struct {
	Time  time.Time
	Op    string // "load", "save", "touch", "destroy" or "other"
	Error string // the error's text, at most 500 bytes; never credentials
}

var (
	// RecentFailures returns the last failed calls (at most 20, newest
	// first) of store (a session.Store) when it remembers them, as every
	// store session.Open, NewTiered and NewFailover return does; nil
	// otherwise.
	RecentFailures func(store any) []StoreFailure

	// DecodeWith decodes the Data of a record of manager's store (a
	// *session.Manager) with the manager's own codec, as DecodeRecord
	// does with the JSON codec.
	DecodeWith func(manager any, data []byte) (Record, error)

	// Handle returns the session.UserSession.Handle of the session stored
	// under storeID.
	Handle func(storeID string) string

	// Attempts returns what became of each backend session.Open
	// considered at startup, in order, for backend (a *session.Backend).
	Attempts func(backend any) []Attempt

	// IDsAreSecret reports whether manager's (a *session.Manager's) store
	// ids may be worth as much as cookies: its TokenCodec names its
	// records itself (package express keys them by the raw session id).
	// Then no tool may display or look up one.
	IDsAreSecret func(manager any) bool

	// Candidates returns the backends cfg (a session.Config) configures,
	// in the order session.Open tries them.
	Candidates func(cfg any) ([]Candidate, error)

	// Try runs check on c as session.Open runs a candidate's startup check:
	// with cfg's (a session.Config's) rules for a non-persistent backend
	// and its timeout, logging nothing. It returns a session.Attempt.
	Try func(ctx context.Context, cfg any, c Candidate, check func(context.Context) error) any

	// Migrations returns the embedded migrations, in order.
	Migrations func() ([]Migration, error)

	// PurgeExpired deletes the expired rows of store (a
	// *session.PostgresStore) without resting between batches, calling
	// progress with the running total after each batch.
	PurgeExpired func(ctx context.Context, store any, progress func(deleted int64)) (int64, error)

	// Partitions lists the partitions of the table of store (a
	// *session.PostgresStore), oldest first, the DEFAULT one last;
	// partitioned is false for a plain table.
	Partitions func(ctx context.Context, store any) (parts []Partition, partitioned bool, err error)

	// DecodeRecord reads a record written by the JSON codec: the
	// manager's facts about the session and its values.
	DecodeRecord func(data []byte) (Record, error)

	// DecodeCookie verifies value, a cookie or header value signed by
	// keys (a []session.KeyPair) for the cookie name, and returns the
	// token it carries. EncodeCookie is its inverse, for tests.
	DecodeCookie func(keys any, name, value string) (string, error)
	EncodeCookie func(keys any, name, token string) (string, error)

	// StoreID is the default store id of a token.
	StoreID func(token string) string

	// Components lists the backends of store (a session.Store): those a
	// tiered or failover store is made of, or the store itself.
	Components func(store any) []Component
	// Active names the backend of store that requests go to.
	Active func(store any) string

	// For package express, which keeps records in Node's layouts with
	// the same care as package session keeps its own:
	//
	// CheckJSONDepth refuses JSON nested deeper than a stored record may
	// be, wrapping session.ErrBadPayload.
	CheckJSONDepth func(data []byte) error
	// Scrub replaces rawURL's password in err's text.
	Scrub func(err error, rawURL string) error
	// ValidTable reports whether name is a table name session accepts
	// ([schema.]table, lower case).
	ValidTable func(name string) bool
	// RedisFail wraps err from operation op of store (a
	// *session.RedisStore), reloading a Cluster's slot map as the store
	// does on its own failures.
	RedisFail func(store any, op string, err error) error

	// RedactURL returns rawURL with its password replaced, as session's
	// errors and logs show URLs.
	RedactURL func(rawURL string) string

	// Stores returns the stores store (a session.Store) is made of: the
	// backends of a tiered or failover composition, the store under
	// session.Open's instrumentation, or store itself; each a
	// session.Store. Package express refuses, at startup, the stores
	// that would write a layout Node cannot read; their types are
	// unexported, so only package session can see inside them.
	Stores func(store any) []any
)

// Record is what DecodeRecord finds in a record.
type Record struct {
	Created   time.Time
	Transient bool
	UserID    string
	LastSeen  time.Time
	UserAgent string
	IP        string
	Values    map[string]any
}

// Outcome is what became of a backend session.Open considered at startup.
type Outcome string

// The outcomes of an Attempt.
const (
	// OutcomeChosen: the backend works and is used.
	OutcomeChosen Outcome = "chosen"
	// OutcomeFailed: the backend did not answer, or its check (ping,
	// migration) failed; Reason says how.
	OutcomeFailed Outcome = "failed"
	// OutcomeSkipped: the backend was not tried because the rules refuse
	// it (memory in production); Reason says which rule.
	OutcomeSkipped Outcome = "skipped"
	// OutcomeNotTried: an earlier backend was chosen.
	OutcomeNotTried Outcome = "not tried"
)

// Attempt is what became of one configured backend when session.Open chose a
// store at startup: see sessionctl doctor. Its String is one line, such
// as "redis (10.0.0.5:6379): failed: no answer within 3s: …".
type Attempt struct {
	// Name is the backend: "redis", "postgres" or "memory".
	Name string `json:"name"`
	// Addr is its host:port, "" for memory. It never holds credentials.
	Addr string `json:"addr,omitempty"`
	// Outcome is what became of it.
	Outcome Outcome `json:"outcome"`
	// Reason says why it failed or was skipped, "" otherwise. It never
	// holds credentials.
	Reason string `json:"reason,omitempty"`
	// Duration is how long its check took; 0 when it was not tried.
	Duration time.Duration `json:"duration"`
}

func (a Attempt) String() string {
	s := a.Name
	if a.Addr != "" {
		s += " (" + a.Addr + ")"
	}
	s += ": " + string(a.Outcome)
	if a.Reason != "" {
		s += ": " + a.Reason
	}
	return s
}

// Component is one backend inside a store. Store is a session.Store.
type Component struct {
	Name     string
	Addr     string
	Store    any
	Required bool
}
