package ingest_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/dicomnode/dimse"
	"github.com/cspine/cspine/ingest"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/store/storetest"
)

// outcomeLog collects the outcomes a handler reports.
type outcomeLog struct {
	mu  sync.Mutex
	out []string
}

func (l *outcomeLog) add(o string) { l.mu.Lock(); l.out = append(l.out, o); l.mu.Unlock() }

func (l *outcomeLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.out...)
}

// sendStored sends imgs to a handler on dataDir and waits until they are
// recorded.
func sendStored(t *testing.T, db *store.DB, dataDir string, imgs ...dicomnodetest.Image) {
	t.Helper()
	ctx := context.Background()
	b := setupWAL(t, db, dataDir, nil)
	for _, img := range imgs {
		st, err := stream(t, b.h, img)
		require.NoError(t, err)
		require.Equal(t, dimse.StatusSuccess, st)
	}
	require.NoError(t, b.h.Flush(ctx))
	require.NoError(t, b.h.Close(ctx))
}

// sendPending sends imgs to a handler on dataDir whose database cannot
// record them, and stops it: they are answered success and stay in the
// write-ahead spool, to be replayed by the next handler.
func sendPending(t *testing.T, db *store.DB, dataDir string, imgs ...dicomnodetest.Image) {
	t.Helper()
	require.NoError(t, db.Gorm.Exec("ALTER TABLE instances RENAME TO instances_away").Error)
	b := setupWAL(t, db, dataDir, nil)
	for _, img := range imgs {
		st, err := stream(t, b.h, img)
		require.NoError(t, err)
		require.Equal(t, dimse.StatusSuccess, st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	require.Error(t, b.h.Close(ctx)) // not recorded: stays in the write-ahead spool
	require.NoError(t, db.Gorm.Exec("ALTER TABLE instances_away RENAME TO instances").Error)
}

// snapshotWAL returns the files of the write-ahead spool's directory;
// restore writes them back.
func snapshotWAL(t *testing.T, dir string) (restore func()) {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	files := map[string][]byte{}
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		files[e.Name()] = b
	}
	return func() {
		for name, b := range files {
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o640))
		}
	}
}

// A record replayed at start whose instance the database already has is
// counted by what it is: "replayed" when the row was made from this very
// reception (the node stopped after the batch's commit, before the record
// was freed), "duplicate" only when a peer sent the instance again.
func TestWALReplayOutcome(t *testing.T) {
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		for i, tc := range []struct {
			name string
			// sentBefore: the instance was received and recorded before
			// (another reception of it).
			sentBefore bool
			// committed: the pending record's row was committed before
			// the crash, but the record was not freed.
			committed bool
			want      string
		}{
			{name: "not recorded before the crash", want: ingest.OutcomeStored},
			{name: "recorded before the crash", committed: true, want: ingest.OutcomeReplayed},
			{name: "sent again before the crash", sentBefore: true, want: ingest.OutcomeDuplicate},
			{name: "sent again and recorded before the crash", sentBefore: true, committed: true,
				want: ingest.OutcomeDuplicate},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				img := crashImage(100 + i)
				img.StudyInstanceUID = img.SOPInstanceUID + ".0"
				img.SeriesInstanceUID = img.SOPInstanceUID + ".0.1"
				dataDir := t.TempDir()
				if tc.sentBefore {
					sendStored(t, db, dataDir, img)
				}
				sendPending(t, db, dataDir, img)
				if tc.committed {
					// Crash after the commit: the record is materialised,
					// then the write-ahead spool is put back as it was.
					restore := snapshotWAL(t, filepath.Join(dataDir, "spool", ".wal"))
					b := setupWAL(t, db, dataDir, nil)
					require.Equal(t, 1, b.replayed)
					require.NoError(t, b.h.Flush(ctx))
					require.NoError(t, b.h.Close(ctx))
					restore()
				}
				var log outcomeLog
				b := setupWAL(t, db, dataDir, &ingest.Options{OnOutcome: log.add})
				require.Equal(t, 1, b.replayed)
				require.NoError(t, b.h.Flush(ctx))
				require.NoError(t, b.h.Close(ctx))
				require.Equal(t, []string{tc.want}, log.get())
				var rows int64
				require.NoError(t, db.Gorm.Model(&models.Instance{}).Where("sop_instance_uid = ?", img.SOPInstanceUID).
					Count(&rows).Error)
				require.Equal(t, int64(1), rows)
				require.Len(t, spoolFiles(t, b.spool), 1)
			})
		}
	})
}
