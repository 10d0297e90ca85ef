package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresOptions configures a [PostgresStore]. The zero value is ready to
// use.
type PostgresOptions struct {
	// Table is the table that holds sessions, optionally schema-qualified
	// ("auth.sessions"). Each part must be a lower-case SQL identifier. The
	// default is "sessions".
	Table string

	// CleanupInterval is how often a background goroutine deletes expired
	// rows. Expired rows are never returned either way; cleanup only frees
	// space. The default (0) is five minutes; a negative value is an
	// error.
	CleanupInterval time.Duration

	// DisableCleanup starts no background goroutine: expired rows are
	// still never returned, and are deleted only by DeleteExpired (or
	// sessionctl purge). For one-shot tools, and for deployments that
	// purge on a schedule of their own. The default is false.
	DisableCleanup bool

	// CleanupBatchSize is how many rows one DELETE removes (on a
	// partitioned table, in its DEFAULT partition only). Cleanup runs
	// batch after batch, each its own short statement, so deleting a
	// million rows never holds long locks; the background cleanup also
	// rests between batches three times as long as each took. The default
	// (0) is 1000; a negative value is an error.
	CleanupBatchSize int

	// Logger receives cleanup failures. The default is slog.Default().
	Logger *slog.Logger

	// Partitioned makes [PostgresStore.Migrate] create the table
	// partitioned by creation time (the UTC day each row was created, or
	// week: PartitionWidth), so that cleanup drops whole partitions
	// instead of deleting rows, which costs concurrent readers nothing.
	// Migrate creates the current partition, those beginning within the
	// next three days and a DEFAULT partition (so a write never fails for
	// a missing one), and the background cleanup keeps creating them
	// ahead. A partition is dropped once its span is over and every row
	// in it has expired, so an expired row keeps its space for up to the
	// sessions' lifetime plus one width (rows are never returned once
	// expired either way), and the expiry events of Options.OnEvent for
	// such rows come when their partition is dropped. A Get probes each partition's
	// index, so it costs more than on a plain table, the more so the more
	// partitions there are (bench/NOTES.md has the numbers): for
	// sessions that live weeks, choose PartitionWidth a week.
	//
	// It only matters when Migrate creates the table: the store detects
	// the layout of the table it finds, so the same program serves a
	// plain table and a partitioned one. Converting an existing plain
	// table is not supported: with Partitioned set, Migrate returns an
	// error naming a table that exists unpartitioned. The default is
	// false: a plain table, cleaned by deleting rows in batches.
	Partitioned bool

	// PartitionWidth is the span of one partition when Migrate creates a
	// partitioned table: 24 hours (the default, 0: one partition per UTC
	// day) or 7*24 hours (one per week, Monday to Monday, UTC). A wider
	// partition means fewer partitions for a Get to probe and expired
	// rows waiting up to one width longer before their partition is
	// dropped. Any other value, negative ones included, is an error. An
	// existing table keeps the width it was created with.
	PartitionWidth time.Duration
}

// PostgresStore is a [Store] on PostgreSQL through a [pgxpool.Pool].
//
// Its table is created by [Migrate]. Each method is one statement, so it
// works through a transaction pooler (PgBouncer in transaction mode,
// Supabase's pooler) as long as every statement travels in one round trip
// and no prepared statement is expected to outlive it: between two round
// trips the pooler may hand the client's connection to another server
// connection. With pgx's default_query_exec_mode, measured through
// PgBouncer 1.18 in transaction mode (TestPgBouncer):
//
//   - exec: works. The recommended setting: add
//     default_query_exec_mode=exec to the pooled URL.
//   - simple_protocol: works; parameters are interpolated client-side.
//   - cache_describe: works, as long as the table's schema does not change
//     under a running pool.
//   - cache_statement (pgx's default): fails, "prepared statement
//     stmtcache_… already exists" (42P05) or "does not exist" (26000).
//   - describe_exec: fails, "bind message supplies 3 parameters, but
//     prepared statement "" requires 1" (08P01): it prepares in one round
//     trip and executes in the next, on whatever server connection then
//     holds another client's unnamed statement. Never use it through a
//     transaction pooler.
//
// On a partitioned table (PostgresOptions.Partitioned) a write that may
// create a row is a batch of two statements, sent in one round trip and
// run as one implicit transaction, and dropping partitions is one
// multi-statement query: both work through a transaction pooler too.
//
// [Migrate] runs in one transaction and works through the pooler with
// exec; if it fails because of prepared statements, its error names the
// two ways out (exec mode, or a direct connection: DIRECT_URL).
type PostgresStore struct {
	pool     *pgxpool.Pool
	ownsPool bool
	table    string
	batch    int
	logger   *slog.Logger
	qGet     string
	qSet     string
	qDestroy string
	qTouch   string
	qCount   string
	qCleanup string
	// qCleanupReport is qCleanup returning the rows, for the expiry
	// reports (Options.OnEvent).
	qCleanupReport string

	qLive      string
	qCASInsert string
	qCASUpdate string
	qCASDelete string

	qListUser    string
	qDestroyUser string

	qEpoch      string
	qRaiseEpoch string

	// The partitioned layout (partition.go): wantPartitioned is
	// PostgresOptions.Partitioned; layout is what the table is, read
	// once (layoutUnknown until the table exists).
	wantPartitioned bool
	wantWidth       time.Duration
	layout          atomic.Int32
	width           atomic.Int64 // of the partitioned table, once layout says so
	qLockID         string
	qSetPart        string
	qCASInsertPart  string
	qRaiseEpochPart string
	// Cleanup of the DEFAULT partition, row by row.
	qCleanupPart       string
	qCleanupReportPart string

	expiries expiryHub // who is told of the rows cleanup deletes (Options.OnEvent)

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

var tableName = regexp.MustCompile(`^([a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,62}$`)

// check returns an error for an invalid (negative) option.
func (o PostgresOptions) check() error {
	if w := o.PartitionWidth; w != 0 && w != day && w != week {
		return fmt.Errorf("session: PostgresOptions.PartitionWidth is %v: want 24h (a day, the default) or 168h (a week)", w)
	}
	return checkNonNegative("PostgresOptions", "CleanupInterval", o.CleanupInterval, "CleanupBatchSize", o.CleanupBatchSize)
}

func checkTable(table string) (string, error) {
	if table == "" {
		return "sessions", nil
	}
	if !tableName.MatchString(table) {
		return "", fmt.Errorf("session: table name %q: want a lower-case SQL identifier, optionally schema-qualified", table)
	}
	return table, nil
}

// NewPostgresStore returns a PostgresStore on pool. It does not create the
// table: call [Migrate] first. Unless cleanup is disabled it starts a
// goroutine that stops on Close. The caller keeps ownership of pool.
func NewPostgresStore(pool *pgxpool.Pool, opts PostgresOptions) (*PostgresStore, error) {
	if pool == nil {
		return nil, errors.New("session: NewPostgresStore: pool is nil")
	}
	if err := opts.check(); err != nil {
		return nil, err
	}
	table, err := checkTable(opts.Table)
	if err != nil {
		return nil, err
	}
	if opts.CleanupBatchSize == 0 {
		opts.CleanupBatchSize = 1000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &PostgresStore{
		pool:     pool,
		table:    table,
		batch:    opts.CleanupBatchSize,
		logger:   opts.Logger,
		qGet:     `SELECT data, expires FROM ` + table + ` WHERE id = $1 AND expires > now()`,
		qSet:     `INSERT INTO ` + table + ` (id, data, expires, user_id) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires = excluded.expires, user_id = excluded.user_id, updated_at = now()`,
		qDestroy: `DELETE FROM ` + table + ` WHERE id = $1`,
		qTouch:   `UPDATE ` + table + ` SET expires = $2 WHERE id = $1 AND expires > now()`,
		qCount:   `SELECT count(*) FROM ` + table + ` WHERE expires > now() AND id <> '` + epochRowID + `'`,
		qCleanup: `DELETE FROM ` + table + ` WHERE id IN (SELECT id FROM ` + table + ` WHERE expires <= now() LIMIT $1 FOR UPDATE SKIP LOCKED)`,
		qCleanupReport: `DELETE FROM ` + table + ` WHERE id IN (SELECT id FROM ` + table + ` WHERE expires <= now() LIMIT $1 FOR UPDATE SKIP LOCKED)` +
			` RETURNING id, coalesce(user_id, ''), data, expires`,

		qLive:      `SELECT EXISTS (SELECT 1 FROM ` + table + ` WHERE id = $1 AND expires > now())`,
		qCASInsert: `INSERT INTO ` + table + ` AS cur (id, data, expires, user_id) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires = excluded.expires, user_id = excluded.user_id, created_at = now(), updated_at = now() WHERE cur.expires <= now()`,
		qCASUpdate: `UPDATE ` + table + ` SET data = $2, expires = $3, user_id = $5, updated_at = now() WHERE id = $1 AND expires > now() AND sha256(data) = $4`,
		qCASDelete: `DELETE FROM ` + table + ` WHERE id = $1 AND expires > now() AND sha256(data) = $2`,

		qListUser: `SELECT id, data, expires FROM ` + table + ` WHERE user_id = $1 AND expires > now()`,
		// One statement however many sessions the user has: the partial
		// index finds the rows, expired ones go too, only live ones count.
		qDestroyUser: `DELETE FROM ` + table + ` WHERE user_id = $1 AND id <> $2 RETURNING id, expires > now()`,

		qEpoch: `SELECT data FROM ` + table + ` WHERE id = $1`,
		// One statement: the upsert raises the row when it holds less
		// (a concurrent raise is waited for, and the row it left is the
		// one compared); otherwise the row held at least $3 when the
		// upsert looked, and the SELECT returns it. That SELECT sees the
		// table as the statement began, which may be before a concurrent
		// raise: hence GREATEST, and no row at all when that raise was
		// the row's first insert (RaiseEpoch then runs it again).
		qRaiseEpoch: `WITH up AS (INSERT INTO ` + table + ` AS cur (id, data, expires) VALUES ($1, $2, $4) ` +
			`ON CONFLICT (id) DO UPDATE SET data = excluded.data, updated_at = now() ` +
			`WHERE convert_from(cur.data, 'UTF8')::bigint < $3::bigint RETURNING $3::bigint AS epoch) ` +
			`SELECT epoch FROM up UNION ALL ` +
			`SELECT greatest(convert_from(data, 'UTF8')::bigint, $3::bigint) FROM ` + table + ` WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM up)`,
	}
	s.wantPartitioned = opts.Partitioned
	s.wantWidth = opts.PartitionWidth
	if s.wantWidth == 0 {
		s.wantWidth = day
	}
	s.partitionedStatements()
	interval := opts.CleanupInterval
	if interval == 0 {
		interval = 5 * time.Minute
	}
	if !opts.DisableCleanup {
		s.stop = make(chan struct{})
		s.done = make(chan struct{})
		go s.cleanupLoop(interval)
	}
	return s, nil
}

// OpenPostgres creates a pool for the database at url and returns a store
// that owns it: Close closes the pool. It does not contact the server or
// create the table; use Ping and Migrate.
func OpenPostgres(url string, opts PostgresOptions) (*PostgresStore, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("session: malformed Postgres URL %s", redactURL(url))
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("session: postgres %s: %w", redactURL(url), err)
	}
	s, err := NewPostgresStore(pool, opts)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.ownsPool = true
	return s, nil
}

// Pool returns the pool the store uses.
func (s *PostgresStore) Pool() *pgxpool.Pool { return s.pool }

// Table returns the name of the table the store uses.
func (s *PostgresStore) Table() string { return s.table }

// Get implements [Store].
func (s *PostgresStore) Get(ctx context.Context, id string) (Record, error) {
	var rec Record
	err := s.pool.QueryRow(ctx, s.qGet, id).Scan(&rec.Data, &rec.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return Record{}, ErrNotFound
	}
	if err != nil {
		return Record{}, fmt.Errorf("session: postgres get: %w", err)
	}
	if rec.Data == nil {
		rec.Data = []byte{}
	}
	return rec, nil
}

// Set implements [Store] with one upsert.
func (s *PostgresStore) Set(ctx context.Context, id string, rec Record) error {
	if !rec.Expires.After(time.Now()) {
		return s.Destroy(ctx, id)
	}
	data := rec.Data
	if data == nil {
		data = []byte{}
	}
	part, err := s.partitioned(ctx)
	if err != nil {
		return fmt.Errorf("session: postgres set: %w", err)
	}
	if part {
		for attempt := 0; ; attempt++ {
			err = s.batch2(ctx, id, s.qSetPart, nil, data, rec.Expires, userArg(rec.UserID))
			if isUniqueViolation(err) && attempt == 0 {
				continue // see partition.go: the retry updates the row
			}
			break
		}
	} else {
		_, err = s.pool.Exec(ctx, s.qSet, id, data, rec.Expires, userArg(rec.UserID))
	}
	if err != nil {
		return fmt.Errorf("session: postgres set: %w", err)
	}
	return nil
}

// Destroy implements [Store].
func (s *PostgresStore) Destroy(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, s.qDestroy, id); err != nil {
		return fmt.Errorf("session: postgres destroy: %w", err)
	}
	return nil
}

// Touch implements [Store] with one UPDATE of the expires column only.
func (s *PostgresStore) Touch(ctx context.Context, id string, expires time.Time) error {
	tag, err := s.pool.Exec(ctx, s.qTouch, id, expires)
	if err != nil {
		return fmt.Errorf("session: postgres touch: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// Count implements [Counter].
func (s *PostgresStore) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, s.qCount).Scan(&n); err != nil {
		return 0, fmt.Errorf("session: postgres count: %w", err)
	}
	return n, nil
}

// DeleteExpired implements [Cleaner]. It deletes in batches of
// CleanupBatchSize rows, each a statement of its own, resting after each
// batch three times as long as it took, until none is left or ctx ends. The background
// cleanup calls it.
//
// On a partitioned table (PostgresOptions.Partitioned) it drops the
// partitions of finished days in which every row has expired, counting
// their rows (or reading them, when a Manager listens for expirations),
// then deletes the expired rows of the DEFAULT partition in batches.
// Expired rows in a partition that still holds a live one stay until it
// is dropped.
func (s *PostgresStore) DeleteExpired(ctx context.Context) (int64, error) {
	return s.deleteExpired(ctx, nil, true)
}

// deleteExpired deletes batch after batch. With throttle, as in the
// background cleanup, it rests after each batch three times as long as the
// batch took, so a large backlog never takes more than a quarter of one
// connection and of the server's attention: requests' Gets stay fast
// while a million rows go (bench/BENCHMARKS.md, the cleanup row).
func (s *PostgresStore) deleteExpired(ctx context.Context, progress func(deleted int64), throttle bool) (int64, error) {
	part, err := s.partitioned(ctx)
	if err != nil {
		return 0, fmt.Errorf("session: postgres cleanup: %w", err)
	}
	var total int64
	if part {
		// Whole partitions first, then the few rows of the DEFAULT
		// partition, row by row.
		total, err = s.dropDeadPartitions(ctx, progress, throttle)
		if err != nil {
			return total, fmt.Errorf("session: postgres cleanup: %w", err)
		}
	}
	for {
		start := time.Now()
		n, err := s.deleteBatch(ctx, part)
		if err != nil {
			return total, fmt.Errorf("session: postgres cleanup: %w", err)
		}
		total += n
		if progress != nil && n > 0 {
			progress(total)
		}
		if n < int64(s.batch) {
			return total, nil
		}
		if throttle {
			if err := rest(ctx, 3*time.Since(start)); err != nil {
				return total, err
			}
		}
	}
}

// deleteBatch deletes up to CleanupBatchSize expired rows and returns how
// many; when a Manager listens for expirations, the rows are returned and
// reported to it.
func (s *PostgresStore) deleteBatch(ctx context.Context, partitioned bool) (int64, error) {
	q, qReport := s.qCleanup, s.qCleanupReport
	if partitioned {
		q, qReport = s.qCleanupPart, s.qCleanupReportPart
	}
	if !s.expiries.watched() {
		tag, err := s.pool.Exec(ctx, q, s.batch)
		return tag.RowsAffected(), err
	}
	rows, err := s.pool.Query(ctx, qReport, s.batch)
	if err != nil {
		return 0, err
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (expiredRecord, error) {
		var r expiredRecord
		err := row.Scan(&r.ID, &r.UserID, &r.Data, &r.Expires)
		return r, err
	})
	// The rows are deleted once the statement completed, even if
	// reading them failed part way: report what was read.
	s.expiries.report(recs)
	return int64(len(recs)), err
}

// reportExpired implements expiryReporter: the rows the cleanup (or
// DeleteExpired, or sessionctl purge) deletes.
func (s *PostgresStore) reportExpired(fn func([]expiredRecord)) (stop func()) {
	return s.expiries.reportExpired(fn)
}

// userArg is the user_id column's value: NULL for an unbound record, so
// that the partial index on user_id never holds it.
func userArg(userID string) any {
	if userID == "" {
		return nil
	}
	return userID
}

// ListUser implements [UserIndex] with one SELECT on the user_id index.
func (s *PostgresStore) ListUser(ctx context.Context, userID string) ([]UserRecord, error) {
	rows, err := s.pool.Query(ctx, s.qListUser, userID)
	if err != nil {
		return nil, fmt.Errorf("session: postgres list user: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (UserRecord, error) {
		ur := UserRecord{Record: Record{UserID: userID}}
		err := row.Scan(&ur.ID, &ur.Data, &ur.Expires)
		return ur, err
	})
	if err != nil {
		return nil, fmt.Errorf("session: postgres list user: %w", err)
	}
	return out, nil
}

// DestroyUser implements [UserIndex] with one DELETE statement. A
// CompareAndSet in flight on a deleted row finds no row and fails, so a
// revoked session stays dead.
func (s *PostgresStore) DestroyUser(ctx context.Context, userID, except string) ([]string, error) {
	rows, err := s.pool.Query(ctx, s.qDestroyUser, userID, except)
	if err != nil {
		return nil, fmt.Errorf("session: postgres destroy user: %w", err)
	}
	ids, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
		var id string
		var live bool
		err := row.Scan(&id, &live)
		if !live {
			id = ""
		}
		return id, err
	})
	ids = slices.DeleteFunc(ids, func(id string) bool { return id == "" })
	if err != nil {
		return ids, fmt.Errorf("session: postgres destroy user: %w", err)
	}
	return ids, nil
}

// Ping implements [Pinger].
func (s *PostgresStore) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("session: postgres ping: %w", err)
	}
	return nil
}

// Close stops the cleanup goroutine, waiting for a batch in progress, and
// closes the pool if the store opened it ([OpenPostgres]). Calling it
// again is a no-op.
func (s *PostgresStore) Close() error {
	s.closeOnce.Do(func() {
		if s.stop != nil {
			close(s.stop)
			<-s.done
		}
		if s.ownsPool {
			s.pool.Close()
		}
	})
	return nil
}

func (s *PostgresStore) cleanupLoop(interval time.Duration) {
	defer close(s.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Close cancels a cleanup in progress instead of waiting for it.
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if part, err := s.partitioned(ctx); err == nil && part {
				if err := s.rotate(ctx); err != nil && ctx.Err() == nil {
					s.logger.Warn("session: creating the coming days' partitions failed", "table", s.table, "error", err)
				}
			}
			if n, err := s.deleteExpired(ctx, nil, true); err != nil && ctx.Err() == nil {
				s.logger.Warn("session: cleanup of expired sessions failed", "table", s.table, "deleted", n, "error", err)
			}
		}
	}
}

// String returns "postgres" and the server's host:port, never
// credentials: how health reports and logs name the store.
func (s *PostgresStore) String() string {
	cc := s.pool.Config().ConnConfig
	return "postgres " + net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))
}

// The layouts of the table, in PostgresStore.layout.
const (
	layoutUnknown = iota
	layoutPlain
	layoutPartitioned
)

// partitioned reports whether the table is partitioned, asking the server
// the first time (and until the table exists); Migrate sets it too. Get,
// Touch, Destroy and the other statements are the same in both layouts:
// only writes that may create a row, and cleanup, ask.
func (s *PostgresStore) partitioned(ctx context.Context) (bool, error) {
	switch s.layout.Load() {
	case layoutPlain:
		return false, nil
	case layoutPartitioned:
		return true, nil
	}
	kind, err := relkind(ctx, s.pool, s.table)
	if err != nil {
		return false, fmt.Errorf("reading the layout of %s: %w", s.table, err)
	}
	switch kind {
	case 0: // no table yet: the plain statement fails as it should
		return false, nil
	case 'p':
		width, err := tableWidth(ctx, s.pool, s.table)
		if err != nil {
			return false, err
		}
		s.width.Store(int64(width))
		s.layout.Store(layoutPartitioned)
		return true, nil
	}
	s.layout.Store(layoutPlain)
	return false, nil
}

// partitionedStatements sets the statements of the partitioned layout
// (see partition.go for why they are what they are).
func (s *PostgresStore) partitionedStatements() {
	t := s.table
	schema, bare := splitTable(t)
	def := schema + bare + "_default"
	// The first of the two statements of a write that may create a row:
	// it serializes such writes per id until the implicit transaction of
	// the batch ends.
	s.qLockID = `SELECT pg_advisory_xact_lock(hashtext('sessionkit/session id ` + t + `'), hashtext($1))`
	// Update in place, wherever the row lives, expired or not; insert
	// (today's bucket, by the column's default) only when there is none.
	s.qSetPart = `WITH u AS (UPDATE ` + t + ` SET data = $2, expires = $3, user_id = $4, updated_at = now() WHERE id = $1 RETURNING 1) ` +
		`INSERT INTO ` + t + ` (id, data, expires, user_id) SELECT $1::text, $2::bytea, $3::timestamptz, $4::text WHERE NOT EXISTS (SELECT 1 FROM u)`
	// Replace an expired row in place, or insert when there is no row at
	// all; a live row is left alone. Returns how many rows it wrote (0:
	// ErrConflict). Both parts see one snapshot: when u finds the row
	// live after waiting for a concurrent writer, i still sees the row
	// and inserts nothing.
	s.qCASInsertPart = `WITH u AS (UPDATE ` + t + ` SET data = $2, expires = $3, user_id = $4, created_at = now(), updated_at = now() WHERE id = $1 AND expires <= now() RETURNING 1), ` +
		`i AS (INSERT INTO ` + t + ` (id, data, expires, user_id) SELECT $1::text, $2::bytea, $3::timestamptz, $4::text WHERE NOT EXISTS (SELECT 1 FROM ` + t + ` WHERE id = $1) RETURNING 1) ` +
		`SELECT (SELECT count(*) FROM u) + (SELECT count(*) FROM i)`
	// qRaiseEpoch with the epoch row's own bucket, which keeps it in the
	// DEFAULT partition and makes (id, bucket) a conflict target.
	s.qRaiseEpochPart = `WITH up AS (INSERT INTO ` + t + ` AS cur (id, data, expires, bucket) VALUES ($1, $2, $4, '` + epochBucket + `') ` +
		`ON CONFLICT (id, bucket) DO UPDATE SET data = excluded.data, updated_at = now() ` +
		`WHERE convert_from(cur.data, 'UTF8')::bigint < $3::bigint RETURNING $3::bigint AS epoch) ` +
		`SELECT epoch FROM up UNION ALL ` +
		`SELECT greatest(convert_from(data, 'UTF8')::bigint, $3::bigint) FROM ` + t + ` WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM up)`
	s.qCleanupPart = `DELETE FROM ` + def + ` WHERE ctid IN (SELECT ctid FROM ` + def + ` WHERE expires <= now() LIMIT $1 FOR UPDATE SKIP LOCKED)`
	s.qCleanupReportPart = s.qCleanupPart + ` RETURNING id, coalesce(user_id, ''), data, expires`
}

// batch2 runs qLockID and then q with args in one batch: one round trip,
// one implicit transaction, so the lock is held until q is done. With
// scan, q's one row is scanned into it.
func (s *PostgresStore) batch2(ctx context.Context, id, q string, scan []any, args ...any) error {
	b := &pgx.Batch{}
	b.Queue(s.qLockID, id)
	b.Queue(q, append([]any{id}, args...)...)
	br := s.pool.SendBatch(ctx, b)
	_, err := br.Exec()
	if err == nil {
		if scan != nil {
			err = br.QueryRow().Scan(scan...)
		} else {
			_, err = br.Exec()
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// isUniqueViolation reports a unique_violation (23505).
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}
