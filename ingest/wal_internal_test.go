package ingest

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/dicomnode/services"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/store/storetest"
)

// internalBundle is a Handler with the write-ahead spool whose records
// the tests write and materialise themselves.
type internalBundle struct {
	h       *Handler
	st      *models.Store
	dataDir string
	mu      sync.Mutex
	out     []string
}

func setupInternal(t *testing.T, db *store.DB) *internalBundle {
	t.Helper()
	b := &internalBundle{st: models.NewStore(db.Gorm), dataDir: t.TempDir()}
	sp, err := services.NewSpoolStore(filepath.Join(b.dataDir, "spool"))
	require.NoError(t, err)
	b.h, err = New(b.st, sp, b.dataDir, &Options{WAL: true, WALSegmentSize: 4 << 20, Logger: slog.New(slog.DiscardHandler),
		OnOutcome: func(o string) { b.mu.Lock(); b.out = append(b.out, o); b.mu.Unlock() }})
	require.NoError(t, err)
	_, err = b.h.Start(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { b.h.Close(context.Background()) })
	return b
}

func (b *internalBundle) outcomes() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.out...)
}

// record writes img as a committed record that is not queued (the test
// materialises it).
func (b *internalBundle) record(t *testing.T, img dicomnodetest.Image) *walRecord {
	t.Helper()
	p := filepath.Join(t.TempDir(), "in.dcm")
	require.NoError(t, dicomnodetest.WriteImage(p, img))
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	seg, err := b.h.wal.acquire(time.Second)
	require.NoError(t, err)
	rw := b.h.wal.newRecordWriter(seg)
	for rest := data; len(rest) > 0; {
		k := min(len(rest), 3000)
		_, err := rw.Write(rest[:k])
		require.NoError(t, err)
		rest = rest[k:]
	}
	rec, end, err := rw.commit(&walRecordMeta{SOPClassUID: "1.2.840.10008.5.1.4.1.1.1", SOPInstanceUID: img.SOPInstanceUID,
		TransferSyntaxUID: "1.2.840.10008.1.2.1", CallingAETitle: "PACS", CalledAETitle: "CSPINE",
		Source: models.SourcePush, Received: time.Now()})
	rw.release()
	require.NoError(t, err)
	b.h.wal.mu.Lock()
	seg.held, seg.off = false, end
	b.h.wal.mu.Unlock()
	return rec
}

// Data that changed after it was answered success (here one byte, in the
// page cache of a small instance's segment and in a large instance's data
// file) is never recorded as the instance: its CRC-32C no longer matches
// the record's, so it is set aside in spool/.rejected with outcome
// "failed"; the other instances of the batch are recorded.
func TestWALMaterialiseChecksData(t *testing.T) {
	ctx := context.Background()
	b := setupInternal(t, storetest.SQLite(t, nil))
	img := func(i, rows int) dicomnodetest.Image {
		return dicomnodetest.Image{SOPInstanceUID: "1.2.7.1." + string(rune('0'+i)), StudyInstanceUID: "1.2.7",
			SeriesInstanceUID: "1.2.7.1", Rows: rows, Columns: rows, Seed: i}
	}
	good := b.record(t, img(1, 64))
	bad := b.record(t, img(2, 64))
	badExt := b.record(t, img(3, 800)) // 1.28 MB: its own data file
	require.NotEmpty(t, badExt.ext)
	_, err := bad.seg.f.WriteAt([]byte{0x5a}, bad.dataOff+bad.dataLen-10)
	require.NoError(t, err)
	f, err := os.OpenFile(badExt.ext, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte{0x5a}, badExt.dataLen-10)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	require.NoError(t, b.h.materialise(ctx, []*walRecord{good, bad, badExt}))
	require.Equal(t, []string{OutcomeStored, OutcomeFailed, OutcomeFailed}, b.outcomes())
	_, err = b.st.InstanceGetBySOPUID(ctx, good.meta.SOPInstanceUID)
	require.NoError(t, err)
	for _, r := range []*walRecord{bad, badExt} {
		_, err = b.st.InstanceGetBySOPUID(ctx, r.meta.SOPInstanceUID)
		require.ErrorIs(t, err, models.ErrNotFound)
		_, err = os.Stat(filepath.Join(b.h.spool.Dir, r.meta.SOPInstanceUID+".dcm"))
		require.ErrorIs(t, err, os.ErrNotExist, "set aside, not in the spool")
		_, err = os.Stat(filepath.Join(b.h.rejected.Dir, r.meta.SOPInstanceUID+".dcm"))
		require.NoError(t, err, "set aside in spool/.rejected")
	}
}

// An aborted stream gives its segment back only after its writer
// goroutine wrote what it was given: here that goroutine is held before
// its first chunk while the stream is aborted and the next instance is
// stored into the only segment; once it is let go, the instance stored
// must still be recorded with exactly the bytes sent (before, the stale
// chunk landed on its data after it was answered success).
func TestWALAbortDrainsWriter(t *testing.T) {
	ctx := context.Background()
	db := storetest.SQLite(t, nil)
	dataDir := t.TempDir()
	sp, err := services.NewSpoolStore(filepath.Join(dataDir, "spool"))
	require.NoError(t, err)
	st := models.NewStore(db.Gorm)
	h, err := New(st, sp, dataDir, &Options{WAL: true, WALSegmentSize: 4 << 20, WALMaxBytes: 4 << 20, WALSegments: 1,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	_, err = h.Start(ctx)
	require.NoError(t, err)
	defer h.Close(ctx)

	s, err := h.BeginStore(ctx, &services.StoreRequest{SOPInstanceUID: "9.9"})
	require.NoError(t, err)
	gate, held := make(chan struct{}), make(chan struct{}, 1)
	target := s.(*walStream).rw
	testBeforeChunkWrite = func(r *recordWriter) {
		if r == target {
			select {
			case held <- struct{}{}:
			default:
			}
			<-gate
		}
	}
	defer func() { testBeforeChunkWrite = nil }()
	_, err = s.Write(make([]byte, walChunk+100))
	require.NoError(t, err)
	<-held
	aborted := make(chan struct{})
	go func() { s.Abort(); close(aborted) }()

	img := dicomnodetest.Image{SOPInstanceUID: "1.2.8.1", StudyInstanceUID: "1.2.8", SeriesInstanceUID: "1.2.8.1",
		Rows: 256, Columns: 256}
	p := filepath.Join(t.TempDir(), "in.dcm")
	require.NoError(t, dicomnodetest.WriteImage(p, img))
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	stored := make(chan error, 1)
	go func() {
		s2, err := h.BeginStore(ctx, &services.StoreRequest{SOPInstanceUID: img.SOPInstanceUID})
		if err != nil {
			stored <- err
			return
		}
		if _, err := s2.Write(data); err != nil {
			s2.Abort()
			stored <- err
			return
		}
		_, n, err := services.ReadFileMeta(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			stored <- err
			return
		}
		req := &services.StoreRequest{SOPClassUID: "1.2.840.10008.5.1.4.1.1.1", SOPInstanceUID: img.SOPInstanceUID,
			TransferSyntaxUID: "1.2.840.10008.1.2.1", Received: time.Now(), DataSetSize: int64(len(data)) - n,
			Head: data[n:]}
		_, err = s2.Commit(ctx, req)
		stored <- err
	}()
	time.Sleep(300 * time.Millisecond) // without the drain, the instance is stored by now
	close(gate)
	<-aborted
	require.NoError(t, <-stored)
	require.NoError(t, h.Flush(ctx))
	// Its record (the first in the segment: the aborted one committed
	// nothing) still holds its bytes. (The materialiser may have read them
	// before the stale chunk landed; the record is what a replay reads.)
	seg, err := os.ReadFile(filepath.Join(h.WALDir(), "seg-0000"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, seg[2*walPage:2*walPage+len(data)]),
		"the record of the instance stored was overwritten by the aborted stream")
	in, err := st.InstanceGetBySOPUID(ctx, img.SOPInstanceUID)
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join(dataDir, in.SpoolPath))
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got), "the instance stored was overwritten by the aborted stream")
}
