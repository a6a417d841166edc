package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/dicomnode/dimse"
	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/store/storetest"
)

// Header strings that are not UTF-8 (a Latin-1 name in a file that names
// no character set) or hold NUL bytes are recorded, read as ISO 8859-1
// and without the NULs, on both paths; PostgreSQL refuses them as they
// are, which through the write-ahead spool once refused every instance
// after them and kept the node from starting.
func TestStoreNotUTF8(t *testing.T) {
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		b := setupWAL(t, db, t.TempDir(), nil)
		defer b.h.Close(ctx)
		bad := crashImage(1)
		bad.PatientName = "Ren\xe9e^X"
		bad.PatientID = "P\x001"
		st, err := stream(t, b.h, bad)
		require.NoError(t, err)
		require.Equal(t, dimse.StatusSuccess, st)
		st, err = stream(t, b.h, crashImage(2))
		require.NoError(t, err)
		require.Equal(t, dimse.StatusSuccess, st)
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		require.NoError(t, b.h.Flush(fctx))
		for _, i := range []int{1, 2} {
			_, err := b.st.InstanceGetBySOPUID(ctx, crashImage(i).SOPInstanceUID)
			require.NoError(t, err)
		}
		study, err := b.st.StudyGetByUID(ctx, bad.StudyInstanceUID)
		require.NoError(t, err)
		require.Equal(t, "Renée^X", study.PatientName)
		require.Equal(t, "P1", study.PatientID)

		// Without the write-ahead spool (HandleStore).
		s := setupB(t, db)
		other := dicomnodetest.Image{SOPInstanceUID: "1.2.9.2.1", StudyInstanceUID: "1.2.9.2", SeriesInstanceUID: "1.2.9.2.1",
			PatientName: "M\xfcller^\xc5sa"}
		req := s.receive(t, other)
		st, err = s.h.HandleStore(ctx, req)
		require.NoError(t, err)
		require.Equal(t, dimse.StatusSuccess, st)
		study, err = s.st.StudyGetByUID(ctx, other.StudyInstanceUID)
		require.NoError(t, err)
		require.Equal(t, "Müller^Åsa", study.PatientName)
	})
}
