package phantom

import (
	"math"
	"sort"
)

// imaging holds the acquisition and detector parameters of one image.
type imaging struct {
	rows, cols int
	ips        float64 // imager pixel spacing at the detector (mm)
	mag        float64 // geometric magnification at the mid-sagittal plane
	ps         float64 // pixel spacing at the patient plane = ips/mag (mm)
	xf         affine  // canonical mm → pixels
	inv        affine
	rotDeg     float64
	faceRight  bool
	n0         float64    // photons per pixel, unattenuated, at the field centre
	heel       float64    // relative intensity change from top to bottom (anode heel)
	spr        float64    // scatter-to-primary scale
	scatSigma  float64    // scatter kernel width (mm)
	detBlur    float64    // 3-tap detector blur weight
	elec       float64    // electronic noise (photon-equivalent standard deviation)
	unsharp    float64    // edge-enhancement gain of the For Presentation processing
	equalize   float64    // large-scale dynamic-range compression (0..1)
	eqScale    float64    // its scale (mm)
	collim     [4]float64 // collimated field: left, top, right, bottom (pixels)
	marker     markerSpec
}

type markerSpec struct {
	letter string
	x, y   float64 // top-left corner, pixels
	sizePx float64
}

// raster is a float32 image in row-major order.
type raster struct {
	w, h int
	pix  []float32
}

func newRaster(w, h int) *raster { return &raster{w: w, h: h, pix: make([]float32, w*h)} }

// bilinear samples r at (x, y) in r's own grid, clamped at the border.
func (r *raster) bilinear(x, y float64) float32 {
	if x < 0 {
		x = 0
	}
	if y < 0 {
		y = 0
	}
	mx, my := float64(r.w-1), float64(r.h-1)
	if x > mx {
		x = mx
	}
	if y > my {
		y = my
	}
	x0, y0 := int(x), int(y)
	x1, y1 := x0+1, y0+1
	if x1 >= r.w {
		x1 = r.w - 1
	}
	if y1 >= r.h {
		y1 = r.h - 1
	}
	fx, fy := float32(x-float64(x0)), float32(y-float64(y0))
	a := r.pix[y0*r.w+x0]*(1-fx) + r.pix[y0*r.w+x1]*fx
	b := r.pix[y1*r.w+x0]*(1-fx) + r.pix[y1*r.w+x1]*fx
	return a*(1-fy) + b*fy
}

// upsampleRow writes row y of r upsampled by factor f into dst (len cols).
func (r *raster) upsampleRowAdd(dst []float32, y int, f int, add bool) {
	cy := float64(y) / float64(f)
	y0 := int(cy)
	y1 := y0 + 1
	if y1 >= r.h {
		y1 = r.h - 1
	}
	fy := float32(cy - float64(y0))
	row0 := r.pix[y0*r.w : (y0+1)*r.w]
	row1 := r.pix[y1*r.w : (y1+1)*r.w]
	inv := 1 / float32(f)
	n := len(dst)
	for cx := 0; cx*f < n; cx++ {
		cx1 := cx + 1
		if cx1 >= r.w {
			cx1 = r.w - 1
		}
		a := row0[cx] + (row1[cx]-row0[cx])*fy
		b := row0[cx1] + (row1[cx1]-row0[cx1])*fy
		step := (b - a) * inv
		end := min(cx*f+f, n)
		seg := dst[cx*f : end]
		v := a
		if add {
			for i := range seg {
				seg[i] += v
				v += step
			}
		} else {
			for i := range seg {
				seg[i] = v
				v += step
			}
		}
	}
}

// boxBlur blurs r in place with a separable box of radius rad (3 passes ≈
// Gaussian with sigma ≈ rad·0.6·sqrt(3)).
func (r *raster) boxBlur(rad int) {
	if rad < 1 {
		return
	}
	tmp := make([]float32, max(r.w, r.h))
	for pass := 0; pass < 3; pass++ {
		for y := 0; y < r.h; y++ {
			blur1D(r.pix[y*r.w:(y+1)*r.w], 1, r.w, rad, tmp)
		}
		col := make([]float32, r.h)
		for x := 0; x < r.w; x++ {
			for y := 0; y < r.h; y++ {
				col[y] = r.pix[y*r.w+x]
			}
			blur1D(col, 1, r.h, rad, tmp)
			for y := 0; y < r.h; y++ {
				r.pix[y*r.w+x] = col[y]
			}
		}
	}
}

func blur1D(v []float32, _ int, n, rad int, tmp []float32) {
	copy(tmp[:n], v[:n])
	var acc float32
	cnt := float32(2*rad + 1)
	get := func(i int) float32 {
		if i < 0 {
			return tmp[0]
		}
		if i >= n {
			return tmp[n-1]
		}
		return tmp[i]
	}
	for i := -rad; i <= rad; i++ {
		acc += get(i)
	}
	for i := 0; i < n; i++ {
		v[i] = acc / cnt
		acc += get(i+rad+1) - get(i-rad)
	}
}

// render produces the detector's log-signal image (higher = more attenuation)
// for an anatomy, with scatter, blur, noise and processing applied.
func render(an *anatomy, im *imaging, s *sampler) []float32 {
	W, H := im.cols, im.rows
	// Coarse grid of about 0.7 mm for smooth tissue and large bones.
	f := int(math.Max(2, math.Round(0.7/im.ps)))
	cw, ch := W/f+2, H/f+2
	coarse := newRaster(cw, ch)
	coarseShapes := make([]*polySDF, 0)
	var coarseTis []tissue
	for i := range an.shapes {
		if !an.shapes[i].fine {
			coarseShapes = append(coarseShapes, newPolySDF(an.shapes[i].poly))
			coarseTis = append(coarseTis, an.shapes[i].t)
		}
	}
	for cy := 0; cy < ch; cy++ {
		for cx := 0; cx < cw; cx++ {
			v := im.inv.apply(vec{float64(cx * f), float64(cy * f)})
			var mu float64
			if an.softFn != nil {
				mu = muSoft * an.softFn(v)
			} else {
				mu = muSoft * (an.softThickness(v) + an.shoulderThickness(v))
			}
			for k, sd := range coarseShapes {
				if v.X < sd.minX-6 || v.X > sd.maxX+6 || v.Y < sd.minY-6 || v.Y > sd.maxY+6 {
					continue
				}
				mu += coarseTis[k].profile(sd.at(v.X, v.Y), 0)
			}
			coarse.pix[cy*cw+cx] = float32(mu)
		}
	}
	// Scatter: the primary on the coarse grid, blurred widely.
	scat := newRaster(cw, ch)
	for i, mu := range coarse.pix {
		scat.pix[i] = float32(fastExp(-float64(mu)))
	}
	scat.boxBlur(int(math.Max(1, im.scatSigma/(im.ps*float64(f))/1.04)))
	for i := range scat.pix {
		scat.pix[i] *= float32(im.spr)
	}

	// Full-resolution attenuation: coarse part plus the spine's bones.
	mu := getF32Dirty(W * H) // every row is written by the upsampling below
	for y := 0; y < H; y++ {
		coarse.upsampleRowAdd(mu[y*W:(y+1)*W], y, f, false)
	}
	for i := range an.shapes {
		if an.shapes[i].fine {
			addFineShape(mu, W, H, &an.shapes[i], im)
		}
	}
	addMarker(mu, W, H, im)
	addCollimation(mu, W, H, im)

	// Transmission with scatter and heel effect, quantum and electronic
	// noise, log, in one pass; then the detector blur (applied to the log
	// signal: for the small blur it is, the difference is negligible, and
	// it correlates the noise as a scintillator does).
	out := mu // in place
	srow := make([]float32, W)
	tmp := make([]float32, W)
	rng := s.uint64() | 1
	n0 := im.n0
	el2 := im.elec * im.elec
	for y := 0; y < H; y++ {
		scat.upsampleRowAdd(srow, y, f, false)
		heel := n0 * (1 + im.heel*(float64(y)/float64(H)-0.5))
		rng = transmitRow(out[y*W:(y+1)*W], srow, tmp, heel, n0, el2, rng)
	}
	detectorBlur(out, W, H, float32(im.detBlur))
	// For Presentation processing: large-scale dynamic-range compression
	// (bone stays visible over thick and thin soft tissue) and optional
	// edge enhancement, applied together in one pass.
	present(out, W, H, f, im)
	return out
}

// transmitRow turns one row of attenuation (line integrals) into the
// detector's log signal in place: primary transmission plus scatter (srow,
// relative to the unattenuated beam) at heel-corrected fluence heel, Poisson
// quantum noise (Gaussian approximation) with electronic noise variance
// el2, relative to the open-field fluence n0; tmp is scratch of the row's
// length. rng is the xorshift state;
// the new state is returned.
func transmitRow(row, srow, tmp []float32, heel, n0, el2 float64, rng uint64) uint64 {
	// Two passes with short dependency chains (exponential; then noise and
	// logarithm) run markedly faster than one long chain per pixel.
	srow = srow[:len(row)]
	fl := tmp[:len(row)]
	for x, m := range row {
		fl[x] = float32(heel * (fastExp(-float64(m)) + float64(srow[x])))
	}
	ln0 := math.Log(n0)
	for x, f := range fl {
		n := float64(f)
		rng ^= rng << 13
		rng ^= rng >> 7
		rng ^= rng << 17
		n += math.Sqrt(n+el2) * normTable[rng>>52]
		if n < 0.5 {
			n = 0.5
		}
		row[x] = float32(ln0 - fastLog(n))
	}
	return rng
}

// present applies v' = (1+k)·v − k·low_s(v) − c·low_l(v): k the edge
// enhancement gain over a small low-pass (about 2.5 mm), c the compression
// of a large low-pass (im.eqScale). Both low-passes come from one
// decimation of v on the coarse grid, so the full image is read once and
// written once.
func present(v []float32, W, H, f int, im *imaging) {
	k, c := float32(im.unsharp), float32(im.equalize)
	if k == 0 && c == 0 {
		return
	}
	cw, ch := W/f+2, H/f+2
	// Cell (cx, cy) averages the pixels nearest to it: x in
	// [cx·f − f/2, cx·f − f/2 + f).
	low := newRaster(cw, ch)
	cntX := make([]float32, cw)
	for y := 0; y < H; y++ {
		cy := (y + f/2) / f
		row := v[y*W : (y+1)*W]
		cells := low.pix[cy*cw : (cy+1)*cw]
		for cx := range cells {
			x0, x1 := max(0, cx*f-f/2), min(W, cx*f-f/2+f)
			if x0 >= x1 {
				break
			}
			var sum float32
			for _, p := range row[x0:x1] {
				sum += p
			}
			cells[cx] += sum
			if y == 0 {
				cntX[cx] = float32(x1 - x0)
			}
		}
	}
	for cy := 0; cy < ch; cy++ {
		y0, y1 := max(0, cy*f-f/2), min(H, cy*f-f/2+f)
		if y0 >= y1 {
			break
		}
		for cx, n := range cntX {
			if n > 0 {
				low.pix[cy*cw+cx] /= n * float32(y1-y0)
			}
		}
	}
	corr := newRaster(cw, ch)
	if c > 0 {
		large := &raster{w: cw, h: ch, pix: append([]float32(nil), low.pix...)}
		large.boxBlur(int(math.Max(1, math.Round(im.eqScale/(im.ps*float64(f))/1.7))))
		for i, p := range large.pix {
			corr.pix[i] -= c * p
		}
	}
	if k > 0 {
		low.boxBlur(2)
		for i, p := range low.pix {
			corr.pix[i] -= k * p
		}
	}
	row := make([]float32, W)
	for y := 0; y < H; y++ {
		corr.upsampleRowAdd(row, y, f, false)
		r := v[y*W : (y+1)*W]
		for x := range r {
			r[x] = (1+k)*r[x] + row[x]
		}
	}
}

// normTable holds 4096 standard normal deviates (inverse CDF at the bin
// centres), so noise costs a table look-up per pixel and stays deterministic.
var normTable = func() [4096]float64 {
	var t [4096]float64
	for i := range t {
		p := (float64(i) + 0.5) / 4096
		t[i] = math.Sqrt2 * math.Erfinv(2*p-1)
	}
	return t
}()

func detectorBlur(v []float32, W, H int, w float32) {
	if w <= 0 {
		return
	}
	c := 1 - 2*w
	row := make([]float32, W)
	for y := 0; y < H; y++ {
		r := v[y*W : (y+1)*W]
		copy(row, r)
		for x := 1; x < W-1; x++ {
			r[x] = c*row[x] + w*(row[x-1]+row[x+1])
		}
	}
	prev := make([]float32, W)
	copy(prev, v[:W])
	for y := 1; y < H-1; y++ {
		cur := v[y*W : (y+1)*W]
		next := v[(y+1)*W : (y+2)*W]
		for x := 0; x < W; x++ {
			p := cur[x]
			cur[x] = c*p + w*(prev[x]+next[x])
			prev[x] = p
		}
	}
}

// addFineShape adds one bone at full resolution. The signed distance is
// computed on a 3-pixel sub-grid and interpolated (it is smooth), the
// attenuation profile at every pixel.
func addFineShape(mu []float32, W, H int, sh *shape, im *imaging) {
	px := make([]vec, len(sh.poly))
	for i, p := range sh.poly {
		px[i] = im.xf.apply(p)
	}
	sd := newPolySDF(px)
	margin := 0.12/im.ps + 3 // the profile is zero beyond the partial-volume edge
	x0 := int(math.Floor(sd.minX - margin))
	y0 := int(math.Floor(sd.minY - margin))
	x1 := int(math.Ceil(sd.maxX + margin))
	y1 := int(math.Ceil(sd.maxY + margin))
	if x0 < 0 {
		x0 = 0
	}
	if y0 < 0 {
		y0 = 0
	}
	if x1 > W-1 {
		x1 = W - 1
	}
	if y1 > H-1 {
		y1 = H - 1
	}
	if x0 > x1 || y0 > y1 {
		return
	}
	const g = 3
	gw, gh := (x1-x0)/g+2, (y1-y0)/g+2
	grid := newRaster(gw, gh)
	fineSDFGrid(grid, sd, x0, y0, g, im.ps)
	tis := sh.t
	row := make([]float32, x1-x0+1)
	for y := y0; y <= y1; y++ {
		grid.upsampleRowAdd(row, y-y0, g, false)
		base := y * W
		ty := (int(float64(y)*im.ps/0.3) & (texSize - 1)) * texSize
		for i, d := range row {
			if d <= -0.12 {
				continue
			}
			x := x0 + i
			tv := float64(texTile[ty+(int(float64(x)*im.ps/0.3)&(texSize-1))])
			mu[base+x] += float32(tis.profile(float64(d), tv))
		}
	}
}

// fineSDFGrid fills grid with the signed distance (mm) to sd at the nodes
// (x0+i·g, y0+j·g). The distance is evaluated exactly on every fourth node;
// a block of 4×4 cells whose corners are all farther from the outline than
// the block's diagonal lies wholly inside or outside (the distance is
// 1-Lipschitz), and there the nodes are interpolated from the corners: the
// profile far from an edge varies slowly, and bones' bounding boxes are
// mostly such blocks.
func fineSDFGrid(grid *raster, sd *polySDF, x0, y0, g int, ps float64) {
	const c = 4
	gw, gh := grid.w, grid.h
	exact := func(i, j int) float32 {
		return float32(sd.at(float64(x0+i*g), float64(y0+j*g)) * ps)
	}
	done := make([]bool, gw*gh)
	set := func(i, j int, v float32) {
		grid.pix[j*gw+i] = v
		done[j*gw+i] = true
	}
	for j := 0; j < gh; j += c {
		for i := 0; i < gw; i += c {
			set(i, j, exact(i, j))
		}
	}
	diag := float32(math.Sqrt2 * float64(c*g) * ps)
	for bj := 0; bj+c < gh; bj += c {
		for bi := 0; bi+c < gw; bi += c {
			d00, d10 := grid.pix[bj*gw+bi], grid.pix[bj*gw+bi+c]
			d01, d11 := grid.pix[(bj+c)*gw+bi], grid.pix[(bj+c)*gw+bi+c]
			far := min(abs32(d00), abs32(d10), abs32(d01), abs32(d11)) > diag &&
				(d00 > 0) == (d10 > 0) && (d00 > 0) == (d01 > 0) && (d00 > 0) == (d11 > 0)
			if !far {
				continue
			}
			for j := 0; j <= c; j++ {
				fy := float32(j) / c
				for i := 0; i <= c; i++ {
					if done[(bj+j)*gw+bi+i] {
						continue
					}
					fx := float32(i) / c
					top := d00 + (d10-d00)*fx
					bot := d01 + (d11-d01)*fx
					set(bi+i, bj+j, top+(bot-top)*fy)
				}
			}
		}
	}
	for k, ok := range done {
		if !ok {
			grid.pix[k] = exact(k%gw, k/gw)
		}
	}
}

func abs32(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}

func addCollimation(mu []float32, W, H int, im *imaging) {
	l, t, r, b := im.collim[0], im.collim[1], im.collim[2], im.collim[3]
	soft := 2 / im.ps // penumbra about 2 mm
	for y := 0; y < H; y++ {
		fy := float64(y)
		rowInside := fy-t >= soft && b-fy >= soft
		for x := 0; x < W; x++ {
			if rowInside && x > int(l+soft)+1 && x < int(r-soft)-1 {
				x = int(r-soft) - 1
				continue
			}
			fx := float64(x)
			d := math.Min(math.Min(fx-l, r-fx), math.Min(fy-t, b-fy))
			if d >= soft {
				continue
			}
			k := 1 - d/soft
			if k > 1 {
				k = 1
			}
			mu[y*W+x] += float32(6 * k)
		}
	}
}

// percentiles returns the values at the given fractions of v (sorted copy of
// a strided sample, which is plenty for window statistics).
func percentiles(v []float32, fr ...float64) []float64 {
	step := len(v)/200000 + 1
	s := make([]float64, 0, len(v)/step+1)
	for i := 0; i < len(v); i += step {
		s = append(s, float64(v[i]))
	}
	sort.Float64s(s)
	out := make([]float64, len(fr))
	for i, f := range fr {
		k := int(f * float64(len(s)-1))
		out[i] = s[k]
	}
	return out
}

const texSize = 256

// texTile is a fixed band-pass noise tile for trabecular bone texture.
var texTile = func() []float32 {
	s := newSampler(12345, 0, 99)
	r := newRaster(texSize, texSize)
	for i := range r.pix {
		r.pix[i] = float32(s.normal(0, 1))
	}
	r.boxBlur(1)
	var m, sd float64
	for _, v := range r.pix {
		m += float64(v)
	}
	m /= float64(len(r.pix))
	for _, v := range r.pix {
		sd += sq(float64(v) - m)
	}
	sd = math.Sqrt(sd / float64(len(r.pix)))
	for i, v := range r.pix {
		x := (float64(v) - m) / sd / 2.5
		r.pix[i] = float32(math.Max(-1, math.Min(1, x)))
	}
	return r.pix
}()
