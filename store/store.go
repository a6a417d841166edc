// Package store opens cspine's database and keeps its schema current.
//
// A database is named by a DSN:
//
//	postgres://user@host:5432/cspine?sslmode=verify-full   PostgreSQL (production; several nodes may share it)
//	postgresql://...                                       the same
//	sqlite:PATH                                            an embedded SQLite file (the default; one node)
//
// PostgreSQL is reached through gorm.io/driver/postgres (pgx). Its password
// never appears in a DSN written in a configuration file: pgx reads PGPASSWORD
// (and ~/.pgpass) from the environment. SQLite is the pure-Go
// github.com/glebarez/sqlite driver, opened with foreign keys on, WAL
// journal, full fsync and a single connection, so that the node is the only
// writer and transactions never deadlock on lock upgrades.
//
// Schema migrations (package migrations) are applied by
// github.com/golang-migrate/migrate/v4: its pgx/v5 driver on PostgreSQL
// (with an advisory lock, so that nodes starting together migrate once),
// and on SQLite a small database.Driver of our own (sqlitemigrate.go),
// because migrate's own SQLite driver registers modernc.org/sqlite under the
// same database/sql name as glebarez/go-sqlite and the two cannot be linked
// into one binary.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/cspine/cspine/migrations"
)

// Dialect names, as reported by gorm's Dialector.Name().
const (
	Postgres = migrations.Postgres
	SQLite   = migrations.SQLite
)

// ErrBadDSN is wrapped by Open for a DSN it cannot understand.
var ErrBadDSN = errors.New("bad database DSN")

// Options tune Open. A nil *Options means defaults.
type Options struct {
	// MaxOpenConns caps the PostgreSQL connection pool (default 10). SQLite
	// always uses one connection.
	MaxOpenConns int
	// Logger receives slow-query warnings and migration messages
	// (default slog.Default()). SQL text is logged at Debug only, since
	// parameters may carry patient data.
	Logger *slog.Logger
	// SlowQuery is the threshold for a slow-query warning (default 2s).
	SlowQuery time.Duration
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.MaxOpenConns <= 0 {
		r.MaxOpenConns = 10
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	if r.SlowQuery <= 0 {
		r.SlowQuery = 2 * time.Second
	}
	return r
}

// DB is an open cspine database.
type DB struct {
	// Gorm is the handle used by package models and package jobs.
	Gorm *gorm.DB
	// Dialect is Postgres or SQLite.
	Dialect string

	dsn    string // as given, for migrations; never logged
	logger *slog.Logger
}

// Target is a parsed DSN.
type Target struct {
	Dialect string
	// ConnString is what the driver receives: the PostgreSQL URL, or the
	// SQLite file path with cspine's connection parameters.
	ConnString string
	// Path is the SQLite file (empty for PostgreSQL).
	Path string
}

// ParseDSN classifies a DSN. It does not connect.
func ParseDSN(dsn string) (Target, error) {
	switch {
	case dsn == "":
		return Target{}, fmt.Errorf("%w: empty (want postgres://... or sqlite:PATH)", ErrBadDSN)
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		u, err := url.Parse(dsn)
		if err != nil {
			// url.Error repeats the DSN, which may hold a password.
			return Target{}, fmt.Errorf("%w: postgres URL does not parse", ErrBadDSN)
		}
		if u.Host == "" {
			return Target{}, fmt.Errorf("%w: postgres URL has no host", ErrBadDSN)
		}
		return Target{Dialect: Postgres, ConnString: dsn}, nil
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		path = strings.TrimPrefix(path, "//") // tolerate sqlite://PATH
		if path == "" {
			return Target{}, fmt.Errorf("%w: sqlite DSN has no file path (want sqlite:PATH)", ErrBadDSN)
		}
		if strings.ContainsAny(path, "?#") || path == ":memory:" {
			return Target{}, fmt.Errorf("%w: sqlite DSN must be a plain file path, got %q", ErrBadDSN, path)
		}
		return Target{Dialect: SQLite, ConnString: sqliteConnString(path), Path: path}, nil
	default:
		scheme, _, _ := strings.Cut(dsn, ":")
		return Target{}, fmt.Errorf("%w: unknown scheme %q (want postgres://... or sqlite:PATH)", ErrBadDSN, scheme)
	}
}

// sqliteConnString adds cspine's connection settings to a file path.
// Durability first: WAL with synchronous=FULL survives power loss.
func sqliteConnString(path string) string {
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Set("_txlock", "immediate")
	return path + "?" + q.Encode()
}

// Open connects to the database named by dsn and checks that it answers.
// It does not migrate; call MigrateUp for that. For SQLite the file and its
// directory are created when missing.
func Open(ctx context.Context, dsn string, opts *Options) (*DB, error) {
	o := opts.withDefaults()
	t, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	cfg := &gorm.Config{
		NowFunc:        Now,
		TranslateError: true,
		// Single statements need no transaction of their own; every
		// multi-statement write in cspine runs in an explicit one
		// (models.Store.InTx).
		SkipDefaultTransaction: true,
		Logger: logger.NewSlogLogger(o.Logger, logger.Config{
			SlowThreshold:             o.SlowQuery,
			LogLevel:                  logger.Warn,
			IgnoreRecordNotFoundError: true,
			ParameterizedQueries:      true, // never log parameter values
		}),
	}
	var dialector gorm.Dialector
	switch t.Dialect {
	case Postgres:
		pc, err := pgx.ParseConfig(t.ConnString)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadDSN, err)
		}
		if _, ok := pc.RuntimeParams["application_name"]; !ok {
			pc.RuntimeParams["application_name"] = "cspine" // visible in pg_stat_activity
		}
		// Scan timestamptz as UTC, as SQLite does, so both databases give
		// identical values.
		sqlDB := stdlib.OpenDB(*pc, stdlib.OptionAfterConnect(func(_ context.Context, c *pgx.Conn) error {
			c.TypeMap().RegisterType(&pgtype.Type{
				Name: "timestamptz", OID: pgtype.TimestamptzOID,
				Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC},
			})
			return nil
		}))
		dialector = postgres.New(postgres.Config{Conn: sqlDB})
	case SQLite:
		if err := os.MkdirAll(filepath.Dir(t.Path), 0o750); err != nil {
			return nil, fmt.Errorf("open sqlite database: create directory: %w", err)
		}
		// The database holds patient data: create it readable by the node
		// only (SQLite gives its -wal and -shm files the same mode).
		f, err := os.OpenFile(t.Path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open sqlite database: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("open sqlite database: %w", err)
		}
		dialector = sqlite.Open(t.ConnString)
	}
	g, err := gorm.Open(dialector, cfg)
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", t.Dialect, err)
	}
	sqlDB, err := g.DB()
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", t.Dialect, err)
	}
	switch t.Dialect {
	case SQLite:
		sqlDB.SetMaxOpenConns(1)
		sqlDB.SetMaxIdleConns(1)
		sqlDB.SetConnMaxLifetime(0)
	case Postgres:
		sqlDB.SetMaxOpenConns(o.MaxOpenConns)
		sqlDB.SetMaxIdleConns(o.MaxOpenConns)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("open %s database: %w", t.Dialect, err)
	}
	return &DB{Gorm: g, Dialect: t.Dialect, dsn: dsn, logger: o.Logger}, nil
}

// Close closes the connection pool.
func (d *DB) Close() error {
	sqlDB, err := d.Gorm.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Ping checks that the database answers (for readiness probes).
func (d *DB) Ping(ctx context.Context) error {
	sqlDB, err := d.Gorm.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Now is the clock of every row cspine writes: UTC with microsecond
// precision (PostgreSQL's), so that values round-trip identically through
// both databases and compare correctly as SQLite text.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// Normalize converts t the way Now does; store code applies it to every
// time it writes or compares.
func Normalize(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
