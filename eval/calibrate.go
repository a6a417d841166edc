package eval

import (
	"fmt"
	"math"
	"slices"
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
	cs, err := newSearch(samples, base, largeDeg)
	if err != nil {
		return Calibration{}, fmt.Errorf("calibrate: %w", err)
	}
	best := Calibration{Recall: -1}
	var bestScore [4]float64
	cs.each(func(c cut, o outcome) {
		recall := o.recall()
		met := recall >= targetRecall
		// Lexicographic score, smaller is better.
		score := [4]float64{b2f(!met), float64(o.flagged), -recall, float64(o.fires)}
		if !met {
			score = [4]float64{1, -recall, float64(o.flagged), float64(o.fires)}
		}
		if best.Recall < 0 || less(score, bestScore) {
			bestScore = score
			best = Calibration{Thresholds: cs.thresholds(c), Measured: len(cs.items), LargeErrors: o.large, Caught: o.caught,
				Flagged: o.flagged, Recall: recall, FlagRate: float64(o.flagged) / float64(len(cs.items)), MetTarget: met}
		}
	})
	return best, nil
}

// Frontier is the review trade-off on samples: for every number of large
// errors some choice of the tunable thresholds (those Calibrate chooses,
// searched over the same cut points) can catch, the choice that flags the
// fewest results, from the fewest caught to the most; a point that flags
// as many as one catching more is left out. Calibrate(samples, base,
// target) is the first point whose catch reaches the target. On a set the
// thresholds were not calibrated on, the frontier bounds what any
// calibration could reach there.
func Frontier(samples []Sample, base pipeline.Thresholds, largeDeg float64) ([]OperatingPoint, error) {
	cs, err := newSearch(samples, base, largeDeg)
	if err != nil {
		return nil, fmt.Errorf("review trade-off: %w", err)
	}
	type entry struct {
		c     cut
		o     outcome
		score [2]int
		ok    bool
	}
	best := map[int]*entry{} // by large errors caught
	cs.each(func(c cut, o outcome) {
		score := [2]int{o.flagged, o.fires}
		e := best[o.caught]
		if e == nil {
			e = &entry{}
			best[o.caught] = e
		}
		if !e.ok || score[0] < e.score[0] || (score[0] == e.score[0] && score[1] < e.score[1]) {
			*e = entry{c: c, o: o, score: score, ok: true}
		}
	})
	caught := make([]int, 0, len(best))
	for k := range best {
		caught = append(caught, k)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(caught)))
	var out []OperatingPoint
	for _, k := range caught { // most caught first: keep a point only if it flags fewer than every point catching more
		e := best[k]
		if len(out) > 0 && e.o.flagged >= out[len(out)-1].Flagged {
			continue
		}
		out = append(out, OperatingPoint{Thresholds: cs.thresholds(e.c), Measured: len(cs.items),
			Flagged: e.o.flagged, LargeErrors: e.o.large, Caught: e.o.caught})
	}
	slices.Reverse(out)
	return out, nil
}

// search is the exhaustive search over the tunable review thresholds that
// Calibrate and Frontier share.
type search struct {
	base  pipeline.Thresholds // with the image-level thresholds lowered
	risky bool
	items []searchItem
	// Cut points: the risk threshold varies slowest, the spread fastest.
	riskC, confC, disC, pcC, spC []float64
}

type searchItem struct {
	large, fixed                bool
	conf, dis, pc, spread, risk float64
}

// cut is one combination of thresholds: risk, confidence, disagreement,
// obscuration probability, spread.
type cut struct{ risk, conf, dis, pc, spread float64 }

// outcome counts what a cut flags on the search's items.
type outcome struct{ flagged, large, caught, fires int }

func (o outcome) recall() float64 {
	if o.large == 0 {
		return 1
	}
	return float64(o.caught) / float64(o.large)
}

func newSearch(samples []Sample, base pipeline.Thresholds, largeDeg float64) (*search, error) {
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
	cs := &search{base: base, risky: base.C7Risk != nil}

	var confs, diss, pcs, spreads, risks []float64
	for _, s := range samples {
		if !s.Truth.Measurable || s.Result.Status != result.StatusOK || s.Result.Parameters == nil {
			continue
		}
		it := searchItem{
			large:  LargeError(&s.Result, &s.Truth, largeDeg),
			fixed:  len(never.Reasons(s.Features)) > 0,
			conf:   s.Features.C7Confidence,
			dis:    s.Features.C7DisagreementMM,
			pc:     completeProb(base, s.Features),
			spread: s.Features.C7SpreadDeg,
		}
		if cs.risky {
			it.risk = base.C7Risk.Risk(s.Features)
			if it.large {
				risks = append(risks, it.risk)
			}
		}
		if it.spread >= 0 {
			spreads = append(spreads, math.Nextafter(it.spread, math.Inf(-1))) // "> t" then includes it
		}
		cs.items = append(cs.items, it)
		confs = append(confs, math.Nextafter(it.conf, math.Inf(1))) // "< t" then includes it
		if it.dis >= 0 {
			diss = append(diss, math.Nextafter(it.dis, math.Inf(-1))) // "> t" then includes it
		}
		if it.pc >= 0.5 {
			pcs = append(pcs, it.pc)
		}
	}
	if len(cs.items) == 0 {
		return nil, ErrNoSamples
	}
	cs.confC = candidates(confs, 40, 0)
	cs.disC = candidates(diss, 40, math.Inf(1))
	cs.pcC = candidates(pcs, 40, 1.0)
	cs.spC = candidates(spreads, 20, math.Inf(1))
	cs.riskC = []float64{math.Inf(1)}
	if cs.risky {
		// The risk model replaces the confidence and spread thresholds (it
		// weighs both). "risk ≥ t" fires, so the only cut points worth
		// trying are the risks of the large errors (raising t to the next
		// one only unflags results without a large error) and +Inf: the
		// search over t is exact.
		cs.confC, cs.spC = []float64{0}, []float64{math.Inf(1)}
		cs.riskC = candidates(risks, len(risks), math.Inf(1))
	}
	return cs, nil
}

// each calls fn with every combination of cut points, the spread threshold
// varying fastest (the order decides among equal scores), and its outcome.
func (cs *search) each(fn func(cut, outcome)) {
	total := len(cs.riskC) * len(cs.confC) * len(cs.disC) * len(cs.pcC) * len(cs.spC)
	for n := range total {
		r := n
		var c cut
		c.spread = cs.spC[r%len(cs.spC)]
		r /= len(cs.spC)
		c.pc = cs.pcC[r%len(cs.pcC)]
		r /= len(cs.pcC)
		c.dis = cs.disC[r%len(cs.disC)]
		r /= len(cs.disC)
		c.conf = cs.confC[r%len(cs.confC)]
		c.risk = cs.riskC[r/len(cs.confC)]
		var o outcome
		for _, it := range cs.items {
			r1 := it.conf < c.conf || it.spread > c.spread || (cs.risky && (math.IsNaN(it.risk) || it.risk >= c.risk))
			r2 := it.dis >= 0 && it.dis > c.dis
			r3 := it.pc >= c.pc
			f := it.fixed || r1 || r2 || r3
			if r1 || r2 || r3 {
				o.fires++
			}
			if f {
				o.flagged++
			}
			if it.large {
				o.large++
				if f {
					o.caught++
				}
			}
		}
		fn(c, o)
	}
}

// thresholds are the search's base thresholds with the cut c, rounded for
// a readable file in the direction that keeps every decision on the set
// unchanged or stricter. A threshold of +Inf cannot be written as JSON: it
// becomes a value above every observed one (the reason then never fires
// on this set).
func (cs *search) thresholds(c cut) pipeline.Thresholds {
	th := cs.base
	th.C7MinConfidence, th.C7MaxDisagreementMM, th.C7ObscuredMinProb, th.C7MaxSpreadDeg = c.conf, c.dis, c.pc, c.spread
	if cs.risky {
		rm := *cs.base.C7Risk
		rm.MinRisk = c.risk
		th.C7Risk = &rm
	}
	if math.IsInf(th.C7MaxDisagreementMM, 1) {
		th.C7MaxDisagreementMM = 1000
	}
	if math.IsInf(th.C7MaxSpreadDeg, 1) {
		th.C7MaxSpreadDeg = pipeline.NeverSpreadDeg
	}
	th.C7MaxSpreadDeg = roundDown(th.C7MaxSpreadDeg, 1e-3)
	th.C7MinConfidence = roundUp(th.C7MinConfidence, 1e-4)
	th.C7MaxDisagreementMM = roundDown(th.C7MaxDisagreementMM, 1e-3)
	th.C7ObscuredMinProb = roundDown(th.C7ObscuredMinProb, 1e-4)
	if rm := th.C7Risk; rm != nil {
		if math.IsInf(rm.MinRisk, 1) {
			rm.MinRisk = 1.01 // never
		} else {
			rm.MinRisk = roundDown(rm.MinRisk, 1e-6)
		}
	}
	return th
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
