package geometry

import (
	"fmt"
	"math"
	"sort"
)

// Limits are the anatomical ranges a measurement must fall into. The defaults
// are deliberately wide (adult necks, lordosis and kyphosis, flexion and
// extension): they catch a misplaced or swapped landmark, not disease.
type Limits struct {
	// Sizes in mm, checked only when the pixel spacing is known.
	MinEndplateMM, MaxEndplateMM     float64
	MinBodyHeightMM, MaxBodyHeightMM float64
	// Size ratios, always checked: each endplate's width against the median
	// endplate width, and each C3–C7 body's height over its mean endplate width.
	MaxWidthRatio        float64
	MinAspect, MaxAspect float64
	// MinDiscFraction is the smallest allowed gap between a vertebra's
	// inferior endplate and the next one's superior endplate along the spine
	// axis, as a fraction of the median body height (negative: overlap allowed).
	MinDiscFraction float64
	// MaxAxisTiltDeg bounds the angle between the C2→C7 axis and the image's
	// vertical: measurements assume an upright lateral radiograph.
	MaxAxisTiltDeg float64
	// Angle ranges in degrees.
	CobbDeg, C2SlopeDeg, C7SlopeDeg, C7SupSlopeDeg, SegmentalDeg [2]float64
	// MaxC7WedgeDeg bounds |C7 superior slope − C7 inferior slope|.
	MaxC7WedgeDeg float64
	// MinFacingAgreement is the smallest acceptable agreement of the
	// anterior/posterior labels with the decided facing.
	MinFacingAgreement float64
}

// DefaultLimits returns wide anatomical ranges for adult cervical spines.
func DefaultLimits() Limits {
	return Limits{
		MinEndplateMM: 8, MaxEndplateMM: 35,
		MinBodyHeightMM: 5, MaxBodyHeightMM: 30,
		MaxWidthRatio: 1.8,
		MinAspect:     0.3, MaxAspect: 1.6,
		MinDiscFraction:    -0.25,
		MaxAxisTiltDeg:     60,
		CobbDeg:            [2]float64{-45, 75},
		C2SlopeDeg:         [2]float64{-45, 60},
		C7SlopeDeg:         [2]float64{-35, 75},
		C7SupSlopeDeg:      [2]float64{-35, 75},
		SegmentalDeg:       [2]float64{-25, 30},
		MaxC7WedgeDeg:      20,
		MinFacingAgreement: 0.75,
	}
}

// Check returns the ways in which the landmarks and parameters are
// anatomically implausible, each as a short readable sentence, in a fixed
// order; an empty result means plausible. agreement is the facing agreement
// from DetermineFacing.
func Check(lm *[NumLandmarks]Point, f Facing, agreement float64, p Parameters, sp Spacing, lim Limits) []string {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }

	for i, pt := range lm {
		if math.IsNaN(pt.X) || math.IsNaN(pt.Y) || math.IsInf(pt.X, 0) || math.IsInf(pt.Y, 0) {
			add("landmark %d is not finite", i)
			return probs
		}
	}
	if agreement < lim.MinFacingAgreement {
		add("anterior/posterior labels disagree with facing %s (agreement %.2f)", f, agreement)
	}

	// Spine axis: C2 centroid to the centre of C7.
	c7c := mean(lm[SupAnt(7)], lm[SupPost(7)], lm[InfAnt(7)], lm[InfPost(7)])
	ax, ay := c7c.X-lm[C2Centroid].X, c7c.Y-lm[C2Centroid].Y
	axisLen := math.Hypot(ax, ay)
	if axisLen == 0 {
		add("C2 and C7 coincide")
		return probs
	}
	ux, uy := ax/axisLen, ay/axisLen
	if tilt := deg(math.Acos(math.Max(-1, math.Min(1, uy)))); tilt > lim.MaxAxisTiltDeg {
		add("spine axis tilted %.0f° from vertical (C7 not below C2)", tilt)
	}
	proj := func(pt Point) float64 { return (pt.X-lm[C2Centroid].X)*ux + (pt.Y-lm[C2Centroid].Y)*uy }

	// Body heights and endplate widths.
	var heights [5]float64 // C3..C7
	for n := 3; n <= 7; n++ {
		heights[n-3] = (Dist(lm[SupAnt(n)], lm[InfAnt(n)]) + Dist(lm[SupPost(n)], lm[InfPost(n)])) / 2
	}
	medH := median(heights[:])
	widths := make([]float64, len(endplatePairs))
	for i, pr := range endplatePairs {
		widths[i] = Dist(lm[pr[0]], lm[pr[1]])
	}
	medW := median(widths)

	// Order top to bottom along the axis: C2 centroid, C2 inferior endplate,
	// then each vertebra's superior and inferior endplates.
	mid := func(a, b int) float64 { return proj(mean(lm[a], lm[b])) }
	if !(mid(C2InfAnt, C2InfPost) > 0) {
		add("C2 inferior endplate is not below the C2 centroid")
	}
	prevName, prev := "C2", mid(C2InfAnt, C2InfPost)
	for n := 3; n <= 7; n++ {
		sup, inf := mid(SupAnt(n), SupPost(n)), mid(InfAnt(n), InfPost(n))
		if sup-prev < lim.MinDiscFraction*medH {
			add("C%d is not below %s", n, prevName)
		}
		if !(inf > sup) {
			add("C%d inferior endplate is not below its superior endplate", n)
		}
		prevName, prev = fmt.Sprintf("C%d", n), inf
	}

	// Sizes.
	if medW > 0 {
		for i, w := range widths {
			if r := w / medW; r > lim.MaxWidthRatio || r < 1/lim.MaxWidthRatio {
				add("endplate %s width %.2f× the median", endplateName(i), r)
			}
		}
	} else {
		add("endplates have zero width")
	}
	for n := 3; n <= 7; n++ {
		w := (widths[2*(n-3)+1] + widths[2*(n-3)+2]) / 2
		if w > 0 {
			if a := heights[n-3] / w; a < lim.MinAspect || a > lim.MaxAspect {
				add("C%d height/width %.2f outside [%.2f, %.2f]", n, a, lim.MinAspect, lim.MaxAspect)
			}
		}
	}
	if sp.Known() {
		for i, pr := range endplatePairs {
			if w := DistMM(lm[pr[0]], lm[pr[1]], sp); w < lim.MinEndplateMM || w > lim.MaxEndplateMM {
				add("endplate %s width %.1f mm outside [%.0f, %.0f]", endplateName(i), w, lim.MinEndplateMM, lim.MaxEndplateMM)
			}
		}
		for n := 3; n <= 7; n++ {
			h := (DistMM(lm[SupAnt(n)], lm[InfAnt(n)], sp) + DistMM(lm[SupPost(n)], lm[InfPost(n)], sp)) / 2
			if h < lim.MinBodyHeightMM || h > lim.MaxBodyHeightMM {
				add("C%d body height %.1f mm outside [%.0f, %.0f]", n, h, lim.MinBodyHeightMM, lim.MaxBodyHeightMM)
			}
		}
	}

	// Angles.
	inRange := func(name string, v float64, r [2]float64) {
		if !(v >= r[0] && v <= r[1]) {
			add("%s %.1f° outside [%.0f, %.0f]", name, v, r[0], r[1])
		}
	}
	inRange("C2-C7 Cobb", p.CobbDeg, lim.CobbDeg)
	inRange("C2 slope", p.C2SlopeDeg, lim.C2SlopeDeg)
	inRange("C7 slope", p.C7SlopeDeg, lim.C7SlopeDeg)
	inRange("C7 superior slope", p.C7SupSlopeDeg, lim.C7SupSlopeDeg)
	for i, s := range p.SegmentalDeg {
		inRange(fmt.Sprintf("segmental C%d-C%d", i+2, i+3), s, lim.SegmentalDeg)
	}
	if w := math.Abs(p.C7SupSlopeDeg - p.C7SlopeDeg); w > lim.MaxC7WedgeDeg {
		add("C7 wedge %.1f° over %.0f°", w, lim.MaxC7WedgeDeg)
	}
	return probs
}

// endplateName names endplate i of endplatePairs.
func endplateName(i int) string {
	if i == 0 {
		return "C2 inferior"
	}
	n := 3 + (i-1)/2
	if (i-1)%2 == 0 {
		return fmt.Sprintf("C%d superior", n)
	}
	return fmt.Sprintf("C%d inferior", n)
}

// MedianEndplateWidth returns the median width in pixels of the 11 endplates.
func MedianEndplateWidth(lm *[NumLandmarks]Point) float64 {
	widths := make([]float64, len(endplatePairs))
	for i, pr := range endplatePairs {
		widths[i] = Dist(lm[pr[0]], lm[pr[1]])
	}
	return median(widths)
}

func mean(pts ...Point) Point {
	var s Point
	for _, p := range pts {
		s.X += p.X
		s.Y += p.Y
	}
	n := float64(len(pts))
	return Point{s.X / n, s.Y / n}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
