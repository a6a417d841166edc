package phantom

import "math"

// vec is a 2-D point or vector. In the canonical anatomical frame it is in
// millimetres (x grows posteriorly for a patient facing image-left, y grows
// downward); after projection it is in pixels of the written image.
type vec struct{ X, Y float64 }

func (a vec) add(b vec) vec       { return vec{a.X + b.X, a.Y + b.Y} }
func (a vec) sub(b vec) vec       { return vec{a.X - b.X, a.Y - b.Y} }
func (a vec) mul(s float64) vec   { return vec{a.X * s, a.Y * s} }
func (a vec) dot(b vec) float64   { return a.X*b.X + a.Y*b.Y }
func (a vec) cross(b vec) float64 { return a.X*b.Y - a.Y*b.X }
func (a vec) len() float64        { return math.Hypot(a.X, a.Y) }
func (a vec) norm() vec {
	l := a.len()
	if l == 0 {
		return a
	}
	return a.mul(1 / l)
}
func lerp(a, b vec, t float64) vec { return a.add(b.sub(a).mul(t)) }

// rot rotates v by angle (radians, counter-clockwise in a y-down frame means
// clockwise on screen; callers only rely on consistency).
func (a vec) rot(angle float64) vec {
	s, c := math.Sincos(angle)
	return vec{a.X*c - a.Y*s, a.X*s + a.Y*c}
}

func deg2rad(d float64) float64 { return d * math.Pi / 180 }
func rad2deg(r float64) float64 { return r * 180 / math.Pi }

// affine maps canonical millimetres to image pixels: p = A·v + t.
type affine struct {
	a, b, c, d float64 // [a b; c d]
	tx, ty     float64
}

func (m affine) apply(v vec) vec {
	return vec{m.a*v.X + m.b*v.Y + m.tx, m.c*v.X + m.d*v.Y + m.ty}
}

func (m affine) inverse() affine {
	det := m.a*m.d - m.b*m.c
	ia, ib, ic, id := m.d/det, -m.b/det, -m.c/det, m.a/det
	return affine{ia, ib, ic, id, -(ia*m.tx + ib*m.ty), -(ic*m.tx + id*m.ty)}
}

// scale returns how many pixels one millimetre spans (isotropic maps only).
func (m affine) scale() float64 { return math.Sqrt(math.Abs(m.a*m.d - m.b*m.c)) }

// polyArea returns the signed area and the area centroid of a closed polygon.
func polyCentroid(p []vec) (area float64, c vec) {
	for i := range p {
		j := (i + 1) % len(p)
		cr := p[i].cross(p[j])
		area += cr
		c = c.add(p[i].add(p[j]).mul(cr))
	}
	area /= 2
	c = c.mul(1 / (6 * area))
	return area, c
}

// roundedPoly replaces each vertex of a polygon by a short arc of radius r
// (approximated by a few points) so that bone outlines have no knife edges.
func roundedPoly(p []vec, r float64, steps int) []vec {
	out := make([]vec, 0, len(p)*(steps+1))
	n := len(p)
	for i := range p {
		prev, cur, next := p[(i+n-1)%n], p[i], p[(i+1)%n]
		d1, d2 := prev.sub(cur), next.sub(cur)
		l1, l2 := d1.len(), d2.len()
		rr := math.Min(r, 0.45*math.Min(l1, l2))
		a := cur.add(d1.mul(rr / l1))
		b := cur.add(d2.mul(rr / l2))
		// Quadratic Bézier from a to b with control point cur.
		for s := 0; s <= steps; s++ {
			t := float64(s) / float64(steps)
			q := a.mul((1 - t) * (1 - t)).add(cur.mul(2 * t * (1 - t))).add(b.mul(t * t))
			out = append(out, q)
		}
	}
	return out
}

// bulge inserts points along the edge a→b displaced along the edge's left
// normal by amount·sin(πt): a concave (negative) or convex (positive) side.
func bulge(a, b vec, amount float64, steps int) []vec {
	d := b.sub(a)
	nrm := vec{-d.Y, d.X}.norm()
	out := make([]vec, 0, steps-1)
	for s := 1; s < steps; s++ {
		t := float64(s) / float64(steps)
		out = append(out, lerp(a, b, t).add(nrm.mul(amount*math.Sin(math.Pi*t))))
	}
	return out
}
