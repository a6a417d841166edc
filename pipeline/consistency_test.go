package pipeline

import (
	"math"
	"testing"

	"github.com/cspine/cspine/pipeline/geometry"
	"github.com/cspine/cspine/pipeline/stages"
)

// body returns the corners (sup_ant, sup_post, inf_ant, inf_post) of an
// upright rectangular body of width w and height h whose superior anterior
// corner is at (x, y), facing left (anterior = smaller x).
func body(x, y, w, h float64) [4]pt {
	return [4]pt{{X: x, Y: y}, {X: x + w, Y: y}, {X: x, Y: y + h}, {X: x + w, Y: y + h}}
}

func TestPlausibleBody(t *testing.T) {
	k := DefaultConsistency()
	rect := body(100, 100, 16, 13)
	rot := func(q [4]pt, deg float64) [4]pt {
		s, c := math.Sincos(deg * math.Pi / 180)
		var r [4]pt
		for i, p := range q {
			r[i] = pt{X: 100 + (p.X-100)*c - (p.Y-100)*s, Y: 100 + (p.X-100)*s + (p.Y-100)*c}
		}
		return r
	}
	jumped := rect
	jumped[1] = pt{X: 116, Y: 118} // superior posterior corner on the next vertebra
	bothAnt := rect
	bothAnt[0].Y += 18 // anterior corners one level down: a sheared parallelogram
	bothAnt[2].Y += 18
	wedge := rect
	wedge[3].Y = 100 + 13 + 16*math.Tan(25*math.Pi/180) // inferior endplate 25° off the superior
	tall := body(100, 100, 16, 30)
	narrowSup := body(100, 100, 16, 13)
	narrowSup[1].X = 108 // superior endplate half as wide
	cases := []struct {
		name string
		q    [4]pt
		want bool
	}{
		{"rectangle", rect, true},
		{"rectangle rotated 40°", rot(rect, 40), true},
		{"mild wedge 8°", func() [4]pt { q := rect; q[3].Y += 16 * math.Tan(8*math.Pi/180); return q }(), true},
		{"one corner on the next vertebra", jumped, false},
		{"both anterior corners one level down", bothAnt, false},
		{"wedge 25°", wedge, false},
		{"too tall", tall, false},
		{"superior endplate half as wide", narrowSup, false},
		{"degenerate", [4]pt{{X: 1, Y: 1}, {X: 1, Y: 1}, {X: 1, Y: 1}, {X: 1, Y: 1}}, false},
	}
	for _, c := range cases {
		if got := k.PlausibleBody(c.q); got != c.want {
			t.Errorf("%s: PlausibleBody = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestPlausibleC2(t *testing.T) {
	k := DefaultConsistency()
	cen := pt{X: 108, Y: 90}
	cases := []struct {
		name      string
		ant, post pt
		c7w       float64
		want      bool
	}{
		{"endplate below the centroid", pt{X: 100, Y: 100}, pt{X: 116, Y: 100}, 17, true},
		{"tilted 20°", pt{X: 100, Y: 97}, pt{X: 116, Y: 103}, 17, true},
		{"posterior corner on C3 (steep)", pt{X: 100, Y: 100}, pt{X: 116, Y: 118}, 17, false},
		{"endplate through the centroid", pt{X: 100, Y: 90}, pt{X: 116, Y: 90}, 17, false},
		{"endplate far below", pt{X: 100, Y: 130}, pt{X: 116, Y: 130}, 17, false},
		{"much narrower than C7", pt{X: 104, Y: 100}, pt{X: 111, Y: 100}, 17, false},
		{"C7 width unknown", pt{X: 100, Y: 100}, pt{X: 116, Y: 100}, 0, true},
	}
	for _, c := range cases {
		if got := k.PlausibleC2(cen, c.ant, c.post, c.c7w); got != c.want {
			t.Errorf("%s: PlausibleC2 = %v, want %v", c.name, got, c.want)
		}
	}
}

func peaksOf(ps ...stages.Peak) []stages.Peak { return ps }

func peak(p pt, conf float64) stages.Peak {
	return stages.Peak{Point: stages.Point{X: p.X, Y: p.Y}, Conf: conf}
}

// levelPeaks gives every C7 corner two candidates: the corner of body a with
// confidence ca and that of body b with cb.
func levelPeaks(a [4]pt, ca float64, b [4]pt, cb float64) [4][]stages.Peak {
	var out [4][]stages.Peak
	for j := range 4 {
		if ca >= cb {
			out[j] = peaksOf(peak(a[j], ca), peak(b[j], cb))
		} else {
			out[j] = peaksOf(peak(b[j], cb), peak(a[j], ca))
		}
	}
	return out
}

func TestChooseC7(t *testing.T) {
	k := DefaultConsistency()
	// Vertebral step 20 px (body 14 + disc 6), endplates 16 px wide. The C2
	// inferior endplate's middle is at y=0; C7's centre then lies 4.5 steps
	// below it at y=90, C6's at y=70 and T1's at y=110.
	c2Inf := pt{X: 108, Y: 0}
	lvl := func(cy float64) [4]pt { return body(100, cy-7, 16, 14) }
	c6, c7, t1 := lvl(70), lvl(90), lvl(110)
	nan := pt{X: math.NaN(), Y: math.NaN()}

	cases := []struct {
		name      string
		peaks     [4][]stages.Peak
		c2Inf     pt
		wantY     float64 // centre of the chosen body (NaN: none plausible)
		wantMoved bool
	}{
		{"strongest is C7, T1 weaker", levelPeaks(c7, 0.8, t1, 0.3), c2Inf, 90, false},
		{"strongest is T1, counting moves to C7", levelPeaks(t1, 0.8, c7, 0.3), c2Inf, 90, true},
		{"strongest is C6, counting moves to C7", levelPeaks(c6, 0.8, c7, 0.3), c2Inf, 90, true},
		{"without C2 the strongest level stays", levelPeaks(t1, 0.8, c7, 0.3), nan, 110, false},
		{"a single level stays even if miscounted", func() [4][]stages.Peak {
			var p [4][]stages.Peak
			for j := range 4 {
				p[j] = peaksOf(peak(t1[j], 0.8))
			}
			return p
		}(), c2Inf, 110, false},
		{"a jumped corner is replaced by its second peak", func() [4][]stages.Peak {
			p := levelPeaks(c7, 0.8, t1, 0.3)
			p[1] = peaksOf(peak(t1[1], 0.9), peak(c7[1], 0.5)) // sup_post strongest on T1
			return p
		}(), c2Inf, 90, false},
		{"no plausible body: strongest peaks kept", func() [4][]stages.Peak {
			var p [4][]stages.Peak
			for j := range 4 {
				p[j] = peaksOf(peak(pt{X: float64(j), Y: 0}, 0.5))
			}
			return p
		}(), c2Inf, math.NaN(), false},
	}
	for _, c := range cases {
		ch := k.ChooseC7(c.peaks, c.c2Inf)
		if math.IsNaN(c.wantY) {
			if ch.Chosen != -1 || ch.Index != [4]int{} {
				t.Errorf("%s: chose %+v, want none", c.name, ch)
			}
			continue
		}
		if ch.Chosen < 0 {
			t.Errorf("%s: nothing chosen", c.name)
			continue
		}
		var y float64
		for j := range 4 {
			y += c.peaks[j][ch.Index[j]].Y / 4
		}
		if math.Abs(y-c.wantY) > 1e-9 || ch.Moved != c.wantMoved {
			t.Errorf("%s: centre y %.1f moved %v, want %.1f moved %v (levels %+v)", c.name, y, ch.Moved, c.wantY, c.wantMoved, ch.Levels)
		}
	}
}

func TestChooseC7IsDeterministicOnTies(t *testing.T) {
	k := DefaultConsistency()
	c7 := body(100, 83, 16, 14)
	p := levelPeaks(c7, 0.5, body(100, 103, 16, 14), 0.5)
	first := k.ChooseC7(p, pt{X: 108, Y: 0})
	for range 20 {
		if got := k.ChooseC7(p, pt{X: 108, Y: 0}); got.Index != first.Index || got.Chosen != first.Chosen {
			t.Fatalf("choice changed: %+v then %+v", first, got)
		}
	}
}

func TestChooseC2(t *testing.T) {
	k := DefaultConsistency()
	cen, ant, post := pt{X: 108, Y: 90}, pt{X: 100, Y: 100}, pt{X: 116, Y: 100}
	c3post := pt{X: 116, Y: 120}
	cases := []struct {
		name   string
		peaks  [3][]stages.Peak
		want   [3]int
		wantOK bool
	}{
		{"strongest plausible", [3][]stages.Peak{peaksOf(peak(cen, 0.9)), peaksOf(peak(ant, 0.9)), peaksOf(peak(post, 0.9), peak(c3post, 0.5))}, [3]int{0, 0, 0}, true},
		{"posterior corner on C3 replaced", [3][]stages.Peak{peaksOf(peak(cen, 0.9)), peaksOf(peak(ant, 0.9)), peaksOf(peak(c3post, 0.9), peak(post, 0.8))}, [3]int{0, 0, 1}, true},
		{"nothing plausible", [3][]stages.Peak{peaksOf(peak(cen, 0.9)), peaksOf(peak(ant, 0.9)), peaksOf(peak(c3post, 0.9))}, [3]int{}, false},
		{"no peaks", [3][]stages.Peak{}, [3]int{}, false},
	}
	for _, c := range cases {
		got, ok := k.ChooseC2(c.peaks, 17)
		if got != c.want || ok != c.wantOK {
			t.Errorf("%s: ChooseC2 = %v %v, want %v %v", c.name, got, ok, c.want, c.wantOK)
		}
	}
}

func TestEndplateSpread(t *testing.T) {
	flat := []stages.Point{{X: 0, Y: 0}, {X: 10, Y: 0}, {X: 0, Y: 10}, {X: 10, Y: 10}}
	tilt := func(deg float64) []stages.Point {
		s, c := math.Sincos(deg * math.Pi / 180)
		return []stages.Point{{X: 0, Y: 0}, {X: 10 * c, Y: 10 * s}, {X: 0, Y: 10}, {X: 10, Y: 10}}
	}
	cases := []struct {
		name string
		runs [][]stages.Point
		want float64
	}{
		{"one run", [][]stages.Point{flat}, -1},
		{"identical runs", [][]stages.Point{flat, flat, flat}, 0},
		{"superior endplate 6° off in one run", [][]stages.Point{flat, tilt(6), flat}, 6},
		{"runs at +4° and −3°: largest pair 7°", [][]stages.Point{tilt(4), flat, tilt(-3)}, 7},
		{"short run", [][]stages.Point{flat, flat[:2]}, -1},
	}
	for _, c := range cases {
		if got := endplateSpread(c.runs, [][2]int{{0, 1}, {2, 3}}); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: spread %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSpreadThresholdFlagsLowConfidence(t *testing.T) {
	th := DefaultThresholds()
	th.C7MinConfidence, th.C7MaxSpreadDeg = 0.5, 3
	th.C7Risk = nil // the spread threshold alone
	cases := []struct {
		conf, spread float64
		want         bool
	}{
		{0.9, 1, false},
		{0.9, -1, false}, // not available
		{0.9, 4, true},
		{0.4, 1, true},
	}
	for _, c := range cases {
		r := th.Reasons(Features{C7Confidence: c.conf, C7SpreadDeg: c.spread, SpacingKnown: true, HeaderLateral: true, Contrast: 0.2, GlobalConfidence: 0.9, C7DisagreementMM: -1})
		got := len(r) > 0 && r[0] == "c7_low_confidence"
		if got != c.want {
			t.Errorf("conf %.1f spread %.0f: reasons %v, want c7_low_confidence %v", c.conf, c.spread, r, c.want)
		}
	}
	// A thresholds file without the field never fires on the spread.
	old, err := ParseThresholds([]byte(`{"c7_min_confidence":0.5,"c7_max_disagreement_mm":10,"c7_obscured_min_prob":0.9,"nominal_endplate_mm":16,"obscuration_partial_max_conf":0.6,"obscuration_complete_max_conf":0.3}`))
	if err != nil || old.C7MaxSpreadDeg != NeverSpreadDeg {
		t.Fatalf("old file: %v, spread threshold %v", err, old.C7MaxSpreadDeg)
	}
}

func TestGlobalStep(t *testing.T) {
	var g [23]geometry.Point
	// C3..C6 bodies 14 px tall, 20 px apart (centres at y = 10, 30, 50, 72).
	ys := []float64{10, 30, 50, 72}
	for k, y := range ys {
		n := 3 + k
		g[geometry.SupAnt(n)] = geometry.Point{X: 0, Y: y - 7}
		g[geometry.SupPost(n)] = geometry.Point{X: 16, Y: y - 7}
		g[geometry.InfAnt(n)] = geometry.Point{X: 0, Y: y + 7}
		g[geometry.InfPost(n)] = geometry.Point{X: 16, Y: y + 7}
	}
	if s := globalStep(&g); s != 20 {
		t.Errorf("globalStep = %v, want the median 20", s)
	}
	g[geometry.SupAnt(4)].X = math.NaN()
	if s := globalStep(&g); s != 0 {
		t.Errorf("globalStep with NaN = %v, want 0", s)
	}
}
