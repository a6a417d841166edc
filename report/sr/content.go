package sr

import (
	"fmt"
	"math"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/cspine/cspine/report/dicomio"
)

// Relationship types (PS3.3 Table C.17.3-8) and value types (C.17.3-7).
const (
	relContains     = "CONTAINS"
	relHasObsCtx    = "HAS OBS CONTEXT"
	relHasConcept   = "HAS CONCEPT MOD"
	relHasAcqCtx    = "HAS ACQ CONTEXT"
	relInferredFrom = "INFERRED FROM"
	relSelectedFrom = "SELECTED FROM"

	vtContainer = "CONTAINER"
	vtText      = "TEXT"
	vtCode      = "CODE"
	vtNum       = "NUM"
	vtUIDRef    = "UIDREF"
	vtPName     = "PNAME"
	vtImage     = "IMAGE"
	vtSCoord    = "SCOORD"
)

// Graphic types of SCOORD (PS3.3 C.18.6.1.2) used here.
const (
	GraphicPolyline   = "POLYLINE"
	GraphicMultipoint = "MULTIPOINT"
	GraphicPoint      = "POINT"
)

// ImageRef references one composite instance (SOP Instance Reference).
type ImageRef struct {
	SOPClassUID    string
	SOPInstanceUID string
}

// Num is the value of a NUM content item. A nil Value leaves the Measured
// Value Sequence empty and requires a Qualifier (PS3.3 C.18.1).
type Num struct {
	Value     *float64
	Unit      Code
	Qualifier *Code
}

// Item is one content item of the SR tree. It is built once, immutable in
// use, and turned into elements by encode.
type Item struct {
	Rel        string // empty for the root
	ValueType  string
	Name       *Code // nil for IMAGE children of SCOORD and library entries
	Text       string
	Code       Code
	UID        string
	PName      string
	Num        Num
	Image      ImageRef
	Graphic    string
	Points     []float64 // (column,row) pairs in DICOM image coordinates
	Continuity string    // CONTAINER: "SEPARATE" or "CONTINUOUS"
	Template   string    // CONTAINER: TID of the root, e.g. "1500"
	Children   []Item
}

func named(c Code) *Code { return &c }

// encode returns the elements of one content item (PS3.3 C.17.3 Document
// Content Macro plus the value macro of its value type), children included.
func (it Item) encode() ([]*dicom.Element, error) {
	var b dicomio.Builder
	if it.Rel != "" {
		b.Add(dicomio.Str(tag.RelationshipType, "CS", it.Rel))
	}
	b.Add(dicomio.Str(tag.ValueType, "CS", it.ValueType))
	if it.Name != nil {
		b.Add(it.Name.seq(tag.ConceptNameCodeSequence))
	}
	switch it.ValueType {
	case vtContainer:
		b.Add(dicomio.Str(tag.ContinuityOfContent, "CS", it.Continuity))
		if it.Template != "" {
			var tb dicomio.Builder
			tb.Add(dicomio.Str(tag.MappingResource, "CS", "DCMR"))
			tb.Add(dicomio.Str(tag.TemplateIdentifier, "CS", it.Template))
			tpl, err := tb.Elements()
			if err != nil {
				return nil, err
			}
			b.Add(dicomio.Seq(tag.ContentTemplateSequence, tpl))
		}
	case vtText:
		if it.Text == "" {
			return nil, fmt.Errorf("sr: empty TEXT %s", it.Name)
		}
		b.Add(dicomio.Str(tag.TextValue, "UT", it.Text))
	case vtCode:
		b.Add(it.Code.seq(tag.ConceptCodeSequence))
	case vtUIDRef:
		b.Add(dicomio.Str(tag.UID, "UI", it.UID))
	case vtPName:
		b.Add(dicomio.Str(tag.PersonName, "PN", it.PName))
	case vtNum:
		els, err := it.Num.encode()
		if err != nil {
			return nil, fmt.Errorf("sr: NUM %s: %w", it.Name, err)
		}
		b.AddAll(els...)
	case vtImage:
		ref, err := it.Image.item()
		if err != nil {
			return nil, err
		}
		b.Add(dicomio.Seq(tag.ReferencedSOPSequence, ref))
	case vtSCoord:
		if err := checkGraphic(it.Graphic, it.Points); err != nil {
			return nil, err
		}
		b.Add(dicomio.Floats(tag.GraphicData, "FL", it.Points...))
		b.Add(dicomio.Str(tag.GraphicType, "CS", it.Graphic))
	default:
		return nil, fmt.Errorf("sr: unsupported value type %q", it.ValueType)
	}
	if len(it.Children) > 0 {
		items := make([][]*dicom.Element, 0, len(it.Children))
		for _, c := range it.Children {
			els, err := c.encode()
			if err != nil {
				return nil, err
			}
			items = append(items, els)
		}
		b.Add(dicomio.Seq(tag.ContentSequence, items...))
	}
	return b.Elements()
}

func (r ImageRef) item() ([]*dicom.Element, error) {
	if r.SOPClassUID == "" || r.SOPInstanceUID == "" {
		return nil, fmt.Errorf("sr: image reference without SOP class or instance UID")
	}
	var b dicomio.Builder
	b.Add(dicomio.Str(tag.ReferencedSOPClassUID, "UI", r.SOPClassUID))
	b.Add(dicomio.Str(tag.ReferencedSOPInstanceUID, "UI", r.SOPInstanceUID))
	return b.Elements()
}

func (n Num) encode() ([]*dicom.Element, error) {
	var b dicomio.Builder
	if n.Value == nil {
		if n.Qualifier == nil {
			return nil, fmt.Errorf("empty value without a numeric value qualifier")
		}
		b.Add(dicomio.Seq(tag.MeasuredValueSequence))
		b.Add(n.Qualifier.seq(tag.NumericValueQualifierCodeSequence))
		return b.Elements()
	}
	v := *n.Value
	ds, exact, err := dicomio.DS(v)
	if err != nil {
		return nil, err
	}
	units, err := n.Unit.seq(tag.MeasurementUnitsCodeSequence)
	if err != nil {
		return nil, err
	}
	mv := []*dicom.Element{units}
	var ib dicomio.Builder
	ib.Add(dicomio.Str(tag.NumericValue, "DS", ds))
	if !exact {
		// Floating Point Value (0040,A161) is Type 1C: required when the DS
		// cannot represent the value exactly.
		ib.Add(dicomio.Floats(tag.FloatingPointValue, "FD", v))
	}
	extra, err := ib.Elements()
	if err != nil {
		return nil, err
	}
	mv = append(mv, extra...)
	b.Add(dicomio.Seq(tag.MeasuredValueSequence, mv))
	return b.Elements()
}

func checkGraphic(g string, pts []float64) error {
	if len(pts)%2 != 0 || len(pts) == 0 {
		return fmt.Errorf("sr: SCOORD %s needs (column,row) pairs, got %d values", g, len(pts))
	}
	for _, p := range pts {
		if math.IsNaN(p) || math.IsInf(p, 0) {
			return fmt.Errorf("sr: SCOORD %s has a non-finite coordinate", g)
		}
	}
	n := len(pts) / 2
	switch g {
	case GraphicPoint:
		if n != 1 {
			return fmt.Errorf("sr: POINT needs 1 point, got %d", n)
		}
	case GraphicPolyline, GraphicMultipoint:
		if n < 2 {
			return fmt.Errorf("sr: %s needs at least 2 points, got %d", g, n)
		}
	default:
		return fmt.Errorf("sr: unsupported graphic type %q", g)
	}
	return nil
}
