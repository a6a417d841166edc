package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cspine/cspine/pipeline/decode"
	"github.com/cspine/cspine/pipeline/geometry"
	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/pipeline/stages"
)

// Stages runs the landmark models; *stages.Models implements it.
type Stages interface {
	Run(ctx context.Context, in stages.Input, hierarchical bool) (*stages.Output, error)
	Info() stages.Info
}

// Config configures an Analyzer. The zero value is completed by WithDefaults.
type Config struct {
	// Thresholds decide the review reasons (default: the shipped, calibrated
	// thresholds.json).
	Thresholds *Thresholds
	// Limits are the anatomical plausibility ranges (default
	// geometry.DefaultLimits()).
	Limits *geometry.Limits
	// Consistency are the anatomical rules that choose among the
	// specialists' candidate peaks (default DefaultConsistency()).
	Consistency *Consistency
	// MinRows and MinCols: smaller images are rejected (default 256: a
	// cervical spine cannot be measured on fewer pixels, and the 16×16
	// thumbnails some archives keep must not be).
	MinRows, MinCols int
}

// WithDefaults fills unset fields with the defaults.
func (c Config) WithDefaults() Config {
	if c.Thresholds == nil {
		t := DefaultThresholds()
		c.Thresholds = &t
	}
	if c.Limits == nil {
		l := geometry.DefaultLimits()
		c.Limits = &l
	}
	if c.Consistency == nil {
		k := DefaultConsistency()
		c.Consistency = &k
	}
	if c.MinRows == 0 {
		c.MinRows = 256
	}
	if c.MinCols == 0 {
		c.MinCols = 256
	}
	return c
}

// Options are per-analysis options.
type Options struct {
	// SingleStage runs the global model alone (the paper's baseline); every
	// step after it is shared with the hierarchical mode.
	SingleStage bool
}

// Analyzer measures radiographs. Build it once around the loaded models;
// it is safe for concurrent use.
type Analyzer struct {
	models Stages
	info   stages.Info
	cfg    Config
	prior  *C7Prior // the model set's C7 shape prior, nil when it has none
}

// New returns an Analyzer running models with cfg.
func New(models Stages, cfg Config) (*Analyzer, error) {
	if models == nil {
		return nil, errors.New("pipeline: no models")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Thresholds.Validate(); err != nil {
		return nil, fmt.Errorf("pipeline: thresholds: %w", err)
	}
	a := &Analyzer{models: models, info: models.Info(), cfg: cfg}
	if a.info.C7Prior != nil {
		p, err := ParseC7Prior(a.info.C7Prior)
		if err != nil {
			return nil, fmt.Errorf("pipeline: model set %s %s: %w", a.info.Name, a.info.Version, err)
		}
		a.prior = p
	}
	if r := cfg.Thresholds.C7Risk; r != nil && a.prior == nil {
		for _, name := range r.Features {
			if slices.Contains(PriorRiskFeatureNames, name) {
				slog.Warn("the review thresholds' C7 risk model uses the C7 shape prior, which this model set lacks: every hierarchical result will be flagged for review (c7_low_confidence); fit a prior (cspine eval --fit-prior) or a risk model without it",
					"models", a.info.Name+" "+a.info.Version, "feature", name)
				break
			}
		}
	}
	return a, nil
}

// Config returns the analyzer's effective configuration.
func (a *Analyzer) Config() Config { return a.cfg }

// AnalyzeFile decodes and analyzes one DICOM file. Inputs the pipeline will
// not measure give status "rejected" with an error; it never panics.
func (a *Analyzer) AnalyzeFile(ctx context.Context, path string, opts Options) result.Result {
	r, _ := a.AnalyzeFileDetailed(ctx, path, opts)
	return r
}

// AnalyzeFileDetailed is AnalyzeFile that also returns the features the
// review was decided on (for evaluation and calibration).
func (a *Analyzer) AnalyzeFileDetailed(ctx context.Context, path string, opts Options) (result.Result, Features) {
	start := time.Now()
	im, err := decode.File(path)
	decodeMS := ms(time.Since(start))
	if err != nil {
		return reject(path, "", "", rejectionMessage(err)), Features{}
	}
	r, f := a.analyze(ctx, path, im, opts, start, true)
	if r.TimingsMS != nil {
		r.TimingsMS["decode"] = round(decodeMS, 0.01)
	}
	return r, f
}

// AnalyzeImage analyzes an already decoded image; file is only reported.
func (a *Analyzer) AnalyzeImage(ctx context.Context, file string, im *decode.Image, opts Options) result.Result {
	r, _ := a.analyze(ctx, file, im, opts, time.Now(), false)
	return r
}

// AnalyzeImageDetailed is AnalyzeImage with the review features.
func (a *Analyzer) AnalyzeImageDetailed(ctx context.Context, file string, im *decode.Image, opts Options) (result.Result, Features) {
	return a.analyze(ctx, file, im, opts, time.Now(), false)
}

// SOP Class UID prefix of the structured report storage classes
// (PS3.4 B.5: 1.2.840.10008.5.1.4.1.1.88.x).
const srClassPrefix = "1.2.840.10008.5.1.4.1.1.88."

var sopClassInError = regexp.MustCompile(`SOP Class ([0-9.]+)`)

// rejectionMessage turns a decoding error into the "error" of a rejected
// result.
func rejectionMessage(err error) string {
	var ts *decode.UnsupportedTransferSyntaxError
	switch {
	case errors.As(err, &ts):
		return fmt.Sprintf("unsupported transfer syntax %s (%s)", ts.Name, ts.UID)
	case errors.Is(err, decode.ErrNotImage):
		if m := sopClassInError.FindStringSubmatch(err.Error()); m != nil && strings.HasPrefix(m[1], srClassPrefix) {
			return fmt.Sprintf("a structured report (SOP Class %s), not an image", m[1])
		}
		return "not an image: " + err.Error()
	case errors.Is(err, decode.ErrTruncated):
		return "truncated object: " + err.Error()
	case errors.Is(err, decode.ErrMalformed):
		return "malformed object: " + err.Error()
	case errors.Is(err, decode.ErrUnsupported):
		return "unsupported image: " + err.Error()
	}
	return err.Error()
}

func reject(file, sop, study, msg string) result.Result {
	return result.Result{File: file, SOPInstanceUID: sop, StudyInstanceUID: study, Status: result.StatusRejected, Error: msg}
}

// Rejection returns why the header or size of im rules out a measurement,
// or "" when it may be measured.
func (a *Analyzer) Rejection(im *decode.Image) string {
	m := &im.Meta
	if strings.HasPrefix(m.SOPClassUID, srClassPrefix) {
		return fmt.Sprintf("a structured report (SOP Class %s), not an image", m.SOPClassUID)
	}
	switch v := ClassifyView(viewHeader(m)); v.View {
	case ViewFrontal, ViewOblique:
		return fmt.Sprintf("not a lateral view: %s by header (%s)", v.View, v.Evidence)
	}
	if OtherBodyPart(m.BodyPartExamined) {
		return fmt.Sprintf("not a cervical spine radiograph by header (BodyPartExamined %q)", m.BodyPartExamined)
	}
	if im.Rows < a.cfg.MinRows || im.Cols < a.cfg.MinCols {
		return fmt.Sprintf("image too small: %d×%d pixels, at least %d×%d needed", im.Cols, im.Rows, a.cfg.MinCols, a.cfg.MinRows)
	}
	if len(im.Modality) != im.Rows*im.Cols {
		return fmt.Sprintf("image has %d values for %d×%d pixels", len(im.Modality), im.Cols, im.Rows)
	}
	return ""
}

func viewHeader(m *decode.Meta) ViewHeader {
	return ViewHeader{ViewPosition: m.ViewPosition, SeriesDescription: m.SeriesDescription, ProtocolName: m.ProtocolName,
		StudyDescription: m.StudyDescription, PatientOrientation: m.PatientOrientation}
}

// analyze runs everything after decoding. owned says that im belongs to the
// analysis (decoded by it) and may be released early.
func (a *Analyzer) analyze(ctx context.Context, file string, im *decode.Image, opts Options, start time.Time, owned bool) (res result.Result, feat Features) {
	sop, study := im.Meta.SOPInstanceUID, im.Meta.StudyInstanceUID
	defer func() {
		if p := recover(); p != nil {
			res, feat = reject(file, sop, study, fmt.Sprintf("internal error: %v", p)), Features{}
		}
	}()
	if msg := a.Rejection(im); msg != "" {
		return reject(file, sop, study, msg), Features{}
	}
	m := &im.Meta
	view := ClassifyView(viewHeader(m))
	sp, spSource := SpacingFrom(m.PixelSpacing, m.ImagerPixelSpacing, m.ERMF)

	t := time.Now()
	pix := getDisplayBuffer(im.Rows * im.Cols)
	defer putDisplayBuffer(pix)
	im.DisplayTo(pix)
	windowMS := ms(time.Since(t))
	if owned {
		// The modality values are not needed any more: let the collector
		// take them while the models run (peak memory of parallel analyses).
		im.Modality = nil
	}
	imgContrast := contrast(pix, im.Rows, im.Cols)

	in := stages.Input{Rows: im.Rows, Cols: im.Cols, Pix: pix}
	if sp.Known() {
		in.SpacingMM = [2]float64{sp.RowMM, sp.ColMM}
	}
	out, err := a.models.Run(ctx, in, !opts.SingleStage)
	if err != nil {
		return reject(file, sop, study, fmt.Sprintf("analysis failed: %v", err)), Features{}
	}
	if err := checkOutput(out); err != nil {
		return reject(file, sop, study, fmt.Sprintf("analysis failed: %v", err)), Features{}
	}

	t = time.Now()
	r, f := a.measure(out, opts, sp, view.View == ViewLateral, imgContrast)
	measureMS := ms(time.Since(t))

	r.File, r.SOPInstanceUID, r.StudyInstanceUID = file, sop, study
	r.SpacingSource = spSource
	if sp.Known() {
		r.PixelSpacingMM = []float64{sp.RowMM, sp.ColMM}
	}
	mode := result.ModeHierarchical
	if opts.SingleStage {
		mode = result.ModeSingleStage
	}
	r.Model = &result.Model{Name: a.info.Name, Version: a.info.Version, Mode: mode}
	r.TimingsMS = map[string]float64{"window": round(windowMS, 0.01), "measure": round(measureMS, 0.01)}
	for k, v := range out.TimingsMS {
		r.TimingsMS[k] = round(v, 0.01)
	}
	r.TimingsMS["total"] = round(ms(time.Since(start)), 0.01)
	return r, f
}

// Channel indices of C7's four corners (sup_ant, sup_post, inf_ant,
// inf_post) in the 23 landmarks.
var c7Index = [4]int{geometry.SupAnt(7), geometry.SupPost(7), geometry.InfAnt(7), geometry.InfPost(7)}

// measure merges the stages' outputs and computes everything after stage 1:
// it is the code the hierarchical and single-stage modes share.
func (a *Analyzer) measure(out *stages.Output, opts Options, sp geometry.Spacing, headerLateral bool, contrast float64) (result.Result, Features) {
	var lm [geometry.NumLandmarks]geometry.Point
	var conf [geometry.NumLandmarks]float64
	var stage [geometry.NumLandmarks]string
	for i := range lm {
		lm[i] = geometry.Point{X: out.Global[i].X, Y: out.Global[i].Y}
		conf[i] = out.GlobalConf[i]
		stage[i] = result.StageGlobal
	}
	var global = lm
	refined := out.Refined && !opts.SingleStage
	if refined {
		for i := 0; i < 3; i++ { // C2_centroid, C2_inf_ant, C2_inf_post
			lm[i] = geometry.Point{X: out.C2[i].X, Y: out.C2[i].Y}
			conf[i] = out.C2Conf[i]
			stage[i] = result.StageRefined
		}
		for j, i := range c7Index {
			lm[i] = geometry.Point{X: out.C7[j].X, Y: out.C7[j].Y}
			conf[i] = out.C7Conf[j]
			stage[i] = result.StageRefined
		}
	}
	f := Features{C7DisagreementMM: -1, C2DisagreementMM: -1, C7Steps: -1, C2SpreadDeg: -1, C7SpreadDeg: -1,
		C2SlopeSDDeg: -1, C7InfSlopeSDDeg: -1, C7SupSlopeSDDeg: -1, C7ChoiceDeltaDeg: -1,
		C7InfPriorDeltaDeg: -1, C7SupPriorDeltaDeg: -1}
	if refined {
		a.chooseCandidates(out, &lm, &conf, &f)
		f.C2SpreadDeg = endplateSpread(out.C2Runs, [][2]int{{1, 2}})
		f.C7SpreadDeg = endplateSpread(out.C7Runs, [][2]int{{0, 1}, {2, 3}})
		f.C2SlopeSDDeg, _ = endplateSD(out.C2Runs, 1, 2)
		var supMean, infMean float64
		f.C7SupSlopeSDDeg, supMean = endplateSD(out.C7Runs, 0, 1)
		f.C7InfSlopeSDDeg, infMean = endplateSD(out.C7Runs, 2, 3)
		if f.C7SupSlopeSDDeg >= 0 && f.C7InfSlopeSDDeg >= 0 {
			sup := direction(lm[c7Index[0]], lm[c7Index[1]])
			inf := direction(lm[c7Index[2]], lm[c7Index[3]])
			f.C7ChoiceDeltaDeg = sanitize(math.Max(math.Abs(wrap180(sup-supMean)), math.Abs(wrap180(inf-infMean))))
		}
	}

	facing, agreement := geometry.DetermineFacing(&lm, &conf)
	if refined {
		a.applyPrior(&lm, facing, out.C7Obscuration, &f)
	}
	p := geometry.Measure(&lm, facing, sp)
	f.SpacingKnown, f.HeaderLateral, f.Contrast = sp.Known(), headerLateral, contrast
	if s := globalStep(&global); s > 0 {
		c7c := midpoint(midpoint(lm[c7Index[0]], lm[c7Index[1]]), midpoint(lm[c7Index[2]], lm[c7Index[3]]))
		f.C7Steps = geometry.Dist(midpoint(lm[geometry.C2InfAnt], lm[geometry.C2InfPost]), c7c) / s
	}
	f.Implausible = geometry.Check(&lm, facing, agreement, p, sp, *a.cfg.Limits)
	f.C7MinCornerConfidence = 1
	for _, i := range c7Index {
		f.C7Confidence += conf[i] / 4
		f.C7MinCornerConfidence = math.Min(f.C7MinCornerConfidence, conf[i])
	}
	f.C7MinCornerConfidence = sanitize(f.C7MinCornerConfidence)
	for _, c := range out.GlobalConf {
		f.GlobalConfidence += c / geometry.NumLandmarks
	}
	if !opts.SingleStage {
		f.C7Obscuration = out.C7Obscuration
	}
	if refined {
		mmPerPx := 0.0
		if !sp.Known() {
			if w := geometry.MedianEndplateWidth(&lm); w > 0 {
				mmPerPx = a.cfg.Thresholds.NominalEndplateMM / w
			}
		}
		dist := func(i int) float64 {
			if sp.Known() {
				return geometry.DistMM(global[i], lm[i], sp)
			}
			return geometry.Dist(global[i], lm[i]) * mmPerPx
		}
		var d float64
		for _, i := range c7Index {
			d += dist(i) / 4
		}
		f.C7DisagreementMM = d
		f.C2DisagreementMM = (dist(0) + dist(1) + dist(2)) / 3
	}
	f.C7Confidence = sanitize(f.C7Confidence)
	f.GlobalConfidence = sanitize(f.GlobalConfidence)

	th := a.cfg.Thresholds
	reasons := th.Reasons(f)
	r := result.Result{
		Status: result.StatusOK,
		Facing: facing.String(),
		Parameters: &result.Parameters{
			C2C7CobbDeg:   round(p.CobbDeg, 0.001),
			C2SlopeDeg:    round(p.C2SlopeDeg, 0.001),
			C7SlopeDeg:    round(p.C7SlopeDeg, 0.001),
			C7SupSlopeDeg: round(p.C7SupSlopeDeg, 0.001),
			SegmentalDeg:  make(map[string]float64, len(result.SegmentNames)),
		},
		C7:     &result.C7{Confidence: round(f.C7Confidence, 0.001), Obscuration: th.Obscuration(f)},
		Review: &result.Review{Required: len(reasons) > 0, Reasons: reasons},
	}
	if p.SVAmm != nil {
		v := round(*p.SVAmm, 0.01)
		r.Parameters.C2C7SVAmm = &v
	}
	for i, s := range result.SegmentNames {
		r.Parameters.SegmentalDeg[s] = round(p.SegmentalDeg[i], 0.001)
	}
	r.Landmarks = make([]result.Landmark, geometry.NumLandmarks)
	for i := range lm {
		r.Landmarks[i] = result.Landmark{Name: result.LandmarkNames[i], X: round(lm[i].X, 0.01), Y: round(lm[i].Y, 0.01),
			Confidence: round(sanitize(conf[i]), 0.001), Stage: stage[i]}
	}
	return r, f
}

// applyPrior records the endplate slopes the C7 shape prior reads and, when
// the model set has a prior, blends the C7 endplates toward it (C7Prior) and
// records how far it lay from the specialist.
func (a *Analyzer) applyPrior(lm *[geometry.NumLandmarks]geometry.Point, facing geometry.Facing, obscuration [3]float64, f *Features) {
	if a.prior == nil {
		o := observeColumn(lm, facing)
		f.EndplateSlopesDeg, f.ColumnDirectionsDeg, f.C7ImageSlopesDeg = o.slopes, o.dirs, o.image
		return
	}
	o := a.prior.apply(lm, facing, obscuration)
	f.EndplateSlopesDeg, f.ColumnDirectionsDeg, f.C7ImageSlopesDeg = o.slopes, o.dirs, o.image
	delta := func(k int) float64 {
		d := math.Abs(o.prior[k] - o.image[k])
		if math.IsNaN(d) || math.IsInf(d, 0) {
			return -1 // not available: the risk model then flags
		}
		return d
	}
	f.C7InfPriorDeltaDeg, f.C7SupPriorDeltaDeg = delta(0), delta(1)
}

// chooseCandidates replaces the specialists' strongest peaks by the
// anatomically consistent choice among their candidates (Consistency): C2
// first (checked against the C7 width), then C7 (counted from the chosen C2
// inferior endplate).
func (a *Analyzer) chooseCandidates(out *stages.Output, lm *[geometry.NumLandmarks]geometry.Point, conf *[geometry.NumLandmarks]float64, f *Features) {
	k := a.cfg.Consistency
	c7w := (geometry.Dist(lm[c7Index[0]], lm[c7Index[1]]) + geometry.Dist(lm[c7Index[2]], lm[c7Index[3]])) / 2
	sel, ok := k.ChooseC2(out.C2Peaks, c7w)
	f.C2Plausible = ok
	if ok {
		for i := range 3 {
			p := out.C2Peaks[i][sel[i]]
			lm[i] = geometry.Point{X: p.X, Y: p.Y}
			conf[i] = p.Conf
		}
	}
	ch := k.ChooseC7(out.C7Peaks, midpoint(lm[geometry.C2InfAnt], lm[geometry.C2InfPost]))
	f.C7Plausible = ch.Chosen >= 0
	f.C7Levels = len(ch.Levels)
	f.C7LevelMoved = ch.Moved
	f.C7LevelMargin = 4
	for i, l := range ch.Levels {
		if i != ch.Chosen {
			f.C7LevelMargin = math.Min(f.C7LevelMargin, ch.Levels[ch.Chosen].Conf-l.Conf)
		}
	}
	if ch.Chosen >= 0 {
		for j, i := range c7Index {
			p := out.C7Peaks[j][ch.Index[j]]
			lm[i] = geometry.Point{X: p.X, Y: p.Y}
			conf[i] = p.Conf
		}
	}
}

// endplateSpread is the largest difference, over the endplates given as
// index pairs and over every two runs, between the directions the runs give
// to the same endplate (degrees); -1 with fewer than two runs.
func endplateSpread(runs [][]stages.Point, endplates [][2]int) float64 {
	if len(runs) < 2 {
		return -1
	}
	spread := 0.0
	for _, e := range endplates {
		angles, ok := runDirections(runs, e[0], e[1])
		if !ok {
			return -1
		}
		for i := range angles {
			angles[i] = angles[i] * 180 / math.Pi // as (atan2 · 180) / π before
		}
		for i := range angles {
			for j := i + 1; j < len(angles); j++ {
				d := math.Mod(angles[j]-angles[i]+540, 360) - 180 // wrapped to [−180, 180)
				spread = math.Max(spread, math.Abs(d))
			}
		}
	}
	return sanitize(spread)
}

// runDirections is the direction (radians) from landmark i to landmark j in
// every run; false when a run lacks one of them.
func runDirections(runs [][]stages.Point, i, j int) ([]float64, bool) {
	dirs := make([]float64, len(runs))
	for k, r := range runs {
		if len(r) <= max(i, j) {
			return nil, false
		}
		dirs[k] = math.Atan2(r[j].Y-r[i].Y, r[j].X-r[i].X)
	}
	return dirs, true
}

// direction is the direction from a to b in degrees.
func direction(a, b geometry.Point) float64 {
	return math.Atan2(b.Y-a.Y, b.X-a.X) * 180 / math.Pi
}

// wrap180 wraps an angle difference to [−180, 180).
func wrap180(d float64) float64 { return math.Mod(math.Mod(d+180, 360)+360, 360) - 180 }

// endplateSD is the standard deviation and the circular mean of the
// direction from landmark i to landmark j over the runs (degrees); -1 and 0
// with fewer than two runs.
func endplateSD(runs [][]stages.Point, i, j int) (sd, mean float64) {
	if len(runs) < 2 {
		return -1, 0
	}
	dirs, ok := runDirections(runs, i, j)
	if !ok {
		return -1, 0
	}
	var sx, sy float64
	for _, d := range dirs {
		sx += math.Cos(d)
		sy += math.Sin(d)
	}
	m := math.Atan2(sy, sx) * 180 / math.Pi
	var ss float64
	for _, d := range dirs {
		e := wrap180(d*180/math.Pi - m)
		ss += e * e
	}
	return sanitize(math.Sqrt(ss / float64(len(runs)-1))), m
}

// globalStep is the median distance between neighbouring stage-1 C3–C6
// vertebra centres (pixels): one vertebral step; 0 when not finite.
func globalStep(g *[geometry.NumLandmarks]geometry.Point) float64 {
	var c [4]geometry.Point
	for n := 3; n <= 6; n++ {
		c[n-3] = midpoint(midpoint(g[geometry.SupAnt(n)], g[geometry.SupPost(n)]), midpoint(g[geometry.InfAnt(n)], g[geometry.InfPost(n)]))
	}
	d := []float64{geometry.Dist(c[0], c[1]), geometry.Dist(c[1], c[2]), geometry.Dist(c[2], c[3])}
	slices.Sort(d)
	if math.IsNaN(d[1]) || math.IsInf(d[1], 0) {
		return 0
	}
	return d[1]
}

// displayBuffers recycles the display images (20 MB for a 2500×2048
// radiograph) between analyses.
var displayBuffers sync.Pool

func getDisplayBuffer(n int) []float32 {
	if p, ok := displayBuffers.Get().(*[]float32); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]float32, n)
}

func putDisplayBuffer(b []float32) { displayBuffers.Put(&b) }

// checkOutput rejects model outputs that cannot be measured: non-finite
// coordinates (a broken model) would otherwise reach the JSON encoder.
func checkOutput(out *stages.Output) error {
	bad := func(p stages.Point) bool {
		return math.IsNaN(p.X) || math.IsNaN(p.Y) || math.IsInf(p.X, 0) || math.IsInf(p.Y, 0)
	}
	for i, p := range out.Global {
		if bad(p) {
			return fmt.Errorf("global landmark %s is not finite", result.LandmarkNames[i])
		}
	}
	if out.Refined {
		for _, p := range out.C2 {
			if bad(p) {
				return errors.New("refined C2 landmark is not finite")
			}
		}
		for _, p := range out.C7 {
			if bad(p) {
				return errors.New("refined C7 landmark is not finite")
			}
		}
	}
	return nil
}

// contrast is the standard deviation of the display image over a regular
// grid of at most about 65 000 pixels (deterministic, cheap).
func contrast(pix []float32, rows, cols int) float64 {
	step := 1
	for (rows/step)*(cols/step) > 1<<16 {
		step++
	}
	var n, sum, sum2 float64
	for y := step / 2; y < rows; y += step {
		row := pix[y*cols : (y+1)*cols]
		for x := step / 2; x < cols; x += step {
			v := float64(row[x])
			sum += v
			sum2 += v * v
			n++
		}
	}
	if n == 0 {
		return 0
	}
	mean := sum / n
	return math.Sqrt(math.Max(0, sum2/n-mean*mean))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// round rounds v to a multiple of step; JSON numbers then stay short and
// the output is stable.
func round(v, step float64) float64 {
	r := math.Round(v/step) * step
	// Remove the binary noise of the multiplication (0.1+0.2 style) by
	// formatting precision: keep the shortest decimal representation.
	digits := int(math.Max(0, -math.Floor(math.Log10(step))))
	p := math.Pow(10, float64(digits))
	return math.Round(r*p) / p
}

// sanitize maps NaN and infinities (a broken model output) to 0.
func sanitize(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}
