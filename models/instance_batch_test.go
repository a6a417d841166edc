package models_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/store/storetest"
)

// InstanceRecordBatch has the effect of InstanceRecord called for each
// instance in order: same studies, series, instances and study
// bookkeeping; known and repeated UIDs are ErrAlreadyExists; a series of
// another study fails that instance alone.
func TestInstanceRecordBatch(t *testing.T) {
	t.Parallel()
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		b := setup(t, db)
		t0 := time.Date(2026, 1, 1, 10, 0, 0, 123456789, time.UTC)
		first, err := b.s.InstanceRecord(b.ctx, recordParams("1.2.3", "1.2.3.1", "1.2.3.1.1", t0))
		require.NoError(t, err)
		dx := recordParams("1.2.3", "1.2.3.2", "1.2.3.2.1", t0.Add(5*time.Second))
		dx.Series.Modality = "DX"
		ps := []models.InstanceRecordParams{
			recordParams("1.2.3", "1.2.3.1", "1.2.3.1.2", t0.Add(2*time.Second)),
			dx,
			recordParams("1.2.3", "1.2.3.1", "1.2.3.1.1", t0.Add(time.Minute)), // recorded before
			recordParams("1.2.3", "1.2.3.1", "1.2.3.1.2", t0.Add(time.Minute)), // repeated in the batch
			recordParams("4.5", "4.5.1", "4.5.1.1", t0.Add(time.Second)),
			recordParams("4.5", "1.2.3.1", "4.5.1.2", t0.Add(time.Second)), // series of study 1.2.3
			{Study: models.Study{StudyInstanceUID: "4.5"}},                 // no UIDs
		}
		res, errs, err := b.s.InstanceRecordBatch(b.ctx, ps)
		require.NoError(t, err)
		require.NoError(t, errs[0])
		require.NoError(t, errs[1])
		require.ErrorIs(t, errs[2], models.ErrAlreadyExists)
		require.Equal(t, first.ID, res[2].ID)
		require.ErrorIs(t, errs[3], models.ErrAlreadyExists)
		require.Equal(t, res[0].ID, res[3].ID)
		require.NoError(t, errs[4])
		require.ErrorContains(t, errs[5], "belongs to another study")
		require.Nil(t, res[5])
		require.Error(t, errs[6])

		st, err := b.s.StudyGetByUID(b.ctx, "1.2.3")
		require.NoError(t, err)
		require.Equal(t, 3, st.InstanceCount)
		require.Equal(t, `CR\DX`, st.Modalities)
		require.Equal(t, store.Normalize(t0), st.FirstInstanceAt)
		require.Equal(t, store.Normalize(t0.Add(5*time.Second)), st.LastInstanceAt)
		st2, err := b.s.StudyGetByUID(b.ctx, "4.5")
		require.NoError(t, err)
		require.Equal(t, 1, st2.InstanceCount)
		require.Equal(t, store.Normalize(t0.Add(time.Second)), st2.FirstInstanceAt)

		got, err := b.s.InstanceGetBySOPUID(b.ctx, "1.2.3.2.1")
		require.NoError(t, err)
		require.Equal(t, res[1].ID, got.ID)
		require.Equal(t, st.ID, got.StudyID)
		require.Equal(t, res[1].SeriesID, got.SeriesID)
		require.Equal(t, models.InstanceReceived, got.State)
		require.Equal(t, "spool/1.2.3.2.1.dcm", got.SpoolPath)
		_, err = b.s.InstanceGetBySOPUID(b.ctx, "4.5.1.2")
		require.ErrorIs(t, err, models.ErrNotFound)
	})
}
