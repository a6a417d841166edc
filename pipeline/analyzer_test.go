package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cspine/cspine/pipeline/geometry"
	"github.com/cspine/cspine/pipeline/pipelinetest"
	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/pipeline/stages"
)

// knownStages is a test double of the models with a known answer: a spine
// whose inferior endplate slopes are 10, 12, 15, 18, 20, 25° (C2..C7),
// facing left, and refined C2/C7 corners shifted by (dx, dy) pixels. It lets
// the tests check merge, measurement and review against hand-computed
// values; the real models are exercised by the end-to-end tests.
type knownStages struct {
	dx, dy  float64
	c7Conf  float64
	obsc    [3]float64
	calls   int
	lastIn  stages.Input
	mu      sync.Mutex
	refined bool
	noPrior bool // the model set has no C7 shape prior
}

func spinePoints() [geometry.NumLandmarks]geometry.Point {
	inf := [6]float64{10, 12, 15, 18, 20, 25}
	sup := [5]float64{11, 14, 17, 19, 23}
	var lm [geometry.NumLandmarks]geometry.Point
	ep := func(cx, cy, w, s float64) (geometry.Point, geometry.Point) {
		r := s * math.Pi / 180
		dx, dy := -math.Cos(r), math.Sin(r)
		return geometry.Point{X: cx + dx*w/2, Y: cy + dy*w/2}, geometry.Point{X: cx - dx*w/2, Y: cy - dy*w/2}
	}
	cx := 150.0
	lm[geometry.C2Centroid] = geometry.Point{X: cx, Y: 60}
	lm[geometry.C2InfAnt], lm[geometry.C2InfPost] = ep(cx, 100, 50, inf[0])
	for n := 3; n <= 7; n++ {
		cy := 100 + 60*float64(n-2) - 20
		lm[geometry.SupAnt(n)], lm[geometry.SupPost(n)] = ep(cx+2*float64(n), cy-20, 50, sup[n-3])
		lm[geometry.InfAnt(n)], lm[geometry.InfPost(n)] = ep(cx+2*float64(n), cy+20, 50, inf[n-2])
	}
	return lm
}

func (k *knownStages) Info() stages.Info {
	i := stages.Info{Name: "known", Version: "0.0.1", Provider: "test"}
	if !k.noPrior {
		i.C7Prior = agreeingPrior
	}
	return i
}

// agreeingPrior is the known spine's C7 shape prior: it predicts exactly
// the known C7 slopes (C6 inferior + 5° and C6 superior + 4°) and is never
// blended in, so measurements are those of the specialist and the prior's
// distance features are 0 (the shipped risk model uses them).
var agreeingPrior = func() []byte {
	coef := func(k int) []float64 {
		c := make([]float64, len(PriorInputs))
		c[k] = 1
		return c
	}
	p := C7Prior{Format: C7PriorFormat, Inputs: PriorInputs,
		Inf: PriorRegression{Coef: coef(8), Intercept: 5, DeltaLimitDeg: 10},
		Sup: PriorRegression{Coef: coef(7), Intercept: 4, DeltaLimitDeg: 10}}
	b, err := json.Marshal(p)
	if err != nil {
		panic(err)
	}
	return b
}()

func (k *knownStages) Run(ctx context.Context, in stages.Input, hierarchical bool) (*stages.Output, error) {
	k.mu.Lock()
	k.calls++
	k.lastIn = in
	k.mu.Unlock()
	lm := spinePoints()
	out := &stages.Output{TimingsMS: map[string]float64{"global": 1}}
	for i, p := range lm {
		out.Global[i] = stages.Point{X: p.X, Y: p.Y}
		out.GlobalConf[i] = 0.9
	}
	if !hierarchical || !k.refined {
		return out, nil
	}
	out.Refined = true
	for i := 0; i < 3; i++ {
		out.C2[i] = stages.Point{X: lm[i].X + k.dx, Y: lm[i].Y + k.dy}
		out.C2Conf[i] = 0.95
	}
	for j, i := range c7Index {
		out.C7[j] = stages.Point{X: lm[i].X + k.dx, Y: lm[i].Y + k.dy}
		out.C7Conf[j] = k.c7Conf
	}
	out.C7Obscuration = k.obsc
	// Two views that agree exactly (as a sharp, unambiguous specialist
	// gives): view spreads and SDs 0.
	for range 2 {
		out.C2Runs = append(out.C2Runs, append([]stages.Point(nil), out.C2[:]...))
		out.C7Runs = append(out.C7Runs, append([]stages.Point(nil), out.C7[:]...))
	}
	out.TimingsMS["refine"] = 1
	return out, nil
}

// testImage writes a 300×400 16-bit lateral with the given header options.
func testImage(t *testing.T, im pipelinetest.Image) string {
	t.Helper()
	im.Rows, im.Cols = 400, 300
	if im.Pix == nil {
		im.Pix = make([]uint16, im.Rows*im.Cols)
		for i := range im.Pix {
			im.Pix[i] = uint16((i%im.Cols)*100 + (i/im.Cols)*50)
		}
	}
	p := filepath.Join(t.TempDir(), "img.dcm")
	pipelinetest.WriteDICOM(t, p, im)
	return p
}

func newAnalyzer(t *testing.T, k *knownStages) *Analyzer {
	t.Helper()
	a, err := New(k, Config{})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAnalyzeMergeAndMeasure(t *testing.T) {
	t.Parallel()
	k := &knownStages{dx: 3, dy: 4, c7Conf: 0.8, obsc: [3]float64{0.7, 0.2, 0.1}, refined: true}
	a := newAnalyzer(t, k)
	path := testImage(t, pipelinetest.Image{ViewPosition: "LL", PixelSpacing: []float64{0.3, 0.2}, SOPInstanceUID: "2.25.77"})
	r, f := a.AnalyzeFileDetailed(context.Background(), path, Options{})
	if r.Status != result.StatusOK {
		t.Fatalf("status %s: %s", r.Status, r.Error)
	}
	if r.SOPInstanceUID != "2.25.77" || r.SpacingSource != result.SpacingPixelSpacing || r.PixelSpacingMM[0] != 0.3 || r.PixelSpacingMM[1] != 0.2 {
		t.Errorf("header fields: %+v", r)
	}
	// The refined corners are shifted by the same vector, so slopes are
	// unchanged: C2 10°, C7 25°, Cobb 15°.
	p := r.Parameters
	if p.C2SlopeDeg != 10 || p.C7SlopeDeg != 25 || p.C2C7CobbDeg != 15 || p.C7SupSlopeDeg != 23 || p.SegmentalDeg["C6-C7"] != 5 {
		t.Errorf("parameters %+v", p)
	}
	if r.Facing != "left" || r.Model.Mode != result.ModeHierarchical || r.Model.Name != "known" {
		t.Errorf("facing %s model %+v", r.Facing, r.Model)
	}
	lm := spinePoints()
	for i, l := range r.Landmarks {
		wantStage, dx, dy := result.StageGlobal, 0.0, 0.0
		if i <= 2 || i >= geometry.SupAnt(7) {
			wantStage, dx, dy = result.StageRefined, 3, 4
		}
		if l.Name != result.LandmarkNames[i] || l.Stage != wantStage || math.Abs(l.X-(lm[i].X+dx)) > 0.006 || math.Abs(l.Y-(lm[i].Y+dy)) > 0.006 {
			t.Errorf("landmark %d = %+v, want stage %s at %v+(%v,%v)", i, l, wantStage, lm[i], dx, dy)
		}
	}
	// SVA: C2 centroid (153, 64) to C7 sup post; both refined, shift cancels.
	wantSVA := (lm[geometry.SupPost(7)].X - lm[geometry.C2Centroid].X) * 0.2
	if p.C2C7SVAmm == nil || math.Abs(*p.C2C7SVAmm-wantSVA) > 0.006 {
		t.Errorf("SVA %v, want %v", p.C2C7SVAmm, wantSVA)
	}
	// Disagreement: 3 px × 0.2 mm and 4 px × 0.3 mm → hypot(0.6, 1.2).
	if want := math.Hypot(0.6, 1.2); math.Abs(f.C7DisagreementMM-want) > 1e-9 {
		t.Errorf("disagreement %v mm, want %v", f.C7DisagreementMM, want)
	}
	if r.C7.Confidence != 0.8 || r.C7.Obscuration != result.ObscurationNone || f.GlobalConfidence != 0.9 || !f.HeaderLateral {
		t.Errorf("C7 %+v features %+v", r.C7, f)
	}
	if r.Review.Required || len(r.Review.Reasons) != 0 {
		t.Errorf("review %+v (features %+v)", r.Review, f)
	}
	if k.lastIn.SpacingMM != [2]float64{0.3, 0.2} || k.lastIn.Rows != 400 || k.lastIn.Cols != 300 || len(k.lastIn.Pix) != 400*300 {
		t.Errorf("stage input %d×%d spacing %v", k.lastIn.Cols, k.lastIn.Rows, k.lastIn.SpacingMM)
	}
	for _, key := range []string{"decode", "window", "global", "refine", "measure", "total"} {
		if _, ok := r.TimingsMS[key]; !ok {
			t.Errorf("timings lack %s: %v", key, r.TimingsMS)
		}
	}
}

func TestAnalyzeSingleStageSharesMeasurement(t *testing.T) {
	t.Parallel()
	// C7 moved 4 mm beyond the shipped disagreement threshold (0.3 mm pixels).
	dx := math.Round((DefaultThresholds().C7MaxDisagreementMM + 4) / 0.3)
	k := &knownStages{dx: dx, dy: 0, c7Conf: 0.1, refined: true}
	// The shipped file leaves low C7 confidence to the risk model, whose
	// answer on this made-up input (no obscuration estimate at all) says
	// nothing; a confidence threshold makes the reason certain here.
	th := DefaultThresholds()
	th.C7MinConfidence = 0.5
	a, err := New(k, Config{Thresholds: &th})
	if err != nil {
		t.Fatal(err)
	}
	path := testImage(t, pipelinetest.Image{ViewPosition: "LL", ImagerPixelSpacing: []float64{0.3, 0.3}})
	r, f := a.AnalyzeFileDetailed(context.Background(), path, Options{SingleStage: true})
	if r.Status != result.StatusOK || r.Model.Mode != result.ModeSingleStage || r.SpacingSource != result.SpacingImager {
		t.Fatalf("%+v", r)
	}
	for _, l := range r.Landmarks {
		if l.Stage != result.StageGlobal {
			t.Fatalf("single stage landmark %+v", l)
		}
	}
	if f.C7DisagreementMM != -1 || r.C7.Confidence != 0.9 {
		t.Errorf("single-stage features %+v", f)
	}
	// Hierarchical on the same file: C7 moved dx px → disagreement,
	// low C7 confidence 0.1 → low confidence and (graded) complete obscuration.
	h, hf := a.AnalyzeFileDetailed(context.Background(), path, Options{})
	if math.Abs(hf.C7DisagreementMM-dx*0.3) > 1e-9 {
		t.Errorf("disagreement %v", hf.C7DisagreementMM)
	}
	want := []string{result.ReasonC7LowConfidence, result.ReasonC7StageDisagreement, result.ReasonC7Obscured}
	if strings.Join(h.Review.Reasons, ",") != strings.Join(want, ",") || h.C7.Obscuration != result.ObscurationComplete {
		t.Errorf("reasons %v, obscuration %s (%q)", h.Review.Reasons, h.C7.Obscuration, hf.Implausible)
	}
}

func TestAnalyzeNoSpacingAndNotLateral(t *testing.T) {
	t.Parallel()
	k := &knownStages{refined: true, c7Conf: 0.9, obsc: [3]float64{1, 0, 0}}
	a := newAnalyzer(t, k)
	path := testImage(t, pipelinetest.Image{}) // no spacing, no view
	r, _ := a.AnalyzeFileDetailed(context.Background(), path, Options{})
	if r.Status != result.StatusOK || r.SpacingSource != result.SpacingNone || r.PixelSpacingMM != nil || r.Parameters.C2C7SVAmm != nil {
		t.Fatalf("%+v", r)
	}
	if strings.Join(r.Review.Reasons, ",") != result.ReasonNoPixelSpacing {
		t.Errorf("reasons %v", r.Review.Reasons)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"c2c7_sva_mm":null`, `"pixel_spacing_mm":null`, `"spacing_source":"none"`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
}

func TestAnalyzeRejections(t *testing.T) {
	t.Parallel()
	k := &knownStages{refined: true}
	a := newAnalyzer(t, k)
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("this is not DICOM at all, just a text file with some words"), 0o644)

	tests := []struct {
		name, path, wantErr string
	}{
		{"missing file", filepath.Join(dir, "nope.dcm"), "no such file"},
		{"text file", text, "not an image"},
		{"structured report", pipelinetest.Realworld(t, "sr-examples/sr_document.dcm"), "structured report"},
		{"16x16 lateral CR", pipelinetest.Realworld(t, "pydicom-cspine-cr/dicomdirtests_77654033_CR1_6154"), "too small: 16×16"},
		{"oblique CR", pipelinetest.Realworld(t, "pydicom-cspine-cr/dicomdirtests_77654033_CR2_6247"), "oblique by header"},
		{"AP", testImage(t, pipelinetest.Image{ViewPosition: "AP"}), "frontal (AP/PA) by header"},
		{"chest lateral", testImage(t, pipelinetest.Image{ViewPosition: "LL", BodyPartExamined: "CHEST"}), "BodyPartExamined"},
		{"tiny", func() string {
			p := filepath.Join(dir, "tiny.dcm")
			pipelinetest.WriteDICOM(t, p, pipelinetest.Image{Rows: 100, Cols: 300, Pix: make([]uint16, 30000)})
			return p
		}(), "too small: 300×100"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := a.AnalyzeFile(context.Background(), tc.path, Options{})
			if r.Status != result.StatusRejected || !strings.Contains(r.Error, tc.wantErr) || r.File != tc.path {
				t.Errorf("result %+v, want rejected with %q", r, tc.wantErr)
			}
			if r.Parameters != nil || r.Review != nil {
				t.Errorf("rejected result carries a measurement: %+v", r)
			}
		})
	}
	if k.calls != 0 {
		t.Errorf("models ran %d times on rejected inputs", k.calls)
	}
}

// TestAnalyzeUnsupportedTransferSyntax compresses an image with DCMTK's
// JPEG-LS encoder, a transfer syntax the pipeline does not decode.
func TestAnalyzeUnsupportedTransferSyntax(t *testing.T) {
	t.Parallel()
	tool, err := exec.LookPath("dcmcjpls")
	if err != nil {
		t.Fatalf("dcmcjpls (DCMTK) is required: %v", err)
	}
	src := testImage(t, pipelinetest.Image{ViewPosition: "LL"})
	dst := filepath.Join(t.TempDir(), "jls.dcm")
	if out, err := exec.Command(tool, src, dst).CombinedOutput(); err != nil {
		t.Fatalf("dcmcjpls: %v\n%s", err, out)
	}
	a := newAnalyzer(t, &knownStages{})
	r := a.AnalyzeFile(context.Background(), dst, Options{})
	if r.Status != result.StatusRejected || !strings.Contains(r.Error, "unsupported transfer syntax") || !strings.Contains(r.Error, "1.2.840.10008.1.2.4.80") {
		t.Errorf("result %+v", r)
	}
}

func TestAnalyzeDeterministicAndConcurrent(t *testing.T) {
	t.Parallel()
	a := newAnalyzer(t, &knownStages{dx: 1.234567, dy: -2.5, c7Conf: 0.61, obsc: [3]float64{0.2, 0.5, 0.3}, refined: true})
	path := testImage(t, pipelinetest.Image{ViewPosition: "LL", ImagerPixelSpacing: []float64{0.15, 0.15}})
	encode := func(r result.Result) string {
		r.TimingsMS = nil
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	want := encode(a.AnalyzeFile(context.Background(), path, Options{}))
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = encode(a.AnalyzeFile(context.Background(), path, Options{}))
		}()
	}
	wg.Wait()
	for i, g := range got {
		if g != want {
			t.Errorf("run %d differs:\n%s\n%s", i, g, want)
		}
	}
}

func TestRound(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ v, step, want float64 }{
		{1.23456, 0.01, 1.23}, {0.1 + 0.2, 0.001, 0.3}, {-2.5049, 0.01, -2.5}, {12.3456789, 0.001, 12.346},
	} {
		if got := round(tc.v, tc.step); got != tc.want {
			t.Errorf("round(%v, %v) = %v, want %v", tc.v, tc.step, got, tc.want)
		}
	}
}
