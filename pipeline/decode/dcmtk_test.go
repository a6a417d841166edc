package decode

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// These tests verify the decoders pixel for pixel against DCMTK: dcmcjpeg and
// dcmcrle compress native images written by the test, dcmdjpeg and dcmdrle
// decompress them again, and both the compressed object (decoded here) and
// DCMTK's decompression (decoded by the native path) must give identical
// modality values. For lossless codecs the original must match too.

// dcmtk runs a DCMTK tool, failing the test when it is not installed.
func dcmtk(t *testing.T, tool string, args ...string) {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("DCMTK tool %s not found (install the dcmtk package, see scripts/setup.sh): %v", tool, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", tool, args, err, out)
	}
}

type interopSource struct {
	name string
	spec imageSpec
}

func interopSources() []interopSource {
	const rows, cols = 97, 131 // odd sizes exercise row ends and odd lengths
	px8 := phantomPixels(rows, cols, 8, 2)
	px12 := phantomPixels(rows, cols, 12, 3)
	px16 := phantomPixels(rows, cols, 16, 4)
	signed12 := make([]int, len(px12))
	signed16 := make([]int, len(px16))
	for i := range px12 {
		signed12[i] = (px12[i] - 2048) & 0xFFFF // sign-extended into 16 bits
		signed16[i] = (px16[i] - 32768) & 0xFFFF
	}
	b8 := make([]byte, len(px8))
	for i, v := range px8 {
		b8[i] = byte(v)
	}
	rgb := make([]byte, 3*len(px8))
	for i, v := range px8 {
		rgb[3*i], rgb[3*i+1], rgb[3*i+2] = byte(v), byte(255-v), byte(v/2)
	}
	return []interopSource{
		{"8bit", imageSpec{rows: rows, cols: cols, bitsAlloc: 8, pixels: b8}},
		{"12bit", imageSpec{rows: rows, cols: cols, bitsAlloc: 16, bitsStore: 12, pixels: u16(px12...)}},
		{"12bit_signed", imageSpec{rows: rows, cols: cols, bitsAlloc: 16, bitsStore: 12, signed: true, pixels: u16(signed12...)}},
		{"16bit", imageSpec{rows: rows, cols: cols, bitsAlloc: 16, pixels: u16(px16...)}},
		{"16bit_signed", imageSpec{rows: rows, cols: cols, bitsAlloc: 16, signed: true, pixels: u16(signed16...)}},
		{"rgb", imageSpec{rows: rows, cols: cols, bitsAlloc: 8, spp: 3, photometric: "RGB", pixels: rgb}},
	}
}

type interopCodec struct {
	name     string
	ts       string
	compress []string // tool and options
	lossless bool
	sources  []string // nil = all
}

func interopCodecs() []interopCodec {
	c := []interopCodec{
		{name: "jpeg_lossless_sv1", ts: "1.2.840.10008.1.2.4.70", compress: []string{"dcmcjpeg", "+e1"}, lossless: true},
		{name: "rle", ts: "1.2.840.10008.1.2.5", compress: []string{"dcmcrle"}, lossless: true},
		{name: "jpeg_baseline", ts: "1.2.840.10008.1.2.4.50", compress: []string{"dcmcjpeg", "+eb"}, sources: []string{"8bit", "rgb"}},
		{name: "jpeg_baseline_rgb_coded", ts: "1.2.840.10008.1.2.4.50", compress: []string{"dcmcjpeg", "+eb", "+cr"}, sources: []string{"rgb"}},
		{name: "jpeg_baseline_444", ts: "1.2.840.10008.1.2.4.50", compress: []string{"dcmcjpeg", "+eb", "+s4"}, sources: []string{"rgb"}},
		{name: "jpeg_baseline_411", ts: "1.2.840.10008.1.2.4.50", compress: []string{"dcmcjpeg", "+eb", "+n1"}, sources: []string{"rgb"}},
		{name: "jpeg_lossless_fragments", ts: "1.2.840.10008.1.2.4.70", compress: []string{"dcmcjpeg", "+e1", "+fs", "1"}, lossless: true, sources: []string{"16bit", "rgb"}},
		{name: "jpeg_extended_8bit", ts: "1.2.840.10008.1.2.4.51", compress: []string{"dcmcjpeg", "+ee"}, sources: []string{"8bit"}},
		{name: "jpeg_lossless_pt2", ts: "1.2.840.10008.1.2.4.57", compress: []string{"dcmcjpeg", "+el", "+sv", "6", "+pt", "2"}, sources: []string{"12bit", "16bit"}},
	}
	for sv := 1; sv <= 7; sv++ {
		c = append(c, interopCodec{name: fmt.Sprintf("jpeg_lossless_sv%d_57", sv), ts: "1.2.840.10008.1.2.4.57",
			compress: []string{"dcmcjpeg", "+el", "+sv", fmt.Sprint(sv)}, lossless: true})
	}
	return c
}

func decompressor(ts string) []string {
	if ts == "1.2.840.10008.1.2.5" {
		return []string{"dcmdrle", "+te"}
	}
	// Never convert YCbCr to RGB: the reference then holds the decoded Y,
	// which is the luminance this package keeps.
	return []string{"dcmdjpeg", "+cn", "+te"}
}

func TestInteropDCMTK(t *testing.T) {
	if testing.Short() {
		t.Skip("DCMTK interop skipped in -short mode")
	}
	dir := t.TempDir()
	sources := interopSources()
	for _, src := range sources {
		srcPath := filepath.Join(dir, src.name+".dcm")
		if err := os.WriteFile(srcPath, encode(t, explicitLE, src.spec.elems()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, codec := range interopCodecs() {
		for _, src := range sources {
			if codec.sources != nil && !contains(codec.sources, src.name) {
				continue
			}
			t.Run(codec.name+"/"+src.name, func(t *testing.T) {
				t.Parallel()
				srcPath := filepath.Join(dir, src.name+".dcm")
				cPath := filepath.Join(dir, codec.name+"_"+src.name+".dcm")
				dPath := filepath.Join(dir, codec.name+"_"+src.name+"_ref.dcm")
				dcmtk(t, codec.compress[0], append(codec.compress[1:], srcPath, cPath)...)
				dec := decompressor(codec.ts)
				dcmtk(t, dec[0], append(dec[1:], cPath, dPath)...)

				got, err := File(cPath)
				if err != nil {
					t.Fatalf("decode DCMTK-compressed file: %v", err)
				}
				if got.Meta.TransferSyntaxUID != codec.ts {
					t.Fatalf("DCMTK wrote transfer syntax %s, want %s", got.Meta.TransferSyntaxUID, codec.ts)
				}
				ref, err := File(dPath)
				if err != nil {
					t.Fatalf("decode DCMTK-decompressed file: %v", err)
				}
				orig, err := File(srcPath)
				if err != nil {
					t.Fatal(err)
				}
				if d := firstDiff(got.Modality, ref.Modality); d != "" {
					t.Errorf("differs from DCMTK's decompression: %s", d)
				}
				if codec.lossless {
					if d := firstDiff(got.Modality, orig.Modality); d != "" {
						t.Errorf("lossless codec differs from the original: %s", d)
					}
				}
			})
		}
	}
}

// TestInteropUnsupported: 12-bit lossy JPEG and JPEG-LS written by DCMTK
// are rejected with the transfer syntax named.
func TestInteropUnsupported(t *testing.T) {
	if testing.Short() {
		t.Skip("DCMTK interop skipped in -short mode")
	}
	dir := t.TempDir()
	src := interopSources()[1] // 12 bit
	srcPath := filepath.Join(dir, "src.dcm")
	if err := os.WriteFile(srcPath, encode(t, explicitLE, src.spec.elems()), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		tool []string
		ts   string
	}{
		{[]string{"dcmcjpeg", "+ee"}, "1.2.840.10008.1.2.4.51"},
		{[]string{"dcmcjpls"}, "1.2.840.10008.1.2.4.80"},
		{[]string{"dcmcjpls", "+en"}, "1.2.840.10008.1.2.4.81"},
	}
	for i, c := range cases {
		out := filepath.Join(dir, fmt.Sprintf("c%d.dcm", i))
		dcmtk(t, c.tool[0], append(c.tool[1:], srcPath, out)...)
		_, err := File(out)
		var tse *UnsupportedTransferSyntaxError
		if !errors.As(err, &tse) || tse.UID != c.ts {
			t.Errorf("%v: got %v, want UnsupportedTransferSyntaxError for %s", c.tool, err, c.ts)
		}
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func firstDiff(a, b []float32) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d values vs %d", len(a), len(b))
	}
	n, first := 0, -1
	for i := range a {
		if a[i] != b[i] {
			if first < 0 {
				first = i
			}
			n++
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d of %d pixels differ, first at %d: %v vs %v", n, len(a), first, a[first], b[first])
}

// compressWithDCMTK writes spec as a native file and returns the path of its
// compression by tool.
func compressWithDCMTK(t *testing.T, dir, name string, spec imageSpec, tool ...string) string {
	t.Helper()
	src := filepath.Join(dir, name+"_src.dcm")
	if err := os.WriteFile(src, encode(t, explicitLE, spec.elems()), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name+".dcm")
	dcmtk(t, tool[0], append(tool[1:], src, out)...)
	return out
}

// TestInteropMultiFrame: frame 0 of a three-frame object, encapsulated with
// and without a Basic Offset Table, equals frame 0 of the original.
func TestInteropMultiFrame(t *testing.T) {
	if testing.Short() {
		t.Skip("DCMTK interop skipped in -short mode")
	}
	t.Parallel()
	const rows, cols = 40, 30
	px := phantomPixels(3*rows, cols, 12, 9)
	spec := imageSpec{rows: rows, cols: cols, bitsAlloc: 16, bitsStore: 12, pixels: u16(px...),
		extra: []el{{tag: tagNumberOfFrames, vr: "IS", val: text("3")}}}
	want := make([]float64, rows*cols)
	for i := range want {
		want[i] = float64(px[i])
	}
	dir := t.TempDir()
	for name, tool := range map[string][]string{
		"lossless_bot":   {"dcmcjpeg", "+e1"},
		"lossless_nobot": {"dcmcjpeg", "+e1", "-ot"},
		"rle":            {"dcmcrle"},
	} {
		t.Run(name, func(t *testing.T) {
			im, err := File(compressWithDCMTK(t, dir, name, spec, tool...))
			if err != nil {
				t.Fatal(err)
			}
			if im.Meta.NumberOfFrames != 3 {
				t.Errorf("NumberOfFrames %d", im.Meta.NumberOfFrames)
			}
			checkModality(t, im, want)
		})
	}
	// Several fragments per frame and no offset table: the JPEG frame ends
	// with the fragment that ends with EOI.
	path := compressWithDCMTK(t, dir, "fragmented", spec, "dcmcjpeg", "+e1", "-ot", "+fs", "1")
	po, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := parseObject(po); err != nil || len(p.ds[tagPixelData].frags) <= 3 || len(p.ds[tagPixelData].bot) != 0 {
		t.Fatalf("DCMTK did not write several fragments per frame without offset table: %v", err)
	}
	im, err := File(path)
	if err != nil {
		t.Fatal(err)
	}
	checkModality(t, im, want)
}

// TestInteropTruncatedCodestream cuts the codestream inside a DCMTK-written
// fragment (keeping the item lengths consistent, as a faulty sender would):
// every cut is an error, or, when only padding was cut, the full image.
func TestInteropTruncatedCodestream(t *testing.T) {
	if testing.Short() {
		t.Skip("DCMTK interop skipped in -short mode")
	}
	t.Parallel()
	dir := t.TempDir()
	srcs := interopSources()
	for name, c := range map[string]struct {
		src  imageSpec
		tool []string
	}{
		"jpeg_lossless":  {srcs[3].spec, []string{"dcmcjpeg", "+e1"}},
		"rle":            {srcs[3].spec, []string{"dcmcrle"}},
		"jpeg_baseline":  {srcs[0].spec, []string{"dcmcjpeg", "+eb"}},
		"jpeg_ycbcr_422": {srcs[5].spec, []string{"dcmcjpeg", "+eb"}},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(compressWithDCMTK(t, dir, name, c.src, c.tool...))
			if err != nil {
				t.Fatal(err)
			}
			full, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			po, err := parseObject(b)
			if err != nil {
				t.Fatal(err)
			}
			frag := po.ds[tagPixelData].frags[0]
			off := bytes.Index(b, frag)
			if off < 8 {
				t.Fatal("fragment not found")
			}
			step := max(1, len(frag)/53)
			for n := 0; n < len(frag); n += step {
				for _, cut := range []int{n, len(frag) - 1 - n%7} {
					mod := append([]byte(nil), b[:off]...)
					binary.LittleEndian.PutUint32(mod[off-4:], uint32(cut))
					mod = append(mod, frag[:cut]...)
					mod = append(mod, b[off+len(frag):]...)
					im, err := Decode(mod)
					if err == nil && firstDiff(im.Modality, full.Modality) != "" {
						t.Fatalf("codestream cut to %d of %d bytes: partial image without error", cut, len(frag))
					}
				}
			}
		})
	}
}
