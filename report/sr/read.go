package sr

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/report/param"
)

// Report is what Read finds in a cspine measurement report: enough for the
// review UI to show a stored report and to start an amendment from it.
type Report struct {
	Reference      Reference
	Completion     string // CompletionFlag
	Verification   string // VerificationFlag
	InstanceNumber int
	// Source is the image the measurements were made on (Image Library).
	Source ImageRef
	// AlgorithmName and AlgorithmVersion of the first group (TID 4019).
	AlgorithmName, AlgorithmVersion string
	Measurements                    []Measurement
	ReviewRequired                  bool
	// ReviewReasons are the spec's reason keys, mapped back from the codes.
	ReviewReasons []string
	ReviewStatus  Code
	// C7Obscuration is the contract's grade ("none", "partial",
	// "complete"), "" when the report has none.
	C7Obscuration string
}

// Measurement is one TID 1501 group.
type Measurement struct {
	TrackingID, TrackingUID string
	Concept                 Code
	// Value is nil when the Measured Value Sequence is empty; Qualifier
	// then says why.
	Value     *float64
	Unit      Code
	Qualifier *Code
	SCoords   []SCoord
}

// SCoord is one spatial coordinate item of a NUM.
type SCoord struct {
	Purpose Code
	Graphic string
	// Points are in the measurement contract's pixel coordinates (pixel
	// centres at integers), i.e. GraphicData - 0.5.
	Points []result.Point
	Image  ImageRef
}

// Read parses a measurement report written by Build.
func Read(ds dicom.Dataset) (Report, error) {
	var r Report
	if s := str(ds.Elements, tag.SOPClassUID); s != ComprehensiveSRStorage {
		return Report{}, fmt.Errorf("sr: read: SOP class %q is not Comprehensive SR", s)
	}
	r.Reference = Reference{StudyInstanceUID: str(ds.Elements, tag.StudyInstanceUID),
		SeriesInstanceUID: str(ds.Elements, tag.SeriesInstanceUID),
		SOPClassUID:       ComprehensiveSRStorage, SOPInstanceUID: str(ds.Elements, tag.SOPInstanceUID)}
	r.Completion = str(ds.Elements, tag.CompletionFlag)
	r.Verification = str(ds.Elements, tag.VerificationFlag)
	r.InstanceNumber, _ = strconv.Atoi(str(ds.Elements, tag.InstanceNumber))
	if c, ok := code(ds.Elements, tag.ConceptNameCodeSequence); !ok || !c.Equal(codeImagingMeasurementReport) {
		return Report{}, fmt.Errorf("sr: read: root is not a TID 1500 Imaging Measurement Report")
	}
	for _, it := range items(ds.Elements, tag.ContentSequence) {
		name, _ := code(it, tag.ConceptNameCodeSequence)
		switch {
		case name.Equal(codeImageLibrary):
			for _, g := range items(it, tag.ContentSequence) {
				for _, e := range items(g, tag.ContentSequence) {
					if str(e, tag.ValueType) == vtImage {
						r.Source = imageRef(e)
					}
				}
			}
		case name.Equal(codeImagingMeasurements):
			for _, g := range items(it, tag.ContentSequence) {
				m, err := readGroup(g, &r)
				if err != nil {
					return Report{}, err
				}
				r.Measurements = append(r.Measurements, m)
			}
		case name.Equal(codeQualitativeEvaluations):
			for _, q := range items(it, tag.ContentSequence) {
				qn, _ := code(q, tag.ConceptNameCodeSequence)
				v, _ := code(q, tag.ConceptCodeSequence)
				switch {
				case qn.Equal(codeReviewReq):
					r.ReviewRequired = v.Equal(codeYes)
				case qn.Equal(codeReviewRsn):
					key := ""
					for k, c := range reasonCodes {
						if c.Equal(v) {
							key = k
						}
					}
					if key == "" {
						return Report{}, fmt.Errorf("sr: read: unknown review reason code %s", v)
					}
					r.ReviewReasons = append(r.ReviewReasons, key)
				case qn.Equal(codeReviewState):
					r.ReviewStatus = v
				case qn.Equal(codeC7Obscured):
					for k, c := range obscurationCodes {
						if c.Equal(v) {
							r.C7Obscuration = k
						}
					}
				}
			}
		}
	}
	if r.Source.SOPInstanceUID == "" {
		return Report{}, fmt.Errorf("sr: read: no image in the image library")
	}
	return r, nil
}

func readGroup(g []*dicom.Element, r *Report) (Measurement, error) {
	var m Measurement
	for _, it := range items(g, tag.ContentSequence) {
		name, _ := code(it, tag.ConceptNameCodeSequence)
		switch {
		case name.Equal(codeTrackingIdentifier):
			m.TrackingID = str(it, tag.TextValue)
		case name.Equal(codeTrackingUID):
			m.TrackingUID = str(it, tag.UID)
		case name.Equal(codeAlgorithmName) && r.AlgorithmName == "":
			r.AlgorithmName = str(it, tag.TextValue)
		case name.Equal(codeAlgorithmVersion) && r.AlgorithmVersion == "":
			r.AlgorithmVersion = str(it, tag.TextValue)
		case str(it, tag.ValueType) == vtNum:
			m.Concept = name
			if mv := items(it, tag.MeasuredValueSequence); len(mv) > 0 {
				v, err := strconv.ParseFloat(str(mv[0], tag.NumericValue), 64)
				if err != nil {
					return Measurement{}, fmt.Errorf("sr: read: %s: numeric value: %w", m.TrackingID, err)
				}
				if fv := floats(mv[0], tag.FloatingPointValue); len(fv) == 1 {
					v = fv[0]
				}
				m.Value = &v
				m.Unit, _ = code(mv[0], tag.MeasurementUnitsCodeSequence)
			} else if q, ok := code(it, tag.NumericValueQualifierCodeSequence); ok {
				m.Qualifier = &q
			}
			for _, sc := range items(it, tag.ContentSequence) {
				if str(sc, tag.ValueType) != vtSCoord {
					continue
				}
				s := SCoord{Graphic: str(sc, tag.GraphicType)}
				s.Purpose, _ = code(sc, tag.ConceptNameCodeSequence)
				gd := floats(sc, tag.GraphicData)
				for i := 0; i+1 < len(gd); i += 2 {
					s.Points = append(s.Points, result.Point{X: gd[i] - 0.5, Y: gd[i+1] - 0.5})
				}
				if imgs := items(sc, tag.ContentSequence); len(imgs) > 0 {
					s.Image = imageRef(imgs[0])
				}
				m.SCoords = append(m.SCoords, s)
			}
		}
	}
	if m.TrackingUID == "" {
		return Measurement{}, fmt.Errorf("sr: read: measurement group without tracking UID")
	}
	return m, nil
}

// Landmarks returns the landmarks found in the report's coordinates, by
// name (the points of each group, named through the parameter table).
// Coordinates are float32-rounded as stored in GraphicData.
func (r Report) Landmarks() map[string]result.Point {
	byLabel := map[string]param.Param{}
	for _, p := range param.All() {
		byLabel[p.Label] = p
	}
	out := map[string]result.Point{}
	for _, m := range r.Measurements {
		p, ok := byLabel[m.TrackingID]
		if !ok || len(m.SCoords) != len(p.Lines) {
			continue
		}
		for i, l := range p.Lines {
			if len(m.SCoords[i].Points) != 2 {
				continue
			}
			out[l[0]] = m.SCoords[i].Points[0]
			out[l[1]] = m.SCoords[i].Points[1]
		}
	}
	return out
}

// Element access helpers for parsed datasets.

func find(es []*dicom.Element, t tag.Tag) *dicom.Element {
	for _, e := range es {
		if e.Tag == t {
			return e
		}
	}
	return nil
}

func str(es []*dicom.Element, t tag.Tag) string {
	e := find(es, t)
	if e == nil || e.Value == nil {
		return ""
	}
	v, ok := e.Value.GetValue().([]string)
	if !ok || len(v) == 0 {
		return ""
	}
	return strings.TrimRight(strings.Join(v, `\`), " \x00")
}

func floats(es []*dicom.Element, t tag.Tag) []float64 {
	e := find(es, t)
	if e == nil || e.Value == nil {
		return nil
	}
	v, _ := e.Value.GetValue().([]float64)
	return v
}

func items(es []*dicom.Element, t tag.Tag) [][]*dicom.Element {
	e := find(es, t)
	if e == nil || e.Value == nil || e.Value.ValueType() != dicom.Sequences {
		return nil
	}
	var out [][]*dicom.Element
	for _, it := range e.Value.GetValue().([]*dicom.SequenceItemValue) {
		out = append(out, it.GetValue().([]*dicom.Element))
	}
	return out
}

func code(es []*dicom.Element, t tag.Tag) (Code, bool) {
	its := items(es, t)
	if len(its) == 0 {
		return Code{}, false
	}
	return Code{Value: str(its[0], tag.CodeValue), Scheme: str(its[0], tag.CodingSchemeDesignator),
		Meaning: str(its[0], tag.CodeMeaning)}, true
}

func imageRef(es []*dicom.Element) ImageRef {
	refs := items(es, tag.ReferencedSOPSequence)
	if len(refs) == 0 {
		return ImageRef{}
	}
	return ImageRef{SOPClassUID: str(refs[0], tag.ReferencedSOPClassUID), SOPInstanceUID: str(refs[0], tag.ReferencedSOPInstanceUID)}
}
