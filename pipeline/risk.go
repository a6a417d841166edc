package pipeline

import (
	"errors"
	"fmt"
	"math"
)

// RiskModel is a logistic model of the probability that a result carries a
// large angle error (the evaluation's "large error": an angle off by more
// than a few degrees), from review features. It combines the C7 evidence
// that single thresholds see one at a time: the corners' heatmap
// confidence, the estimated obscuration, the disagreement of the global and
// the specialist stage, and how much the endplate slopes move between the
// specialists' test-time views. It is fitted on a phantom set of its own
// (`cspine eval --fit-risk`), neither the validation set its threshold is
// calibrated on nor the test set; a risk at or above MinRisk gives
// c7_low_confidence.
type RiskModel struct {
	// Features names the inputs (see RiskFeatureNames), in the order of
	// Mean, Scale and Weights: z = (x − Mean) / Scale.
	Features []string  `json:"features"`
	Mean     []float64 `json:"mean"`
	Scale    []float64 `json:"scale"`
	Weights  []float64 `json:"weights"`
	Bias     float64   `json:"bias"`
	// MinRisk is the probability at or above which the result is flagged
	// (c7_low_confidence); above 1, never.
	MinRisk float64 `json:"min_risk"`
	// Fit records where the coefficients came from.
	Fit *RiskFit `json:"fit,omitempty"`
}

// RiskFit is the provenance of a RiskModel's coefficients.
type RiskFit struct {
	Data          string  `json:"data"`
	Images        int     `json:"images"`
	LargeErrors   int     `json:"large_errors"`
	LargeErrorDeg float64 `json:"large_error_deg"`
	L2            float64 `json:"l2"`
	Command       string  `json:"command"`
	ModelVersion  string  `json:"model_version,omitempty"`
}

// logFloor keeps the logarithm of a non-negative feature finite.
const logFloor = 0.1

// logOf is log(v + logFloor), or NaN for a feature that is not available
// (negative: single-stage mode has no specialist views and no stage
// disagreement). A NaN input makes the risk NaN, and a NaN risk fires: the
// model was fitted on what the specialists show and cannot judge a result
// without it, so such a result is not passed as safe.
func logOf(v float64) float64 {
	if v < 0 {
		return math.NaN()
	}
	return math.Log(v + logFloor)
}

// riskFeatures are the features a RiskModel may use, each a function of
// Features that is finite for every result.
var riskFeatures = map[string]func(f *Features) float64{
	"c7_confidence":            func(f *Features) float64 { return f.C7Confidence },
	"c7_min_corner_confidence": func(f *Features) float64 { return f.C7MinCornerConfidence },
	// log of the estimated probability of complete obscuration
	"log_c7_complete_prob":    func(f *Features) float64 { return math.Log(math.Max(f.C7Obscuration[2], 1e-4)) },
	"log_c7_disagreement_mm":  func(f *Features) float64 { return logOf(f.C7DisagreementMM) },
	"log_c2_disagreement_mm":  func(f *Features) float64 { return logOf(f.C2DisagreementMM) },
	"log_c7_inf_slope_sd_deg": func(f *Features) float64 { return logOf(f.C7InfSlopeSDDeg) },
	"log_c7_sup_slope_sd_deg": func(f *Features) float64 { return logOf(f.C7SupSlopeSDDeg) },
	"log_c2_slope_sd_deg":     func(f *Features) float64 { return logOf(f.C2SlopeSDDeg) },
	"log_c7_choice_delta_deg": func(f *Features) float64 { return logOf(f.C7ChoiceDeltaDeg) },
	"log_c7_spread_deg":       func(f *Features) float64 { return logOf(f.C7SpreadDeg) },
	// how far the C7 shape prior lies from the specialist (C7Prior)
	"log_c7_inf_prior_delta_deg": func(f *Features) float64 { return logOf(f.C7InfPriorDeltaDeg) },
	"log_c7_sup_prior_delta_deg": func(f *Features) float64 { return logOf(f.C7SupPriorDeltaDeg) },
}

// RiskFeatureNames are the features a fitted risk model uses by default;
// with a C7 shape prior in the model set, PriorRiskFeatureNames as well
// (see DefaultRiskFeatures).
var RiskFeatureNames = []string{
	"c7_confidence", "c7_min_corner_confidence", "log_c7_complete_prob", "log_c7_disagreement_mm",
	"log_c7_inf_slope_sd_deg", "log_c7_sup_slope_sd_deg", "log_c2_slope_sd_deg", "log_c7_choice_delta_deg",
}

// PriorRiskFeatureNames are the risk features that need a C7 shape prior:
// how far it lies from the specialist's C7 endplate slopes.
var PriorRiskFeatureNames = []string{"log_c7_inf_prior_delta_deg", "log_c7_sup_prior_delta_deg"}

// DefaultRiskFeatures are the features `cspine eval --fit-risk` fits on:
// RiskFeatureNames, and PriorRiskFeatureNames when the model set has a C7
// shape prior (without one they are not available and would flag every
// result).
func DefaultRiskFeatures(withPrior bool) []string {
	f := append([]string(nil), RiskFeatureNames...)
	if withPrior {
		f = append(f, PriorRiskFeatureNames...)
	}
	return f
}

// RiskInputs returns the named features of f (an error names an unknown
// one); a feature that is not available is NaN.
func RiskInputs(names []string, f *Features) ([]float64, error) {
	x := make([]float64, len(names))
	for i, n := range names {
		fn, ok := riskFeatures[n]
		if !ok {
			return nil, fmt.Errorf("unknown risk feature %q", n)
		}
		x[i] = fn(f)
	}
	return x, nil
}

// Risk is the modelled probability of a large error for f. A model that
// does not validate gives NaN (Validate is checked when thresholds load).
func (m *RiskModel) Risk(f Features) float64 {
	x, err := RiskInputs(m.Features, &f)
	if err != nil || len(m.Mean) != len(x) || len(m.Scale) != len(x) || len(m.Weights) != len(x) {
		return math.NaN()
	}
	z := m.Bias
	for i, v := range x {
		z += m.Weights[i] * (v - m.Mean[i]) / m.Scale[i]
	}
	return 1 / (1 + math.Exp(-z))
}

// Validate checks the model's shape and that every coefficient is finite.
func (m *RiskModel) Validate() error {
	var errs []error
	n := len(m.Features)
	if n == 0 {
		errs = append(errs, errors.New("c7_risk: no features"))
	}
	if len(m.Mean) != n || len(m.Scale) != n || len(m.Weights) != n {
		errs = append(errs, fmt.Errorf("c7_risk: %d features but %d means, %d scales, %d weights", n, len(m.Mean), len(m.Scale), len(m.Weights)))
	}
	for _, name := range m.Features {
		if _, ok := riskFeatures[name]; !ok {
			errs = append(errs, fmt.Errorf("c7_risk: unknown feature %q", name))
		}
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	for i := range m.Scale {
		if !(m.Scale[i] > 0) || !finite(m.Scale[i]) {
			errs = append(errs, fmt.Errorf("c7_risk: scale[%d] = %v, must be positive", i, m.Scale[i]))
		}
	}
	for _, vs := range [][]float64{m.Mean, m.Weights, {m.Bias}} {
		for _, v := range vs {
			if !finite(v) {
				errs = append(errs, fmt.Errorf("c7_risk: coefficient %v not finite", v))
			}
		}
	}
	if math.IsNaN(m.MinRisk) || m.MinRisk < 0 || m.MinRisk > 1.01 {
		errs = append(errs, fmt.Errorf("c7_risk: min_risk = %v outside [0, 1.01]", m.MinRisk))
	}
	return errors.Join(errs...)
}
