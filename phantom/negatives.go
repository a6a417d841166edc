package phantom

import (
	"fmt"
	"math"
	"path/filepath"

	"github.com/cspine/cspine/pipeline/result"
)

// makeNegative writes an image that must not be measured: an AP view of the
// cervical spine, a chest radiograph, or a lateral too small to analyse.
func makeNegative(o Options, p planned) (result.Truth, error) {
	s := newSampler(o.Seed, p.index, 3)
	var an *anatomy
	var roi []vec
	rows, cols := o.Rows, o.Cols
	switch p.negative {
	case NegativeAP:
		an, roi = buildAP(s)
	case NegativeChest:
		an, roi = buildChest(s)
	case NegativeTooSmall:
		al := sampleAlignment(s)
		an = buildSpine(s, al)
		an.sampleNeck(s)
		an.placeShoulders(s, ObscurePartial)
		roi = an.regionOfInterest()
		rows, cols = 64+s.intn(160), 64+s.intn(140)
	default:
		return result.Truth{}, fmt.Errorf("unknown negative kind %q", p.negative)
	}
	im := sampleImaging(s, roi, rows, cols)
	im.faceRight = false
	logImg := render(an, im, s)
	h := sampleHeader(s, o, p, p.negative)
	px := h.quantize(s, logImg, im)
	putF32(logImg)
	defer putU16(px)
	t := result.Truth{File: fileName(p.index), SOPInstanceUID: h.sopUID, StudyInstanceUID: h.studyUID,
		Measurable: false, Reason: p.negative, Rows: im.rows, Columns: im.cols, Modality: h.modality,
		SpacingSource: h.spacingSource}
	b := h.dataset(s, o, p, im, px)
	return t, b.writeFile(filepath.Join(o.OutDir, t.File))
}

// buildAP is a frontal view of the cervical spine: wide vertebral bodies
// with uncovertebral joints, pedicles and spinous processes in the midline,
// the tracheal air column over the spine, the mandible and both shoulders.
func buildAP(s *sampler) (*anatomy, []vec) {
	an := &anatomy{}
	g := s.normalClip(1, 0.08, 0.8, 1.25)
	y := 0.0
	tilt := deg2rad(s.normal(0, 3))
	var roi []vec
	for n := 2; n < nLv; n++ {
		w := (22 + 1.5*float64(n-2)) * g
		h := 13.0 * g
		if n == 2 {
			h = 20 * g
		}
		c := vec{s.normal(0, 1), y + h/2}.rot(tilt)
		body := []vec{c.add(vec{-w / 2, -h / 2}), c.add(vec{w / 2, -h / 2}), c.add(vec{w / 2, h / 2}), c.add(vec{-w / 2, h / 2})}
		an.shapes = append(an.shapes, shape{poly: roundedPoly(body, 1.5, 3), t: bodyTissue(s, 16), fine: true})
		for _, side := range []float64{-1, 1} { // pedicles: dense ovals
			an.shapes = append(an.shapes, shape{poly: ellipsePoly(c.add(vec{side * w * 0.38, -h * 0.1}), 3, 4.5, 0, 16), t: postTissue(s, 10), fine: true})
		}
		an.shapes = append(an.shapes, shape{poly: ellipsePoly(c.add(vec{0, h * 0.25}), 2.5, 5, 0, 16), t: postTissue(s, 12), fine: true})
		roi = append(roi, body...)
		y += h + 5*g
	}
	an.axis = []vec{{0, -30}, {0, 0}, {0, y}}
	width := s.uniform(95, 125)
	depth := s.uniform(100, 130)
	shoulderY := y - s.uniform(15, 45)
	an.softFn = func(v vec) float64 {
		half := width / 2
		if v.Y > shoulderY {
			half += (v.Y - shoulderY) * 2.2
		}
		t := 0.0
		if math.Abs(v.X) < half {
			t = depth * math.Sqrt(1-sq(v.X/half))
		}
		t = math.Max(t, ellipseThick(v, vec{0, -70}, 80, 75, 170))
		if v.Y > -10 && math.Abs(v.X) < 8 { // trachea over the spine
			t -= 16 * math.Sqrt(1-sq(v.X/8))
		}
		return math.Max(t, 0)
	}
	// Mandible: a U projected over the upper spine.
	mand := []vec{{-45, -40}, {-40, -5}, {-20, 8}, {0, 12}, {20, 8}, {40, -5}, {45, -40}}
	an.shapes = append(an.shapes, shape{poly: ribbon(mand, []float64{5, 6, 6, 6, 6, 6, 5}), t: tissue{mu: 0.02, depth: 10, edgeR: 2, cortex: 0.8, cortW: 1.5}})
	for _, side := range []float64{-1, 1} { // clavicles
		a := vec{side * 10, shoulderY + 25}
		b := vec{side * 120, shoulderY + 5}
		an.shapes = append(an.shapes, shape{poly: ribbon([]vec{a, lerp(a, b, 0.5).add(vec{0, 6}), b}, []float64{6, 5, 6}), t: tissue{mu: 0.015, depth: 14, edgeR: 4, cortex: 0.5, cortW: 1.2}})
	}
	return an, roi
}

// buildChest is a PA chest: trunk, two air-filled lungs, the heart, ribs,
// clavicles and the thoracic spine.
func buildChest(s *sampler) (*anatomy, []vec) {
	an := &anatomy{}
	W := s.uniform(280, 340)
	D := s.uniform(180, 240)
	lungH := s.uniform(200, 250)
	an.axis = []vec{{0, 0}, {0, 1}, {0, 2}}
	an.softFn = func(v vec) float64 {
		half := W / 2
		t := 0.0
		if math.Abs(v.X) < half && v.Y > -30 {
			t = D * math.Sqrt(1-sq(v.X/half))
		}
		t = math.Max(t, ellipseThick(v, vec{0, -60}, 60, 50, 120)) // neck
		for _, side := range []float64{-1, 1} {
			t -= ellipseThick(v, vec{side * W * 0.24, lungH * 0.55}, W*0.19, lungH/2, D*0.7)
		}
		t += ellipseThick(v, vec{W * 0.05, lungH * 0.75}, W*0.2, lungH*0.22, D*0.45)
		return math.Max(t, 0)
	}
	for k := 0; k < 10; k++ { // posterior ribs as arcs on both sides
		y0 := 10 + float64(k)*lungH/10
		for _, side := range []float64{-1, 1} {
			line := []vec{{side * 12, y0}, {side * W * 0.2, y0 - 8}, {side * W * 0.38, y0 + 10}, {side * W * 0.44, y0 + 35}}
			an.shapes = append(an.shapes, shape{poly: ribbon(line, []float64{4, 4.5, 4.5, 4}), t: tissue{mu: 0.012, depth: 10, edgeR: 2, cortex: 0.35, cortW: 1}})
		}
	}
	for _, side := range []float64{-1, 1} {
		an.shapes = append(an.shapes, shape{poly: ribbon([]vec{{side * 15, 5}, {side * 70, -8}, {side * 140, -5}}, []float64{6, 5, 6}), t: tissue{mu: 0.015, depth: 14, edgeR: 4, cortex: 0.5, cortW: 1.2}})
	}
	for k := 0; k < 12; k++ {
		c := vec{0, float64(k) * 24}
		an.shapes = append(an.shapes, shape{poly: roundedPoly([]vec{c.add(vec{-14, -10}), c.add(vec{14, -10}), c.add(vec{14, 10}), c.add(vec{-14, 10})}, 2, 2), t: bodyTissue(s, 30)})
	}
	roi := []vec{{-W / 2, -40}, {W / 2, -40}, {-W / 2, lungH + 30}, {W / 2, lungH + 30}}
	return an, roi
}
