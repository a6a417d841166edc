// Package geometry computes the cervical sagittal parameters of
// shared/spec/measurements.md from the 23 landmarks: endplate slopes, the
// C2–C7 Cobb angle, segmental angles and the C2–C7 sagittal vertical axis,
// together with the patient's facing and anatomical plausibility checks.
//
// It is pure math: no I/O, no logging, no allocation beyond the results. All
// coordinates are pixels of the original image (x column, y row, y down).
package geometry

import (
	"math"
)

// Point is a pixel position (x column, y row) in the original image grid.
type Point struct{ X, Y float64 }

// NumLandmarks is the number of landmarks in channel order.
const NumLandmarks = 23

// Landmark indices in the channel order of the spec (C2 first, then C3..C7,
// each sup_ant, sup_post, inf_ant, inf_post).
const (
	C2Centroid = 0
	C2InfAnt   = 1
	C2InfPost  = 2
)

// SupAnt, SupPost, InfAnt and InfPost return the channel index of a corner of
// vertebra Cn for n = 3..7. InfAnt and InfPost also accept n = 2.
func SupAnt(n int) int  { return 3 + (n-3)*4 }
func SupPost(n int) int { return 4 + (n-3)*4 }
func InfAnt(n int) int {
	if n == 2 {
		return C2InfAnt
	}
	return 5 + (n-3)*4
}
func InfPost(n int) int {
	if n == 2 {
		return C2InfPost
	}
	return 6 + (n-3)*4
}

// Facing says on which side of the image the patient's anterior lies.
type Facing int

const (
	// FacingLeft: anterior toward smaller x.
	FacingLeft Facing = iota
	// FacingRight: anterior toward larger x.
	FacingRight
)

// String returns the spec value, "left" or "right".
func (f Facing) String() string {
	if f == FacingRight {
		return "right"
	}
	return "left"
}

// deg converts radians to degrees.
func deg(rad float64) float64 { return rad * 180 / math.Pi }

// Slope is the spec's endplate slope in degrees for an endplate with anterior
// corner a and posterior corner p: atan2(a.y − p.y, |a.x − p.x|). It is
// positive when the anterior corner is lower in the image (larger y).
func Slope(a, p Point) float64 {
	return deg(math.Atan2(a.Y-p.Y, math.Abs(a.X-p.X)))
}

// Orient returns the two corners of an endplate as (anterior, posterior)
// according to the facing: when facing left, the corner with the smaller x
// is anterior. The model's own anterior/posterior labels therefore never
// decide an angle's sign on their own; a single swapped pair cannot flip it.
func Orient(c1, c2 Point, f Facing) (ant, post Point) {
	leftFirst := c1.X <= c2.X
	if (f == FacingLeft) == leftFirst {
		return c1, c2
	}
	return c2, c1
}

// EndplateSlope is Slope after orienting the two corners by facing.
func EndplateSlope(c1, c2 Point, f Facing) float64 {
	a, p := Orient(c1, c2, f)
	return Slope(a, p)
}

// endplatePairs lists the (anterior, posterior) channel indices of the 11
// endplates: C2 inferior, then C3..C7 superior and inferior.
var endplatePairs = func() [][2]int {
	pairs := [][2]int{{C2InfAnt, C2InfPost}}
	for n := 3; n <= 7; n++ {
		pairs = append(pairs, [2]int{SupAnt(n), SupPost(n)}, [2]int{InfAnt(n), InfPost(n)})
	}
	return pairs
}()

// DetermineFacing decides which side is anterior from the landmarks. Each of
// the 11 endplates votes with the side of its labelled anterior corner,
// weighted by the smaller confidence of its two corners (conf may be nil: equal
// weights). When the vote is void (all weights zero or a perfect tie), the C2
// centroid decides: it lies anterior to the C7 posterior-superior corner in
// almost every neck. Agreement is the weighted fraction of endplates whose
// labels agree with the decision, in [0, 1]; a low agreement means the model's
// anterior/posterior labels are inconsistent.
func DetermineFacing(lm *[NumLandmarks]Point, conf *[NumLandmarks]float64) (Facing, float64) {
	var left, right float64
	for _, pr := range endplatePairs {
		w := 1.0
		if conf != nil {
			w = math.Min(conf[pr[0]], conf[pr[1]])
			if !(w > 0) { // also NaN
				w = 0
			}
		}
		a, p := lm[pr[0]], lm[pr[1]]
		switch {
		case a.X < p.X:
			left += w
		case a.X > p.X:
			right += w
		}
	}
	total := left + right
	var f Facing
	switch {
	case left > right:
		f = FacingLeft
	case right > left:
		f = FacingRight
	default:
		if lm[C2Centroid].X <= lm[SupPost(7)].X {
			f = FacingLeft
		} else {
			f = FacingRight
		}
	}
	if total == 0 {
		return f, 0
	}
	if f == FacingLeft {
		return f, left / total
	}
	return f, right / total
}

// Spacing is the pixel spacing in mm, row (vertical) spacing first as in
// PixelSpacing (0028,0030). A zero value means unknown.
type Spacing struct {
	RowMM, ColMM float64
}

// Known reports whether both spacings are positive and finite.
func (s Spacing) Known() bool {
	return s.RowMM > 0 && s.ColMM > 0 && !math.IsInf(s.RowMM, 0) && !math.IsInf(s.ColMM, 0)
}

// Parameters are the measured clinical parameters (spec table).
type Parameters struct {
	C2SlopeDeg    float64
	C7SlopeDeg    float64
	C7SupSlopeDeg float64
	// CobbDeg is C7SlopeDeg − C2SlopeDeg: positive = lordosis.
	CobbDeg float64
	// SegmentalDeg[i] is slope(C(i+3) inferior) − slope(C(i+2) inferior),
	// i.e. C2-C3 .. C6-C7.
	SegmentalDeg [5]float64
	// SVAPx is the horizontal distance from C2_centroid to C7_sup_post in
	// pixels, positive when the C2 centroid is anterior.
	SVAPx float64
	// SVAmm is SVAPx times the column spacing; nil when spacing is unknown.
	SVAmm *float64
}

// SVA returns the signed horizontal distance in pixels from the C2 centroid
// to the C7 posterior-superior corner, positive when the C2 centroid is
// anterior to it.
func SVA(c2Centroid, c7SupPost Point, f Facing) float64 {
	if f == FacingLeft {
		return c7SupPost.X - c2Centroid.X
	}
	return c2Centroid.X - c7SupPost.X
}

// Measure computes every parameter from the landmarks and the facing.
// Horizontal distances use the column spacing (spec).
func Measure(lm *[NumLandmarks]Point, f Facing, sp Spacing) Parameters {
	var p Parameters
	inf := func(n int) float64 { return EndplateSlope(lm[InfAnt(n)], lm[InfPost(n)], f) }
	var infSlope [6]float64 // C2..C7
	for n := 2; n <= 7; n++ {
		infSlope[n-2] = inf(n)
	}
	p.C2SlopeDeg = infSlope[0]
	p.C7SlopeDeg = infSlope[5]
	p.C7SupSlopeDeg = EndplateSlope(lm[SupAnt(7)], lm[SupPost(7)], f)
	p.CobbDeg = p.C7SlopeDeg - p.C2SlopeDeg
	for i := 0; i < 5; i++ {
		p.SegmentalDeg[i] = infSlope[i+1] - infSlope[i]
	}
	p.SVAPx = SVA(lm[C2Centroid], lm[SupPost(7)], f)
	if sp.Known() {
		mm := p.SVAPx * sp.ColMM
		p.SVAmm = &mm
	}
	return p
}

// Dist is the Euclidean distance between two points.
func Dist(a, b Point) float64 { return math.Hypot(a.X-b.X, a.Y-b.Y) }

// DistMM is the distance between two points in mm with anisotropic spacing.
func DistMM(a, b Point, sp Spacing) float64 {
	return math.Hypot((a.X-b.X)*sp.ColMM, (a.Y-b.Y)*sp.RowMM)
}
