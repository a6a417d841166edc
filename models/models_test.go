package models_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm/schema"

	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/store/storetest"
)

var allModels = []any{
	&models.Study{}, &models.Series{}, &models.Instance{}, &models.Analysis{}, &models.Landmark{},
	&models.ReviewReason{}, &models.ReviewTask{}, &models.ReviewLandmark{}, &models.Report{},
	&models.Transfer{}, &models.Job{}, &models.AuditEvent{}, &models.User{}, &models.Session{},
}

// TestModelsMatchSchema checks that every field of every model maps to a
// column created by the migrations, and every column to a field, on both
// databases.
func TestModelsMatchSchema(t *testing.T) {
	t.Parallel()
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		for _, m := range allModels {
			sch, err := schema.Parse(m, &sync.Map{}, db.Gorm.NamingStrategy)
			require.NoError(t, err)
			cols, err := db.Gorm.Migrator().ColumnTypes(sch.Table)
			require.NoError(t, err, sch.Table)
			var have []string
			for _, c := range cols {
				have = append(have, c.Name())
			}
			var want []string
			for _, f := range sch.Fields {
				if f.DBName != "" {
					want = append(want, f.DBName)
				}
			}
			sort.Strings(have)
			sort.Strings(want)
			require.Equal(t, have, want, "table %s", sch.Table)
		}
	})
}

type bundle struct {
	ctx context.Context
	db  *store.DB
	s   *models.Store
}

func setup(t *testing.T, db *store.DB) *bundle {
	t.Helper()
	return &bundle{ctx: context.Background(), db: db, s: models.NewStore(db.Gorm)}
}

func recordParams(study, series, sop string, at time.Time) models.InstanceRecordParams {
	return models.InstanceRecordParams{
		Study:  models.Study{StudyInstanceUID: study, AccessionNumber: "A1", PatientID: "P1", StudyDate: "20260101"},
		Series: models.Series{SeriesInstanceUID: series, Modality: "CR"},
		Instance: models.Instance{
			SOPInstanceUID: sop, SOPClassUID: "1.2.840.10008.5.1.4.1.1.1", TransferSyntaxUID: "1.2.840.10008.1.2.1",
			ViewPosition: "LL", ImageRows: 2048, ImageColumns: 1536, SpoolPath: "spool/" + sop + ".dcm",
			SHA256: fmt.Sprintf("%064x", len(sop)), SizeBytes: 1234, CallingAETitle: "PACS", CalledAETitle: "CSPINE",
			ReceivedAt: at,
		},
	}
}

func TestInstanceRecord(t *testing.T) {
	t.Parallel()
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		b := setup(t, db)
		t0 := time.Date(2026, 1, 1, 10, 0, 0, 123456789, time.UTC)
		in1, err := b.s.InstanceRecord(b.ctx, recordParams("1.2.3", "1.2.3.1", "1.2.3.1.1", t0))
		require.NoError(t, err)
		require.NotZero(t, in1.ID)
		require.Equal(t, models.InstanceReceived, in1.State)

		p2 := recordParams("1.2.3", "1.2.3.2", "1.2.3.2.1", t0.Add(5*time.Second))
		p2.Series.Modality = "DX"
		in2, err := b.s.InstanceRecord(b.ctx, p2)
		require.NoError(t, err)
		require.Equal(t, in1.StudyID, in2.StudyID)
		require.NotEqual(t, in1.SeriesID, in2.SeriesID)

		// The same SOP instance again: recognised, not stored twice.
		again, err := b.s.InstanceRecord(b.ctx, recordParams("1.2.3", "1.2.3.1", "1.2.3.1.1", t0.Add(time.Minute)))
		require.ErrorIs(t, err, models.ErrAlreadyExists)
		require.Equal(t, in1.ID, again.ID)

		st, err := b.s.StudyGetByUID(b.ctx, "1.2.3")
		require.NoError(t, err)
		require.Equal(t, 2, st.InstanceCount)
		require.Equal(t, `CR\DX`, st.Modalities)
		require.Equal(t, models.StudyReceiving, st.State)
		require.Equal(t, store.Normalize(t0), st.FirstInstanceAt)
		require.Equal(t, store.Normalize(t0.Add(5*time.Second)), st.LastInstanceAt)

		got, err := b.s.InstanceGetBySOPUID(b.ctx, "1.2.3.1.1")
		require.NoError(t, err)
		require.Equal(t, in1.SHA256, got.SHA256)
		require.Equal(t, store.Normalize(t0), got.ReceivedAt)
		list, err := b.s.InstanceListByStudy(b.ctx, st.ID)
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.Equal(t, in1.ID, list[0].ID)

		_, err = b.s.StudyGetByUID(b.ctx, "9.9.9")
		require.ErrorIs(t, err, models.ErrNotFound)

		// Quiet-time selection and compare-and-set completion.
		quiet, err := b.s.StudyListQuiet(b.ctx, t0.Add(4*time.Second), 10)
		require.NoError(t, err)
		require.Empty(t, quiet)
		quiet, err = b.s.StudyListQuiet(b.ctx, t0.Add(5*time.Second), 10)
		require.NoError(t, err)
		require.Len(t, quiet, 1)
		require.NoError(t, b.s.StudySetState(b.ctx, st.ID, models.StudyReceiving, models.StudyComplete, ""))
		err = b.s.StudySetState(b.ctx, st.ID, models.StudyReceiving, models.StudyComplete, "")
		require.ErrorIs(t, err, models.ErrConflict)
		st, err = b.s.StudyGetByID(b.ctx, st.ID)
		require.NoError(t, err)
		require.NotNil(t, st.CompletedAt)

		// A late image reopens the study.
		_, err = b.s.InstanceRecord(b.ctx, recordParams("1.2.3", "1.2.3.1", "1.2.3.1.2", t0.Add(time.Hour)))
		require.NoError(t, err)
		st, err = b.s.StudyGetByID(b.ctx, st.ID)
		require.NoError(t, err)
		require.Equal(t, models.StudyReceiving, st.State)
		require.Nil(t, st.CompletedAt)
		require.Equal(t, 3, st.InstanceCount)

		require.NoError(t, b.s.InstanceSetState(b.ctx, in2.ID, models.InstanceSkipped, "not_lateral: AP view"))
		require.ErrorIs(t, b.s.InstanceSetState(b.ctx, 999999, models.InstanceSkipped, ""), models.ErrNotFound)

		_, err = b.s.InstanceRecord(b.ctx, models.InstanceRecordParams{})
		require.ErrorContains(t, err, "required")
	})
}

func TestInstanceRecordConcurrentSameStudy(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t, nil)
	b := setup(t, db)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := recordParams("7.7", fmt.Sprintf("7.7.%d", i%3), fmt.Sprintf("7.7.1.%d", i), time.Now())
			p.Series.Modality = []string{"CR", "DX", "OT"}[i%3]
			_, err := b.s.InstanceRecord(b.ctx, p)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	st, err := b.s.StudyGetByUID(b.ctx, "7.7")
	require.NoError(t, err)
	require.Equal(t, n, st.InstanceCount)
	mods := strings.Split(st.Modalities, `\`)
	sort.Strings(mods)
	require.Equal(t, []string{"CR", "DX", "OT"}, mods, "no modality lost to concurrent arrivals")
}

func sampleResult(sop string) *result.Result {
	sva := 17.2
	r := &result.Result{
		File: "in.dcm", SOPInstanceUID: sop, Status: result.StatusOK, Facing: result.FacingLeft,
		Parameters: &result.Parameters{C2C7CobbDeg: 12.3, C2SlopeDeg: 14.1, C7SlopeDeg: 26.4, C7SupSlopeDeg: 22, C2C7SVAmm: &sva,
			SegmentalDeg: map[string]float64{"C2-C3": 2, "C3-C4": 2.5, "C4-C5": 2.6, "C5-C6": 2.4, "C6-C7": 2.8}},
		C7:             &result.C7{Confidence: 0.71, Obscuration: result.ObscurationPartial},
		Review:         &result.Review{Required: true, Reasons: []string{result.ReasonC7LowConfidence, result.ReasonC7StageDisagreement}},
		PixelSpacingMM: []float64{0.139, 0.14}, SpacingSource: result.SpacingImager,
		Model:     &result.Model{Name: "cspine-phantom", Version: "1.0.0", Mode: result.ModeHierarchical},
		TimingsMS: map[string]float64{"decode": 40.1, "total": 61},
	}
	for i, name := range result.LandmarkNames {
		r.Landmarks = append(r.Landmarks, result.Landmark{Name: name, X: float64(100 + i), Y: float64(200 + 10*i), Confidence: 0.9, Stage: result.StageRefined})
	}
	return r
}

func insertAnalysis(t *testing.T, b *bundle, sop string) (*models.Instance, *models.Analysis) {
	t.Helper()
	in, err := b.s.InstanceRecord(b.ctx, recordParams("5.5", "5.5.1", sop, time.Now()))
	require.NoError(t, err)
	r := sampleResult(sop)
	raw, err := json.Marshal(r)
	require.NoError(t, err)
	extra := []result.Landmark{{Name: "C7_inf_post", X: 1, Y: 2, Confidence: 0.4, Stage: result.StageGlobal}}
	a, err := models.AnalysisFromResult(r, raw, extra, time.Now(), time.Now())
	require.NoError(t, err)
	a.InstanceID, a.StudyID = in.ID, in.StudyID
	require.NoError(t, b.s.AnalysisInsert(b.ctx, a))
	return in, a
}

func TestAnalysis(t *testing.T) {
	t.Parallel()
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		b := setup(t, db)
		in, a := insertAnalysis(t, b, "5.5.1.1")
		got, err := b.s.AnalysisGetByID(b.ctx, a.ID)
		require.NoError(t, err)
		require.Len(t, got.Landmarks, result.NumLandmarks+1)
		require.Equal(t, result.StageGlobal, got.Landmarks[0].Stage) // global C7 first
		require.Equal(t, "C2_centroid", got.Landmarks[1].Name)
		require.Equal(t, []string{result.ReasonC7LowConfidence, result.ReasonC7StageDisagreement}, got.Reasons())
		require.True(t, got.ReviewRequired)
		require.Equal(t, 0.139, *got.PixelSpacingRowMM)
		require.Equal(t, 61.0, *got.TotalMS)
		require.Equal(t, `{"decode":40.1,"total":61}`, got.TimingsJSON)
		// Parameters round-trip to the contract type.
		require.Equal(t, sampleResult("").Parameters, got.MeasuredParameters.Result())
		var back result.Result
		require.NoError(t, json.Unmarshal([]byte(got.ResultJSON), &back))
		require.Equal(t, "5.5.1.1", back.SOPInstanceUID)

		// Idempotency: the same source and model version is stored once.
		r := sampleResult("5.5.1.1")
		dup, err := models.AnalysisFromResult(r, nil, nil, time.Now(), time.Now())
		require.NoError(t, err)
		dup.InstanceID, dup.StudyID = in.ID, in.StudyID
		require.ErrorIs(t, b.s.AnalysisInsert(b.ctx, dup), models.ErrAlreadyExists)
		src, err := b.s.AnalysisGetBySource(b.ctx, in.ID, "cspine-phantom", "1.0.0", result.ModeHierarchical)
		require.NoError(t, err)
		require.Equal(t, a.ID, src.ID)
		// Nothing of the failed insert was left behind.
		lms, err := b.s.LandmarkListByAnalysis(b.ctx, a.ID)
		require.NoError(t, err)
		require.Len(t, lms, result.NumLandmarks+1)
		// A new model version is a new analysis.
		r.Model.Version = "1.1.0"
		v2, err := models.AnalysisFromResult(r, nil, nil, time.Now(), time.Now())
		require.NoError(t, err)
		v2.InstanceID, v2.StudyID = in.ID, in.StudyID
		require.NoError(t, b.s.AnalysisInsert(b.ctx, v2))

		// A rejected result has no parameters.
		in3, err := b.s.InstanceRecord(b.ctx, recordParams("5.5", "5.5.1", "5.5.1.3", time.Now()))
		require.NoError(t, err)
		rej := &result.Result{Status: result.StatusRejected, Error: "not an image", Model: r.Model, PixelSpacingMM: nil}
		ra, err := models.AnalysisFromResult(rej, nil, nil, time.Now(), time.Now())
		require.NoError(t, err)
		ra.InstanceID, ra.StudyID = in3.ID, in3.StudyID
		require.NoError(t, b.s.AnalysisInsert(b.ctx, ra))
		got, err = b.s.AnalysisGetByID(b.ctx, ra.ID)
		require.NoError(t, err)
		require.Nil(t, got.MeasuredParameters.Result())
		require.Nil(t, got.C2C7CobbDeg)
		require.Empty(t, got.Landmarks)

		// Worklist queries.
		yes := true
		flagged, err := b.s.AnalysisList(b.ctx, models.AnalysisListParams{ReviewRequired: &yes})
		require.NoError(t, err)
		require.Len(t, flagged, 2)
		require.Equal(t, v2.ID, flagged[0].ID, "newest first")
		byReason, err := b.s.AnalysisList(b.ctx, models.AnalysisListParams{Reason: result.ReasonC7StageDisagreement, Modality: "CR"})
		require.NoError(t, err)
		require.Len(t, byReason, 2)
		none, err := b.s.AnalysisList(b.ctx, models.AnalysisListParams{Modality: "MR"})
		require.NoError(t, err)
		require.Empty(t, none)
		all, err := b.s.AnalysisList(b.ctx, models.AnalysisListParams{FlaggedFirst: true})
		require.NoError(t, err)
		require.Equal(t, []int64{v2.ID, a.ID, ra.ID}, []int64{all[0].ID, all[1].ID, all[2].ID})
		page, err := b.s.AnalysisList(b.ctx, models.AnalysisListParams{Limit: 1, Offset: 1})
		require.NoError(t, err)
		require.Equal(t, v2.ID, page[0].ID, "newest first: ra, v2, a")
		total, err := b.s.AnalysisCount(b.ctx, models.AnalysisListParams{})
		require.NoError(t, err)
		require.EqualValues(t, 3, total)
		counts, err := b.s.ReviewReasonCounts(b.ctx)
		require.NoError(t, err)
		require.Equal(t, map[string]int64{result.ReasonC7LowConfidence: 2, result.ReasonC7StageDisagreement: 2}, counts)

		for name, lms := range map[string][]models.Landmark{
			"unknown landmark": {{Name: "C8_sup_ant", Stage: result.StageRefined}},
			"unknown stage":    {{Name: "C2_centroid", Stage: "final"}},
			"given twice":      {{Name: "C2_centroid", Stage: result.StageRefined}, {Name: "C2_centroid", Stage: result.StageRefined}},
			"non-finite":       {{Name: "C2_centroid", Stage: result.StageRefined, X: math.NaN()}},
		} {
			bad, err := models.AnalysisFromResult(rej, nil, nil, time.Now(), time.Now())
			require.NoError(t, err)
			bad.InstanceID, bad.StudyID, bad.Revision, bad.Landmarks = in3.ID, in3.StudyID, 2, lms
			require.ErrorContains(t, b.s.AnalysisInsert(b.ctx, bad), name)
		}

		_, err = b.s.AnalysisGetByID(b.ctx, 424242)
		require.ErrorIs(t, err, models.ErrNotFound)
	})
}

func TestReviewReportTransfer(t *testing.T) {
	t.Parallel()
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		b := setup(t, db)
		_, a := insertAnalysis(t, b, "6.6.1.1")
		u := &models.User{Username: "qa1", PasswordHash: "$2a$10$x", Role: models.RoleReviewer}
		require.NoError(t, b.s.UserInsert(b.ctx, u))
		require.ErrorIs(t, b.s.UserInsert(b.ctx, &models.User{Username: "qa1", PasswordHash: "h", Role: models.RoleAdmin}), models.ErrAlreadyExists)
		require.ErrorContains(t, b.s.UserInsert(b.ctx, &models.User{Username: "x", PasswordHash: "h", Role: "root"}), "role")

		task := &models.ReviewTask{AnalysisID: a.ID, Reason: "c7_low_confidence"}
		require.NoError(t, b.s.ReviewTaskInsert(b.ctx, task))
		assigned, err := b.s.ReviewTaskAssign(b.ctx, task.ID, 1, &u.ID)
		require.NoError(t, err)
		require.Equal(t, u.ID, *assigned.AssignedUserID)
		_, err = b.s.ReviewTaskAssign(b.ctx, task.ID, 1, nil)
		require.ErrorIs(t, err, models.ErrConflict, "stale version")
		open, err := b.s.ReviewTaskGetPendingByAnalysis(b.ctx, a.ID)
		require.NoError(t, err)
		require.Equal(t, task.ID, open.ID)
		pendingState := models.AnalysisListParams{ReviewState: models.ReviewPending}
		n, err := b.s.AnalysisCount(b.ctx, pendingState)
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
		require.ErrorIs(t, b.s.ReviewTaskInsert(b.ctx, &models.ReviewTask{AnalysisID: a.ID}), models.ErrAlreadyExists,
			"one pending task per analysis")

		// Correct C7: the human landmarks are stored beside the machine's.
		cobb := 15.0
		params := a.MeasuredParameters
		params.C2C7CobbDeg = &cobb
		dec := models.ReviewTaskDecideParams{
			ID: task.ID, Version: 2, State: models.ReviewCorrected, UserID: u.ID, Facing: "left",
			Parameters: params, Landmarks: []result.TruthLandmark{{Name: "C7_inf_post", X: 140, Y: 420}, {Name: "C7_inf_ant", X: 110, Y: 430}},
		}
		_, err = b.s.ReviewTaskDecide(b.ctx, models.ReviewTaskDecideParams{ID: task.ID, Version: 2, State: models.ReviewRejected, UserID: u.ID})
		require.ErrorContains(t, err, "needs a reason")
		bad := dec
		for want, lms := range map[string][]result.TruthLandmark{
			"unknown landmark": {{Name: "C8_inf_post"}},
			"given twice":      {{Name: "C7_inf_post"}, {Name: "C7_inf_post"}},
			"non-finite":       {{Name: "C7_inf_post", X: math.Inf(1)}},
		} {
			bad.Landmarks = lms
			_, err = b.s.ReviewTaskDecide(b.ctx, bad)
			require.ErrorContains(t, err, want)
		}
		done, err := b.s.ReviewTaskDecide(b.ctx, dec)
		require.NoError(t, err)
		require.Equal(t, models.ReviewCorrected, done.State)
		require.Equal(t, 3, done.Version)
		corrected, err := b.s.AnalysisList(b.ctx, models.AnalysisListParams{ReviewState: models.ReviewCorrected})
		require.NoError(t, err)
		require.Len(t, corrected, 1)
		n, err = b.s.AnalysisCount(b.ctx, pendingState)
		require.NoError(t, err)
		require.Zero(t, n)
		require.Equal(t, 15.0, *done.C2C7CobbDeg)
		require.Equal(t, "C7_inf_ant", done.Landmarks[0].Name)
		_, err = b.s.ReviewTaskDecide(b.ctx, dec) // stale version: someone acted first
		require.ErrorIs(t, err, models.ErrConflict)
		machine, err := b.s.AnalysisGetByID(b.ctx, a.ID)
		require.NoError(t, err)
		require.Equal(t, 12.3, *machine.C2C7CobbDeg, "machine result unchanged")
		// After a decision a new task may be opened.
		require.NoError(t, b.s.ReviewTaskInsert(b.ctx, &models.ReviewTask{AnalysisID: a.ID}))
		latestTask, err := b.s.ReviewTaskGetLatestByAnalysis(b.ctx, a.ID)
		require.NoError(t, err)
		require.Equal(t, models.ReviewPending, latestTask.State, "the reopened task is the newest")
		_, err = b.s.ReviewTaskGetLatestByAnalysis(b.ctx, 987654)
		require.ErrorIs(t, err, models.ErrNotFound)
		pending, err := b.s.ReviewTaskList(b.ctx, models.ReviewTaskListParams{})
		require.NoError(t, err)
		require.Len(t, pending, 2)
		require.Equal(t, models.ReviewPending, pending[0].State)

		// Reports: revision 1, then the amended revision 2 with predecessor.
		r1 := &models.Report{AnalysisID: a.ID, SRSOPInstanceUID: "2.25.1", SRSeriesInstanceUID: "2.25.10"}
		require.NoError(t, b.s.ReportInsert(b.ctx, r1))
		require.Equal(t, 1, r1.Revision)
		r2 := &models.Report{AnalysisID: a.ID, ReviewTaskID: &task.ID, VerificationFlag: models.Verified, SRSOPInstanceUID: "2.25.2", SRSeriesInstanceUID: "2.25.10"}
		require.NoError(t, b.s.ReportInsert(b.ctx, r2))
		require.Equal(t, 2, r2.Revision)
		require.Equal(t, r1.ID, *r2.PredecessorID)
		require.ErrorIs(t, b.s.ReportInsert(b.ctx, &models.Report{AnalysisID: a.ID, Revision: 2, SRSOPInstanceUID: "2.25.3", SRSeriesInstanceUID: "x"}), models.ErrAlreadyExists)
		// A re-run analyze job inserting revision 1 again is refused.
		require.ErrorIs(t, b.s.ReportInsert(b.ctx, &models.Report{AnalysisID: a.ID, Revision: 1, SRSOPInstanceUID: "2.25.4", SRSeriesInstanceUID: "x"}), models.ErrAlreadyExists)
		latest, err := b.s.ReportGetLatest(b.ctx, a.ID)
		require.NoError(t, err)
		require.Equal(t, r2.ID, latest.ID)

		// Transfers: fail, fail for good, manual reset, sent.
		tr := &models.Transfer{ReportID: r2.ID, Destination: "pacs", AETitle: "PACS", Host: "127.0.0.1", Port: 104}
		require.NoError(t, b.s.TransferInsert(b.ctx, tr))
		require.ErrorIs(t, b.s.TransferInsert(b.ctx, &models.Transfer{ReportID: r2.ID, Destination: "pacs", AETitle: "PACS", Host: "h", Port: 1}), models.ErrAlreadyExists)
		require.NoError(t, b.s.TransferMarkSending(b.ctx, tr.ID))
		next := time.Now().Add(time.Minute)
		code := 0xA700
		require.NoError(t, b.s.TransferMarkFailed(b.ctx, tr.ID, "out of resources", &code, &next))
		got, err := b.s.TransferGetByID(b.ctx, tr.ID)
		require.NoError(t, err)
		require.Equal(t, models.TransferFailed, got.Status)
		require.Equal(t, 1, got.Attempts)
		require.Equal(t, 0xA700, *got.LastStatusCode)
		require.NoError(t, b.s.TransferMarkSending(b.ctx, tr.ID))
		require.NoError(t, b.s.TransferMarkFailed(b.ctx, tr.ID, "connection refused", nil, nil))
		dead, err := b.s.TransferListByStatus(b.ctx, models.TransferDead, 10)
		require.NoError(t, err)
		require.Len(t, dead, 1)
		require.NoError(t, b.s.TransferReset(b.ctx, tr.ID))
		require.ErrorIs(t, b.s.TransferReset(b.ctx, tr.ID), models.ErrConflict)
		require.NoError(t, b.s.TransferMarkSending(b.ctx, tr.ID))
		require.NoError(t, b.s.TransferMarkSent(b.ctx, tr.ID))
		got, err = b.s.TransferGetByID(b.ctx, tr.ID)
		require.NoError(t, err)
		require.Equal(t, models.TransferSent, got.Status)
		require.Equal(t, 1, got.Attempts)
		require.NotNil(t, got.SentAt)
		require.ErrorIs(t, b.s.TransferMarkSent(b.ctx, 99999), models.ErrNotFound)
	})
}

func TestAuditUserSession(t *testing.T) {
	t.Parallel()
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		b := setup(t, db)
		u := &models.User{Username: "admin", PasswordHash: "h", Role: models.RoleAdmin}
		require.NoError(t, b.s.UserInsert(b.ctx, u))
		require.NoError(t, b.s.UserRecordLogin(b.ctx, u.ID, false))
		require.NoError(t, b.s.UserRecordLogin(b.ctx, u.ID, false))
		got, err := b.s.UserGetByUsername(b.ctx, "admin")
		require.NoError(t, err)
		require.Equal(t, 2, got.FailedLogins)
		require.NoError(t, b.s.UserRecordLogin(b.ctx, u.ID, true))
		got, err = b.s.UserGetByID(b.ctx, u.ID)
		require.NoError(t, err)
		require.Zero(t, got.FailedLogins)
		require.NotNil(t, got.LastLoginAt)

		now := time.Now()
		se := &models.Session{UserID: u.ID, TokenHash: "th", CSRFToken: "c", ExpiresAt: now.Add(time.Hour)}
		require.NoError(t, b.s.SessionInsert(b.ctx, se))
		_, err = b.s.SessionGetByTokenHash(b.ctx, "th", now)
		require.NoError(t, err)
		_, err = b.s.SessionGetByTokenHash(b.ctx, "th", now.Add(2*time.Hour))
		require.ErrorIs(t, err, models.ErrNotFound)
		n, err := b.s.SessionDeleteExpired(b.ctx, now.Add(2*time.Hour))
		require.NoError(t, err)
		require.EqualValues(t, 1, n)

		// An audit event written in the same transaction as the change.
		err = b.s.InTx(b.ctx, func(tx *models.Store) error {
			if err := tx.UserSetDisabled(b.ctx, u.ID, true); err != nil {
				return err
			}
			_, err := tx.AuditEventInsert(b.ctx, models.AuditEventInsertParams{
				Actor: "admin", ActorUserID: &u.ID, Action: "user.disable", EntityType: "user", EntityID: fmt.Sprint(u.ID),
				Before: map[string]bool{"disabled": false}, After: map[string]bool{"disabled": true},
			})
			return err
		})
		require.NoError(t, err)
		evs, err := b.s.AuditEventListByEntity(b.ctx, "user", fmt.Sprint(u.ID))
		require.NoError(t, err)
		require.Len(t, evs, 1)
		require.JSONEq(t, `{"disabled":false}`, *evs[0].BeforeJSON)
		require.JSONEq(t, `{"disabled":true}`, *evs[0].AfterJSON)

		// A failing transaction leaves neither the change nor its event.
		err = b.s.InTx(b.ctx, func(tx *models.Store) error {
			if _, err := tx.AuditEventInsert(b.ctx, models.AuditEventInsertParams{Actor: "admin", Action: "user.enable", EntityType: "user", EntityID: fmt.Sprint(u.ID)}); err != nil {
				return err
			}
			return fmt.Errorf("boom")
		})
		require.ErrorContains(t, err, "boom")
		evs, err = b.s.AuditEventListByEntity(b.ctx, "user", fmt.Sprint(u.ID))
		require.NoError(t, err)
		require.Len(t, evs, 1)
		_, err = b.s.AuditEventInsert(b.ctx, models.AuditEventInsertParams{Action: "x"})
		require.ErrorContains(t, err, "required")
	})
}

// TestRemainingMethods covers the store methods the scenario tests above
// do not reach: retention, listings, sessions, password change.
func TestRemainingMethods(t *testing.T) {
	t.Parallel()
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		b := setup(t, db)
		old := time.Now().Add(-40 * 24 * time.Hour)
		inOld, err := b.s.InstanceRecord(b.ctx, recordParams("8.1", "8.1.1", "8.1.1.1", old))
		require.NoError(t, err)
		_, err = b.s.InstanceRecord(b.ctx, recordParams("8.2", "8.2.1", "8.2.1.1", old)) // study still receiving
		require.NoError(t, err)
		_, err = b.s.InstanceRecord(b.ctx, recordParams("8.3", "8.3.1", "8.3.1.1", time.Now())) // too recent
		require.NoError(t, err)
		st1, err := b.s.StudyGetByUID(b.ctx, "8.1")
		require.NoError(t, err)
		require.NoError(t, b.s.StudySetState(b.ctx, st1.ID, models.StudyReceiving, models.StudyNoMeasurableImage, "no lateral view"))
		st3, err := b.s.StudyGetByUID(b.ctx, "8.3")
		require.NoError(t, err)
		require.NoError(t, b.s.StudySetState(b.ctx, st3.ID, models.StudyReceiving, models.StudyComplete, ""))
		require.ErrorIs(t, b.s.StudySetState(b.ctx, 987654, models.StudyReceiving, models.StudyComplete, ""), models.ErrNotFound)

		cutoff := time.Now().Add(-30 * 24 * time.Hour)
		purge, err := b.s.InstanceListPurgeable(b.ctx, cutoff, 10)
		require.NoError(t, err)
		require.Len(t, purge, 1)
		require.Equal(t, inOld.ID, purge[0].ID)
		require.NoError(t, b.s.InstanceMarkPurged(b.ctx, inOld.ID))
		purge, err = b.s.InstanceListPurgeable(b.ctx, cutoff, 10)
		require.NoError(t, err)
		require.Empty(t, purge)
		require.ErrorIs(t, b.s.InstanceMarkPurged(b.ctx, 987654), models.ErrNotFound)
		got, err := b.s.InstanceGetByID(b.ctx, inOld.ID)
		require.NoError(t, err)
		require.NotNil(t, got.PurgedAt)

		skipped, err := b.s.StudyList(b.ctx, models.StudyNoMeasurableImage, 10, 0)
		require.NoError(t, err)
		require.Len(t, skipped, 1)
		require.Equal(t, "no lateral view", skipped[0].StateReason)
		all, err := b.s.StudyList(b.ctx, "", 10, 0)
		require.NoError(t, err)
		require.Len(t, all, 3)
		require.Equal(t, "8.3", all[0].StudyInstanceUID, "newest first")
		se, err := b.s.SeriesGetByUID(b.ctx, "8.1.1")
		require.NoError(t, err)
		require.Equal(t, st1.ID, se.StudyID)
		seByID, err := b.s.SeriesGetByID(b.ctx, se.ID)
		require.NoError(t, err)
		require.Equal(t, "8.1.1", seByID.SeriesInstanceUID)
		_, err = b.s.SeriesGetByUID(b.ctx, "nope")
		require.ErrorIs(t, err, models.ErrNotFound)

		// Reports and transfers listings.
		_, a := insertAnalysis(t, b, "8.4.1.1")
		r := &models.Report{AnalysisID: a.ID, SRSOPInstanceUID: "2.25.80", SRSeriesInstanceUID: "2.25.81"}
		require.NoError(t, b.s.ReportInsert(b.ctx, r))
		rep, err := b.s.ReportGetByID(b.ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, models.Unverified, rep.VerificationFlag)
		reps, err := b.s.ReportListByAnalysis(b.ctx, a.ID)
		require.NoError(t, err)
		require.Len(t, reps, 1)
		require.ErrorContains(t, b.s.ReportInsert(b.ctx, &models.Report{AnalysisID: a.ID}), "required")
		tr := &models.Transfer{ReportID: r.ID, Destination: "pacs", AETitle: "PACS", Host: "h", Port: 104}
		require.NoError(t, b.s.TransferInsert(b.ctx, tr))
		job := &models.Job{Kind: "send", Args: "{}", State: models.JobAvailable, MaxAttempts: 3, RunAt: time.Now(), Errors: "[]"}
		require.NoError(t, db.Gorm.Create(job).Error)
		require.NoError(t, b.s.TransferSetJob(b.ctx, tr.ID, job.ID))
		trs, err := b.s.TransferListByReport(b.ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, job.ID, *trs[0].JobID)

		// Accounts and sessions.
		u := &models.User{Username: "rev", PasswordHash: "old", Role: models.RoleReviewer}
		require.NoError(t, b.s.UserInsert(b.ctx, u))
		require.NoError(t, b.s.UserSetPasswordHash(b.ctx, u.ID, "new"))
		users, err := b.s.UserList(b.ctx)
		require.NoError(t, err)
		require.Equal(t, "new", users[0].PasswordHash)
		require.ErrorIs(t, b.s.UserSetPasswordHash(b.ctx, 987654, "x"), models.ErrNotFound)
		se2 := &models.Session{UserID: u.ID, TokenHash: "t2", CSRFToken: "c", ExpiresAt: time.Now().Add(time.Minute)}
		require.NoError(t, b.s.SessionInsert(b.ctx, se2))
		require.NoError(t, b.s.SessionTouch(b.ctx, se2.ID, time.Now().Add(time.Hour)))
		_, err = b.s.SessionGetByTokenHash(b.ctx, "t2", time.Now().Add(30*time.Minute))
		require.NoError(t, err, "touch extended the session")
		require.NoError(t, b.s.SessionDelete(b.ctx, se2.ID))
		_, err = b.s.SessionGetByTokenHash(b.ctx, "t2", time.Now())
		require.ErrorIs(t, err, models.ErrNotFound)
		require.ErrorIs(t, b.s.SessionTouch(b.ctx, se2.ID, time.Now()), models.ErrNotFound)

		// Foreign keys hold on both databases.
		err = b.s.TransferInsert(b.ctx, &models.Transfer{ReportID: 987654, Destination: "x", AETitle: "X", Host: "h", Port: 1})
		require.Error(t, err, "transfer of an unknown report")
	})
}

func TestSummary(t *testing.T) {
	t.Parallel()
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		b := setup(t, db)
		start := time.Now().Add(-time.Minute)
		_, a := insertAnalysis(t, b, "9.1.1.1") // flagged: 2 reasons
		in2, err := b.s.InstanceRecord(b.ctx, recordParams("9.2", "9.2.1", "9.2.1.1", time.Now()))
		require.NoError(t, err)
		st2, err := b.s.StudyGetByID(b.ctx, in2.StudyID)
		require.NoError(t, err)
		require.NoError(t, b.s.StudySetState(b.ctx, st2.ID, models.StudyReceiving, models.StudyNoMeasurableImage, "AP only"))
		require.NoError(t, b.s.ReviewTaskInsert(b.ctx, &models.ReviewTask{AnalysisID: a.ID}))
		r := &models.Report{AnalysisID: a.ID, SRSOPInstanceUID: "2.25.90", SRSeriesInstanceUID: "2.25.91"}
		require.NoError(t, b.s.ReportInsert(b.ctx, r))
		tr := &models.Transfer{ReportID: r.ID, Destination: "pacs", AETitle: "PACS", Host: "h", Port: 104}
		require.NoError(t, b.s.TransferInsert(b.ctx, tr))
		require.NoError(t, b.s.TransferMarkSent(b.ctx, tr.ID))

		sum, err := b.s.SummaryGet(b.ctx, start, time.Now().Add(time.Minute))
		require.NoError(t, err)
		require.EqualValues(t, 2, sum.InstancesReceived)
		require.EqualValues(t, 1, sum.StudiesCompleted)
		require.EqualValues(t, 1, sum.StudiesNoImage)
		require.EqualValues(t, 1, sum.Analyses)
		require.EqualValues(t, 1, sum.AnalysesFlagged)
		require.EqualValues(t, 1, sum.ReportsIssued)
		require.EqualValues(t, 1, sum.TransfersSent)
		require.EqualValues(t, 1, sum.ReviewsPending)
		require.Equal(t, map[string]int64{result.ReasonC7LowConfidence: 1, result.ReasonC7StageDisagreement: 1}, sum.ReasonsFlagged)

		empty, err := b.s.SummaryGet(b.ctx, start.Add(-48*time.Hour), start.Add(-24*time.Hour))
		require.NoError(t, err)
		require.Zero(t, empty.Analyses)
		require.Empty(t, empty.ReasonsFlagged)
		require.EqualValues(t, 1, empty.ReviewsPending, "backlog counts are current")
	})
}
