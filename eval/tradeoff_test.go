package eval

import (
	"reflect"
	"strings"
	"testing"

	"github.com/cspine/cspine/pipeline"
)

// tradeoffSamples: ten results whose risk falls as their C7 confidence
// rises (0.35, 0.40, … 0.80), large errors at the 1st, 3rd and 6th, and an
// eleventh result without pixel spacing (flagged whatever the thresholds)
// that is a large error too. No other tunable reason can fire: no stage
// disagreement, no obscuration estimate, confidence above the graded
// "complete" limit.
func tradeoffSamples() ([]Sample, pipeline.Thresholds) {
	var out []Sample
	for i := range 11 {
		d := 1.0
		if i == 0 || i == 2 || i == 5 || i == 10 {
			d = 8
		}
		s := sample("partial", 10, d, false, 0, 0)
		s.Features = pipeline.Features{C7Confidence: 0.35 + 0.05*float64(i), C7DisagreementMM: -1, GlobalConfidence: 0.9,
			SpacingKnown: i != 10, HeaderLateral: true, Contrast: 0.2}
		out = append(out, s)
	}
	th := pipeline.DefaultThresholds()
	th.C7Risk = &pipeline.RiskModel{Features: []string{"c7_confidence"}, Mean: []float64{0.5}, Scale: []float64{0.1},
		Weights: []float64{-2}, MinRisk: 0.5}
	th.C7MinConfidence, th.C7MaxSpreadDeg = 0, pipeline.NeverSpreadDeg
	return out, th
}

type counts struct{ flagged, large, caught int }

func countsOf(p OperatingPoint) counts { return counts{p.Flagged, p.LargeErrors, p.Caught} }

func TestFrontier(t *testing.T) {
	t.Parallel()
	samples, th := tradeoffSamples()
	points, err := Frontier(samples, th, 5)
	if err != nil {
		t.Fatal(err)
	}
	// By hand: only the spacing-less result (1 flagged, 1 caught); the risk
	// threshold at the 1st large error (2, 2), the 3rd result's (4, 3), the
	// 6th's (7, 4). Flagging all eleven catches no more: left out.
	want := []counts{{1, 4, 1}, {2, 4, 2}, {4, 4, 3}, {7, 4, 4}}
	var got []counts
	for _, p := range points {
		got = append(got, countsOf(p))
		if p.Measured != 11 {
			t.Errorf("measured %d, want 11", p.Measured)
		}
		// Each point's thresholds, applied as production applies them, give
		// its counts (the rounding for the file keeps every decision).
		if again := CurrentPoint(samples, p.Thresholds, 5); countsOf(again) != countsOf(p) {
			t.Errorf("point %+v: its thresholds give %+v", countsOf(p), countsOf(again))
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("frontier %v, want %v", got, want)
	}

	// Calibrate's choice for a target is the first frontier point reaching it.
	for _, target := range []float64{0.5, 0.75, 0.95} {
		cal, err := Calibrate(samples, th, target, 5)
		if err != nil {
			t.Fatal(err)
		}
		p, ok := LeastFor(points, target)
		if !ok || cal.Flagged != p.Flagged || cal.Caught != p.Caught {
			t.Errorf("target %v: calibrate flags %d catches %d, frontier %+v", target, cal.Flagged, cal.Caught, countsOf(p))
		}
	}

	if _, err := Frontier(nil, th, 5); err == nil {
		t.Error("no samples: want an error")
	}
}

func TestBestWithinLeastFor(t *testing.T) {
	t.Parallel()
	samples, th := tradeoffSamples()
	points, err := Frontier(samples, th, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		rate float64
		want counts
		ok   bool
	}{
		{0.05, counts{}, false},      // even 1/11 is more
		{0.1, counts{1, 4, 1}, true}, // 1/11 = 9.1%
		{0.3, counts{2, 4, 2}, true}, // 4/11 = 36% is over
		{0.4, counts{4, 4, 3}, true},
		{1, counts{7, 4, 4}, true},
	} {
		p, ok := BestWithin(points, c.rate)
		if ok != c.ok || (ok && countsOf(p) != c.want) {
			t.Errorf("BestWithin(%v) = %+v %v, want %+v %v", c.rate, countsOf(p), ok, c.want, c.ok)
		}
	}
	for _, c := range []struct {
		catch float64
		want  counts
	}{
		{0, counts{1, 4, 1}},
		{0.5, counts{2, 4, 2}},
		{0.75, counts{4, 4, 3}},
		{0.95, counts{7, 4, 4}},
	} {
		p, ok := LeastFor(points, c.catch)
		if !ok || countsOf(p) != c.want {
			t.Errorf("LeastFor(%v) = %+v %v, want %+v", c.catch, countsOf(p), ok, c.want)
		}
	}
	if _, ok := LeastFor(nil, 0.5); ok {
		t.Error("LeastFor on no points: want false")
	}
}

func TestWriteTradeoff(t *testing.T) {
	t.Parallel()
	samples, th := tradeoffSamples()
	points, err := Frontier(samples, th, 5)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := WriteTradeoff(&b, "VAL", points, CurrentPoint(samples, th, 5)); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"### Review trade-off on VAL (11 measured, 4 large errors)",
		// The configured risk threshold 0.5 is confidence 0.5: results 0–3.
		"| configured | 5/11 (45.5%) | 3/4 (75.0%) | c7_risk.min_risk 0.500000, ",
		"| most caught, flagging ≤ 30% | 2/11 (18.2%) | 2/4 (50.0%) | ",
		"| fewest flags, catching ≥ 95% | 7/11 (63.6%) | 4/4 (100.0%) | ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}

	// When the reasons no threshold can switch off flag more than a budget,
	// the row says so instead of inventing a point.
	for i := range samples {
		samples[i].Features.SpacingKnown = i%4 == 3
	}
	points, err = Frontier(samples, th, 5)
	if err != nil {
		t.Fatal(err)
	}
	b.Reset()
	if err := WriteTradeoff(&b, "VAL", points, CurrentPoint(samples, th, 5)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "| most caught, flagging ≤ 50% | – | – | the untunable reasons alone flag more |") {
		t.Errorf("no budget row for an unreachable budget:\n%s", b.String())
	}
}
