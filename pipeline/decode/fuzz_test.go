package decode

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to Read. Properties: no panic; every
// error is one of the package's sentinels; a success is a whole image whose
// display lies in [0,1]. The corpus in testdata/fuzz/FuzzDecode holds small
// DCMTK-compressed objects (JPEG Lossless, JPEG Baseline, RLE) as seeds.
func FuzzDecode(f *testing.F) {
	f.Add(encode(f, explicitLE, imageSpec{rows: 3, cols: 5, bitsAlloc: 16, bitsStore: 12, pixels: u16(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
		extra: []el{
			{tag: tagWindowCenter, vr: "DS", val: text("7")}, {tag: tagWindowWidth, vr: "DS", val: text("10")},
			{tag: tagVOILUTSequence, items: [][]el{{{tag: tagLUTDescriptor, vr: "US", val: u16(2, 0, 8)}, {tag: tagLUTData, vr: "OW", val: u16(0, 255)}}}, undef: true},
		}}.elems()))
	f.Add(encode(f, implicitLE, imageSpec{rows: 2, cols: 2, bitsAlloc: 8, signed: true, photometric: "MONOCHROME1", pixels: []byte{1, 2, 0x80, 0xFF}}.elems()))
	f.Add(encode(f, encoding{explicit: true, meta: true, ts: "1.2.840.10008.1.2.1.99", deflate: true},
		imageSpec{rows: 1, cols: 2, bitsAlloc: 8, spp: 3, photometric: "RGB", pixels: []byte{1, 2, 3, 4, 5, 6}}.elems()))
	// RLE: one segment, a literal run of 4 bytes.
	rle := make([]byte, 64+5)
	rle[0], rle[4] = 1, 64
	copy(rle[64:], []byte{3, 10, 20, 30, 40})
	f.Add(encode(f, encoding{explicit: true, meta: true, ts: "1.2.840.10008.1.2.5"},
		imageSpec{rows: 2, cols: 2, bitsAlloc: 8, frags: [][]byte{{}, rle}}.elems()))
	f.Fuzz(func(t *testing.T, b []byte) {
		im, err := Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if im != nil {
				t.Fatal("image with error")
			}
			if !errors.Is(err, ErrNotImage) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if len(im.Modality) != im.Rows*im.Cols || im.Rows == 0 || im.Cols == 0 {
			t.Fatalf("%d values for %d×%d", len(im.Modality), im.Rows, im.Cols)
		}
		for _, v := range im.Display() {
			if !(v >= 0 && v <= 1) {
				t.Fatalf("display value %v", v)
			}
		}
	})
}
