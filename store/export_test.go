package store

import (
	"context"

	"github.com/golang-migrate/migrate/v4/database"
)

// NewSQLiteMigrateDriverForTest exposes the SQLite migrate driver to the
// external test package.
func NewSQLiteMigrateDriverForTest(ctx context.Context, db *DB) (database.Driver, error) {
	sqlDB, err := db.Gorm.DB()
	if err != nil {
		return nil, err
	}
	return newSQLiteDriver(ctx, sqlDB)
}
