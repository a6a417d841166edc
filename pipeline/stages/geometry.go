package stages

import (
	"math"
	"slices"
)

// The resampling below is defined in the manifest's "normalisation" section
// and mirrored by training/cspine_train/imaging.py; both must agree exactly,
// or the models see different images in production than in training.

// letterboxGeom places a rows×cols image centred in a square of side
// max(rows, cols) and scales that square to size×size.
type letterboxGeom struct {
	size       int
	padX, padY float64
	scale      float64 // output pixels per original pixel
	rows, cols int
	side       int
	upsample   bool
}

func newLetterbox(rows, cols, size int) *letterboxGeom {
	side := max(rows, cols)
	g := &letterboxGeom{
		size: size, rows: rows, cols: cols, side: side,
		padX:  float64(side-cols) / 2,
		padY:  float64(side-rows) / 2,
		scale: float64(size) / float64(side),
	}
	g.upsample = g.scale > 1
	return g
}

// toLetterbox maps an original pixel position to letterbox pixels.
func (g *letterboxGeom) toLetterbox(p Point) Point {
	return Point{X: (p.X+0.5+g.padX)*g.scale - 0.5, Y: (p.Y+0.5+g.padY)*g.scale - 0.5}
}

// fromLetterbox maps letterbox pixels back to the original grid.
func (g *letterboxGeom) fromLetterbox(p Point) Point {
	return Point{X: (p.X+0.5)/g.scale - 0.5 - g.padX, Y: (p.Y+0.5)/g.scale - 0.5 - g.padY}
}

func bins(n int, pad, scale float64, size int) ([]int, []float64) {
	idx := make([]int, n)
	cnt := make([]float64, size)
	for i := range idx {
		b := int(math.Floor((float64(i) + pad) * scale))
		b = min(max(b, 0), size-1)
		idx[i] = b
		cnt[b]++
	}
	return idx, cnt
}

// letterbox renders pix (rows×cols, row-major) into dst (size×size).
// Downscaling averages every source pixel into the output cell holding its
// centre (a box filter); upscaling samples bilinearly; padding is 0.
func (g *letterboxGeom) letterbox(pix []float32, dst []float32) {
	size := g.size
	clear(dst)
	if g.upsample {
		for i := range size {
			y := (float64(i)+0.5)/g.scale - 0.5 - g.padY
			for j := range size {
				x := (float64(j)+0.5)/g.scale - 0.5 - g.padX
				dst[i*size+j] = float32(bilinear(pix, g.rows, g.cols, x, y))
			}
		}
		return
	}
	colBin, colN := bins(g.cols, g.padX, g.scale, size)
	rowBin, rowN := bins(g.rows, g.padY, g.scale, size)
	acc := make([]float64, size*size)
	for r := range g.rows {
		out := acc[rowBin[r]*size : (rowBin[r]+1)*size]
		src := pix[r*g.cols : (r+1)*g.cols]
		for c, v := range src {
			out[colBin[c]] += float64(v)
		}
	}
	for i := range size {
		if rowN[i] == 0 {
			continue
		}
		for j := range size {
			if colN[j] == 0 {
				continue
			}
			dst[i*size+j] = float32(acc[i*size+j] / (rowN[i] * colN[j]))
		}
	}
}

// bilinear samples pix at (x, y); pixels outside the image read 0.
func bilinear(pix []float32, rows, cols int, x, y float64) float64 {
	x0 := math.Floor(x)
	y0 := math.Floor(y)
	fx := x - x0
	fy := y - y0
	ix, iy := int(x0), int(y0)
	// same accumulation order as imaging.bilinear: (dy, dx) = (0,0), (0,1), (1,0), (1,1)
	if ix >= 0 && iy >= 0 && ix+1 < cols && iy+1 < rows && x0 == float64(ix) && y0 == float64(iy) {
		// all four neighbours inside: no bounds checks per neighbour (the
		// common case; same arithmetic as below, so the same result)
		r0 := pix[iy*cols+ix : iy*cols+ix+2]
		r1 := pix[(iy+1)*cols+ix : (iy+1)*cols+ix+2]
		v := 0.0
		v += (1 - fx) * (1 - fy) * float64(r0[0])
		v += fx * (1 - fy) * float64(r0[1])
		v += (1 - fx) * fy * float64(r1[0])
		v += fx * fy * float64(r1[1])
		return v
	}
	at := func(xi, yi int) float64 {
		if xi < 0 || yi < 0 || xi >= cols || yi >= rows {
			return 0
		}
		return float64(pix[yi*cols+xi])
	}
	v := 0.0
	v += (1 - fx) * (1 - fy) * at(ix, iy)
	v += fx * (1 - fy) * at(ix+1, iy)
	v += (1 - fx) * fy * at(ix, iy+1)
	v += fx * fy * at(ix+1, iy+1)
	return v
}

// cropGeom is an axis-aligned n×n crop centred on (CX, CY) with SX, SY
// original pixels per crop pixel.
type cropGeom struct {
	CX, CY, SX, SY float64
	N              int
}

// toCrop maps a point of the original grid to crop pixels (the inverse of
// fromCrop).
func (c cropGeom) toCrop(p Point) Point {
	half := float64(c.N-1) / 2
	return Point{X: (p.X-c.CX)/c.SX + half, Y: (p.Y-c.CY)/c.SY + half}
}

// supersample is the k of the k×k bilinear samples averaged per crop pixel.
func supersample(sx, sy float64) int {
	return min(4, max(1, int(math.Ceil(max(sx, sy)-1e-9))))
}

// crop cuts the crop from the original grid into dst (n×n).
func (c cropGeom) crop(pix []float32, rows, cols int, dst []float32) {
	k := supersample(c.SX, c.SY)
	half := float64(c.N-1) / 2
	acc := make([]float64, c.N*c.N)
	for a := range k {
		oy := (float64(a)+0.5)/float64(k) - 0.5
		for b := range k {
			ox := (float64(b)+0.5)/float64(k) - 0.5
			for i := range c.N {
				y := c.CY + (float64(i)-half+oy)*c.SY
				for j := range c.N {
					x := c.CX + (float64(j)-half+ox)*c.SX
					acc[i*c.N+j] += bilinear(pix, rows, cols, x, y)
				}
			}
		}
	}
	kk := float64(k * k)
	for i, v := range acc {
		dst[i] = float32(v / kk)
	}
}

// fromCrop maps crop pixels to the original grid.
func (c cropGeom) fromCrop(p Point) Point {
	half := float64(c.N-1) / 2
	return Point{X: c.CX + (p.X-half)*c.SX, Y: c.CY + (p.Y-half)*c.SY}
}

// decodeHeatmaps finds each channel's peak with sub-pixel refinement.
// hm is [channels][h][w] row-major. Points are in heatmap pixels; the
// confidence is the peak value clamped to [0, 1].
func decodeHeatmaps(hm []float32, channels, h, w int) ([]Point, []float64) {
	pts := make([]Point, channels)
	conf := make([]float64, channels)
	for c := range channels {
		m := hm[c*h*w : (c+1)*h*w]
		best := 0
		for i, v := range m {
			if v > m[best] {
				best = i
			}
		}
		py, px := best/w, best%w
		conf[c] = min(1, max(0, float64(m[best])))
		pts[c] = Point{
			X: float64(px) + refine(m, w, px, py, 1, 0, w),
			Y: float64(py) + refine(m, w, px, py, 0, 1, h),
		}
	}
	return pts, conf
}

// Peak is one local maximum of a heatmap channel, mapped like the landmark
// it stands for; Conf is its value clamped to [0, 1].
type Peak struct {
	Point
	Conf float64
}

// decodePeaks returns, per channel, up to k local maxima (3×3 neighbourhood)
// of at least minConf, strongest first (ties: lower index first), each at
// least minSep heatmap pixels (Chebyshev) from every stronger one kept.
// The first peak of a channel is the argmax decodeHeatmaps finds. Points are
// in heatmap pixels with the same sub-pixel refinement.
func decodePeaks(hm []float32, channels, h, w, k, minSep int, minConf float64) [][]Peak {
	out := make([][]Peak, channels)
	type cand struct {
		i int
		v float32
	}
	for c := range channels {
		m := hm[c*h*w : (c+1)*h*w]
		var cs []cand
		for i, v := range m {
			py, px := i/w, i%w
			isMax := true
			for dy := -1; dy <= 1 && isMax; dy++ {
				for dx := -1; dx <= 1; dx++ {
					y, x := py+dy, px+dx
					if (dy == 0 && dx == 0) || y < 0 || y >= h || x < 0 || x >= w {
						continue
					}
					j := y*w + x
					// A plateau counts once: at its lowest index.
					if m[j] > v || (m[j] == v && j < i) {
						isMax = false
						break
					}
				}
			}
			if isMax {
				cs = append(cs, cand{i, v})
			}
		}
		slices.SortStableFunc(cs, func(a, b cand) int {
			switch {
			case a.v > b.v:
				return -1
			case a.v < b.v:
				return 1
			}
			return a.i - b.i
		})
		var kept []cand
		for _, cd := range cs {
			if len(kept) >= k {
				break
			}
			conf := min(1, max(0, float64(cd.v)))
			if len(kept) > 0 && conf < minConf {
				break
			}
			far := true
			for _, q := range kept {
				if max(abs(q.i/w-cd.i/w), abs(q.i%w-cd.i%w)) < minSep {
					far = false
					break
				}
			}
			if !far {
				continue
			}
			kept = append(kept, cd)
			py, px := cd.i/w, cd.i%w
			out[c] = append(out[c], Peak{Point: Point{
				X: float64(px) + refine(m, w, px, py, 1, 0, w),
				Y: float64(py) + refine(m, w, px, py, 0, 1, h),
			}, Conf: conf})
		}
	}
	return out
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// refine fits a parabola through the log of the peak and its two neighbours
// along one axis (exact for a Gaussian peak); the offset is clamped to ±0.5.
func refine(m []float32, w, px, py, dx, dy, n int) float64 {
	p := px
	if dy != 0 {
		p = py
	}
	if p <= 0 || p >= n-1 {
		return 0
	}
	const eps = 1e-6
	a := math.Log(max(float64(m[(py-dy)*w+px-dx]), eps))
	b := math.Log(max(float64(m[py*w+px]), eps))
	c := math.Log(max(float64(m[(py+dy)*w+px+dx]), eps))
	den := a - 2*b + c
	if den >= 0 {
		return 0
	}
	off := 0.5 * (a - c) / den
	return max(-0.5, min(0.5, off))
}

// heatmapToInput maps heatmap pixels to model-input pixels.
func heatmapToInput(p Point, stride int) Point {
	s := float64(stride)
	return Point{X: (p.X+0.5)*s - 0.5, Y: (p.Y+0.5)*s - 0.5}
}

// vertebraSize is the median width of the C3–C6 endplates (pixels): the
// crop scale when the pixel spacing is unknown. 0 when none is finite.
func vertebraSize(lm *[23]Point) float64 {
	var w []float64
	for n := 3; n <= 6; n++ {
		b := 3 + 4*(n-3)
		for _, pr := range [][2]int{{b, b + 1}, {b + 2, b + 3}} {
			d := math.Hypot(lm[pr[0]].X-lm[pr[1]].X, lm[pr[0]].Y-lm[pr[1]].Y)
			if !math.IsNaN(d) && !math.IsInf(d, 0) {
				w = append(w, d)
			}
		}
	}
	if len(w) == 0 {
		return 0
	}
	slices.Sort(w)
	if len(w)%2 == 1 {
		return w[len(w)/2]
	}
	return (w[len(w)/2-1] + w[len(w)/2]) / 2
}
