package ingest_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/dicomnode"
	"github.com/cspine/cspine/dicomnode/association"
	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/dicomnode/dimse"
	"github.com/cspine/cspine/ingest"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/store/storetest"
)

// TestWALDiskFull: the data directory (write-ahead spool and spool) is a
// small tmpfs that fills while instances arrive through the node. C-STOREs
// that cannot be kept are answered A700; once space is freed, every
// instance answered success gets its row and its complete file, and none
// answered A700 is kept. The test re-executes itself under `unshare -rm`
// (user and mount namespaces) to mount the tmpfs without privileges.
func TestWALDiskFull(t *testing.T) {
	if !dicomnodetest.InMountNamespace(t, "CSPINE_WAL_DISKFULL_CHILD", "refused with A700") {
		return
	}
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		dataDir := t.TempDir()
		dicomnodetest.MountTmpfs(t, dataDir, "1m")
		b := setupWAL(t, db, dataDir, &ingest.Options{WALSegmentSize: 256 << 10, WALSegments: 1})
		defer b.h.Close(ctx)
		n, err := dicomnode.New(dicomnode.Config{AETitles: []string{"CSPINE"}, Logger: discard()}, b.h)
		require.NoError(t, err)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		go n.Serve(ctx, ln)
		defer n.Shutdown(ctx)

		src := t.TempDir()
		files, err := dicomnodetest.WriteSeries(src, "1.2.826.0.1.3680043.10.1999.77", 24, 128, 128) // ~33 KiB each
		require.NoError(t, err)
		// Leave room for a few instances only.
		filler := filepath.Join(dataDir, "filler")
		require.NoError(t, os.WriteFile(filler, make([]byte, 440<<10), 0o600))
		c, err := dicomnode.Dial(ctx, ln.Addr().String(), dicomnode.DialOpts{CallingAETitle: "SCU", CalledAETitle: "CSPINE",
			Contexts: dicomnode.StorageContexts(map[string][]string{association.CRImageStorage: {association.ExplicitVRLittleEndian}})})
		require.NoError(t, err)
		status := map[string]dimse.Status{}
		ok, full := 0, 0
		for i, f := range files {
			st, err := c.StoreFile(ctx, f)
			require.NoError(t, err, "store %d", i)
			status[f] = st
			switch st {
			case dimse.StatusSuccess:
				ok++
			case dimse.StatusOutOfResources:
				full++
			default:
				t.Fatalf("store %d: status %v", i, st)
			}
			time.Sleep(5 * time.Millisecond) // let the materialiser run into the full disk
		}
		c.Release(ctx)
		require.True(t, ok > 0 && full > 0, "%d stored, %d refused: the test did not reach a full disk", ok, full)
		t.Logf("%d stored, %d refused with A700", ok, full)

		// Space again: whatever was answered success is recorded, whole.
		require.NoError(t, os.Remove(filler))
		fctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		require.NoError(t, b.h.Flush(fctx))
		for f, st := range status {
			hd, err := ingest.ReadHeader(f)
			require.NoError(t, err)
			in, err := b.st.InstanceGetBySOPUID(ctx, hd.SOPInstanceUID)
			if st != dimse.StatusSuccess {
				require.ErrorIs(t, err, models.ErrNotFound, "%s answered A700 but recorded", hd.SOPInstanceUID)
				_, err := os.Stat(filepath.Join(b.spool, hd.SOPInstanceUID+".dcm"))
				require.ErrorIs(t, err, os.ErrNotExist, "%s answered A700 but kept", hd.SOPInstanceUID)
				continue
			}
			require.NoError(t, err, "%s answered success but not recorded", hd.SOPInstanceUID)
			require.Equal(t, dataSet(t, f), dataSet(t, filepath.Join(dataDir, in.SpoolPath)))
		}
		require.Len(t, spoolFiles(t, b.spool), ok)
		ents, err := os.ReadDir(b.h.TempDir())
		require.NoError(t, err)
		require.Empty(t, ents, "temporary files left")
	})
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
