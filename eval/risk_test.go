package eval

import (
	"math"
	"reflect"
	"testing"

	"github.com/cspine/cspine/pipeline"
)

// riskSamples: n results whose large error depends on the C7 confidence
// alone (below 0.5, i < 67, the even ones are large: 34; above, none), with the view spread
// pure noise.
func riskSamples(n int) []Sample {
	var out []Sample
	for i := range n {
		s := sample("partial", 10, 0.5, false, 0, 0)
		conf := 0.3 + 0.6*float64(i)/float64(n)
		spread := float64((i*7919)%13) / 4 // unrelated to the error
		if conf < 0.5 && i%2 == 0 {
			s = sample("partial", 10, 8, false, 0, 0)
		}
		s.Features = pipeline.Features{C7Confidence: conf, C7MinCornerConfidence: conf - 0.05, C7DisagreementMM: 1,
			C7InfSlopeSDDeg: spread, GlobalConfidence: 0.9, SpacingKnown: true, HeaderLateral: true, Contrast: 0.2,
			C7Obscuration: [3]float64{0.8, 0.2, 0}}
		out = append(out, s)
	}
	return out
}

func TestFitRisk(t *testing.T) {
	t.Parallel()
	samples := riskSamples(200)
	names := []string{"c7_confidence", "log_c7_inf_slope_sd_deg"}
	m, err := FitRisk(samples, names, 1, 5)
	if err != nil {
		t.Fatal(err)
	}
	// Lower confidence means more risk; the noise feature gets a much
	// smaller weight.
	if m.Weights[0] >= -1 || math.Abs(m.Weights[1]) > math.Abs(m.Weights[0])/4 {
		t.Errorf("weights %v", m.Weights)
	}
	if f := m.Fit; f == nil || f.Images != 200 || f.LargeErrors != 34 || f.L2 != 1 || f.LargeErrorDeg != 5 {
		t.Errorf("fit provenance %+v", m.Fit)
	}
	if m.MinRisk <= 1 {
		t.Errorf("an uncalibrated model must not fire: min_risk %v", m.MinRisk)
	}
	// At the optimum the gradient vanishes: mean predicted risk equals the
	// share of large errors (the bias is not penalised).
	var sum float64
	for _, s := range samples {
		sum += m.Risk(s.Features)
	}
	if got, want := sum/200, 34.0/200; math.Abs(got-want) > 1e-6 {
		t.Errorf("mean risk %v, want %v", got, want)
	}
	again, _ := FitRisk(samples, names, 1, 5)
	if !reflect.DeepEqual(m, again) {
		t.Error("FitRisk is not deterministic")
	}
	// Without large errors there is nothing to learn.
	if _, err := FitRisk(samples[150:], names, 1, 5); err != ErrSingleClass {
		t.Errorf("one class: %v", err)
	}
	if _, err := FitRisk(samples, []string{"nope"}, 1, 5); err == nil {
		t.Error("unknown feature accepted")
	}
	// Without a penalty separable data have no finite optimum.
	for _, l2 := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		if _, err := FitRisk(samples, names, l2, 5); err == nil {
			t.Errorf("L2 %v accepted", l2)
		}
	}
	// Perfectly separable data with a small penalty still converge to
	// finite weights that rank every large error above every other result.
	sep := riskSamples(200)
	for i := range sep {
		if sep[i].Features.C7Confidence < 0.5 {
			sep[i] = sample("partial", 10, 8, false, 0, 0)
			sep[i].Features = samples[i].Features
		}
	}
	ms, err := FitRisk(sep, names, 0.01, 5)
	if err != nil {
		t.Fatalf("separable: %v", err)
	}
	lo, hi := 1.0, 0.0
	for _, s := range sep {
		r := ms.Risk(s.Features)
		if s.Features.C7Confidence < 0.5 {
			lo = math.Min(lo, r)
		} else {
			hi = math.Max(hi, r)
		}
	}
	if !(lo > hi) {
		t.Errorf("separable: lowest large-error risk %v, highest other %v", lo, hi)
	}
}

func TestCalibrateWithRisk(t *testing.T) {
	t.Parallel()
	samples := riskSamples(200)
	m, err := FitRisk(samples, []string{"c7_confidence", "log_c7_inf_slope_sd_deg"}, 1, 5)
	if err != nil {
		t.Fatal(err)
	}
	base := pipeline.DefaultThresholds()
	base.C7Risk = &m
	cal, err := Calibrate(samples, base, 0.95, 5)
	if err != nil {
		t.Fatal(err)
	}
	// 34 large errors, all with confidence below 0.5 (67 results): the
	// risk threshold catches them flagging about those alone.
	if !cal.MetTarget || cal.LargeErrors != 34 || cal.Caught < 33 || cal.Flagged > 67 {
		t.Errorf("calibration %+v", cal)
	}
	th := cal.Thresholds
	if th.C7Risk == nil || th.C7Risk.MinRisk >= 1 || th.C7MinConfidence != 0 || th.C7MaxSpreadDeg != pipeline.NeverSpreadDeg {
		t.Fatalf("thresholds %+v risk %+v", th, th.C7Risk)
	}
	if err := th.Validate(); err != nil {
		t.Fatal(err)
	}
	rep := Summarize("v", "hierarchical", Reflag(samples, th), 5)
	if g := rep.Groups[3]; g.Flagged != cal.Flagged || g.LargeCaught != cal.Caught {
		t.Errorf("reflagged %+v, calibration %+v", g, cal)
	}
	if base.C7Risk.MinRisk != m.MinRisk {
		t.Error("Calibrate changed the base model")
	}
}
