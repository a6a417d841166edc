package jobs

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"

	"github.com/cspine/cspine/store"
)

// notifyChannel is the PostgreSQL channel on which new jobs are announced.
const notifyChannel = "cspine_jobs"

// notify announces a new job to every node's pool. On PostgreSQL NOTIFY is
// transactional: sent through the inserting transaction, it is delivered
// only when (and if) that transaction commits, so a pool never wakes for a
// job it cannot see yet. On SQLite (one node) pools poll.
func notify(db *gorm.DB, kind string) error {
	if db.Dialector.Name() != store.Postgres {
		return nil
	}
	if err := db.Exec(`SELECT pg_notify(?, ?)`, notifyChannel, kind).Error; err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

// listen wakes the pool whenever any node inserts a job (PostgreSQL
// LISTEN on one connection of the pool's own database pool). It reconnects
// after errors until ctx ends. Polling stays as the fallback, and for jobs
// whose run_at is in the future.
func (p *Pool) listen(ctx context.Context, db *gorm.DB) {
	sqlDB, err := db.DB()
	if err != nil {
		p.log.Warn("listen for new jobs: no connection pool", "error", err)
		return
	}
	delay := 100 * time.Millisecond
	failing := false
	for ctx.Err() == nil {
		err := func() error {
			conn, err := sqlDB.Conn(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			return conn.Raw(func(dc any) error {
				sc, ok := dc.(*stdlib.Conn)
				if !ok {
					return fmt.Errorf("connection is %T, not pgx", dc)
				}
				pc := sc.Conn()
				if _, err := pc.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
					return errors.Join(err, driver.ErrBadConn)
				}
				if failing {
					p.log.Info("listening for new jobs again")
					failing = false
				}
				delay = 100 * time.Millisecond
				p.Notify() // jobs may have arrived while not listening
				for {
					if _, err := pc.WaitForNotification(ctx); err != nil {
						// The connection is left listening (or broken):
						// never give it back to the pool.
						return errors.Join(err, driver.ErrBadConn)
					}
					p.Notify()
				}
			})
		}()
		if ctx.Err() != nil {
			return
		}
		if !failing {
			p.log.Warn("listen for new jobs failed; polling until it works again", "error", err)
			failing = true
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}
