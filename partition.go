package session

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The partitioned layout (PostgresOptions.Partitioned): the table is
// partitioned by RANGE on a column fixed at insert, bucket, the start of
// the UTC day (or week: PostgresOptions.PartitionWidth) the row was
// created (date_trunc('day', now(), 'UTC'), the column's default, which
// is also where the store reads the width from), one partition per day
// named <table>_pYYYYMMDD (its first day), plus a DEFAULT partition <table>_default
// that catches any row whose day has no partition, so that a write never
// fails for a missing partition. Rows never move between partitions: no
// statement ever updates bucket (a partition-key UPDATE is a DELETE and an
// INSERT, which raises serialization errors against concurrent updates).
//
// Cleanup drops whole partitions instead of deleting rows: a day's
// partition goes once every row in it has expired (max(expires) <= now(),
// one probe of the partition's expires index). Readers pay nothing for
// the rows that wait: every read keeps its expires > now() filter. The
// price is space: a dead row waits until the last row of its day dies,
// about the sessions' lifetime plus one width after its creation (a session
// kept alive by sliding expiry keeps its creation day's partition, up to
// the absolute lifetime). Rows in the DEFAULT partition (there should be
// none but the epoch row) are deleted row by row, as in the plain layout.
//
// Id uniqueness: the primary key is (id, bucket), as Postgres requires of
// a unique index on a partitioned table, so it no longer prevents one id
// in two partitions, and ON CONFLICT (id) cannot be used. Every statement
// that may create a row (Set, CompareAndSet with old == nil) therefore
// runs as one batch, one round trip and one implicit transaction, of two
// statements: pg_advisory_xact_lock on (table, id), then an UPDATE-first
// statement that updates the existing row in place (in whatever partition
// it lives) and inserts only when there is none. The lock is taken before
// the second statement's snapshot, so of two first writes of one id the
// second waits for the first to commit and then sees, and updates, its
// row: one row per id, never two. Writes to an existing row still
// serialize on its row lock as in the plain layout. A unique violation
// (which the lock makes impossible between our own writers, but a writer
// without it could cause) is retried once by Set and is ErrConflict for
// CompareAndSet, never a second row. Get, which probes every partition's
// primary key, thus returns at most one row.
//
// The epoch row (epoch.go) has its own bucket, -infinity, which no day's
// partition covers: it lives in the DEFAULT partition, which is never
// dropped, and its constant bucket lets its upsert keep ON CONFLICT.
//
// Dropping partitions: ALTER TABLE … DETACH PARTITION CONCURRENTLY is not
// allowed on a table with a DEFAULT partition, so a plain DETACH runs. All
// the dead partitions go in one transaction sent as one simple-protocol
// query (detach): the parent's ACCESS EXCLUSIVE lock is taken once, held
// for the server's own catalog work only, never across a round trip
// (readers queue behind it for a few milliseconds), under a short
// lock_timeout, so that it gives up (and tries again twice, then at the
// next cleanup) rather than make readers queue behind a long query. Under
// the lock each partition is checked again: a Set may have revived an
// expired row in it (Set updates in place, expired or not), and once the
// lock is held no statement can reach the partition, so one found live is
// kept. Once detached, each table is read for the expiry reports when
// someone listens (or only counted), and dropped, resting between tables
// as the row cleanup rests between batches. A detached table left behind
// by a failure is found by its name and dropped the next time. Creating
// the coming partitions (rotate, Migrate) also locks the parent briefly,
// once per width, under the same lock_timeout.

// partitionAhead is how far ahead partitions exist: Migrate and the
// background cleanup create every partition that begins before now plus
// partitionAhead, so the DEFAULT partition stays empty.
const partitionAhead = 72 * time.Hour

// The partition widths (PostgresOptions.PartitionWidth).
const (
	day  = 24 * time.Hour
	week = 7 * day
)

// partitionLockTimeout bounds how long a DETACH or CREATE waits for the
// parent's lock (and how long readers can queue behind it).
const partitionLockTimeout = "250ms"

// partitionedSchemaVersion is the newest migration the partitioned
// schema below includes: Migrate records versions up to it as applied
// when it creates a partitioned table.
const partitionedSchemaVersion = 2

// epochBucket is the bucket of the epoch row: the DEFAULT partition.
const epochBucket = "-infinity"

// truncUnit is date_trunc's unit for a partition width.
func truncUnit(width time.Duration) string {
	if width == week {
		return "week"
	}
	return "day"
}

// partitionedSchema creates table partitioned, with the columns and
// indexes of migrations 0001 and 0002, one partition per width.
func partitionedSchema(table string, width time.Duration) string {
	schema, bare := splitTable(table)
	return `CREATE TABLE ` + table + ` (
    id         text        NOT NULL,
    data       bytea       NOT NULL,
    expires    timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    user_id    text,
    bucket     timestamptz NOT NULL DEFAULT date_trunc('` + truncUnit(width) + `', now(), 'UTC'),
    PRIMARY KEY (id, bucket)
) PARTITION BY RANGE (bucket);
CREATE INDEX ` + bare + `_expires_idx ON ` + table + ` (expires);
CREATE INDEX ` + bare + `_user_id_idx ON ` + table + ` (user_id) WHERE user_id IS NOT NULL;
CREATE TABLE ` + schema + bare + `_default PARTITION OF ` + table + ` DEFAULT;`
}

// splitTable returns "schema." (or "") and the bare name of table.
func splitTable(table string) (schema, bare string) {
	if i := strings.IndexByte(table, '.'); i >= 0 {
		return table[:i+1], table[i+1:]
	}
	return "", table
}

// partitionName is the partition of table for the UTC day of t.
func partitionName(table string, day time.Time) string {
	schema, bare := splitTable(table)
	return schema + bare + "_p" + day.UTC().Format("20060102")
}

// checkPartitionable refuses a table name too long for its partitions'
// names (63 bytes, "_p20060102" more than the table's).
func checkPartitionable(table string) error {
	if _, bare := splitTable(table); len(bare) > 63-len("_p20060102") {
		return fmt.Errorf("session: table %s: a partitioned table's name must be at most %d characters (its partitions are named %s_pYYYYMMDD)", table, 63-len("_p20060102"), bare)
	}
	return nil
}

// relkind returns the pg_class.relkind of table: 'p' partitioned, 'r' a
// plain table, 0 when it does not exist.
func relkind(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, table string) (byte, error) {
	var kind *string
	if err := q.QueryRow(ctx, `SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)`, table).Scan(&kind); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, err
	}
	if kind == nil || *kind == "" {
		return 0, nil
	}
	return (*kind)[0], nil
}

// utcDay is the start of t's UTC day.
func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// periodStart is the start of the partition of width holding t, as the
// bucket column computes it (date_trunc: weeks begin on Monday).
func periodStart(t time.Time, width time.Duration) time.Time {
	d := utcDay(t)
	if width == week {
		d = d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7))
	}
	return d
}

// tableWidth reads the partition width of the partitioned table from its
// bucket column's default: the table says what it is.
func tableWidth(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, table string) (time.Duration, error) {
	var def string
	err := q.QueryRow(ctx, `SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.adrelid = to_regclass($1) AND a.attname = 'bucket'`, table).Scan(&def)
	if err != nil {
		return 0, fmt.Errorf("reading the partition width of %s (the default of its bucket column): %w", table, err)
	}
	if strings.Contains(def, "'week'") {
		return week, nil
	}
	return day, nil
}

// ensurePartitions creates the partitions of table (of width) from the
// current one to partitionAhead ahead that do not exist, in tx. A period
// whose rows already sit in the DEFAULT partition (no partition existed
// when they were written) gets none: its rows stay there, deleted row by
// row.
func ensurePartitions(ctx context.Context, tx pgx.Tx, table string, width time.Duration, now time.Time) (created []string, err error) {
	schema, bare := splitTable(table)
	def := schema + bare + "_default"
	for from := periodStart(now, width); from.Before(now.Add(partitionAhead)); from = from.Add(width) {
		to := from.Add(width)
		name := partitionName(table, from)
		kind, err := relkind(ctx, tx, name)
		if err != nil {
			return created, err
		}
		if kind != 0 {
			continue
		}
		var stray bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+def+` WHERE bucket >= $1 AND bucket < $2)`, from, to).Scan(&stray); err != nil {
			return created, err
		}
		if stray {
			continue
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE `+name+` PARTITION OF `+table+
			` FOR VALUES FROM ('`+from.Format(time.RFC3339)+`') TO ('`+to.Format(time.RFC3339)+`')`); err != nil {
			return created, err
		}
		created = append(created, name)
	}
	return created, nil
}

// partitionInfo is one partition of a partitioned table.
type partitionInfo struct {
	Name     string // schema-qualified when the table is
	Bounds   string // as Postgres prints them
	Rows     int64  // the planner's estimate; -1 when never analyzed
	Default  bool
	Day      time.Time // from the name; zero for the DEFAULT partition and foreign names
	Detached bool      // a table of ours left behind by a failed drop
	Dead     bool      // droppable: its day is over and no row in it is live
}

var partitionSuffix = regexp.MustCompile(`_p([0-9]{8})$`)

// partitions lists table's partitions, oldest first, the DEFAULT one
// last, and the detached leftovers of a failed drop. With dead, each
// finished day's partition is probed for a live row.
func (s *PostgresStore) partitions(ctx context.Context, dead bool) ([]partitionInfo, error) {
	schema, bare := splitTable(s.table)
	nsp := strings.TrimSuffix(schema, ".")
	rows, err := s.pool.Query(ctx, `SELECT c.relname, coalesce(pg_get_expr(c.relpartbound, c.oid), ''), c.reltuples::bigint, c.relispartition
FROM pg_class c
WHERE c.relnamespace = coalesce(to_regnamespace(nullif($3, '')), (SELECT oid FROM pg_namespace WHERE nspname = current_schema()))
  AND (c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass($1))
       OR (c.relkind = 'r' AND NOT c.relispartition AND c.relname ~ ('^' || $2 || '_p[0-9]{8}$')))`, s.table, bare, nsp)
	if err != nil {
		return nil, err
	}
	var out []partitionInfo
	for rows.Next() {
		var p partitionInfo
		var name string
		var attached bool
		if err := rows.Scan(&name, &p.Bounds, &p.Rows, &attached); err != nil {
			rows.Close()
			return nil, err
		}
		p.Name = schema + name
		p.Detached = !attached
		p.Default = p.Bounds == "DEFAULT"
		if m := partitionSuffix.FindStringSubmatch(name); m != nil && name == bare+"_p"+m[1] {
			p.Day, _ = time.Parse("20060102", m[1])
		}
		out = append(out, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Default != out[j].Default {
			return out[j].Default
		}
		return out[i].Name < out[j].Name
	})
	if dead {
		width := time.Duration(s.width.Load())
		now := time.Now()
		for i := range out {
			p := &out[i]
			if p.Default || p.Detached || p.Day.IsZero() || p.Day.Add(width).After(now) {
				continue
			}
			if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(expires) <= now(), true) FROM `+p.Name).Scan(&p.Dead); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// rotate creates the partitions of the coming days that are missing.
// Several processes may rotate at once: the one holding Migrate's
// advisory lock does it, the others skip.
func (s *PostgresStore) rotate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var got bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtext('sessionkit/session migrate `+s.table+`'))`).Scan(&got); err != nil || !got {
		return err
	}
	if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+partitionLockTimeout+`'`); err != nil {
		return err
	}
	created, err := ensurePartitions(ctx, tx, s.table, time.Duration(s.width.Load()), time.Now())
	if err != nil {
		return err
	}
	if len(created) == 0 {
		return nil
	}
	return tx.Commit(ctx)
}

// dropDeadPartitions drops every partition of a finished day in which no
// row is live, and the detached leftovers of an earlier failure,
// reporting their rows when someone listens. It returns how many rows
// went. All the dead partitions are detached in one transaction, so
// readers queue behind the parent's lock once, not once per partition.
func (s *PostgresStore) dropDeadPartitions(ctx context.Context, progress func(int64), throttle bool) (int64, error) {
	parts, err := s.partitions(ctx, true)
	if err != nil {
		return 0, err
	}
	var dead, detached []string
	for _, p := range parts {
		switch {
		case p.Detached:
			detached = append(detached, p.Name)
		case p.Dead:
			dead = append(dead, p.Name)
		}
	}
	if len(dead) > 0 {
		for attempt := 1; ; attempt++ {
			d, err := s.detach(ctx, dead)
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "55P03" && attempt < 3 {
				// lock_timeout: a long query holds the table. Let it
				// finish rather than make readers queue behind us.
				if err := rest(ctx, time.Duration(attempt)*100*time.Millisecond); err != nil {
					return 0, err
				}
				continue
			}
			if err != nil {
				return 0, err
			}
			detached = append(detached, d...)
			break
		}
	}
	var total int64
	var firstErr error
	for _, name := range detached {
		start := time.Now()
		n, err := s.dropDetached(ctx, name)
		total += n
		if err != nil {
			if ctx.Err() != nil {
				return total, err
			}
			if firstErr == nil {
				firstErr = fmt.Errorf("partition %s: %w", name, err)
			}
			continue
		}
		if progress != nil && n > 0 {
			progress(total)
		}
		if throttle {
			if err := rest(ctx, 3*time.Since(start)); err != nil {
				return total, err
			}
		}
	}
	return total, firstErr
}

// dropDetached reads (when someone listens for expirations) or counts
// the rows of name, a detached partition, and drops it.
func (s *PostgresStore) dropDetached(ctx context.Context, name string) (int64, error) {
	var n int64
	if s.expiries.watched() {
		rows, err := s.pool.Query(ctx, `SELECT id, coalesce(user_id, ''), data, expires FROM `+name+` WHERE id <> '`+epochRowID+`'`)
		if err != nil {
			return 0, err
		}
		batch := make([]expiredRecord, 0, 1000)
		for rows.Next() {
			var r expiredRecord
			if err := rows.Scan(&r.ID, &r.UserID, &r.Data, &r.Expires); err != nil {
				break
			}
			batch = append(batch, r)
			if len(batch) == cap(batch) {
				s.expiries.report(batch)
				n += int64(len(batch))
				batch = make([]expiredRecord, 0, 1000)
			}
		}
		rows.Close()
		s.expiries.report(batch)
		n += int64(len(batch))
		if err := rows.Err(); err != nil {
			// Not dropped: the next cleanup finds it by its name and
			// reads it again (a row may then be reported twice).
			return n, err
		}
	} else if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+name).Scan(&n); err != nil {
		return 0, err
	}
	if _, err := s.pool.Exec(ctx, `DROP TABLE IF EXISTS `+name); err != nil {
		return n, err
	}
	return n, nil
}

// detach detaches the partitions names from the table in one short
// transaction and returns those it detached: a partition in which a row
// turned out live once the lock was held stays.
//
// The transaction is one simple-protocol query, so that the parent's
// ACCESS EXCLUSIVE lock is held for the server's own work only, never
// across a round trip: readers queue behind it for a few milliseconds.
// On an error the server rolls it back (the connection, left in a failed
// transaction, is not returned to the pool).
func (s *PostgresStore) detach(ctx context.Context, names []string) ([]string, error) {
	var sql strings.Builder
	sql.WriteString(`BEGIN;
SELECT pg_advisory_xact_lock(hashtext('sessionkit/session migrate ` + s.table + `'));
SET LOCAL lock_timeout = '` + partitionLockTimeout + `';
DO $sessionkit$ BEGIN
`)
	for _, name := range names {
		// Skipped when another process dropped it while we waited for
		// the advisory lock.
		fmt.Fprintf(&sql, "IF to_regclass('%[1]s') IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = '%[2]s'::regclass) THEN\n"+
			"  LOCK TABLE %[2]s IN ACCESS EXCLUSIVE MODE;\n"+
			// Checked again under the lock: no statement can reach it now.
			"  IF coalesce((SELECT max(expires) <= now() FROM %[1]s), true) THEN\n"+
			"    ALTER TABLE %[2]s DETACH PARTITION %[1]s;\n"+
			"  END IF;\n"+
			"END IF;\n", name, s.table)
	}
	sql.WriteString("END $sessionkit$;\nCOMMIT;")
	if _, err := s.pool.Exec(ctx, sql.String()); err != nil {
		return nil, err
	}
	var detached []string
	err := s.pool.QueryRow(ctx, `SELECT coalesce(array_agg(n), '{}') FROM unnest($1::text[]) AS n JOIN pg_class c ON c.oid = to_regclass(n) WHERE NOT c.relispartition`, names).Scan(&detached)
	return detached, err
}

// rest waits d, or until ctx ends.
func rest(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
