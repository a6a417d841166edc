// Package migrations holds cspine's versioned SQL schema migrations, embedded
// into the binary. There is one set per database dialect, with the same
// version numbers and the same tables, columns and indexes:
//
//	postgres/NNNN_name.up.sql, postgres/NNNN_name.down.sql
//	sqlite/NNNN_name.up.sql,   sqlite/NNNN_name.down.sql
//
// Two sets, because the dialects differ in types (BIGSERIAL, TIMESTAMPTZ) and,
// for later migrations, in what ALTER TABLE can do. The files are applied by
// github.com/golang-migrate/migrate/v4 (see package store); a test checks that
// both sets yield the same schema. Migrations are append-only: never edit a
// released file, add a new version instead.
package migrations

import (
	"embed"
	"fmt"
	"io/fs"
)

//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// Dialects for which a migration set exists.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

// FS returns the migration files of one dialect, at the root of the
// returned file system.
func FS(dialect string) (fs.FS, error) {
	switch dialect {
	case Postgres, SQLite:
		return fs.Sub(files, dialect)
	default:
		return nil, fmt.Errorf("migrations: unknown dialect %q (want %q or %q)", dialect, Postgres, SQLite)
	}
}
