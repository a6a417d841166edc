package ingest_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
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

type testBundle struct {
	h       *ingest.Handler
	st      *models.Store
	db      *store.DB
	dataDir string
	spool   string
	// replayed: records Start found in the write-ahead spool.
	replayed int
}

func setup(t *testing.T, db *store.DB) *testBundle { return setupB(t, db) }

type servicesRequest = services.StoreRequest

func setupB(t testing.TB, db *store.DB) *testBundle {
	t.Helper()
	dataDir := t.TempDir()
	sp, err := services.NewSpoolStore(filepath.Join(dataDir, "spool"))
	require.NoError(t, err)
	st := models.NewStore(db.Gorm)
	h, err := ingest.New(st, sp, dataDir, nil)
	require.NoError(t, err)
	return &testBundle{h: h, st: st, db: db, dataDir: dataDir, spool: sp.Dir}
}

// receive writes img into the handler's incoming directory as the service
// layer does and returns the request.
func (b *testBundle) receive(t *testing.T, img dicomnodetest.Image) *services.StoreRequest {
	return b.receiveB(t, img)
}

func (b *testBundle) receiveB(t testing.TB, img dicomnodetest.Image) *services.StoreRequest {
	t.Helper()
	f, err := os.CreateTemp(b.h.TempDir(), "in-*.dcm")
	require.NoError(t, err)
	f.Close()
	require.NoError(t, dicomnodetest.WriteImage(f.Name(), img))
	return &services.StoreRequest{
		SOPClassUID: "1.2.840.10008.5.1.4.1.1.1", SOPInstanceUID: img.SOPInstanceUID,
		TransferSyntaxUID: "1.2.840.10008.1.2.1", CallingAETitle: "PACS", CalledAETitle: "CSPINE",
		RemoteAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4242}, Path: f.Name(), Received: time.Now(),
	}
}

func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.dcm"))
	require.NoError(t, err)
	return m
}

func TestHandleStore(t *testing.T) {
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		b := setup(t, db)
		img := dicomnodetest.Image{SOPInstanceUID: "1.2.3.4.1", StudyInstanceUID: "1.2.3", SeriesInstanceUID: "1.2.3.4",
			PatientID: "P1", PatientName: "Doe^Jane", Rows: 32, Columns: 32}

		st, err := b.h.HandleStore(ctx, b.receive(t, img))
		require.NoError(t, err)
		require.Equal(t, dimse.StatusSuccess, st)

		in, err := b.st.InstanceGetBySOPUID(ctx, "1.2.3.4.1")
		require.NoError(t, err)
		require.Equal(t, models.InstanceReceived, in.State)
		require.Equal(t, "spool/1.2.3.4.1.dcm", in.SpoolPath)
		require.Len(t, in.SHA256, 64)
		require.Equal(t, 32, in.ImageRows)
		require.Equal(t, "PACS", in.CallingAETitle)
		fi, err := os.Stat(filepath.Join(b.dataDir, in.SpoolPath))
		require.NoError(t, err)
		require.Equal(t, fi.Size(), in.SizeBytes)
		study, err := b.st.StudyGetByUID(ctx, "1.2.3")
		require.NoError(t, err)
		require.Equal(t, 1, study.InstanceCount)
		require.Equal(t, "PACS", study.CallingAETitle)
		require.Equal(t, models.StudyReceiving, study.State)

		// The same instance again: success, no second row, no second file.
		st, err = b.h.HandleStore(ctx, b.receive(t, img))
		require.NoError(t, err)
		require.Equal(t, dimse.StatusSuccess, st)
		study, err = b.st.StudyGetByUID(ctx, "1.2.3")
		require.NoError(t, err)
		require.Equal(t, 1, study.InstanceCount)
		require.Len(t, spoolFiles(t, b.spool), 1)

		// Same UID, different content: kept beside the first, not recorded.
		v := img
		v.Seed = 7
		st, err = b.h.HandleStore(ctx, b.receive(t, v))
		require.NoError(t, err)
		require.Equal(t, dimse.StatusSuccess, st)
		require.Len(t, spoolFiles(t, b.spool), 2)
		study, err = b.st.StudyGetByUID(ctx, "1.2.3")
		require.NoError(t, err)
		require.Equal(t, 1, study.InstanceCount)
	})
}

// A database failure answers A700 and leaves no file in the spool; a later
// re-send is stored normally.
func TestHandleStoreDatabaseDown(t *testing.T) {
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		b := setup(t, db)
		img := dicomnodetest.Image{SOPInstanceUID: "1.2.3.4.9", StudyInstanceUID: "1.2.3", SeriesInstanceUID: "1.2.3.4"}
		// Break the database: the instances table is gone.
		require.NoError(t, db.Gorm.Exec("ALTER TABLE instances RENAME TO instances_away").Error)
		st, err := b.h.HandleStore(ctx, b.receive(t, img))
		require.Error(t, err)
		require.Equal(t, dimse.StatusOutOfResources, st)
		require.Empty(t, spoolFiles(t, b.spool))
		require.NoError(t, db.Gorm.Exec("ALTER TABLE instances_away RENAME TO instances").Error)

		st, err = b.h.HandleStore(ctx, b.receive(t, img))
		require.NoError(t, err)
		require.Equal(t, dimse.StatusSuccess, st)
		require.Len(t, spoolFiles(t, b.spool), 1)
	})
}

// A file kept by an attempt whose row never committed (crash in between)
// is recorded when the instance comes again.
func TestHandleStoreRecoversUnrecordedFile(t *testing.T) {
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		b := setup(t, db)
		img := dicomnodetest.Image{SOPInstanceUID: "1.2.3.4.5", StudyInstanceUID: "1.2.3", SeriesInstanceUID: "1.2.3.4"}
		require.NoError(t, dicomnodetest.WriteImage(filepath.Join(b.spool, "1.2.3.4.5.dcm"), img))
		st, err := b.h.HandleStore(ctx, b.receive(t, img))
		require.NoError(t, err)
		require.Equal(t, dimse.StatusSuccess, st)
		_, err = b.st.InstanceGetBySOPUID(ctx, "1.2.3.4.5")
		require.NoError(t, err)
		require.Len(t, spoolFiles(t, b.spool), 1)
	})
}

func TestHandleStoreNotDICOM(t *testing.T) {
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		b := setup(t, db)
		p := filepath.Join(b.h.TempDir(), "junk.dcm")
		require.NoError(t, os.WriteFile(p, []byte("not dicom at all"), 0o600))
		st, err := b.h.HandleStore(context.Background(), &services.StoreRequest{SOPInstanceUID: "1.2", Path: p})
		require.Error(t, err)
		require.Equal(t, dimse.StatusCannotUnderstand, st)
		require.Empty(t, spoolFiles(t, b.spool))
	})
}

func TestCleanIncoming(t *testing.T) {
	b := setup(t, storetest.SQLite(t, nil))
	require.NoError(t, os.WriteFile(filepath.Join(b.h.TempDir(), "partial-1"), []byte("half"), 0o600))
	n, err := b.h.CleanIncoming()
	require.NoError(t, err)
	require.Equal(t, 1, n)
	es, err := os.ReadDir(b.h.TempDir())
	require.NoError(t, err)
	require.Empty(t, es)
}
