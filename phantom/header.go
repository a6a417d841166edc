package phantom

import (
	"fmt"
	"math"
	"time"

	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/cspine/cspine/pipeline/result"
)

// header holds the DICOM attributes of one image that are sampled, and the
// values the quantisation step fills in.
type header struct {
	modality      string // CR or DX
	sopClass      string
	transfer      string
	sopUID        string
	studyUID      string
	seriesUID     string
	photometric   string
	bitsStored    int
	signed        bool
	slope, icept  float64
	voi           string // "window", "two_windows", "sigmoid", "lut", "none"
	windows       [][2]float64
	lut           []int
	lutFirst      int
	spacingSource string
	rowSpacing    float64 // spacing the spec's rules give (mm)
	colSpacing    float64
	tags          string // which spacing attributes are written: pixel, imager, imager_ermf, none
	viewPosition  string
	bodyPart      string
	kind          string
	studyDesc     string
	seriesDesc    string
	protocol      string
}

func sampleHeader(s *sampler, o Options, p planned, kind string) *header {
	h := &header{kind: kind}
	if s.chance(0.5) {
		h.modality, h.sopClass = "DX", sopDXPresentation
	} else {
		h.modality, h.sopClass = "CR", sopCR
	}
	h.transfer = tsExplicitLE
	if s.chance(0.4) {
		h.transfer = tsImplicitLE
	}
	h.sopUID = uidFor(o.Seed, fmt.Sprintf("sop/%d", p.index))
	h.studyUID = uidFor(o.Seed, fmt.Sprintf("study/%d", p.study))
	h.seriesUID = uidFor(o.Seed, fmt.Sprintf("series/%d", p.index))
	h.photometric = "MONOCHROME2"
	if s.chance(map[string]float64{"CR": 0.55, "DX": 0.25}[h.modality]) {
		h.photometric = "MONOCHROME1"
	}
	h.bitsStored = []int{10, 12, 12, 12, 14, 15, 16}[s.intn(7)]
	h.slope, h.icept = 1, 0
	if h.modality == "CR" && s.chance(0.35) {
		h.slope = []float64{0.5, 1, 2}[s.intn(3)]
		h.icept = []float64{-1024, -100, 0, 512}[s.intn(4)]
	}
	if h.modality == "CR" && h.bitsStored == 16 && s.chance(0.5) {
		h.signed = true
	}
	switch k := s.pick(0.5, 0.15, 0.1, 0.17, 0.08); {
	case k == 0:
		h.voi = "window"
	case k == 1:
		h.voi = "two_windows"
	case k == 2:
		h.voi = "sigmoid"
	case k == 3:
		h.voi = "lut"
	default:
		h.voi = "none"
		if h.modality == "DX" { // DX For Presentation requires a VOI
			h.voi = "window"
		}
	}
	// Spacing attributes.
	if h.modality == "DX" {
		h.tags = []string{"imager", "imager_ermf", "pixel"}[s.pick(0.5, 0.25, 0.25)]
	} else {
		// ERMF belongs to the DX Positioning module: CR objects carry it
		// only as a standard extension, so the phantom keeps it to DX.
		h.tags = []string{"none", "imager", "pixel"}[s.pick(0.15, 0.5, 0.35)]
	}
	switch kind {
	case "lateral":
		h.viewPosition = []string{"LL", "RL"}[s.intn(2)]
		h.bodyPart = "CSPINE"
		h.studyDesc = []string{"XR CERVICAL SPINE", "C-SPINE 2 VIEWS", "XR C SPINE LAT", "CERVICAL SPINE"}[s.intn(4)]
		h.seriesDesc = []string{"C-Spine Lateral", "LAT", "Cervical LAT", "C SPINE LATERAL"}[s.intn(4)]
		h.protocol = "C-SPINE LAT"
	case NegativeAP:
		h.viewPosition = "AP"
		h.bodyPart = "CSPINE"
		h.studyDesc = "XR CERVICAL SPINE"
		h.seriesDesc = []string{"C-Spine AP", "AP", "Cervical AP"}[s.intn(3)]
		h.protocol = "C-SPINE AP"
	case NegativeChest:
		h.viewPosition = "PA"
		h.bodyPart = "CHEST"
		h.studyDesc = "XR CHEST PA"
		h.seriesDesc = "Chest PA"
		h.protocol = "CHEST PA"
	case NegativeTooSmall:
		h.viewPosition = "LL"
		h.bodyPart = "CSPINE"
		h.studyDesc = "XR CERVICAL SPINE"
		h.seriesDesc = "Cervical LAT (thumbnail)"
		h.protocol = "C-SPINE LAT"
	}
	return h
}

// setSpacing records which spacing the spec's rules give for this header.
func (h *header) setSpacing(im *imaging) {
	switch h.tags {
	case "pixel":
		h.spacingSource = result.SpacingPixelSpacing
		h.rowSpacing, h.colSpacing = parseDS(ds(im.ps)), parseDS(ds(im.ps))
	case "imager_ermf":
		h.spacingSource = result.SpacingImagerERMF
		v := parseDS(ds(im.ips)) / parseDS(ds(im.mag))
		h.rowSpacing, h.colSpacing = v, v
	case "imager":
		h.spacingSource = result.SpacingImager
		h.rowSpacing, h.colSpacing = parseDS(ds(im.ips)), parseDS(ds(im.ips))
	default:
		h.spacingSource = result.SpacingNone
	}
}

func parseDS(s string) float64 {
	var v float64
	fmt.Sscan(s, &v)
	return v
}

// quantize maps the log-signal image to stored values: the detector's
// processing window (percentiles inside the collimated field) spread over
// the stored bits, MONOCHROME1 inverted, and the VOI written to match.
func (h *header) quantize(s *sampler, v []float32, im *imaging) []uint16 {
	h.setSpacing(im)
	W, H := im.cols, im.rows
	// Statistics inside the collimated field.
	l := clampInt(int(im.collim[0])+8, 0, W-1)
	t := clampInt(int(im.collim[1])+8, 0, H-1)
	r := clampInt(int(im.collim[2])-8, l+1, W)
	b := clampInt(int(im.collim[3])-8, t+1, H)
	sample := make([]float32, 0, 60000)
	step := int(math.Max(1, math.Sqrt(float64((r-l)*(b-t))/50000)))
	for y := t; y < b; y += step {
		for x := l; x < r; x += step {
			sample = append(sample, v[y*W+x])
		}
	}
	pc := percentiles(sample, 0.002, 0.998)
	lo, hi := pc[0], pc[1]
	if hi-lo < 1e-6 {
		hi = lo + 1
	}
	maxv := float64(int(1)<<h.bitsStored - 1)
	gamma := s.uniform(0.85, 1.15)
	px := getU16(len(v))
	// Stored values span part of the range, as real detectors do.
	off := s.uniform(0.02, 0.1) * maxv
	span := s.uniform(0.75, 0.88) * maxv
	inv := h.photometric == "MONOCHROME1"
	// The detector's tone curve as a table, interpolated linearly.
	const nt = 4096
	var tone [nt + 2]float64
	for k := range tone {
		q := math.Min(1, float64(k)/nt)
		sv := off + span*math.Pow(q, gamma)
		if inv {
			sv = maxv - sv
		}
		tone[k] = sv + 0.5
	}
	scale := nt / (hi - lo)
	for i, x := range v {
		q := (float64(x) - lo) * scale
		if q < 0 {
			q = 0
		} else if q > nt {
			q = nt
		}
		k := int(q)
		f := q - float64(k)
		px[i] = uint16(tone[k] + f*(tone[k+1]-tone[k]))
	}
	if h.signed {
		// Signed storage: shift the range to straddle zero (two's complement
		// in 16 bits); the rescale intercept restores the modality values.
		shift := int(1) << (h.bitsStored - 1)
		for i, p := range px {
			px[i] = uint16(int16(int(p) - shift))
		}
		h.icept += float64(shift) * h.slope
	}
	// Window from the anatomy (stored → modality units).
	stored := func(q float64) float64 {
		sv := off + span*math.Pow(q, gamma)
		if inv {
			sv = maxv - sv
		}
		return sv
	}
	mod := func(sv float64) float64 {
		if h.signed {
			sv -= float64(int(1) << (h.bitsStored - 1))
		}
		return sv*h.slope + h.icept
	}
	a, c := mod(stored(0.03)), mod(stored(0.97))
	if a > c {
		a, c = c, a
	}
	center, width := (a+c)/2, (c-a)*s.uniform(0.85, 1.25)
	h.windows = [][2]float64{{math.Round(center), math.Max(2, math.Round(width))}}
	if h.voi == "two_windows" {
		h.windows = append(h.windows, [2]float64{math.Round(center), math.Round(width * 1.6)})
	}
	if h.voi == "lut" {
		// A VOI LUT over the modality range: a smooth S-curve, 16-bit output (DX allows 8 or 16 bits per entry).
		first := int(math.Floor(math.Min(a, c) - 0.1*(c-a)))
		n := int(math.Ceil(1.2*(c-a))) + 1
		if n > 65535 {
			n = 65535
		}
		if first < 0 {
			// LUT Descriptor's first value is US here; a negative first
			// mapped value cannot be expressed, so use a window instead.
			h.voi = "window"
			return px
		}
		h.lutFirst = first
		h.lut = make([]int, n)
		for i := range h.lut {
			x := (float64(i) - float64(n)/2) / (float64(n) / 5)
			h.lut[i] = int(math.Round(65535 / (1 + math.Exp(-x))))
		}
	}
	return px
}

// dataset builds the whole object for an image of the given kind.
func (h *header) dataset(s *sampler, o Options, p planned, im *imaging, px []uint16) *dsBuilder {
	b := &dsBuilder{}
	// File meta information.
	b.add(tag.FileMetaInformationVersion, []byte{0, 1})
	b.str(tag.MediaStorageSOPClassUID, h.sopClass)
	b.str(tag.MediaStorageSOPInstanceUID, h.sopUID)
	b.str(tag.TransferSyntaxUID, h.transfer)
	b.str(tag.ImplementationClassUID, implementationUID)
	b.str(tag.ImplementationVersionName, implementationName)

	st := newSampler(o.Seed, p.study, 7) // study-level facts shared by its images
	base := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC).Add(time.Duration(st.intn(300*24*60)) * time.Minute)
	age := 18 + st.intn(70)
	birth := base.AddDate(-age, -st.intn(12), -st.intn(28))
	sex := []string{"F", "M"}[st.intn(2)]
	acqTime := base.Add(time.Duration(p.series*2) * time.Minute)

	b.str(tag.SpecificCharacterSet, "ISO_IR 100")
	imageType := []string{"ORIGINAL", "PRIMARY"}
	b.str(tag.ImageType, imageType...)
	b.str(tag.SOPClassUID, h.sopClass)
	b.str(tag.SOPInstanceUID, h.sopUID)
	b.str(tag.StudyDate, base.Format("20060102"))
	b.str(tag.SeriesDate, base.Format("20060102"))
	b.str(tag.ContentDate, acqTime.Format("20060102"))
	b.str(tag.StudyTime, base.Format("150405"))
	b.str(tag.SeriesTime, acqTime.Format("150405"))
	b.str(tag.ContentTime, acqTime.Format("150405"))
	b.str(tag.AccessionNumber, fmt.Sprintf("PH%08d", p.study))
	b.str(tag.Modality, h.modality)
	if h.modality == "DX" {
		b.str(tag.PresentationIntentType, "FOR PRESENTATION")
	}
	b.str(tag.Manufacturer, "cspine phantom")
	b.str(tag.InstitutionName, "Synthetic Phantom Hospital")
	b.str(tag.ReferringPhysicianName, "")
	b.str(tag.StudyDescription, h.studyDesc)
	b.str(tag.SeriesDescription, h.seriesDesc)
	b.str(tag.ManufacturerModelName, "cspine-phantom")
	b.str(tag.PatientName, fmt.Sprintf("PHANTOM^P%05d", p.study))
	b.str(tag.PatientID, fmt.Sprintf("PH%06d", p.study))
	b.str(tag.PatientBirthDate, birth.Format("20060102"))
	b.str(tag.PatientSex, sex)
	b.str(tag.PatientAge, fmt.Sprintf("%03dY", age))
	b.str(tag.BodyPartExamined, h.bodyPart)
	b.str(tag.SoftwareVersions, "cspine-phantom 1")
	b.str(tag.ProtocolName, h.protocol)
	kvp := math.Round(s.uniform(65, 85))
	b.str(tag.KVP, ds(kvp))
	sid := []float64{1500, 1800, 1800, 1830}[s.intn(4)]
	if im != nil && h.kind != NegativeTooSmall {
		b.str(tag.DistanceSourceToDetector, ds(sid))
		b.str(tag.DistanceSourceToPatient, ds(sid/parseDS(ds(im.mag))))
	}
	b.str(tag.ViewPosition, h.viewPosition)
	if h.modality == "DX" {
		b.str(tag.DetectorType, "SCINTILLATOR")
	}
	switch h.tags {
	case "imager", "imager_ermf":
		b.str(tag.ImagerPixelSpacing, ds(im.ips), ds(im.ips))
		if h.tags == "imager_ermf" {
			b.str(tag.EstimatedRadiographicMagnificationFactor, ds(im.mag))
		}
	case "pixel":
		if h.modality == "DX" {
			b.str(tag.ImagerPixelSpacing, ds(im.ips), ds(im.ips))
		}
		b.str(tag.PixelSpacing, ds(im.ps), ds(im.ps))
		b.str(tag.PixelSpacingCalibrationType, "GEOMETRY")
		b.str(tag.PixelSpacingCalibrationDescription, "magnification corrected at the mid-sagittal plane")
	}
	b.str(tag.StudyInstanceUID, h.studyUID)
	b.str(tag.SeriesInstanceUID, h.seriesUID)
	b.str(tag.StudyID, fmt.Sprintf("%d", p.study+1))
	b.str(tag.SeriesNumber, fmt.Sprintf("%d", p.series))
	b.str(tag.InstanceNumber, "1")
	b.str(tag.PatientOrientation, h.patientOrientation(im)...)
	if h.modality == "DX" {
		b.str(tag.ImageLaterality, "U")
		anat := &dsBuilder{}
		code := map[string][3]string{"CSPINE": {"122494005", "SCT", "Cervical spine"}, "CHEST": {"51185008", "SCT", "Chest"}}[h.bodyPart]
		anat.str(tag.CodeValue, code[0])
		anat.str(tag.CodingSchemeDesignator, code[1])
		anat.str(tag.CodeMeaning, code[2])
		b.seq(tag.AnatomicRegionSequence, anat)
		b.seq(tag.AcquisitionContextSequence)
		b.str(tag.PositionerType, "COLUMN")
		view := map[string][3]string{
			"LL": {"399067008", "SCT", "lateral"}, "RL": {"399067008", "SCT", "lateral"},
			"AP": {"399348003", "SCT", "antero-posterior"}, "PA": {"399300004", "SCT", "postero-anterior"},
		}[h.viewPosition]
		vc := &dsBuilder{}
		vc.str(tag.CodeValue, view[0])
		vc.str(tag.CodingSchemeDesignator, view[1])
		vc.str(tag.CodeMeaning, view[2])
		b.seq(tag.ViewCodeSequence, vc)
	}
	b.ints(tag.SamplesPerPixel, 1)
	b.str(tag.PhotometricInterpretation, h.photometric)
	b.ints(tag.Rows, im.rows)
	b.ints(tag.Columns, im.cols)
	b.ints(tag.BitsAllocated, 16)
	b.ints(tag.BitsStored, h.bitsStored)
	b.ints(tag.HighBit, h.bitsStored-1)
	rep := 0
	if h.signed {
		rep = 1
	}
	b.ints(tag.PixelRepresentation, rep)
	b.str(tag.BurnedInAnnotation, "NO")
	b.str(tag.LossyImageCompression, "00")
	if h.modality == "DX" || h.slope != 1 || h.icept != 0 || s.chance(0.5) {
		b.str(tag.RescaleIntercept, ds(h.icept))
		b.str(tag.RescaleSlope, ds(h.slope))
		b.str(tag.RescaleType, "US")
	}
	if h.modality == "DX" {
		b.str(tag.PixelIntensityRelationship, "LOG")
		sign := -1
		if h.photometric == "MONOCHROME1" {
			sign = 1
		}
		b.ints(tag.PixelIntensityRelationshipSign, sign)
		if h.photometric == "MONOCHROME1" {
			b.str(tag.PresentationLUTShape, "INVERSE")
		} else {
			b.str(tag.PresentationLUTShape, "IDENTITY")
		}
	}
	switch h.voi {
	case "window", "two_windows", "sigmoid":
		var c, w, ex []string
		for k, win := range h.windows {
			c = append(c, ds(win[0]))
			w = append(w, ds(win[1]))
			ex = append(ex, []string{"DEFAULT", "WIDE"}[k])
		}
		b.str(tag.WindowCenter, c...)
		b.str(tag.WindowWidth, w...)
		b.str(tag.WindowCenterWidthExplanation, ex...)
		if h.voi == "sigmoid" {
			b.str(tag.VOILUTFunction, "SIGMOID")
		}
	case "lut":
		it := &dsBuilder{}
		n := len(h.lut)
		it.ints(tag.LUTDescriptor, n, h.lutFirst, 16)
		it.str(tag.LUTExplanation, "PROCESSED")
		it.lutDataOW(h.lut)
		b.seq(tag.VOILUTSequence, it)
	}
	b.pixelData(px)
	return b
}

// patientOrientation gives the row and column directions: anterior is toward
// smaller x when the patient faces image-left, so rows run posterior.
func (h *header) patientOrientation(im *imaging) []string {
	switch h.kind {
	case NegativeAP:
		return []string{"R", "F"}
	case NegativeChest:
		return []string{"L", "F"}
	}
	if im.faceRight {
		return []string{"A", "F"}
	}
	return []string{"P", "F"}
}
