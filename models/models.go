// Package models holds cspine's database rows as GORM models and the Store
// whose methods read and write them. Method names are noun-verb
// (StudyGetByUID, InstanceInsert, AnalysisInsert, ...), so related calls
// sort together.
//
// A Store wraps a *gorm.DB, which may be a transaction: Store.InTx runs a
// function with a Store bound to one transaction, and package jobs enqueues
// work in that same transaction (tx.DB()), so a row and the job it causes
// are committed together or not at all.
//
// Inside InTx use only the Store handed to the function (and its DB()):
// SQLite runs on a single connection, so a call through the outer Store
// would wait for the transaction that is waiting for it.
//
// The schema itself is defined by the SQL migrations in package migrations;
// these structs only map it (a test checks every field against both
// databases). Times are UTC with microsecond precision (store.Now).
package models

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
)

// Sentinel errors of Store methods; test with errors.Is.
var (
	// ErrNotFound: no row matches.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: a unique key (UID, idempotency key, ...) is taken.
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: the row changed under a compare-and-set update (state
	// or version no longer as expected).
	ErrConflict = errors.New("conflict: row changed concurrently")
)

// Store reads and writes cspine rows.
type Store struct {
	db *gorm.DB
}

// NewStore returns a Store over db (a connection pool or a transaction).
func NewStore(db *gorm.DB) *Store { return &Store{db: db} }

// DB returns the underlying handle, for package jobs to enqueue in the
// same transaction.
func (s *Store) DB() *gorm.DB { return s.db }

// InTx runs fn in one transaction. fn's Store and its DB() use that
// transaction; returning an error (or panicking) rolls it back.
func (s *Store) InTx(ctx context.Context, fn func(tx *Store) error) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return fn(&Store{db: tx})
	})
}

func (s *Store) q(ctx context.Context) *gorm.DB { return s.db.WithContext(ctx) }

// wrap names the operation and maps gorm's errors to this package's.
func wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return fmt.Errorf("%s: %w: %v", op, ErrAlreadyExists, err)
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
