package phantom

import "math"

// hideMu is the shoulder attenuation (line integral) above which a C7 corner
// counts as hidden: the primary beam there is cut to e^-2 ≈ 14% of what the
// neck alone lets through, and bony edges drown in noise and scatter.
const hideMu = 2.0

// shoulderMu is the attenuation of the shoulder girdle at v: both shoulders'
// soft tissue plus the clavicles and humeral heads.
func (an *anatomy) shoulderMu(v vec) float64 {
	mu := muSoft * an.shoulderThickness(v)
	for i := range an.shapes {
		sh := &an.shapes[i]
		if !sh.shoulder {
			continue
		}
		mu += sh.t.profile(newPolySDF(sh.poly).at(v.X, v.Y), 0)
	}
	return mu
}

// grade computes the C7 obscuration grade from the geometry: a corner is
// hidden when the shoulder attenuation over it reaches hideMu; "complete"
// needs all four corners and the body's centroid hidden.
func (an *anatomy) computeGrade() (string, int) {
	v := an.v[lvC7]
	hidden := 0
	for _, c := range []vec{v.supAnt, v.supPost, v.infAnt, v.infPost} {
		if an.shoulderMu(c) >= hideMu {
			hidden++
		}
	}
	switch {
	case hidden == 4 && an.shoulderMu(v.centroid) >= hideMu:
		return "complete", hidden
	case hidden == 0:
		return "none", hidden
	default:
		return "partial", hidden
	}
}

// placeShoulders puts the two shoulders so that C7 gets the target grade,
// retrying with fresh draws; the grade written to the truth is always the
// one computed from the final geometry.
func (an *anatomy) placeShoulders(s *sampler, target string) {
	v := an.v[lvC7]
	corners := []vec{v.supAnt, v.supPost, v.infAnt, v.infPost}
	for try := 0; try < 24; try++ {
		alpha := deg2rad(s.normalClip(-10, 9, -32, 12))
		t := vec{math.Cos(alpha), math.Sin(alpha)}
		n := vec{-math.Sin(alpha), math.Cos(alpha)}
		thick := s.uniform(130, 230)
		ramp := s.uniform(22, 45)
		curv := s.uniform(0, 0.004)
		// Depth (below the edge) at which soft tissue alone reaches hideMu.
		x := smoothInv(hideMu / (muSoft * thick))
		dh := x * ramp
		ref := v.centroid
		d0 := func(c vec) float64 { d := c.sub(ref); return d.dot(n) + curv*sq(d.dot(t)) }
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, c := range corners {
			lo, hi = math.Min(lo, d0(c)), math.Max(hi, d0(c))
		}
		lo = math.Min(lo, d0(v.centroid))
		var lambda float64
		switch target {
		case "none":
			lambda = hi - dh + s.uniform(2, 45)
		case "complete":
			lambda = lo - dh - s.uniform(1, 15)
		default:
			lambda = lo - dh + s.uniform(0.1, 0.9)*(hi-lo)
		}
		p := ref.add(n.mul(lambda))
		an.shoulder[0] = shoulderEdge{p: p, n: n, t: t, curv: curv, thick: thick, ramp: ramp, active: true}
		off := s.uniform(4, 25)
		a2 := alpha + deg2rad(s.normal(0, 3))
		t2 := vec{math.Cos(a2), math.Sin(a2)}
		n2 := vec{-math.Sin(a2), math.Cos(a2)}
		an.shoulder[1] = shoulderEdge{p: p.add(n.mul(off)), n: n2, t: t2, curv: curv * s.uniform(0.5, 1.5),
			thick: thick * s.uniform(0.25, 0.5), ramp: ramp * s.uniform(0.8, 1.3), active: true}
		an.addShoulderBones(s)
		g, h := an.computeGrade()
		if g == target || try == 23 {
			an.grade, an.hiddenCorner = g, h
			return
		}
		an.dropShoulderBones()
	}
}

// smoothInv inverts smoothstep on [0,1] (bisection; y clamped).
func smoothInv(y float64) float64 {
	if y >= 1 {
		return 1
	}
	lo, hi := 0.0, 1.0
	for i := 0; i < 40; i++ {
		m := (lo + hi) / 2
		if smoothstep(m) < y {
			lo = m
		} else {
			hi = m
		}
	}
	return (lo + hi) / 2
}

func (an *anatomy) addShoulderBones(s *sampler) {
	e0 := an.shoulder[0]
	for k, e := range an.shoulder {
		// Humeral head: a dense disc well inside the shoulder.
		c := e.p.add(e.n.mul(s.uniform(35, 70))).add(e.t.mul(s.uniform(-10, 60)))
		r := s.uniform(20, 27)
		an.shapes = append(an.shapes, shape{poly: ellipsePoly(c, r, r*s.uniform(0.9, 1.05), 0, 36),
			t: tissue{mu: 0.012, depth: 2 * r, edgeR: r * 0.6, cortex: 0.35, cortW: 1.8, tex: 0.4}, shoulder: true})
		// Clavicle: an S-shaped bar crossing obliquely under the edge.
		a := e.p.add(e.n.mul(s.uniform(15, 45))).sub(e.t.mul(s.uniform(50, 80)))
		b := e.p.add(e.n.mul(s.uniform(-2, 18))).add(e.t.mul(s.uniform(20, 50)))
		mid := lerp(a, b, 0.5).add(e.n.mul(s.uniform(-6, 6)))
		hw := s.uniform(5, 7)
		an.shapes = append(an.shapes, shape{poly: ribbon([]vec{a, mid, b}, []float64{hw, hw * 0.85, hw * 1.1}),
			t: tissue{mu: 0.015, depth: 14, edgeR: 4, cortex: 0.5, cortW: 1.2, tex: 0.3}, shoulder: true})
		_ = k
	}
	_ = e0
}

func (an *anatomy) dropShoulderBones() {
	out := an.shapes[:0]
	for _, sh := range an.shapes {
		if !sh.shoulder {
			out = append(out, sh)
		}
	}
	an.shapes = out
}
