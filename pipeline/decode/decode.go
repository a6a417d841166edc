// Package decode turns a DICOM image object into modality values: pixel data
// decoding (native, JPEG Baseline, JPEG Lossless Process 14, RLE Lossless),
// Pixel Representation and Bits Stored, the Modality LUT stage and
// MONOCHROME1 inversion (PS3.3 C.11.1), plus the header attributes the
// measurement pipeline needs.
//
// # Values
//
// Image.Modality holds, for every pixel in row-major order, the output of the
// Modality LUT (Rescale Slope/Intercept or Modality LUT Sequence) as float32.
// Values are in the MONOCHROME2 sense: higher is brighter. For MONOCHROME1
// objects the values are inverted around the modality range of the stored
// bits: m' = lo + hi - m, where lo and hi are the smallest and largest
// modality values the stored bits can produce. The windows and VOI LUT in
// Image.Meta are transformed with the image (Meta.Inverted is set), so
// window.Apply(dst, im.Modality, im.Meta.Window[0]) gives exactly the display
// the standard prescribes, 1 - VOI(m), for either photometric interpretation.
// Presentation LUT Shape is reported but not applied: for the radiography IODs
// INVERSE accompanies MONOCHROME1 and says the same thing.
//
// # Display
//
// (*Image).Display, DisplayTo and VOI apply the VOI stage with package
// window: the VOI LUT Sequence when present, else the first valid window,
// else (colour) the full stored range, else window.AutoExcluding over the
// modality values without the Pixel Padding range. They live here so that
// window never depends on DICOM.
//
// # Scope
//
// Encodings: Part-10 files with or without preamble, bare data sets, implicit
// and explicit VR little endian, deflated explicit VR little endian.
// Supported: MONOCHROME1, MONOCHROME2 (1 sample per pixel), and RGB, YBR_FULL
// and YBR_FULL_422, which are reduced to luminance (Y of YCbCr; Rec. 601
// weights, rounded to an integer, for RGB); Bits Allocated 8 or 16, any Bits
// Stored and High Bit, signed or unsigned. Multi-frame objects: frame 0 is
// decoded and Meta.NumberOfFrames says how many there are; encapsulated
// frames are found through the Basic Offset Table, one fragment per frame,
// or (JPEG) the fragment ending with EOI.
// PALETTE COLOR, 1- and 32-bit data, float pixel data and the transfer syntaxes
// not listed above (JPEG 2000, JPEG-LS, 12-bit lossy JPEG, big endian, video)
// are rejected with ErrUnsupported or *UnsupportedTransferSyntaxError.
//
// Truncated or malformed objects give ErrTruncated or ErrMalformed, never a
// partial image.
package decode

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/cspine/cspine/pipeline/window"
)

// Sentinel errors, wrapped with context.
var (
	// ErrNotImage: the object is DICOM (or not DICOM at all) but carries no pixel data.
	ErrNotImage = errors.New("not a DICOM image")
	// ErrTruncated: the object ends before a length it declares.
	ErrTruncated = errors.New("truncated DICOM object")
	// ErrMalformed: the object violates the encoding rules or its attributes contradict each other.
	ErrMalformed = errors.New("malformed DICOM object")
	// ErrUnsupported: a valid image this package does not decode (also matched by
	// *UnsupportedTransferSyntaxError).
	ErrUnsupported = errors.New("unsupported DICOM image")
)

// UnsupportedTransferSyntaxError reports a transfer syntax this package does
// not decode. errors.Is(err, ErrUnsupported) holds for it.
type UnsupportedTransferSyntaxError struct {
	UID  string
	Name string
}

func (e *UnsupportedTransferSyntaxError) Error() string {
	return fmt.Sprintf("unsupported transfer syntax %s (%s)", e.Name, e.UID)
}

// Is makes errors.Is(err, ErrUnsupported) true.
func (e *UnsupportedTransferSyntaxError) Is(target error) bool { return target == ErrUnsupported }

// MaxPixels bounds Rows × Columns, so a hostile header cannot make the decoder
// allocate without limit (64 Mpixel: twice the largest detector in use).
const MaxPixels = 64 << 20

// maxFileSize bounds what Read accepts.
const maxFileSize = 2 << 30

// Image is a decoded single-frame grayscale image.
type Image struct {
	Rows, Cols int
	// Modality holds Rows*Cols modality values, row-major, MONOCHROME2 sense
	// (see the package documentation), not windowed.
	Modality []float32
	Meta     Meta
}

// Meta holds the header attributes the pipeline needs. String attributes are
// trimmed of padding; multi-valued ones (ImageType, PatientOrientation) keep
// their values joined with a backslash, as encoded.
type Meta struct {
	SOPClassUID, SOPInstanceUID, StudyInstanceUID, SeriesInstanceUID, TransferSyntaxUID string
	Modality, ViewPosition, BodyPartExamined, PatientOrientation, ImageType             string
	SeriesDescription, ProtocolName, StudyDescription                                   string

	Photometric                                                              string
	BitsAllocated, BitsStored, HighBit, PixelRepresentation, SamplesPerPixel int
	NumberOfFrames                                                           int
	RescaleSlope, RescaleIntercept                                           float64
	// HasModalityLUT is set when a Modality LUT Sequence replaced the rescale.
	HasModalityLUT bool

	// PixelSpacing and ImagerPixelSpacing are (row, column) in mm, nil when absent.
	PixelSpacing, ImagerPixelSpacing []float64
	// ERMF is Estimated Radiographic Magnification Factor (0018,1114), 0 when absent.
	ERMF float64

	// Window holds the valid windows of Window Center/Width (0028,1050/1051)
	// with VOI LUT Function and explanations, in the order of the object,
	// transformed like the pixels when Inverted.
	Window []window.Params
	// VOILUT is the first item of the VOI LUT Sequence, transformed like the
	// pixels when Inverted; nil when absent.
	VOILUT *window.LUT
	// PresentationLUTShape (2050,0020), reported, not applied.
	PresentationLUTShape string
	// Inverted is set when MONOCHROME1 values were inverted.
	Inverted bool
	// PixelPadding is the closed range of modality values (after inversion)
	// that Pixel Padding Value (0028,0120) and Pixel Padding Range Limit
	// (0028,0121) mark as padding; nil when absent. The automatic window
	// ignores these values.
	PixelPadding *[2]float64
	// Warnings lists header problems that did not prevent decoding, such as
	// an unparsable window that was ignored.
	Warnings []string
}

// File decodes the DICOM object in the named file: a Part-10 file, or a bare
// data set in implicit or explicit VR little endian.
func File(path string) (*Image, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	im, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return im, nil
}

// Read decodes a DICOM object of size bytes read from r. A negative size
// reads to EOF. Fewer than size bytes is ErrTruncated.
func Read(r io.Reader, size int64) (*Image, error) {
	var b []byte
	if size < 0 {
		var err error
		b, err = io.ReadAll(io.LimitReader(r, maxFileSize+1))
		if err != nil {
			return nil, fmt.Errorf("decode: read: %w", err)
		}
		if len(b) > maxFileSize {
			return nil, fmt.Errorf("decode: %w: object larger than %d bytes", ErrUnsupported, maxFileSize)
		}
	} else {
		if size > maxFileSize {
			return nil, fmt.Errorf("decode: %w: object of %d bytes is larger than %d", ErrUnsupported, size, maxFileSize)
		}
		b = make([]byte, size)
		if n, err := io.ReadFull(r, b); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("decode: %w: read %d of %d bytes", ErrTruncated, n, size)
			}
			return nil, fmt.Errorf("decode: read: %w", err)
		}
	}
	im, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return im, nil
}

// Decode decodes a DICOM object held in memory. The returned image does not
// reference b.
func Decode(b []byte) (*Image, error) {
	po, err := parseObject(b)
	if err != nil {
		return nil, err
	}
	return decodeImage(po)
}

// Attribute tags used below.
const (
	tagSOPClassUID         = 0x00080016
	tagSOPInstanceUID      = 0x00080018
	tagStudyInstanceUID    = 0x0020000D
	tagSeriesInstanceUID   = 0x0020000E
	tagModality            = 0x00080060
	tagImageType           = 0x00080008
	tagStudyDescription    = 0x00081030
	tagSeriesDescription   = 0x0008103E
	tagBodyPartExamined    = 0x00180015
	tagProtocolName        = 0x00181030
	tagERMF                = 0x00181114
	tagImagerPixelSpacing  = 0x00181164
	tagViewPosition        = 0x00185101
	tagPatientOrientation  = 0x00200020
	tagSamplesPerPixel     = 0x00280002
	tagPhotometric         = 0x00280004
	tagPlanarConfiguration = 0x00280006
	tagNumberOfFrames      = 0x00280008
	tagRows                = 0x00280010
	tagColumns             = 0x00280011
	tagPixelSpacing        = 0x00280030
	tagBitsAllocated       = 0x00280100
	tagBitsStored          = 0x00280101
	tagHighBit             = 0x00280102
	tagPixelRepresentation = 0x00280103
	tagWindowCenter        = 0x00281050
	tagWindowWidth         = 0x00281051
	tagRescaleIntercept    = 0x00281052
	tagRescaleSlope        = 0x00281053
	tagWindowExplanation   = 0x00281055
	tagVOILUTFunction      = 0x00281056
	tagLUTDescriptor       = 0x00283002
	tagLUTExplanation      = 0x00283003
	tagLUTData             = 0x00283006
	tagModalityLUTSequence = 0x00283000
	tagVOILUTSequence      = 0x00283010
	tagPresentationLUTShap = 0x20500020
	tagPixelPaddingValue   = 0x00280120
	tagPixelPaddingLimit   = 0x00280121
)

func readMeta(po *parsed) Meta {
	ds := po.ds
	m := Meta{
		SOPClassUID:          str(ds[tagSOPClassUID]),
		SOPInstanceUID:       str(ds[tagSOPInstanceUID]),
		StudyInstanceUID:     str(ds[tagStudyInstanceUID]),
		SeriesInstanceUID:    str(ds[tagSeriesInstanceUID]),
		TransferSyntaxUID:    po.ts,
		Modality:             str(ds[tagModality]),
		ViewPosition:         str(ds[tagViewPosition]),
		BodyPartExamined:     str(ds[tagBodyPartExamined]),
		PatientOrientation:   joined(ds[tagPatientOrientation]),
		ImageType:            joined(ds[tagImageType]),
		SeriesDescription:    str(ds[tagSeriesDescription]),
		ProtocolName:         str(ds[tagProtocolName]),
		StudyDescription:     str(ds[tagStudyDescription]),
		Photometric:          str(ds[tagPhotometric]),
		PresentationLUTShape: str(ds[tagPresentationLUTShap]),
	}
	if m.SOPClassUID == "" {
		m.SOPClassUID = str(po.meta[0x00020002])
	}
	if m.SOPInstanceUID == "" {
		m.SOPInstanceUID = str(po.meta[0x00020003])
	}
	spacing := func(t uint32, name string) []float64 {
		v, ok := floats(ds[t])
		if !ok || (len(v) != 0 && (len(v) != 2 || v[0] <= 0 || v[1] <= 0)) {
			m.Warnings = append(m.Warnings, fmt.Sprintf("ignored invalid %s %q", name, joined(ds[t])))
			return nil
		}
		return v
	}
	m.PixelSpacing = spacing(tagPixelSpacing, "PixelSpacing")
	m.ImagerPixelSpacing = spacing(tagImagerPixelSpacing, "ImagerPixelSpacing")
	if v, ok := floats(ds[tagERMF]); ok && len(v) > 0 && v[0] > 0 {
		m.ERMF = v[0]
	} else if ds[tagERMF] != nil && len(ds[tagERMF].val) > 0 {
		m.Warnings = append(m.Warnings, fmt.Sprintf("ignored invalid EstimatedRadiographicMagnificationFactor %q", joined(ds[tagERMF])))
	}
	return m
}

func joined(el *element) string {
	v := strs(el)
	s := ""
	for i, x := range v {
		if i > 0 {
			s += `\`
		}
		s += x
	}
	return s
}

// pixelFormat is the validated Image Pixel module.
type pixelFormat struct {
	rows, cols, spp, frames int
	bitsAlloc, bitsStored   int
	highBit                 int
	signed                  bool
	planar                  bool
	photometric             string
}

func (f pixelFormat) npix() int { return f.rows * f.cols }

func readPixelFormat(ds dataset, m *Meta) (pixelFormat, error) {
	var f pixelFormat
	var ok bool
	if f.rows, ok = us(ds[tagRows]); !ok || f.rows == 0 {
		return f, fmt.Errorf("%w: Rows missing or zero", ErrMalformed)
	}
	if f.cols, ok = us(ds[tagColumns]); !ok || f.cols == 0 {
		return f, fmt.Errorf("%w: Columns missing or zero", ErrMalformed)
	}
	if f.npix() > MaxPixels {
		return f, fmt.Errorf("%w: %d×%d pixels exceeds the limit of %d", ErrUnsupported, f.rows, f.cols, MaxPixels)
	}
	if f.spp, ok = us(ds[tagSamplesPerPixel]); !ok {
		f.spp = 1
	}
	if f.bitsAlloc, ok = us(ds[tagBitsAllocated]); !ok {
		return f, fmt.Errorf("%w: BitsAllocated missing", ErrMalformed)
	}
	if f.bitsAlloc != 8 && f.bitsAlloc != 16 {
		return f, fmt.Errorf("%w: BitsAllocated %d (only 8 and 16 are decoded)", ErrUnsupported, f.bitsAlloc)
	}
	if f.bitsStored, ok = us(ds[tagBitsStored]); !ok {
		f.bitsStored = f.bitsAlloc
	}
	if f.highBit, ok = us(ds[tagHighBit]); !ok {
		f.highBit = f.bitsStored - 1
	}
	if f.bitsStored < 1 || f.bitsStored > f.bitsAlloc || f.highBit >= f.bitsAlloc || f.highBit < f.bitsStored-1 {
		return f, fmt.Errorf("%w: BitsAllocated %d, BitsStored %d, HighBit %d are inconsistent", ErrMalformed, f.bitsAlloc, f.bitsStored, f.highBit)
	}
	pr, _ := us(ds[tagPixelRepresentation])
	if pr > 1 {
		return f, fmt.Errorf("%w: PixelRepresentation %d", ErrMalformed, pr)
	}
	f.signed = pr == 1
	f.frames = 1
	if el := ds[tagNumberOfFrames]; el != nil && len(el.val) > 0 {
		n, ok := integer(el)
		if !ok || n < 1 {
			return f, fmt.Errorf("%w: NumberOfFrames %q", ErrMalformed, str(el))
		}
		f.frames = n
	}
	pc, _ := us(ds[tagPlanarConfiguration])
	f.planar = pc == 1
	f.photometric = m.Photometric
	if f.photometric == "" && f.spp == 1 {
		f.photometric = "MONOCHROME2"
		m.Warnings = append(m.Warnings, "PhotometricInterpretation missing; MONOCHROME2 assumed")
	}
	switch f.photometric {
	case "MONOCHROME1", "MONOCHROME2":
		if f.spp != 1 {
			return f, fmt.Errorf("%w: %s with SamplesPerPixel %d", ErrMalformed, f.photometric, f.spp)
		}
	case "RGB", "YBR_FULL", "YBR_FULL_422":
		if f.spp != 3 {
			return f, fmt.Errorf("%w: %s with SamplesPerPixel %d", ErrMalformed, f.photometric, f.spp)
		}
		if f.signed {
			return f, fmt.Errorf("%w: signed %s", ErrUnsupported, f.photometric)
		}
	default:
		return f, fmt.Errorf("%w: PhotometricInterpretation %q (decoded: MONOCHROME1, MONOCHROME2, RGB, YBR_FULL, YBR_FULL_422)", ErrUnsupported, f.photometric)
	}
	m.Photometric = f.photometric
	m.BitsAllocated, m.BitsStored, m.HighBit = f.bitsAlloc, f.bitsStored, f.highBit
	m.PixelRepresentation, m.SamplesPerPixel, m.NumberOfFrames = pr, f.spp, f.frames
	return f, nil
}

func decodeImage(po *parsed) (*Image, error) {
	m := readMeta(po)
	m.Warnings = append(po.warnings, m.Warnings...)
	ds := po.ds
	pd := ds[tagPixelData]
	if pd == nil {
		if ds[tagFloatPixelData] != nil || ds[tagDoubleFloatPixels] != nil {
			return nil, fmt.Errorf("%w: float pixel data", ErrUnsupported)
		}
		return nil, fmt.Errorf("%w: no Pixel Data (SOP Class %s)", ErrNotImage, m.SOPClassUID)
	}
	f, err := readPixelFormat(ds, &m)
	if err != nil {
		return nil, err
	}
	syn := syntaxes[po.ts]
	if pd.encapsulated != (syn.codec != codecNative) {
		if pd.encapsulated {
			return nil, fmt.Errorf("%w: encapsulated Pixel Data in %s", ErrMalformed, syn.name)
		}
		return nil, fmt.Errorf("%w: native Pixel Data in %s", ErrMalformed, syn.name)
	}

	// Samples: one stored value per pixel (luminance for colour).
	var src sampleSource
	switch syn.codec {
	case codecNative:
		src, err = nativeSamples(pd.val, f)
	default:
		var data []byte
		data, err = frame0(pd, f.frames, syn.codec == codecJPEGBaseline || syn.codec == codecJPEGLossless)
		if err != nil {
			return nil, err
		}
		switch syn.codec {
		case codecRLE:
			src, err = decodeRLE(data, f)
		case codecJPEGLossless:
			src, err = decodeJPEGLossless(data, f)
		case codecJPEGBaseline:
			src, err = decodeJPEGBaseline(data, f, po.ts)
		}
	}
	if err != nil {
		return nil, err
	}

	mod, err := newModalityLUT(ds, f, &m)
	if err != nil {
		return nil, err
	}
	im := &Image{Rows: f.rows, Cols: f.cols, Meta: m}
	im.Modality = make([]float32, f.npix())
	src.apply(im.Modality, mod.table)
	readVOI(ds, f, mod, &im.Meta)
	im.Meta.PixelPadding = readPadding(ds, f, mod)
	return im, nil
}

// readPadding maps the Pixel Padding Value range (stored values, PS3.3
// C.7.5.1.1.2) to modality values.
func readPadding(ds dataset, f pixelFormat, ml *modalityLUT) *[2]float64 {
	pv, ok := us(ds[tagPixelPaddingValue])
	if !ok || f.spp != 1 {
		return nil
	}
	limit, ok := us(ds[tagPixelPaddingLimit])
	if !ok {
		limit = pv
	}
	a, b := pv, limit
	if f.signed {
		a, b = int(int16(uint16(a))), int(int16(uint16(b)))
	}
	if a > b {
		a, b = b, a
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for s := a; s <= b; s++ {
		v := ml.final(s)
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	return &[2]float64{lo, hi}
}

// modalityLUT maps every possible raw sample (a Bits Allocated wide word) to
// its final modality value: Bits Stored/High Bit extraction, sign extension,
// Modality LUT stage and, for MONOCHROME1, inversion.
type modalityLUT struct {
	table []float32
	// final maps a stored value to its final modality value.
	final func(s int) float64
	// lo and hi are the extreme modality values (before inversion).
	lo, hi float64
	invert bool
}

func newModalityLUT(ds dataset, f pixelFormat, m *Meta) (*modalityLUT, error) {
	slope, intercept := 1.0, 0.0
	if v, ok := floats(ds[tagRescaleSlope]); !ok {
		return nil, fmt.Errorf("%w: RescaleSlope %q", ErrMalformed, joined(ds[tagRescaleSlope]))
	} else if len(v) > 0 {
		slope = v[0]
	}
	if v, ok := floats(ds[tagRescaleIntercept]); !ok {
		return nil, fmt.Errorf("%w: RescaleIntercept %q", ErrMalformed, joined(ds[tagRescaleIntercept]))
	} else if len(v) > 0 {
		intercept = v[0]
	}
	if slope == 0 {
		return nil, fmt.Errorf("%w: RescaleSlope 0", ErrMalformed)
	}
	var lut *window.LUT
	if sq := ds[tagModalityLUTSequence]; sq != nil && len(sq.items) > 0 {
		var err error
		lut, err = readLUT(sq.items[0], f.signed, "Modality LUT")
		if err != nil {
			return nil, err
		}
		m.HasModalityLUT = true
		slope, intercept = 1, 0
	}
	m.RescaleSlope, m.RescaleIntercept = slope, intercept

	// Stored value range.
	smin, smax := 0, 1<<f.bitsStored-1
	if f.signed {
		smin, smax = -(1 << (f.bitsStored - 1)), 1<<(f.bitsStored-1)-1
	}
	modality := func(s int) float64 {
		if lut == nil {
			return float64(s)*slope + intercept
		}
		i := s - lut.FirstMapped
		if i < 0 {
			i = 0
		} else if i >= len(lut.Data) {
			i = len(lut.Data) - 1
		}
		return float64(lut.Data[i])
	}
	ml := &modalityLUT{lo: math.Inf(1), hi: math.Inf(-1)}
	if lut == nil {
		a, b := modality(smin), modality(smax)
		ml.lo, ml.hi = math.Min(a, b), math.Max(a, b)
	} else {
		for _, d := range lut.Data {
			ml.lo = math.Min(ml.lo, float64(d))
			ml.hi = math.Max(ml.hi, float64(d))
		}
	}
	ml.invert = f.photometric == "MONOCHROME1"
	m.Inverted = ml.invert
	sum := ml.lo + ml.hi

	ml.final = func(s int) float64 {
		v := modality(s)
		if ml.invert {
			v = sum - v
		}
		return v
	}
	shift := uint(f.highBit + 1 - f.bitsStored)
	mask := 1<<f.bitsStored - 1
	signBit := 1 << (f.bitsStored - 1)
	ml.table = make([]float32, 1<<f.bitsAlloc)
	for raw := range ml.table {
		s := (raw >> shift) & mask
		if f.signed && s&signBit != 0 {
			s -= 1 << f.bitsStored
		}
		ml.table[raw] = float32(ml.final(s))
	}
	return ml, nil
}

// readLUT reads a Modality or VOI LUT Sequence item (PS3.3 C.11.1, C.11.2).
func readLUT(item dataset, pixelSigned bool, what string) (*window.LUT, error) {
	desc := item[tagLUTDescriptor]
	d := uint16s(desc)
	if len(d) != 3 {
		return nil, fmt.Errorf("%w: %s Descriptor has %d values", ErrMalformed, what, len(d))
	}
	n := int(d[0])
	if n == 0 {
		n = 1 << 16
	}
	first := int(d[1])
	// The first mapped value is SS when the input can be negative.
	if desc.vr == "SS" || (desc.vr == "" && pixelSigned) {
		first = int(int16(d[1]))
	}
	bits := int(d[2])
	if bits < 8 || bits > 16 {
		return nil, fmt.Errorf("%w: %s Descriptor bits %d", ErrMalformed, what, bits)
	}
	data := uint16s(item[tagLUTData])
	if len(data) < n {
		return nil, fmt.Errorf("%w: %s Data has %d entries, descriptor says %d", ErrMalformed, what, len(data), n)
	}
	return &window.LUT{FirstMapped: first, Data: data[:n], Bits: bits, Explanation: str(item[tagLUTExplanation])}, nil
}

// readVOI fills Meta.Window and Meta.VOILUT, transformed for inversion.
// Problems are recorded as warnings: the VOI stage is presentation, and the
// automatic window is a safe fallback.
func readVOI(ds dataset, f pixelFormat, ml *modalityLUT, m *Meta) {
	sum := ml.lo + ml.hi
	if sq := ds[tagVOILUTSequence]; sq != nil && len(sq.items) > 0 {
		// The VOI LUT input is the modality value, which is signed when a
		// rescale can make it negative.
		lut, err := readLUT(sq.items[0], f.signed || ml.lo < 0, "VOI LUT")
		if err != nil {
			m.Warnings = append(m.Warnings, "ignored VOI LUT Sequence: "+err.Error())
		} else {
			if ml.invert {
				lut = invertLUT(lut, sum)
			}
			m.VOILUT = lut
		}
	}
	centers, ok1 := floats(ds[tagWindowCenter])
	widths, ok2 := floats(ds[tagWindowWidth])
	if !ok1 || !ok2 {
		m.Warnings = append(m.Warnings, fmt.Sprintf("ignored unparsable window center %q / width %q", joined(ds[tagWindowCenter]), joined(ds[tagWindowWidth])))
		return
	}
	if len(centers) != len(widths) {
		m.Warnings = append(m.Warnings, fmt.Sprintf("%d window centers but %d widths; pairs beyond the shorter list ignored", len(centers), len(widths)))
	}
	fn, err := window.ParseFunction(str(ds[tagVOILUTFunction]))
	if err != nil {
		m.Warnings = append(m.Warnings, err.Error()+"; LINEAR used")
	}
	expl := strs(ds[tagWindowExplanation])
	for i := 0; i < len(centers) && i < len(widths); i++ {
		p := window.Params{Center: centers[i], Width: widths[i], Function: fn}
		if i < len(expl) {
			p.Explanation = expl[i]
		}
		if !p.Valid() {
			m.Warnings = append(m.Warnings, fmt.Sprintf("ignored window %d: width %g is invalid for %s", i, p.Width, fn))
			continue
		}
		if ml.invert {
			// Apply(lo+hi-x, p') = 1 - Apply(x, p); see window.Apply's formulas.
			if fn == window.Linear {
				p.Center = sum + 1 - p.Center
			} else {
				p.Center = sum - p.Center
			}
		}
		m.Window = append(m.Window, p)
	}
}

// invertLUT returns the LUT that, applied to lo+hi-x, gives the complement of
// lut applied to x.
func invertLUT(lut *window.LUT, sum float64) *window.LUT {
	n := len(lut.Data)
	maxOut := uint16(1<<lut.Bits - 1)
	data := make([]uint16, n)
	for i := range data {
		d := lut.Data[n-1-i]
		if d > maxOut {
			d = maxOut
		}
		data[i] = maxOut - d
	}
	return &window.LUT{
		FirstMapped: int(math.Round(sum)) - (lut.FirstMapped + n - 1),
		Data:        data,
		Bits:        lut.Bits,
		Explanation: lut.Explanation,
	}
}

// IsColor reports whether the object was colour, reduced to luminance.
func (m *Meta) IsColor() bool { return m.SamplesPerPixel == 3 }

// DisplayParams describes the VOI transformation Display applies.
type DisplayParams struct {
	// Source is "voi_lut", "window", "full_range" (colour without a window)
	// or "auto".
	Source string
	Window window.Params // for "window", "full_range" and "auto"
	LUT    *window.LUT   // for "voi_lut"
}

// VOI picks the VOI transformation: the VOI LUT Sequence when present, else
// the first window, else (for colour) the full stored range, else
// window.Auto over the modality values, ignoring pixel padding.
func (im *Image) VOI() DisplayParams {
	switch {
	case im.Meta.VOILUT != nil:
		return DisplayParams{Source: "voi_lut", LUT: im.Meta.VOILUT}
	case len(im.Meta.Window) > 0:
		return DisplayParams{Source: "window", Window: im.Meta.Window[0]}
	case im.Meta.IsColor():
		full := float64(uint32(1)<<im.Meta.BitsStored - 1)
		return DisplayParams{Source: "full_range", Window: window.Params{
			Center: full / 2, Width: full, Function: window.LinearExact, Explanation: "FULL RANGE"}}
	case im.Meta.PixelPadding != nil:
		p := im.Meta.PixelPadding
		return DisplayParams{Source: "auto", Window: window.AutoExcluding(im.Modality, float32(p[0]), float32(p[1]))}
	default:
		return DisplayParams{Source: "auto", Window: window.Auto(im.Modality)}
	}
}

// Display returns the windowed image in [0,1] (0 black), row-major, using VOI.
// It lives here rather than in package window so that window stays free of
// DICOM.
func (im *Image) Display() []float32 {
	dst := make([]float32, len(im.Modality))
	im.DisplayTo(dst)
	return dst
}

// DisplayTo is Display into dst, which must hold Rows*Cols values.
func (im *Image) DisplayTo(dst []float32) DisplayParams {
	p := im.VOI()
	if p.LUT != nil {
		window.ApplyLUT(dst, im.Modality, p.LUT)
	} else {
		window.Apply(dst, im.Modality, p.Window)
	}
	return p
}
