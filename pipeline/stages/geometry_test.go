package stages

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

type golden struct {
	Letterbox []struct {
		Rows, Cols, Size int
		Pix, Out         []float32
		Pts, LbPts       [][2]float64 `json:"-"`
		RawPts           [][2]float64 `json:"pts"`
		RawLb            [][2]float64 `json:"lb_pts"`
	} `json:"letterbox"`
	Crop []struct {
		Rows, Cols     int
		Pix            []float32
		CX, CY, SX, SY float64
		N              int
		Out            []float32
	} `json:"crop"`
	Decode []struct {
		Channels, H, W int
		HM             []float32 `json:"hm"`
		Pts            [][2]float64
		Conf           []float64
	} `json:"decode"`
}

// The Go resampling and decoding must reproduce the Python training code
// (training/cspine_train/imaging.py) that produced testdata/golden.json.
func TestMatchesTrainingReference(t *testing.T) {
	b, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	for _, c := range g.Letterbox {
		lb := newLetterbox(c.Rows, c.Cols, c.Size)
		dst := make([]float32, c.Size*c.Size)
		lb.letterbox(c.Pix, dst)
		for i := range dst {
			if math.Abs(float64(dst[i]-c.Out[i])) > 1e-6 {
				t.Fatalf("letterbox %dx%d->%d: pixel %d = %v, python %v", c.Cols, c.Rows, c.Size, i, dst[i], c.Out[i])
			}
		}
		for i, p := range c.RawPts {
			q := lb.toLetterbox(Point{p[0], p[1]})
			if math.Abs(q.X-c.RawLb[i][0]) > 1e-9 || math.Abs(q.Y-c.RawLb[i][1]) > 1e-9 {
				t.Fatalf("toLetterbox %v = %v, python %v", p, q, c.RawLb[i])
			}
			r := lb.fromLetterbox(q)
			if math.Abs(r.X-p[0]) > 1e-9 || math.Abs(r.Y-p[1]) > 1e-9 {
				t.Fatalf("round trip %v -> %v", p, r)
			}
		}
	}
	pix := g.Crop[0].Pix
	for _, c := range g.Crop {
		cg := cropGeom{CX: c.CX, CY: c.CY, SX: c.SX, SY: c.SY, N: c.N}
		dst := make([]float32, c.N*c.N)
		cg.crop(pix, c.Rows, c.Cols, dst)
		for i := range dst {
			if math.Abs(float64(dst[i]-c.Out[i])) > 1e-6 {
				t.Fatalf("crop %+v: pixel %d = %v, python %v", cg, i, dst[i], c.Out[i])
			}
		}
	}
	for _, c := range g.Decode {
		pts, conf := decodeHeatmaps(c.HM, c.Channels, c.H, c.W)
		for i := range pts {
			if math.Abs(pts[i].X-c.Pts[i][0]) > 1e-5 || math.Abs(pts[i].Y-c.Pts[i][1]) > 1e-5 || math.Abs(conf[i]-c.Conf[i]) > 1e-6 {
				t.Fatalf("decode channel %d: %v %v, python %v %v", i, pts[i], conf[i], c.Pts[i], c.Conf[i])
			}
		}
	}
}

func TestLetterboxHandComputed(t *testing.T) {
	// 2 rows x 4 cols of a ramp into 2x2: side 4, pad_y 1, scale 0.5.
	pix := []float32{0, 1, 2, 3, 4, 5, 6, 7}
	lb := newLetterbox(2, 4, 2)
	dst := make([]float32, 4)
	lb.letterbox(pix, dst)
	// row bins: rows 0,1 -> floor((r+1)*0.5) = 0, 1; col bins: 0,0,1,1
	want := []float32{0.5, 2.5, 4.5, 6.5}
	for i := range want {
		if dst[i] != want[i] {
			t.Fatalf("dst = %v, want %v", dst, want)
		}
	}
	if p := lb.toLetterbox(Point{0, 0}); p.X != -0.25 || p.Y != 0.25 {
		t.Fatalf("toLetterbox(0,0) = %v", p)
	}
	// upscaling (image smaller than the letterbox) samples bilinearly
	up := newLetterbox(2, 2, 4)
	dst = make([]float32, 16)
	up.letterbox([]float32{0, 1, 0, 1}, dst)
	// row 1 samples y = 0.25 (both source rows alike): x = -0.25, 0.25, 0.75, 1.25
	for j, want := range []float32{0, 0.25, 0.75, 0.75} {
		if dst[4+j] != want || dst[j] != 0.75*want { // row 0 (y = -0.25) is 3/4 inside
			t.Fatalf("upscaled = %v", dst)
		}
	}
}

func TestDecodeHeatmapsSubPixel(t *testing.T) {
	tests := []struct {
		name   string
		x0, y0 float64
		amp    float64
	}{
		{"centre", 5, 4, 1},
		{"right of centre", 5.3, 4, 0.9},
		{"up-left", 2.6, 1.7, 0.5},
		{"edge column", 0, 3.2, 1}, // peak on the border: no refinement along x
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, w := 8, 10
			hm := make([]float32, h*w)
			for y := range h {
				for x := range w {
					d := (float64(x)-tc.x0)*(float64(x)-tc.x0) + (float64(y)-tc.y0)*(float64(y)-tc.y0)
					hm[y*w+x] = float32(tc.amp * math.Exp(-d/(2*1.5*1.5)))
				}
			}
			pts, conf := decodeHeatmaps(hm, 1, h, w)
			if math.Abs(pts[0].X-tc.x0) > 1e-4 || math.Abs(pts[0].Y-tc.y0) > 1e-4 {
				t.Fatalf("peak %v, want (%v, %v)", pts[0], tc.x0, tc.y0)
			}
			if conf[0] <= 0 || conf[0] > tc.amp+1e-6 {
				t.Fatalf("conf %v", conf[0])
			}
		})
	}
	// negative and >1 peaks clamp the confidence to [0, 1]
	_, conf := decodeHeatmaps([]float32{-3, -2, -1, -5, 7, 2}, 2, 1, 3)
	if conf[0] != 0 || conf[1] != 1 {
		t.Fatalf("conf = %v", conf)
	}
}

func TestCropHandComputed(t *testing.T) {
	// value = x on a 10x6 image; a step-1 crop centred on (4.5, 2) reads x.
	rows, cols := 6, 10
	pix := make([]float32, rows*cols)
	for y := range rows {
		for x := range cols {
			pix[y*cols+x] = float32(x)
		}
	}
	g := cropGeom{CX: 4.5, CY: 2, SX: 1, SY: 1, N: 4}
	dst := make([]float32, 16)
	g.crop(pix, rows, cols, dst)
	for j, want := range []float32{3, 4, 5, 6} {
		if dst[j] != want {
			t.Fatalf("row 0 = %v", dst[:4])
		}
	}
	if p := g.fromCrop(Point{1.5, 1.5}); p.X != 4.5 || p.Y != 2 {
		t.Fatalf("fromCrop centre = %v", p)
	}
	// outside the image reads 0
	g = cropGeom{CX: -10, CY: -10, SX: 1, SY: 1, N: 2}
	dst = make([]float32, 4)
	g.crop(pix, rows, cols, dst)
	if dst[0] != 0 || dst[3] != 0 {
		t.Fatalf("outside = %v", dst)
	}
	if k := supersample(2.01, 1); k != 3 {
		t.Fatalf("supersample = %d", k)
	}
	if k := supersample(9, 9); k != 4 {
		t.Fatalf("supersample cap = %d", k)
	}
}

func TestVertebraSize(t *testing.T) {
	var lm [23]Point
	for n := 3; n <= 6; n++ {
		b := 3 + 4*(n-3)
		w := float64(10 + n) // widths 13,14,15,16 (sup and inf)
		lm[b], lm[b+1] = Point{0, 0}, Point{w, 0}
		lm[b+2], lm[b+3] = Point{0, 5}, Point{0, 5 + w}
	}
	if v := vertebraSize(&lm); v != 14.5 {
		t.Fatalf("vertebraSize = %v, want 14.5", v)
	}
}

// gaussian adds a peak of height a at (x, y) to an h×w plane.
func gaussian(m []float32, h, w int, x, y, a, sigma float64) {
	for i := range h {
		for j := range w {
			d2 := (float64(j)-x)*(float64(j)-x) + (float64(i)-y)*(float64(i)-y)
			m[i*w+j] += float32(a * math.Exp(-d2/(2*sigma*sigma)))
		}
	}
}

func TestDecodePeaks(t *testing.T) {
	const h, w = 40, 40
	hm := make([]float32, 2*h*w)
	// Channel 0: a strong peak, a weaker one far away, a shoulder 2 px from
	// the strong one (not a separate candidate) and a faint one below
	// PeakMinConf.
	gaussian(hm[:h*w], h, w, 10, 10, 0.9, 1.5)
	gaussian(hm[:h*w], h, w, 30, 25, 0.4, 1.5)
	gaussian(hm[:h*w], h, w, 5, 35, 0.03, 1.5)
	// Channel 1: one peak only.
	gaussian(hm[h*w:], h, w, 20, 5, 0.7, 1.5)
	peaks := decodePeaks(hm, 2, h, w, 4, 4, 0.05)
	pts, conf := decodeHeatmaps(hm, 2, h, w)
	if len(peaks[0]) != 2 || len(peaks[1]) != 1 {
		t.Fatalf("peaks per channel %d, %d; want 2, 1: %+v", len(peaks[0]), len(peaks[1]), peaks)
	}
	for c := range 2 {
		if peaks[c][0].Point != pts[c] || peaks[c][0].Conf != conf[c] {
			t.Errorf("channel %d: first peak %+v, argmax %+v %.3f", c, peaks[c][0], pts[c], conf[c])
		}
	}
	if p := peaks[0][1]; math.Abs(p.X-30) > 0.05 || math.Abs(p.Y-25) > 0.05 || math.Abs(p.Conf-0.4) > 0.01 {
		t.Errorf("second peak %+v, want (30, 25) 0.4", p)
	}
	// k limits the count; minSep merges close maxima.
	if got := decodePeaks(hm, 1, h, w, 1, 4, 0.05); len(got[0]) != 1 {
		t.Errorf("k=1 gave %d peaks", len(got[0]))
	}
	close2 := make([]float32, h*w)
	gaussian(close2, h, w, 10, 10, 0.9, 0.6)
	gaussian(close2, h, w, 13, 10, 0.8, 0.6)
	if got := decodePeaks(close2, 1, h, w, 4, 4, 0.05); len(got[0]) != 1 {
		t.Errorf("maxima 3 px apart with minSep 4 gave %d peaks", len(got[0]))
	}
	if got := decodePeaks(close2, 1, h, w, 4, 2, 0.05); len(got[0]) != 2 {
		t.Errorf("maxima 3 px apart with minSep 2 gave %d peaks", len(got[0]))
	}
}

func TestAverageShifted(t *testing.T) {
	// Two 1-channel 4×4 heatmaps: the centred one and one cut 1 px further
	// right, whose pixel (u, v) lies at (u+1, v) on the centred grid.
	const h = 4
	base := make([]float32, h*h)
	shifted := make([]float32, h*h)
	for i := range base {
		base[i] = 1
		shifted[i] = 3
	}
	acc := make([]float64, h*h)
	n := make([]float64, h*h)
	averageShifted(acc, n, base, 1, h, 0, 0)
	averageShifted(acc, n, shifted, 1, h, 1, 0)
	for y := range h {
		for x := range h {
			i := y*h + x
			wantN, wantAcc := 2.0, 4.0
			if x == 0 { // the shifted crop does not cover the first column
				wantN, wantAcc = 1, 1
			}
			if n[i] != wantN || acc[i] != wantAcc {
				t.Errorf("(%d,%d): acc %v n %v, want %v %v", x, y, acc[i], n[i], wantAcc, wantN)
			}
		}
	}
}

func TestMirrorRows(t *testing.T) {
	v := []float32{1, 2, 3, 4, 5, 6}
	mirrorRows(v, 3)
	want := []float32{3, 2, 1, 6, 5, 4}
	for i := range v {
		if v[i] != want[i] {
			t.Fatalf("mirrorRows = %v, want %v", v, want)
		}
	}
}

func TestToCropInvertsFromCrop(t *testing.T) {
	// Different row and column steps, points inside and outside the crop.
	g := cropGeom{CX: 50, CY: 40, SX: 2, SY: 0.5, N: 9}
	if c := g.toCrop(Point{X: 50, Y: 40}); c.X != 4 || c.Y != 4 {
		t.Fatalf("centre maps to %v", c)
	}
	if c := g.toCrop(Point{X: 52, Y: 40.5}); math.Abs(c.X-5) > 1e-12 || math.Abs(c.Y-5) > 1e-12 {
		t.Fatalf("one step right and down maps to %v, want (5, 5)", c)
	}
	for _, p := range []Point{{0, 0}, {8, 3}, {2.5, 7.25}, {-3, 12}} {
		q := g.toCrop(g.fromCrop(p))
		if math.Abs(q.X-p.X) > 1e-9 || math.Abs(q.Y-p.Y) > 1e-9 {
			t.Errorf("toCrop(fromCrop(%v)) = %v", p, q)
		}
	}
}

func TestAverageWarped(t *testing.T) {
	// A peak at a known original-grid point, seen by a crop shifted and
	// scaled by 1.1, lands at that point on the centred crop's grid.
	const h, stride = 40, 2
	g := cropGeom{CX: 100, CY: 80, SX: 0.7, SY: 0.9, N: h * stride}
	gv := g
	gv.CX, gv.SX, gv.SY = g.CX+3.3, g.SX*1.1, g.SY*1.1
	target := Point{X: 104, Y: 77}
	inView := gv.toCrop(target)
	hv := Point{X: (inView.X+0.5)/stride - 0.5, Y: (inView.Y+0.5)/stride - 0.5}
	hm := make([]float32, h*h)
	gaussian(hm, h, h, hv.X, hv.Y, 1, 2)
	acc := make([]float64, h*h)
	n := make([]float64, h*h)
	averageWarped(acc, n, hm, 1, h, stride, g, gv)
	out := make([]float32, h*h)
	for i := range acc {
		if n[i] > 0 {
			out[i] = float32(acc[i] / n[i])
		}
	}
	pts, conf := decodeHeatmaps(out, 1, h, h)
	got := g.fromCrop(heatmapToInput(pts[0], stride))
	// The peak keeps its height up to grid placement: the nearest
	// centred-grid pixel lies within √2/2 px of it, where a Gaussian of σ
	// 2/1.1 px (the view's σ on this grid) is still exp(−0.5/(2·1.82²)) =
	// 0.93 of its top, less a little bilinear smoothing.
	if d := math.Hypot(got.X-target.X, got.Y-target.Y); d > 0.15 || conf[0] < 0.9 {
		t.Fatalf("peak at %v (conf %.3f), want %v (off by %.3f)", got, conf[0], target, d)
	}
	// A smaller crop (scale 0.9) does not cover the grid's corners: they
	// get no contribution, the centre does.
	gv.CX, gv.SX, gv.SY = g.CX, g.SX*0.9, g.SY*0.9
	clear(n)
	averageWarped(acc, n, hm, 1, h, stride, g, gv)
	if n[0] != 0 || n[h-1] != 0 || n[h*(h-1)] != 0 || n[h*h-1] != 0 || n[h/2*h+h/2] != 1 {
		t.Errorf("coverage: corners %v %v %v %v, centre %v", n[0], n[h-1], n[h*(h-1)], n[h*h-1], n[h/2*h+h/2])
	}
}
