package assembly_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/assembly"
	"github.com/cspine/cspine/jobs"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/store/storetest"
)

const (
	crClass = "1.2.840.10008.5.1.4.1.1.1"
	dxClass = "1.2.840.10008.5.1.4.1.1.1.1"
	srClass = "1.2.840.10008.5.1.4.1.1.88.33"
)

func cand(class, vp, seriesDesc, protocol, bodyPart string, rows int) assembly.Candidate {
	return assembly.Candidate{
		Instance: models.Instance{SOPClassUID: class, ViewPosition: vp, ImageRows: rows, ImageColumns: rows},
		Series:   models.Series{SeriesDescription: seriesDesc, ProtocolName: protocol, BodyPartExamined: bodyPart},
	}
}

func TestSelect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cands   []assembly.Candidate
		policy  assembly.Policy
		measure []bool
	}{
		{"lateral and AP", []assembly.Candidate{
			cand(dxClass, "LL", "C-Spine Lateral", "", "CSPINE", 2000),
			cand(dxClass, "AP", "C-Spine AP", "", "CSPINE", 2000)}, assembly.Policy{}, []bool{true, false}},
		{"view position only", []assembly.Candidate{cand(crClass, "RL", "", "", "", 1500)}, assembly.Policy{}, []bool{true}},
		{"description beats AP default", []assembly.Candidate{cand(crClass, "AP", "CERVICAL LAT", "", "", 1500)}, assembly.Policy{}, []bool{true}},
		{"oblique skipped", []assembly.Candidate{cand(crClass, "", "C-spine oblique", "", "", 1500)}, assembly.Policy{}, []bool{false}},
		{"oblique configured", []assembly.Candidate{cand(crClass, "", "C-spine oblique", "", "", 1500)}, assembly.Policy{IncludeOblique: true}, []bool{true}},
		{"flexion skipped", []assembly.Candidate{
			cand(crClass, "LL", "C-Spine LAT flexion", "", "", 1500),
			cand(crClass, "LL", "C-Spine LAT", "", "", 1500)}, assembly.Policy{}, []bool{false, true}},
		{"flexion configured", []assembly.Candidate{cand(crClass, "LL", "LAT extension", "", "", 1500)}, assembly.Policy{IncludeFlexionExtension: true}, []bool{true}},
		{"thumbnail", []assembly.Candidate{cand(crClass, "LL", "C-spine LAT", "", "", 128)}, assembly.Policy{}, []bool{false}},
		{"not CR/DX", []assembly.Candidate{cand(srClass, "", "", "", "", 0)}, assembly.Policy{}, []bool{false}},
		{"chest", []assembly.Candidate{cand(dxClass, "LL", "Chest lateral", "", "CHEST", 2000)}, assembly.Policy{}, []bool{false}},
		{"unknown view alone measured", []assembly.Candidate{cand(crClass, "", "", "", "", 1500)}, assembly.Policy{}, []bool{true}},
		{"unknown view beside a lateral skipped", []assembly.Candidate{
			cand(crClass, "", "", "", "", 1500),
			cand(crClass, "LL", "", "", "", 1500)}, assembly.Policy{}, []bool{false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ds := assembly.Select(tt.cands, tt.policy)
			require.Len(t, ds, len(tt.measure))
			for i, d := range ds {
				require.Equal(t, tt.measure[i], d.Measure, "candidate %d: %s", i, d.Reason)
				require.NotEmpty(t, d.Reason)
			}
		})
	}
}

func record(t *testing.T, st *models.Store, study, series, sop, class, vp, desc string, rows int, at time.Time) {
	t.Helper()
	_, err := st.InstanceRecord(context.Background(), models.InstanceRecordParams{
		Instance: models.Instance{SOPInstanceUID: sop, SOPClassUID: class, TransferSyntaxUID: "1.2.840.10008.1.2.1",
			ViewPosition: vp, ImageRows: rows, ImageColumns: rows, SpoolPath: "spool/" + sop + ".dcm",
			SHA256: "0000000000000000000000000000000000000000000000000000000000000000", ReceivedAt: at},
		Study:  models.Study{StudyInstanceUID: study},
		Series: models.Series{SeriesInstanceUID: series, Modality: "CR", SeriesDescription: desc},
	})
	require.NoError(t, err)
}

func TestAssemble(t *testing.T) {
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		st := models.NewStore(db.Gorm)
		now := store.Now()
		clock := now
		var assembled []int
		a, err := assembly.New(st, assembly.Config{QuietTime: time.Minute, Now: func() time.Time { return clock },
			Model:       assembly.Model{Name: "m", Version: "1", Mode: "hierarchical"},
			OnAssembled: func(_ int64, n int) { assembled = append(assembled, n) }})
		require.NoError(t, err)

		record(t, st, "1.1", "1.1.1", "1.1.1.1", crClass, "LL", "C-spine LAT", 1000, now)
		record(t, st, "1.1", "1.1.2", "1.1.2.1", crClass, "AP", "C-spine AP", 1000, now)
		record(t, st, "1.2", "1.2.1", "1.2.1.1", crClass, "AP", "C-spine AP", 1000, now)

		n, err := a.AssembleQuiet(ctx) // not quiet yet
		require.NoError(t, err)
		require.Zero(t, n)

		clock = now.Add(61 * time.Second)
		n, err = a.AssembleQuiet(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		require.ElementsMatch(t, []int{1, 0}, assembled)

		lat, err := st.InstanceGetBySOPUID(ctx, "1.1.1.1")
		require.NoError(t, err)
		require.Equal(t, models.InstanceSelected, lat.State)
		ap, err := st.InstanceGetBySOPUID(ctx, "1.1.2.1")
		require.NoError(t, err)
		require.Equal(t, models.InstanceSkipped, ap.State)
		require.Contains(t, ap.StateReason, "frontal")

		s1, err := st.StudyGetByUID(ctx, "1.1")
		require.NoError(t, err)
		require.Equal(t, models.StudyComplete, s1.State)
		s2, err := st.StudyGetByUID(ctx, "1.2")
		require.NoError(t, err)
		require.Equal(t, models.StudyNoMeasurableImage, s2.State)
		require.Contains(t, s2.StateReason, "frontal (AP/PA) view: 1")

		js, err := jobs.NewClient(db.Gorm, jobs.ClientConfig{}).List(ctx, jobs.ListParams{Kind: jobs.KindAnalyze})
		require.NoError(t, err)
		require.Len(t, js, 1)

		// Nothing left to do; forcing a complete study does nothing.
		n, err = a.AssembleQuiet(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
		ok, err := a.Force(ctx, "1.1")
		require.NoError(t, err)
		require.False(t, ok)

		// A late image reopens the study; forced assembly takes it now,
		// and the analysed lateral is not enqueued again.
		record(t, st, "1.1", "1.1.3", "1.1.3.1", dxClass, "RL", "C-spine LAT", 1000, clock)
		ok, err = a.Force(ctx, "1.1")
		require.NoError(t, err)
		require.True(t, ok)
		js, err = jobs.NewClient(db.Gorm, jobs.ClientConfig{}).List(ctx, jobs.ListParams{Kind: jobs.KindAnalyze})
		require.NoError(t, err)
		require.Len(t, js, 2)
	})
}
