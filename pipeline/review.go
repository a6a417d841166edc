package pipeline

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"

	"github.com/cspine/cspine/pipeline/result"
)

// Thresholds decide the review reasons of the spec. The shipped values are
// in thresholds.json beside this file, calibrated on a validation phantom set
// by `cspine eval --calibrate` (see docs there); a site may override them
// with its own file.
type Thresholds struct {
	// C7MinConfidence: below it, c7_low_confidence.
	C7MinConfidence float64 `json:"c7_min_confidence"`
	// C7MaxDisagreementMM: a mean distance between the global and the
	// specialist C7 corners above it gives c7_stage_disagreement.
	C7MaxDisagreementMM float64 `json:"c7_max_disagreement_mm"`
	// C7MaxSpreadDeg: when the C7 endplate slopes of the specialist's
	// separate crops differ by more than this (degrees), the C7 estimate is
	// not to be trusted either: c7_low_confidence. Absent from a file: never.
	C7MaxSpreadDeg float64 `json:"c7_max_spread_deg"`
	// C7ObscuredMinProb: an estimated probability of complete obscuration at
	// or above it gives c7_obscured.
	C7ObscuredMinProb float64 `json:"c7_obscured_min_prob"`
	// NotLateralMinGlobalConfidence: when the header does not say lateral
	// and the mean confidence of the 23 global landmarks is below it, the
	// image may not be a lateral cervical radiograph (not_lateral).
	NotLateralMinGlobalConfidence float64 `json:"not_lateral_min_global_confidence"`
	// LowQualityMinContrast: standard deviation of the display image in
	// [0, 1] below which the image is too flat to trust (low_image_quality).
	LowQualityMinContrast float64 `json:"low_quality_min_contrast"`
	// LowQualityMinGlobalConfidence: mean global confidence below which the
	// image is of low quality even when the header says lateral.
	LowQualityMinGlobalConfidence float64 `json:"low_quality_min_global_confidence"`
	// NominalEndplateMM converts pixels to mm when the image has no pixel
	// spacing: the median endplate width is taken to be this many mm.
	NominalEndplateMM float64 `json:"nominal_endplate_mm"`
	// ObscurationPartialMaxConf and ObscurationCompleteMaxConf grade C7
	// obscuration from C7 confidence when the models give no obscuration
	// estimate (single-stage mode): confidence below the first is "partial",
	// below the second "complete".
	ObscurationPartialMaxConf  float64 `json:"obscuration_partial_max_conf"`
	ObscurationCompleteMaxConf float64 `json:"obscuration_complete_max_conf"`
	// C7Risk, when present, is a model of the probability of a large angle
	// error; at or above its MinRisk the result gets c7_low_confidence.
	C7Risk *RiskModel `json:"c7_risk,omitempty"`

	// Calibration records where the values came from.
	Calibration *Calibration `json:"calibration,omitempty"`
}

// Calibration is the provenance of a thresholds file.
type Calibration struct {
	Data            string  `json:"data"`
	Mode            string  `json:"mode"`
	Images          int     `json:"images"`
	LargeErrors     int     `json:"large_errors"`
	TargetRecall    float64 `json:"target_recall"`
	Recall          float64 `json:"recall"`
	FlagRate        float64 `json:"flag_rate"`
	LargeErrorDeg   float64 `json:"large_error_deg"`
	Command         string  `json:"command"`
	ModelVersion    string  `json:"model_version,omitempty"`
	ModelsTrainedOn string  `json:"models_trained_on,omitempty"`
}

//go:embed thresholds.json
var defaultThresholdsJSON []byte

// DefaultThresholds returns the shipped, calibrated thresholds.
func DefaultThresholds() Thresholds {
	t, err := ParseThresholds(defaultThresholdsJSON)
	if err != nil {
		panic("pipeline: embedded thresholds.json: " + err.Error()) // a build defect, covered by tests
	}
	return t
}

// NeverSpreadDeg is a C7MaxSpreadDeg that never fires (endplate directions
// differ by at most 180°).
const NeverSpreadDeg = 1000

// ParseThresholds parses and validates a thresholds file's content.
func ParseThresholds(b []byte) (Thresholds, error) {
	t := Thresholds{C7MaxSpreadDeg: NeverSpreadDeg}
	if err := json.Unmarshal(b, &t); err != nil {
		return t, fmt.Errorf("parse thresholds: %w", err)
	}
	return t, t.Validate()
}

// LoadThresholds reads a thresholds file.
func LoadThresholds(path string) (Thresholds, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Thresholds{}, fmt.Errorf("read thresholds: %w", err)
	}
	t, err := ParseThresholds(b)
	if err != nil {
		return t, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Validate checks that every threshold is finite and in its range.
func (t Thresholds) Validate() error {
	var errs []error
	check := func(name string, v, lo, hi float64) {
		if math.IsNaN(v) || v < lo || v > hi {
			errs = append(errs, fmt.Errorf("%s = %v outside [%v, %v]", name, v, lo, hi))
		}
	}
	check("c7_min_confidence", t.C7MinConfidence, 0, 1)
	check("c7_max_disagreement_mm", t.C7MaxDisagreementMM, 0, 1000)
	check("c7_obscured_min_prob", t.C7ObscuredMinProb, 0, 1.01)
	check("c7_max_spread_deg", t.C7MaxSpreadDeg, 0, NeverSpreadDeg)
	check("not_lateral_min_global_confidence", t.NotLateralMinGlobalConfidence, 0, 1)
	check("low_quality_min_contrast", t.LowQualityMinContrast, 0, 1)
	check("low_quality_min_global_confidence", t.LowQualityMinGlobalConfidence, 0, 1)
	check("nominal_endplate_mm", t.NominalEndplateMM, 1, 100)
	check("obscuration_partial_max_conf", t.ObscurationPartialMaxConf, 0, 1)
	check("obscuration_complete_max_conf", t.ObscurationCompleteMaxConf, 0, t.ObscurationPartialMaxConf)
	if t.C7Risk != nil {
		errs = append(errs, t.C7Risk.Validate())
	}
	return errors.Join(errs...)
}

// Features are the quantities the review reasons are decided on. The
// evaluation keeps them per image so that thresholds can be calibrated
// without running the models again.
type Features struct {
	// C7Confidence is the mean confidence of the four C7 corners used.
	C7Confidence float64 `json:"c7_confidence"`
	// C7Obscuration is the estimated probability of none, partial and
	// complete obscuration (all zero when the models give none).
	C7Obscuration [3]float64 `json:"c7_obscuration"`
	// C7DisagreementMM is the mean distance between the global and the
	// refined C7 corners; negative when not applicable (single stage).
	C7DisagreementMM float64 `json:"c7_disagreement_mm"`
	// GlobalConfidence is the mean confidence of the 23 global landmarks.
	GlobalConfidence float64 `json:"global_confidence"`
	// Implausible lists the anatomical implausibilities found.
	Implausible []string `json:"implausible,omitempty"`
	// SpacingKnown: the header gave a pixel spacing.
	SpacingKnown bool `json:"spacing_known"`
	// HeaderLateral: the header says the view is lateral.
	HeaderLateral bool `json:"header_lateral"`
	// Contrast is the standard deviation of the display image in [0, 1].
	Contrast float64 `json:"contrast"`
	// C7Steps is the distance from the C2 inferior endplate to the C7 centre
	// in vertebral steps (the median distance between neighbouring global
	// C3–C6 centres): about 4.5 when C7 is the fifth vertebra below C2;
	// negative when not available.
	C7Steps float64 `json:"c7_steps"`
	// C7Levels is the number of distinct plausible C7 candidates among the
	// specialist's peaks (hierarchical mode); C7LevelMoved says that a level
	// other than the strongest was chosen by counting from C2.
	C7Levels     int  `json:"c7_levels"`
	C7LevelMoved bool `json:"c7_level_moved,omitempty"`
	// C7LevelMargin is the summed peak confidence of the chosen C7 level
	// minus that of the best other level (4 when there is none).
	C7LevelMargin float64 `json:"c7_level_margin"`
	// C2Plausible and C7Plausible: the specialist's candidates contained a
	// plausible C2 (centroid and inferior endplate) and C7 body.
	C2Plausible bool `json:"c2_plausible"`
	C7Plausible bool `json:"c7_plausible"`
	// C2DisagreementMM is the mean distance between the global and the
	// refined C2 landmarks (mm, or nominal mm without spacing; negative in
	// single-stage mode).
	C2DisagreementMM float64 `json:"c2_disagreement_mm"`
	// C2SpreadDeg and C7SpreadDeg are the largest difference between the C2
	// inferior endplate slopes, and between the C7 endplate slopes, that
	// the specialist's separate crops give (degrees; negative when not
	// available): how much the angle depends on where the crop was cut.
	C2SpreadDeg float64 `json:"c2_spread_deg"`
	C7SpreadDeg float64 `json:"c7_spread_deg"`
	// C2SlopeSDDeg, C7InfSlopeSDDeg and C7SupSlopeSDDeg are the standard
	// deviations of the C2 inferior, C7 inferior and C7 superior endplate
	// slopes over the specialist's separate views (degrees; negative when
	// not available).
	C2SlopeSDDeg    float64 `json:"c2_slope_sd_deg"`
	C7InfSlopeSDDeg float64 `json:"c7_inf_slope_sd_deg"`
	C7SupSlopeSDDeg float64 `json:"c7_sup_slope_sd_deg"`
	// C7MinCornerConfidence is the lowest confidence of the four C7 corners.
	C7MinCornerConfidence float64 `json:"c7_min_corner_confidence"`
	// C7ChoiceDeltaDeg is the largest difference between a C7 endplate
	// slope of the chosen corners and the mean of the views' (degrees;
	// negative when not available).
	C7ChoiceDeltaDeg float64 `json:"c7_choice_delta_deg"`
	// EndplateSlopesDeg and ColumnDirectionsDeg are the column inputs of the
	// C7 shape prior (PriorSlopeInputs: C2 inferior, C3–C6 superior and
	// inferior endplate slopes; PriorDirectionInputs: the C2–C6 segment
	// directions), and C7ImageSlopesDeg the C7 inferior and superior slopes
	// the specialist gave, before the prior moved them (hierarchical mode;
	// nil and zero in single-stage mode). They are what `cspine eval
	// --fit-prior` fits on.
	EndplateSlopesDeg   []float64  `json:"endplate_slopes_deg"`
	ColumnDirectionsDeg []float64  `json:"column_directions_deg"`
	C7ImageSlopesDeg    [2]float64 `json:"c7_image_slopes_deg"`
	// C7InfPriorDeltaDeg and C7SupPriorDeltaDeg are how far the C7 shape
	// prior's predicted inferior and superior slopes lie from the
	// specialist's (degrees; negative when the models have no prior or in
	// single-stage mode).
	C7InfPriorDeltaDeg float64 `json:"c7_inf_prior_delta_deg"`
	C7SupPriorDeltaDeg float64 `json:"c7_sup_prior_delta_deg"`
}

// Obscuration grades C7 obscuration: the most probable class of the models'
// estimate, or, when there is none, a grade from the C7 confidence.
func (t Thresholds) Obscuration(f Features) string {
	p := f.C7Obscuration
	if p[0]+p[1]+p[2] > 0 {
		switch {
		case p[2] >= p[1] && p[2] >= p[0]:
			return result.ObscurationComplete
		case p[1] >= p[0]:
			return result.ObscurationPartial
		}
		return result.ObscurationNone
	}
	switch {
	case f.C7Confidence < t.ObscurationCompleteMaxConf:
		return result.ObscurationComplete
	case f.C7Confidence < t.ObscurationPartialMaxConf:
		return result.ObscurationPartial
	}
	return result.ObscurationNone
}

// completeProb is the probability of complete obscuration used by the
// c7_obscured reason: the models' estimate, or 1/0 from the graded confidence.
func (t Thresholds) completeProb(f Features) float64 {
	p := f.C7Obscuration
	if p[0]+p[1]+p[2] > 0 {
		return p[2]
	}
	if t.Obscuration(f) == result.ObscurationComplete {
		return 1
	}
	return 0
}

// riskFires: the risk model, if any, gives at least its MinRisk (a NaN
// risk fires too: a result the model cannot judge is not trusted).
func (t Thresholds) riskFires(f Features) bool {
	if t.C7Risk == nil {
		return false
	}
	r := t.C7Risk.Risk(f)
	return math.IsNaN(r) || r >= t.C7Risk.MinRisk
}

// Reasons returns the review reasons that apply, in the spec's order. It
// never returns nil, so that the JSON says "reasons": [].
func (t Thresholds) Reasons(f Features) []string {
	r := []string{}
	if f.C7Confidence < t.C7MinConfidence || f.C7SpreadDeg > t.C7MaxSpreadDeg || t.riskFires(f) {
		r = append(r, result.ReasonC7LowConfidence)
	}
	if f.C7DisagreementMM >= 0 && f.C7DisagreementMM > t.C7MaxDisagreementMM {
		r = append(r, result.ReasonC7StageDisagreement)
	}
	if t.completeProb(f) >= t.C7ObscuredMinProb {
		r = append(r, result.ReasonC7Obscured)
	}
	if len(f.Implausible) > 0 {
		r = append(r, result.ReasonImplausibleGeometry)
	}
	if !f.SpacingKnown {
		r = append(r, result.ReasonNoPixelSpacing)
	}
	if !f.HeaderLateral && f.GlobalConfidence < t.NotLateralMinGlobalConfidence {
		r = append(r, result.ReasonNotLateral)
	}
	if f.Contrast < t.LowQualityMinContrast || f.GlobalConfidence < t.LowQualityMinGlobalConfidence {
		r = append(r, result.ReasonLowImageQuality)
	}
	return r
}
