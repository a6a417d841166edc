package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"

	"github.com/cspine/cspine/migrations"
)

// MigrationStatus says where a database's schema stands.
type MigrationStatus struct {
	// Version is the applied version, 0 when none.
	Version uint
	// Dirty is true when a migration failed half way; an operator must
	// repair the schema and force the version (see migrate's docs).
	Dirty bool
	// Latest is the highest version embedded in this binary.
	Latest uint
}

// Current reports whether the schema is exactly the binary's.
func (s MigrationStatus) Current() bool { return !s.Dirty && s.Version == s.Latest }

// ErrSchemaNewer is returned when the database was migrated by a newer
// cspine than this one.
var ErrSchemaNewer = errors.New("database schema is newer than this cspine binary")

// MigrateUp applies every pending migration. It is safe to call on every
// start and from several nodes at once on PostgreSQL (advisory lock).
func (d *DB) MigrateUp(ctx context.Context) error {
	return d.withMigrate(ctx, func(m *migrate.Migrate) error {
		st, err := status(m, d.Dialect)
		if err != nil {
			return err
		}
		if st.Version > st.Latest {
			return fmt.Errorf("%w: database at version %d, binary knows up to %d", ErrSchemaNewer, st.Version, st.Latest)
		}
		if st.Dirty {
			return fmt.Errorf("migrate up: %w", dirtyError(st.Version))
		}
		if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
			return fmt.Errorf("migrate up: %w", err)
		}
		return nil
	})
}

// ErrDirty is wrapped when a migration failed half way before.
var ErrDirty = errors.New("database schema is dirty")

func dirtyError(v uint) error {
	return fmt.Errorf("%w: migration %d failed half way; repair the schema by hand, then record the version "+
		"that matches it with `cspine migrate --force VERSION`", ErrDirty, v)
}

// MigrateForce records version as applied and clean without running any
// migration: the operator's step after repairing a dirty schema by hand.
func (d *DB) MigrateForce(ctx context.Context, version uint) error {
	return d.withMigrate(ctx, func(m *migrate.Migrate) error {
		latest, err := LatestVersion(d.Dialect)
		if err != nil {
			return err
		}
		if version > latest {
			return fmt.Errorf("force version %d: this cspine knows versions up to %d", version, latest)
		}
		v := int(version)
		if version == 0 {
			v = -1 // migrate's NilVersion: nothing applied
		}
		if err := m.Force(v); err != nil {
			return fmt.Errorf("force version %d: %w", version, err)
		}
		return nil
	})
}

// MigrateDown reverts the last n applied migrations (n >= 1).
func (d *DB) MigrateDown(ctx context.Context, n int) error {
	if n < 1 {
		return fmt.Errorf("migrate down: step count must be at least 1, got %d", n)
	}
	return d.withMigrate(ctx, func(m *migrate.Migrate) error {
		st, err := status(m, d.Dialect)
		if err != nil {
			return err
		}
		if st.Dirty {
			return fmt.Errorf("migrate down: %w", dirtyError(st.Version))
		}
		if st.Version == 0 {
			return fmt.Errorf("migrate down: no migration is applied")
		}
		if err := m.Steps(-n); err != nil && !errors.Is(err, migrate.ErrNoChange) {
			return fmt.Errorf("migrate down %d: %w", n, err)
		}
		return nil
	})
}

// MigrateTo moves the schema up or down to exactly version (0: empty).
func (d *DB) MigrateTo(ctx context.Context, version uint) error {
	return d.withMigrate(ctx, func(m *migrate.Migrate) error {
		st, err := status(m, d.Dialect)
		if err != nil {
			return err
		}
		if version > st.Latest {
			return fmt.Errorf("migrate to %d: this cspine knows versions up to %d", version, st.Latest)
		}
		if version == st.Version && !st.Dirty {
			return nil
		}
		if version == 0 {
			err = m.Down()
		} else {
			err = m.Migrate(version)
		}
		if err != nil && !errors.Is(err, migrate.ErrNoChange) {
			return fmt.Errorf("migrate to %d: %w", version, err)
		}
		return nil
	})
}

// MigrationStatus reads the applied schema version.
func (d *DB) MigrationStatus(ctx context.Context) (MigrationStatus, error) {
	var st MigrationStatus
	err := d.withMigrate(ctx, func(m *migrate.Migrate) error {
		var err error
		st, err = status(m, d.Dialect)
		return err
	})
	return st, err
}

func status(m *migrate.Migrate, dialect string) (MigrationStatus, error) {
	var st MigrationStatus
	v, dirty, err := m.Version()
	switch {
	case errors.Is(err, migrate.ErrNilVersion):
	case err != nil:
		return st, fmt.Errorf("read schema version: %w", err)
	default:
		st.Version, st.Dirty = v, dirty
	}
	st.Latest, err = LatestVersion(dialect)
	return st, err
}

// LatestVersion returns the highest migration version embedded for a
// dialect.
func LatestVersion(dialect string) (uint, error) {
	fsys, err := migrations.FS(dialect)
	if err != nil {
		return 0, err
	}
	src, err := iofs.New(fsys, ".")
	if err != nil {
		return 0, fmt.Errorf("read %s migrations: %w", dialect, err)
	}
	defer src.Close()
	v, err := src.First()
	if err != nil {
		return 0, fmt.Errorf("read %s migrations: %w", dialect, err)
	}
	for {
		next, err := src.Next(v)
		if errors.Is(err, fs.ErrNotExist) {
			return v, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read %s migrations: %w", dialect, err)
		}
		v = next
	}
}

// withMigrate builds a migrate.Migrate for this database, runs fn, and
// stops it gracefully when ctx is cancelled.
func (d *DB) withMigrate(ctx context.Context, fn func(*migrate.Migrate) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	fsys, err := migrations.FS(d.Dialect)
	if err != nil {
		return err
	}
	src, err := iofs.New(fsys, ".")
	if err != nil {
		return fmt.Errorf("read %s migrations: %w", d.Dialect, err)
	}
	var drv database.Driver
	switch d.Dialect {
	case Postgres:
		// migrate's pgx driver closes the *sql.DB it is given, so it gets a
		// pool of its own rather than gorm's.
		t, err := ParseDSN(d.dsn)
		if err != nil {
			return err
		}
		sqlDB, err := sql.Open("pgx", t.ConnString)
		if err != nil {
			return fmt.Errorf("migrate: open postgres: %w", err)
		}
		drv, err = migratepgx.WithInstance(sqlDB, &migratepgx.Config{})
		if err != nil {
			_ = sqlDB.Close()
			return fmt.Errorf("migrate: postgres driver: %w", err)
		}
	case SQLite:
		sqlDB, err := d.Gorm.DB()
		if err != nil {
			return err
		}
		drv, err = newSQLiteDriver(ctx, sqlDB)
		if err != nil {
			return fmt.Errorf("migrate: sqlite driver: %w", err)
		}
	}
	m, err := migrate.NewWithInstance("iofs", src, d.Dialect, drv)
	if err != nil {
		_ = drv.Close()
		return fmt.Errorf("migrate: %w", err)
	}
	m.Log = migrateLogger{d.logger}
	m.LockTimeout = time.Minute // wait up to a minute for another node's migration

	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			select {
			case m.GracefulStop <- true:
			default:
			}
		case <-done:
		}
	}()

	runErr := fn(m)
	srcErr, dbErr := m.Close()
	return errors.Join(runErr, srcErr, dbErr, ctx.Err())
}

type migrateLogger struct{ l *slog.Logger }

func (ml migrateLogger) Printf(format string, v ...any) {
	ml.l.Info("migrate: " + fmt.Sprintf(format, v...))
}
func (ml migrateLogger) Verbose() bool { return false }
