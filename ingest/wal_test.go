package ingest_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/dicomnode/dimse"
	"github.com/cspine/cspine/dicomnode/services"
	"github.com/cspine/cspine/ingest"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/store/storetest"
)

// walBundle is a Handler with the write-ahead spool on dataDir.
func setupWAL(t testing.TB, db *store.DB, dataDir string, opts *ingest.Options) *testBundle {
	t.Helper()
	sp, err := services.NewSpoolStore(filepath.Join(dataDir, "spool"))
	require.NoError(t, err)
	st := models.NewStore(db.Gorm)
	var o ingest.Options
	if opts != nil {
		o = *opts
	}
	o.WAL = true
	if o.WALSegmentSize == 0 {
		o.WALSegmentSize = 1 << 20
	}
	h, err := ingest.New(st, sp, dataDir, &o)
	require.NoError(t, err)
	n, err := h.Start(context.Background())
	require.NoError(t, err)
	return &testBundle{h: h, st: st, db: db, dataDir: dataDir, spool: sp.Dir, replayed: n}
}

// dataSet returns the data set of a Part-10 file (after its file meta).
func dataSet(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	_, n, err := services.ReadFileMeta(bufio.NewReader(bytes.NewReader(b)))
	require.NoError(t, err)
	return b[n:]
}

// stream sends img through the handler's StoreStream as the DICOM server
// does, and returns the answer.
func stream(t testing.TB, h *ingest.Handler, img dicomnodetest.Image) (dimse.Status, error) {
	t.Helper()
	st, err := streamIn(h, img, t.TempDir())
	require.NotErrorIs(t, err, errSetup)
	return st, err
}

var errSetup = errors.New("test setup")

func streamIn(h *ingest.Handler, img dicomnodetest.Image, tmp string) (dimse.Status, error) {
	p := filepath.Join(tmp, img.SOPInstanceUID+".dcm")
	if err := dicomnodetest.WriteImage(p, img); err != nil {
		return 0, fmt.Errorf("%w: %v", errSetup, err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errSetup, err)
	}
	return streamBytes(h, img.SOPInstanceUID, b)
}

// streamBytes sends the Part-10 file b of SOP instance uid.
func streamBytes(h *ingest.Handler, uid string, b []byte) (dimse.Status, error) {
	_, n, err := services.ReadFileMeta(bufio.NewReader(bytes.NewReader(b)))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errSetup, err)
	}
	req := &services.StoreRequest{
		SOPClassUID: "1.2.840.10008.5.1.4.1.1.1", SOPInstanceUID: uid,
		TransferSyntaxUID: "1.2.840.10008.1.2.1", CallingAETitle: "PACS", CalledAETitle: "CSPINE",
		RemoteAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4242}, Received: time.Now(),
	}
	s, err := h.BeginStore(context.Background(), req)
	if err != nil {
		return dimse.StatusOutOfResources, err
	}
	// In pieces, as PDVs arrive.
	for rest := b; len(rest) > 0; {
		k := min(len(rest), 3000)
		if _, err := s.Write(rest[:k]); err != nil {
			s.Abort()
			return dimse.StatusOutOfResources, err
		}
		rest = rest[k:]
	}
	ds := b[n:]
	req.DataSetSize, req.Head = int64(len(ds)), ds[:min(len(ds), 64<<10)]
	return s.Commit(context.Background(), req)
}

func TestWALStore(t *testing.T) {
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		var outcomes []string
		b := setupWAL(t, db, t.TempDir(), &ingest.Options{OnOutcome: func(o string) { outcomes = append(outcomes, o) }})
		defer b.h.Close(ctx)
		img := dicomnodetest.Image{SOPInstanceUID: "1.2.3.4.1", StudyInstanceUID: "1.2.3", SeriesInstanceUID: "1.2.3.4",
			PatientID: "P1", PatientName: "Doe^Jane", Rows: 32, Columns: 32}
		// The same instance twice, and once with other content, before
		// anything is materialised (the materialiser may or may not have
		// started: the outcome must be the same).
		for _, im := range []dicomnodetest.Image{img, img, {SOPInstanceUID: "1.2.3.4.1", StudyInstanceUID: "1.2.3",
			SeriesInstanceUID: "1.2.3.4", PatientID: "P1", PatientName: "Doe^Jane", Rows: 32, Columns: 32, Seed: 7}} {
			st, err := stream(t, b.h, im)
			require.NoError(t, err)
			require.Equal(t, dimse.StatusSuccess, st)
		}
		require.NoError(t, b.h.Flush(ctx))
		require.Equal(t, []string{ingest.OutcomeStored, ingest.OutcomeDuplicate, ingest.OutcomeVariant}, outcomes)

		in, err := b.st.InstanceGetBySOPUID(ctx, "1.2.3.4.1")
		require.NoError(t, err)
		require.Equal(t, models.InstanceReceived, in.State)
		require.Equal(t, "spool/1.2.3.4.1.dcm", in.SpoolPath)
		require.Equal(t, "PACS", in.CallingAETitle)
		require.Equal(t, "CSPINE", in.CalledAETitle)
		require.Equal(t, "127.0.0.1:4242", in.PeerAddress)
		require.Equal(t, 32, in.ImageRows)
		hd, err := ingest.ReadHeader(filepath.Join(b.dataDir, in.SpoolPath))
		require.NoError(t, err)
		require.Equal(t, hd.SHA256, in.SHA256)
		require.Equal(t, hd.Size, in.SizeBytes)
		study, err := b.st.StudyGetByUID(ctx, "1.2.3")
		require.NoError(t, err)
		require.Equal(t, 1, study.InstanceCount)
		require.Equal(t, models.SourcePush, study.Source)
		require.Len(t, spoolFiles(t, b.spool), 2)
	})
}

// The write-ahead spool survives a crash: a child process (this test
// binary, re-run) answers instances success while its database cannot
// record them, then exits without closing anything. A new handler on the
// same data directory replays them: every instance answered success has
// its row and its file, with the content that was sent.
func TestWALReplayAfterCrash(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			var dsn string
			if dialect == store.Postgres {
				dsn, _ = storetest.CreatePostgresDB(t)
			} else {
				dsn = storetest.SQLiteDSN(t)
			}
			db := storetest.Open(t, dsn, nil)
			dataDir := t.TempDir()
			// The child's materialiser fails: nothing gets a row.
			require.NoError(t, db.Gorm.Exec("ALTER TABLE instances RENAME TO instances_away").Error)
			cmd := exec.Command(os.Args[0], "-test.run", "^$")
			cmd.Env = append(os.Environ(), "CSPINE_WAL_CHILD=1", "CSPINE_WAL_DSN="+dsn, "CSPINE_WAL_DIR="+dataDir)
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			var accepted []string
			for _, l := range strings.Split(string(out), "\n") {
				if uid, ok := strings.CutPrefix(l, "accepted "); ok {
					accepted = append(accepted, uid)
				}
			}
			require.NotEmpty(t, accepted, "%s", out)
			require.NoError(t, db.Gorm.Exec("ALTER TABLE instances_away RENAME TO instances").Error)
			var rows int64
			require.NoError(t, db.Gorm.Model(&models.Instance{}).Count(&rows).Error)
			require.Zero(t, rows)

			b := setupWAL(t, db, dataDir, nil)
			require.Equal(t, len(accepted), b.replayed)
			require.NoError(t, b.h.Flush(ctx))
			require.NoError(t, db.Gorm.Model(&models.Instance{}).Count(&rows).Error)
			require.Equal(t, int64(len(accepted)), rows)
			for _, uid := range accepted {
				in, err := b.st.InstanceGetBySOPUID(ctx, uid)
				require.NoError(t, err)
				require.Equal(t, "PACS", in.CallingAETitle)
				i, _ := strconv.Atoi(uid[strings.LastIndexByte(uid, '.')+1:])
				want := filepath.Join(t.TempDir(), "want.dcm")
				require.NoError(t, dicomnodetest.WriteImage(want, crashImage(i)))
				got, err := ingest.ReadHeader(filepath.Join(dataDir, in.SpoolPath))
				require.NoError(t, err)
				require.Equal(t, in.SHA256, got.SHA256)
				// The data set sent (the file meta differs: ours names the caller).
				require.Equal(t, dataSet(t, want), dataSet(t, filepath.Join(dataDir, in.SpoolPath)))
			}
			require.Len(t, spoolFiles(t, b.spool), len(accepted))
			require.NoError(t, b.h.Close(ctx))
		})
	}
}

func crashImage(i int) dicomnodetest.Image {
	return dicomnodetest.Image{SOPInstanceUID: fmt.Sprintf("1.2.9.1.%d", i), StudyInstanceUID: "1.2.9",
		SeriesInstanceUID: "1.2.9.1", Rows: 64, Columns: 64, Seed: i}
}

// walChild is the child of TestWALReplayAfterCrash.
func walChild() int {
	ctx := context.Background()
	db, err := store.Open(ctx, os.Getenv("CSPINE_WAL_DSN"), &store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	dataDir := os.Getenv("CSPINE_WAL_DIR")
	sp, err := services.NewSpoolStore(filepath.Join(dataDir, "spool"))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	h, err := ingest.New(models.NewStore(db.Gorm), sp, dataDir, &ingest.Options{WAL: true, WALSegmentSize: 1 << 20,
		Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		_, err = h.Start(ctx)
	}
	if err != nil {
		fmt.Println(err)
		return 1
	}
	tmp, _ := os.MkdirTemp("", "walchild")
	defer os.RemoveAll(tmp)
	for i := range 20 {
		img := crashImage(i)
		st, err := streamIn(h, img, tmp)
		if errors.Is(err, errSetup) {
			fmt.Println(err)
			return 1
		}
		if err == nil && st == dimse.StatusSuccess {
			fmt.Println("accepted", img.SOPInstanceUID)
		}
	}
	return 0 // no Close: as if the process died here
}

func TestMain(m *testing.M) {
	if os.Getenv("CSPINE_WAL_CHILD") != "" {
		os.Exit(walChild())
	}
	os.Exit(m.Run())
}

// Records are verified when replayed: one whose data was not completely
// written (a torn write, here one changed byte) is not replayed, and
// neither is anything after it; a segment file whose header was never
// written is made anew.
func TestWALReplayVerifies(t *testing.T) {
	ctx := context.Background()
	db := storetest.SQLite(t, nil)
	dataDir := t.TempDir()
	require.NoError(t, db.Gorm.Exec("ALTER TABLE instances RENAME TO instances_away").Error)
	b := setupWAL(t, db, dataDir, nil)
	st, err := stream(t, b.h, crashImage(1))
	require.NoError(t, err)
	require.Equal(t, dimse.StatusSuccess, st)
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	require.Error(t, b.h.Close(cctx)) // the record cannot be materialised: it stays
	// The record is in the first segment (seg-0000, made first by Start).
	seg0 := filepath.Join(b.h.WALDir(), "seg-0000")
	// A segment file left half made by a crash.
	require.NoError(t, os.WriteFile(filepath.Join(b.h.WALDir(), "seg-0007"), []byte("half"), 0o600))

	// Intact: replayed.
	b2 := setupWAL(t, db, dataDir, nil)
	require.Equal(t, 1, b2.replayed)
	require.Error(t, b2.h.Close(cctx))

	// One byte of the data changed: not replayed.
	f, err := os.OpenFile(seg0, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte{0x5a}, 2*4096+1000)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, db.Gorm.Exec("ALTER TABLE instances_away RENAME TO instances").Error)
	b3 := setupWAL(t, db, dataDir, nil)
	require.Zero(t, b3.replayed)
	// The half-made segment was made anew and takes records.
	fi, err := os.Stat(filepath.Join(b3.h.WALDir(), "seg-0007"))
	require.NoError(t, err)
	require.Equal(t, int64(1<<20), fi.Size())
	for i := 2; i < 40; i++ {
		st, err := stream(t, b3.h, crashImage(i))
		require.NoError(t, err)
		require.Equal(t, dimse.StatusSuccess, st)
	}
	require.NoError(t, b3.h.Flush(ctx))
	var rows int64
	require.NoError(t, db.Gorm.Model(&models.Instance{}).Count(&rows).Error)
	require.Equal(t, int64(38), rows)
	require.NoError(t, b3.h.Close(ctx))
}

// A data set that does not arrive completely (the association broke) is
// aborted: nothing is recorded and its segment takes the next instance.
func TestWALAbort(t *testing.T) {
	ctx := context.Background()
	db := storetest.SQLite(t, nil)
	b := setupWAL(t, db, t.TempDir(), nil)
	defer b.h.Close(ctx)
	for i := range 3 {
		s, err := b.h.BeginStore(ctx, &services.StoreRequest{SOPInstanceUID: fmt.Sprintf("1.2.9.1.%d", i)})
		require.NoError(t, err)
		_, err = s.Write(make([]byte, 100<<10))
		require.NoError(t, err)
		s.Abort()
	}
	st, err := stream(t, b.h, crashImage(7))
	require.NoError(t, err)
	require.Equal(t, dimse.StatusSuccess, st)
	require.NoError(t, b.h.Flush(ctx))
	var rows int64
	require.NoError(t, db.Gorm.Model(&models.Instance{}).Count(&rows).Error)
	require.Equal(t, int64(1), rows)
	_, err = b.st.InstanceGetBySOPUID(ctx, "1.2.9.1.7")
	require.NoError(t, err)
	require.Len(t, spoolFiles(t, b.spool), 1)
}

// Several associations at once: each writes into its own segment; every
// instance is recorded once.
func TestWALConcurrent(t *testing.T) {
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		b := setupWAL(t, db, t.TempDir(), &ingest.Options{WALSegmentSize: 256 << 10, WALSegments: 2})
		const assocs, each = 4, 30
		errs := make(chan error, assocs*each)
		var wg sync.WaitGroup
		for a := range assocs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tmp := t.TempDir()
				for i := range each {
					img := crashImage(a*1000 + i)
					img.StudyInstanceUID = fmt.Sprintf("1.2.9.%d", a)
					img.SeriesInstanceUID = fmt.Sprintf("1.2.9.%d.1", a)
					st, err := streamIn(b.h, img, tmp)
					if err == nil && st != dimse.StatusSuccess {
						err = fmt.Errorf("status %v", st)
					}
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.NoError(t, b.h.Flush(ctx))
		var rows int64
		require.NoError(t, db.Gorm.Model(&models.Instance{}).Count(&rows).Error)
		require.Equal(t, int64(assocs*each), rows)
		for a := range assocs {
			st, err := b.st.StudyGetByUID(ctx, fmt.Sprintf("1.2.9.%d", a))
			require.NoError(t, err)
			require.Equal(t, each, st.InstanceCount)
		}
		require.Len(t, spoolFiles(t, b.spool), assocs*each)
		require.NoError(t, b.h.Close(ctx))
	})
}

// Large instances (over 1 MiB) go to their own data file in the
// write-ahead spool, named by the record: replayed after a crash, linked
// into the spool as they are, removed once recorded (a replayed record
// whose data file is gone is skipped, the records after it are not); a
// data file no valid record names is removed at start.
func TestWALLarge(t *testing.T) {
	ctx := context.Background()
	db := storetest.SQLite(t, nil)
	dataDir := t.TempDir()
	large := func(i int) dicomnodetest.Image {
		img := crashImage(i)
		img.Rows, img.Columns = 1600, 1600 // 5.1 MB
		return img
	}
	require.NoError(t, db.Gorm.Exec("ALTER TABLE instances RENAME TO instances_away").Error)
	b := setupWAL(t, db, dataDir, nil)
	st, err := stream(t, b.h, large(1))
	require.NoError(t, err)
	require.Equal(t, dimse.StatusSuccess, st)
	exts, err := filepath.Glob(filepath.Join(b.h.WALDir(), "ext-*.dcm"))
	require.NoError(t, err)
	require.Len(t, exts, 1)
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	require.Error(t, b.h.Close(cctx)) // not recorded: stays in the write-ahead spool
	require.NoError(t, os.WriteFile(filepath.Join(b.h.WALDir(), "ext-999.dcm"), []byte("orphan"), 0o600))
	require.NoError(t, db.Gorm.Exec("ALTER TABLE instances_away RENAME TO instances").Error)

	b2 := setupWAL(t, db, dataDir, nil)
	require.Equal(t, 1, b2.replayed)
	_, err = os.Stat(filepath.Join(b2.h.WALDir(), "ext-999.dcm"))
	require.ErrorIs(t, err, os.ErrNotExist)
	for _, img := range []dicomnodetest.Image{large(2), crashImage(3)} {
		st, err := stream(t, b2.h, img)
		require.NoError(t, err)
		require.Equal(t, dimse.StatusSuccess, st)
	}
	require.NoError(t, b2.h.Flush(ctx))
	for _, img := range []dicomnodetest.Image{large(1), large(2), crashImage(3)} {
		in, err := b2.st.InstanceGetBySOPUID(ctx, img.SOPInstanceUID)
		require.NoError(t, err)
		want := filepath.Join(t.TempDir(), "want.dcm")
		require.NoError(t, dicomnodetest.WriteImage(want, img))
		require.Equal(t, dataSet(t, want), dataSet(t, filepath.Join(dataDir, in.SpoolPath)))
		got, err := ingest.ReadHeader(filepath.Join(dataDir, in.SpoolPath))
		require.NoError(t, err)
		require.Equal(t, in.SHA256, got.SHA256)
	}
	require.NoError(t, b2.h.Close(ctx))
	// Every record done: the data files are removed.
	exts, err = filepath.Glob(filepath.Join(b2.h.WALDir(), "ext-*.dcm"))
	require.NoError(t, err)
	require.Empty(t, exts)
	require.Len(t, spoolFiles(t, b2.spool), 3)

	// A record whose data file is gone (done before a crash) does not end
	// the replay: the one after it is replayed.
	require.NoError(t, db.Gorm.Exec("ALTER TABLE instances RENAME TO instances_away").Error)
	b3 := setupWAL(t, db, dataDir, &ingest.Options{WALSegments: 1})
	for _, img := range []dicomnodetest.Image{large(4), crashImage(5)} {
		st, err := stream(t, b3.h, img)
		require.NoError(t, err)
		require.Equal(t, dimse.StatusSuccess, st)
	}
	require.Error(t, b3.h.Close(cctx))
	exts, err = filepath.Glob(filepath.Join(b3.h.WALDir(), "ext-*.dcm"))
	require.NoError(t, err)
	require.Len(t, exts, 1)
	require.NoError(t, os.Remove(exts[0]))
	require.NoError(t, db.Gorm.Exec("ALTER TABLE instances_away RENAME TO instances").Error)
	b4 := setupWAL(t, db, dataDir, nil)
	require.Equal(t, 1, b4.replayed)
	require.NoError(t, b4.h.Flush(ctx))
	_, err = b4.st.InstanceGetBySOPUID(ctx, crashImage(5).SOPInstanceUID)
	require.NoError(t, err)
	require.NoError(t, b4.h.Close(ctx))
}
