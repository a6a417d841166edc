package eval

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cspine/cspine/pipeline"
	"github.com/cspine/cspine/pipeline/result"
)

func params(cobb, c2, c7, c7sup, sva float64) *result.Parameters {
	segs := map[string]float64{}
	for i, s := range result.SegmentNames {
		segs[s] = cobb/5 + float64(i)
	}
	return &result.Parameters{C2C7CobbDeg: cobb, C2SlopeDeg: c2, C7SlopeDeg: c7, C7SupSlopeDeg: c7sup, C2C7SVAmm: &sva, SegmentalDeg: segs}
}

// sample makes a measured sample whose Cobb angle is off by dCobb and whose
// C2 landmark is off by (dx, dy) pixels at 0.2 mm spacing.
func sample(grade string, cobb, dCobb float64, flagged bool, dx, dy float64) Sample {
	t := result.Truth{File: "x.dcm", Measurable: true, Obscuration: grade,
		Parameters:     params(cobb, 10, 10+cobb, 8+cobb, 15),
		Landmarks:      []result.TruthLandmark{{Name: "C2_centroid", X: 100, Y: 100}},
		PixelSpacingMM: []float64{0.2, 0.2}}
	r := result.Result{Status: result.StatusOK, Parameters: params(cobb+dCobb, 10, 10+cobb+dCobb, 8+cobb+dCobb, 15),
		Landmarks: []result.Landmark{{Name: "C2_centroid", X: 100 + dx, Y: 100 + dy}},
		Review:    &result.Review{Required: flagged, Reasons: []string{}}, Model: &result.Model{Name: "m", Version: "1"}}
	if flagged {
		r.Review.Reasons = []string{result.ReasonC7LowConfidence}
	}
	return Sample{Truth: t, Result: r}
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	samples := []Sample{
		sample("none", 10, 1, false, 3, 4),      // 5 px = 1 mm
		sample("none", 20, -2, false, 0, 0),     // 0 mm
		sample("complete", 5, 6, true, 6, 8),    // large, caught; 2 mm
		sample("complete", 15, -7, false, 0, 5), // large, missed; 1 mm
		{Truth: result.Truth{File: "neg.dcm", Measurable: false, Reason: "AP view"}, Result: result.Result{Status: result.StatusRejected}},
		{Truth: result.Truth{File: "rej.dcm", Measurable: true, Obscuration: "partial"}, Result: result.Result{Status: result.StatusRejected}},
	}
	rep := Summarize("dir", result.ModeHierarchical, samples, 5)
	if rep.Negatives != 1 || rep.NegRejected != 1 || rep.Model != "m 1" {
		t.Errorf("negatives %+v", rep)
	}
	all := rep.Groups[3]
	if all.Grade != "all" || all.Measured != 4 || all.Rejected != 1 || all.Flagged != 1 || all.LargeErrors != 2 || all.LargeCaught != 1 {
		t.Errorf("all group %+v", all)
	}
	cobb := all.Params[0]
	if cobb.Param.Key != "c2c7_cobb_deg" || cobb.N != 4 || math.Abs(cobb.MAE-4) > 1e-12 || math.Abs(cobb.MedAE-4) > 1e-12 || math.Abs(cobb.Bias-(-0.5)) > 1e-12 {
		t.Errorf("Cobb stats %+v", cobb)
	}
	if c2 := all.Params[1]; c2.MAE != 0 || !math.IsNaN(c2.ICC) {
		t.Errorf("C2 slope stats (constant, exact): %+v", c2)
	}
	if math.Abs(all.LandmarkMean-1) > 1e-12 || all.LandmarkNoSpacing != 0 {
		t.Errorf("landmark mean %v (%d without spacing), want 1 mm", all.LandmarkMean, all.LandmarkNoSpacing)
	}
	none, complete := rep.Groups[0], rep.Groups[2]
	if none.Measured != 2 || complete.Measured != 2 || complete.LargeErrors != 2 || rep.Groups[1].Rejected != 1 {
		t.Errorf("grades: none %+v complete %+v", none, complete)
	}
	if math.Abs(none.Params[0].MAE-1.5) > 1e-12 {
		t.Errorf("none Cobb MAE %v", none.Params[0].MAE)
	}

	// A truth without pixel spacing is left out of the mm landmark error.
	noSp := sample("none", 10, 0, false, 100, 0)
	noSp.Truth.PixelSpacingMM = nil
	if g := Summarize("d", "hierarchical", append([]Sample{noSp}, samples[:2]...), 5).Groups[3]; g.LandmarkNoSpacing != 1 || math.Abs(g.LandmarkMean-0.5) > 1e-12 {
		t.Errorf("no-spacing truth: %+v", g)
	}

	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"### C7 obscuration: complete (2 measurable)", "| C2–C7 Cobb (°) | 4 | 4.00 | 4.00 |", "caught by the flag 1/2 (50.0%)", "rejected 1, flagged 0"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, buf.String())
		}
	}
	buf.Reset()
	single := Summarize("dir", result.ModeSingleStage, samples, 5)
	if err := WriteMarkdown(&buf, rep, single); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "MAE hier. | MAE single | MAE hier. vs single") {
		t.Errorf("compare table:\n%s", buf.String())
	}
}

func TestCalibrate(t *testing.T) {
	t.Parallel()
	base := pipeline.DefaultThresholds()
	base.C7Risk = nil // the single thresholds (TestCalibrateWithRisk: with a risk model)
	var samples []Sample
	// 20 accurate results with high C7 confidence, 4 large errors with low
	// confidence, 2 accurate results with low confidence.
	for i := 0; i < 26; i++ {
		s := sample("partial", 10, 0.5, false, 0, 0)
		s.Features = pipeline.Features{C7Confidence: 0.8 + float64(i%5)/100, C7DisagreementMM: 1, GlobalConfidence: 0.9,
			SpacingKnown: true, HeaderLateral: true, Contrast: 0.2, C7Obscuration: [3]float64{0.8, 0.2, 0}}
		switch {
		case i >= 20 && i < 24:
			s.Result.Parameters = params(10+8, 10, 10+18, 8+18, 15)
			s.Features.C7Confidence = 0.30 + float64(i-20)/100
		case i >= 24:
			s.Features.C7Confidence = 0.5
		}
		samples = append(samples, s)
	}
	maxLargeConf := 0.30 + float64(23-20)/100 // as computed above, not 0.33
	cal, err := Calibrate(samples, base, 0.95, 5)
	if err != nil {
		t.Fatal(err)
	}
	if !cal.MetTarget || cal.LargeErrors != 4 || cal.Caught != 4 || cal.Flagged != 4 || cal.Measured != 26 {
		t.Errorf("calibration %+v", cal)
	}
	if th := cal.Thresholds.C7MinConfidence; th <= maxLargeConf || th > 0.5 {
		t.Errorf("C7 min confidence %v, want in (%v, 0.5]", th, maxLargeConf)
	}
	if err := cal.Thresholds.Validate(); err != nil {
		t.Error(err)
	}
	// Applying the calibrated thresholds reproduces the figures.
	rep := Summarize("v", "hierarchical", Reflag(samples, cal.Thresholds), 5)
	if g := rep.Groups[3]; g.Flagged != 4 || g.LargeCaught != 4 {
		t.Errorf("reflagged %+v", g)
	}
	// Models that are never confident on a header-less set: the image-level
	// reasons are lowered instead of flagging everything.
	dim := make([]Sample, len(samples))
	for i, s := range samples {
		dim[i] = s
		dim[i].Features.GlobalConfidence = 0.1 + float64(i)/1000
		dim[i].Features.HeaderLateral = false
	}
	cal, err = Calibrate(dim, base, 0.95, 5)
	if err != nil {
		t.Fatal(err)
	}
	// 1st percentile of 0.100 … 0.125 is 0.10025: one image stays below it.
	if cal.Flagged > 5 || cal.Thresholds.NotLateralMinGlobalConfidence > 0.10025 || cal.Thresholds.LowQualityMinGlobalConfidence > 0.10025 {
		t.Errorf("dim calibration %+v", cal)
	}
	if _, err := Calibrate(nil, base, 0.95, 5); err == nil {
		t.Error("empty calibration accepted")
	}
}

func TestReadTruthAndRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "truth.jsonl"), []byte(
		`{"file":"a.dcm","sop_instance_uid":"1.2.3","measurable":true,"obscuration":"none"}`+"\n\n"+
			`{"file":"b.dcm","sop_instance_uid":"1.2.4","measurable":false,"reason":"AP"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	truth, err := ReadTruth(dir)
	if err != nil || len(truth) != 2 || truth[1].Reason != "AP" {
		t.Fatalf("ReadTruth = %+v, %v", truth, err)
	}
	var seen []string
	analyze := func(_ context.Context, path string) (result.Result, pipeline.Features) {
		uid := "1.2.3"
		if strings.HasSuffix(path, "b.dcm") {
			uid = "1.2.4"
		}
		return result.Result{File: path, SOPInstanceUID: uid, Status: result.StatusRejected}, pipeline.Features{}
	}
	samples, err := Run(context.Background(), dir, truth, analyze, 2)
	if err != nil || len(samples) != 2 || samples[0].Result.File != filepath.Join(dir, "a.dcm") {
		t.Fatalf("Run = %+v, %v (%v)", samples, err, seen)
	}
	bad := func(_ context.Context, path string) (result.Result, pipeline.Features) {
		return result.Result{SOPInstanceUID: "9.9"}, pipeline.Features{}
	}
	if _, err := Run(context.Background(), dir, truth, bad, 1); err == nil || !strings.Contains(err.Error(), "truth says") {
		t.Errorf("UID mismatch not caught: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "truth.jsonl"), []byte("{bad\n"), 0o644)
	if _, err := ReadTruth(dir); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad truth: %v", err)
	}
}

func TestRequirements(t *testing.T) {
	t.Parallel()
	samples := []Sample{
		sample("none", 10, 1, false, 3, 4),
		sample("none", 20, -2, false, 0, 0),
		sample("complete", 5, 6, true, 6, 8),
		sample("complete", 15, -7, false, 0, 5),
	}
	hier := Summarize("d", "hierarchical", samples, 5)
	worse := make([]Sample, len(samples))
	for i, s := range samples {
		worse[i] = sample(s.Truth.Obscuration, s.Truth.Parameters.C2C7CobbDeg, 2*(s.Result.Parameters.C2C7CobbDeg-s.Truth.Parameters.C2C7CobbDeg), false, 0, 0)
	}
	single := Summarize("d", "single_stage", worse, 5)
	tests := []struct {
		req  string
		pass bool
	}{
		{"all/c2c7_cobb_deg.mae<=4", true},      // MAE 4
		{"all/c2c7_cobb_deg.mae<=3.9", false},   //
		{"none/c2c7_cobb_deg.medae<=1.5", true}, // 1, 2 → 1.5
		{"all/c2_slope_deg.icc>=0.9", false},    // NaN (constant) fails
		{"all/flag_rate<=0.25", true},           // 1/4
		{"all/catch>=0.95", false},              // 1/2
		{"none/catch>=0.95", true},              // no large errors
		{"all/landmark_mean<=1", true},
		{"complete/c2c7_cobb_deg.mae_vs_single<=0.5", true}, // exactly half
		{"all/c2c7_cobb_deg.abs_bias<=0.5", true},
		{"all/rejected<=0", true},
	}
	for _, tc := range tests {
		r, err := ParseRequirement(tc.req)
		if err != nil {
			t.Fatal(err)
		}
		lines, ok := Check([]Requirement{r}, hier, &single)
		if ok != tc.pass {
			t.Errorf("%s: %v, want %v (%s)", tc.req, ok, tc.pass, lines)
		}
	}
	for _, bad := range []string{"all/c2c7_cobb_deg.mae<2", "most/flag_rate<=1", "all/nope.mae<=1", "all/c2c7_cobb_deg.max<=1", "all/flag_rate<=x"} {
		if _, err := ParseRequirement(bad); err == nil {
			t.Errorf("ParseRequirement(%q) accepted", bad)
		}
	}
	r, _ := ParseRequirement("all/c2c7_cobb_deg.mae_vs_single<=1")
	if _, ok := Check([]Requirement{r}, hier, nil); ok {
		t.Error("mae_vs_single without single-stage report passed")
	}
}
