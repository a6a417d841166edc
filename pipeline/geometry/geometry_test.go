package geometry

import (
	"math"
	"strings"
	"testing"
)

const eps = 1e-9

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// endplate returns (anterior, posterior) corners of an endplate with centre c,
// width w and spec slope s (degrees) for a patient facing f.
func endplate(c Point, w, s float64, f Facing) (Point, Point) {
	r := s * math.Pi / 180
	dx, dy := -math.Cos(r), math.Sin(r) // posterior → anterior, facing left
	if f == FacingRight {
		dx = -dx
	}
	a := Point{c.X + dx*w/2, c.Y + dy*w/2}
	p := Point{c.X - dx*w/2, c.Y - dy*w/2}
	return a, p
}

// spine builds 23 landmarks of an upright spine: inf[i] is the inferior
// endplate slope of C(i+2), sup[i] the superior endplate slope of C(i+3).
// Bodies 40 px high, 50 px wide, discs 20 px, 60 px pitch, centre column cx.
func spine(f Facing, cx float64, inf [6]float64, sup [5]float64) [NumLandmarks]Point {
	var lm [NumLandmarks]Point
	lm[C2Centroid] = Point{cx, 160}
	lm[C2InfAnt], lm[C2InfPost] = endplate(Point{cx, 200}, 50, inf[0], f)
	for n := 3; n <= 7; n++ {
		cy := 200 + 60*float64(n-2) - 20
		lm[SupAnt(n)], lm[SupPost(n)] = endplate(Point{cx, cy - 20}, 50, sup[n-3], f)
		lm[InfAnt(n)], lm[InfPost(n)] = endplate(Point{cx, cy + 20}, 50, inf[n-2], f)
	}
	return lm
}

// mirror flips the image left-right about x = W/2 (W = 1000), keeping the
// anatomical labels.
func mirror(lm [NumLandmarks]Point) [NumLandmarks]Point {
	for i := range lm {
		lm[i].X = 1000 - lm[i].X
	}
	return lm
}

func TestSlope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a, p Point
		want float64
	}{
		{"flat", Point{0, 5}, Point{10, 5}, 0},
		{"anterior lower, facing left", Point{100, 210}, Point{120, 200}, math.Atan2(10, 20) * 180 / math.Pi},
		{"anterior lower, facing right", Point{120, 210}, Point{100, 200}, math.Atan2(10, 20) * 180 / math.Pi},
		{"anterior higher, facing left", Point{100, 190}, Point{120, 200}, -math.Atan2(10, 20) * 180 / math.Pi},
		{"anterior higher, facing right", Point{120, 190}, Point{100, 200}, -math.Atan2(10, 20) * 180 / math.Pi},
		{"45 degrees", Point{0, 10}, Point{10, 0}, 45},
		{"minus 45 degrees", Point{10, 0}, Point{0, 10}, -45},
		// shared/realworld/radiopaedia-c2c7demo/extension_points.json (facing left).
		{"radiopaedia C2", Point{502.08, 685.42}, Point{610.42, 637.5}, 23.860345313493426},
		{"radiopaedia C7", Point{785.76, 1197.57}, Point{887.5, 1129.17}, 33.91301726438602},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Slope(tc.a, tc.p); !near(got, tc.want, 1e-9) {
				t.Errorf("Slope(%v, %v) = %v, want %v", tc.a, tc.p, got, tc.want)
			}
		})
	}
}

func TestOrient(t *testing.T) {
	t.Parallel()
	l, r := Point{1, 5}, Point{9, 3}
	for _, tc := range []struct {
		c1, c2    Point
		f         Facing
		ant, post Point
	}{
		{l, r, FacingLeft, l, r},
		{r, l, FacingLeft, l, r},
		{l, r, FacingRight, r, l},
		{r, l, FacingRight, r, l},
	} {
		a, p := Orient(tc.c1, tc.c2, tc.f)
		if a != tc.ant || p != tc.post {
			t.Errorf("Orient(%v, %v, %v) = %v, %v; want %v, %v", tc.c1, tc.c2, tc.f, a, p, tc.ant, tc.post)
		}
	}
	// A swapped label does not flip the slope's sign.
	if s1, s2 := EndplateSlope(l, r, FacingLeft), EndplateSlope(r, l, FacingLeft); s1 != s2 || !near(s1, math.Atan2(2, 8)*180/math.Pi, eps) {
		t.Errorf("EndplateSlope not label-invariant: %v %v", s1, s2)
	}
}

func TestMeasure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		inf      [6]float64
		sup      [5]float64
		cobb     float64
		segments [5]float64
	}{
		{"lordosis", [6]float64{10, 12, 15, 18, 20, 25}, [5]float64{11, 14, 17, 19, 23}, 15, [5]float64{2, 3, 3, 2, 5}},
		{"kyphosis", [6]float64{20, 15, 10, 6, 2, -4}, [5]float64{17, 12, 8, 4, -1}, -24, [5]float64{-5, -5, -4, -4, -6}},
		{"negative slopes", [6]float64{-12, -10, -7, -3, 0, 4}, [5]float64{-11, -9, -5, -1, 2}, 16, [5]float64{2, 3, 4, 3, 4}},
	}
	for _, tc := range tests {
		for _, f := range []Facing{FacingLeft, FacingRight} {
			t.Run(tc.name+"/"+f.String(), func(t *testing.T) {
				t.Parallel()
				lm := spine(f, 500, tc.inf, tc.sup)
				p := Measure(&lm, f, Spacing{})
				if !near(p.C2SlopeDeg, tc.inf[0], 1e-9) || !near(p.C7SlopeDeg, tc.inf[5], 1e-9) || !near(p.C7SupSlopeDeg, tc.sup[4], 1e-9) {
					t.Errorf("slopes C2 %v C7 %v C7sup %v; want %v %v %v", p.C2SlopeDeg, p.C7SlopeDeg, p.C7SupSlopeDeg, tc.inf[0], tc.inf[5], tc.sup[4])
				}
				if !near(p.CobbDeg, tc.cobb, 1e-9) {
					t.Errorf("Cobb %v, want %v", p.CobbDeg, tc.cobb)
				}
				var sum float64
				for i, s := range p.SegmentalDeg {
					sum += s
					if !near(s, tc.segments[i], 1e-9) {
						t.Errorf("segment %d = %v, want %v", i, s, tc.segments[i])
					}
				}
				if !near(sum, p.CobbDeg, 1e-9) {
					t.Errorf("segments sum %v != Cobb %v", sum, p.CobbDeg)
				}
				if p.SVAmm != nil {
					t.Errorf("SVA mm %v without spacing", *p.SVAmm)
				}
				// The mirrored image with the opposite facing measures the same.
				m := mirror(lm)
				o := FacingLeft
				if f == FacingLeft {
					o = FacingRight
				}
				q := Measure(&m, o, Spacing{})
				if !near(q.CobbDeg, p.CobbDeg, 1e-9) || !near(q.C2SlopeDeg, p.C2SlopeDeg, 1e-9) || !near(q.SVAPx, p.SVAPx, 1e-9) {
					t.Errorf("mirror differs: %+v vs %+v", q, p)
				}
			})
		}
	}
}

func TestMeasureHandComputed(t *testing.T) {
	t.Parallel()
	// Radiopaedia extension image, facing left: C2–C7 ≈ 10.05° lordosis.
	var lm [NumLandmarks]Point
	lm[C2InfAnt], lm[C2InfPost] = Point{502.08, 685.42}, Point{610.42, 637.5}
	lm[InfAnt(7)], lm[InfPost(7)] = Point{785.76, 1197.57}, Point{887.5, 1129.17}
	p := Measure(&lm, FacingLeft, Spacing{})
	if want := 33.91301726438602 - 23.860345313493426; !near(p.CobbDeg, want, 1e-9) {
		t.Errorf("Cobb %v, want %v", p.CobbDeg, want)
	}
	// Same points, facing right (labels swapped by position): anterior now
	// the right-hand corner, which is higher → negative slopes.
	q := Measure(&lm, FacingRight, Spacing{})
	if !near(q.C2SlopeDeg, -23.860345313493426, 1e-9) || !near(q.C7SlopeDeg, -33.91301726438602, 1e-9) || !near(q.CobbDeg, -(33.91301726438602-23.860345313493426), 1e-9) {
		t.Errorf("facing right: %+v", q)
	}
}

func TestSVA(t *testing.T) {
	t.Parallel()
	sp := Spacing{RowMM: 0.1, ColMM: 0.2}
	tests := []struct {
		name   string
		c2, c7 Point
		f      Facing
		px     float64
	}{
		{"anterior, facing left", Point{300, 100}, Point{340, 500}, FacingLeft, 40},
		{"posterior, facing left", Point{360, 100}, Point{340, 500}, FacingLeft, -20},
		{"anterior, facing right", Point{700, 100}, Point{660, 500}, FacingRight, 40},
		{"posterior, facing right", Point{640, 100}, Point{660, 500}, FacingRight, -20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var lm [NumLandmarks]Point
			lm[C2Centroid], lm[SupPost(7)] = tc.c2, tc.c7
			p := Measure(&lm, tc.f, sp)
			if !near(p.SVAPx, tc.px, eps) {
				t.Errorf("SVA px %v, want %v", p.SVAPx, tc.px)
			}
			if p.SVAmm == nil || !near(*p.SVAmm, tc.px*0.2, eps) {
				t.Errorf("SVA mm %v, want %v (column spacing)", p.SVAmm, tc.px*0.2)
			}
		})
	}
}

func TestDetermineFacing(t *testing.T) {
	t.Parallel()
	inf := [6]float64{10, 12, 15, 18, 20, 25}
	sup := [5]float64{11, 14, 17, 19, 23}
	left := spine(FacingLeft, 500, inf, sup)
	right := mirror(left)

	if f, a := DetermineFacing(&left, nil); f != FacingLeft || a != 1 {
		t.Errorf("left: %v %v", f, a)
	}
	if f, a := DetermineFacing(&right, nil); f != FacingRight || a != 1 {
		t.Errorf("right: %v %v", f, a)
	}
	// One swapped label pair: the vote still says left, agreement 10/11.
	sw := left
	sw[SupAnt(4)], sw[SupPost(4)] = sw[SupPost(4)], sw[SupAnt(4)]
	if f, a := DetermineFacing(&sw, nil); f != FacingLeft || !near(a, 10.0/11, eps) {
		t.Errorf("one swapped: %v %v", f, a)
	}
	// Confidence weighting: ten swapped pairs with confidence 0.01 lose to one
	// confident pair.
	many := left
	var conf [NumLandmarks]float64
	for i := range conf {
		conf[i] = 0.01
	}
	for i, pr := range endplatePairs {
		if i == 0 {
			conf[pr[0]], conf[pr[1]] = 0.9, 0.9
			continue
		}
		many[pr[0]], many[pr[1]] = many[pr[1]], many[pr[0]]
	}
	if f, a := DetermineFacing(&many, &conf); f != FacingLeft || !near(a, 0.9/1.0, 1e-9) {
		t.Errorf("weighted: %v %v", f, a)
	}
	// Void vote: the C2 centroid decides.
	var tie [NumLandmarks]Point
	tie[C2Centroid], tie[SupAnt(7)], tie[SupPost(7)] = Point{100, 0}, Point{200, 480}, Point{200, 500}
	if f, a := DetermineFacing(&tie, nil); f != FacingLeft || a != 0 {
		t.Errorf("tie left: %v %v", f, a)
	}
	tie[C2Centroid].X = 300
	if f, _ := DetermineFacing(&tie, nil); f != FacingRight {
		t.Errorf("tie right: %v", f)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	inf := [6]float64{10, 12, 15, 18, 20, 25}
	sup := [5]float64{11, 14, 17, 19, 23}
	lim := DefaultLimits()
	sp := Spacing{RowMM: 0.3, ColMM: 0.3} // 50 px endplates = 15 mm, 40 px bodies = 12 mm

	mutate := func(f Facing, m func(lm *[NumLandmarks]Point)) ([NumLandmarks]Point, Facing) {
		lm := spine(f, 500, inf, sup)
		if m != nil {
			m(&lm)
		}
		return lm, f
	}
	tests := []struct {
		name    string
		f       Facing
		mut     func(lm *[NumLandmarks]Point)
		sp      Spacing
		wantSub string // "" = plausible
	}{
		{"normal left", FacingLeft, nil, sp, ""},
		{"normal right", FacingRight, nil, sp, ""},
		{"normal no spacing", FacingLeft, nil, Spacing{}, ""},
		{"C4 and C6 swapped", FacingLeft, func(lm *[NumLandmarks]Point) {
			for k := 0; k < 4; k++ {
				lm[SupAnt(4)+k], lm[SupAnt(6)+k] = lm[SupAnt(6)+k], lm[SupAnt(4)+k]
			}
		}, sp, "is not below"},
		{"upside down", FacingLeft, func(lm *[NumLandmarks]Point) {
			for i := range lm {
				lm[i].Y = 1000 - lm[i].Y
			}
		}, sp, "tilted"},
		{"too small in mm", FacingLeft, nil, Spacing{RowMM: 0.05, ColMM: 0.05}, "mm outside"},
		{"huge C7 slope", FacingRight, func(lm *[NumLandmarks]Point) {
			lm[InfAnt(7)], lm[InfPost(7)] = endplate(Point{500, 500}, 50, 80, FacingRight)
		}, Spacing{}, "C7 slope"},
		{"negative huge C2 slope", FacingLeft, func(lm *[NumLandmarks]Point) {
			lm[C2InfAnt], lm[C2InfPost] = endplate(Point{500, 200}, 50, -55, FacingLeft)
		}, Spacing{}, "C2 slope"},
		{"flat vertebra", FacingLeft, func(lm *[NumLandmarks]Point) {
			lm[SupAnt(5)].Y += 15
			lm[SupPost(5)].Y += 15
			lm[InfAnt(5)].Y -= 15
			lm[InfPost(5)].Y -= 15
		}, Spacing{}, "height/width"},
		{"labels mixed", FacingLeft, func(lm *[NumLandmarks]Point) {
			for n := 3; n <= 5; n++ {
				lm[SupAnt(n)], lm[SupPost(n)] = lm[SupPost(n)], lm[SupAnt(n)]
			}
		}, Spacing{}, "labels disagree"},
		{"NaN", FacingLeft, func(lm *[NumLandmarks]Point) { lm[7].X = math.NaN() }, sp, "not finite"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lm, f := mutate(tc.f, tc.mut)
			df, agr := DetermineFacing(&lm, nil)
			if tc.wantSub == "" && df != f {
				t.Fatalf("facing %v, want %v", df, f)
			}
			p := Measure(&lm, df, tc.sp)
			probs := Check(&lm, df, agr, p, tc.sp, lim)
			if tc.wantSub == "" {
				if len(probs) != 0 {
					t.Errorf("plausible spine flagged: %q", probs)
				}
				return
			}
			found := false
			for _, pr := range probs {
				found = found || strings.Contains(pr, tc.wantSub)
			}
			if !found {
				t.Errorf("problems %q lack %q", probs, tc.wantSub)
			}
		})
	}
}

func TestDistMM(t *testing.T) {
	t.Parallel()
	if d := DistMM(Point{0, 0}, Point{3, 4}, Spacing{RowMM: 2, ColMM: 1}); !near(d, math.Hypot(3, 8), eps) {
		t.Errorf("DistMM = %v", d)
	}
	if (Spacing{RowMM: 0.1}).Known() || !(Spacing{RowMM: 0.1, ColMM: 0.1}).Known() {
		t.Error("Known wrong")
	}
}
