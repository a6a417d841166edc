// Package reporttest builds synthetic inputs for the report writers (a
// source DICOM radiograph of a drawn cervical spine, its display pixels and
// a measurement result whose numbers follow shared/spec/measurements.md) and
// runs the real validators and peers against what they write: dciodvfy,
// dcmdump, dsrdump, pydicom and Orthanc.
package reporttest

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/report/dicomio"
)

// CaseOptions choose a synthetic case.
type CaseOptions struct {
	Rows, Cols int // default 1000 x 800
	// Flagged marks the result for review (c7_low_confidence; plus
	// no_pixel_spacing when NoSpacing).
	Flagged bool
	// NoSpacing leaves the source without any pixel spacing: SVA is null.
	NoSpacing bool
	// PatientName defaults to "Phantom^Cervical".
	PatientName string
	// Seed varies the geometry and the UIDs.
	Seed uint64
}

// Case is one synthetic source image with its analysis result.
type Case struct {
	SourceBytes []byte
	Source      dicom.Dataset // parsed back from SourceBytes
	Result      result.Result
	Display     []float32 // rows*cols, [0,1], row-major
	Rows, Cols  int
}

// Device is the device identification used in tests.
var Device = struct {
	Manufacturer, ModelName, Name, UID, SoftwareVersion string
}{"cspine project", "cspine", "CSPINE-TEST", dicomio.UID("cspine", "test-device"), "0.1.0-test"}

// NewCase builds a synthetic case.
func NewCase(tb testing.TB, o CaseOptions) Case {
	tb.Helper()
	if o.Rows == 0 {
		o.Rows, o.Cols = 1000, 800
	}
	if o.PatientName == "" {
		o.PatientName = "Phantom^Cervical"
	}
	rows, cols := o.Rows, o.Cols
	lms := spineLandmarks(rows, cols, o.Seed)
	spacing := 0.15 * 1000 / float64(rows) // keeps the neck ~ the same size in mm
	res := result.Result{
		File: "synthetic.dcm", Status: result.StatusOK, Facing: result.FacingLeft,
		Landmarks: lms, C7: &result.C7{Confidence: 0.9, Obscuration: result.ObscurationNone},
		Review:         &result.Review{Required: false, Reasons: []string{}},
		PixelSpacingMM: []float64{spacing, spacing}, SpacingSource: result.SpacingImager,
		Model: &result.Model{Name: "cspine-phantom", Version: "1.0.0", Mode: result.ModeHierarchical},
	}
	res.Parameters = Parameters(lms, spacing)
	if o.NoSpacing {
		res.Parameters.C2C7SVAmm = nil
		res.PixelSpacingMM = nil
		res.SpacingSource = result.SpacingNone
		res.Review.Required = true
		res.Review.Reasons = append(res.Review.Reasons, result.ReasonNoPixelSpacing)
	}
	if o.Flagged {
		res.Review.Required = true
		res.C7.Confidence = 0.41
		res.Review.Reasons = append([]string{result.ReasonC7LowConfidence}, res.Review.Reasons...)
	}
	pix16, display := drawSpine(rows, cols, lms, o.Seed)

	study := dicomio.UID("reporttest", "study", fmt.Sprint(o.Seed))
	series := dicomio.UID("reporttest", "series", fmt.Sprint(o.Seed))
	inst := dicomio.UID("reporttest", "instance", fmt.Sprint(o.Seed), fmt.Sprint(o.NoSpacing), fmt.Sprint(rows))
	res.SOPInstanceUID, res.StudyInstanceUID = inst, study

	var b dicomio.Builder
	b.Add(dicomio.Str(tag.SOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.1")) // CR Image Storage
	b.Add(dicomio.Str(tag.SOPInstanceUID, "UI", inst))
	b.Add(dicomio.Str(tag.StudyDate, "DA", "20260102"))
	b.Add(dicomio.Str(tag.StudyTime, "TM", "101500"))
	b.Add(dicomio.Str(tag.AccessionNumber, "SH", "ACC0001"))
	b.Add(dicomio.Str(tag.Modality, "CS", "CR"))
	b.Add(dicomio.Str(tag.ReferringPhysicianName, "PN", "Referrer^Rita"))
	b.Add(dicomio.Str(tag.StudyDescription, "LO", "XR CERVICAL SPINE"))
	b.Add(dicomio.Str(tag.PatientName, "PN", o.PatientName))
	b.Add(dicomio.Str(tag.PatientID, "LO", "PHANTOM-0001"))
	b.Add(dicomio.Str(tag.PatientBirthDate, "DA", "19700101"))
	b.Add(dicomio.Str(tag.PatientSex, "CS", "O"))
	b.Add(dicomio.Str(tag.BodyPartExamined, "CS", "CSPINE"))
	b.Add(dicomio.Str(tag.ViewPosition, "CS", "LL"))
	if !o.NoSpacing {
		b.Add(dicomio.Str(tag.ImagerPixelSpacing, "DS", fmt.Sprintf("%.6g", spacing), fmt.Sprintf("%.6g", spacing)))
	}
	b.Add(dicomio.Str(tag.StudyInstanceUID, "UI", study))
	b.Add(dicomio.Str(tag.SeriesInstanceUID, "UI", series))
	b.Add(dicomio.Str(tag.StudyID, "SH", "1"))
	b.Add(dicomio.Str(tag.SeriesNumber, "IS", "3"))
	b.Add(dicomio.Str(tag.InstanceNumber, "IS", "1"))
	b.Add(dicomio.Str(tag.PatientOrientation, "CS", "A", "F"))
	b.Add(dicomio.Ints(tag.SamplesPerPixel, "US", 1))
	b.Add(dicomio.Str(tag.PhotometricInterpretation, "CS", "MONOCHROME2"))
	b.Add(dicomio.Ints(tag.Rows, "US", rows))
	b.Add(dicomio.Ints(tag.Columns, "US", cols))
	b.Add(dicomio.Ints(tag.BitsAllocated, "US", 16))
	b.Add(dicomio.Ints(tag.BitsStored, "US", 12))
	b.Add(dicomio.Ints(tag.HighBit, "US", 11))
	b.Add(dicomio.Ints(tag.PixelRepresentation, "US", 0))
	raw := make([]byte, 2*len(pix16))
	for i, v := range pix16 {
		raw[2*i], raw[2*i+1] = byte(v), byte(v>>8)
	}
	b.Add(&dicom.Element{Tag: tag.PixelData, ValueRepresentation: tag.VRBytes, RawValueRepresentation: "OW",
		Value: mustValue(tb, dicom.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: raw})}, nil)
	elems, err := b.Elements()
	if err != nil {
		tb.Fatalf("reporttest: build source: %v", err)
	}
	ds, err := dicomio.NewDataset(elems)
	if err != nil {
		tb.Fatalf("reporttest: source dataset: %v", err)
	}
	bs, err := dicomio.Encode(ds)
	if err != nil {
		tb.Fatalf("reporttest: encode source: %v", err)
	}
	parsed, err := dicom.Parse(bytes.NewReader(bs), int64(len(bs)), nil, dicom.SkipPixelData())
	if err != nil {
		tb.Fatalf("reporttest: parse source back: %v", err)
	}
	return Case{SourceBytes: bs, Source: parsed, Result: res, Display: display, Rows: rows, Cols: cols}
}

func mustValue(tb testing.TB, v any) dicom.Value {
	val, err := dicom.NewValue(v)
	if err != nil {
		tb.Fatalf("reporttest: %v", err)
	}
	return val
}

// spineLandmarks places the 23 landmarks of a lordotic cervical spine facing
// left (anterior toward smaller x), scaled to the image.
func spineLandmarks(rows, cols int, seed uint64) []result.Landmark {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	s := float64(rows) / 1000
	var lms []result.Landmark
	add := func(name string, x, y float64) {
		lms = append(lms, result.Landmark{Name: name, X: round2(x), Y: round2(y), Confidence: 0.95, Stage: result.StageRefined})
	}
	// Vertebral body centres on an arc, tilts increasing caudally (lordosis).
	cx0, cy0 := float64(cols)*0.50, 260*s
	for i, n := 0, 2; n <= 7; i, n = i+1, n+1 {
		cy := cy0 + float64(i)*118*s
		cx := cx0 + 40*s*math.Sin(float64(i)*0.55) + float64(i*i)*4*s
		tilt := (-8 + 4.5*float64(i) + (r.Float64()-0.5)*3) * math.Pi / 180
		w, h := 150*s, 90*s
		if n == 2 {
			h = 150 * s
		}
		corner := func(dx, dy float64) (float64, float64) {
			// anterior is -x; positive tilt lowers the anterior corner.
			return cx + dx*math.Cos(tilt) + dy*math.Sin(tilt), cy + dx*math.Sin(-tilt) + dy*math.Cos(tilt)
		}
		name := fmt.Sprintf("C%d_", n)
		if n == 2 {
			add("C2_centroid", cx, cy)
		} else {
			x, y := corner(-w/2, -h/2)
			add(name+"sup_ant", x, y)
			x, y = corner(w/2, -h/2)
			add(name+"sup_post", x, y)
		}
		x, y := corner(-w/2, h/2)
		add(name+"inf_ant", x, y)
		x, y = corner(w/2, h/2)
		add(name+"inf_post", x, y)
	}
	return lms
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// Parameters computes the contract's parameters from landmarks (spec
// formulas), for the synthetic result.
func Parameters(lms []result.Landmark, spacing float64) *result.Parameters {
	idx := map[string]result.Landmark{}
	for _, l := range lms {
		idx[l.Name] = l
	}
	slope := func(v, which string) float64 {
		a, p := idx[v+"_"+which+"_ant"], idx[v+"_"+which+"_post"]
		return math.Atan2(a.Y-p.Y, math.Abs(a.X-p.X)) * 180 / math.Pi
	}
	p := &result.Parameters{
		C2SlopeDeg: slope("C2", "inf"), C7SlopeDeg: slope("C7", "inf"), C7SupSlopeDeg: slope("C7", "sup"),
		SegmentalDeg: map[string]float64{},
	}
	p.C2C7CobbDeg = p.C7SlopeDeg - p.C2SlopeDeg
	for n := 2; n <= 6; n++ {
		p.SegmentalDeg[fmt.Sprintf("C%d-C%d", n, n+1)] = slope(fmt.Sprintf("C%d", n+1), "inf") - slope(fmt.Sprintf("C%d", n), "inf")
	}
	// Facing left: anterior is smaller x; positive when C2 is anterior.
	sva := (idx["C7_sup_post"].X - idx["C2_centroid"].X) * spacing
	p.C2C7SVAmm = &sva
	return p
}

// drawSpine renders a crude radiograph: soft tissue, vertebral bodies as
// bright quadrilaterals, deterministic noise. It returns stored 12-bit
// values and the display image in [0,1].
func drawSpine(rows, cols int, lms []result.Landmark, seed uint64) ([]uint16, []float32) {
	r := rand.New(rand.NewPCG(seed, 0xd1a9))
	idx := map[string]result.Landmark{}
	for _, l := range lms {
		idx[l.Name] = l
	}
	type quad [4][2]float64
	var quads []quad
	for n := 3; n <= 7; n++ {
		v := fmt.Sprintf("C%d_", n)
		quads = append(quads, quad{
			{idx[v+"sup_ant"].X, idx[v+"sup_ant"].Y}, {idx[v+"sup_post"].X, idx[v+"sup_post"].Y},
			{idx[v+"inf_post"].X, idx[v+"inf_post"].Y}, {idx[v+"inf_ant"].X, idx[v+"inf_ant"].Y},
		})
	}
	// C2: body from its inferior endplate up to twice the centroid distance.
	a, p, c := idx["C2_inf_ant"], idx["C2_inf_post"], idx["C2_centroid"]
	quads = append(quads, quad{
		{2*c.X - p.X, 2*c.Y - p.Y}, {2*c.X - a.X, 2*c.Y - a.Y}, {p.X, p.Y}, {a.X, a.Y},
	})
	inside := func(q quad, x, y float64) bool {
		sign := 0.0
		for i := 0; i < 4; i++ {
			x1, y1 := q[i][0], q[i][1]
			x2, y2 := q[(i+1)%4][0], q[(i+1)%4][1]
			cr := (x2-x1)*(y-y1) - (y2-y1)*(x-x1)
			if cr == 0 {
				continue
			}
			if sign == 0 {
				sign = cr
			} else if (cr > 0) != (sign > 0) {
				return false
			}
		}
		return true
	}
	pix := make([]uint16, rows*cols)
	disp := make([]float32, rows*cols)
	neck := float64(cols) * 0.5
	for y := 0; y < rows; y++ {
		for x := 0; x < cols; x++ {
			fx, fy := float64(x), float64(y)
			v := 0.08
			d := math.Abs(fx-neck) / (float64(cols) * 0.33)
			if d < 1 {
				v += 0.25 * (1 - d*d)
			}
			if fy > float64(rows)*0.88 { // shoulders
				v += 0.2
			}
			for _, q := range quads {
				if inside(q, fx, fy) {
					v += 0.45
					break
				}
			}
			v += (r.Float64() - 0.5) * 0.04
			v = math.Min(1, math.Max(0, v))
			pix[y*cols+x] = uint16(math.Round(v * 4095))
			disp[y*cols+x] = float32(pix[y*cols+x]) / 4095
		}
	}
	return pix, disp
}
