package phantom

import (
	"math"
	"path/filepath"

	"github.com/cspine/cspine/pipeline/result"
)

// regionOfInterest returns the canonical points that must lie inside the
// image for a lateral to be measurable: dens tip to C7 and the spinous tips.
func (an *anatomy) regionOfInterest() []vec {
	pts := []vec{an.axis[0], an.c2Cent}
	for n := lvC2; n <= lvC7; n++ {
		v := an.v[n]
		pts = append(pts, v.infAnt, v.infPost)
		if n > lvC2 {
			pts = append(pts, v.supAnt, v.supPost)
		}
	}
	// Some anterior soft tissue and posterior elements around them.
	e := plateDir(an.v[5].infSlope)
	pts = append(pts, an.v[5].infAnt.add(e.mul(25)), an.v[5].infPost.sub(e.mul(35)))
	return pts
}

func sampleImaging(s *sampler, roi []vec, rows, cols int) *imaging {
	im := &imaging{}
	ipsChoices := []float64{0.1, 0.125, 0.139, 0.143, 0.148, 0.15, 0.16, 0.168, 0.175, 0.2}
	im.ips = ipsChoices[s.intn(len(ipsChoices))]
	if s.chance(0.3) {
		im.ips = math.Round(s.uniform(0.1, 0.2)*1000) / 1000
	}
	im.mag = s.uniform(1.04, 1.2)
	im.rotDeg = s.normalClip(0, 4.5, -10, 10)
	im.faceRight = s.chance(0.4)

	// Extent of the region in detector millimetres after rotation.
	var lin affine
	build := func(ps float64) {
		r := deg2rad(im.rotDeg)
		c, sn := math.Cos(r), math.Sin(r)
		fx := 1.0
		if im.faceRight {
			fx = -1
		}
		k := 1 / ps
		lin = affine{a: k * c * fx, b: -k * sn, c: k * sn * fx, d: k * c}
	}
	bbox := func() (minX, minY, maxX, maxY float64) {
		minX, minY = math.Inf(1), math.Inf(1)
		maxX, maxY = math.Inf(-1), math.Inf(-1)
		for _, p := range roi {
			q := lin.apply(p)
			minX, maxX = math.Min(minX, q.X), math.Max(maxX, q.X)
			minY, maxY = math.Min(minY, q.Y), math.Max(maxY, q.Y)
		}
		return
	}
	im.ps = im.ips / im.mag
	build(im.ps)
	x0, y0, x1, y1 := bbox()
	if rows > 0 {
		im.rows, im.cols = rows, cols
		// Grow the pixel size if the region would not fit.
		for (x1-x0) > 0.85*float64(cols) || (y1-y0) > 0.85*float64(rows) {
			im.ips *= 1.1
			im.ps = im.ips / im.mag
			build(im.ps)
			x0, y0, x1, y1 = bbox()
		}
	} else {
		im.rows = clampInt(int((y1-y0)+s.uniform(40, 160)/im.ps), 1000, 3000)
		im.cols = clampInt(int((x1-x0)+s.uniform(50, 170)/im.ps), 1000, 3000)
	}
	// Place the region at a random position with a margin.
	mx := 0.04 * float64(im.cols)
	my := 0.04 * float64(im.rows)
	tx := s.uniform(mx-x0, float64(im.cols)-mx-x1)
	ty := s.uniform(my-y0, float64(im.rows)-my-y1)
	if float64(im.cols)-mx-x1 < mx-x0 {
		tx = (float64(im.cols) - x1 - x0) / 2
	}
	if float64(im.rows)-my-y1 < my-y0 {
		ty = (float64(im.rows) - y1 - y0) / 2
	}
	lin.tx, lin.ty = tx, ty
	im.xf = lin
	im.inv = lin.inverse()

	im.n0 = math.Exp(s.uniform(math.Log(1500), math.Log(15000)))
	im.heel = s.uniform(-0.25, 0.25)
	im.spr = s.uniform(0.15, 0.9)
	im.scatSigma = s.uniform(15, 40)
	im.detBlur = s.uniform(0.04, 0.22)
	im.elec = s.uniform(1, 6)
	if s.chance(0.6) {
		im.unsharp = s.uniform(0.2, 0.9)
	}
	if s.chance(0.85) {
		im.equalize = s.uniform(0.35, 0.8)
		im.eqScale = s.uniform(15, 40)
	}
	// Collimation: inside the region's bounding box, sometimes off-image.
	rx0, ry0, rx1, ry1 := x0+tx, y0+ty, x1+tx, y1+ty
	if s.chance(0.75) {
		im.collim = [4]float64{
			s.uniform(-20, math.Max(-19, math.Min(0.08*float64(im.cols), rx0-40))),
			s.uniform(-20, math.Max(-19, math.Min(0.06*float64(im.rows), ry0-40))),
			float64(im.cols) - s.uniform(-20, math.Max(-19, math.Min(0.08*float64(im.cols), float64(im.cols)-rx1-40))),
			float64(im.rows) - s.uniform(-20, math.Max(-19, math.Min(0.06*float64(im.rows), float64(im.rows)-ry1-40))),
		}
	} else {
		im.collim = [4]float64{-100, -100, float64(im.cols) + 100, float64(im.rows) + 100}
	}
	im.marker = sampleMarker(s, im, rx0, ry0, rx1, ry1)
	return im
}

// sampleMarker puts the side letter in a corner of the collimated field away
// from the spine.
func sampleMarker(s *sampler, im *imaging, rx0, ry0, rx1, ry1 float64) markerSpec {
	size := s.uniform(8, 13) / im.ps
	letter := "L"
	if s.chance(0.5) {
		letter = "R"
	}
	l := math.Max(im.collim[0], 0) + 0.02*float64(im.cols)
	t := math.Max(im.collim[1], 0) + 0.02*float64(im.rows)
	r := math.Min(im.collim[2], float64(im.cols)) - 0.02*float64(im.cols) - size*1.4
	b := math.Min(im.collim[3], float64(im.rows)) - 0.02*float64(im.rows) - size*1.4
	corners := [][2]float64{{l, t}, {r, t}, {l, b}, {r, b}}
	for k := 0; k < 4; k++ {
		c := corners[(s.intn(4)+k)%4]
		if c[0]+size*1.4 < rx0 || c[0] > rx1 || c[1]+size*1.4 < ry0 || c[1] > ry1 {
			return markerSpec{letter: letter, x: c[0], y: c[1], sizePx: size}
		}
	}
	return markerSpec{} // no free corner: no marker
}

func clampInt(v, lo, hi int) int {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

func makeLateral(o Options, p planned) (result.Truth, error) {
	s := newSampler(o.Seed, p.index, 2)
	al := sampleAlignment(s)
	an := buildSpine(s, al)
	an.sampleNeck(s)
	an.placeShoulders(s, p.grade)
	im := sampleImaging(s, an.regionOfInterest(), o.Rows, o.Cols)
	logImg := render(an, im, s)

	h := sampleHeader(s, o, p, "lateral")
	switch al.posture {
	case "flexion":
		h.seriesDesc, h.protocol = []string{"C-Spine Lateral Flexion", "LAT FLEXION", "Cervical LAT flex"}[s.intn(3)], "C-SPINE LAT FLEXION"
	case "extension":
		h.seriesDesc, h.protocol = []string{"C-Spine Lateral Extension", "LAT EXTENSION", "Cervical LAT ext"}[s.intn(3)], "C-SPINE LAT EXTENSION"
	}
	px := h.quantize(s, logImg, im)
	putF32(logImg)
	defer putU16(px)
	t := lateralTruth(an, im, h)
	t.File = fileName(p.index)
	t.SOPInstanceUID = h.sopUID
	t.StudyInstanceUID = h.studyUID
	t.Modality = h.modality
	t.Posture = al.posture
	b := h.dataset(s, o, p, im, px)
	if err := b.writeFile(filepath.Join(o.OutDir, t.File)); err != nil {
		return t, err
	}
	return t, nil
}

// lateralTruth derives landmarks and parameters from the generator's own
// geometry: the slopes it placed (shifted by the in-plane rotation it
// applied) and the centroid it drew.
func lateralTruth(an *anatomy, im *imaging, h *header) result.Truth {
	t := result.Truth{Measurable: true, Obscuration: an.grade, C7HiddenCorners: an.hiddenCorner,
		RotationDeg: im.rotDeg, Rows: im.rows, Columns: im.cols}
	add := func(name string, v vec) {
		q := im.xf.apply(v)
		t.Landmarks = append(t.Landmarks, result.TruthLandmark{Name: name, X: round4(q.X), Y: round4(q.Y)})
	}
	add("C2_centroid", an.c2Cent)
	add("C2_inf_ant", an.v[lvC2].infAnt)
	add("C2_inf_post", an.v[lvC2].infPost)
	for n := 3; n <= 7; n++ {
		v := an.v[n]
		pre := levelNames[n]
		add(pre+"_sup_ant", v.supAnt)
		add(pre+"_sup_post", v.supPost)
		add(pre+"_inf_ant", v.infAnt)
		add(pre+"_inf_post", v.infPost)
	}
	// Image slope = canonical slope − rotation (facing left) or + rotation
	// (facing right); see anatomy.go for the frame.
	imgSlope := func(s float64) float64 {
		if im.faceRight {
			return s + im.rotDeg
		}
		return s - im.rotDeg
	}
	prm := &result.Parameters{SegmentalDeg: map[string]float64{}}
	prm.C2SlopeDeg = round4(imgSlope(an.v[lvC2].infSlope))
	prm.C7SlopeDeg = round4(imgSlope(an.v[lvC7].infSlope))
	prm.C7SupSlopeDeg = round4(imgSlope(an.v[lvC7].supSlope))
	prm.C2C7CobbDeg = round4(an.v[lvC7].infSlope - an.v[lvC2].infSlope)
	for n := 2; n < 7; n++ {
		prm.SegmentalDeg[result.SegmentNames[n-2]] = round4(an.v[n+1].infSlope - an.v[n].infSlope)
	}
	// SVA: horizontal offset of the C2 centroid from C7's posterior-superior
	// corner in the patient plane, scaled to the spacing the spec says to use.
	d := an.c2Cent.sub(an.v[lvC7].supPost)
	r := deg2rad(im.rotDeg)
	fx := 1.0
	if im.faceRight {
		fx = -1
	}
	dx := fx*d.X*math.Cos(r) - d.Y*math.Sin(r) // horizontal, patient mm
	antSign := -1.0                            // facing left: anterior is −x
	t.Facing = result.FacingLeft
	if im.faceRight {
		antSign = 1
		t.Facing = result.FacingRight
	}
	if h.spacingSource != result.SpacingNone {
		sva := round4(antSign * dx / im.ps * h.colSpacing)
		prm.C2C7SVAmm = &sva
		t.PixelSpacingMM = []float64{h.rowSpacing, h.colSpacing}
	}
	t.SpacingSource = h.spacingSource
	t.Parameters = prm
	// The shoulder's upper edge where it crosses the C7 centre (for plots).
	t.ShoulderY = round4(im.xf.apply(an.shoulder[0].p).Y)
	return t
}

func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }
