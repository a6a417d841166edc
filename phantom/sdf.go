package phantom

import "math"

// polySDF evaluates the signed distance to a closed polygon: positive
// inside, negative outside, in the polygon's units.
type polySDF struct {
	ax, ay, dx, dy, il2 []float64
	minX, minY          float64
	maxX, maxY          float64
}

func newPolySDF(p []vec) *polySDF {
	n := len(p)
	s := &polySDF{ax: make([]float64, n), ay: make([]float64, n), dx: make([]float64, n), dy: make([]float64, n), il2: make([]float64, n)}
	s.minX, s.minY = math.Inf(1), math.Inf(1)
	s.maxX, s.maxY = math.Inf(-1), math.Inf(-1)
	for i := range p {
		a, b := p[i], p[(i+1)%n]
		s.ax[i], s.ay[i] = a.X, a.Y
		s.dx[i], s.dy[i] = b.X-a.X, b.Y-a.Y
		l2 := s.dx[i]*s.dx[i] + s.dy[i]*s.dy[i]
		if l2 > 0 {
			s.il2[i] = 1 / l2
		}
		s.minX, s.maxX = math.Min(s.minX, a.X), math.Max(s.maxX, a.X)
		s.minY, s.maxY = math.Min(s.minY, a.Y), math.Max(s.maxY, a.Y)
	}
	return s
}

func (s *polySDF) at(x, y float64) float64 {
	best := math.Inf(1)
	inside := false
	for i := range s.ax {
		px, py := x-s.ax[i], y-s.ay[i]
		t := (px*s.dx[i] + py*s.dy[i]) * s.il2[i]
		if t < 0 {
			t = 0
		} else if t > 1 {
			t = 1
		}
		ex, ey := px-t*s.dx[i], py-t*s.dy[i]
		if d := ex*ex + ey*ey; d < best {
			best = d
		}
		// Crossing test for a horizontal ray to +x.
		ay, by := s.ay[i], s.ay[i]+s.dy[i]
		if (ay > y) != (by > y) {
			xi := s.ax[i] + (y-ay)/(by-ay)*s.dx[i]
			if x < xi {
				inside = !inside
			}
		}
	}
	d := math.Sqrt(best)
	if inside {
		return d
	}
	return -d
}

// profile is the attenuation (dimensionless line integral) of a bone at a
// signed distance d (mm, positive inside) from its outline; texv in [-1,1].
func (t tissue) profile(d, texv float64) float64 {
	const eps = 0.12 // partial-volume half width of the outline (mm)
	if d <= -eps {
		return 0
	}
	x := (d + eps) / t.edgeR
	if x > 1 {
		x = 1
	}
	body := t.mu * t.depth * math.Sqrt(x) * (1 + t.tex*texv)
	soft := (d + eps) / (2 * eps)
	if soft > 1 {
		soft = 1
	}
	dd := d
	if dd < 0 {
		dd = 0
	}
	return body + t.cortex*soft*fastExp(-dd/t.cortW)
}

// fastExp is exp(x) for x <= 0 within about 1e-10 relative: the renderer
// calls it tens of millions of times per image.
func fastExp(x float64) float64 {
	if x < -80 {
		return 0
	}
	// exp(x) = 2^(k/64)·exp(r) with |r| <= ln2/128; k = floor(x·64/ln2 + 0.5)
	// without a call to math.Floor (the shifted argument is positive, so
	// truncation is the floor).
	const ln2 = 0.6931471805599453
	k := int64(x*(64/ln2)+0.5+8192) - 8192
	r := x - float64(k)*(ln2/64)
	p := 1 + r*(1+r*(0.5+r*(1.0/6)))
	// 2^(k/64) = 2^(k>>6) · 2^((k&63)/64): the integer part goes straight
	// into the exponent bits of the table entry.
	return p * math.Float64frombits(exp2Table[k&63]+uint64(k>>6)<<52)
}

// exp2Table holds the bits of 2^(j/64), j = 0..63.
var exp2Table = func() [64]uint64 {
	var t [64]uint64
	for j := range t {
		t[j] = math.Float64bits(math.Exp2(float64(j) / 64))
	}
	return t
}()

// logTable holds ln(m) for the mantissa m in [1, 2] at 4096+1 points;
// linear interpolation between them is accurate to about 1e-8.
var logTable = func() [4098]float64 {
	var t [4098]float64
	for i := range t {
		t[i] = math.Log(1 + float64(i)/4096)
	}
	return t
}()

// fastLog is ln(x) for x > 0 (normal numbers), within about 1e-8.
func fastLog(x float64) float64 {
	const ln2 = 0.6931471805599453
	b := math.Float64bits(x)
	e := int64(b>>52&0x7ff) - 1023
	mant := b & (1<<52 - 1)
	i := mant >> 40 // top 12 bits
	f := float64(mant&(1<<40-1)) * (1.0 / (1 << 40))
	return float64(e)*ln2 + logTable[i] + f*(logTable[i+1]-logTable[i])
}
