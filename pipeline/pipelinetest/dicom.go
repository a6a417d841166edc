// Package pipelinetest holds test helpers for the pipeline and its
// commands: a small DICOM writer for native grey images, a wrapper that turns
// a JPEG radiograph into a Secondary Capture object, and locations of the
// shared real-world files and reference models.
package pipelinetest

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"image"
	"image/draw"
	_ "image/jpeg" // JPEG radiographs
	_ "image/png"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// SOP classes used by the helpers.
const (
	SecondaryCaptureClass  = "1.2.840.10008.5.1.4.1.1.7"
	DXPresentationClass    = "1.2.840.10008.5.1.4.1.1.1.1"
	CRClass                = "1.2.840.10008.5.1.4.1.1.1"
	ExplicitVRLittleEndian = "1.2.840.10008.1.2.1"
)

// Image describes a native single-frame grey DICOM object to write.
type Image struct {
	Rows, Cols int
	// Bits is 8 or 16 (Bits Allocated = Bits Stored); Pix holds Rows*Cols
	// stored values.
	Bits int
	Pix  []uint16
	// Photometric defaults to MONOCHROME2.
	Photometric string
	// SOPClassUID defaults to Secondary Capture; Modality to "OT".
	SOPClassUID, Modality                               string
	SOPInstanceUID, StudyInstanceUID, SeriesInstanceUID string
	ViewPosition, SeriesDescription, BodyPartExamined   string
	PatientOrientation                                  string
	PixelSpacing, ImagerPixelSpacing                    []float64
	WindowCenter, WindowWidth                           float64 // used when WindowWidth > 0
}

func ds(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// WriteDICOM writes im as a Part-10 file in explicit VR little endian.
func WriteDICOM(tb testing.TB, path string, im Image) {
	tb.Helper()
	if err := writeDICOM(path, im); err != nil {
		tb.Fatalf("write %s: %v", path, err)
	}
}

func writeDICOM(path string, im Image) error {
	if len(im.Pix) != im.Rows*im.Cols {
		return fmt.Errorf("%d values for %d×%d", len(im.Pix), im.Cols, im.Rows)
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&im.Photometric, "MONOCHROME2")
	def(&im.SOPClassUID, SecondaryCaptureClass)
	def(&im.Modality, "OT")
	def(&im.SOPInstanceUID, "2.25.1001")
	def(&im.StudyInstanceUID, "2.25.1002")
	def(&im.SeriesInstanceUID, "2.25.1003")
	if im.Bits == 0 {
		im.Bits = 16
	}
	var elems []*dicom.Element
	var err error
	add := func(t tag.Tag, v any) {
		if err != nil {
			return
		}
		var e *dicom.Element
		e, err = dicom.NewElement(t, v)
		if err == nil {
			elems = append(elems, e)
		}
	}
	str := func(t tag.Tag, v ...string) { add(t, v) }
	str(tag.MediaStorageSOPClassUID, im.SOPClassUID)
	str(tag.MediaStorageSOPInstanceUID, im.SOPInstanceUID)
	str(tag.TransferSyntaxUID, ExplicitVRLittleEndian)
	str(tag.SOPClassUID, im.SOPClassUID)
	str(tag.SOPInstanceUID, im.SOPInstanceUID)
	str(tag.Modality, im.Modality)
	if im.SeriesDescription != "" {
		str(tag.SeriesDescription, im.SeriesDescription)
	}
	if im.BodyPartExamined != "" {
		str(tag.BodyPartExamined, im.BodyPartExamined)
	}
	if len(im.ImagerPixelSpacing) == 2 {
		str(tag.ImagerPixelSpacing, ds(im.ImagerPixelSpacing[0]), ds(im.ImagerPixelSpacing[1]))
	}
	if im.ViewPosition != "" {
		str(tag.ViewPosition, im.ViewPosition)
	}
	str(tag.StudyInstanceUID, im.StudyInstanceUID)
	str(tag.SeriesInstanceUID, im.SeriesInstanceUID)
	if im.PatientOrientation != "" {
		str(tag.PatientOrientation, im.PatientOrientation)
	}
	add(tag.SamplesPerPixel, []int{1})
	str(tag.PhotometricInterpretation, im.Photometric)
	add(tag.Rows, []int{im.Rows})
	add(tag.Columns, []int{im.Cols})
	if len(im.PixelSpacing) == 2 {
		str(tag.PixelSpacing, ds(im.PixelSpacing[0]), ds(im.PixelSpacing[1]))
	}
	add(tag.BitsAllocated, []int{im.Bits})
	add(tag.BitsStored, []int{im.Bits})
	add(tag.HighBit, []int{im.Bits - 1})
	add(tag.PixelRepresentation, []int{0})
	if im.WindowWidth > 0 {
		str(tag.WindowCenter, ds(im.WindowCenter))
		str(tag.WindowWidth, ds(im.WindowWidth))
	}
	var raw []byte
	if im.Bits == 8 {
		raw = make([]byte, len(im.Pix)+len(im.Pix)%2)
		for i, v := range im.Pix {
			raw[i] = byte(v)
		}
	} else {
		raw = make([]byte, 2*len(im.Pix))
		for i, v := range im.Pix {
			binary.LittleEndian.PutUint16(raw[2*i:], v)
		}
	}
	add(tag.PixelData, dicom.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: raw})
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := dicom.Write(w, dicom.Dataset{Elements: elems}, dicom.SkipVRVerification()); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WrapImageFile decodes a grey JPEG or PNG radiograph and writes it as an
// 8-bit MONOCHROME2 Secondary Capture object without pixel spacing (as a
// scanned film arrives), returning the image size.
func WrapImageFile(tb testing.TB, src, dst string, im Image) (rows, cols int) {
	tb.Helper()
	f, err := os.Open(src)
	if err != nil {
		tb.Fatalf("wrap %s: %v", src, err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		tb.Fatalf("wrap %s: %v", src, err)
	}
	b := img.Bounds()
	gray := image.NewGray(b)
	draw.Draw(gray, b, img, b.Min, draw.Src)
	im.Rows, im.Cols, im.Bits = b.Dy(), b.Dx(), 8
	im.Pix = make([]uint16, im.Rows*im.Cols)
	for y := 0; y < im.Rows; y++ {
		for x := 0; x < im.Cols; x++ {
			im.Pix[y*im.Cols+x] = uint16(gray.Pix[y*gray.Stride+x])
		}
	}
	WriteDICOM(tb, dst, im)
	return im.Rows, im.Cols
}

// RepoRoot returns the repository root (the directory with go.mod).
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("pipelinetest: cannot locate source")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Realworld returns the path of a file under ../shared/realworld, failing
// the test with a clear message when it is missing.
func Realworld(tb testing.TB, rel string) string {
	tb.Helper()
	p := filepath.Join(RepoRoot(tb), "..", "shared", "realworld", rel)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("real-world test file missing (expected beside the repository in ../shared/realworld): %v", err)
	}
	return p
}
