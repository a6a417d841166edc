package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cspine/cspine/store"
)

func init() {
	register(command{
		name:    "migrate",
		summary: "apply (or revert) the database schema migrations",
		usage: `Usage: cspine migrate [--config FILE] [--database DSN] [--status | --down N | --force V]

Applies every pending schema migration to the database (cspine serve also
does this on start). The database is --database, else database.dsn of the
configuration file, else $CSPINE_DATABASE_DSN, else the embedded SQLite file
sqlite:<data_dir>/cspine.db.

  DSN: postgres://USER@HOST:PORT/DB?sslmode=...   (password from PGPASSWORD)
       sqlite:PATH

  --status   print the schema version and exit
  --down N   revert the last N migrations (destroys their data)
  --force V  record version V as applied and clean, running nothing: after
             a failed migration, once the schema was repaired by hand`,
		run: runMigrate,
	})
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet(commands["migrate"], stderr)
	cfgPath := fs.String("config", "", "YAML configuration `file`")
	dsn := fs.String("database", "", "database `DSN` (postgres://... or sqlite:PATH)")
	status := fs.Bool("status", false, "print the schema version and exit")
	down := fs.Int("down", 0, "revert the last `N` migrations")
	force := fs.Int("force", -1, "record `version` as applied after a manual repair")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	modes := 0
	for _, set := range []bool{*status, *down != 0, *force >= 0} {
		if set {
			modes++
		}
	}
	if modes > 1 {
		return fmt.Errorf("%w: --status, --down and --force exclude each other", errUsage)
	}
	if *force < -1 {
		return fmt.Errorf("%w: --force needs a version of 0 or more", errUsage)
	}
	if *down < 0 {
		return fmt.Errorf("%w: --down needs a positive count", errUsage)
	}
	cfg, db, err := openAdminDB(ctx, *cfgPath, *dsn, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	where := cfg.RedactedDSN()

	before, err := db.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	switch {
	case *status:
		printStatus(stdout, where, before)
		return nil
	case *down > 0:
		if err := db.MigrateDown(ctx, *down); err != nil {
			return err
		}
	case *force >= 0:
		if err := db.MigrateForce(ctx, uint(*force)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: schema version recorded as %d (clean)\n", where, *force)
		return nil
	default:
		if err := db.MigrateUp(ctx); err != nil {
			if errors.Is(err, store.ErrSchemaNewer) {
				return fmt.Errorf("%w; upgrade cspine before using this database", err)
			}
			return err
		}
	}
	after, err := db.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	if after.Version == before.Version {
		fmt.Fprintf(stdout, "%s: schema already at version %d, nothing to do\n", where, after.Version)
		return nil
	}
	fmt.Fprintf(stdout, "%s: schema migrated from version %d to %d\n", where, before.Version, after.Version)
	return nil
}

func printStatus(w io.Writer, where string, st store.MigrationStatus) {
	state := "current"
	switch {
	case st.Dirty:
		state = "DIRTY: a migration failed half way; repair the schema by hand"
	case st.Version < st.Latest:
		state = fmt.Sprintf("%d migration(s) pending", st.Latest-st.Version)
	case st.Version > st.Latest:
		state = "newer than this cspine"
	}
	fmt.Fprintf(w, "%s: schema version %d (this cspine: %d): %s\n", where, st.Version, st.Latest, state)
}
