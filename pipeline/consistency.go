package pipeline

import (
	"math"

	"github.com/cspine/cspine/pipeline/geometry"
	"github.com/cspine/cspine/pipeline/stages"
)

// Anatomical consistency between the specialists' candidate peaks.
//
// A specialist heatmap often has a second peak on the neighbouring vertebra
// (C6 or T1 for the C7 model, C3 for the C2 model). Its strongest peak per
// landmark is not always the right one: a single corner can jump to the
// neighbour (a 40° error in the C7 slope), or all four corners can sit one
// level off when the crop was centred there. The choice below keeps the
// strongest peaks unless they do not form a plausible vertebra, and moves to
// another level only when counting vertebrae from C2 says so clearly.

// Consistency are the rules the candidate choice applies. The defaults are
// deliberately wide anatomical bounds, not fitted to the phantoms.
type Consistency struct {
	// Within one vertebral body (C7): superior vs inferior endplate width
	// ratio, anterior vs posterior height ratio, height over width, the
	// angle between the two endplates (wedge) and the largest angle between
	// the body's superior→inferior direction and the endplate normal.
	MaxEndplateRatio, MaxHeightRatio float64
	MinAspect, MaxAspect             float64
	MaxWedgeDeg, MaxShearDeg         float64
	// C2: largest angle between the C2 inferior endplate and the normal of
	// the centroid→endplate direction, the centroid's distance to the
	// endplate over the endplate width, and the C2 inferior endplate width
	// over the C7 endplate width.
	MaxC2TiltDeg               float64
	MinC2Depth, MaxC2Depth     float64
	MinC2C7Width, MaxC2C7Width float64
	// LevelSeparation: candidates whose centres are closer than this many
	// endplate widths are the same vertebra.
	LevelSeparation float64
	// C7Steps is the expected distance from the middle of the C2 inferior
	// endplate to the C7 centre in vertebral steps (C3, C4, C5, C6 and half
	// of C7); the step is the distance between neighbouring candidate
	// levels. The strongest level is kept unless its count is more than
	// LevelKeep steps off and another level's count is closer by more than
	// LevelMargin steps.
	C7Steps, LevelKeep, LevelMargin float64
}

// DefaultConsistency returns the shipped rules.
func DefaultConsistency() Consistency {
	lim := geometry.DefaultLimits()
	return Consistency{
		MaxEndplateRatio: 1.5, MaxHeightRatio: 2,
		MinAspect: lim.MinAspect, MaxAspect: lim.MaxAspect,
		MaxWedgeDeg: lim.MaxC7WedgeDeg, MaxShearDeg: 30,
		MaxC2TiltDeg: 30, MinC2Depth: 0.4, MaxC2Depth: 1.6,
		MinC2C7Width: 0.5, MaxC2C7Width: 1.5,
		LevelSeparation: 0.8,
		C7Steps:         4.5, LevelKeep: 0.4, LevelMargin: 0.3,
	}
}

type pt = geometry.Point

func sub(a, b pt) pt         { return pt{X: a.X - b.X, Y: a.Y - b.Y} }
func midpoint(a, b pt) pt    { return pt{X: (a.X + b.X) / 2, Y: (a.Y + b.Y) / 2} }
func norm(v pt) float64      { return math.Hypot(v.X, v.Y) }
func toPt(p stages.Point) pt { return pt{X: p.X, Y: p.Y} }

// angleDeg is the unsigned angle between v and w in degrees (0..180).
func angleDeg(v, w pt) float64 {
	return math.Abs(math.Atan2(v.X*w.Y-v.Y*w.X, v.X*w.X+v.Y*w.Y)) * 180 / math.Pi
}

// PlausibleBody reports whether four corners (superior anterior, superior
// posterior, inferior anterior, inferior posterior) form a plausible
// vertebral body.
func (c Consistency) PlausibleBody(q [4]pt) bool {
	sa, sp, ia, ip := q[0], q[1], q[2], q[3]
	ws, wi := geometry.Dist(sa, sp), geometry.Dist(ia, ip)
	ha, hp := geometry.Dist(sa, ia), geometry.Dist(sp, ip)
	if !(ws > 0 && wi > 0 && ha > 0 && hp > 0) {
		return false
	}
	if math.Max(ws, wi)/math.Min(ws, wi) > c.MaxEndplateRatio || math.Max(ha, hp)/math.Min(ha, hp) > c.MaxHeightRatio {
		return false
	}
	if a := (ha + hp) / (ws + wi); a < c.MinAspect || a > c.MaxAspect {
		return false
	}
	// Both endplates run the same way (anterior→posterior) within the wedge.
	if angleDeg(sub(sp, sa), sub(ip, ia)) > c.MaxWedgeDeg {
		return false
	}
	// The body's superior→inferior direction is near the endplates' normal
	// (a parallelogram leaning more than MaxShearDeg is not a body).
	e := sub(sp, sa)
	axis := sub(midpoint(ia, ip), midpoint(sa, sp))
	if t := angleDeg(pt{X: -e.Y, Y: e.X}, axis); math.Min(t, 180-t) > c.MaxShearDeg {
		return false
	}
	return true
}

// PlausibleC2 reports whether a C2 centroid and inferior endplate
// (anterior, posterior) are consistent with each other and with the C7
// endplate width c7Width (pixels; ≤ 0: not checked).
func (c Consistency) PlausibleC2(cen, ant, post pt, c7Width float64) bool {
	e := sub(post, ant)
	w := norm(e)
	v := sub(midpoint(ant, post), cen)
	if !(w > 0) || !(norm(v) > 0) {
		return false
	}
	t := angleDeg(pt{X: -e.Y, Y: e.X}, v)
	if math.Min(t, 180-t) > c.MaxC2TiltDeg {
		return false
	}
	if d := norm(v) / w; d < c.MinC2Depth || d > c.MaxC2Depth {
		return false
	}
	if c7Width > 0 {
		if r := w / c7Width; r < c.MinC2C7Width || r > c.MaxC2C7Width {
			return false
		}
	}
	return true
}

// C7Level is one candidate C7 position: a plausible choice of peaks.
type C7Level struct {
	Index  [4]int // peak index per corner
	Conf   float64
	Centre pt
	// Steps is the distance from the C2 inferior endplate in vertebral
	// steps (NaN when there is no second level to measure a step by).
	Steps float64
}

// C7Choice is the outcome of ChooseC7.
type C7Choice struct {
	Index [4]int
	// Levels are the plausible candidate levels, strongest first; Chosen
	// indexes the one taken (-1: none plausible, the strongest peaks kept).
	Levels []C7Level
	Chosen int
	// Moved: a level other than the strongest was chosen by counting.
	Moved bool
}

// combos calls f for every choice of one peak per landmark, in a fixed
// order (the first landmark's index varies slowest).
func combos(counts []int, f func(idx []int)) {
	idx := make([]int, len(counts))
	for _, n := range counts {
		if n == 0 {
			return
		}
	}
	for {
		f(idx)
		k := len(idx) - 1
		for ; k >= 0; k-- {
			idx[k]++
			if idx[k] < counts[k] {
				break
			}
			idx[k] = 0
		}
		if k < 0 {
			return
		}
	}
}

// ChooseC7 chooses one peak per C7 corner: among the plausible bodies
// grouped into levels, the strongest level, unless counting vertebral steps
// from the C2 inferior endplate (c2Inf; NaN coordinates: no count) says
// that another level is C7. Without any plausible body the strongest peaks
// are kept.
func (c Consistency) ChooseC7(peaks [4][]stages.Peak, c2Inf pt) C7Choice {
	ch := C7Choice{Chosen: -1}
	counts := make([]int, 4)
	for j := range peaks {
		counts[j] = len(peaks[j])
	}
	type cand struct {
		idx  [4]int
		conf float64
		q    [4]pt
	}
	var cs []cand
	combos(counts, func(idx []int) {
		var cd cand
		for j := range 4 {
			cd.idx[j] = idx[j]
			cd.q[j] = toPt(peaks[j][idx[j]].Point)
			cd.conf += peaks[j][idx[j]].Conf
		}
		if c.PlausibleBody(cd.q) {
			cs = append(cs, cd)
		}
	})
	if len(cs) == 0 {
		return ch
	}
	// Strongest first; the enumeration order breaks ties.
	order := make([]int, len(cs))
	for i := range order {
		order[i] = i
	}
	sortStable(order, func(a, b int) bool { return cs[a].conf > cs[b].conf })
	for _, i := range order {
		cd := cs[i]
		centre := pt{X: (cd.q[0].X + cd.q[1].X + cd.q[2].X + cd.q[3].X) / 4, Y: (cd.q[0].Y + cd.q[1].Y + cd.q[2].Y + cd.q[3].Y) / 4}
		w := (geometry.Dist(cd.q[0], cd.q[1]) + geometry.Dist(cd.q[2], cd.q[3])) / 2
		same := false
		for _, l := range ch.Levels {
			if geometry.Dist(l.Centre, centre) < c.LevelSeparation*w {
				same = true
				break
			}
		}
		if !same {
			ch.Levels = append(ch.Levels, C7Level{Index: cd.idx, Conf: cd.conf, Centre: centre, Steps: math.NaN()})
		}
	}
	ch.Chosen = 0
	if len(ch.Levels) >= 2 && !math.IsNaN(c2Inf.X) && !math.IsNaN(c2Inf.Y) {
		step := math.Inf(1)
		for _, l := range ch.Levels[1:] {
			step = math.Min(step, geometry.Dist(ch.Levels[0].Centre, l.Centre))
		}
		for i := range ch.Levels {
			ch.Levels[i].Steps = geometry.Dist(c2Inf, ch.Levels[i].Centre) / step
		}
		off := func(i int) float64 { return math.Abs(ch.Levels[i].Steps - c.C7Steps) }
		if off(0) > c.LevelKeep {
			best := 1
			for i := 2; i < len(ch.Levels); i++ {
				if off(i) < off(best) {
					best = i
				}
			}
			if off(best) < off(0)-c.LevelMargin {
				ch.Chosen, ch.Moved = best, true
			}
		}
	}
	ch.Index = ch.Levels[ch.Chosen].Index
	return ch
}

// ChooseC2 chooses one peak per C2 landmark (centroid, inferior anterior,
// inferior posterior): the strongest plausible combination (see
// PlausibleC2), else the strongest peaks. ok reports whether a plausible
// one was found.
func (c Consistency) ChooseC2(peaks [3][]stages.Peak, c7Width float64) (sel [3]int, ok bool) {
	counts := []int{len(peaks[0]), len(peaks[1]), len(peaks[2])}
	best := -1.0
	combos(counts, func(idx []int) {
		q := [3]pt{toPt(peaks[0][idx[0]].Point), toPt(peaks[1][idx[1]].Point), toPt(peaks[2][idx[2]].Point)}
		conf := peaks[0][idx[0]].Conf + peaks[1][idx[1]].Conf + peaks[2][idx[2]].Conf
		if conf > best && c.PlausibleC2(q[0], q[1], q[2], c7Width) {
			best = conf
			sel = [3]int{idx[0], idx[1], idx[2]}
		}
	})
	return sel, best >= 0
}

// sortStable is an insertion sort (the lists are short) keeping the order
// of equal elements.
func sortStable(v []int, less func(a, b int) bool) {
	for i := 1; i < len(v); i++ {
		for j := i; j > 0 && less(v[j], v[j-1]); j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
}
