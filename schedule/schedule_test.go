package schedule_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/jobs"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/schedule"
	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/store/storetest"
)

func record(t *testing.T, st *models.Store, dataDir, sop string, at time.Time) *models.Instance {
	t.Helper()
	rel := "spool/" + sop + ".dcm"
	require.NoError(t, os.MkdirAll(filepath.Join(dataDir, "spool"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dataDir, rel), []byte("x"), 0o644))
	in, err := st.InstanceRecord(context.Background(), models.InstanceRecordParams{
		Instance: models.Instance{SOPInstanceUID: sop, SOPClassUID: "1.2.840.10008.5.1.4.1.1.1",
			TransferSyntaxUID: "1.2.840.10008.1.2.1", SpoolPath: rel,
			SHA256: "0000000000000000000000000000000000000000000000000000000000000000", ReceivedAt: at},
		Study:  models.Study{StudyInstanceUID: "1.2." + sop},
		Series: models.Series{SeriesInstanceUID: "1.3." + sop},
	})
	require.NoError(t, err)
	return in
}

func TestPurge(t *testing.T) {
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		st := models.NewStore(db.Gorm)
		dataDir := t.TempDir()
		now := store.Now()
		old := record(t, st, dataDir, "1", now.Add(-40*24*time.Hour))
		pending := record(t, st, dataDir, "2", now.Add(-40*24*time.Hour))
		recent := record(t, st, dataDir, "3", now.Add(-time.Hour))
		for _, in := range []*models.Instance{old, pending, recent} {
			require.NoError(t, st.StudySetState(ctx, in.StudyID, models.StudyReceiving, models.StudyComplete, ""))
		}
		require.NoError(t, st.InstanceSetState(ctx, old.ID, models.InstanceAnalyzed, ""))
		require.NoError(t, st.InstanceSetState(ctx, pending.ID, models.InstanceSelected, ""))
		require.NoError(t, st.InstanceSetState(ctx, recent.ID, models.InstanceAnalyzed, ""))

		s, err := schedule.New(st, jobs.NewClient(db.Gorm, jobs.ClientConfig{}), schedule.Config{SpoolDays: 30, DataDir: dataDir})
		require.NoError(t, err)
		n, err := s.Purge(ctx, now)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		_, err = os.Stat(filepath.Join(dataDir, old.SpoolPath))
		require.ErrorIs(t, err, os.ErrNotExist)
		for _, in := range []*models.Instance{pending, recent} {
			_, err = os.Stat(filepath.Join(dataDir, in.SpoolPath))
			require.NoError(t, err, "instance %s must be kept", in.SOPInstanceUID)
		}
		got, err := st.InstanceGetByID(ctx, old.ID)
		require.NoError(t, err)
		require.NotNil(t, got.PurgedAt)
		n, err = s.Purge(ctx, now) // nothing left to purge
		require.NoError(t, err)
		require.Zero(t, n)
		require.NoError(t, s.Summary(ctx, now))
		require.NoError(t, s.Sweep(ctx))
	})
}

func TestEnqueuePullOncePerTick(t *testing.T) {
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		jc := jobs.NewClient(db.Gorm, jobs.ClientConfig{})
		st := models.NewStore(db.Gorm)
		cfg := schedule.Config{Pull: "*/15 * * * *", PullPeer: "PACS", Lookback: time.Hour}
		a, err := schedule.New(st, jc, cfg)
		require.NoError(t, err)
		b, err := schedule.New(st, jc, cfg) // a second node
		require.NoError(t, err)
		tick := time.Date(2026, 11, 27, 12, 15, 0, 0, time.UTC)
		require.NoError(t, a.EnqueuePull(ctx, tick))
		require.NoError(t, b.EnqueuePull(ctx, tick.Add(2*time.Second)))
		js, err := jc.List(ctx, jobs.ListParams{Kind: jobs.KindPull})
		require.NoError(t, err)
		require.Len(t, js, 1)
		args, err := jobs.DecodeArgs[jobs.PullArgs](&js[0])
		require.NoError(t, err)
		require.Equal(t, "PACS", args.Peer)
		require.True(t, args.Since.Equal(tick.Add(-time.Hour)))
	})
}

func TestNewRejectsBadSchedule(t *testing.T) {
	t.Parallel()
	_, err := schedule.New(nil, nil, schedule.Config{RetrySweep: "every minute please"})
	require.Error(t, err)
}

// A job whose last lease expired ends dead without its handler running:
// the sweep records the dead transfer and the failed instance.
func TestSweepReconciles(t *testing.T) {
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		st := models.NewStore(db.Gorm)
		jc := jobs.NewClient(db.Gorm, jobs.ClientConfig{})
		dataDir := t.TempDir()
		now := store.Now()
		a := record(t, st, dataDir, "11", now)
		b := record(t, st, dataDir, "12", now)
		for _, in := range []*models.Instance{a, b} {
			require.NoError(t, st.InstanceSetState(ctx, in.ID, models.InstanceSelected, ""))
			_, err := jobs.Insert(ctx, db.Gorm, jobs.InsertParams{Kind: jobs.KindAnalyze,
				Args: jobs.AnalyzeArgs{InstanceID: in.ID, SOPInstanceUID: in.SOPInstanceUID, ModelName: "m", ModelVersion: "1", Mode: "hierarchical"}})
			require.NoError(t, err)
		}
		an := &models.Analysis{InstanceID: b.ID, StudyID: b.StudyID, ModelName: "m", ModelVersion: "0", Mode: "hierarchical",
			Status: models.AnalysisOK, StartedAt: now, FinishedAt: now}
		require.NoError(t, st.AnalysisInsert(ctx, an))
		rep := &models.Report{AnalysisID: an.ID, SRSOPInstanceUID: "1.2.99", SRSeriesInstanceUID: "1.2.98"}
		require.NoError(t, st.ReportInsert(ctx, rep))
		tr := &models.Transfer{ReportID: rep.ID, Destination: "PACS", AETitle: "PACS", Host: "127.0.0.1", Port: 104}
		require.NoError(t, st.TransferInsert(ctx, tr))
		sj, err := jobs.Insert(ctx, db.Gorm, jobs.InsertParams{Kind: jobs.KindSend, Args: jobs.SendArgs{TransferID: tr.ID}})
		require.NoError(t, err)
		require.NoError(t, st.TransferSetJob(ctx, tr.ID, sj.Job.ID))
		require.NoError(t, st.TransferMarkSending(ctx, tr.ID))
		// a's analysis and the send job died with their workers.
		require.NoError(t, db.Gorm.Exec("UPDATE jobs SET state = 'dead', last_error = 'lease expired' WHERE kind = 'send' OR args LIKE ?",
			`{"instance_id":`+itoa(a.ID)+`,%`).Error)

		s, err := schedule.New(st, jc, schedule.Config{})
		require.NoError(t, err)
		require.NoError(t, s.Sweep(ctx))
		got, err := st.TransferGetByID(ctx, tr.ID)
		require.NoError(t, err)
		require.Equal(t, models.TransferDead, got.Status)
		ia, err := st.InstanceGetByID(ctx, a.ID)
		require.NoError(t, err)
		require.Equal(t, models.InstanceFailed, ia.State)
		require.Equal(t, "lease expired", ia.StateReason)
		ib, err := st.InstanceGetByID(ctx, b.ID)
		require.NoError(t, err)
		require.Equal(t, models.InstanceSelected, ib.State, "its analysis job is still available")
	})
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

// The retention task deletes completed and cancelled jobs finalized before
// the cut-off, keeps recent ones, dead ones and unfinished ones, and frees
// the idempotency key of a purged job.
func TestPurgeJobs(t *testing.T) {
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		st := models.NewStore(db.Gorm)
		jc := jobs.NewClient(db.Gorm, jobs.ClientConfig{})
		now := store.Now()
		mk := func(key string, state models.JobState, finalizedAgo time.Duration) int64 {
			r, err := jc.Insert(ctx, jobs.InsertParams{Kind: jobs.KindSend, Args: map[string]int{"n": 1}, UniqueKey: key})
			require.NoError(t, err)
			upd := map[string]any{"state": state}
			if finalizedAgo > 0 {
				upd["finalized_at"] = store.Normalize(now.Add(-finalizedAgo))
			}
			require.NoError(t, db.Gorm.Model(&models.Job{}).Where("id = ?", r.Job.ID).Updates(upd).Error)
			return r.Job.ID
		}
		day := 24 * time.Hour
		oldDone := mk("old-done", models.JobCompleted, 100*day)
		oldCancelled := mk("old-cancelled", models.JobCancelled, 91*day)
		recentDone := mk("recent-done", models.JobCompleted, 89*day)
		oldDead := mk("old-dead", models.JobDead, 200*day)
		waiting := mk("waiting", models.JobAvailable, 0)

		s, err := schedule.New(st, jc, schedule.Config{JobDays: 90})
		require.NoError(t, err)
		n, err := s.PurgeJobs(ctx, now)
		require.NoError(t, err)
		require.EqualValues(t, 2, n)
		for _, id := range []int64{oldDone, oldCancelled} {
			_, err := jc.Get(ctx, id)
			require.ErrorIs(t, err, jobs.ErrNotFound, "job %d must be purged", id)
		}
		for _, id := range []int64{recentDone, oldDead, waiting} {
			_, err := jc.Get(ctx, id)
			require.NoError(t, err, "job %d must be kept", id)
		}
		n, err = s.PurgeJobs(ctx, now)
		require.NoError(t, err)
		require.Zero(t, n)
		// The purged job's key can be used again; a kept one's cannot.
		r, err := jc.Insert(ctx, jobs.InsertParams{Kind: jobs.KindSend, Args: map[string]int{"n": 2}, UniqueKey: "old-done"})
		require.NoError(t, err)
		require.True(t, r.Inserted)
		r, err = jc.Insert(ctx, jobs.InsertParams{Kind: jobs.KindSend, Args: map[string]int{"n": 2}, UniqueKey: "recent-done"})
		require.NoError(t, err)
		require.False(t, r.Inserted)

		off, err := schedule.New(st, jc, schedule.Config{})
		require.NoError(t, err)
		n, err = off.PurgeJobs(ctx, now.Add(1000*day))
		require.NoError(t, err)
		require.Zero(t, n, "job_days 0 keeps jobs for ever")
	})
}
