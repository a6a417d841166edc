// Package result holds the types of the measurement contract in
// shared/spec/measurements.md: the 23 landmark names in model channel order,
// the clinical parameters, the per-file analysis result printed by
// `cspine analyze --json`, and the phantom ground-truth line. It is a leaf
// package: every other part of cspine (pipeline, report, models, phantom,
// eval) speaks these types, and it imports nothing of the project.
package result

import "fmt"

// Landmark names, in the channel order of every model output (spec: C2 first,
// then C3..C7, each sup_ant, sup_post, inf_ant, inf_post).
var LandmarkNames = func() []string {
	names := []string{"C2_centroid", "C2_inf_ant", "C2_inf_post"}
	for n := 3; n <= 7; n++ {
		for _, c := range []string{"sup_ant", "sup_post", "inf_ant", "inf_post"} {
			names = append(names, fmt.Sprintf("C%d_%s", n, c))
		}
	}
	return names
}()

// NumLandmarks is len(LandmarkNames): 23.
const NumLandmarks = 23

// LandmarkIndex returns the channel index of a landmark name, or -1.
func LandmarkIndex(name string) int {
	for i, n := range LandmarkNames {
		if n == name {
			return i
		}
	}
	return -1
}

// Stage values of Landmark.Stage.
const (
	StageGlobal  = "global"
	StageRefined = "refined"
)

// Obscuration grades of C7.
const (
	ObscurationNone     = "none"
	ObscurationPartial  = "partial"
	ObscurationComplete = "complete"
)

// Facing values: "left" when anterior is toward smaller x.
const (
	FacingLeft  = "left"
	FacingRight = "right"
)

// Status values of Result.Status.
const (
	StatusOK       = "ok"
	StatusRejected = "rejected"
)

// Spacing sources, in order of preference (spec "Pixel spacing for mm values").
const (
	SpacingPixelSpacing = "pixel_spacing"
	SpacingImagerERMF   = "imager_ermf"
	SpacingImager       = "imager"
	SpacingNone         = "none"
)

// Review reason keys (spec "Review flag"). Stable: they are stored in the
// database and written into reports.
const (
	ReasonC7LowConfidence     = "c7_low_confidence"
	ReasonC7StageDisagreement = "c7_stage_disagreement"
	ReasonC7Obscured          = "c7_obscured"
	ReasonImplausibleGeometry = "implausible_geometry"
	ReasonNoPixelSpacing      = "no_pixel_spacing"
	ReasonNotLateral          = "not_lateral"
	ReasonLowImageQuality     = "low_image_quality"
)

// ReasonMeanings gives a readable meaning for each review reason key.
var ReasonMeanings = map[string]string{
	ReasonC7LowConfidence:     "C7 landmarks have low confidence",
	ReasonC7StageDisagreement: "global and specialist C7 positions disagree",
	ReasonC7Obscured:          "C7 estimated completely obscured",
	ReasonImplausibleGeometry: "landmark geometry outside anatomical ranges",
	ReasonNoPixelSpacing:      "no pixel spacing: mm values unavailable",
	ReasonNotLateral:          "image may not be a lateral view",
	ReasonLowImageQuality:     "low image quality",
}

// SegmentNames are the keys of Parameters.Segmental, in anatomical order.
var SegmentNames = []string{"C2-C3", "C3-C4", "C4-C5", "C5-C6", "C6-C7"}

// Point is a pixel position in the original image grid (x column, y row).
type Point struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

// Landmark is one named landmark of an analysis.
type Landmark struct {
	Name       string  `json:"name"`
	X          float64 `json:"x"`
	Y          float64 `json:"y"`
	Confidence float64 `json:"confidence"`
	Stage      string  `json:"stage"`
}

// TruthLandmark is a landmark of the phantom ground truth (no confidence).
type TruthLandmark struct {
	Name string  `json:"name"`
	X    float64 `json:"x"`
	Y    float64 `json:"y"`
}

// Parameters are the clinical parameters. SVAmm is nil when no pixel spacing
// is known.
type Parameters struct {
	C2C7CobbDeg   float64            `json:"c2c7_cobb_deg"`
	C2SlopeDeg    float64            `json:"c2_slope_deg"`
	C7SlopeDeg    float64            `json:"c7_slope_deg"`
	C7SupSlopeDeg float64            `json:"c7_sup_slope_deg"`
	C2C7SVAmm     *float64           `json:"c2c7_sva_mm"`
	SegmentalDeg  map[string]float64 `json:"segmental_deg"`
}

// C7 summarises the pipeline's view of C7.
type C7 struct {
	Confidence  float64 `json:"confidence"`
	Obscuration string  `json:"obscuration"`
}

// Review says whether human review is required and why.
type Review struct {
	Required bool     `json:"required"`
	Reasons  []string `json:"reasons"`
}

// Model identifies the models and mode that produced a result.
type Model struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Mode    string `json:"mode"`
}

// Modes of Model.Mode.
const (
	ModeHierarchical = "hierarchical"
	ModeSingleStage  = "single_stage"
)

// Result is one line of `cspine analyze --json`.
type Result struct {
	File             string             `json:"file"`
	SOPInstanceUID   string             `json:"sop_instance_uid,omitempty"`
	StudyInstanceUID string             `json:"study_instance_uid,omitempty"`
	Status           string             `json:"status"`
	Error            string             `json:"error,omitempty"`
	Facing           string             `json:"facing,omitempty"`
	Parameters       *Parameters        `json:"parameters,omitempty"`
	Landmarks        []Landmark         `json:"landmarks,omitempty"`
	C7               *C7                `json:"c7,omitempty"`
	Review           *Review            `json:"review,omitempty"`
	PixelSpacingMM   []float64          `json:"pixel_spacing_mm"`
	SpacingSource    string             `json:"spacing_source,omitempty"`
	Model            *Model             `json:"model,omitempty"`
	TimingsMS        map[string]float64 `json:"timings_ms,omitempty"`
}

// Truth is one line of a phantom's truth.jsonl. Negative images (views that
// must not be measured) carry Measurable=false and the Reason; they have no
// landmarks or parameters.
type Truth struct {
	File             string          `json:"file"`
	SOPInstanceUID   string          `json:"sop_instance_uid"`
	StudyInstanceUID string          `json:"study_instance_uid"`
	Measurable       bool            `json:"measurable"`
	Reason           string          `json:"reason,omitempty"`
	Landmarks        []TruthLandmark `json:"landmarks,omitempty"`
	Parameters       *Parameters     `json:"parameters,omitempty"`
	Obscuration      string          `json:"obscuration,omitempty"`
	Facing           string          `json:"facing,omitempty"`
	PixelSpacingMM   []float64       `json:"pixel_spacing_mm,omitempty"`
	SpacingSource    string          `json:"spacing_source,omitempty"`
	Rows             int             `json:"rows,omitempty"`
	Columns          int             `json:"columns,omitempty"`
	// Extra generator facts useful for evaluation and training.
	C7HiddenCorners int     `json:"c7_hidden_corners,omitempty"`
	ShoulderY       float64 `json:"shoulder_y,omitempty"`
	RotationDeg     float64 `json:"rotation_deg,omitempty"`
	Modality        string  `json:"modality,omitempty"`
	// Posture of a phantom lateral: neutral, flexion or extension (its
	// series description says so, as functional views do).
	Posture string `json:"posture,omitempty"`
}
