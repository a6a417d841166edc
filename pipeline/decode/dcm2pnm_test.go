package decode

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// readASCIIPGM reads a 16-bit ASCII PGM (P2) as written by dcm2pnm +opw.
func readASCIIPGM(t *testing.T, b []byte) (w, h, maxv int, px []int) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Split(bufio.ScanWords)
	var words []string
	for sc.Scan() {
		s := sc.Text()
		if len(s) > 0 && s[0] == '#' {
			continue
		}
		words = append(words, s)
	}
	if len(words) < 4 || words[0] != "P2" {
		t.Fatalf("not an ASCII PGM: %.40q", b)
	}
	num := func(s string) int {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	w, h, maxv = num(words[1]), num(words[2]), num(words[3])
	for _, s := range words[4:] {
		px = append(px, num(s))
	}
	if len(px) != w*h {
		t.Fatalf("PGM holds %d of %d×%d values", len(px), w, h)
	}
	return w, h, maxv, px
}

// TestDisplayAgainstDcm2pnm renders objects with DCMTK's dcm2pnm (VOI window
// or VOI LUT from the object, MONOCHROME1 shown inverted, 16-bit output) and
// compares with Display.
func TestDisplayAgainstDcm2pnm(t *testing.T) {
	if testing.Short() {
		t.Skip("DCMTK interop skipped in -short mode")
	}
	t.Parallel()
	const rows, cols = 64, 64
	n := rows * cols
	ramp := make([]int, n)
	for i := range ramp {
		ramp[i] = i * 4095 / (n - 1)
	}
	signed := make([]int, n)
	for i := range signed {
		signed[i] = (ramp[i] - 2048) & 0xFFFF
	}
	lut := make([]int, 4096)
	for i := range lut {
		lut[i] = int(65535 * math.Sqrt(float64(i)/4095))
	}
	win := func(c, w, fn string) []el {
		e := []el{{tag: tagWindowCenter, vr: "DS", val: text(c)}, {tag: tagWindowWidth, vr: "DS", val: text(w)}}
		if fn != "" {
			e = append(e, el{tag: tagVOILUTFunction, vr: "CS", val: text(fn)})
		}
		return e
	}
	cases := []struct {
		name string
		spec imageSpec
		opt  string
		// tol is the allowed difference in modality units: dcm2pnm holds
		// modality values of a non-integer rescale as integers (stored 19,
		// slope 0.684, intercept 200: 212 where pydicom and this package
		// keep 212.996), so one unit is allowed there.
		tol float64
	}{
		{"mono1_linear", imageSpec{bitsAlloc: 16, bitsStore: 12, photometric: "MONOCHROME1", pixels: u16(ramp...),
			extra: append(win("1600", "2800", ""), el{tag: tagRescaleSlope, vr: "DS", val: text("0.684")}, el{tag: tagRescaleIntercept, vr: "DS", val: text("200")})}, "+Wi", 1},
		{"mono2_signed_linear", imageSpec{bitsAlloc: 16, bitsStore: 12, signed: true, pixels: u16(signed...),
			extra: append(win("40", "400", ""), el{tag: tagRescaleSlope, vr: "DS", val: text("1")}, el{tag: tagRescaleIntercept, vr: "DS", val: text("-1024")})}, "+Wi", 0},
		{"mono1_sigmoid", imageSpec{bitsAlloc: 16, bitsStore: 12, photometric: "MONOCHROME1", pixels: u16(ramp...),
			extra: win("2000", "1500", "SIGMOID")}, "+Wi", 0},
		{"mono2_voi_lut", imageSpec{bitsAlloc: 16, bitsStore: 12, pixels: u16(ramp...),
			extra: []el{{tag: tagVOILUTSequence, items: [][]el{{
				{tag: tagLUTDescriptor, vr: "US", val: u16(4096, 0, 16)}, {tag: tagLUTData, vr: "OW", val: u16(lut...)}}}}}}, "+Wl", 0},
		{"mono1_voi_lut", imageSpec{bitsAlloc: 16, bitsStore: 12, photometric: "MONOCHROME1", pixels: u16(ramp...),
			extra: []el{{tag: tagVOILUTSequence, items: [][]el{{
				{tag: tagLUTDescriptor, vr: "US", val: u16(4096, 0, 16)}, {tag: tagLUTData, vr: "OW", val: u16(lut...)}}}}}}, "+Wl", 0},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.spec.rows, c.spec.cols = rows, cols
			in := filepath.Join(dir, c.name+".dcm")
			out := filepath.Join(dir, c.name+".pgm")
			if err := os.WriteFile(in, encode(t, explicitLE, c.spec.elems()), 0o600); err != nil {
				t.Fatal(err)
			}
			dcmtk(t, "dcm2pnm", c.opt, "1", "+opw", in, out)
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			w, h, maxv, px := readASCIIPGM(t, b)
			if w != cols || h != rows {
				t.Fatalf("dcm2pnm wrote %d×%d", w, h)
			}
			im, err := File(in)
			if err != nil {
				t.Fatal(err)
			}
			d := im.Display()
			worst, at := 0.0, 0
			for i := range d {
				if e := math.Abs(float64(d[i]) - float64(px[i])/float64(maxv)); e > worst {
					worst, at = e, i
				}
			}
			// Two output steps, plus the modality tolerance through the
			// window's slope 1/(width-1).
			limit := 2 / float64(maxv)
			if c.tol > 0 {
				limit += c.tol / (im.Meta.Window[0].Width - 1)
			}
			if worst > limit {
				t.Errorf("display differs from dcm2pnm by %.3g at pixel %d (%v vs %d/%d)", worst, at, d[at], px[at], maxv)
			}
		})
	}
}
