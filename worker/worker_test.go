package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/ingest"
	"github.com/cspine/cspine/jobs"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/phantom"
	"github.com/cspine/cspine/pipeline"
	"github.com/cspine/cspine/pipeline/pipelinetest"
	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/report/dicomio"
	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/store/storetest"
	"github.com/cspine/cspine/worker"
)

// lateral generates phantoms and returns a neutral lateral the default
// selection measures, with its truth line.
func lateral(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, phantom.Generate(context.Background(), phantom.Options{Count: 6, Seed: 11, OutDir: dir,
		Rows: 1200, Cols: 1000, Workers: 2}))
	b, err := os.ReadFile(filepath.Join(dir, "truth.jsonl"))
	require.NoError(t, err)
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var l struct {
			File          string `json:"file"`
			Measurable    bool   `json:"measurable"`
			SpacingSource string `json:"spacing_source"`
			Posture       string `json:"posture"`
		}
		require.NoError(t, json.Unmarshal(line, &l))
		if l.Measurable && l.SpacingSource != "imager_ermf" && (l.Posture == "" || l.Posture == "neutral") {
			return filepath.Join(dir, l.File)
		}
	}
	t.Fatal("no neutral lateral in the phantom set")
	return ""
}

// put copies file into dataDir/spool as ingest would keep it.
func put(t *testing.T, file, dataDir string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(dataDir, "spool"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dataDir, "spool", "src.dcm"), b, 0o644))
	return "spool/src.dcm"
}

// TestAnalyzeDeterministicAcrossNodes: node A runs an analyze job but loses
// its lease before committing (its result is discarded); node B takes the
// job again and commits. Both wrote the SR and the SC: byte-identical, so
// whichever attempt's reports reach the PACS, they are the same reports.
// The committed rows: one analysis with its landmarks, a review task when
// flagged, one report, one transfer and one send job per destination.
func TestAnalyzeDeterministicAcrossNodes(t *testing.T) {
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		st := models.NewStore(db.Gorm)
		src := lateral(t)
		an, err := pipeline.New(worker.CapturingStages{Inner: pipelinetest.Models(t)}, pipeline.Config{})
		require.NoError(t, err)
		dirA, dirB := t.TempDir(), t.TempDir()
		rel := put(t, src, dirA)
		put(t, src, dirB)
		hdr, err := ingest.ReadHeader(src)
		require.NoError(t, err)
		in, err := st.InstanceRecord(ctx, models.InstanceRecordParams{
			Instance: models.Instance{SOPInstanceUID: hdr.SOPInstanceUID, SOPClassUID: "1.2.840.10008.5.1.4.1.1.1",
				TransferSyntaxUID: "1.2.840.10008.1.2.1", SpoolPath: rel, SHA256: hdr.SHA256, SizeBytes: hdr.Size},
			Study:  models.Study{StudyInstanceUID: hdr.StudyInstanceUID, CallingAETitle: "PACS"},
			Series: models.Series{SeriesInstanceUID: hdr.SeriesInstanceUID, Modality: hdr.Modality},
		})
		require.NoError(t, err)
		info := pipelinetest.Models(t).Info()
		_, err = jobs.Insert(ctx, db.Gorm, jobs.InsertParams{Kind: jobs.KindAnalyze,
			Args: jobs.AnalyzeArgs{InstanceID: in.ID, SOPInstanceUID: in.SOPInstanceUID, ModelName: info.Name,
				ModelVersion: info.Version, Mode: result.ModeHierarchical},
			UniqueKey: jobs.AnalyzeKey(in.SOPInstanceUID, info.Name, info.Version, result.ModeHierarchical)})
		require.NoError(t, err)
		dest := []worker.Destination{{Name: "PACS", AETitle: "PACS", Host: "127.0.0.1", Port: 104}}
		mk := func(dataDir string) *worker.Analyzer {
			w, err := worker.NewAnalyzer(st, worker.AnalyzerConfig{DataDir: dataDir, Pipeline: an,
				ModelName: info.Name, ModelVersion: info.Version,
				Device: dicomio.Device{Manufacturer: "cspine project", ModelName: "cspine", Name: "CSPINE",
					UID: dicomio.UID("cspine", "node", "CSPINE"), SoftwareVersion: "test"},
				Route: func(ae string) []worker.Destination {
					if ae == "PACS" {
						return dest
					}
					return nil
				}})
			require.NoError(t, err)
			return w
		}
		jc := jobs.NewClient(db.Gorm, jobs.ClientConfig{})

		// Node A: its lease is taken away while it works.
		claimed, err := jc.Claim(ctx, "node-a", []string{jobs.KindAnalyze}, 1, time.Minute)
		require.NoError(t, err)
		require.Len(t, claimed, 1)
		require.NoError(t, db.Gorm.Exec("UPDATE jobs SET locked_by = 'someone-else'").Error)
		err = mk(dirA).Work(ctx, claimed[0])
		require.ErrorIs(t, err, jobs.ErrLeaseLost)
		require.Zero(t, count(t, db, &models.Analysis{}))
		require.Zero(t, count(t, db, &models.Report{}))

		// Node B takes the job again and commits.
		require.NoError(t, db.Gorm.Exec("UPDATE jobs SET state = 'available', locked_by = '', lease_expires_at = NULL").Error)
		claimed, err = jc.Claim(ctx, "node-b", []string{jobs.KindAnalyze}, 1, time.Minute)
		require.NoError(t, err)
		require.Len(t, claimed, 1)
		require.NoError(t, mk(dirB).Work(ctx, claimed[0]))

		a, err := st.AnalysisGetBySource(ctx, in.ID, info.Name, info.Version, result.ModeHierarchical)
		require.NoError(t, err)
		require.Equal(t, models.AnalysisOK, a.Status)
		// The 23 final landmarks, and the global-stage position of each
		// refined one (for the review's global-versus-refined view).
		byStage := map[string]int{}
		for _, l := range a.Landmarks {
			byStage[l.Stage]++
		}
		require.Equal(t, len(result.LandmarkNames)+byStage[result.StageRefined], len(a.Landmarks))
		require.Equal(t, 7, byStage[result.StageRefined], "C2 (3) and C7 (4) refined")
		tasks := count(t, db, &models.ReviewTask{})
		if a.ReviewRequired {
			require.Equal(t, int64(1), tasks)
		} else {
			require.Zero(t, tasks)
		}
		reps, err := st.ReportListByAnalysis(ctx, a.ID)
		require.NoError(t, err)
		require.Len(t, reps, 1)
		trs, err := st.TransferListByReport(ctx, reps[0].ID)
		require.NoError(t, err)
		require.Len(t, trs, 1)
		require.NotNil(t, trs[0].JobID)
		j, err := jc.Get(ctx, *trs[0].JobID)
		require.NoError(t, err)
		require.Equal(t, jobs.KindSend, j.Kind)
		got, err := st.InstanceGetByID(ctx, in.ID)
		require.NoError(t, err)
		require.Equal(t, models.InstanceAnalyzed, got.State)
		job, err := jc.Get(ctx, claimed[0].ID)
		require.NoError(t, err)
		require.Equal(t, models.JobCompleted, job.State)

		for _, p := range []string{reps[0].SRPath, reps[0].SCPath} {
			a, err := os.ReadFile(filepath.Join(dirA, p))
			require.NoError(t, err)
			b, err := os.ReadFile(filepath.Join(dirB, p))
			require.NoError(t, err)
			require.True(t, bytes.Equal(a, b), "%s differs between the two attempts", p)
		}
	})
}

func count(t *testing.T, db *store.DB, model any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, db.Gorm.Model(model).Count(&n).Error)
	return n
}

// A job for other models waits for the nodes that run them; once they are
// gone (ForeignModelWait), it is replaced by a job for this node's models.
func TestAnalyzeForeignModel(t *testing.T) {
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		st := models.NewStore(db.Gorm)
		models_ := pipelinetest.Models(t)
		an, err := pipeline.New(models_, pipeline.Config{})
		require.NoError(t, err)
		info := models_.Info()
		in, err := st.InstanceRecord(ctx, models.InstanceRecordParams{
			Instance: models.Instance{SOPInstanceUID: "1.2.3.4", SOPClassUID: "1.2.840.10008.5.1.4.1.1.1",
				TransferSyntaxUID: "1.2.840.10008.1.2.1", SpoolPath: "spool/x.dcm",
				SHA256: "0000000000000000000000000000000000000000000000000000000000000000"},
			Study: models.Study{StudyInstanceUID: "1.2.3"}, Series: models.Series{SeriesInstanceUID: "1.2.3.1"},
		})
		require.NoError(t, err)
		_, err = jobs.Insert(ctx, db.Gorm, jobs.InsertParams{Kind: jobs.KindAnalyze,
			Args: jobs.AnalyzeArgs{InstanceID: in.ID, SOPInstanceUID: in.SOPInstanceUID, ModelName: info.Name,
				ModelVersion: "0.0.1-old", Mode: result.ModeHierarchical},
			UniqueKey: jobs.AnalyzeKey(in.SOPInstanceUID, info.Name, "0.0.1-old", result.ModeHierarchical)})
		require.NoError(t, err)
		w, err := worker.NewAnalyzer(st, worker.AnalyzerConfig{DataDir: t.TempDir(), Pipeline: an, ModelName: info.Name,
			ModelVersion: info.Version, Device: dicomio.Device{Manufacturer: "m", ModelName: "cspine", Name: "CSPINE",
				UID: "1.2.3.4.5", SoftwareVersion: "test"}, Route: func(string) []worker.Destination { return nil }})
		require.NoError(t, err)
		jc := jobs.NewClient(db.Gorm, jobs.ClientConfig{})

		claimed, err := jc.Claim(ctx, "n", []string{jobs.KindAnalyze}, 1, time.Minute)
		require.NoError(t, err)
		require.Len(t, claimed, 1)
		require.Error(t, w.Work(ctx, claimed[0]), "a fresh job for other models must wait (snooze)")
		require.Equal(t, int64(1), count(t, db, &models.Job{}))

		claimed[0].CreatedAt = time.Now().Add(-worker.ForeignModelWait - time.Minute)
		require.NoError(t, w.Work(ctx, claimed[0]))
		old, err := jc.Get(ctx, claimed[0].ID)
		require.NoError(t, err)
		require.Equal(t, models.JobCompleted, old.State)
		js, err := jc.List(ctx, jobs.ListParams{State: models.JobAvailable, Kind: jobs.KindAnalyze})
		require.NoError(t, err)
		require.Len(t, js, 1)
		args, err := jobs.DecodeArgs[jobs.AnalyzeArgs](&js[0])
		require.NoError(t, err)
		require.Equal(t, info.Version, args.ModelVersion)
		require.Equal(t, in.ID, args.InstanceID)
	})
}
