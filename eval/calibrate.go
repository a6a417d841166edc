package eval

import (
	"fmt"
	"math"
	"sort"

	"github.com/cspine/cspine/pipeline"
	"github.com/cspine/cspine/pipeline/result"
)

// Calibration is the outcome of Calibrate.
type Calibration struct {
	Thresholds  pipeline.Thresholds
	Measured    int     // measured images of the validation set
	LargeErrors int     // of those, with an angle error above the limit
	Caught      int     // large errors flagged with the chosen thresholds
	Flagged     int     // images flagged with the chosen thresholds
	Recall      float64 // Caught / LargeErrors (1 when there are none)
	FlagRate    float64 // Flagged / Measured
	MetTarget   bool
}

// candidates returns up to max+1 distinct cut points spread over the
// quantiles of v, plus the extra values, sorted.
func candidates(v []float64, max int, extra ...float64) []float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	seen := map[float64]bool{}
	var out []float64
	add := func(x float64) {
		if !math.IsNaN(x) && !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	for _, x := range extra {
		add(x)
	}
	if len(s) > 0 {
		for i := 0; i <= max; i++ {
			add(s[(len(s)-1)*i/max])
		}
	}
	sort.Float64s(out)
	return out
}

// Calibrate chooses the tunable review thresholds on a validation set so
// that the flag catches at least targetRecall of the results with an angle
// error above largeDeg while flagging as few results as possible: without
// a risk model in base, the C7 minimum confidence, C7 stage disagreement,
// probability for c7_obscured and C7 view spread; with one (base.C7Risk),
// its MinRisk, the stage disagreement and the obscuration probability (the
// confidence and spread thresholds are switched off: the model weighs
// them). Ties prefer higher recall, then fewer reasons firing. The other
// thresholds are kept from base. When no choice reaches the target, the one
// with the highest recall (then the lowest flag rate) is returned with
// MetTarget false. Cut points come from the quantiles of the validation
// features (the risk: the large errors' risks), so the search is exhaustive
// over at most 41³×21, or (large errors + 1)×41² combinations.
// Beforehand, the image-level thresholds (not_lateral, low_image_quality)
// are lowered where needed so that they fire on at most 1% of the
// validation laterals.
func Calibrate(samples []Sample, base pipeline.Thresholds, targetRecall, largeDeg float64) (Calibration, error) {
	type item struct {
		large, fixed                bool
		conf, dis, pc, spread, risk float64
	}
	// The image-level reasons (not_lateral, low_image_quality) are meant for
	// images unlike the ones the models know; they must not fire on more
	// than 1% of the validation laterals: lower them to the 1st percentile
	// of those images' features where they would.
	var gconf, contr []float64
	for _, s := range samples {
		if s.Truth.Measurable && s.Result.Status == result.StatusOK {
			gconf = append(gconf, s.Features.GlobalConfidence)
			contr = append(contr, s.Features.Contrast)
		}
	}
	if len(gconf) > 0 {
		q := roundDown(Percentile(gconf, 1), 1e-4)
		base.NotLateralMinGlobalConfidence = math.Min(base.NotLateralMinGlobalConfidence, q)
		base.LowQualityMinGlobalConfidence = math.Min(base.LowQualityMinGlobalConfidence, q)
		base.LowQualityMinContrast = math.Min(base.LowQualityMinContrast, roundDown(Percentile(contr, 1), 1e-4))
	}

	// Features that cannot fire a tunable reason.
	never := base
	never.C7MinConfidence = 0
	never.C7MaxDisagreementMM = math.Inf(1)
	never.C7ObscuredMinProb = math.Inf(1)
	never.C7MaxSpreadDeg = math.Inf(1)
	never.C7Risk = nil
	risky := base.C7Risk != nil

	var items []item
	var confs, diss, pcs, spreads, risks []float64
	for _, s := range samples {
		if !s.Truth.Measurable || s.Result.Status != result.StatusOK || s.Result.Parameters == nil {
			continue
		}
		it := item{
			large:  LargeError(&s.Result, &s.Truth, largeDeg),
			fixed:  len(never.Reasons(s.Features)) > 0,
			conf:   s.Features.C7Confidence,
			dis:    s.Features.C7DisagreementMM,
			pc:     completeProb(base, s.Features),
			spread: s.Features.C7SpreadDeg,
		}
		if risky {
			it.risk = base.C7Risk.Risk(s.Features)
			if it.large {
				risks = append(risks, it.risk)
			}
		}
		if it.spread >= 0 {
			spreads = append(spreads, math.Nextafter(it.spread, math.Inf(-1))) // "> t" then includes it
		}
		items = append(items, it)
		confs = append(confs, math.Nextafter(it.conf, math.Inf(1))) // "< t" then includes it
		if it.dis >= 0 {
			diss = append(diss, math.Nextafter(it.dis, math.Inf(-1))) // "> t" then includes it
		}
		if it.pc >= 0.5 {
			pcs = append(pcs, it.pc)
		}
	}
	if len(items) == 0 {
		return Calibration{}, fmt.Errorf("calibrate: %w", ErrNoSamples)
	}
	confC := candidates(confs, 40, 0)
	disC := candidates(diss, 40, math.Inf(1))
	pcC := candidates(pcs, 40, 1.0)
	spC := candidates(spreads, 20, math.Inf(1))
	riskC := []float64{math.Inf(1)}
	if risky {
		// The risk model replaces the confidence and spread thresholds (it
		// weighs both). "risk ≥ t" fires, so the only cut points worth
		// trying are the risks of the large errors (raising t to the next
		// one only unflags results without a large error) and +Inf: the
		// search over t is exact.
		confC, spC = []float64{0}, []float64{math.Inf(1)}
		riskC = candidates(risks, len(risks), math.Inf(1))
	}

	best := Calibration{Recall: -1}
	var bestScore [4]float64
	// Every combination of cut points, the spread threshold varying
	// fastest (the order decides among equal scores).
	total := len(riskC) * len(confC) * len(disC) * len(pcC) * len(spC)
	for n := range total {
		r := n
		ts := spC[r%len(spC)]
		r /= len(spC)
		tp := pcC[r%len(pcC)]
		r /= len(pcC)
		td := disC[r%len(disC)]
		r /= len(disC)
		tc := confC[r%len(confC)]
		tr := riskC[r/len(confC)]
		var flagged, large, caught, fires int
		for _, it := range items {
			r1 := it.conf < tc || it.spread > ts || (risky && (math.IsNaN(it.risk) || it.risk >= tr))
			r2 := it.dis >= 0 && it.dis > td
			r3 := it.pc >= tp
			f := it.fixed || r1 || r2 || r3
			if r1 || r2 || r3 {
				fires++
			}
			if f {
				flagged++
			}
			if it.large {
				large++
				if f {
					caught++
				}
			}
		}
		recall := 1.0
		if large > 0 {
			recall = float64(caught) / float64(large)
		}
		met := recall >= targetRecall
		// Lexicographic score, smaller is better.
		score := [4]float64{b2f(!met), float64(flagged), -recall, float64(fires)}
		if !met {
			score = [4]float64{1, -recall, float64(flagged), float64(fires)}
		}
		if best.Recall < 0 || less(score, bestScore) {
			bestScore = score
			th := base
			th.C7MinConfidence, th.C7MaxDisagreementMM, th.C7ObscuredMinProb, th.C7MaxSpreadDeg = tc, td, tp, ts
			if risky {
				rm := *base.C7Risk
				rm.MinRisk = tr
				th.C7Risk = &rm
			}
			best = Calibration{Thresholds: th, Measured: len(items), LargeErrors: large, Caught: caught,
				Flagged: flagged, Recall: recall, FlagRate: float64(flagged) / float64(len(items)), MetTarget: met}
		}
	}
	// A threshold of +Inf cannot be written as JSON: use a value above every
	// observed disagreement instead (the reason then never fires on this set).
	if math.IsInf(best.Thresholds.C7MaxDisagreementMM, 1) {
		best.Thresholds.C7MaxDisagreementMM = 1000
	}
	if math.IsInf(best.Thresholds.C7MaxSpreadDeg, 1) {
		best.Thresholds.C7MaxSpreadDeg = pipeline.NeverSpreadDeg
	}
	best.Thresholds.C7MaxSpreadDeg = roundDown(best.Thresholds.C7MaxSpreadDeg, 1e-3)
	best.Thresholds.C7MinConfidence = roundUp(best.Thresholds.C7MinConfidence, 1e-4)
	best.Thresholds.C7MaxDisagreementMM = roundDown(best.Thresholds.C7MaxDisagreementMM, 1e-3)
	best.Thresholds.C7ObscuredMinProb = roundDown(best.Thresholds.C7ObscuredMinProb, 1e-4)
	if rm := best.Thresholds.C7Risk; rm != nil {
		if math.IsInf(rm.MinRisk, 1) {
			rm.MinRisk = 1.01 // never
		} else {
			rm.MinRisk = roundDown(rm.MinRisk, 1e-6)
		}
	}
	return best, nil
}

// roundUp and roundDown round a threshold to a multiple of step (for a
// readable file) in the direction that keeps every validation decision
// unchanged or stricter (toward flagging).
func roundUp(v, step float64) float64 {
	r := math.Ceil(v/step) * step
	for r < v {
		r += step
	}
	return r
}

func roundDown(v, step float64) float64 {
	r := math.Floor(v/step) * step
	for r > v {
		r -= step
	}
	return r
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func less(a, b [4]float64) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// completeProb mirrors the probability the c7_obscured reason uses.
func completeProb(th pipeline.Thresholds, f pipeline.Features) float64 {
	p := f.C7Obscuration
	if p[0]+p[1]+p[2] > 0 {
		return p[2]
	}
	if th.Obscuration(f) == result.ObscurationComplete {
		return 1
	}
	return 0
}
