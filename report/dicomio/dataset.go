package dicomio

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"unicode/utf8"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Transfer syntax and implementation identification written in the File
// Meta Information of every object cspine creates.
const (
	ExplicitVRLittleEndian = "1.2.840.10008.1.2.1"
	// ImplementationVersionName is (0002,0013), at most 16 characters.
	ImplementationVersionName = "CSPINE_1"
)

// ImplementationClassUID is (0002,0012): a fixed UID under 2.25 derived from
// the implementation name, the same for every build of this writer.
var ImplementationClassUID = UID("cspine", "implementation-class", "1")

// CharsetUTF8 is the Defined Term of SpecificCharacterSet for UTF-8.
const CharsetUTF8 = "ISO_IR 192"

// textVRs are the VRs whose values are affected by SpecificCharacterSet
// (PS3.5 §6.1.2.3); all others use the default repertoire only.
var textVRs = map[string]bool{"SH": true, "LO": true, "ST": true, "LT": true, "UT": true, "PN": true, "UC": true}

// NewDataset returns a dataset of the given elements with every level sorted
// in ascending tag order, duplicates rejected and SpecificCharacterSet set
// according to the content: absent when every text value is ASCII (the
// default repertoire), "ISO_IR 192" (UTF-8) otherwise. Any
// SpecificCharacterSet among elems is replaced. Elements of group 0002 are
// rejected: Encode writes the File Meta Information.
func NewDataset(elems []*dicom.Element) (dicom.Dataset, error) {
	var kept []*dicom.Element
	for _, e := range elems {
		if e.Tag.Group == 0x0002 {
			return dicom.Dataset{}, fmt.Errorf("dicomio: file meta element %s in dataset", tag.DebugString(e.Tag))
		}
		if e.Tag == tag.SpecificCharacterSet {
			continue
		}
		kept = append(kept, e)
	}
	sorted, err := sortElements(kept)
	if err != nil {
		return dicom.Dataset{}, err
	}
	nonASCII, err := hasNonASCII(sorted)
	if err != nil {
		return dicom.Dataset{}, err
	}
	if nonASCII {
		cs, err := Str(tag.SpecificCharacterSet, "CS", CharsetUTF8)
		if err != nil {
			return dicom.Dataset{}, err
		}
		sorted, err = sortElements(append(sorted, cs))
		if err != nil {
			return dicom.Dataset{}, err
		}
	}
	return dicom.Dataset{Elements: sorted}, nil
}

// sortElements returns copies of the elements in ascending tag order,
// recursing into sequence items. The input elements are not modified.
func sortElements(elems []*dicom.Element) ([]*dicom.Element, error) {
	out := make([]*dicom.Element, 0, len(elems))
	for _, e := range elems {
		if e == nil {
			return nil, fmt.Errorf("dicomio: nil element")
		}
		c := *e
		if e.Value != nil && e.Value.ValueType() == dicom.Sequences {
			items := e.Value.GetValue().([]*dicom.SequenceItemValue)
			newItems := make([][]*dicom.Element, 0, len(items))
			for i, it := range items {
				sub, err := sortElements(it.GetValue().([]*dicom.Element))
				if err != nil {
					return nil, fmt.Errorf("%s item %d: %w", tag.DebugString(e.Tag), i+1, err)
				}
				newItems = append(newItems, sub)
			}
			v, err := dicom.NewValue(newItems)
			if err != nil {
				return nil, err
			}
			c.Value = v
			c.ValueLength = 0
		}
		out = append(out, &c)
	}
	slices.SortStableFunc(out, func(a, b *dicom.Element) int { return a.Tag.Compare(b.Tag) })
	for i := 1; i < len(out); i++ {
		if out[i].Tag == out[i-1].Tag {
			return nil, fmt.Errorf("dicomio: duplicate element %s", tag.DebugString(out[i].Tag))
		}
	}
	return out, nil
}

func hasNonASCII(elems []*dicom.Element) (bool, error) {
	for _, e := range elems {
		if e.Value == nil {
			continue
		}
		switch e.Value.ValueType() {
		case dicom.Strings:
			for _, s := range e.Value.GetValue().([]string) {
				for i := 0; i < len(s); i++ {
					if s[i] >= 0x80 {
						if !textVRs[e.RawValueRepresentation] {
							return false, fmt.Errorf("dicomio: non-ASCII value in %s element %s", e.RawValueRepresentation, tag.DebugString(e.Tag))
						}
						if !utf8.ValidString(s) {
							return false, fmt.Errorf("dicomio: invalid UTF-8 in %s", tag.DebugString(e.Tag))
						}
						return true, nil
					}
				}
			}
		case dicom.Sequences:
			for _, it := range e.Value.GetValue().([]*dicom.SequenceItemValue) {
				ok, err := hasNonASCII(it.GetValue().([]*dicom.Element))
				if err != nil || ok {
					return ok, err
				}
			}
		}
	}
	return false, nil
}

// Encode returns the Part-10 bytes of ds (built by NewDataset) in Explicit VR
// Little Endian, with File Meta Information taken from its SOP Class and SOP
// Instance UIDs.
func Encode(ds dicom.Dataset) ([]byte, error) {
	classUID, err := stringValue(ds, tag.SOPClassUID)
	if err != nil {
		return nil, err
	}
	instUID, err := stringValue(ds, tag.SOPInstanceUID)
	if err != nil {
		return nil, err
	}
	var b Builder
	b.Add(Bytes(tag.FileMetaInformationVersion, []byte{0x00, 0x01}))
	b.Add(Str(tag.MediaStorageSOPClassUID, "UI", classUID))
	b.Add(Str(tag.MediaStorageSOPInstanceUID, "UI", instUID))
	// The writer looks the transfer syntax up by its exact value: give it
	// unpadded (it pads the odd-length UID with NUL itself).
	b.Add(newElement(tag.TransferSyntaxUID, "UI", []string{ExplicitVRLittleEndian}))
	b.Add(Str(tag.ImplementationClassUID, "UI", ImplementationClassUID))
	b.Add(Str(tag.ImplementationVersionName, "SH", ImplementationVersionName))
	meta, err := b.Elements()
	if err != nil {
		return nil, err
	}
	full := dicom.Dataset{Elements: append(meta, ds.Elements...)}
	var buf bytes.Buffer
	if err := dicom.Write(&buf, full); err != nil {
		return nil, fmt.Errorf("dicomio: write %s: %w", instUID, err)
	}
	return buf.Bytes(), nil
}

// WriteFile encodes ds and writes it to path (mode 0644), replacing any file
// there only once the whole object is written.
func WriteFile(path string, ds dicom.Dataset) error {
	b, err := Encode(ds)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("dicomio: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("dicomio: write %s: %w", path, err)
	}
	return nil
}

func stringValue(ds dicom.Dataset, t tag.Tag) (string, error) {
	e, err := ds.FindElementByTag(t)
	if err != nil {
		return "", fmt.Errorf("dicomio: %s: %w", tag.DebugString(t), err)
	}
	s, ok := e.Value.GetValue().([]string)
	if !ok || len(s) == 0 {
		return "", fmt.Errorf("dicomio: %s is empty", tag.DebugString(t))
	}
	return trimUI(s[0]), nil
}

func trimUI(s string) string {
	for len(s) > 0 && (s[len(s)-1] == 0 || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	return s
}
