package pipeline_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cspine/cspine/phantom"
	"github.com/cspine/cspine/pipeline/decode"
	"github.com/cspine/cspine/pipeline/window"
)

// trainDisplayPy computes the training recipe's display image of each file
// (cspine_train.imaging.display_from_dataset on pydicom.dcmread, exactly as
// datasets.load_phantom does) and writes it as raw little-endian float32,
// row-major, to OUT/<i>.f32 for the i-th file. Before that it derives copies of some files
// with another VOI LUT Function (the generator writes LINEAR and SIGMOID
// only). It prints, per file, the facts of the header that decode.Meta does
// not keep.
//
// stdin: {"out": dir, "files": [path...], "derive": [{"src", "dst", "function"}...]}
const trainDisplayPy = `
import json, os, sys, warnings
import numpy as np
import pydicom
from cspine_train import imaging

np.seterr(over="ignore")       # exp overflow in SIGMOID tails is expected
warnings.simplefilter("ignore")  # pydicom: "Applying a VOI LUT on a float input array ..."
req = json.load(sys.stdin)
for d in req["derive"]:
    ds = pydicom.dcmread(d["src"])
    ds.VOILUTFunction = d["function"]
    ds.save_as(d["dst"])
meta = {}
for i, path in enumerate(req["files"]):
    ds = pydicom.dcmread(path)
    img = imaging.display_from_dataset(ds)
    if img.dtype != np.float32 or img.shape != (int(ds.Rows), int(ds.Columns)):
        raise SystemExit("%s: display_from_dataset gave %s %s" % (path, img.dtype, img.shape))
    with open(os.path.join(req["out"], "%d.f32" % i), "wb") as f:
        f.write(img.astype("<f4").tobytes())
    meta[path] = {"rescale_tags": "RescaleSlope" in ds and "RescaleIntercept" in ds}
json.dump(meta, sys.stdout)
`

// displayVariant is what matters to the display image of one file.
type displayVariant struct {
	file        string
	modality    string // CR or DX
	signed      bool
	bits        int
	rescale     string // "absent", "identity" (tags 1/0), "rescaled"
	slope       float64
	intercept   float64
	photometric string
	voi         string // LINEAR, LINEAR_EXACT, SIGMOID, "VOI LUT" or "auto"
	windows     int    // number of valid windows (the first is used)
	derived     bool   // VOI LUT Function rewritten by the test
}

func (v displayVariant) String() string {
	sign := "unsigned"
	if v.signed {
		sign = "signed"
	}
	s := fmt.Sprintf("%s %d-bit %s, rescale %s", v.modality, v.bits, sign, v.rescale)
	if v.rescale == "rescaled" {
		s += fmt.Sprintf(" %g/%g", v.slope, v.intercept)
	}
	s += ", " + v.photometric + ", " + v.voi
	if v.windows > 1 {
		s += fmt.Sprintf(" (first of %d windows)", v.windows)
	}
	if v.derived {
		s += " (VOI LUT Function rewritten by the test)"
	}
	return s
}

func classifyDisplay(file string, im *decode.Image, rescaleTags bool) displayVariant {
	m := &im.Meta
	v := displayVariant{file: file, modality: m.Modality, signed: m.PixelRepresentation == 1, bits: m.BitsStored,
		slope: m.RescaleSlope, intercept: m.RescaleIntercept, photometric: m.Photometric, windows: len(m.Window)}
	switch {
	case !rescaleTags:
		v.rescale = "absent"
	case m.RescaleSlope == 1 && m.RescaleIntercept == 0:
		v.rescale = "identity"
	default:
		v.rescale = "rescaled"
	}
	switch p := im.VOI(); p.Source {
	case "voi_lut":
		v.voi = "VOI LUT"
	case "window":
		v.voi = p.Window.Function.String()
	default:
		v.voi = p.Source
	}
	return v
}

// TestTrainingDisplayParity guards against train/serve skew in the display
// image: the [0,1] image the training recipe learns from
// (training/cspine_train/imaging.py display_from_dataset, through pydicom)
// must equal, pixel by pixel, the one the pipeline letterboxes
// (decode.File, then (*decode.Image).DisplayTo as pipeline.Analyzer calls
// it), for every header variant the phantom generator writes. Commit
// fa8d06e fixed such a skew (windowed files with a rescale were shifted and
// clipped in training); this test fails on the code before it.
func TestTrainingDisplayParity(t *testing.T) {
	if testing.Short() {
		t.Skip("pydicom interop skipped in -short mode")
	}
	t.Parallel()
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("%s (with python3-pydicom and python3-numpy, see scripts/setup.sh) not found: %v", python, err)
	}
	trainingDir, err := filepath.Abs(filepath.Join("..", "training"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(trainingDir, "cspine_train", "imaging.py")); err != nil {
		t.Fatalf("training recipe not found: %v", err)
	}
	if out, err := exec.Command(python, "-c", "import pydicom, numpy").CombinedOutput(); err != nil {
		t.Fatalf("python3-pydicom and python3-numpy are needed (see scripts/setup.sh): %v\n%s", err, out)
	}

	// Phantom runs, chosen (by scanning seeds with these exact options: the
	// image size changes what the header sampler draws) so that together
	// they hold every variant of the coverage table below. 192×160 keeps
	// the whole test to a few seconds; every pixel is compared.
	runs := []struct {
		seed  uint64
		count int
	}{
		{seed: 5, count: 59}, // everything but a signed SIGMOID
		{seed: 31, count: 5}, // img00004: signed 16-bit CR with SIGMOID
	}
	dir := t.TempDir()
	var files []string
	for _, r := range runs {
		out := filepath.Join(dir, fmt.Sprintf("seed%d", r.seed))
		err := phantom.Generate(context.Background(), phantom.Options{Count: r.count, Seed: r.seed, OutDir: out,
			Rows: 192, Cols: 160, Obscuration: phantom.ObscureNone, Workers: 2})
		if err != nil {
			t.Fatalf("generate phantoms (seed %d): %v", r.seed, err)
		}
		for i := range r.count {
			files = append(files, filepath.Join(out, fmt.Sprintf("img%05d.dcm", i)))
		}
	}

	// LINEAR_EXACT is not written by the generator: derive it from the
	// first signed and the first rescaled unsigned LINEAR-window file.
	type derivation struct {
		Src      string `json:"src"`
		Dst      string `json:"dst"`
		Function string `json:"function"`
	}
	var derive []derivation
	wantDerive := []struct {
		name string
		ok   func(m *decode.Meta) bool
		done bool
	}{
		{name: "signed", ok: func(m *decode.Meta) bool { return m.PixelRepresentation == 1 }},
		{name: "rescaled", ok: func(m *decode.Meta) bool {
			return m.PixelRepresentation == 0 && (m.RescaleSlope != 1 || m.RescaleIntercept != 0)
		}},
	}
	for _, f := range files {
		im, err := decode.File(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if im.VOI().Source != "window" || im.Meta.Window[0].Function != window.Linear {
			continue
		}
		for i := range wantDerive {
			if w := &wantDerive[i]; !w.done && w.ok(&im.Meta) {
				dst := filepath.Join(dir, "linear_exact_"+w.name+".dcm")
				derive = append(derive, derivation{Src: f, Dst: dst, Function: "LINEAR_EXACT"})
				w.done = true
			}
		}
	}
	for _, w := range wantDerive {
		if !w.done {
			t.Fatalf("no %s LINEAR window file to derive LINEAR_EXACT from", w.name)
		}
	}
	derived := map[string]bool{}
	for _, d := range derive {
		files = append(files, d.Dst)
		derived[d.Dst] = true
	}

	// The training recipe's display images.
	refDir := t.TempDir()
	req, err := json.Marshal(map[string]any{"out": refDir, "files": files, "derive": derive})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", trainDisplayPy)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+trainingDir)
	cmd.Stdin = bytes.NewReader(req)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("training display (%s -c, PYTHONPATH=%s): %v\n%s", python, trainingDir, err, stderr.String())
	}
	var meta map[string]struct {
		RescaleTags bool `json:"rescale_tags"`
	}
	if err := json.Unmarshal(out, &meta); err != nil {
		t.Fatalf("training display output: %v\n%s", err, out)
	}

	// Tolerances. Windows (LINEAR, LINEAR_EXACT, SIGMOID): both sides
	// evaluate the same formula in float64 on exactly representable
	// modality values (integers and halves far below 2^24) and round once
	// to float32, so they differ by at most a float32 half-ulp each
	// (3e-8 near 1); 1e-6 leaves room for the different operation order
	// (pydicom scales to the output range and back). A VOI LUT maps to
	// discrete entries, and the two sides index it differently for
	// non-integer modality values (slope 0.5): the pipeline rounds to the
	// nearest entry (PS3.3 C.11.2.1.1), pydicom truncates the float input;
	// so one step between adjacent entries is allowed, computed per file.
	// The automatic window: the pipeline takes the 0.5th/99.5th percentiles
	// as edges of a 4096-bin histogram between the extreme values (window
	// package), numpy interpolates between the two order statistics around
	// each rank; so each end of the window may differ by one bin plus one
	// step between adjacent modality values (|slope|), relative to the
	// window's width.
	const roundTol = 1e-6
	tolerance := func(v displayVariant, im *decode.Image) (float64, string) {
		p := im.VOI()
		switch p.Source {
		case "voi_lut":
			lut := p.LUT
			step := 0
			for i := 1; i < len(lut.Data); i++ {
				step = max(step, int(math.Abs(float64(lut.Data[i])-float64(lut.Data[i-1]))))
			}
			return float64(step)/float64(uint32(1)<<lut.Bits-1) + roundTol, "one VOI LUT step"
		case "auto":
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, x := range im.Modality {
				lo, hi = math.Min(lo, float64(x)), math.Max(hi, float64(x))
			}
			return 2*((hi-lo)/4096+math.Abs(v.slope))/p.Window.Width + roundTol, "a histogram bin and a modality step at each end of the automatic window"
		}
		return roundTol, "float32 rounding"
	}

	var variants []displayVariant
	worst := map[string]float64{}
	for i, f := range files {
		name, _ := filepath.Rel(dir, f)
		m, ok := meta[f]
		if !ok {
			t.Fatalf("%s: no output from the training display", name)
		}
		im, err := decode.File(f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		v := classifyDisplay(name, im, m.RescaleTags)
		v.derived = derived[f]
		variants = append(variants, v)
		got := im.Display() // what pipeline.Analyzer letterboxes (DisplayTo)
		raw, err := os.ReadFile(filepath.Join(refDir, fmt.Sprintf("%d.f32", i)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(raw) != 4*len(got) {
			t.Errorf("%s (%v): training display has %d values, pipeline %d×%d", name, v, len(raw)/4, im.Rows, im.Cols)
			continue
		}
		maxDiff, at := 0.0, 0
		for i, g := range got {
			want := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			if d := math.Abs(float64(g) - float64(want)); d > maxDiff || d != d {
				maxDiff, at = d, i
				if d != d {
					maxDiff = math.Inf(1)
					break
				}
			}
		}
		kind := v.voi
		worst[kind] = math.Max(worst[kind], maxDiff)
		tol, why := tolerance(v, im)
		if maxDiff > roundTol && maxDiff <= tol {
			t.Logf("%s (%v): max |pipeline − training| = %.3g, within %.3g (%s)", name, v, maxDiff, tol, why)
		}
		if maxDiff > tol {
			want := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*at:]))
			t.Errorf("%s (%v): max |pipeline − training| = %.6g > %.3g (%s); at row %d col %d (decoded modality value %g): pipeline %.6g, training %.6g",
				name, v, maxDiff, tol, why, at/im.Cols, at%im.Cols, im.Modality[at], got[at], want)
		}
	}
	kinds := make([]string, 0, len(worst))
	for k := range worst {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		t.Logf("%s: largest difference %.3g", k, worst[k])
	}

	// Every variant must have been compared, so that the test cannot pass
	// on fewer (a change to the generator's sampling shows up here).
	windowed := func(v displayVariant) bool {
		return v.voi == "LINEAR" || v.voi == "LINEAR_EXACT" || v.voi == "SIGMOID"
	}
	coverage := []struct {
		name string
		has  func(v displayVariant) bool
	}{
		{"unsigned", func(v displayVariant) bool { return !v.signed }},
		{"signed", func(v displayVariant) bool { return v.signed }},
		{"10 bits stored", func(v displayVariant) bool { return v.bits == 10 }},
		{"12 bits stored", func(v displayVariant) bool { return v.bits == 12 }},
		{"14 bits stored", func(v displayVariant) bool { return v.bits == 14 }},
		{"15 bits stored", func(v displayVariant) bool { return v.bits == 15 }},
		{"16 bits stored", func(v displayVariant) bool { return v.bits == 16 }},
		{"no Rescale Slope/Intercept", func(v displayVariant) bool { return v.rescale == "absent" }},
		{"Rescale Slope/Intercept 1/0", func(v displayVariant) bool { return v.rescale == "identity" }},
		{"rescaled", func(v displayVariant) bool { return v.rescale == "rescaled" }},
		{"slope 0.5 (half-integer modality values)", func(v displayVariant) bool { return v.slope == 0.5 }},
		{"slope 2", func(v displayVariant) bool { return v.slope == 2 }},
		{"MONOCHROME1", func(v displayVariant) bool { return v.photometric == "MONOCHROME1" }},
		{"MONOCHROME2", func(v displayVariant) bool { return v.photometric == "MONOCHROME2" }},
		{"LINEAR window", func(v displayVariant) bool { return v.voi == "LINEAR" }},
		{"first of two windows", func(v displayVariant) bool { return windowed(v) && v.windows > 1 }},
		{"SIGMOID window", func(v displayVariant) bool { return v.voi == "SIGMOID" }},
		{"LINEAR_EXACT window", func(v displayVariant) bool { return v.voi == "LINEAR_EXACT" }},
		{"VOI LUT Sequence", func(v displayVariant) bool { return v.voi == "VOI LUT" }},
		{"automatic window", func(v displayVariant) bool { return v.voi == "auto" }},
		{"signed LINEAR window", func(v displayVariant) bool { return v.signed && v.voi == "LINEAR" }},
		{"signed SIGMOID window", func(v displayVariant) bool { return v.signed && v.voi == "SIGMOID" }},
		{"signed LINEAR_EXACT window", func(v displayVariant) bool { return v.signed && v.voi == "LINEAR_EXACT" }},
		{"signed VOI LUT", func(v displayVariant) bool { return v.signed && v.voi == "VOI LUT" }},
		{"signed MONOCHROME1 window", func(v displayVariant) bool { return v.signed && windowed(v) && v.photometric == "MONOCHROME1" }},
		{"rescaled unsigned LINEAR window", func(v displayVariant) bool { return !v.signed && v.rescale == "rescaled" && v.voi == "LINEAR" }},
		{"rescaled unsigned SIGMOID window", func(v displayVariant) bool { return !v.signed && v.rescale == "rescaled" && v.voi == "SIGMOID" }},
		{"rescaled unsigned LINEAR_EXACT window", func(v displayVariant) bool {
			return !v.signed && v.rescale == "rescaled" && v.voi == "LINEAR_EXACT"
		}},
		{"rescaled VOI LUT", func(v displayVariant) bool { return v.rescale == "rescaled" && v.voi == "VOI LUT" }},
		{"slope 0.5 VOI LUT", func(v displayVariant) bool { return v.slope == 0.5 && v.voi == "VOI LUT" }},
		{"rescaled automatic window", func(v displayVariant) bool { return v.rescale == "rescaled" && v.voi == "auto" }},
		{"MONOCHROME1 LINEAR window", func(v displayVariant) bool { return v.photometric == "MONOCHROME1" && v.voi == "LINEAR" }},
		{"MONOCHROME1 SIGMOID window", func(v displayVariant) bool { return v.photometric == "MONOCHROME1" && v.voi == "SIGMOID" }},
		{"MONOCHROME1 VOI LUT", func(v displayVariant) bool { return v.photometric == "MONOCHROME1" && v.voi == "VOI LUT" }},
		{"MONOCHROME1 automatic window", func(v displayVariant) bool { return v.photometric == "MONOCHROME1" && v.voi == "auto" }},
		{"MONOCHROME2 automatic window", func(v displayVariant) bool { return v.photometric == "MONOCHROME2" && v.voi == "auto" }},
	}
	for _, c := range coverage {
		var n []string
		for _, v := range variants {
			if c.has(v) {
				n = append(n, v.file)
			}
		}
		if len(n) == 0 {
			t.Errorf("variant %q not covered by the %d files compared", c.name, len(variants))
		} else if testing.Verbose() {
			t.Logf("%-40s %2d files, e.g. %s", c.name, len(n), strings.Join(n[:min(2, len(n))], ", "))
		}
	}
}
