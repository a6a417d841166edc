package dicomio

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// spacePadded lists the VRs whose odd-length values are padded with a trailing
// SPACE (PS3.5 §6.2); UI is padded with NUL, binary VRs are never odd here.
var spacePadded = map[string]bool{
	"AE": true, "AS": true, "CS": true, "DA": true, "DS": true, "DT": true,
	"IS": true, "LO": true, "LT": true, "PN": true, "SH": true, "ST": true,
	"TM": true, "UC": true, "UR": true, "UT": true,
}

// maxLen is the maximum length in bytes of one value of a string VR
// (PS3.5 Table 6.2-1); 0 means unlimited for our purposes.
var maxLen = map[string]int{
	"AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "DT": 26, "IS": 12,
	"LO": 64, "LT": 10240, "PN": 64 * 5, "SH": 16, "ST": 1024, "TM": 14,
	"UI": 64,
}

// Str returns a string element of the given VR. Multiple values are joined
// with the backslash delimiter and the whole value is padded to even length.
// An element with no values (or one empty value) is a zero-length Type 2
// element. Values longer than the VR allows are an error.
func Str(t tag.Tag, vr string, values ...string) (*dicom.Element, error) {
	for _, v := range values {
		if m := maxLen[vr]; m > 0 && len(v) > m {
			return nil, fmt.Errorf("dicomio: %s value %q of %s longer than %d bytes", vr, truncate(v), tag.DebugString(t), m)
		}
		if vr != "LT" && vr != "ST" && vr != "UT" && strings.Contains(v, `\`) {
			return nil, fmt.Errorf("dicomio: %s value of %s contains a backslash", vr, tag.DebugString(t))
		}
	}
	s := strings.Join(values, `\`)
	if len(s)%2 == 1 {
		if vr == "UI" {
			s += "\x00"
		} else if spacePadded[vr] {
			s += " "
		} else {
			return nil, fmt.Errorf("dicomio: cannot pad VR %s of %s", vr, tag.DebugString(t))
		}
	}
	var vals []string
	if s != "" {
		vals = []string{s}
	}
	return newElement(t, vr, vals)
}

func truncate(s string) string {
	if len(s) > 24 {
		return s[:24] + "..."
	}
	return s
}

// Ints returns a US, SS, UL or SL element.
func Ints(t tag.Tag, vr string, values ...int) (*dicom.Element, error) {
	switch vr {
	case "US", "SS", "UL", "SL":
	default:
		return nil, fmt.Errorf("dicomio: Ints with VR %s for %s", vr, tag.DebugString(t))
	}
	return newElement(t, vr, slices.Clone(values))
}

// Floats returns an FL or FD element.
func Floats(t tag.Tag, vr string, values ...float64) (*dicom.Element, error) {
	if vr != "FL" && vr != "FD" {
		return nil, fmt.Errorf("dicomio: Floats with VR %s for %s", vr, tag.DebugString(t))
	}
	for _, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("dicomio: non-finite value for %s", tag.DebugString(t))
		}
	}
	return newElement(t, vr, slices.Clone(values))
}

// Bytes returns an OB element padded to even length with a NUL byte.
func Bytes(t tag.Tag, b []byte) (*dicom.Element, error) {
	b = slices.Clone(b)
	if len(b)%2 == 1 {
		b = append(b, 0)
	}
	return newElement(t, "OB", b)
}

// Seq returns a sequence element with the given items. Each item's elements
// are sorted when the dataset is assembled by NewDataset.
func Seq(t tag.Tag, items ...[]*dicom.Element) (*dicom.Element, error) {
	if items == nil {
		items = [][]*dicom.Element{}
	}
	return newElement(t, "SQ", items)
}

func newElement(t tag.Tag, vr string, data any) (*dicom.Element, error) {
	v, err := dicom.NewValue(data)
	if err != nil {
		return nil, fmt.Errorf("dicomio: value of %s: %w", tag.DebugString(t), err)
	}
	return &dicom.Element{
		Tag:                    t,
		ValueRepresentation:    tag.GetVRKind(t, vr),
		RawValueRepresentation: vr,
		Value:                  v,
	}, nil
}

// DS formats a decimal string of at most 16 characters that represents v as
// closely as DS allows. exact reports whether the DS parses back to v.
func DS(v float64) (s string, exact bool, err error) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "", false, fmt.Errorf("dicomio: non-finite decimal %v", v)
	}
	s = strconv.FormatFloat(v, 'g', -1, 64)
	if len(s) <= 16 {
		return s, true, nil
	}
	for prec := 15; prec > 0; prec-- {
		s = strconv.FormatFloat(v, 'g', prec, 64)
		if len(s) <= 16 {
			return s, false, nil
		}
	}
	return "", false, fmt.Errorf("dicomio: cannot format %v as DS", v)
}

// Builder collects elements and the first error met while constructing
// them, so that long module lists read as plain sequences of Add calls.
type Builder struct {
	elems []*dicom.Element
	err   error
}

// Add appends an element built by one of the constructors, keeping the first
// error.
func (b *Builder) Add(e *dicom.Element, err error) {
	if b.err != nil {
		return
	}
	if err != nil {
		b.err = err
		return
	}
	b.elems = append(b.elems, e)
}

// AddAll appends already-built elements.
func (b *Builder) AddAll(es ...*dicom.Element) { b.elems = append(b.elems, es...) }

// Fail records an error if none was recorded yet.
func (b *Builder) Fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

// Elements returns the collected elements or the first error.
func (b *Builder) Elements() ([]*dicom.Element, error) { return b.elems, b.err }

// Err returns the first error.
func (b *Builder) Err() error { return b.err }
