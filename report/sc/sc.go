// Package sc writes the cspine overlay as a Secondary Capture Image (PS3.3
// A.8.1): the windowed source image at full resolution with the landmarks,
// the extended C2 and C7 inferior endplate lines, the C2 plumb line for SVA
// burned in, and a text panel right of the image with the values, the model
// version, the review banner and the disclaimer. Text is drawn with the Go
// fonts (golang.org/x/image/font/gofont). At full resolution (the default)
// the image part keeps the source pixel grid: SC pixel (x,y) is source pixel
// (x,y); Options.MaxDimension asks for an integer block-average downscale
// with Pixel Spacing scaled to match.
package sc

import (
	"errors"
	"fmt"
	"image"
	"strconv"
	"strings"
	"time"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/report/dicomio"
)

// SecondaryCaptureImageStorage is the SOP Class UID of the overlay.
const SecondaryCaptureImageStorage = "1.2.840.10008.5.1.4.1.1.7"

// SeriesDescription of every cspine overlay series.
const SeriesDescription = "cspine AI C-spine alignment overlay (verify before use)"

// Options configure the overlay object. ContentTime and Device are required.
type Options struct {
	Device          dicomio.Device
	InstitutionName string
	ContentTime     time.Time
	// Revision is 0 for machine output, n for the n-th reviewed version.
	Revision int
	// SeriesNumber overrides dicomio.SeriesNumber(src, KindSC).
	SeriesNumber int
	// Verified, when set, shows the human review (Revision must be >= 1).
	Verified *Verification
	// MaxDimension, when > 0, downscales images whose larger side exceeds
	// it by the smallest integer factor k that fits (k x k block average);
	// landmarks are mapped into the smaller grid and Pixel Spacing is
	// multiplied by k. 0 (the default) keeps full resolution.
	MaxDimension int
}

// ErrInvalid is wrapped by every error about unusable input.
var ErrInvalid = errors.New("invalid overlay input")

// SeriesInstanceUID returns the overlay series UID for a source image.
func SeriesInstanceUID(src dicomio.Source) string {
	return dicomio.UID("cspine", "sc-series", src.SOPInstanceUID)
}

// InstanceUID returns the overlay's SOP Instance UID for a source image,
// model version and revision.
func InstanceUID(src dicomio.Source, modelVersion string, revision int) string {
	return dicomio.UID("cspine", "sc", src.SOPInstanceUID, modelVersion, strconv.Itoa(revision))
}

// Build renders the overlay and returns it as a Secondary Capture dataset.
// display is the windowed source image: rows*cols values in [0,1].
func Build(src dicomio.Source, res result.Result, display []float32, rows, cols int, opts Options) (dicom.Dataset, error) {
	if err := validate(src, res, rows, cols, opts); err != nil {
		return dicom.Dataset{}, err
	}
	k := scaleFactor(rows, cols, opts.MaxDimension)
	display, rows, cols = downscale(display, rows, cols, k)
	res = scaleResult(res, k)
	img, layout, err := Render(res, display, rows, cols, RenderOptions{Verified: opts.Verified})
	if err != nil {
		return dicom.Dataset{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	t := opts.ContentTime
	seriesNo := opts.SeriesNumber
	if seriesNo == 0 {
		seriesNo = dicomio.SeriesNumber(src, dicomio.KindSC)
	}
	var b dicomio.Builder
	b.AddAll(src.PatientStudy...)
	// SOP Common.
	b.AddSOPCommon(SecondaryCaptureImageStorage, InstanceUID(src, res.Model.Version, opts.Revision), t)
	// General Series.
	b.Add(dicomio.Str(tag.Modality, "CS", "OT"))
	b.Add(dicomio.Str(tag.SeriesInstanceUID, "UI", SeriesInstanceUID(src)))
	b.Add(dicomio.Str(tag.SeriesNumber, "IS", strconv.Itoa(seriesNo)))
	b.Add(dicomio.Str(tag.SeriesDescription, "LO", SeriesDescription))
	// Body Part Examined tells validators (and hanging protocols) that the
	// body part is the unpaired cervical spine, so Laterality (Type 2C,
	// paired body parts only) is absent.
	b.Add(dicomio.Str(tag.BodyPartExamined, "CS", "CSPINE"))
	b.Add(dicomio.Str(tag.SeriesDate, "DA", dicomio.Date(t)))
	b.Add(dicomio.Str(tag.SeriesTime, "TM", dicomio.Time(t)))
	// General Equipment and SC Equipment.
	eq, err := opts.Device.Equipment(opts.InstitutionName, res.Model.Name, res.Model.Version)
	if err != nil {
		return dicom.Dataset{}, fmt.Errorf("sc: %w", err)
	}
	b.AddAll(eq...)
	b.Add(dicomio.Str(tag.ConversionType, "CS", "WSD"))
	b.Add(dicomio.Str(tag.SecondaryCaptureDeviceManufacturer, "LO", opts.Device.Manufacturer))
	b.Add(dicomio.Str(tag.SecondaryCaptureDeviceManufacturerModelName, "LO", opts.Device.ModelName))
	b.Add(dicomio.Str(tag.SecondaryCaptureDeviceSoftwareVersions, "LO", opts.Device.SoftwareVersions(res.Model.Name, res.Model.Version)...))
	// General Image and SC Image.
	b.Add(dicomio.Str(tag.InstanceNumber, "IS", strconv.Itoa(opts.Revision+1)))
	b.Add(dicomio.Str(tag.PatientOrientation, "CS", src.PatientOrientation...))
	b.Add(dicomio.Str(tag.ContentDate, "DA", dicomio.Date(t)))
	b.Add(dicomio.Str(tag.ContentTime, "TM", dicomio.Time(t)))
	b.Add(dicomio.Str(tag.ImageType, "CS", "DERIVED", "SECONDARY"))
	b.Add(dicomio.Str(tag.DerivationDescription, "ST", derivation(res, layout, k)))
	var ref dicomio.Builder
	ref.Add(dicomio.Str(tag.ReferencedSOPClassUID, "UI", src.SOPClassUID))
	ref.Add(dicomio.Str(tag.ReferencedSOPInstanceUID, "UI", src.SOPInstanceUID))
	refItem, err := ref.Elements()
	if err != nil {
		return dicom.Dataset{}, fmt.Errorf("sc: %w", err)
	}
	b.Add(dicomio.Seq(tag.SourceImageSequence, refItem))
	b.Add(dicomio.Str(tag.BurnedInAnnotation, "CS", "YES"))
	lossy := "00"
	if src.LossyImageCompression == "01" {
		lossy = "01" // the source was lossy compressed: say so downstream
	}
	b.Add(dicomio.Str(tag.LossyImageCompression, "CS", lossy))
	b.Add(dicomio.Str(tag.DateOfSecondaryCapture, "DA", dicomio.Date(t)))
	b.Add(dicomio.Str(tag.TimeOfSecondaryCapture, "TM", dicomio.Time(t)))
	if ps := calibratedSpacing(res); ps != nil {
		b.Add(dicomio.Str(tag.PixelSpacing, "DS", ps...))
		if res.SpacingSource == result.SpacingImagerERMF {
			b.Add(dicomio.Str(tag.PixelSpacingCalibrationType, "CS", "GEOMETRY"))
			b.Add(dicomio.Str(tag.PixelSpacingCalibrationDescription, "LO",
				"source Imager Pixel Spacing divided by its ERMF"))
		}
	}
	// Image Pixel: 8-bit RGB, interleaved.
	bounds := img.Bounds()
	w, h := bounds.Dx(), bounds.Dy()
	b.Add(dicomio.Ints(tag.SamplesPerPixel, "US", 3))
	b.Add(dicomio.Str(tag.PhotometricInterpretation, "CS", "RGB"))
	b.Add(dicomio.Ints(tag.PlanarConfiguration, "US", 0))
	b.Add(dicomio.Ints(tag.Rows, "US", h))
	b.Add(dicomio.Ints(tag.Columns, "US", w))
	b.Add(dicomio.Ints(tag.BitsAllocated, "US", 8))
	b.Add(dicomio.Ints(tag.BitsStored, "US", 8))
	b.Add(dicomio.Ints(tag.HighBit, "US", 7))
	b.Add(dicomio.Ints(tag.PixelRepresentation, "US", 0))
	b.Add(pixelData(img))
	elems, err := b.Elements()
	if err != nil {
		return dicom.Dataset{}, fmt.Errorf("sc: %w", err)
	}
	return dicomio.NewDataset(elems)
}

func validate(src dicomio.Source, res result.Result, rows, cols int, opts Options) error {
	var errs []string
	if res.Status != result.StatusOK {
		errs = append(errs, fmt.Sprintf("result status %q is not %q", res.Status, result.StatusOK))
	}
	if res.SOPInstanceUID != "" && res.SOPInstanceUID != src.SOPInstanceUID {
		errs = append(errs, "result is for another SOP instance than the source")
	}
	if res.Model == nil || res.Model.Name == "" || res.Model.Version == "" {
		errs = append(errs, "result has no model name and version")
	}
	if src.SOPInstanceUID == "" || src.SOPClassUID == "" || src.StudyInstanceUID == "" {
		errs = append(errs, "source lacks SOP class, SOP instance or study UID")
	}
	if src.Rows != 0 && (src.Rows != rows || src.Columns != cols) {
		errs = append(errs, fmt.Sprintf("display is %dx%d but the source is %dx%d", rows, cols, src.Rows, src.Columns))
	}
	if rows > 65535 || cols > 65535 {
		errs = append(errs, "image too large")
	}
	if opts.ContentTime.IsZero() {
		errs = append(errs, "Options.ContentTime is required")
	}
	if err := opts.Device.Validate(); err != nil {
		errs = append(errs, err.Error())
	}
	if (opts.Verified != nil) != (opts.Revision > 0) {
		errs = append(errs, "a reviewed overlay needs Revision >= 1 and Verified, a machine overlay neither")
	}
	if len(errs) > 0 {
		return fmt.Errorf("sc: %w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

// calibratedSpacing returns Pixel Spacing (row, column) for the SC when the
// result's spacing is calibrated to the patient: copied PixelSpacing, or
// Imager Pixel Spacing corrected by the magnification factor. Detector-plane
// spacing alone ("imager") is not written as Pixel Spacing, which viewers
// would take for a patient-plane calibration.
func calibratedSpacing(res result.Result) []string {
	if len(res.PixelSpacingMM) != 2 {
		return nil
	}
	switch res.SpacingSource {
	case result.SpacingPixelSpacing, result.SpacingImagerERMF:
	default:
		return nil
	}
	out := make([]string, 2)
	for i, v := range res.PixelSpacingMM {
		s, _, err := dicomio.DS(v)
		if err != nil || v <= 0 {
			return nil
		}
		out[i] = s
	}
	return out
}

func derivation(res result.Result, l Layout, k int) string {
	scale := "full resolution"
	if k > 1 {
		scale = fmt.Sprintf("downscaled 1:%d by %dx%d block average", k, k, k)
	}
	s := fmt.Sprintf("Windowed source image (%s, %dx%d) with cspine AI landmarks, C2 and C7 inferior "+
		"endplate lines, C2 plumb line and values burned in; text panel %d px wide on the right; model %s %s",
		scale, l.ImageWidth, l.ImageHeight, l.PanelWidth, res.Model.Name, res.Model.Version)
	if res.Review != nil && res.Review.Required {
		s += "; flagged for review: " + strings.Join(res.Review.Reasons, ", ")
	}
	return dicomio.Shorten(s, 1024)
}

// pixelData returns the RGB pixel data (OB, even length) of img.
func pixelData(img *image.RGBA) (*dicom.Element, error) {
	b := img.Bounds()
	n := b.Dx() * b.Dy() * 3
	raw := make([]byte, n, n+1)
	i := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		row := img.Pix[(y-b.Min.Y)*img.Stride:]
		for x := 0; x < b.Dx(); x++ {
			raw[i], raw[i+1], raw[i+2] = row[4*x], row[4*x+1], row[4*x+2]
			i += 3
		}
	}
	if len(raw)%2 == 1 {
		raw = append(raw, 0)
	}
	v, err := dicom.NewValue(dicom.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: raw})
	if err != nil {
		return nil, err
	}
	return &dicom.Element{Tag: tag.PixelData, ValueRepresentation: tag.VRBytes, RawValueRepresentation: "OB", Value: v}, nil
}
