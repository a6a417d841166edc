package phantom

import "math"

// Soft tissue of the head, neck and trunk as water-equivalent path lengths
// (mm) along the lateral beam. Soft tissue attenuates about 0.02 /mm at the
// effective energy of a cervical lateral (70–80 kVp).
const muSoft = 0.02

func (an *anatomy) sampleNeck(s *sampler) {
	nk := &an.neck
	g := 1.0
	nk.antOff = s.uniform(26, 40) * g
	nk.postOff = s.uniform(72, 95) * g
	nk.width = s.uniform(95, 130)
	top := an.axis[0]
	e := plateDir(an.v[lvC2].infSlope)
	nk.headC = top.add(vec{s.uniform(-25, 5), -s.uniform(55, 80)})
	nk.headA, nk.headB = s.uniform(90, 110), s.uniform(80, 100)
	nk.headW = s.uniform(130, 160)
	nk.jawC = an.v[lvC2].infAnt.add(e.mul(s.uniform(45, 65))).add(vec{0, -s.uniform(10, 25)})
	nk.jawA, nk.jawB = s.uniform(40, 55), s.uniform(28, 40)
	nk.chestGrow = s.uniform(0.5, 1.1)
	nk.yC7 = an.v[lvC7].infAnt.Y
	nk.airW = s.uniform(14, 24)
	nk.airAP = s.uniform(11, 18)
	pv := [nLv]float64{0, 0, s.uniform(2.5, 6), s.uniform(3, 6.5), s.uniform(4, 8), s.uniform(9, 16), s.uniform(11, 18), s.uniform(12, 19), s.uniform(12, 20), s.uniform(12, 20)}
	nk.pvst = pv[:]
	nk.airTop = top.Y - s.uniform(10, 25)
	for n := lvC2; n < nLv; n++ {
		v := an.v[n]
		nk.antWall = append(nk.antWall, lerp(v.infAnt, v.supAnt, 0.5))
	}
	if len(nk.antWall) > 0 {
		nk.antWall[0] = an.v[lvC2].infAnt.add(vec{0, -8})
	}
}

// axisX is the neck axis' x at height y, extrapolated beyond its ends.
func axisX(axis []vec, y float64) float64 {
	if y <= axis[0].Y {
		a, b := axis[0], axis[1]
		return a.X + (y-a.Y)*(b.X-a.X)/(b.Y-a.Y)
	}
	for i := 1; i < len(axis); i++ {
		if y <= axis[i].Y {
			a, b := axis[i-1], axis[i]
			return a.X + (y-a.Y)*(b.X-a.X)/(b.Y-a.Y)
		}
	}
	a, b := axis[len(axis)-2], axis[len(axis)-1]
	return a.X + (y-a.Y)*(b.X-a.X)/(b.Y-a.Y)
}

func ellipseThick(v, c vec, a, b, w float64) float64 {
	dx, dy := (v.X-c.X)/a, (v.Y-c.Y)/b
	r := 1 - dx*dx - dy*dy
	if r <= 0 {
		return 0
	}
	return w * math.Sqrt(r)
}

// softThickness is the water-equivalent soft-tissue path length at v,
// without the shoulders.
func (an *anatomy) softThickness(v vec) float64 {
	nk := &an.neck
	xc := axisX(an.axis, v.Y)
	ant, post, w := nk.antOff, nk.postOff, nk.width
	// Laryngeal prominence at C4–C5 and the nape's concavity.
	yl := an.v[5].supAnt.Y
	ant += 7 * fastExp(-sq((v.Y-yl)/12))
	post -= 6 * fastExp(-sq((v.Y-an.v[4].infPost.Y)/25))
	if d := v.Y - nk.yC7; d > 0 { // the trunk widens below C7
		ant += d * nk.chestGrow
		post += d * nk.chestGrow * 0.8
		w += d * 0.6
	}
	lo, hi := xc-ant, xc+post
	t := 0.0
	if v.X > lo && v.X < hi && v.Y > nk.headC.Y {
		m, h := (lo+hi)/2, (hi-lo)/2
		t = w * math.Sqrt(math.Max(0, 1-sq((v.X-m)/h)))
	}
	t = math.Max(t, ellipseThick(v, nk.headC, nk.headA, nk.headB, nk.headW))
	t = math.Max(t, ellipseThick(v, nk.jawC, nk.jawA, nk.jawB, 100))
	// Airway: pharynx, larynx and trachea in front of the spine.
	if v.Y > nk.airTop {
		ax := an.airwayX(v.Y)
		if d := (v.X - ax) / (nk.airAP / 2); d > -1 && d < 1 {
			t -= nk.airW * math.Sqrt(1-d*d)
		}
	}
	if t < 0 {
		t = 0
	}
	return t
}

func (an *anatomy) airwayX(y float64) float64 {
	nk := &an.neck
	w := nk.antWall
	off := func(i int) float64 { return nk.pvst[i+lvC2] + nk.airAP/2 }
	if y <= w[0].Y {
		return w[0].X - off(0)
	}
	for i := 1; i < len(w); i++ {
		if y <= w[i].Y {
			t := (y - w[i-1].Y) / (w[i].Y - w[i-1].Y)
			return (w[i-1].X - off(i-1)) + t*((w[i].X-off(i))-(w[i-1].X-off(i-1)))
		}
	}
	i := len(w) - 1
	return w[i].X - off(i)
}

func sq(x float64) float64 { return x * x }

// shoulderThickness is the soft tissue of both shoulders at v.
func (an *anatomy) shoulderThickness(v vec) float64 {
	return an.shoulder[0].thicknessAt(v) + an.shoulder[1].thicknessAt(v)
}
