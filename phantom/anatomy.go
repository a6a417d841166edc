package phantom

import (
	"math"
)

// Anatomy of one lateral cervical radiograph, in the canonical frame:
// millimetres in the patient's mid-sagittal plane, the patient facing
// image-left (anterior toward -x), y growing downward, the centre of the C2
// inferior endplate at the origin. Ranges below are adult values from the
// radiographic-morphometry literature (vertebral body depth 15–20 mm, height
// 12–17 mm, disc height 4–6 mm; C2–C7 alignment from about 20° kyphosis to
// 45° lordosis; C7 slope typically 15–35°), widened to cover variation.

// Levels: index 2..9 = C2..C7, T1, T2.
const (
	lvC2 = 2
	lvC7 = 7
	lvT1 = 8
	lvT2 = 9
	nLv  = 10
)

var levelNames = [nLv]string{"", "C1", "C2", "C3", "C4", "C5", "C6", "C7", "T1", "T2"}

// vertebra is one body's four endplate corners.
type vertebra struct {
	supAnt, supPost, infAnt, infPost vec
	supSlope, infSlope               float64 // degrees, canonical frame
	centroid                         vec     // centroid of the drawn body outline
}

// tissue describes how a bone shape attenuates in a lateral projection.
type tissue struct {
	mu     float64 // excess linear attenuation of the interior over soft tissue (1/mm)
	depth  float64 // path length through the structure along the beam (mm)
	edgeR  float64 // distance (mm) over which the path length reaches depth: rounded 3-D edges
	cortex float64 // extra attenuation of the tangential cortical shell at the outline
	cortW  float64 // cortical shell width (mm)
	tex    float64 // amplitude of trabecular texture
}

// shape is a bone outline with its tissue.
type shape struct {
	poly     []vec
	t        tissue
	fine     bool // rendered at full resolution (spine) or on the coarse grid
	shoulder bool // part of the shoulder girdle (counts toward C7 obscuration)
}

// shoulderEdge is the upper contour of one shoulder: soft tissue thickness
// grows from 0 at the edge to thick over ramp millimetres below it.
type shoulderEdge struct {
	p      vec     // a point on the edge
	n      vec     // unit normal pointing into the shoulder (downward)
	curv   float64 // curvature term (1/mm)
	thick  float64 // mm of soft tissue at full depth
	ramp   float64 // mm
	t      vec     // unit tangent
	active bool
}

func (e shoulderEdge) depthAt(v vec) float64 {
	d := v.sub(e.p)
	along := d.dot(e.t)
	return d.dot(e.n) + e.curv*along*along
}

func smoothstep(x float64) float64 {
	if x <= 0 {
		return 0
	}
	if x >= 1 {
		return 1
	}
	return x * x * (3 - 2*x)
}

func (e shoulderEdge) thicknessAt(v vec) float64 {
	if !e.active {
		return 0
	}
	return e.thick * smoothstep(e.depthAt(v)/e.ramp)
}

type anatomy struct {
	v        [nLv]vertebra
	c2Cent   vec
	shapes   []shape
	axis     []vec // body centres top to bottom (C1 .. T2), the neck's axis
	neck     neckModel
	shoulder [2]shoulderEdge
	// obscuration facts filled by grade()
	grade string
	// softFn, when set, replaces the lateral neck model (negative views).
	softFn       func(vec) float64
	hiddenCorner int
}

type neckModel struct {
	antOff, postOff float64 // skin distance from the body-centre axis at mid neck (mm)
	width           float64 // lateral width of the neck (mm of tissue along the beam)
	headC           vec     // head ellipse centre
	headA, headB    float64
	headW           float64
	jawC            vec
	jawA, jawB      float64
	chestGrow       float64 // how fast the trunk widens below C7 (mm per mm)
	yC7             float64
	airW            float64   // airway width along the beam (mm)
	airAP           float64   // airway AP diameter (mm)
	pvst            []float64 // prevertebral soft tissue per level C2..T2 (mm)
	airTop          float64   // y where the airway starts (nasopharynx)
	antWall         []vec     // anterior-wall midpoints of C2..T2 (for the airway path)
}

// endplate unit vector from posterior to anterior corner for a slope s (deg).
func plateDir(s float64) vec {
	r := deg2rad(s)
	return vec{-math.Cos(r), math.Sin(r)}
}

// downNormal of an endplate with slope s.
func downNormal(s float64) vec {
	r := deg2rad(s)
	return vec{math.Sin(r), math.Cos(r)}
}

// alignment holds the sampled sagittal alignment (inferior-endplate slopes).
type alignment struct {
	posture  string       // neutral, flexion or extension (functional views)
	infSlope [nLv]float64 // C2..T2
	wedge    [nLv]float64 // body wedge: inferior minus superior slope of the same body
	shift    [nLv]float64 // translation of level n relative to n-1 (mm, + anterior)
}

func sampleAlignment(s *sampler) alignment {
	var a alignment
	// C2–C7 Cobb: a mixture so that kyphotic, straight and lordotic necks
	// all occur (clinical range about -20° .. +45°). One lateral in ten is
	// a flexion view and one in ten an extension view (functional studies).
	var cobb float64
	a.posture = []string{"neutral", "flexion", "extension"}[s.pick(0.8, 0.1, 0.1)]
	switch {
	case a.posture == "flexion":
		cobb = s.uniform(-20, 2)
	case a.posture == "extension":
		cobb = s.normalClip(30, 8, 15, 45)
	default:
		switch s.pick(0.15, 0.25, 0.6) {
		case 0:
			cobb = s.uniform(-20, -3)
		case 1:
			cobb = s.uniform(-3, 8)
		default:
			cobb = s.normalClip(16, 10, 5, 45)
		}
	}
	c7 := s.normalClip(20+0.35*(cobb-12), 7, -8, 48)
	// Split the Cobb angle over the five motion segments with random weights.
	var w [5]float64
	tw := 0.0
	for i := range w {
		w[i] = s.uniform(0.3, 1.7)
		tw += w[i]
	}
	a.infSlope[lvC7] = c7
	acc := c7
	for n := lvC7; n > lvC2; n-- {
		seg := cobb * w[n-3] / tw
		acc -= seg
		a.infSlope[n-1] = acc
	}
	a.infSlope[lvT1] = c7 + s.normal(3, 3)
	a.infSlope[lvT2] = a.infSlope[lvT1] + s.normal(2, 2)
	for n := lvC2 + 1; n < nLv; n++ {
		seg := a.infSlope[n] - a.infSlope[n-1]
		a.wedge[n] = 0.25*seg + s.normal(0, 1.5)
		a.shift[n] = s.normal(0, 0.5)
		if s.chance(0.06) { // spondylolisthesis / instability
			a.shift[n] += s.uniform(1.5, 3.5) * float64(1-2*s.intn(2))
		}
	}
	return a
}

// buildSpine places C2..T2 and their posterior elements.
func buildSpine(s *sampler, al alignment) *anatomy {
	an := &anatomy{}
	g := s.normalClip(1, 0.08, 0.8, 1.25) // patient size
	depth := [nLv]float64{0, 0, 15.5, 15, 15.5, 16, 16.8, 17.5, 19, 20}
	height := [nLv]float64{0, 0, 0, 13, 13, 12.6, 12.6, 14, 16, 17}
	disc := [nLv]float64{0, 0, 0, 4.6, 5, 5.5, 5.6, 5.2, 4.6, 4.2} // disc above level n
	degen := s.chance(0.35)
	for n := lvC2; n < nLv; n++ {
		depth[n] *= g * s.normalClip(1, 0.04, 0.9, 1.1)
		height[n] *= g * s.normalClip(1, 0.05, 0.85, 1.15)
		disc[n] *= g * s.normalClip(1, 0.1, 0.7, 1.3)
		if degen && n >= 4 && n <= 7 && s.chance(0.45) {
			disc[n] *= s.uniform(0.45, 0.8)
		}
	}
	// C2 inferior endplate centred on the origin.
	e2 := plateDir(al.infSlope[lvC2])
	an.v[lvC2].infAnt = e2.mul(depth[lvC2] / 2)
	an.v[lvC2].infPost = e2.mul(-depth[lvC2] / 2)
	an.v[lvC2].infSlope = al.infSlope[lvC2]
	for n := lvC2 + 1; n < nLv; n++ {
		prev := an.v[n-1]
		sSup := al.infSlope[n] - al.wedge[n]
		discAngle := sSup - prev.infSlope
		w := depth[n]
		dp := disc[n] - w/2*math.Tan(deg2rad(discAngle))
		if da := dp + w*math.Tan(deg2rad(discAngle)); da < 1.2 {
			dp += 1.2 - da
		}
		if dp < 1.2 {
			dp = 1.2
		}
		supPost := prev.infPost.add(downNormal(prev.infSlope + discAngle/2).mul(dp)).
			add(plateDir(prev.infSlope).mul(al.shift[n]))
		supAnt := supPost.add(plateDir(sSup).mul(w))
		hp := height[n] - w/2*math.Tan(deg2rad(al.wedge[n]))
		infPost := supPost.add(downNormal((sSup + al.infSlope[n]) / 2).mul(hp))
		infAnt := infPost.add(plateDir(al.infSlope[n]).mul(w))
		an.v[n] = vertebra{supAnt: supAnt, supPost: supPost, infAnt: infAnt, infPost: infPost,
			supSlope: sSup, infSlope: al.infSlope[n]}
	}
	an.addBones(s, g, height)
	return an
}

func inwardBulge(a, b, center vec, amount float64, steps int) []vec {
	d := b.sub(a)
	nrm := vec{-d.Y, d.X}.norm()
	if lerp(a, b, 0.5).add(nrm).sub(center).len() > lerp(a, b, 0.5).sub(center).len() {
		nrm = nrm.mul(-1)
	}
	out := make([]vec, 0, steps-1)
	for i := 1; i < steps; i++ {
		t := float64(i) / float64(steps)
		out = append(out, lerp(a, b, t).add(nrm.mul(amount*math.Sin(math.Pi*t))))
	}
	return out
}

// quadOutline builds a body outline from four corners with concave endplates
// and walls, corners slightly rounded.
func quadOutline(s *sampler, supPost, supAnt, infAnt, infPost vec) []vec {
	c := supPost.add(supAnt).add(infAnt).add(infPost).mul(0.25)
	var p []vec
	p = append(p, supPost)
	p = append(p, inwardBulge(supPost, supAnt, c, s.uniform(0.3, 0.9), 8)...)
	p = append(p, supAnt)
	p = append(p, inwardBulge(supAnt, infAnt, c, s.uniform(0.2, 0.8), 6)...)
	p = append(p, infAnt)
	p = append(p, inwardBulge(infAnt, infPost, c, s.uniform(0.3, 1.0), 8)...)
	p = append(p, infPost)
	p = append(p, inwardBulge(infPost, supPost, c, s.uniform(0.1, 0.5), 6)...)
	return roundedPoly(p, 0.35, 2)
}

// ribbon turns a polyline into a closed outline of the given half-widths.
func ribbon(line []vec, half []float64) []vec {
	n := len(line)
	left := make([]vec, n)
	right := make([]vec, n)
	for i := range line {
		var d vec
		switch {
		case i == 0:
			d = line[1].sub(line[0])
		case i == n-1:
			d = line[n-1].sub(line[n-2])
		default:
			d = line[i+1].sub(line[i-1])
		}
		nrm := vec{-d.Y, d.X}.norm()
		left[i] = line[i].add(nrm.mul(half[i]))
		right[i] = line[i].sub(nrm.mul(half[i]))
	}
	out := append([]vec{}, left...)
	for i := n - 1; i >= 0; i-- {
		out = append(out, right[i])
	}
	return out
}

func ellipsePoly(c vec, a, b, rot float64, steps int) []vec {
	out := make([]vec, steps)
	for i := range out {
		t := 2 * math.Pi * float64(i) / float64(steps)
		out[i] = c.add(vec{a * math.Cos(t), b * math.Sin(t)}.rot(rot))
	}
	return out
}

// Bone tissues. Excess attenuation over soft tissue near 60–70 keV:
// trabecular bone ≈ 0.012–0.02 /mm, the tangential cortical shell much more.
func bodyTissue(s *sampler, lateralWidth float64) tissue {
	return tissue{mu: s.uniform(0.024, 0.036), depth: lateralWidth, edgeR: 3.5,
		cortex: s.uniform(0.4, 0.7), cortW: s.uniform(0.6, 1.0), tex: s.uniform(0.25, 0.45)}
}

func postTissue(s *sampler, depth float64) tissue {
	return tissue{mu: s.uniform(0.022, 0.032), depth: depth, edgeR: 2.5,
		cortex: s.uniform(0.25, 0.45), cortW: 0.7, tex: 0.3}
}

func (an *anatomy) addBones(s *sampler, g float64, height [nLv]float64) {
	// Slight axial rotation of the patient: the two halves of each body no
	// longer superimpose and endplates show double contours (common on real
	// films). The truth corners stay at the mid-line between the contours,
	// where readers place them.
	var split vec
	if s.chance(0.3) {
		split = plateDir(an.v[5].infSlope).mul(s.uniform(0.5, 2.2) / 2).add(vec{0, s.normal(0, 0.4)})
	}
	addBody := func(poly []vec, t tissue) {
		if split == (vec{}) {
			an.shapes = append(an.shapes, shape{poly: poly, t: t, fine: true})
			return
		}
		t.depth /= 2
		t.cortex *= 0.6
		for _, sg := range []float64{-1, 1} {
			q := make([]vec, len(poly))
			for i, p := range poly {
				q[i] = p.add(split.mul(sg))
			}
			an.shapes = append(an.shapes, shape{poly: q, t: t, fine: true})
		}
	}
	// C2 body: inferior endplate, anterior wall with a small inferior lip,
	// posterior wall, top narrowing into the dens base.
	v2 := an.v[lvC2]
	e := plateDir(v2.infSlope)
	up := downNormal(v2.infSlope).mul(-1)
	h2 := s.uniform(17, 22) * g
	w2 := v2.infAnt.sub(v2.infPost).len()
	supPost2 := v2.infPost.add(up.mul(h2 * 0.92)).add(e.mul(0.5))
	supAnt2 := v2.infAnt.add(up.mul(h2)).sub(e.mul(w2 * 0.18))
	lip := v2.infAnt.add(e.mul(s.uniform(0.3, 1.4))).add(up.mul(1.2))
	c2 := []vec{supPost2, supAnt2}
	c2 = append(c2, inwardBulge(supAnt2, lip, v2.infAnt.add(v2.infPost).mul(0.5).add(up.mul(h2/2)), 0.7, 6)...)
	c2 = append(c2, lip, v2.infAnt)
	mid := v2.infAnt.add(v2.infPost).mul(0.5).add(up.mul(h2 / 2))
	c2 = append(c2, inwardBulge(v2.infAnt, v2.infPost, mid, s.uniform(0.3, 1.0), 8)...)
	c2 = append(c2, v2.infPost)
	c2 = append(c2, inwardBulge(v2.infPost, supPost2, mid, 0.4, 6)...)
	c2 = roundedPoly(c2, 0.35, 2)
	_, an.c2Cent = polyCentroid(c2)
	an.v[lvC2].centroid = an.c2Cent
	latBody := s.uniform(17, 24) * g
	addBody(c2, bodyTissue(s, latBody+2))
	// Dens: a rounded peg above the body, tilted slightly back.
	densBase := supPost2.add(supAnt2).mul(0.5)
	densUp := up.rot(deg2rad(s.normal(-8, 5)))
	densW := s.uniform(8.5, 10.5) * g
	densH := s.uniform(13, 17) * g
	dPerp := vec{-densUp.Y, densUp.X}
	dens := []vec{
		densBase.add(dPerp.mul(densW / 2)).sub(densUp.mul(2)),
		densBase.add(dPerp.mul(densW * 0.45)).add(densUp.mul(densH * 0.7)),
		densBase.add(densUp.mul(densH)),
		densBase.sub(dPerp.mul(densW * 0.45)).add(densUp.mul(densH * 0.7)),
		densBase.sub(dPerp.mul(densW / 2)).sub(densUp.mul(2)),
	}
	an.shapes = append(an.shapes, shape{poly: roundedPoly(dens, 2.5, 4), t: bodyTissue(s, 10), fine: true})
	densTop := densBase.add(densUp.mul(densH))

	// C3..T2 bodies.
	for n := lvC2 + 1; n < nLv; n++ {
		v := an.v[n]
		poly := quadOutline(s, v.supPost, v.supAnt, v.infAnt, v.infPost)
		_, an.v[n].centroid = polyCentroid(poly)
		lat := latBody * (1 + 0.05*float64(n-3))
		addBody(poly, bodyTissue(s, lat))
	}

	// Posterior elements: pedicle, articular pillar, lamina and spinous
	// process. Spinous processes lengthen toward C7 (vertebra prominens).
	spLen := [nLv]float64{0, 0, 24, 15, 16, 18, 22, 30, 32, 32}
	for n := lvC2; n < nLv; n++ {
		v := an.v[n]
		sMid := v.infSlope
		top := v.supPost
		if n == lvC2 {
			top = supPost2
			sMid = v.infSlope
		} else {
			sMid = (v.supSlope + v.infSlope) / 2
		}
		ant := plateDir(sMid)
		post := ant.mul(-1)
		dn := downNormal(sMid)
		hgt := v.infPost.sub(top).len()
		pedLen := s.uniform(3.5, 6) * g
		pedTop := top.add(dn.mul(hgt * 0.12))
		ped := []vec{pedTop, pedTop.add(post.mul(pedLen + 2)), pedTop.add(post.mul(pedLen + 2)).add(dn.mul(hgt * 0.45)), pedTop.add(dn.mul(hgt * 0.45))}
		an.shapes = append(an.shapes, shape{poly: roundedPoly(ped, 1, 2), t: postTissue(s, 12), fine: true})
		// Articular pillar: a parallelogram spanning the body and half the
		// discs, its top and bottom (facet joints) sloping down and back.
		pw := s.uniform(9, 12) * g
		pillarTop := top.add(post.mul(pedLen)).sub(dn.mul(1.5))
		facet := deg2rad(s.uniform(35, 55))
		drop := math.Tan(facet) * pw * 0.5
		ph := hgt + 1.5
		p0 := pillarTop
		p1 := pillarTop.add(post.mul(pw)).add(dn.mul(drop))
		p2 := p1.add(dn.mul(ph))
		p3 := p0.add(dn.mul(ph))
		an.shapes = append(an.shapes, shape{poly: roundedPoly([]vec{p0, p1, p2, p3}, 1.5, 3), t: postTissue(s, 20), fine: true})
		// Lamina and spinous process.
		L := spLen[n] * g * s.uniform(0.85, 1.15)
		dir := post.rot(deg2rad(s.uniform(15, 35))) // pointing back and down
		if n >= lvC7 {
			dir = post.rot(deg2rad(s.uniform(8, 25)))
		}
		base := p1.add(dn.mul(ph * 0.35))
		bw := s.uniform(7, 9) * g
		if n == lvC2 {
			bw *= 1.6
		}
		perp := vec{-dir.Y, dir.X}
		tip := base.add(dir.mul(L))
		sp := []vec{base.add(perp.mul(bw / 2)), tip.add(perp.mul(bw * 0.3)), tip.add(dir.mul(2)), tip.sub(perp.mul(bw * 0.3)), base.sub(perp.mul(bw / 2))}
		an.shapes = append(an.shapes, shape{poly: roundedPoly(sp, 1.5, 3), t: postTissue(s, 9), fine: true})
	}

	// C1: anterior arch in front of the dens, lateral masses over it, and a
	// posterior arch with its tubercle.
	adi := s.uniform(1.2, 3)
	densFront := densBase.add(e.mul(densW / 2)).add(densUp.mul(densH * 0.55))
	aa := densFront.add(e.mul(adi + 4.5))
	an.shapes = append(an.shapes, shape{poly: ellipsePoly(aa, 4.5, 6, deg2rad(s.normal(0, 8)), 20), t: postTissue(s, 14), fine: true})
	lm := densBase.add(densUp.mul(densH * 0.6)).sub(e.mul(densW * 0.3))
	an.shapes = append(an.shapes, shape{poly: roundedPoly([]vec{lm.add(vec{-8, -6}), lm.add(vec{8, -7}), lm.add(vec{9, 7}), lm.add(vec{-7, 6})}, 3, 3), t: postTissue(s, 22), fine: true})
	pa0 := lm.sub(e.mul(8))
	pa1 := pa0.sub(e.mul(s.uniform(28, 38) * g)).add(up.mul(s.uniform(-4, 4)))
	an.shapes = append(an.shapes, shape{poly: roundedPoly(ribbon([]vec{pa0, lerp(pa0, pa1, 0.5).add(up.mul(1.5)), pa1}, []float64{3.5, 3, 4.5}), 1.5, 3), t: postTissue(s, 12), fine: true})

	// Skull base (occiput, mastoid/petrous density) and mandible: coarse.
	occ0 := pa1.add(up.mul(s.uniform(8, 16)))
	occLine := []vec{occ0.add(e.mul(12)), occ0, occ0.sub(e.mul(25)).add(up.mul(12)), occ0.sub(e.mul(45)).add(up.mul(45)), occ0.sub(e.mul(50)).add(up.mul(90))}
	an.shapes = append(an.shapes, shape{poly: ribbon(occLine, []float64{3, 4, 5, 5, 5}), t: tissue{mu: 0.02, depth: 40, edgeR: 3, cortex: 0.6, cortW: 1.5, tex: 0.2}})
	mast := densTop.add(up.mul(s.uniform(6, 14))).sub(e.mul(s.uniform(5, 15)))
	an.shapes = append(an.shapes, shape{poly: ellipsePoly(mast, s.uniform(14, 20), s.uniform(10, 14), deg2rad(s.normal(-20, 10)), 24), t: tissue{mu: 0.03, depth: 30, edgeR: 6, cortex: 0.2, cortW: 2, tex: 0.4}})
	// Mandible: ramus down to the angle near C2/C3, then the body forward.
	angle := v2.infAnt.add(e.mul(s.uniform(25, 45) * g)).add(up.mul(s.uniform(-8, 10)))
	ramusTop := angle.add(up.mul(s.uniform(40, 55))).add(e.mul(s.uniform(5, 12)))
	bodyEnd := angle.add(e.mul(s.uniform(60, 80))).add(up.mul(s.uniform(8, 22)))
	mand := []vec{ramusTop, lerp(ramusTop, angle, 0.6), angle.add(up.mul(3)).add(e.mul(2)), lerp(angle, bodyEnd, 0.4), bodyEnd}
	an.shapes = append(an.shapes, shape{poly: ribbon(mand, []float64{5, 6, 7, 8, 9}), t: tissue{mu: 0.02, depth: 2 * 6, edgeR: 2, cortex: 0.9, cortW: 1.8, tex: 0.2}})
	// Hyoid: a small dense bar at C3–C4 level, anterior.
	hy := an.v[4].supAnt.add(e.mul(s.uniform(25, 38))).add(up.mul(s.uniform(-4, 6)))
	an.shapes = append(an.shapes, shape{poly: roundedPoly(ribbon([]vec{hy, hy.sub(e.mul(14)).add(up.mul(3))}, []float64{2, 2.5}), 1, 2), t: tissue{mu: 0.02, depth: 14, edgeR: 1, cortex: 0.3, cortW: 0.8}})

	// Neck axis: body centres, with C1 above C2.
	an.axis = append(an.axis, densTop)
	for n := lvC2; n < nLv; n++ {
		an.axis = append(an.axis, an.v[n].centroid)
	}
	_ = height
}
