package decode

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cspine/cspine/pipeline/window"
)

func mustDecode(t *testing.T, b []byte) *Image {
	t.Helper()
	im, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return im
}

func checkModality(t *testing.T, im *Image, want []float64) {
	t.Helper()
	if len(im.Modality) != len(want) {
		t.Fatalf("got %d values, want %d", len(im.Modality), len(want))
	}
	for i := range want {
		if math.Abs(float64(im.Modality[i])-want[i]) > 1e-3*math.Max(1, math.Abs(want[i])) {
			t.Errorf("pixel %d: got %v, want %v", i, im.Modality[i], want[i])
		}
	}
}

// TestNative covers Bits Allocated, Bits Stored, High Bit and Pixel
// Representation with hand-computed values.
func TestNative(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		spec imageSpec
		want []float64
	}{
		{"8 bit unsigned", imageSpec{rows: 1, cols: 4, bitsAlloc: 8, pixels: []byte{0, 1, 128, 255}},
			[]float64{0, 1, 128, 255}},
		{"8 bit signed", imageSpec{rows: 1, cols: 4, bitsAlloc: 8, signed: true, pixels: []byte{0, 1, 0x80, 0xFF}},
			[]float64{0, 1, -128, -1}},
		// Odd length: 3×3 8-bit pixels give a 9-byte value.
		{"8 bit odd length", imageSpec{rows: 3, cols: 3, bitsAlloc: 8, pixels: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9}},
			[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"16 bit unsigned", imageSpec{rows: 1, cols: 3, bitsAlloc: 16, pixels: u16(0, 1000, 65535)},
			[]float64{0, 1000, 65535}},
		{"16 bit signed", imageSpec{rows: 1, cols: 3, bitsAlloc: 16, signed: true, pixels: u16(0, 0x7FFF, 0x8000)},
			[]float64{0, 32767, -32768}},
		// 12 of 16 bits: garbage (an overlay) in bits 12..15 must be masked.
		{"12 bit unsigned masked", imageSpec{rows: 1, cols: 3, bitsAlloc: 16, bitsStore: 12, pixels: u16(0xF000, 0x1FFF, 0xA123)},
			[]float64{0, 4095, 0x123}},
		// Signed 12 bits: 0x0FFF is -1, 0x0800 is -2048, upper bits ignored.
		{"12 bit signed", imageSpec{rows: 1, cols: 4, bitsAlloc: 16, bitsStore: 12, signed: true, pixels: u16(0xFFFF, 0x0800, 0xF7FF, 0x0001)},
			[]float64{-1, -2048, 2047, 1}},
		// High Bit 15 with 12 bits stored: the value sits in bits 4..15.
		{"high bit 15", imageSpec{rows: 1, cols: 2, bitsAlloc: 16, bitsStore: 12, highBit: 15, pixels: u16(0xFFF0, 0x0010)},
			[]float64{4095, 1}},
		{"high bit 15 signed", imageSpec{rows: 1, cols: 2, bitsAlloc: 16, bitsStore: 12, highBit: 15, signed: true, pixels: u16(0xFFF0, 0x800F)},
			[]float64{-1, -2048}},
		// Rescale: HU-like slope and intercept.
		{"rescale", imageSpec{rows: 1, cols: 3, bitsAlloc: 16, bitsStore: 12, pixels: u16(0, 1024, 4095),
			extra: []el{{tag: tagRescaleSlope, vr: "DS", val: text("0.5")}, {tag: tagRescaleIntercept, vr: "DS", val: text("-1024")}}},
			[]float64{-1024, -512, 1023.5}},
		// MONOCHROME1: inverted around the 12-bit range: 4095 - v.
		{"monochrome1", imageSpec{rows: 1, cols: 3, bitsAlloc: 16, bitsStore: 12, photometric: "MONOCHROME1", pixels: u16(0, 1000, 4095)},
			[]float64{4095, 3095, 0}},
		// MONOCHROME1 signed with rescale: range -2048*2+10 .. 2047*2+10, sum 18; m' = 18 - m.
		{"monochrome1 signed rescale", imageSpec{rows: 1, cols: 2, bitsAlloc: 16, bitsStore: 12, signed: true, photometric: "MONOCHROME1", pixels: u16(0xFFFF, 0x0001),
			extra: []el{{tag: tagRescaleSlope, vr: "DS", val: text("2")}, {tag: tagRescaleIntercept, vr: "DS", val: text("10")}}},
			[]float64{18 - 8, 18 - 12}},
		// RGB 8-bit, interleaved: Rec. 601 luminance, rounded.
		{"rgb", imageSpec{rows: 1, cols: 2, bitsAlloc: 8, spp: 3, photometric: "RGB", pixels: []byte{255, 0, 0, 10, 20, 30}},
			[]float64{76, 18}}, // 0.299*255 = 76.245; (2990+11740+3420)/1000 = 18.15
		{"ybr full", imageSpec{rows: 1, cols: 2, bitsAlloc: 8, spp: 3, photometric: "YBR_FULL", pixels: []byte{200, 1, 2, 7, 8, 9}},
			[]float64{200, 7}},
		{"ybr full 422", imageSpec{rows: 1, cols: 4, bitsAlloc: 8, spp: 3, photometric: "YBR_FULL_422", pixels: []byte{10, 11, 128, 128, 12, 13, 128, 128}},
			[]float64{10, 11, 12, 13}},
		// Two frames: frame 0 is decoded.
		{"multi-frame", imageSpec{rows: 1, cols: 2, bitsAlloc: 8, pixels: []byte{5, 6, 7, 8},
			extra: []el{{tag: tagNumberOfFrames, vr: "IS", val: text("2")}}},
			[]float64{5, 6}},
		// Modality LUT Sequence: 4 entries from input 1.
		{"modality lut", imageSpec{rows: 1, cols: 4, bitsAlloc: 8, pixels: []byte{0, 1, 3, 200},
			extra: []el{{tag: tagModalityLUTSequence, items: [][]el{{
				{tag: tagLUTDescriptor, vr: "US", val: u16(4, 1, 12)},
				{tag: tagLUTData, vr: "OW", val: u16(100, 200, 300, 400)},
			}}}}},
			[]float64{100, 100, 300, 400}},
	}
	for _, tc := range cases {
		for _, enc := range []encoding{explicitLE, implicitLE} {
			t.Run(tc.name+"/"+enc.ts, func(t *testing.T) {
				t.Parallel()
				im := mustDecode(t, encode(t, enc, tc.spec.elems()))
				if im.Rows != tc.spec.rows || im.Cols != tc.spec.cols {
					t.Fatalf("size %d×%d", im.Rows, im.Cols)
				}
				checkModality(t, im, tc.want)
			})
		}
	}
}

func TestEncodings(t *testing.T) {
	t.Parallel()
	spec := imageSpec{rows: 2, cols: 2, bitsAlloc: 16, pixels: u16(1, 2, 3, 4),
		extra: []el{
			// An undefined-length sequence before the pixels must be skipped.
			{tag: 0x00081140, items: [][]el{{{tag: 0x00081150, vr: "UI", val: uid("1.2.3")}}}, undef: true},
			{tag: 0x00091010, vr: "UN", val: []byte{1, 2, 3, 4}},
		}}
	want := []float64{1, 2, 3, 4}
	encs := map[string]encoding{
		"explicit":                   explicitLE,
		"implicit":                   implicitLE,
		"deflated":                   {explicit: true, meta: true, ts: "1.2.840.10008.1.2.1.99", deflate: true},
		"bare implicit":              {explicit: false},
		"bare explicit":              {explicit: true},
		"meta without preamble":      {explicit: true, meta: true, ts: "1.2.840.10008.1.2.1"},
		"says explicit, is implicit": {explicit: false, meta: true, ts: "1.2.840.10008.1.2.1"},
		"says implicit, is explicit": {explicit: true, meta: true, ts: "1.2.840.10008.1.2"},
		"zero padding":               explicitLE,
	}
	for name, enc := range encs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := encode(t, enc, spec.elems())
			switch name {
			case "meta without preamble":
				b = b[132:]
			case "zero padding":
				b = append(b, make([]byte, 100)...)
			}
			im := mustDecode(t, b)
			checkModality(t, im, want)
			if strings.HasPrefix(name, "says") && len(im.Meta.Warnings) == 0 {
				t.Error("mislabelled transfer syntax not reported in Warnings")
			}
			if im.Meta.SOPInstanceUID != "1.2.3.4.5" || im.Meta.Modality != "CR" {
				t.Errorf("meta: %+v", im.Meta)
			}
		})
	}
}

// TestEncapsulatedIcon: an Icon Image Sequence with its own encapsulated
// Pixel Data is skipped; the top-level Pixel Data is decoded.
func TestEncapsulatedIcon(t *testing.T) {
	t.Parallel()
	rle := func(vals ...byte) []byte {
		b := make([]byte, 64, 64+1+len(vals))
		b[0], b[4] = 1, 64
		b = append(b, byte(len(vals)-1))
		return even(append(b, vals...))
	}
	icon := []el{
		{tag: tagRows, vr: "US", val: u16(1)}, {tag: tagColumns, vr: "US", val: u16(1)},
		{tag: tagPixelData, frags: [][]byte{{}, rle(99)}},
	}
	spec := imageSpec{rows: 2, cols: 2, bitsAlloc: 8, frags: [][]byte{{}, rle(10, 20, 30, 40)},
		extra: []el{{tag: 0x00880200, items: [][]el{icon}}}}
	im := mustDecode(t, encode(t, encoding{explicit: true, meta: true, ts: "1.2.840.10008.1.2.5"}, spec.elems()))
	checkModality(t, im, []float64{10, 20, 30, 40})
}

func TestErrors(t *testing.T) {
	t.Parallel()
	good := imageSpec{rows: 2, cols: 2, bitsAlloc: 16, pixels: u16(1, 2, 3, 4)}
	noPixels := []el{{tag: tagSOPClassUID, vr: "UI", val: uid("1.2.840.10008.5.1.4.1.1.88.22")}, {tag: tagModality, vr: "CS", val: text("SR")}}
	short := good
	short.pixels = u16(1, 2, 3)
	badBits := good
	badBits.bitsStore = 17
	palette := good
	palette.photometric = "PALETTE COLOR"
	oneBit := imageSpec{rows: 8, cols: 1, bitsAlloc: 1, pixels: []byte{0xFF, 0}}
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrNotImage},
		{"text", []byte(strings.Repeat("hello world ", 30)), ErrNotImage},
		{"no pixel data", encode(t, explicitLE, noPixels), ErrNotImage},
		{"short pixel data", encode(t, explicitLE, short.elems()), ErrMalformed},
		{"bits stored > allocated", encode(t, explicitLE, badBits.elems()), ErrMalformed},
		{"palette", encode(t, explicitLE, palette.elems()), ErrUnsupported},
		{"1 bit", encode(t, explicitLE, oneBit.elems()), ErrUnsupported},
		{"big endian", encode(t, encoding{explicit: true, meta: true, ts: "1.2.840.10008.1.2.2"}, good.elems()), ErrUnsupported},
		{"jpeg 2000", encode(t, encoding{explicit: true, meta: true, ts: "1.2.840.10008.1.2.4.90"}, good.elems()), ErrUnsupported},
		{"native in jpeg lossless", encode(t, encoding{explicit: true, meta: true, ts: "1.2.840.10008.1.2.4.70"}, good.elems()), ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			im, err := Decode(tc.b)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, %v; want %v", im, err, tc.want)
			}
			if im != nil {
				t.Fatal("image returned with an error")
			}
		})
	}
	t.Run("transfer syntax named", func(t *testing.T) {
		_, err := Decode(encode(t, encoding{explicit: true, meta: true, ts: "1.2.840.10008.1.2.4.80"}, good.elems()))
		var tse *UnsupportedTransferSyntaxError
		if !errors.As(err, &tse) || tse.UID != "1.2.840.10008.1.2.4.80" || !strings.Contains(err.Error(), "JPEG-LS") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestTruncated cuts a valid object at every length: each cut is an error,
// never an image.
func TestTruncated(t *testing.T) {
	t.Parallel()
	spec := imageSpec{rows: 3, cols: 5, bitsAlloc: 16, bitsStore: 12, pixels: u16(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
		extra: []el{{tag: tagVOILUTSequence, items: [][]el{{
			{tag: tagLUTDescriptor, vr: "US", val: u16(2, 0, 8)},
			{tag: tagLUTData, vr: "OW", val: u16(0, 255)},
		}}, undef: true}}}
	for name, enc := range map[string]encoding{"explicit": explicitLE, "implicit": implicitLE,
		"deflated": {explicit: true, meta: true, ts: "1.2.840.10008.1.2.1.99", deflate: true}} {
		b := encode(t, enc, spec.elems())
		mustDecode(t, b)
		for n := 0; n < len(b); n++ {
			im, err := Decode(b[:n])
			if err == nil || im != nil {
				t.Fatalf("%s cut at %d of %d: no error", name, n, len(b))
			}
		}
		// Read with a declared size larger than the data is truncation too.
		if _, err := Read(bytes.NewReader(b[:len(b)-1]), int64(len(b))); !errors.Is(err, ErrTruncated) {
			t.Errorf("%s: Read short: %v", name, err)
		}
	}
}

func TestReadAndFile(t *testing.T) {
	t.Parallel()
	b := encode(t, explicitLE, imageSpec{rows: 1, cols: 2, bitsAlloc: 8, pixels: []byte{3, 4}}.elems())
	for _, size := range []int64{int64(len(b)), -1} {
		im, err := Read(bytes.NewReader(b), size)
		if err != nil {
			t.Fatal(err)
		}
		checkModality(t, im, []float64{3, 4})
	}
	path := filepath.Join(t.TempDir(), "x.dcm")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	im, err := File(path)
	if err != nil {
		t.Fatal(err)
	}
	checkModality(t, im, []float64{3, 4})
	if _, err := File(filepath.Join(t.TempDir(), "missing.dcm")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestVOI checks the windows and VOI LUT read from the header, and that
// MONOCHROME1 inversion transforms them so that the display is exactly the
// complement of the MONOCHROME2 display of the same stored values.
func TestVOI(t *testing.T) {
	t.Parallel()
	pixels := make([]int, 4096)
	for i := range pixels {
		pixels[i] = i
	}
	voiLUT := el{tag: tagVOILUTSequence, items: [][]el{{
		{tag: tagLUTDescriptor, vr: "US", val: u16(3, 100, 8)},
		{tag: tagLUTData, vr: "OW", val: u16(0, 51, 255)},
		{tag: tagLUTExplanation, vr: "LO", val: text("TEST")},
	}}}
	windows := func(fn string) []el {
		e := []el{
			{tag: tagWindowCenter, vr: "DS", val: text(`1600\300`)},
			{tag: tagWindowWidth, vr: "DS", val: text(`2800\0`)}, // second is invalid
			{tag: tagWindowExplanation, vr: "LO", val: text(`NORMAL\BAD`)},
			{tag: tagRescaleSlope, vr: "DS", val: text("0.684")},
			{tag: tagRescaleIntercept, vr: "DS", val: text("200")},
		}
		if fn != "" {
			e = append(e, el{tag: tagVOILUTFunction, vr: "CS", val: text(fn)})
		}
		return e
	}
	for _, fn := range []string{"", "LINEAR_EXACT", "SIGMOID"} {
		for _, withLUT := range []bool{false, true} {
			name := fn
			if withLUT {
				name += "+LUT"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				extra := windows(fn)
				if withLUT {
					extra = append(extra, voiLUT)
				}
				spec := imageSpec{rows: 64, cols: 64, bitsAlloc: 16, bitsStore: 12, pixels: u16(pixels...), extra: extra}
				m2 := mustDecode(t, encode(t, explicitLE, spec.elems()))
				spec.photometric = "MONOCHROME1"
				m1 := mustDecode(t, encode(t, explicitLE, spec.elems()))
				if len(m2.Meta.Window) != 1 || m2.Meta.Window[0].Center != 1600 || m2.Meta.Window[0].Width != 2800 || m2.Meta.Window[0].Explanation != "NORMAL" {
					t.Fatalf("windows: %+v", m2.Meta.Window)
				}
				if len(m2.Meta.Warnings) == 0 {
					t.Error("invalid second window not reported")
				}
				wantFn, _ := window.ParseFunction(fn)
				if m2.Meta.Window[0].Function != wantFn {
					t.Errorf("function %v, want %v", m2.Meta.Window[0].Function, wantFn)
				}
				if withLUT != (m2.Meta.VOILUT != nil) || withLUT != (m1.Meta.VOILUT != nil) {
					t.Fatalf("VOI LUT: %v %v", m2.Meta.VOILUT, m1.Meta.VOILUT)
				}
				if !m1.Meta.Inverted || m2.Meta.Inverted {
					t.Error("Inverted flag")
				}
				d2, d1 := m2.Display(), m1.Display()
				for i := range d2 {
					if math.Abs(float64(d1[i])-(1-float64(d2[i]))) > 1e-5 {
						t.Fatalf("stored %d: MONOCHROME1 display %v, MONOCHROME2 %v: not complementary", i, d1[i], d2[i])
					}
				}
				// Hand-computed MONOCHROME2 values at stored 1000:
				// m = 1000*0.684+200 = 884.
				got := float64(d2[1000])
				var want float64
				switch {
				case withLUT:
					want = 1 // 884 is above the LUT's last input 102
				case fn == "":
					want = (884-1599.5)/2799 + 0.5
				case fn == "LINEAR_EXACT":
					want = (884-1600)/2800.0 + 0.5
				default:
					want = 1 / (1 + math.Exp(-4*(884-1600)/2800.0))
				}
				if math.Abs(got-want) > 1e-5 {
					t.Errorf("display at 1000: got %v, want %v", got, want)
				}
			})
		}
	}
}

func TestDisplayFallbacks(t *testing.T) {
	t.Parallel()
	// No window: automatic.
	px := make([]int, 1000)
	for i := range px {
		px[i] = 100 + i
	}
	im := mustDecode(t, encode(t, explicitLE, imageSpec{rows: 10, cols: 100, bitsAlloc: 16, pixels: u16(px...)}.elems()))
	if p := im.VOI(); p.Source != "auto" || p.Window.Center < 500 || p.Window.Center > 700 {
		t.Errorf("auto: %+v", p)
	}
	d := im.Display()
	if d[0] != 0 || d[len(d)-1] != 1 {
		t.Errorf("auto display ends: %v %v", d[0], d[len(d)-1])
	}
	// Pixel padding (stored 0, MONOCHROME1 so modality 4095 after
	// inversion) is left out of the automatic window.
	pad := make([]int, 1000)
	for i := range pad {
		if i%2 == 0 {
			pad[i] = 1000 + i
		}
	}
	im = mustDecode(t, encode(t, explicitLE, imageSpec{rows: 10, cols: 100, bitsAlloc: 16, bitsStore: 12, photometric: "MONOCHROME1", pixels: u16(pad...),
		extra: []el{{tag: tagPixelPaddingValue, vr: "US", val: u16(0)}}}.elems()))
	if p := im.Meta.PixelPadding; p == nil || p[0] != 4095 || p[1] != 4095 {
		t.Fatalf("padding %v", p)
	}
	if p := im.VOI(); p.Window.Center+p.Window.Width/2 > 4095-1000+1 {
		t.Errorf("padding in the automatic window: %+v", p)
	}
	// Colour without window: full range.
	im = mustDecode(t, encode(t, explicitLE, imageSpec{rows: 1, cols: 2, bitsAlloc: 8, spp: 3, photometric: "RGB", pixels: []byte{0, 0, 0, 255, 255, 255}}.elems()))
	if p := im.VOI(); p.Source != "full_range" {
		t.Errorf("colour: %+v", p)
	}
	if d := im.Display(); d[0] != 0 || d[1] != 1 {
		t.Errorf("colour display: %v", d)
	}
}

// realworld returns the shared real-world folder, failing when it is absent.
func realworld(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../../../shared/realworld")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("real-world test files missing (expected beside the repository): %v", err)
	}
	return dir
}

func TestRealWorldAgfaCR(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(realworld(t), "pydicom-cspine-cr")
	im, err := File(filepath.Join(dir, "dicomdirtests_77654033_CR1_6154"))
	if err != nil {
		t.Fatal(err)
	}
	m := im.Meta
	if im.Rows != 16 || im.Cols != 16 || m.Photometric != "MONOCHROME1" || !m.Inverted || m.BitsStored != 12 ||
		m.ViewPosition != "LL" || m.BodyPartExamined != "CSPINE" || m.SeriesDescription != "Cervical LAT" ||
		m.Modality != "CR" || m.PatientOrientation != `L\F` || m.ImageType != `DERIVED\PRIMARY` {
		t.Errorf("meta: %+v", m)
	}
	if len(m.ImagerPixelSpacing) != 2 || m.ImagerPixelSpacing[0] != 0.1 || m.PixelSpacing != nil || m.ERMF != 0 {
		t.Errorf("spacing: %+v %+v %v", m.ImagerPixelSpacing, m.PixelSpacing, m.ERMF)
	}
	if m.RescaleSlope != 0.684 || m.RescaleIntercept != 200 {
		t.Errorf("rescale: %v %v", m.RescaleSlope, m.RescaleIntercept)
	}
	// First stored value is 0x07CA = 1994 (dcmdump); modality 1994*0.684+200
	// = 1563.896; inverted around [200, 4095*0.684+200]: 3200.98-1563.896.
	if want := 200 + 4095*0.684 + 200 - (1994*0.684 + 200); math.Abs(float64(im.Modality[0])-want) > 1e-3 {
		t.Errorf("pixel 0: got %v, want %v", im.Modality[0], want)
	}
	// Window 1600/2800 LINEAR, inverted.
	if len(m.Window) != 1 || math.Abs(m.Window[0].Center-(200+4095*0.684+200+1-1600)) > 1e-9 {
		t.Errorf("window: %+v", m.Window)
	}
	d := im.Display()
	want := 1 - ((1994*0.684+200-1599.5)/2799 + 0.5)
	if math.Abs(float64(d[0])-want) > 1e-5 {
		t.Errorf("display 0: got %v, want %v", d[0], want)
	}
	for _, f := range []string{"dicomdirtests_77654033_CR2_6247", "dicomdirtests_77654033_CR3_6278"} {
		im, err := File(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if im.Rows != 16 || !im.Meta.Inverted {
			t.Errorf("%s: %+v", f, im.Meta)
		}
	}
}

// TestConcurrentDeterministic decodes the same objects from several
// goroutines: every result, modality and display, is bit-identical.
func TestConcurrentDeterministic(t *testing.T) {
	t.Parallel()
	const w, h = 61, 47
	px := phantomPixels(h, w, 12, 33)
	u := make([]uint16, len(px))
	for i, v := range px {
		u[i] = uint16(v)
	}
	objects := [][]byte{
		encode(t, explicitLE, imageSpec{rows: h, cols: w, bitsAlloc: 16, bitsStore: 12, photometric: "MONOCHROME1", pixels: u16(px...),
			extra: []el{{tag: tagWindowCenter, vr: "DS", val: text("2000")}, {tag: tagWindowWidth, vr: "DS", val: text("3000")},
				{tag: tagVOILUTFunction, vr: "CS", val: text("SIGMOID")}}}.elems()),
		encode(t, encoding{explicit: true, meta: true, ts: "1.2.840.10008.1.2.4.70"},
			imageSpec{rows: h, cols: w, bitsAlloc: 16, bitsStore: 12, frags: [][]byte{{}, even(encodeLosslessJPEG(u, w, h, 12, 1, 0, 2))}}.elems()),
		encode(t, encoding{explicit: true, meta: true, ts: "1.2.840.10008.1.2.4.50"},
			imageSpec{rows: h, cols: w, bitsAlloc: 8, frags: [][]byte{{}, even(encodeBaselineJPEG(w, h, []dctTestComponent{{1, 1}}, 3, 5))}}.elems()),
	}
	for i, b := range objects {
		first := mustDecode(t, b)
		want := first.Display()
		results := make(chan []float32, 8)
		for range 8 {
			go func() {
				im, err := Decode(b)
				if err != nil {
					results <- nil
					return
				}
				results <- append(im.Modality, im.Display()...)
			}()
		}
		for range 8 {
			got := <-results
			if got == nil {
				t.Fatalf("object %d: decode failed", i)
			}
			ref := append(append([]float32(nil), first.Modality...), want...)
			for k := range ref {
				if math.Float32bits(got[k]) != math.Float32bits(ref[k]) {
					t.Fatalf("object %d value %d: %v vs %v", i, k, got[k], ref[k])
				}
			}
		}
	}
}

func TestSupportedTransferSyntaxes(t *testing.T) {
	t.Parallel()
	want := []string{"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99",
		"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.5"}
	got := SupportedTransferSyntaxes()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %v", got)
	}
	if n := TransferSyntaxName("1.2.840.10008.1.2.4.90"); !strings.Contains(n, "JPEG 2000") {
		t.Errorf("name %q", n)
	}
	if n := TransferSyntaxName("1.2.3"); n != "unknown transfer syntax" {
		t.Errorf("name %q", n)
	}
}
