package ingest_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/dicomnode/dimse"
	"github.com/cspine/cspine/ingest"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/store/storetest"
)

// An instance whose series is recorded (or was answered success) under
// another study is refused before the answer (C000, outcome "rejected"),
// on both paths; nothing of it is kept or recorded. Before, the write-ahead
// spool answered success and then recorded no row.
func TestSeriesOfOtherStudy(t *testing.T) {
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		var mu sync.Mutex
		var outcomes []string
		opts := &ingest.Options{OnOutcome: func(o string) { mu.Lock(); outcomes = append(outcomes, o); mu.Unlock() }}
		dataDir := t.TempDir()
		b := setupWAL(t, db, dataDir, opts)
		other := func(i int) dicomnodetest.Image {
			img := crashImage(i)
			img.StudyInstanceUID = "1.2.10"
			return img
		}
		st, err := stream(t, b.h, crashImage(1))
		require.NoError(t, err)
		require.Equal(t, dimse.StatusSuccess, st)
		// Answered success, perhaps not recorded yet.
		st, err = stream(t, b.h, other(2))
		require.ErrorIs(t, err, models.ErrSeriesOfOtherStudy)
		require.Equal(t, dimse.StatusCannotUnderstand, st)
		require.NoError(t, b.h.Flush(ctx))
		require.NoError(t, b.h.Close(ctx))
		// Recorded: a new handler asks the database.
		b = setupWAL(t, db, dataDir, opts)
		st, err = stream(t, b.h, other(3))
		require.ErrorIs(t, err, models.ErrSeriesOfOtherStudy)
		require.Equal(t, dimse.StatusCannotUnderstand, st)
		require.NoError(t, b.h.Flush(ctx))
		require.NoError(t, b.h.Close(ctx))
		mu.Lock()
		require.ElementsMatch(t, []string{ingest.OutcomeStored, ingest.OutcomeRejected, ingest.OutcomeRejected}, outcomes)
		mu.Unlock()
		for i, want := range []error{nil, models.ErrNotFound, models.ErrNotFound} {
			_, err := b.st.InstanceGetBySOPUID(ctx, crashImage(i+1).SOPInstanceUID)
			if want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, want)
			}
		}
		require.Len(t, spoolFiles(t, filepath.Join(dataDir, "spool")), 1)

		// Without the write-ahead spool (HandleStore): refused likewise,
		// not answered A700 (which makes the sender try again for ever).
		s := setupB(t, db)
		st, err = s.h.HandleStore(ctx, s.receive(t, other(4)))
		require.ErrorIs(t, err, models.ErrSeriesOfOtherStudy)
		require.Equal(t, dimse.StatusCannotUnderstand, st)
		require.Empty(t, spoolFiles(t, s.spool))
	})
}
