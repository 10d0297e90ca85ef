package express

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sessionkit/session"
	"github.com/sessionkit/session/internal/ops"
)

// Table layouts a [PostgresStore] reads and writes, the values of
// SESSION_TABLE_LAYOUT ([session.Config.TableLayout]).
const (
	// LayoutConnectPgSimple is connect-pg-simple's table:
	// "session"(sid varchar PRIMARY KEY, sess json NOT NULL, expire
	// timestamp(6) NOT NULL), expire in the database session's TimeZone.
	LayoutConnectPgSimple = "connect-pg-simple"
	// LayoutPrisma is the table of a Prisma model ExpressSession mapped
	// to express_sessions: "sid" text PRIMARY KEY, "sess" jsonb, "expire"
	// timestamp(3) holding UTC, "createdAt" with a default, and
	// "updatedAt" NOT NULL without one (Prisma's client sets it, and so
	// does this store, in UTC, on every write).
	LayoutPrisma = "prisma"
)

// PostgresStore is a [session.Store] on an existing connect-pg-simple or
// Prisma express-session table, for the express-session mode ([New]). It
// never creates, migrates or alters the table: [OpenPostgres] checks that the columns are there with usable types
// and says what is missing.
//
// The id is the raw sid, sess holds express's JSON, and expire is the
// record's expiry, computed in SQL from Unix milliseconds with
// to_timestamp, as connect-pg-simple computes it: a timestamp without time
// zone is then in the database session's TimeZone (connect-pg-simple), or
// in UTC (Prisma), whatever the Go process's local time zone is. Reads
// filter on expire; a touch updates expire only (and "updatedAt").
//
// CompareAndSet compares the SHA-256 of sess as text, so Go processes
// still merge their concurrent writes; connect-pg-simple's writes are
// plain upserts, and between Node and Go the last writer wins.
//
// It implements [session.CompareAndSetter], [session.Counter],
// [session.Cleaner], [session.Pinger] and [io.Closer]; not
// [session.UserIndex].
type PostgresStore struct {
	pool     *pgxpool.Pool
	ownsPool bool
	table    string
	layout   string

	qGet, qSet, qDestroy, qTouch, qEnd, qLive, qCount, qCleanup string
	qCASInsert, qCASUpdate, qCASDelete                          string
}

// OpenPostgres returns a PostgresStore on table (default "session",
// optionally schema-qualified) in layout (default
// [LayoutConnectPgSimple]), after checking the table's columns and key.
// The caller keeps ownership of pool.
func OpenPostgres(ctx context.Context, pool *pgxpool.Pool, table, layout string) (*PostgresStore, error) {
	if pool == nil {
		return nil, errors.New("express: OpenPostgres: pool is nil")
	}
	if table == "" {
		table = "session"
	}
	if !ops.ValidTable(table) {
		return nil, fmt.Errorf("express: table name %q: want a lower-case SQL identifier, optionally schema-qualified", table)
	}
	if layout == "" {
		layout = LayoutConnectPgSimple
	}
	if layout != LayoutConnectPgSimple && layout != LayoutPrisma {
		return nil, fmt.Errorf("express: table layout %q: want %s or %s", layout, LayoutConnectPgSimple, LayoutPrisma)
	}
	parts := strings.Split(table, ".")
	quoted := pgx.Identifier(parts).Sanitize()
	s := &PostgresStore{pool: pool, table: table, layout: layout}
	sessType, err := s.check(ctx, quoted)
	if err != nil {
		return nil, err
	}
	s.build(quoted, sessType)
	return s, nil
}

// check verifies the table's shape and returns the type of sess.
func (s *PostgresStore) check(ctx context.Context, quoted string) (string, error) {
	rows, err := s.pool.Query(ctx, `SELECT a.attname, format_type(a.atttypid, NULL), a.attnotnull, a.atthasdef
		FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, quoted)
	if err != nil {
		return "", fmt.Errorf("express: table %s: %w", s.table, err)
	}
	type col struct {
		typ            string
		notNull, deflt bool
	}
	cols := map[string]col{}
	for rows.Next() {
		var name string
		var c col
		if err := rows.Scan(&name, &c.typ, &c.notNull, &c.deflt); err != nil {
			rows.Close()
			return "", fmt.Errorf("express: table %s: %w", s.table, err)
		}
		cols[name] = c
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("express: table %s: %w", s.table, err)
	}
	how := "connect-pg-simple's table.sql (or createTableIfMissing)"
	if s.layout == LayoutPrisma {
		how = "prisma migrate, from the ExpressSession model"
	}
	if len(cols) == 0 {
		return "", fmt.Errorf("express: table %s does not exist; create it with %s (this store never creates or alters a table)", s.table, how)
	}
	var problems []string
	want := func(name string, types ...string) {
		c, ok := cols[name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("column %q is missing (want %s)", name, strings.Join(types, " or ")))
		default:
			for _, t := range types {
				if c.typ == t {
					return
				}
			}
			problems = append(problems, fmt.Sprintf("column %q is %s, want %s", name, c.typ, strings.Join(types, " or ")))
		}
	}
	if s.layout == LayoutPrisma {
		want("sid", "text", "character varying")
		want("sess", "jsonb", "json")
		want("expire", "timestamp without time zone")
		want("createdAt", "timestamp without time zone")
		want("updatedAt", "timestamp without time zone")
		if c, ok := cols["createdAt"]; ok && c.notNull && !c.deflt {
			problems = append(problems, `column "createdAt" is NOT NULL without a default (Prisma's @default(now()) gives it one)`)
		}
	} else {
		want("sid", "character varying", "text")
		want("sess", "json", "jsonb")
		want("expire", "timestamp without time zone", "timestamp with time zone")
	}
	if len(problems) == 0 {
		var unique bool
		err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
			WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indnatts = 1 AND a.attname = 'sid')`, quoted).Scan(&unique)
		if err != nil {
			return "", fmt.Errorf("express: table %s: %w", s.table, err)
		}
		if !unique {
			problems = append(problems, `column "sid" is not the primary key (no unique index on it alone)`)
		}
	}
	if len(problems) > 0 {
		return "", fmt.Errorf("express: table %s is not a %s table: %s; create it with %s (this store never alters a table)", s.table, s.layout, strings.Join(problems, "; "), how)
	}
	return cols["sess"].typ, nil
}

// build writes the statements. Every expiry is computed in SQL from Unix
// milliseconds: pgx would write a bound time.Time into a timestamp column
// as the Go process's local clock.
func (s *PostgresStore) build(t, sessType string) {
	toExpire := func(p string) string { return `to_timestamp(` + p + `::float8 / 1000)` }
	expiresOf := func(alias string) string { return alias + `expire::timestamptz` }
	upd := ""
	updCol, updVal := "", ""
	if s.layout == LayoutPrisma {
		toExpire = func(p string) string { return `(to_timestamp(` + p + `::float8 / 1000) AT TIME ZONE 'UTC')` }
		expiresOf = func(alias string) string { return `(` + alias + `expire AT TIME ZONE 'UTC')` }
		upd = `, "updatedAt" = (now() AT TIME ZONE 'UTC')`
		updCol, updVal = `, "updatedAt"`, `, (now() AT TIME ZONE 'UTC')`
	}
	live := expiresOf("") + ` > now()`
	hash := `sha256(convert_to(sess::text, 'UTF8'))`
	s.qGet = `SELECT sess::text, ` + expiresOf("") + ` FROM ` + t + ` WHERE sid = $1 AND ` + live
	s.qSet = `INSERT INTO ` + t + ` (sid, sess, expire` + updCol + `) VALUES ($1, $2::` + sessType + `, ` + toExpire("$3") + updVal + `)
		ON CONFLICT (sid) DO UPDATE SET sess = excluded.sess, expire = excluded.expire` + upd
	s.qDestroy = `DELETE FROM ` + t + ` WHERE sid = $1`
	s.qTouch = `UPDATE ` + t + ` SET expire = ` + toExpire("$2") + upd + ` WHERE sid = $1 AND ` + live
	s.qEnd = `DELETE FROM ` + t + ` WHERE sid = $1 AND ` + live
	s.qLive = `SELECT EXISTS (SELECT 1 FROM ` + t + ` WHERE sid = $1 AND ` + live + `)`
	s.qCount = `SELECT count(*) FROM ` + t + ` WHERE ` + live
	s.qCleanup = `DELETE FROM ` + t + ` WHERE NOT (` + live + `)`
	s.qCASInsert = `INSERT INTO ` + t + ` AS cur (sid, sess, expire` + updCol + `) VALUES ($1, $2::` + sessType + `, ` + toExpire("$3") + updVal + `)
		ON CONFLICT (sid) DO UPDATE SET sess = excluded.sess, expire = excluded.expire` + upd + ` WHERE ` + expiresOf("cur.") + ` <= now()`
	s.qCASUpdate = `UPDATE ` + t + ` SET sess = $2::` + sessType + `, expire = ` + toExpire("$3") + upd + ` WHERE sid = $1 AND ` + live + ` AND ` + hash + ` = $4`
	s.qCASDelete = `DELETE FROM ` + t + ` WHERE sid = $1 AND ` + live + ` AND ` + hash + ` = $2`
}

// Table returns the table's name; Layout its layout.
func (s *PostgresStore) Table() string  { return s.table }
func (s *PostgresStore) Layout() string { return s.layout }

// Get implements [session.Store].
func (s *PostgresStore) Get(ctx context.Context, id string) (session.Record, error) {
	var data string
	var exp time.Time
	err := s.pool.QueryRow(ctx, s.qGet, id).Scan(&data, &exp)
	if errors.Is(err, pgx.ErrNoRows) {
		return session.Record{}, session.ErrNotFound
	}
	if err != nil {
		return session.Record{}, fmt.Errorf("express: postgres get: %w", err)
	}
	return session.Record{Data: []byte(data), Expires: exp}, nil
}

// Set implements [session.Store] with one upsert, as connect-pg-simple's set.
func (s *PostgresStore) Set(ctx context.Context, id string, rec session.Record) error {
	if !rec.Expires.After(time.Now()) {
		return s.Destroy(ctx, id)
	}
	if _, err := s.pool.Exec(ctx, s.qSet, id, string(rec.Data), rec.Expires.UnixMilli()); err != nil {
		return fmt.Errorf("express: postgres set: %w", err)
	}
	return nil
}

// Destroy implements [session.Store].
func (s *PostgresStore) Destroy(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, s.qDestroy, id); err != nil {
		return fmt.Errorf("express: postgres destroy: %w", err)
	}
	return nil
}

// Touch implements [session.Store]: it updates expire only, as connect-pg-simple's
// touch.
func (s *PostgresStore) Touch(ctx context.Context, id string, expires time.Time) error {
	q, args := s.qTouch, []any{id, expires.UnixMilli()}
	if !expires.After(time.Now()) {
		q, args = s.qEnd, []any{id}
	}
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("express: postgres touch: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return session.ErrNotFound
	}
	return nil
}

// CompareAndSet implements [session.CompareAndSetter] with one statement guarded
// by the SHA-256 of sess as text (old == nil: an insert that replaces only
// an expired row).
func (s *PostgresStore) CompareAndSet(ctx context.Context, id string, old []byte, rec session.Record) error {
	expired := !rec.Expires.After(time.Now())
	var q string
	var args []any
	switch {
	case old == nil && expired:
		var live bool
		if err := s.pool.QueryRow(ctx, s.qLive, id).Scan(&live); err != nil {
			return fmt.Errorf("express: postgres compare-and-set: %w", err)
		}
		if live {
			return session.ErrConflict
		}
		return nil
	case old == nil:
		q, args = s.qCASInsert, []any{id, string(rec.Data), rec.Expires.UnixMilli()}
	case expired:
		sum := sha256.Sum256(old)
		q, args = s.qCASDelete, []any{id, sum[:]}
	default:
		sum := sha256.Sum256(old)
		q, args = s.qCASUpdate, []any{id, string(rec.Data), rec.Expires.UnixMilli(), sum[:]}
	}
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("express: postgres compare-and-set: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return session.ErrConflict
	}
	return nil
}

// Count implements [session.Counter].
func (s *PostgresStore) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, s.qCount).Scan(&n); err != nil {
		return 0, fmt.Errorf("express: postgres count: %w", err)
	}
	return n, nil
}

// DeleteExpired implements [session.Cleaner] with one DELETE, as
// connect-pg-simple's pruning.
func (s *PostgresStore) DeleteExpired(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, s.qCleanup)
	if err != nil {
		return 0, fmt.Errorf("express: postgres cleanup: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Ping implements [session.Pinger].
func (s *PostgresStore) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("express: postgres ping: %w", err)
	}
	return nil
}

// Close closes the pool if the store opened it ([OpenStore]).
func (s *PostgresStore) Close() error {
	if s.ownsPool {
		s.pool.Close()
		s.ownsPool = false
	}
	return nil
}

// String returns "postgres" and the server's host:port, never
// credentials, as session.PostgresStore's: how health reports and logs
// name the store.
func (s *PostgresStore) String() string {
	cc := s.pool.Config().ConnConfig
	return "postgres " + net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))
}
