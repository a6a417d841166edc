package store_test

import (
	"context"
	"errors"
	"os"
	"sort"
	"strings"
	"testing"

	dt "github.com/golang-migrate/migrate/v4/database/testing"
	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/store/storetest"
)

func TestParseDSN(t *testing.T) {
	t.Parallel()
	tests := []struct {
		dsn     string
		dialect string
		path    string
		wantErr string
	}{
		{dsn: "postgres://u@db.example:5432/cspine?sslmode=require", dialect: store.Postgres},
		{dsn: "postgresql://u@db.example/cspine", dialect: store.Postgres},
		{dsn: "sqlite:/var/lib/cspine/cspine.db", dialect: store.SQLite, path: "/var/lib/cspine/cspine.db"},
		{dsn: "sqlite:data/cspine.db", dialect: store.SQLite, path: "data/cspine.db"},
		{dsn: "sqlite:///abs/cspine.db", dialect: store.SQLite, path: "/abs/cspine.db"},
		{dsn: "", wantErr: "empty"},
		{dsn: "sqlite:", wantErr: "no file path"},
		{dsn: "sqlite::memory:", wantErr: "plain file path"},
		{dsn: "sqlite:x.db?_pragma=foo", wantErr: "plain file path"},
		{dsn: "mysql://root@localhost/x", wantErr: `unknown scheme "mysql"`},
		{dsn: "postgres:///nohost", wantErr: "no host"},
	}
	for _, tc := range tests {
		t.Run(tc.dsn, func(t *testing.T) {
			t.Parallel()
			got, err := store.ParseDSN(tc.dsn)
			if tc.wantErr != "" {
				require.ErrorIs(t, err, store.ErrBadDSN)
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.dialect, got.Dialect)
			require.Equal(t, tc.path, got.Path)
		})
	}
}

func TestParseDSNDoesNotLeakPassword(t *testing.T) {
	t.Parallel()
	_, err := store.ParseDSN("postgres://u:s3cret@[bad/x")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret")
}

// TestMigrations applies every migration up, checks the schema, takes it
// all the way down and up again, on a real PostgreSQL and on SQLite.
func TestMigrations(t *testing.T) {
	t.Parallel()
	storetest.Each(t, &storetest.Opts{NoMigrate: true}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		latest, err := store.LatestVersion(db.Dialect)
		require.NoError(t, err)
		require.GreaterOrEqual(t, latest, uint(1))

		st, err := db.MigrationStatus(ctx)
		require.NoError(t, err)
		require.Equal(t, store.MigrationStatus{Version: 0, Latest: latest}, st)
		require.False(t, st.Current())

		require.ErrorContains(t, db.MigrateDown(ctx, 1), "no migration is applied")

		require.NoError(t, db.MigrateUp(ctx))
		st, err = db.MigrationStatus(ctx)
		require.NoError(t, err)
		require.True(t, st.Current(), "status %+v", st)
		require.Subset(t, tables(t, db), wantTables)

		// Idempotent on restart.
		require.NoError(t, db.MigrateUp(ctx))

		// Step down one version at a time to nothing, then up again.
		for v := latest; v >= 1; v-- {
			require.NoError(t, db.MigrateDown(ctx, 1), "down from %d", v)
			st, err = db.MigrationStatus(ctx)
			require.NoError(t, err)
			require.Equal(t, v-1, st.Version)
			require.False(t, st.Dirty)
		}
		for _, tbl := range tables(t, db) {
			require.Contains(t, []string{"schema_migrations"}, tbl, "table left after full down migration")
		}
		require.NoError(t, db.MigrateUp(ctx))
		require.Subset(t, tables(t, db), wantTables)
	})
}

// TestEachDownRestoresPreviousSchema: for every version v, migrating up to
// v and back down one step gives exactly the schema of v-1 (columns and
// indexes), on both databases.
func TestEachDownRestoresPreviousSchema(t *testing.T) {
	t.Parallel()
	storetest.Each(t, &storetest.Opts{NoMigrate: true}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		latest, err := store.LatestVersion(db.Dialect)
		require.NoError(t, err)
		for v := uint(1); v <= latest; v++ {
			require.NoError(t, db.MigrateTo(ctx, v-1))
			wantCols, wantIdx := columns(t, db), indexes(t, db)
			require.NoError(t, db.MigrateTo(ctx, v))
			require.NoError(t, db.MigrateDown(ctx, 1))
			require.Equal(t, wantCols, columns(t, db), "columns after %d down", v)
			require.Equal(t, wantIdx, indexes(t, db), "indexes after %d down", v)
		}
		require.ErrorContains(t, db.MigrateTo(ctx, latest+1), "knows versions up to")
		require.NoError(t, db.MigrateTo(ctx, latest))
		st, err := db.MigrationStatus(ctx)
		require.NoError(t, err)
		require.True(t, st.Current())
		if db.Dialect == store.Postgres {
			var app string
			require.NoError(t, db.Gorm.Raw(`SHOW application_name`).Scan(&app).Error)
			require.Equal(t, "cspine", app)
		}
	})
}

func TestDirtySchemaAndForce(t *testing.T) {
	t.Parallel()
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		require.NoError(t, db.Gorm.Exec(`UPDATE schema_migrations SET dirty = TRUE`).Error)
		st, err := db.MigrationStatus(ctx)
		require.NoError(t, err)
		require.True(t, st.Dirty)
		require.False(t, st.Current())
		err = db.MigrateUp(ctx)
		require.ErrorIs(t, err, store.ErrDirty)
		require.ErrorContains(t, err, "cspine migrate --force")
		require.ErrorIs(t, db.MigrateDown(ctx, 1), store.ErrDirty)
		require.ErrorContains(t, db.MigrateForce(ctx, 99), "knows versions up to")
		require.NoError(t, db.MigrateForce(ctx, 1))
		st, err = db.MigrationStatus(ctx)
		require.NoError(t, err)
		require.True(t, st.Current())
		require.NoError(t, db.MigrateUp(ctx))
	})
}

func TestMigrateUpRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		require.NoError(t, db.Gorm.Exec(`UPDATE schema_migrations SET version = 9999`).Error)
		err := db.MigrateUp(ctx)
		require.ErrorIs(t, err, store.ErrSchemaNewer)
	})
}

func TestMigrateUpCancelled(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t, &storetest.Opts{NoMigrate: true})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := db.MigrateUp(ctx)
	require.True(t, errors.Is(err, context.Canceled), "got %v", err)
}

var wantTables = []string{
	"analyses", "audit_events", "instances", "jobs", "landmarks", "reports",
	"review_landmarks", "review_reasons", "review_tasks", "series", "sessions",
	"studies", "transfers", "users",
}

func tables(t *testing.T, db *store.DB) []string {
	t.Helper()
	var names []string
	q := `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`
	if db.Dialect == store.SQLite {
		q = `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`
	}
	require.NoError(t, db.Gorm.Raw(q).Scan(&names).Error)
	sort.Strings(names)
	return names
}

// columns maps table → sorted column list.
func columns(t *testing.T, db *store.DB) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, tbl := range tables(t, db) {
		var cols []string
		q := `SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = ?`
		if db.Dialect == store.SQLite {
			q = `SELECT name FROM pragma_table_info(?)`
		}
		require.NoError(t, db.Gorm.Raw(q, tbl).Scan(&cols).Error)
		sort.Strings(cols)
		out[tbl] = cols
	}
	return out
}

// indexes returns the sorted names of user-defined indexes.
func indexes(t *testing.T, db *store.DB) []string {
	t.Helper()
	var names []string
	q := `SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT LIKE '%_pkey'`
	if db.Dialect == store.SQLite {
		q = `SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'`
	}
	require.NoError(t, db.Gorm.Raw(q).Scan(&names).Error)
	sort.Strings(names)
	return names
}

// TestSchemaParity checks that the PostgreSQL and SQLite migration sets
// produce the same tables, columns and indexes.
func TestSchemaParity(t *testing.T) {
	t.Parallel()
	pg := storetest.Postgres(t, nil)
	lite := storetest.SQLite(t, nil)
	require.Equal(t, columns(t, pg), columns(t, lite))
	pgIdx := indexes(t, pg)
	liteIdx := indexes(t, lite)
	// migrate's own bookkeeping differs by driver.
	drop := func(in []string) []string {
		var out []string
		for _, n := range in {
			if !strings.HasPrefix(n, "schema_migrations") && n != "version_unique" {
				out = append(out, n)
			}
		}
		return out
	}
	require.Equal(t, drop(pgIdx), drop(liteIdx))
}

// TestSQLiteMigrateDriver runs migrate's conformance suite for database
// drivers against our SQLite driver.
func TestSQLiteMigrateDriver(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t, &storetest.Opts{NoMigrate: true})
	drv, err := store.NewSQLiteMigrateDriverForTest(context.Background(), db)
	require.NoError(t, err)
	dt.Test(t, drv, []byte("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1);"))
}

func TestOpenSQLiteCreatesDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := store.Open(context.Background(), "sqlite:"+dir+"/a/b/cspine.db", nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	require.NoError(t, db.Ping(context.Background()))
	var fk int
	require.NoError(t, db.Gorm.Raw(`PRAGMA foreign_keys`).Scan(&fk).Error)
	require.Equal(t, 1, fk, "foreign keys must be enforced")
	var mode string
	require.NoError(t, db.Gorm.Raw(`PRAGMA journal_mode`).Scan(&mode).Error)
	require.Equal(t, "wal", mode)
	require.NoError(t, db.MigrateUp(context.Background()))
	for _, f := range []string{"cspine.db", "cspine.db-wal", "cspine.db-shm"} {
		st, err := os.Stat(dir + "/a/b/" + f)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "%s holds patient data: owner only", f)
	}
}
