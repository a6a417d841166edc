package pipeline

import (
	"reflect"
	"strings"
	"testing"

	"github.com/cspine/cspine/pipeline/geometry"
	"github.com/cspine/cspine/pipeline/result"
)

func TestClassifyView(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                            string
		vp, series, protocol, study, po string
		want                            View
		evidence                        string
	}{
		// The three real Agfa CR headers of shared/realworld/pydicom-cspine-cr.
		{"agfa lateral", "LL", "Cervical LAT", "", "XR C Spine Comp Min 4 Views", "", ViewLateral, "SeriesDescription"},
		{"agfa oblique with AP view position", "AP", "Cervical OBLI 1", "", "XR C Spine Comp Min 4 Views", "", ViewOblique, "SeriesDescription"},
		{"view position AP only", "AP", "", "", "", "", ViewFrontal, "ViewPosition"},
		{"view position PA only", "PA", "", "", "", "", ViewFrontal, "ViewPosition"},
		{"view position RL", "RL", "", "", "", "", ViewLateral, "ViewPosition"},
		{"view position LLO", "LLO", "", "", "", "", ViewOblique, "ViewPosition"},
		{"protocol lateral flexion", "", "", "C-Spine Flexion", "", "", ViewLateral, "ProtocolName"},
		{"protocol oblique", "", "", "HWS schräg li", "", "", ViewOblique, "ProtocolName"},
		{"series AP beats view position LL", "LL", "C-SPINE AP", "", "", "", ViewFrontal, "SeriesDescription"},
		{"study names both views: unknown", "", "", "", "C-SPINE AP LAT", "", ViewUnknown, ""},
		{"study names lateral only", "", "", "", "XR CSPINE 1 VIEW LAT", "", ViewLateral, "StudyDescription"},
		{"capture is not AP", "", "Secondary capture", "", "", "", ViewUnknown, ""},
		{"nothing", "", "", "", "", "", ViewUnknown, ""},
		{"orientation posterior rows: lateral", "", "", "", "", "P\\F", ViewLateral, "PatientOrientation"},
		{"orientation anterior rows: lateral", "", "", "", "", "A\\F", ViewLateral, "PatientOrientation"},
		{"orientation L\\F never rejects", "", "", "", "", "L\\F", ViewUnknown, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := ClassifyView(ViewHeader{ViewPosition: tc.vp, SeriesDescription: tc.series, ProtocolName: tc.protocol, StudyDescription: tc.study, PatientOrientation: tc.po})
			if got.View != tc.want || !strings.HasPrefix(got.Evidence, tc.evidence) {
				t.Errorf("ClassifyView = %v (%s), want %v (%s…)", got.View, got.Evidence, tc.want, tc.evidence)
			}
		})
	}
}

func TestOtherBodyPart(t *testing.T) {
	t.Parallel()
	for bp, want := range map[string]bool{"CHEST": true, "chest ": true, "KNEE": true, "CSPINE": false, "NECK": false, "SPINE": false, "": false, "HEAD": false} {
		if got := OtherBodyPart(bp); got != want {
			t.Errorf("OtherBodyPart(%q) = %v", bp, got)
		}
	}
}

func TestSpacingFrom(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		ps     []float64
		ips    []float64
		ermf   float64
		want   geometry.Spacing
		source string
	}{
		{"pixel spacing wins", []float64{0.1, 0.2}, []float64{0.15, 0.15}, 1.1, geometry.Spacing{RowMM: 0.1, ColMM: 0.2}, result.SpacingPixelSpacing},
		{"imager with ERMF", nil, []float64{0.2, 0.3}, 1.25, geometry.Spacing{RowMM: 0.16, ColMM: 0.24}, result.SpacingImagerERMF},
		{"imager without ERMF", nil, []float64{0.1, 0.1}, 0, geometry.Spacing{RowMM: 0.1, ColMM: 0.1}, result.SpacingImager},
		{"invalid pixel spacing falls back", []float64{0, 0}, []float64{0.1, 0.1}, 0, geometry.Spacing{RowMM: 0.1, ColMM: 0.1}, result.SpacingImager},
		{"one value is not a pair", []float64{0.1}, nil, 0, geometry.Spacing{}, result.SpacingNone},
		{"negative ERMF ignored", nil, []float64{0.1, 0.1}, -2, geometry.Spacing{RowMM: 0.1, ColMM: 0.1}, result.SpacingImager},
		{"none", nil, nil, 1.2, geometry.Spacing{}, result.SpacingNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, src := SpacingFrom(tc.ps, tc.ips, tc.ermf)
			if src != tc.source || abs(got.RowMM-tc.want.RowMM) > 1e-12 || abs(got.ColMM-tc.want.ColMM) > 1e-12 {
				t.Errorf("SpacingFrom = %+v %q, want %+v %q", got, src, tc.want, tc.source)
			}
		})
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestDefaultThresholdsValid(t *testing.T) {
	t.Parallel()
	th := DefaultThresholds()
	if err := th.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := th
	bad.C7MinConfidence = 2
	bad.ObscurationCompleteMaxConf = bad.ObscurationPartialMaxConf + 0.1
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "c7_min_confidence") || !strings.Contains(err.Error(), "obscuration_complete_max_conf") {
		t.Errorf("Validate(bad) = %v", err)
	}
	if _, err := ParseThresholds([]byte(`{"c7_min_confidence": "x"}`)); err == nil {
		t.Error("ParseThresholds accepted a string")
	}
}

func TestReasons(t *testing.T) {
	t.Parallel()
	th := Thresholds{
		C7MinConfidence: 0.5, C7MaxDisagreementMM: 3, C7ObscuredMinProb: 0.6,
		NotLateralMinGlobalConfidence: 0.3, LowQualityMinContrast: 0.05, LowQualityMinGlobalConfidence: 0.2,
		NominalEndplateMM: 16, ObscurationPartialMaxConf: 0.6, ObscurationCompleteMaxConf: 0.3,
	}
	good := Features{C7Confidence: 0.9, C7Obscuration: [3]float64{0.9, 0.1, 0}, C7DisagreementMM: 1,
		GlobalConfidence: 0.9, SpacingKnown: true, HeaderLateral: true, Contrast: 0.2}
	tests := []struct {
		name  string
		mut   func(f *Features)
		want  []string
		grade string
	}{
		{"clean", func(*Features) {}, []string{}, result.ObscurationNone},
		{"low C7 confidence", func(f *Features) { f.C7Confidence = 0.49 }, []string{result.ReasonC7LowConfidence}, result.ObscurationNone},
		{"confidence at threshold is fine", func(f *Features) { f.C7Confidence = 0.5 }, []string{}, result.ObscurationNone},
		{"disagreement", func(f *Features) { f.C7DisagreementMM = 3.01 }, []string{result.ReasonC7StageDisagreement}, result.ObscurationNone},
		{"single stage: no disagreement", func(f *Features) { f.C7DisagreementMM = -1 }, []string{}, result.ObscurationNone},
		{"complete obscuration", func(f *Features) { f.C7Obscuration = [3]float64{0.1, 0.2, 0.7} }, []string{result.ReasonC7Obscured}, result.ObscurationComplete},
		{"complete but below threshold", func(f *Features) { f.C7Obscuration = [3]float64{0.2, 0.25, 0.55} }, []string{}, result.ObscurationComplete},
		{"partial", func(f *Features) { f.C7Obscuration = [3]float64{0.2, 0.7, 0.1} }, []string{}, result.ObscurationPartial},
		{"graded from confidence: complete", func(f *Features) { f.C7Obscuration = [3]float64{}; f.C7Confidence = 0.25 },
			[]string{result.ReasonC7LowConfidence, result.ReasonC7Obscured}, result.ObscurationComplete},
		{"graded from confidence: partial", func(f *Features) { f.C7Obscuration = [3]float64{}; f.C7Confidence = 0.55 }, []string{}, result.ObscurationPartial},
		{"implausible", func(f *Features) { f.Implausible = []string{"x"} }, []string{result.ReasonImplausibleGeometry}, result.ObscurationNone},
		{"no spacing", func(f *Features) { f.SpacingKnown = false }, []string{result.ReasonNoPixelSpacing}, result.ObscurationNone},
		{"not lateral: header silent, low confidence", func(f *Features) { f.HeaderLateral = false; f.GlobalConfidence = 0.25 },
			[]string{result.ReasonNotLateral}, result.ObscurationNone},
		{"header lateral: no not_lateral", func(f *Features) { f.GlobalConfidence = 0.25 }, []string{}, result.ObscurationNone},
		{"flat image", func(f *Features) { f.Contrast = 0.01 }, []string{result.ReasonLowImageQuality}, result.ObscurationNone},
		{"everything, in spec order", func(f *Features) {
			*f = Features{C7Confidence: 0.1, C7DisagreementMM: 10, C7Obscuration: [3]float64{0, 0, 1}, Implausible: []string{"x"}}
		}, []string{result.ReasonC7LowConfidence, result.ReasonC7StageDisagreement, result.ReasonC7Obscured, result.ReasonImplausibleGeometry,
			result.ReasonNoPixelSpacing, result.ReasonNotLateral, result.ReasonLowImageQuality}, result.ObscurationComplete},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := good
			tc.mut(&f)
			if got := th.Reasons(f); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Reasons = %q, want %q", got, tc.want)
			}
			if g := th.Obscuration(f); g != tc.grade {
				t.Errorf("Obscuration = %q, want %q", g, tc.grade)
			}
		})
	}
}
