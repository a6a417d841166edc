package pipeline

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/cspine/cspine/pipeline/result"
)

func TestRiskHandComputed(t *testing.T) {
	t.Parallel()
	m := &RiskModel{
		Features: []string{"c7_confidence", "log_c7_inf_slope_sd_deg", "log_c7_complete_prob"},
		Mean:     []float64{0.7, 0, -2},
		Scale:    []float64{0.1, 1, 2},
		Weights:  []float64{-1, 0.5, 0.25},
		Bias:     -2,
		MinRisk:  0.2,
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	f := Features{C7Confidence: 0.6, C7InfSlopeSDDeg: 1.9, C7Obscuration: [3]float64{0, 0, 0}}
	// z = -2 + (-1)(0.6-0.7)/0.1 + 0.5 ln(1.9+0.1)/1 + 0.25 (ln 1e-4 + 2)/2
	z := -2 + 1 + 0.5*math.Log(2) + 0.25*(math.Log(1e-4)+2)/2
	if got, want := m.Risk(f), 1/(1+math.Exp(-z)); math.Abs(got-want) > 1e-12 {
		t.Fatalf("Risk = %v, want %v", got, want)
	}
	// A feature that is not available (-1, single stage) makes the risk
	// NaN, and a NaN risk fires.
	f.C7InfSlopeSDDeg = -1
	x, err := RiskInputs([]string{"log_c7_inf_slope_sd_deg"}, &f)
	if err != nil || !math.IsNaN(x[0]) || !math.IsNaN(m.Risk(f)) {
		t.Fatalf("RiskInputs(-1) = %v, %v; risk %v", x, err, m.Risk(f))
	}
	th := Thresholds{C7Risk: m}
	if !th.riskFires(f) {
		t.Error("a NaN risk does not fire")
	}
	f.C7InfSlopeSDDeg = 0
	if x, _ := RiskInputs([]string{"log_c7_inf_slope_sd_deg"}, &f); x[0] != math.Log(0.1) {
		t.Errorf("RiskInputs(0) = %v", x)
	}
	if _, err := RiskInputs([]string{"shoe_size"}, &f); err == nil {
		t.Error("unknown feature accepted")
	}
}

func TestRiskReasons(t *testing.T) {
	t.Parallel()
	th := DefaultThresholds()
	th.C7MinConfidence, th.C7MaxSpreadDeg, th.C7MaxDisagreementMM, th.C7ObscuredMinProb = 0, NeverSpreadDeg, 1000, 1.01
	th.C7Risk = &RiskModel{Features: []string{"c7_confidence"}, Mean: []float64{0.5}, Scale: []float64{0.1}, Weights: []float64{-2}, Bias: 0, MinRisk: 0.5}
	good := Features{C7Confidence: 0.9, C7Obscuration: [3]float64{0.9, 0.1, 0}, C7DisagreementMM: 1,
		GlobalConfidence: 0.9, SpacingKnown: true, HeaderLateral: true, Contrast: 0.2}
	tests := []struct {
		conf float64
		want []string
	}{
		{0.9, []string{}}, // risk 0.0003
		{0.5, []string{result.ReasonC7LowConfidence}},  // risk 0.5: at the threshold fires
		{0.45, []string{result.ReasonC7LowConfidence}}, // risk 0.73
		{0.51, []string{}}, // risk 0.45
	}
	for _, tc := range tests {
		f := good
		f.C7Confidence = tc.conf
		if got := th.Reasons(f); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("confidence %v (risk %.3f): reasons %q, want %q", tc.conf, th.C7Risk.Risk(f), got, tc.want)
		}
	}
	// The model travels in the thresholds file.
	b, err := json.Marshal(th)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseThresholds(b)
	if err != nil || !reflect.DeepEqual(back.C7Risk, th.C7Risk) {
		t.Fatalf("round trip: %v %+v", err, back.C7Risk)
	}
}

func TestRiskValidate(t *testing.T) {
	t.Parallel()
	bad := []struct {
		m    RiskModel
		want string
	}{
		{RiskModel{}, "no features"},
		{RiskModel{Features: []string{"c7_confidence"}, Mean: []float64{0}, Scale: []float64{1}}, "1 features but 1 means, 1 scales, 0 weights"},
		{RiskModel{Features: []string{"x"}, Mean: []float64{0}, Scale: []float64{1}, Weights: []float64{1}}, `unknown feature "x"`},
		{RiskModel{Features: []string{"c7_confidence"}, Mean: []float64{0}, Scale: []float64{0}, Weights: []float64{1}}, "must be positive"},
		{RiskModel{Features: []string{"c7_confidence"}, Mean: []float64{math.NaN()}, Scale: []float64{1}, Weights: []float64{1}}, "not finite"},
		{RiskModel{Features: []string{"c7_confidence"}, Mean: []float64{0}, Scale: []float64{1}, Weights: []float64{1}, MinRisk: 2}, "min_risk"},
	}
	for _, tc := range bad {
		err := tc.m.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.m, err, tc.want)
		}
	}
	th := DefaultThresholds()
	th.C7Risk = &bad[2].m
	if err := th.Validate(); err == nil {
		t.Error("thresholds with an invalid risk model validated")
	}
}
