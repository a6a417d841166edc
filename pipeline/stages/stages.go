// Package stages runs the hierarchical landmark models of Kang et al. 2026
// on ONNX Runtime:
//
//  1. global: the whole display image, letterboxed to a square, gives 23
//     landmark heatmaps, decoded with sub-pixel refinement and a confidence
//     each;
//  2. C7 locator: an MLP from the C2–C6 landmarks of stage 1 to the C7
//     region (centre and size), which finds a C7 hidden by the shoulders;
//  3. specialists: crops around C2 and around the C7 region, cut from the
//     original-resolution image at a fixed physical size (or relative to the
//     vertebra size when the spacing is unknown), refined by a C2 and a C7
//     model; the C7 model also estimates C7 obscuration.
//
// Merging and measuring (stage 4) belong to package pipeline. Models are
// described by a manifest (see Manifest) whose sha256 sums are verified at
// Load. A loaded Models is safe for concurrent use.
package stages

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/cspine/cspine/pipeline/ort"
)

// EnvModelDir names the model directory when Config.ModelDir is empty.
const EnvModelDir = "CSPINE_MODELS"

// DefaultModelDir is the reference model directory, searched upward from
// the working directory and the executable's directory.
const DefaultModelDir = "refmodels"

// Config configures Load.
type Config struct {
	// ModelDir holds manifest.json and the ONNX files; empty: $CSPINE_MODELS,
	// then DefaultModelDir.
	ModelDir string
	// ORTLibrary is the ONNX Runtime shared library (see package ort for
	// the default search).
	ORTLibrary string
	// Threads is the intra-op thread count of each model (0: ONNX Runtime's
	// default).
	Threads int
	// PreferCUDA tries the CUDA execution provider first.
	PreferCUDA bool
	// Logger receives the provider line; nil: slog.Default().
	Logger *slog.Logger
}

// Info identifies the loaded models.
type Info struct {
	Name, Version string
	// Provider is the execution provider: "cuda" or "cpu".
	Provider string
	// TrainedOn is the manifest's training provenance.
	TrainedOn string
	// ClinicalUse is the manifest's statement on clinical use.
	ClinicalUse string
	// Dir is the model directory.
	Dir string
	// C7Prior is the content of the model set's C7 shape prior file
	// (manifest stage c7_prior, sha256 verified at Load; parsed by package
	// pipeline), nil when the set has none.
	C7Prior []byte
}

// Input is one image for Run.
type Input struct {
	Rows, Cols int
	// Pix is the display image in [0,1] on the original grid, row-major.
	Pix []float32
	// SpacingMM is the pixel spacing (row, col) in mm; 0,0 when unknown.
	SpacingMM [2]float64
}

// Point is a position in original-grid pixels (X column, Y row).
type Point struct{ X, Y float64 }

// Region is a rectangle centred on (CX, CY), W×H, in original-grid pixels.
type Region struct{ CX, CY, W, H float64 }

// Output is what the stages found.
type Output struct {
	// Global are the stage-1 landmarks in the channel order of
	// result.LandmarkNames, with their confidences.
	Global     [23]Point
	GlobalConf [23]float64
	// C7Region is the stage-2 C7 region (zero in single-stage mode).
	C7Region Region
	// C2 are the refined C2_centroid, C2_inf_ant, C2_inf_post; C7 the refined
	// C7 sup_ant, sup_post, inf_ant, inf_post. In single-stage mode they hold
	// the global values and Refined is false.
	C2     [3]Point
	C2Conf [3]float64
	C7     [4]Point
	C7Conf [4]float64
	// C7Obscuration is P(none), P(partial), P(complete) from the C7
	// specialist (zero in single-stage mode).
	C7Obscuration [3]float64
	// Refined is true when stages 2 and 3 ran.
	Refined bool
	// TimingsMS: "global", "c7_locator", "refine" (milliseconds).
	TimingsMS map[string]float64
	// C2Crop and C7Crop are the specialist crops used (original grid).
	C2Crop, C7Crop Region
	// C2Peaks and C7Peaks are the specialists' candidate positions per
	// landmark (original grid), strongest first: the first is C2[i] or C7[i],
	// the others are further local maxima of the same heatmap (see
	// PeaksPerLandmark). Empty in single-stage mode.
	C2Peaks [3][]Peak
	C7Peaks [4][]Peak
	// C2Runs and C7Runs are the landmarks each specialist crop (centred,
	// then shifted: see ShiftHeatmapPx) gives on its own, before averaging:
	// their spread measures how much the result depends on the crop.
	C2Runs [][]Point
	C7Runs [][]Point
}

// PeaksPerLandmark, PeakMinSeparation and PeakMinConf choose the specialist
// candidates kept: at most 4 local maxima per landmark heatmap, 4 heatmap
// pixels apart (a few millimetres; neighbouring vertebrae's corners are a
// vertebra apart), of value at least 0.05.
const (
	PeaksPerLandmark  = 4
	PeakMinSeparation = 4
	PeakMinConf       = 0.05
)

// Models is a loaded model set.
type Models struct {
	man                 *Manifest
	prior               []byte // verified c7_prior file content, nil without one
	dir                 string
	rt                  *ort.Runtime
	global, loc, c2, c7 *ort.Session
	globalN, c2N, c7N   int // input sizes
	globalH, c2H, c7H   int // heatmap sizes
}

// ErrBadInput is returned by Run for an input it cannot process.
var ErrBadInput = errors.New("stages: bad input")

// ResolveModelDir returns the model directory Load would use.
func ResolveModelDir(configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	if d := os.Getenv(EnvModelDir); d != "" {
		return d, nil
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, dir := range starts {
		for range 8 {
			p := filepath.Join(dir, DefaultModelDir)
			if _, err := os.Stat(filepath.Join(p, ManifestFile)); err == nil {
				return p, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("stages: no model directory: set %s or pass one (looked for %s/%s upward)", EnvModelDir, DefaultModelDir, ManifestFile)
}

// Load reads the manifest, verifies every model's sha256 and creates the
// ONNX Runtime sessions once.
func Load(cfg Config) (*Models, error) {
	dir, err := ResolveModelDir(cfg.ModelDir)
	if err != nil {
		return nil, err
	}
	man, err := ReadManifest(dir)
	if err != nil {
		return nil, fmt.Errorf("stages: %w", err)
	}
	rt, err := ort.Open(ort.Config{Library: cfg.ORTLibrary, Threads: cfg.Threads, PreferCUDA: cfg.PreferCUDA, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("stages: %w", err)
	}
	m := &Models{man: man, dir: dir, rt: rt}
	if p := man.Stages.C7Prior; p != nil {
		b, err := ReadVerified(filepath.Join(dir, p.File), p.SHA256)
		if err != nil {
			rt.Close()
			return nil, fmt.Errorf("stages: c7_prior: %w", err)
		}
		m.prior = b
	}
	open := func(s *StageSpec) (*ort.Session, error) {
		return rt.NewSession(filepath.Join(dir, s.File), ios(s.Inputs), ios(s.Outputs))
	}
	st := &man.Stages
	for _, x := range []struct {
		dst  **ort.Session
		spec *StageSpec
	}{{&m.global, &st.Global}, {&m.loc, &st.C7Locator}, {&m.c2, &st.C2}, {&m.c7, &st.C7}} {
		s, err := open(x.spec)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("stages: %w", err)
		}
		*x.dst = s
	}
	m.globalN, m.globalH = st.Global.InputSize, st.Global.InputSize/st.Global.Stride
	m.c2N, m.c2H = st.C2.InputSize, st.C2.InputSize/st.C2.Stride
	m.c7N, m.c7H = st.C7.InputSize, st.C7.InputSize/st.C7.Stride
	return m, nil
}

func ios(ts []TensorSpec) []ort.IO {
	out := make([]ort.IO, len(ts))
	for i, t := range ts {
		out[i] = ort.IO{Name: t.Name, Shape: t.Shape}
	}
	return out
}

// Close releases the sessions and the runtime.
func (m *Models) Close() error {
	var errs []error
	for _, s := range []*ort.Session{m.global, m.loc, m.c2, m.c7} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	if m.rt != nil {
		errs = append(errs, m.rt.Close())
		m.rt = nil
	}
	return errors.Join(errs...)
}

// Info identifies the models and the execution provider.
func (m *Models) Info() Info {
	return Info{Name: m.man.Name, Version: m.man.Version, Provider: m.rt.Provider(),
		TrainedOn: m.man.TrainedOn, ClinicalUse: m.man.ClinicalUse, Dir: m.dir, C7Prior: m.prior}
}

// Manifest returns the loaded manifest.
func (m *Models) Manifest() *Manifest { return m.man }

func since(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// Run finds the landmarks of one image. With hierarchical false only stage
// 1 runs (the single-stage baseline). Same input, same output, bit for bit.
func (m *Models) Run(ctx context.Context, in Input, hierarchical bool) (*Output, error) {
	if in.Rows < 16 || in.Cols < 16 || len(in.Pix) != in.Rows*in.Cols {
		return nil, fmt.Errorf("%w: %d×%d image with %d pixels", ErrBadInput, in.Cols, in.Rows, len(in.Pix))
	}
	sp := in.SpacingMM
	spacingKnown := sp[0] > 0 && sp[1] > 0 && !math.IsInf(sp[0], 0) && !math.IsInf(sp[1], 0)
	out := &Output{TimingsMS: map[string]float64{}}

	// Stage 1: global.
	t := time.Now()
	lb := newLetterbox(in.Rows, in.Cols, m.globalN)
	img := make([]float32, m.globalN*m.globalN)
	lb.letterbox(in.Pix, img)
	ghm, err := m.globalHeatmaps(ctx, img)
	if err != nil {
		return nil, fmt.Errorf("stages: global: %w", err)
	}
	hp, conf := decodeHeatmaps(ghm, 23, m.globalH, m.globalH)
	var lbPts [23]Point
	for i := range hp {
		lbPts[i] = heatmapToInput(hp[i], m.man.Stages.Global.Stride)
		out.Global[i] = lb.fromLetterbox(lbPts[i])
		out.GlobalConf[i] = conf[i]
	}
	out.TimingsMS["global"] = since(t)
	if !hierarchical {
		copy(out.C2[:], out.Global[:3])
		copy(out.C2Conf[:], out.GlobalConf[:3])
		copy(out.C7[:], out.Global[19:])
		copy(out.C7Conf[:], out.GlobalConf[19:])
		return out, nil
	}

	// Stage 2: C7 locator.
	t = time.Now()
	loc := &m.man.Stages.C7Locator
	feat := make([]float32, 19*3)
	S := float64(m.globalN)
	for i := range 19 {
		if i == 0 || out.GlobalConf[i] >= loc.PresenceThreshold {
			feat[3*i] = float32(lbPts[i].X / S)
			feat[3*i+1] = float32(lbPts[i].Y / S)
			feat[3*i+2] = 1
		}
	}
	res, err := m.loc.Run(ctx, ort.Tensor{Shape: []int64{1, 57}, Data: feat})
	if err != nil {
		return nil, fmt.Errorf("stages: c7 locator: %w", err)
	}
	r := res[0].Data
	c := lb.fromLetterbox(Point{X: float64(r[0]) * S, Y: float64(r[1]) * S})
	out.C7Region = Region{CX: c.X, CY: c.Y, W: float64(r[2]) * S / lb.scale, H: float64(r[3]) * S / lb.scale}
	out.TimingsMS["c7_locator"] = since(t)

	// Stage 3: specialists on crops from the original grid.
	t = time.Now()
	vs := vertebraSize(&out.Global)
	if vs <= 0 {
		vs = float64(max(in.Rows, in.Cols)) / 20
	}
	step := func(s *StageSpec) (float64, float64) {
		n := float64(s.InputSize)
		if spacingKnown {
			return s.SideMM / n / sp[1], s.SideMM / n / sp[0]
		}
		v := s.FallbackVertebraFactor * vs / n
		return v, v
	}
	c2s := &m.man.Stages.C2
	c2c := Point{X: (out.Global[0].X + out.Global[1].X + out.Global[2].X) / 3, Y: (out.Global[0].Y + out.Global[1].Y + out.Global[2].Y) / 3}
	sx, sy := step(c2s)
	c2g := cropGeom{CX: c2c.X, CY: c2c.Y, SX: sx, SY: sy, N: c2s.InputSize}
	pts, cf, _, peaks, runs, err := m.specialist(ctx, m.c2, c2g, in, 3, m.c2H, c2s.Stride)
	if err != nil {
		return nil, fmt.Errorf("stages: c2 specialist: %w", err)
	}
	out.C2Runs = runs
	copy(out.C2Peaks[:], peaks)
	copy(out.C2[:], pts)
	copy(out.C2Conf[:], cf)
	out.C2Crop = Region{CX: c2g.CX, CY: c2g.CY, W: sx * float64(c2g.N), H: sy * float64(c2g.N)}

	c7s := &m.man.Stages.C7
	sx, sy = step(c7s)
	c7g := cropGeom{CX: out.C7Region.CX, CY: out.C7Region.CY, SX: sx, SY: sy, N: c7s.InputSize}
	pts, cf, extra, peaks, runs, err := m.specialist(ctx, m.c7, c7g, in, 4, m.c7H, c7s.Stride)
	if err != nil {
		return nil, fmt.Errorf("stages: c7 specialist: %w", err)
	}
	out.C7Runs = runs
	copy(out.C7Peaks[:], peaks)
	copy(out.C7[:], pts)
	copy(out.C7Conf[:], cf)
	for i := range 3 {
		out.C7Obscuration[i] = float64(extra[i])
	}
	out.C7Crop = Region{CX: c7g.CX, CY: c7g.CY, W: sx * float64(c7g.N), H: sy * float64(c7g.N)}
	out.TimingsMS["refine"] = since(t)
	out.Refined = true
	return out, nil
}

// globalHeatmaps runs the global model on every view of globalViews of the
// letterboxed image and returns the average of the heatmaps, each mapped
// back onto the unshifted, unmirrored grid.
func (m *Models) globalHeatmaps(ctx context.Context, img []float32) ([]float32, error) {
	n, h := m.globalN, m.globalH
	stride := n / h
	shape := []int64{1, 1, int64(n), int64(n)}
	acc := make([]float64, 23*h*h)
	cnt := make([]float64, h*h)
	inputs := make([][]float32, len(globalViews))
	for vi, v := range globalViews {
		// Shift the input by (kx, ky) heatmap pixels, mirrored or not.
		in := make([]float32, len(img))
		for y := range n {
			sy := y - v.ky*stride
			if sy < 0 || sy >= n {
				continue
			}
			for x := range n {
				sx := x - v.kx*stride
				if v.mirror {
					sx = n - 1 - x - v.kx*stride
				}
				if sx < 0 || sx >= n {
					continue
				}
				in[y*n+x] = img[sy*n+sx]
			}
		}
		inputs[vi] = in
	}
	outs := make([][]ort.Tensor, len(globalViews))
	errs := make([]error, len(globalViews))
	parallel(len(globalViews), len(globalViews), func(vi int) { // all at once (there are two)
		outs[vi], errs[vi] = m.global.Run(ctx, ort.Tensor{Shape: shape, Data: inputs[vi]})
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for vi, v := range globalViews {
		hm := outs[vi][0].Data
		if v.mirror {
			mirrorRows(hm, h)
		}
		averageShifted(acc, cnt, hm, 23, h, -v.kx, -v.ky)
	}
	out := make([]float32, len(acc))
	for i, a := range acc {
		if c := cnt[i%(h*h)]; c > 0 {
			out[i] = float32(a / c)
		}
	}
	return out, nil
}

// globalViews are the inputs the global model sees, as shifts in heatmap
// pixels and mirroring: the letterboxed image and its mirror image (a
// lateral radiograph facing the other way); the heatmaps are mapped back
// and averaged (test-time augmentation). Shifted views were tried and did
// not help on the validation phantoms.
var globalViews = []struct {
	kx, ky int
	mirror bool
}{{0, 0, false}, {0, 0, true}}

// mirrorRows flips every row of the n-wide planes in v, in place.
func mirrorRows(v []float32, n int) {
	for r := 0; r+n <= len(v); r += n {
		slices.Reverse(v[r : r+n])
	}
}

// ShiftHeatmapPx is the offset, in heatmap pixels, of the two shifted
// crops each specialist sees besides the centred one (down-right and
// up-left); see specialistViews.
const ShiftHeatmapPx = 6

// specialistView is one crop a specialist sees: offset by (kx, ky) heatmap
// pixels, mirrored, and scaled by scale (crop side over the nominal side;
// 0 means 1).
type specialistView struct {
	kx, ky int
	mirror bool
	scale  float64
}

// scaled: the view's crop has another size than the centred one, so its
// heatmaps are resampled onto the centred grid (averageWarped) rather than
// shifted by whole pixels (averageShifted).
func (v specialistView) scaled() bool { return v.scale != 0 && v.scale != 1 }

// geom is the view's crop geometry for the centred crop g of a specialist
// with the given heatmap stride.
func (v specialistView) geom(g cropGeom, stride int) cropGeom {
	gs := g
	gs.CX += float64(v.kx*stride) * g.SX
	gs.CY += float64(v.ky*stride) * g.SY
	if v.scaled() {
		gs.SX *= v.scale
		gs.SY *= v.scale
	}
	return gs
}

// parallel calls fn(0) … fn(n−1) on up to workers goroutines and returns
// when all have returned. fn must write only to what index i owns.
func parallel(n, workers int, fn func(i int)) {
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range max(1, min(workers, n)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// specialistViews are the crops each specialist sees (test-time
// augmentation), centred first: the centred crop, two shifted ones and two
// scaled by ±10%, each also mirrored (the labels are anatomical, so a
// mirrored crop shows a patient facing the other way; its heatmaps are
// mirrored back). Their heatmaps are mapped onto the centred crop's grid
// and averaged before decoding, so that a landmark depends less on where
// exactly and at what size the crop was cut; the spread of the views'
// endplate slopes is a review feature. All of it lies inside what the
// specialists were trained on (±12% scale, flips, shifts; training/). On
// the validation phantoms (seed 900004) the ten views lowered the Cobb MAE
// from 1.85° (three shifted crops) to 1.74°; rotated views (±3°, ±5°),
// tried in place of or beside the scaled ones, did no better
// (docs/evaluation.md) and are not implemented.
var specialistViews = func() []specialistView {
	base := []specialistView{{}, {kx: ShiftHeatmapPx, ky: ShiftHeatmapPx}, {kx: -ShiftHeatmapPx, ky: -ShiftHeatmapPx}, {scale: 0.9}, {scale: 1.1}}
	v := append([]specialistView(nil), base...)
	for _, b := range base {
		b.mirror = true
		v = append(v, b)
	}
	return v
}()

// averageShifted adds heatmap hm (channels×h×h) of a crop shifted by (kx,
// ky) heatmap pixels into acc on the centred grid and counts the
// contributions per pixel in n.
func averageShifted(acc, n []float64, hm []float32, channels, h, kx, ky int) {
	for c := range channels {
		for v := range h {
			y := v + ky
			if y < 0 || y >= h {
				continue
			}
			for u := range h {
				x := u + kx
				if x < 0 || x >= h {
					continue
				}
				acc[(c*h+y)*h+x] += float64(hm[(c*h+v)*h+u])
				if c == 0 {
					n[y*h+x]++
				}
			}
		}
	}
}

// viewCrops returns the crop geometry of every view of specialistViews
// and its pixels (unmirrored). Views that differ only by mirroring share one
// crop (the same slice), and the distinct crops are cut in parallel, each
// into its own buffer.
func viewCrops(g cropGeom, in Input, stride int) ([]cropGeom, [][]float32) {
	geoms := make([]cropGeom, len(specialistViews))
	byView := map[specialistView][]float32{}
	var distinct []specialistView
	for i, v := range specialistViews {
		geoms[i] = v.geom(g, stride)
		v.mirror = false
		if _, ok := byView[v]; !ok {
			byView[v] = make([]float32, g.N*g.N)
			distinct = append(distinct, v)
		}
	}
	parallel(len(distinct), runtime.GOMAXPROCS(0), func(d int) {
		v := distinct[d]
		v.geom(g, stride).crop(in.Pix, in.Rows, in.Cols, byView[v])
	})
	crops := make([][]float32, len(specialistViews))
	for i, v := range specialistViews {
		v.mirror = false
		crops[i] = byView[v]
	}
	return geoms, crops
}

// ViewConcurrency is how many specialist views run through ONNX Runtime at
// once (Session.Run is safe for concurrent use). Two on this project's
// 2-core machine: the small specialists keep one core each busier than
// one run on two intra-op threads does.
var ViewConcurrency = 2

// runViews runs session s on the crop of every view of specialistViews
// (mirrored where the view says; ONNX Runtime only reads its inputs, so an
// unmirrored crop is passed as it is), up to ViewConcurrency at a time, and
// returns the outputs in view order.
func (m *Models) runViews(ctx context.Context, s *ort.Session, n int, crops [][]float32) ([][]ort.Tensor, error) {
	outs := make([][]ort.Tensor, len(specialistViews))
	errs := make([]error, len(specialistViews))
	parallel(len(specialistViews), ViewConcurrency, func(i int) {
		img := crops[i]
		if specialistViews[i].mirror {
			img = slices.Clone(img)
			mirrorRows(img, n)
		}
		outs[i], errs[i] = s.Run(ctx, ort.Tensor{Shape: []int64{1, 1, int64(n), int64(n)}, Data: img})
	})
	return outs, errors.Join(errs...)
}

// averageWarped adds heatmap hm (channels×h×h) of crop gv, resampled
// bilinearly onto the heatmap grid of crop g, into acc and counts the
// contributions per pixel in n (pixels that fall outside gv's heatmap get
// none).
func averageWarped(acc, n []float64, hm []float32, channels, h, stride int, g, gv cropGeom) {
	s := float64(stride)
	for y := range h {
		for x := range h {
			p := gv.toCrop(g.fromCrop(heatmapToInput(Point{X: float64(x), Y: float64(y)}, stride)))
			u, v := (p.X+0.5)/s-0.5, (p.Y+0.5)/s-0.5
			if !(u >= 0 && v >= 0 && u <= float64(h-1) && v <= float64(h-1)) {
				continue
			}
			for c := range channels {
				acc[(c*h+y)*h+x] += bilinear(hm[c*h*h:(c+1)*h*h], h, h, u, v)
			}
			n[y*h+x]++
		}
	}
}

// specialist crops, runs a specialist on every view of specialistViews,
// averages the heatmaps on the centred crop's grid and maps the landmarks
// back. extra is the second
// output (C7 obscuration), averaged, if any; peaks are the candidate
// positions per landmark (the first is the landmark itself); runs are the
// landmarks of each crop on its own.
func (m *Models) specialist(ctx context.Context, s *ort.Session, g cropGeom, in Input, channels, h, stride int) ([]Point, []float64, []float32, [][]Peak, [][]Point, error) {
	if !(g.SX > 0) || !(g.SY > 0) || math.IsInf(g.SX, 0) || math.IsInf(g.SY, 0) || math.IsNaN(g.CX) || math.IsNaN(g.CY) {
		return nil, nil, nil, nil, nil, fmt.Errorf("%w: crop geometry %+v", ErrBadInput, g)
	}
	var runs [][]Point
	acc := make([]float64, channels*h*h)
	cnt := make([]float64, h*h)
	var extra []float32
	var extraAcc []float64
	geoms, crops := viewCrops(g, in, stride)
	outs, err := m.runViews(ctx, s, g.N, crops)
	if err != nil {
		return nil, nil, nil, nil, nil, err
	}
	for vi, v := range specialistViews {
		gs := geoms[vi]
		res := outs[vi]
		shm := res[0].Data
		if v.mirror {
			// mirrored back onto the crop's grid: the labels are anatomical,
			// so no channel changes (see training/cspine_train/augment.py)
			mirrorRows(shm, h)
		}
		if v.scaled() {
			averageWarped(acc, cnt, shm, channels, h, stride, g, gs)
		} else {
			averageShifted(acc, cnt, shm, channels, h, v.kx, v.ky)
		}
		rp, _ := decodeHeatmaps(shm, channels, h, h)
		run := make([]Point, channels)
		for i, p := range rp {
			run[i] = gs.fromCrop(heatmapToInput(p, stride))
		}
		runs = append(runs, run)
		if len(res) > 1 {
			if extraAcc == nil {
				extraAcc = make([]float64, len(res[1].Data))
			}
			for i, v := range res[1].Data {
				extraAcc[i] += float64(v)
			}
		}
	}
	hm := make([]float32, len(acc))
	for i, v := range acc {
		if n := cnt[i%(h*h)]; n > 0 {
			hm[i] = float32(v / n)
		}
	}
	if extraAcc != nil {
		extra = make([]float32, len(extraAcc))
		for i, v := range extraAcc {
			extra[i] = float32(v / float64(len(specialistViews)))
		}
	}
	hp, conf := decodeHeatmaps(hm, channels, h, h)
	pts := make([]Point, channels)
	for i, p := range hp {
		pts[i] = g.fromCrop(heatmapToInput(p, stride))
	}
	peaks := decodePeaks(hm, channels, h, h, PeaksPerLandmark, PeakMinSeparation, PeakMinConf)
	for _, ps := range peaks {
		for j := range ps {
			ps[j].Point = g.fromCrop(heatmapToInput(ps[j].Point, stride))
		}
	}
	return pts, conf, extra, peaks, runs, nil
}
