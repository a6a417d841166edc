package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/cspine/cspine/config"
	"github.com/cspine/cspine/store"
)

// openAdminDB loads the configuration (file, then environment), lets --database
// override its DSN, and opens the database with a small pool for the
// administrative commands (migrate, user). The caller closes the database.
func openAdminDB(ctx context.Context, cfgPath, dsn string, stderr io.Writer) (*config.Config, *store.DB, error) {
	cfg, err := config.Load(cfgPath, nil)
	if err != nil {
		return nil, nil, err
	}
	if dsn != "" {
		cfg.Database.DSN = dsn
		if err := cfg.Validate(); err != nil {
			return nil, nil, err
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := store.Open(ctx, cfg.DSN(), &store.Options{Logger: logger, MaxOpenConns: 2})
	if err != nil {
		return nil, nil, err
	}
	return cfg, db, nil
}
