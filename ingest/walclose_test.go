package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/dicomnode/dimse"
	"github.com/cspine/cspine/store/storetest"
)

// Close returns when its context ends even while the materialiser waits
// on a database that does not answer (here a table locked by another
// transaction): the call is cancelled, the record stays in the
// write-ahead spool and is recorded by the next Start.
func TestWALCloseDatabaseHangs(t *testing.T) {
	ctx := context.Background()
	db := storetest.Postgres(t, nil)
	dataDir := t.TempDir()
	b := setupWAL(t, db, dataDir, nil)
	lock := db.Gorm.Begin()
	require.NoError(t, lock.Error)
	require.NoError(t, lock.Exec("LOCK TABLE instances IN ACCESS EXCLUSIVE MODE").Error)
	unlocked := false
	defer func() {
		if !unlocked {
			lock.Rollback()
		}
	}()
	st, err := stream(t, b.h, crashImage(1))
	require.NoError(t, err)
	require.Equal(t, dimse.StatusSuccess, st)
	time.Sleep(700 * time.Millisecond) // the materialiser is waiting for the lock
	closed := make(chan error, 1)
	go func() {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		closed <- b.h.Close(cctx)
	}()
	select {
	case err := <-closed:
		require.Error(t, err, "the instance cannot have been recorded")
	case <-time.After(15 * time.Second):
		lock.Rollback()
		unlocked = true
		<-closed
		t.Fatal("Close did not return while the database hung")
	}
	lock.Rollback()
	unlocked = true

	b2 := setupWAL(t, db, dataDir, nil)
	require.Equal(t, 1, b2.replayed)
	require.NoError(t, b2.h.Flush(ctx))
	_, err = b2.st.InstanceGetBySOPUID(ctx, crashImage(1).SOPInstanceUID)
	require.NoError(t, err)
	require.NoError(t, b2.h.Close(ctx))
}
