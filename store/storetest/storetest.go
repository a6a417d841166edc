// Package storetest gives tests real, isolated cspine databases: a fresh
// PostgreSQL database per test (created on the server named by
// CSPINE_TEST_POSTGRES, default postgres://postgres@127.0.0.1:5432/postgres,
// and dropped at cleanup) and a fresh SQLite file in t.TempDir().
//
// PostgreSQL is required: when it does not answer, tests fail with a message
// saying how to start it. Nothing is skipped silently.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/cspine/cspine/store"
)

// DefaultAdminDSN is the PostgreSQL server used when CSPINE_TEST_POSTGRES
// is unset: the local cluster with trust authentication.
const DefaultAdminDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminDSN returns the DSN of the maintenance database on the test server.
func AdminDSN() string {
	if v := os.Getenv("CSPINE_TEST_POSTGRES"); v != "" {
		return v
	}
	return DefaultAdminDSN
}

// Opts tune a test database. A nil *Opts means defaults.
type Opts struct {
	// NoMigrate leaves the database empty (for migration tests).
	NoMigrate bool
}

// Dialects lists the dialects every storage test runs against.
var Dialects = []string{store.Postgres, store.SQLite}

// Each runs fn as one subtest per dialect, each with its own database.
func Each(t *testing.T, opts *Opts, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	for _, d := range Dialects {
		t.Run(d, func(t *testing.T) {
			fn(t, New(t, d, opts))
		})
	}
}

// New returns a fresh database of the given dialect, closed and removed at
// the end of the test.
func New(t testing.TB, dialect string, opts *Opts) *store.DB {
	t.Helper()
	switch dialect {
	case store.Postgres:
		return Postgres(t, opts)
	case store.SQLite:
		return SQLite(t, opts)
	}
	t.Fatalf("storetest: unknown dialect %q", dialect)
	return nil
}

// SQLite returns a fresh SQLite database in t.TempDir().
func SQLite(t testing.TB, opts *Opts) *store.DB {
	t.Helper()
	return Open(t, SQLiteDSN(t), opts)
}

// SQLiteDSN returns the DSN of a new SQLite file in t.TempDir().
func SQLiteDSN(t testing.TB) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "cspine.db")
}

// Postgres returns a fresh PostgreSQL database, dropped at cleanup.
func Postgres(t testing.TB, opts *Opts) *store.DB {
	t.Helper()
	dsn, _ := CreatePostgresDB(t)
	return Open(t, dsn, opts)
}

// CheckPostgres reports, with instructions, whether the server at
// adminDSN answers.
func CheckPostgres(ctx context.Context, adminDSN string) error {
	adb, err := sql.Open("pgx", adminDSN)
	if err != nil {
		return fmt.Errorf("storetest: open PostgreSQL admin connection: %w", err)
	}
	defer adb.Close()
	if err := adb.PingContext(ctx); err != nil {
		return fmt.Errorf("storetest: PostgreSQL is not reachable at %s: %w\n"+
			"These tests need a real PostgreSQL server (trust authentication for user postgres).\n"+
			"Start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n"+
			"or point CSPINE_TEST_POSTGRES at another server", redact(adminDSN), err)
	}
	return nil
}

// staleAfter is the age after which a leftover test database (from a test
// process that was killed before its cleanup) is dropped.
const staleAfter = 2 * time.Hour

var sweepOnce sync.Once

// CreatePostgresDB creates an empty, uniquely named database on the test
// server and returns its DSN and name. It is dropped at cleanup, after the
// test's own cleanups have closed their connections.
func CreatePostgresDB(t testing.TB) (dsn, name string) {
	t.Helper()
	admin := AdminDSN()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := CheckPostgres(ctx, admin); err != nil {
		t.Fatal(err)
	}
	adb, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("storetest: open PostgreSQL admin connection: %v", err)
	}
	defer adb.Close()
	sweepOnce.Do(func() { dropStale(ctx, adb) })
	var b [5]byte
	_, _ = rand.Read(b[:])
	// The creation time in the name lets dropStale find leftovers.
	name = fmt.Sprintf("cspine_test_%d_%s", time.Now().Unix(), hex.EncodeToString(b[:]))
	if _, err := adb.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("storetest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		adb, err := sql.Open("pgx", admin)
		if err != nil {
			t.Errorf("storetest: drop database %s: %v", name, err)
			return
		}
		defer adb.Close()
		if _, err := adb.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("storetest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("storetest: parse CSPINE_TEST_POSTGRES: %v", err)
	}
	u.Path = "/" + name
	return u.String(), name
}

// dropStale drops test databases left by killed test processes (best
// effort: errors are ignored, a concurrent process may be dropping them).
func dropStale(ctx context.Context, adb *sql.DB) {
	rows, err := adb.QueryContext(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'cspine\_test\_%'`)
	if err != nil {
		return
	}
	var stale []string
	for rows.Next() {
		var n string
		if rows.Scan(&n) != nil {
			continue
		}
		parts := strings.Split(n, "_") // cspine, test, UNIX, RANDOM
		if len(parts) != 4 {
			continue
		}
		sec, err := strconv.ParseInt(parts[2], 10, 64)
		if err == nil && time.Since(time.Unix(sec, 0)) > staleAfter {
			stale = append(stale, n)
		}
	}
	rows.Close()
	for _, n := range stale {
		_, _ = adb.ExecContext(ctx, `DROP DATABASE IF EXISTS `+n+` WITH (FORCE)`)
	}
}

// Open opens (and unless opts.NoMigrate, migrates) the database at dsn,
// closing it at cleanup. Several Opens of one DSN act as separate nodes.
func Open(t testing.TB, dsn string, opts *Opts) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dsn, &store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("storetest: close database: %v", err)
		}
	})
	if opts == nil || !opts.NoMigrate {
		if err := db.MigrateUp(ctx); err != nil {
			t.Fatalf("storetest: migrate: %v", err)
		}
	}
	return db
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparseable DSN)"
	}
	return u.Redacted()
}
