package eval

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"

	"github.com/cspine/cspine/pipeline"
	"github.com/cspine/cspine/pipeline/result"
)

// AnalyzeFunc analyzes one file with the production pipeline and returns the
// result and the features its review was decided on.
type AnalyzeFunc func(ctx context.Context, path string) (result.Result, pipeline.Features)

// Sample is one evaluated image.
type Sample struct {
	Truth    result.Truth
	Result   result.Result
	Features pipeline.Features
}

// ReadTruth reads DIR/truth.jsonl.
func ReadTruth(dir string) ([]result.Truth, error) {
	path := filepath.Join(dir, "truth.jsonl")
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read truth: %w", err)
	}
	defer f.Close()
	var out []result.Truth
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var t result.Truth
		if err := json.Unmarshal(sc.Bytes(), &t); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, line, err)
		}
		if t.File == "" {
			return nil, fmt.Errorf("%s line %d: no file", path, line)
		}
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no entries", path)
	}
	return out, nil
}

// Run analyzes every file of truth (paths relative to dir) with workers
// concurrent analyses and returns the samples in truth order.
func Run(ctx context.Context, dir string, truth []result.Truth, analyze AnalyzeFunc, workers int) ([]Sample, error) {
	if workers < 1 {
		workers = 1
	}
	samples := make([]Sample, len(truth))
	idx := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				path := truth[i].File
				if !filepath.IsAbs(path) {
					path = filepath.Join(dir, path)
				}
				r, f := analyze(ctx, path)
				samples[i] = Sample{Truth: truth[i], Result: r, Features: f}
			}
		}()
	}
	var err error
feed:
	for i := range truth {
		select {
		case idx <- i:
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(idx)
	wg.Wait()
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", dir, err)
	}
	for i, s := range samples {
		if s.Truth.SOPInstanceUID != "" && s.Result.SOPInstanceUID != "" && s.Truth.SOPInstanceUID != s.Result.SOPInstanceUID {
			return nil, fmt.Errorf("%s: SOP Instance UID %s, truth says %s", truth[i].File, s.Result.SOPInstanceUID, s.Truth.SOPInstanceUID)
		}
	}
	return samples, nil
}

// Param is one evaluated parameter.
type Param struct {
	Key   string // JSON key, e.g. "c2c7_cobb_deg" or "segmental_deg.C2-C3"
	Label string
	Unit  string
	Angle bool // counts for "large error"
	get   func(p *result.Parameters) (float64, bool)
}

// Params are the evaluated parameters, in report order.
var Params = func() []Param {
	ps := []Param{
		{"c2c7_cobb_deg", "C2–C7 Cobb", "°", true, func(p *result.Parameters) (float64, bool) { return p.C2C7CobbDeg, true }},
		{"c2_slope_deg", "C2 slope", "°", true, func(p *result.Parameters) (float64, bool) { return p.C2SlopeDeg, true }},
		{"c7_slope_deg", "C7 slope", "°", true, func(p *result.Parameters) (float64, bool) { return p.C7SlopeDeg, true }},
		{"c7_sup_slope_deg", "C7 superior slope", "°", true, func(p *result.Parameters) (float64, bool) { return p.C7SupSlopeDeg, true }},
		{"c2c7_sva_mm", "C2–C7 SVA", "mm", false, func(p *result.Parameters) (float64, bool) {
			if p.C2C7SVAmm == nil {
				return 0, false
			}
			return *p.C2C7SVAmm, true
		}},
	}
	for _, s := range result.SegmentNames {
		ps = append(ps, Param{"segmental_deg." + s, "segmental " + s, "°", false, func(p *result.Parameters) (float64, bool) {
			v, ok := p.SegmentalDeg[s]
			return v, ok
		}})
	}
	return ps
}()

// Grades are the obscuration groups of a report, "all" last.
var Grades = []string{result.ObscurationNone, result.ObscurationPartial, result.ObscurationComplete, "all"}

// ParamStats are the agreement statistics of one parameter in one group.
type ParamStats struct {
	Param                 Param
	N                     int
	MAE, MedAE, ICC       float64
	Bias, LoALow, LoAHigh float64
}

// Group are the statistics of one obscuration grade.
type Group struct {
	Grade    string
	Measured int // measurable images the pipeline measured
	Rejected int // measurable images the pipeline rejected
	Params   []ParamStats
	// Landmark error in mm over every landmark of every measured image
	// whose truth has a pixel spacing; LandmarkNoSpacing counts the others.
	LandmarkMean, LandmarkP95 float64
	LandmarkNoSpacing         int
	Flagged                   int // measured images flagged for review
	LargeErrors               int // measured images with an angle off by more than LargeErrorDeg
	LargeCaught               int // of those, flagged
}

// FlagRate is Flagged / Measured.
func (g Group) FlagRate() float64 { return ratio(g.Flagged, g.Measured) }

// Catch is LargeCaught / LargeErrors (NaN when there are none).
func (g Group) Catch() float64 { return ratio(g.LargeCaught, g.LargeErrors) }

func ratio(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

// Report is the evaluation of one mode over one data set.
type Report struct {
	Data          string
	Mode          string
	Model         string
	LargeErrorDeg float64
	Images        int
	Groups        []Group // in Grades order
	// Negatives are images the truth says must not be measured.
	Negatives, NegRejected, NegFlagged, NegMissed int
	ReasonCounts                                  map[string]int
}

// DefaultLargeErrorDeg is the angle error above which a result is a "large
// error" the review flag should catch.
const DefaultLargeErrorDeg = 5.0

// LargeError reports whether any angle parameter of r is off from the truth
// by more than limit degrees. Not measured counts as large.
func LargeError(r *result.Result, t *result.Truth, limit float64) bool {
	if r.Parameters == nil || t.Parameters == nil {
		return true
	}
	for _, p := range Params {
		if !p.Angle {
			continue
		}
		a, ok1 := p.get(r.Parameters)
		b, ok2 := p.get(t.Parameters)
		if !ok1 || !ok2 || math.Abs(a-b) > limit {
			return true
		}
	}
	return false
}

// landmarkErrors returns the per-landmark distances between result and truth,
// in mm when the truth has a pixel spacing, else in pixels.
func landmarkErrors(r *result.Result, t *result.Truth) ([]float64, string) {
	unit := "px"
	row, col := 1.0, 1.0
	if len(t.PixelSpacingMM) == 2 && t.PixelSpacingMM[0] > 0 && t.PixelSpacingMM[1] > 0 {
		row, col, unit = t.PixelSpacingMM[0], t.PixelSpacingMM[1], "mm"
	}
	byName := make(map[string]result.Landmark, len(r.Landmarks))
	for _, l := range r.Landmarks {
		byName[l.Name] = l
	}
	var out []float64
	for _, tl := range t.Landmarks {
		l, ok := byName[tl.Name]
		if !ok {
			continue
		}
		out = append(out, math.Hypot((l.X-tl.X)*col, (l.Y-tl.Y)*row))
	}
	return out, unit
}

// Summarize computes the report of samples. Review flags are those in the
// results (use Reflag to apply other thresholds first).
func Summarize(data, mode string, samples []Sample, largeDeg float64) Report {
	rep := Report{Data: data, Mode: mode, LargeErrorDeg: largeDeg, Images: len(samples), ReasonCounts: map[string]int{}}
	for _, s := range samples {
		if s.Result.Model != nil && rep.Model == "" {
			rep.Model = s.Result.Model.Name + " " + s.Result.Model.Version
		}
		if s.Result.Review != nil {
			for _, r := range s.Result.Review.Reasons {
				rep.ReasonCounts[r]++
			}
		}
		if !s.Truth.Measurable {
			rep.Negatives++
			switch {
			case s.Result.Status != result.StatusOK:
				rep.NegRejected++
			case s.Result.Review != nil && s.Result.Review.Required:
				rep.NegFlagged++
			default:
				rep.NegMissed++
			}
		}
	}
	for _, g := range Grades {
		rep.Groups = append(rep.Groups, summarizeGroup(g, samples, largeDeg))
	}
	return rep
}

func summarizeGroup(grade string, samples []Sample, largeDeg float64) Group {
	g := Group{Grade: grade}
	pred := make([][]float64, len(Params))
	truth := make([][]float64, len(Params))
	var lmErr []float64
	for i := range samples {
		s := &samples[i]
		if !s.Truth.Measurable || (grade != "all" && s.Truth.Obscuration != grade) {
			continue
		}
		if s.Result.Status != result.StatusOK || s.Result.Parameters == nil || s.Truth.Parameters == nil {
			g.Rejected++
			continue
		}
		g.Measured++
		flagged := s.Result.Review != nil && s.Result.Review.Required
		if flagged {
			g.Flagged++
		}
		if LargeError(&s.Result, &s.Truth, largeDeg) {
			g.LargeErrors++
			if flagged {
				g.LargeCaught++
			}
		}
		for j, p := range Params {
			a, ok1 := p.get(s.Result.Parameters)
			b, ok2 := p.get(s.Truth.Parameters)
			if ok1 && ok2 {
				pred[j] = append(pred[j], a)
				truth[j] = append(truth[j], b)
			}
		}
		if e, unit := landmarkErrors(&s.Result, &s.Truth); unit == "mm" {
			lmErr = append(lmErr, e...)
		} else {
			g.LandmarkNoSpacing++
		}
	}
	for j, p := range Params {
		ps := ParamStats{Param: p, N: len(pred[j])}
		diff := make([]float64, len(pred[j]))
		for i := range diff {
			diff[i] = pred[j][i] - truth[j][i]
		}
		ps.MAE, ps.MedAE = MeanAbs(diff), MedianAbs(diff)
		ps.ICC, _ = ICC21Pairs(pred[j], truth[j])
		ba := BlandAltmanOf(pred[j], truth[j])
		ps.Bias, ps.LoALow, ps.LoAHigh = ba.Bias, ba.Lower, ba.Upper
		g.Params = append(g.Params, ps)
	}
	g.LandmarkMean, g.LandmarkP95 = MeanAbs(lmErr), Percentile(lmErr, 95)
	return g
}

// Reflag recomputes every sample's review from its features with th,
// keeping reasons that do not come from thresholds (rejections untouched).
func Reflag(samples []Sample, th pipeline.Thresholds) []Sample {
	out := make([]Sample, len(samples))
	for i, s := range samples {
		out[i] = s
		if s.Result.Status != result.StatusOK {
			continue
		}
		reasons := th.Reasons(s.Features)
		out[i].Result.Review = &result.Review{Required: len(reasons) > 0, Reasons: reasons}
	}
	return out
}

// ErrNoSamples is returned when there is nothing to evaluate.
var ErrNoSamples = errors.New("no measurable samples")
