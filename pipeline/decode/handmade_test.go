package decode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func even(b []byte) []byte {
	if len(b)%2 == 1 {
		return append(b, 0)
	}
	return b
}

// dcmtkReference writes the encapsulated object, has dcmdjpeg decompress it
// and returns both decodings.
func dcmtkReference(t *testing.T, dir, name string, spec imageSpec, ts string) (got, ref *Image) {
	t.Helper()
	in := filepath.Join(dir, name+".dcm")
	out := filepath.Join(dir, name+"_ref.dcm")
	if err := os.WriteFile(in, encode(t, encoding{explicit: true, meta: true, ts: ts}, spec.elems()), 0o600); err != nil {
		t.Fatal(err)
	}
	dcmtk(t, "dcmdjpeg", "+cn", "+te", in, out)
	got, err := File(in)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	ref, err = File(out)
	if err != nil {
		t.Fatalf("decode DCMTK reference: %v", err)
	}
	return got, ref
}

// TestInteropHandmadeLossless decodes lossless streams with restart
// intervals and category-16 differences, which dcmcjpeg does not write,
// and compares with dcmdjpeg and with the original.
func TestInteropHandmadeLossless(t *testing.T) {
	if testing.Short() {
		t.Skip("DCMTK interop skipped in -short mode")
	}
	t.Parallel()
	dir := t.TempDir()
	const w, h = 23, 17
	px12 := phantomPixels(h, w, 12, 21)
	px16 := make([]int, w*h)
	for i := range px16 {
		// Alternate halves of the range: differences of ±32768 occur.
		px16[i] = (i*7919 + (i%2)*32768) & 0xFFFF
	}
	for _, c := range []struct {
		bits, sel, pt, restart int
		px                     []int
	}{
		{12, 1, 0, 1, px12}, {12, 4, 0, 3, px12}, {12, 6, 1, 5, px12}, {12, 7, 0, 2, px12},
		{16, 1, 0, 0, px16}, {16, 5, 0, 4, px16}, {16, 2, 0, 1, px16}, {16, 3, 0, 6, px16},
	} {
		name := fmt.Sprintf("p%d_sv%d_pt%d_rst%d", c.bits, c.sel, c.pt, c.restart)
		t.Run(name, func(t *testing.T) {
			u := make([]uint16, len(c.px))
			for i, v := range c.px {
				u[i] = uint16(v)
			}
			stream := encodeLosslessJPEG(u, w, h, c.bits, c.sel, c.pt, c.restart)
			spec := imageSpec{rows: h, cols: w, bitsAlloc: 16, bitsStore: c.bits, frags: [][]byte{{}, even(stream)}}
			got, ref := dcmtkReference(t, dir, name, spec, "1.2.840.10008.1.2.4.57")
			if d := firstDiff(got.Modality, ref.Modality); d != "" {
				t.Errorf("differs from dcmdjpeg: %s", d)
			}
			for i, v := range c.px {
				if want := float32(v >> c.pt << c.pt); got.Modality[i] != want {
					t.Fatalf("pixel %d: got %v, want %v", i, got.Modality[i], want)
				}
			}
		})
	}
	t.Run("restart not at row start", func(t *testing.T) {
		u := make([]uint16, w*h)
		stream := encodeLosslessJPEG(u, w, h, 12, 1, 0, 0)
		// Patch in a DRI of 5 MCUs after SOI.
		patched := append([]byte{0xFF, 0xD8, 0xFF, 0xDD, 0, 4, 0, 5}, stream[2:]...)
		spec := imageSpec{rows: h, cols: w, bitsAlloc: 16, bitsStore: 12, frags: [][]byte{{}, even(patched)}}
		_, err := Decode(encode(t, encoding{explicit: true, meta: true, ts: "1.2.840.10008.1.2.4.57"}, spec.elems()))
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("got %v", err)
		}
	})
}

// TestInteropHandmadeBaseline decodes baseline streams with restart
// intervals and 4:2:0 / 4:2:2 sampling (sizes not a multiple of the MCU),
// pixel for pixel against dcmdjpeg.
func TestInteropHandmadeBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("DCMTK interop skipped in -short mode")
	}
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct {
		name    string
		w, h    int
		comps   []dctTestComponent
		restart int
	}{
		{"grey", 37, 29, []dctTestComponent{{1, 1}}, 0},
		{"grey_rst1", 37, 29, []dctTestComponent{{1, 1}}, 1},
		{"grey_rst7", 64, 40, []dctTestComponent{{1, 1}}, 7},
		{"ycbcr420_rst2", 37, 29, []dctTestComponent{{2, 2}, {1, 1}, {1, 1}}, 2},
		{"ycbcr422_rst3", 50, 17, []dctTestComponent{{2, 1}, {1, 1}, {1, 1}}, 3},
		{"ycbcr444", 20, 20, []dctTestComponent{{1, 1}, {1, 1}, {1, 1}}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			stream := encodeBaselineJPEG(c.w, c.h, c.comps, c.restart, uint64(c.w*c.h))
			spec := imageSpec{rows: c.h, cols: c.w, bitsAlloc: 8, frags: [][]byte{{}, even(stream)}}
			if len(c.comps) == 3 {
				spec.spp, spec.photometric = 3, "YBR_FULL_422"
			}
			got, ref := dcmtkReference(t, dir, c.name, spec, "1.2.840.10008.1.2.4.50")
			if d := firstDiff(got.Modality, ref.Modality); d != "" {
				t.Errorf("differs from dcmdjpeg: %s", d)
			}
			lo, hi := float32(255), float32(0)
			for _, v := range got.Modality {
				lo, hi = min(lo, v), max(hi, v)
			}
			if lo != 0 || hi != 255 {
				t.Errorf("range [%v, %v]: the range limit was not exercised at both ends", lo, hi)
			}
		})
	}
}
