// Package reviewtest seeds databases for the review tool's tests: phantom
// radiographs (package phantom) in a data directory, their study, series and
// instance rows, and an analysis with a machine report already issued and
// sent.
//
// TEST DATA, NOT A FAKE OF THE PRODUCT: the analysis rows are built from
// the phantom's ground-truth landmarks with one landmark (C7 inferior
// posterior corner) deliberately displaced and an explicit review flag, so
// that the review tool has a flagged case with a known error to correct.
// The parameters are computed from those landmarks with pipeline/geometry,
// as the pipeline would. The measurement pipeline itself is tested in
// package pipeline.
package reviewtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
	"gorm.io/gorm"

	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/phantom"
	"github.com/cspine/cspine/pipeline/decode"
	"github.com/cspine/cspine/pipeline/geometry"
	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/report"
	"github.com/cspine/cspine/report/dicomio"
)

// Device is the node identity written into test reports.
var Device = dicomio.Device{Manufacturer: "cspine project", ModelName: "cspine", Name: "CSPINE-TEST",
	UID: dicomio.UID("cspine", "device", "reviewtest"), SoftwareVersion: "test"}

// Displacement is how far the seeded machine result moves C7_inf_post from
// the truth, in pixels (x, y).
var Displacement = result.Point{X: 14, Y: -18}

// Destination is where the seeded machine reports were "sent" (a transfer
// row in state sent); amended reports go to the same destination.
type Destination struct {
	Name, AETitle, Host string
	Port                int
}

// Options tune Seed.
type Options struct {
	// Count of phantom images, each its own study (default 2). Even
	// indexes are flagged (c7_low_confidence, c7_stage_disagreement) with
	// C7_inf_post displaced; odd ones are unflagged and exact.
	Count int
	// Seed of the phantom generator (default 6).
	Seed uint64
	// Rows, Cols of the images (default 1000×800, for speed).
	Rows, Cols int
	// Destination of the machine reports (default PACS@127.0.0.1:11112).
	Destination *Destination
	// Unsent leaves the machine reports without transfers.
	Unsent bool
}

// Case is one seeded analysis.
type Case struct {
	AnalysisID, InstanceID, StudyID, ReportID int64
	Flagged                                   bool
	Truth                                     result.Truth
	// SourcePath is the DICOM file (absolute).
	SourcePath string
	// Machine is the seeded machine result.
	Machine result.Result
}

// Seed generates phantoms under dataDir/spool and stores everything in db.
func Seed(t testing.TB, db *gorm.DB, dataDir string, o Options) []Case {
	t.Helper()
	if o.Count == 0 {
		o.Count = 2
	}
	if o.Seed == 0 {
		o.Seed = 6
	}
	if o.Rows == 0 {
		o.Rows, o.Cols = 1000, 800
	}
	if o.Destination == nil {
		o.Destination = &Destination{Name: "pacs", AETitle: "PACS", Host: "127.0.0.1", Port: 11112}
	}
	ctx := context.Background()
	rel := filepath.Join("spool", fmt.Sprintf("phantom-%d", o.Seed))
	dir := filepath.Join(dataDir, rel)
	if err := phantom.Generate(ctx, phantom.Options{Count: o.Count, Seed: o.Seed, OutDir: dir, Obscuration: phantom.ObscureNone,
		Rows: o.Rows, Cols: o.Cols, Workers: 1}); err != nil {
		t.Fatalf("reviewtest: phantom: %v", err)
	}
	truths := readTruth(t, filepath.Join(dir, "truth.jsonl"))
	st := models.NewStore(db)
	var out []Case
	for i, tr := range truths {
		if !tr.Measurable {
			continue
		}
		c, err := seedOne(ctx, st, dataDir, filepath.Join(rel, tr.File), tr, i%2 == 0, o)
		if err != nil {
			t.Fatalf("reviewtest: seed %s: %v", tr.File, err)
		}
		out = append(out, c)
	}
	return out
}

func readTruth(t testing.TB, path string) []result.Truth {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("reviewtest: %v", err)
	}
	defer f.Close()
	var out []result.Truth
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var tr result.Truth
		if err := json.Unmarshal(sc.Bytes(), &tr); err != nil {
			t.Fatalf("reviewtest: truth: %v", err)
		}
		out = append(out, tr)
	}
	return out
}

func str(ds dicom.Dataset, tg tag.Tag) string {
	e, err := ds.FindElementByTag(tg)
	if err != nil {
		return ""
	}
	if v, ok := e.Value.GetValue().([]string); ok && len(v) > 0 {
		return strings.Join(v, `\`)
	}
	return ""
}

// MachineResult builds the seeded machine result of a phantom truth.
func MachineResult(tr result.Truth, flagged bool, rows, cols int) result.Result {
	var lm [geometry.NumLandmarks]geometry.Point
	res := result.Result{
		File: tr.File, SOPInstanceUID: tr.SOPInstanceUID, StudyInstanceUID: tr.StudyInstanceUID, Status: result.StatusOK,
		Model:          &result.Model{Name: "reviewtest-truth", Version: "0.0.0-test", Mode: result.ModeHierarchical},
		C7:             &result.C7{Confidence: 0.93, Obscuration: result.ObscurationNone},
		Review:         &result.Review{Required: false, Reasons: []string{}},
		PixelSpacingMM: tr.PixelSpacingMM, SpacingSource: tr.SpacingSource,
		TimingsMS: map[string]float64{"total": 1},
	}
	if flagged {
		res.C7.Confidence = 0.41
		res.Review = &result.Review{Required: true, Reasons: []string{result.ReasonC7LowConfidence, result.ReasonC7StageDisagreement}}
	}
	for _, l := range tr.Landmarks {
		i := result.LandmarkIndex(l.Name)
		x, y := l.X, l.Y
		if flagged && l.Name == "C7_inf_post" {
			x += Displacement.X
			y += Displacement.Y
		}
		x = min(max(x, 0), float64(cols-1))
		y = min(max(y, 0), float64(rows-1))
		lm[i] = geometry.Point{X: x, Y: y}
		stage := result.StageGlobal
		if strings.HasPrefix(l.Name, "C2_") || strings.HasPrefix(l.Name, "C7_") {
			stage = result.StageRefined
		}
		conf := 0.95
		if strings.HasPrefix(l.Name, "C7_") {
			conf = res.C7.Confidence
		}
		res.Landmarks = append(res.Landmarks, result.Landmark{Name: l.Name, X: x, Y: y, Confidence: conf, Stage: stage})
	}
	facing, _ := geometry.DetermineFacing(&lm, nil)
	var sp geometry.Spacing
	if len(tr.PixelSpacingMM) == 2 {
		sp = geometry.Spacing{RowMM: tr.PixelSpacingMM[0], ColMM: tr.PixelSpacingMM[1]}
	}
	p := geometry.Measure(&lm, facing, sp)
	res.Facing = facing.String()
	res.Parameters = &result.Parameters{C2C7CobbDeg: p.CobbDeg, C2SlopeDeg: p.C2SlopeDeg, C7SlopeDeg: p.C7SlopeDeg,
		C7SupSlopeDeg: p.C7SupSlopeDeg, C2C7SVAmm: p.SVAmm, SegmentalDeg: map[string]float64{}}
	for i, n := range result.SegmentNames {
		res.Parameters.SegmentalDeg[n] = p.SegmentalDeg[i]
	}
	return res
}

func seedOne(ctx context.Context, st *models.Store, dataDir, rel string, tr result.Truth, flagged bool, o Options) (Case, error) {
	abs := filepath.Join(dataDir, rel)
	b, err := os.ReadFile(abs)
	if err != nil {
		return Case{}, err
	}
	ds, err := dicom.Parse(bytes.NewReader(b), int64(len(b)), nil, dicom.SkipPixelData())
	if err != nil {
		return Case{}, err
	}
	im, err := decode.Decode(b)
	if err != nil {
		return Case{}, err
	}
	m := im.Meta
	in, err := st.InstanceRecord(ctx, models.InstanceRecordParams{
		Instance: models.Instance{SOPInstanceUID: m.SOPInstanceUID, SOPClassUID: m.SOPClassUID, TransferSyntaxUID: m.TransferSyntaxUID,
			ViewPosition: m.ViewPosition, ImageRows: im.Rows, ImageColumns: im.Cols, SpoolPath: rel, SizeBytes: int64(len(b)), SHA256: fmt.Sprintf("%x", sha256.Sum256(b)),
			CallingAETitle: "PACS", CalledAETitle: "CSPINE", PeerAddress: "127.0.0.1"},
		Study: models.Study{StudyInstanceUID: m.StudyInstanceUID, PatientName: str(ds, tag.PatientName), PatientID: str(ds, tag.PatientID),
			StudyDate: str(ds, tag.StudyDate), AccessionNumber: str(ds, tag.AccessionNumber), StudyDescription: m.StudyDescription,
			CallingAETitle: "PACS"},
		Series: models.Series{SeriesInstanceUID: m.SeriesInstanceUID, Modality: m.Modality, SeriesDescription: m.SeriesDescription},
	})
	if err != nil {
		return Case{}, fmt.Errorf("record instance: %w", err)
	}
	res := MachineResult(tr, flagged, im.Rows, im.Cols)
	// The global stage's C7 beside the refined one: the truth positions.
	var extra []result.Landmark
	if flagged {
		for _, l := range tr.Landmarks {
			if strings.HasPrefix(l.Name, "C7_") {
				extra = append(extra, result.Landmark{Name: l.Name, X: l.X, Y: l.Y, Confidence: 0.8, Stage: result.StageGlobal})
			}
		}
	}
	now := time.Now().UTC()
	a, err := models.AnalysisFromResult(&res, nil, extra, now, now)
	if err != nil {
		return Case{}, err
	}
	a.InstanceID, a.StudyID = in.ID, in.StudyID
	if err := st.AnalysisInsert(ctx, a); err != nil {
		return Case{}, fmt.Errorf("insert analysis: %w", err)
	}
	if err := st.InstanceSetState(ctx, in.ID, models.InstanceAnalyzed, ""); err != nil {
		return Case{}, err
	}
	if a.ReviewRequired {
		if err := st.ReviewTaskInsert(ctx, &models.ReviewTask{AnalysisID: a.ID, Reason: strings.Join(a.Reasons(), ",")}); err != nil {
			return Case{}, err
		}
	}
	// The machine report, issued and sent.
	objs, err := report.Build(ds, res, im.Display(), im.Rows, im.Cols, report.Options{Device: Device, ContentTime: now})
	if err != nil {
		return Case{}, fmt.Errorf("machine report: %w", err)
	}
	rdir := filepath.Join("reports", fmt.Sprintf("analysis-%d", a.ID))
	if err := os.MkdirAll(filepath.Join(dataDir, rdir), 0o750); err != nil {
		return Case{}, err
	}
	srPath, scPath, err := report.WriteFiles(filepath.Join(dataDir, rdir), "r1", objs)
	if err != nil {
		return Case{}, err
	}
	relSR, _ := filepath.Rel(dataDir, srPath)
	relSC, _ := filepath.Rel(dataDir, scPath)
	scUID, scSeries := objs.SCInstanceUID, objs.SCSeriesUID
	rep := &models.Report{AnalysisID: a.ID, SRSOPInstanceUID: objs.SRInstanceUID, SRSeriesInstanceUID: objs.SRSeriesUID, SRPath: relSR,
		SCSOPInstanceUID: &scUID, SCSeriesInstanceUID: &scSeries, SCPath: relSC}
	if err := st.ReportInsert(ctx, rep); err != nil {
		return Case{}, err
	}
	if !o.Unsent {
		d := o.Destination
		tr := &models.Transfer{ReportID: rep.ID, Destination: d.Name, AETitle: d.AETitle, Host: d.Host, Port: d.Port}
		if err := st.TransferInsert(ctx, tr); err != nil {
			return Case{}, err
		}
		if err := st.TransferMarkSending(ctx, tr.ID); err != nil {
			return Case{}, err
		}
		if err := st.TransferMarkSent(ctx, tr.ID); err != nil {
			return Case{}, err
		}
	}
	return Case{AnalysisID: a.ID, InstanceID: in.ID, StudyID: in.StudyID, ReportID: rep.ID, Flagged: flagged, Truth: tr,
		SourcePath: abs, Machine: res}, nil
}
