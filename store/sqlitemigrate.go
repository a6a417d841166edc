package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/golang-migrate/migrate/v4/database"
)

// sqliteMigrationsTable is the table in which migrate records the version.
const sqliteMigrationsTable = "schema_migrations"

// sqliteDriver is a migrate database.Driver for SQLite over the node's own
// *sql.DB (glebarez/go-sqlite). It exists only because migrate's SQLite
// driver links a second registration of the "sqlite" database/sql driver
// (see the package comment). It keeps migrate's semantics: one row holding
// version and dirty flag, each migration in its own transaction.
type sqliteDriver struct {
	ctx    context.Context
	db     *sql.DB
	locked atomic.Bool
}

func newSQLiteDriver(ctx context.Context, db *sql.DB) (*sqliteDriver, error) {
	d := &sqliteDriver{ctx: ctx, db: db}
	q := `CREATE TABLE IF NOT EXISTS ` + sqliteMigrationsTable + ` (version INTEGER NOT NULL, dirty BOOLEAN NOT NULL)`
	if _, err := db.ExecContext(ctx, q); err != nil {
		return nil, &database.Error{OrigErr: err, Query: []byte(q)}
	}
	return d, nil
}

// Open is not supported: the driver only wraps an open *sql.DB.
func (d *sqliteDriver) Open(string) (database.Driver, error) {
	return nil, errors.New("sqlite migrate driver: Open by URL is not supported; use store.Open")
}

// Close leaves the *sql.DB open: it belongs to the caller.
func (d *sqliteDriver) Close() error { return nil }

// Lock is process-local. One process owns a SQLite file; the database
// file lock taken by each migration transaction guards the rest.
func (d *sqliteDriver) Lock() error {
	if !d.locked.CompareAndSwap(false, true) {
		return database.ErrLocked
	}
	return nil
}

func (d *sqliteDriver) Unlock() error {
	if !d.locked.CompareAndSwap(true, false) {
		return database.ErrNotLocked
	}
	return nil
}

// Run executes one migration file (several statements) in a transaction.
func (d *sqliteDriver) Run(migration io.Reader) error {
	body, err := io.ReadAll(migration)
	if err != nil {
		return fmt.Errorf("read migration: %w", err)
	}
	tx, err := d.db.BeginTx(d.ctx, nil)
	if err != nil {
		return &database.Error{OrigErr: err, Err: "begin transaction"}
	}
	if _, err := tx.ExecContext(d.ctx, string(body)); err != nil {
		return errors.Join(&database.Error{OrigErr: err, Query: body}, tx.Rollback())
	}
	if err := tx.Commit(); err != nil {
		return &database.Error{OrigErr: err, Err: "commit migration"}
	}
	return nil
}

// SetVersion records version and dirty flag, replacing the previous row.
func (d *sqliteDriver) SetVersion(version int, dirty bool) error {
	tx, err := d.db.BeginTx(d.ctx, nil)
	if err != nil {
		return &database.Error{OrigErr: err, Err: "begin transaction"}
	}
	q := `DELETE FROM ` + sqliteMigrationsTable
	if _, err := tx.ExecContext(d.ctx, q); err != nil {
		return errors.Join(&database.Error{OrigErr: err, Query: []byte(q)}, tx.Rollback())
	}
	// A dirty NilVersion is recorded too: a failed first down migration
	// must stay visible (migrate's contract).
	if version >= 0 || (version == database.NilVersion && dirty) {
		q = `INSERT INTO ` + sqliteMigrationsTable + ` (version, dirty) VALUES (?, ?)`
		if _, err := tx.ExecContext(d.ctx, q, version, dirty); err != nil {
			return errors.Join(&database.Error{OrigErr: err, Query: []byte(q)}, tx.Rollback())
		}
	}
	if err := tx.Commit(); err != nil {
		return &database.Error{OrigErr: err, Err: "commit version"}
	}
	return nil
}

// Version returns the recorded version, or NilVersion when none.
func (d *sqliteDriver) Version() (int, bool, error) {
	var (
		version int
		dirty   bool
	)
	q := `SELECT version, dirty FROM ` + sqliteMigrationsTable + ` LIMIT 1`
	err := d.db.QueryRowContext(d.ctx, q).Scan(&version, &dirty)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return database.NilVersion, false, nil
	case err != nil:
		return 0, false, &database.Error{OrigErr: err, Query: []byte(q)}
	}
	return version, dirty, nil
}

// Drop removes every table (migrate's contract; used by tests).
func (d *sqliteDriver) Drop() error {
	rows, err := d.db.QueryContext(d.ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		names = append(names, n)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	if _, err := d.db.ExecContext(d.ctx, `PRAGMA foreign_keys = OFF`); err != nil {
		return err
	}
	defer d.db.ExecContext(context.WithoutCancel(d.ctx), `PRAGMA foreign_keys = ON`) //nolint:errcheck // best effort
	for _, n := range names {
		if _, err := d.db.ExecContext(d.ctx, `DROP TABLE "`+n+`"`); err != nil {
			return fmt.Errorf("drop table %s: %w", n, err)
		}
	}
	return nil
}
