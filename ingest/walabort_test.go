package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/dicomnode/dimse"
	"github.com/cspine/cspine/dicomnode/services"
	"github.com/cspine/cspine/ingest"
	"github.com/cspine/cspine/store/storetest"
)

// Aborted streams (a broken association, bad input) give their segment
// back only once their own writes are done: with one segment, aborts of
// streams that filled several chunks alternate with instances stored
// whole, and every instance stored is recorded with exactly the bytes sent
// (a chunk of an aborted stream written after its segment went to the next
// instance would overwrite that instance's data).
func TestWALAbortRace(t *testing.T) {
	ctx := context.Background()
	db := storetest.SQLite(t, nil)
	b := setupWAL(t, db, t.TempDir(), &ingest.Options{WALSegmentSize: 4 << 20, WALMaxBytes: 4 << 20, WALSegments: 1})
	defer b.h.Close(ctx)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		junk := bytes.Repeat([]byte{0xAA}, 64<<10)
		for {
			select {
			case <-stop:
				return
			default:
			}
			s, err := b.h.BeginStore(ctx, &services.StoreRequest{SOPInstanceUID: "9.9"})
			if err != nil {
				continue
			}
			for range 4 {
				s.Write(junk)
			}
			s.Abort()
		}
	}()
	tmp := t.TempDir()
	const n = 30
	for i := range n {
		img := dicomnodetest.Image{SOPInstanceUID: fmt.Sprintf("1.2.8.%d", i), StudyInstanceUID: "1.2.8",
			SeriesInstanceUID: "1.2.8.1", Rows: 256, Columns: 256, Seed: i}
		_, err := streamIn(b.h, img, tmp)
		require.NoError(t, err)
	}
	close(stop)
	wg.Wait()
	require.NoError(t, b.h.Flush(ctx))
	bad := 0
	for i := range n {
		uid := fmt.Sprintf("1.2.8.%d", i)
		src, err := os.ReadFile(filepath.Join(tmp, uid+".dcm"))
		require.NoError(t, err)
		in, err := b.st.InstanceGetBySOPUID(ctx, uid)
		if err != nil {
			t.Errorf("%s answered success, not recorded: %v", uid, err)
			bad++
			continue
		}
		got, err := os.ReadFile(filepath.Join(b.dataDir, in.SpoolPath))
		require.NoError(t, err)
		if !bytes.Equal(src, got) {
			t.Errorf("%s recorded with other bytes than sent", uid)
			bad++
		}
	}
	require.Zero(t, bad, "instances recorded with other bytes than sent, or not at all")
}

// A segment whose records are all recorded while a writer holds it is
// reset when that writer aborts: its records are not replayed at the next
// start (they were, as duplicates, and a file removed by retention since
// could come back).
func TestWALAbortAfterDone(t *testing.T) {
	ctx := context.Background()
	db := storetest.SQLite(t, nil)
	dataDir := t.TempDir()
	opts := &ingest.Options{WALSegmentSize: 1 << 20, WALMaxBytes: 1 << 20, WALSegments: 1}
	b := setupWAL(t, db, dataDir, opts)
	st, err := stream(t, b.h, crashImage(1))
	require.NoError(t, err)
	require.Equal(t, dimse.StatusSuccess, st)
	s, err := b.h.BeginStore(ctx, &services.StoreRequest{SOPInstanceUID: "9.9"}) // the only segment
	require.NoError(t, err)
	require.NoError(t, b.h.Flush(ctx))
	s.Abort()
	require.NoError(t, b.h.Close(ctx))
	b2 := setupWAL(t, db, dataDir, opts)
	require.Zero(t, b2.replayed)
	require.NoError(t, b2.h.Close(ctx))
}
