package ingest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store/storetest"
)

// An instance answered success whose row the database refuses (here a
// check constraint on its patient name) is set aside in spool/.rejected
// with outcome "failed"; the other instances of its batch are recorded.
// A database that fails (here a missing table) sets nothing aside: the
// batch is tried again later.
func TestWALSetAside(t *testing.T) {
	ctx := context.Background()
	db := storetest.Postgres(t, nil)
	b := setupInternal(t, db)
	require.NoError(t, db.Gorm.Exec(`ALTER TABLE studies ADD CONSTRAINT poison CHECK (patient_name <> 'POISON^X')`).Error)
	img := func(i int, name string) dicomnodetest.Image {
		return dicomnodetest.Image{SOPInstanceUID: "1.2.6.1." + string(rune('0'+i)), StudyInstanceUID: "1.2.6." + string(rune('0'+i)),
			SeriesInstanceUID: "1.2.6.1" + string(rune('0'+i)), PatientName: name, Seed: i}
	}
	recs := []*walRecord{b.record(t, img(1, "A^B")), b.record(t, img(2, "POISON^X")), b.record(t, img(3, "C^D"))}
	require.NoError(t, b.h.materialise(ctx, recs))
	require.Equal(t, []string{OutcomeStored, OutcomeFailed, OutcomeStored}, b.outcomes())
	for i, r := range recs {
		_, err := b.st.InstanceGetBySOPUID(ctx, r.meta.SOPInstanceUID)
		_, serr := os.Stat(filepath.Join(b.h.spool.Dir, r.meta.SOPInstanceUID+".dcm"))
		_, rerr := os.Stat(filepath.Join(b.h.rejected.Dir, r.meta.SOPInstanceUID+".dcm"))
		if i == 1 {
			require.ErrorIs(t, err, models.ErrNotFound)
			require.ErrorIs(t, serr, os.ErrNotExist)
			require.NoError(t, rerr)
			continue
		}
		require.NoError(t, err)
		require.NoError(t, serr)
		require.ErrorIs(t, rerr, os.ErrNotExist)
	}

	require.NoError(t, db.Gorm.Exec("ALTER TABLE instances RENAME TO instances_away").Error)
	r4, r5 := b.record(t, img(4, "E^F")), b.record(t, img(5, "G^H"))
	require.Error(t, b.h.materialise(ctx, []*walRecord{r4, r5}))
	require.Error(t, b.h.materialise(ctx, []*walRecord{r4}))
	for _, r := range []*walRecord{r4, r5} {
		_, err := os.Stat(filepath.Join(b.h.rejected.Dir, r.meta.SOPInstanceUID+".dcm"))
		require.ErrorIs(t, err, os.ErrNotExist, "set aside while the database fails")
	}
	require.NoError(t, db.Gorm.Exec("ALTER TABLE instances_away RENAME TO instances").Error)
	require.NoError(t, b.h.materialise(ctx, []*walRecord{r4, r5}))
	for _, r := range []*walRecord{r4, r5} {
		_, err := b.st.InstanceGetBySOPUID(ctx, r.meta.SOPInstanceUID)
		require.NoError(t, err)
	}
}
