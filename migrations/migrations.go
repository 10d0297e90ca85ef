// Package migrations holds the Postgres schema of the session store as
// numbered NNNN_name.up.sql / NNNN_name.down.sql files, the naming
// golang-migrate and goose read. The files name the default table,
// "sessions"; [github.com/sessionkit/session.Migrate] applies them to a
// configured table name.
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS
