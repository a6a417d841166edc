package decode

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestPydicomReference compares Bits Stored extraction, sign, the Modality
// LUT stage and the VOI functions with pydicom (pixel_array,
// apply_modality_lut, apply_windowing, apply_voi) on native objects written
// here. For MONOCHROME1 objects pydicom's values are inverted as this
// package documents: lo+hi-m for modality, 1-v for display.
func TestPydicomReference(t *testing.T) {
	if testing.Short() {
		t.Skip("pydicom interop skipped in -short mode")
	}
	t.Parallel()
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("%s (with python3-pydicom and python3-numpy, see scripts/setup.sh) not found: %v", python, err)
	}
	ramp := func(lo, hi, n int, mask int) []int {
		px := make([]int, n)
		for i := range px {
			px[i] = (lo + i*(hi-lo)/(n-1)) & mask
		}
		return px
	}
	win := func(c, w, fn string) []el {
		e := []el{{tag: tagWindowCenter, vr: "DS", val: text(c)}, {tag: tagWindowWidth, vr: "DS", val: text(w)}}
		if fn != "" {
			e = append(e, el{tag: tagVOILUTFunction, vr: "CS", val: text(fn)})
		}
		return e
	}
	rescale := func(s, i string) []el {
		return []el{{tag: tagRescaleSlope, vr: "DS", val: text(s)}, {tag: tagRescaleIntercept, vr: "DS", val: text(i)}}
	}
	lut16 := make([]int, 4096)
	for i := range lut16 {
		lut16[i] = int(65535 * math.Sqrt(float64(i)/4095))
	}
	lutSigned := make([]int, 2000)
	for i := range lutSigned {
		lutSigned[i] = i * 65535 / 1999
	}
	const n = 64 * 64
	cases := map[string]imageSpec{
		"12bit_linear": {bitsAlloc: 16, bitsStore: 12, pixels: u16(ramp(0, 4095, n, 0xFFF)...),
			extra: append(rescale("0.684", "200"), win("1600", "2800", "")...)},
		"12bit_linear_exact": {bitsAlloc: 16, bitsStore: 12, pixels: u16(ramp(0, 4095, n, 0xFFF)...),
			extra: append(rescale("0.684", "200"), win("1600", "2800", "LINEAR_EXACT")...)},
		"12bit_sigmoid_mono1": {bitsAlloc: 16, bitsStore: 12, photometric: "MONOCHROME1", pixels: u16(ramp(0, 4095, n, 0xFFF)...),
			extra: append(rescale("1", "0"), win("2000", "1500", "SIGMOID")...)},
		"12bit_signed_mono1": {bitsAlloc: 16, bitsStore: 12, signed: true, photometric: "MONOCHROME1", pixels: u16(ramp(-2048, 2047, n, 0xFFFF)...),
			extra: append(rescale("1", "-1024"), win("40", "400", "")...)},
		"16bit_signed": {bitsAlloc: 16, signed: true, pixels: u16(ramp(-32768, 32767, n, 0xFFFF)...),
			extra: append(rescale("2.5", "10"), win("-300", "9000", "LINEAR_EXACT")...)},
		"8bit": {bitsAlloc: 8, pixels: func() []byte {
			b := make([]byte, n)
			for i, v := range ramp(0, 255, n, 0xFF) {
				b[i] = byte(v)
			}
			return b
		}(), extra: win("128", "200", "")},
		"voi_lut": {bitsAlloc: 16, bitsStore: 12, pixels: u16(ramp(0, 4095, n, 0xFFF)...),
			extra: []el{{tag: tagVOILUTSequence, items: [][]el{{
				{tag: tagLUTDescriptor, vr: "US", val: u16(4096, 0, 16)},
				{tag: tagLUTData, vr: "OW", val: u16(lut16...)},
			}}}}},
		"voi_lut_mono1_offset": {bitsAlloc: 16, bitsStore: 12, photometric: "MONOCHROME1", pixels: u16(ramp(0, 4095, n, 0xFFF)...),
			extra: []el{{tag: tagVOILUTSequence, items: [][]el{{
				// 16-bit output: pydicom 2.3.1's apply_voi indexes an 8-bit
				// LUT with a uint8 array, which wraps beyond 256 entries.
				{tag: tagLUTDescriptor, vr: "US", val: u16(2000, 1000, 16)},
				{tag: tagLUTData, vr: "OW", val: u16(lutSigned...)},
			}}}}},
	}
	dir := t.TempDir()
	var files []string
	for name, spec := range cases {
		spec.rows, spec.cols = 64, 64
		p := filepath.Join(dir, name+".dcm")
		if err := os.WriteFile(p, encode(t, explicitLE, spec.elems()), 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, append([]string{"testdata/pydicom_voi.py"}, files...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pydicom: %v", err)
	}
	var ref map[string]struct{ Modality, Display []float64 }
	if err := json.Unmarshal(out, &ref); err != nil {
		t.Fatal(err)
	}
	for _, p := range files {
		name := filepath.Base(p)
		im, err := File(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r := ref[p]
		inv := im.Meta.Inverted
		// lo+hi of the modality range, from pydicom's values at the ends of
		// the ramps (they span the stored range).
		sum := r.Modality[0] + r.Modality[len(r.Modality)-1]
		disp := im.Display()
		for i := range r.Modality {
			wantM, wantD := r.Modality[i], r.Display[i]
			if inv {
				wantM, wantD = sum-wantM, 1-wantD
			}
			if math.Abs(float64(im.Modality[i])-wantM) > 1e-3*math.Max(1, math.Abs(wantM)) {
				t.Fatalf("%s pixel %d: modality %v, pydicom %v", name, i, im.Modality[i], wantM)
			}
			if math.Abs(float64(disp[i])-wantD) > 1e-5 {
				t.Fatalf("%s pixel %d (modality %v): display %v, pydicom %v", name, i, im.Modality[i], disp[i], wantD)
			}
		}
	}
}
