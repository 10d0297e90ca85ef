package session

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sessionkit/session/migrations"
)

// txBeginner is what [Migrate] needs of a database handle.
type txBeginner = interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// migration is one numbered schema change from the migrations directory.
type migration struct {
	Version int
	Name    string
	Up      string
	Down    string
}

// loadMigrations returns the embedded migrations in order, written for
// table (the default, "", is "sessions").
func loadMigrations(table string) ([]migration, error) {
	table, err := checkTable(table)
	if err != nil {
		return nil, err
	}
	files, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return nil, err
	}
	byVersion := map[int]*migration{}
	for _, f := range files {
		base, dir, ok := strings.Cut(strings.TrimSuffix(f, ".sql"), ".")
		num, name, ok2 := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || !ok2 || err != nil || (dir != "up" && dir != "down") {
			return nil, fmt.Errorf("session: migration file %q is not NNNN_name.up.sql or .down.sql", f)
		}
		body, err := fs.ReadFile(migrations.FS, f)
		if err != nil {
			return nil, err
		}
		m := byVersion[v]
		if m == nil {
			m = &migration{Version: v, Name: name}
			byVersion[v] = m
		}
		sql := renameTable(string(body), table)
		if dir == "up" {
			m.Up = sql
		} else {
			m.Down = sql
		}
	}
	out := make([]migration, 0, len(byVersion))
	for _, m := range byVersion {
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// sessionsIdent matches the default table name and the names derived from
// it (sessions_expires_idx) as whole words.
var sessionsIdent = regexp.MustCompile(`\bsessions(_[a-z0-9_]+)?\b`)

func renameTable(sql, table string) string {
	if table == "sessions" {
		return sql
	}
	// Derived names (indexes) take the table's unqualified name, so two
	// tables in one schema never collide on an index name.
	schema, bare := "", table
	if i := strings.IndexByte(table, '.'); i >= 0 {
		schema, bare = table[:i+1], table[i+1:]
	}
	return sessionsIdent.ReplaceAllStringFunc(sql, func(m string) string {
		if m == "sessions" {
			return schema + bare
		}
		return bare + strings.TrimPrefix(m, "sessions")
	})
}

// Migrate brings the session table (the default, "", is "sessions") up to
// the newest schema, over db: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx. It is idempotent, and safe when several processes
// start at once: everything happens in one transaction holding a
// transaction-level advisory lock, so it also works through a transaction
// pooler such as PgBouncer. Applied versions are recorded in
// <table>_schema_migrations.
//
// Through a transaction pooler, the pool must not keep prepared statements
// between transactions (default_query_exec_mode=exec, cache_describe or
// simple_protocol with pgx). When the error Migrate returns shows a
// pooler losing or mixing up prepared statements, it says so and names the
// two ways out: that URL parameter, or a direct connection (DIRECT_URL).
//
// On a partitioned table (see PostgresOptions.Partitioned) Migrate also
// creates the partitions of today and the next three days that are
// missing. It never creates a partitioned table: [PostgresStore.Migrate]
// does, for a store whose options ask for one.
func Migrate(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, table string) error {
	return migrateTable(ctx, db, table, false, 0)
}

// migrateTable is Migrate, creating a missing table partitioned when
// partitioned is set, and refusing a plain one that exists then.
func migrateTable(ctx context.Context, db txBeginner, table string, partitioned bool, width time.Duration) error {
	err := migrate(ctx, db, table, partitioned, width)
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "42P05", "26000", "08P01": // duplicate/unknown prepared statement, protocol violation
			return fmt.Errorf("%w (a transaction pooler such as PgBouncer seems to be between this pool and Postgres: "+
				"add default_query_exec_mode=exec to the database URL, or run Migrate over a direct connection, "+
				"such as the DIRECT_URL your host provides next to the pooled DATABASE_URL)", err)
		}
	}
	return err
}

func migrate(ctx context.Context, db txBeginner, table string, partitioned bool, width time.Duration) error {
	ms, err := loadMigrations(table)
	if err != nil {
		return err
	}
	table, _ = checkTable(table)
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("session: migrate: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	steps := []string{
		`SELECT pg_advisory_xact_lock(hashtext('sessionkit/session migrate ` + table + `'))`,
		`CREATE TABLE IF NOT EXISTS ` + table + `_schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
	}
	for _, q := range steps {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("session: migrate %s: %w", table, err)
		}
	}
	kind, err := relkind(ctx, tx, table)
	if err != nil {
		return fmt.Errorf("session: migrate %s: %w", table, err)
	}
	if partitioned && kind == 'r' {
		return fmt.Errorf("session: migrate: table %s exists and is not partitioned: PostgresOptions.Partitioned only creates a new table, converting an existing one is not supported (leave Partitioned unset to keep using %s, or name a new table)", table, table)
	}
	if partitioned && kind == 0 {
		if err := checkPartitionable(table); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, partitionedSchema(table, width)); err != nil {
			return fmt.Errorf("session: migrate %s (partitioned): %w", table, err)
		}
		for _, m := range ms {
			if m.Version > partitionedSchemaVersion {
				break
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+table+`_schema_migrations (version, name) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING`, m.Version, m.Name); err != nil {
				return fmt.Errorf("session: migrate %s: %w", table, err)
			}
		}
		kind = 'p'
	}
	applied := map[int]bool{}
	rows, err := tx.Query(ctx, `SELECT version FROM `+table+`_schema_migrations`)
	if err != nil {
		return fmt.Errorf("session: migrate %s: %w", table, err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("session: migrate %s: %w", table, err)
		}
		applied[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("session: migrate %s: %w", table, err)
	}
	for _, m := range ms {
		if applied[m.Version] {
			continue
		}
		// No arguments: pgx sends this over the simple protocol, which
		// allows several statements in one file.
		if _, err := tx.Exec(ctx, m.Up); err != nil {
			return fmt.Errorf("session: migration %04d_%s on %s: %w", m.Version, m.Name, table, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+table+`_schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			return fmt.Errorf("session: migrate %s: %w", table, err)
		}
	}
	if kind == 'p' {
		width, err := tableWidth(ctx, tx, table)
		if err != nil {
			return fmt.Errorf("session: migrate %s: %w", table, err)
		}
		if _, err := ensurePartitions(ctx, tx, table, width, time.Now()); err != nil {
			return fmt.Errorf("session: migrate %s: creating partitions: %w", table, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("session: migrate %s: %w", table, err)
	}
	return nil
}

// Migrate applies the migrations to the store's table; see [Migrate].
// When the table does not exist and PostgresOptions.Partitioned is set, it
// creates it partitioned (see [PostgresOptions]); with Partitioned set and
// the table existing unpartitioned, it returns an error naming the table
// and changes nothing.
func (s *PostgresStore) Migrate(ctx context.Context) error {
	if err := migrateTable(ctx, s.pool, s.table, s.wantPartitioned, s.wantWidth); err != nil {
		return err
	}
	s.layout.Store(layoutUnknown) // read again: Migrate may have created it
	_, err := s.partitioned(ctx)
	return err
}
