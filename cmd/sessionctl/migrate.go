package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sessionkit/session"
	"github.com/sessionkit/session/internal/ops"
)

func init() {
	var timeout *time.Duration
	register(&command{
		name:  "migrate",
		short: "apply the Postgres migrations (DIRECT_URL, else DATABASE_URL)",
		summary: `Apply the Postgres migrations to SESSION_TABLE (default sessions), over
DIRECT_URL when set (a pooler such as PgBouncer is not needed for this),
else DATABASE_URL. Idempotent and safe while the app runs. Prints what it
applied.`,
		flags: func(fs *flag.FlagSet) {
			timeout = fs.Duration("timeout", time.Minute, "give up after this long")
		},
		run: func(c *cli, fs *flag.FlagSet, args []string) int {
			if len(args) != 0 {
				fs.Usage()
				return exitUsage
			}
			cfg, ok := c.config()
			if !ok {
				return exitConfig
			}
			if cfg.DatabaseURL == "" {
				c.errorf("migrate needs DATABASE_URL (and DIRECT_URL when DATABASE_URL is a transaction pooler)")
				return exitConfig
			}
			table := cfg.PostgresOptions().Table
			url := cfg.DatabaseURL
			if cfg.DirectURL != "" {
				url = cfg.DirectURL
			}
			ctx, cancel := context.WithTimeout(c.ctx, *timeout)
			defer cancel()
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				c.errorf("connecting to Postgres at %s: %v", ops.RedactURL(url), scrubErr(err, url))
				return exitFailure
			}
			defer conn.Close(context.WithoutCancel(ctx))
			before, err := appliedVersions(ctx, conn, table)
			if err != nil {
				c.errorf("%v", err)
				return exitFailure
			}
			if err := session.Migrate(ctx, conn, table); err != nil {
				c.errorf("%v", scrubErr(err, url))
				return exitFailure
			}
			all, err := ops.Migrations()
			if err != nil {
				c.errorf("%v", err)
				return exitFailure
			}
			n := 0
			for _, m := range all {
				if !before[m.Version] {
					fmt.Fprintf(c.stdout, "applied %04d_%s to %s\n", m.Version, m.Name, table)
					n++
				}
			}
			if n == 0 {
				fmt.Fprintf(c.stdout, "%s is up to date (%d migrations)\n", table, len(all))
			}
			return exitOK
		},
	})
}

// appliedVersions returns the migrations recorded for table; none when the
// bookkeeping table does not exist yet.
func appliedVersions(ctx context.Context, conn queryer, table string) (map[int]bool, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table+"_schema_migrations").Scan(&exists); err != nil {
		return nil, fmt.Errorf("reading the migration state: %w", err)
	}
	out := map[int]bool{}
	if !exists {
		return out, nil
	}
	rows, err := conn.Query(ctx, `SELECT version FROM `+table+`_schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("reading the migration state: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out[v] = true
	}
	return out, rows.Err()
}
