package dicomio

import (
	"bytes"
	"math/big"
	"strings"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

func TestUID(t *testing.T) {
	a := UID("cspine", "sr", "1.2.3", "1.0.0", "0")
	if a != UID("cspine", "sr", "1.2.3", "1.0.0", "0") {
		t.Fatal("UID not deterministic")
	}
	for _, other := range []string{UID("cspine", "sr", "1.2.3", "1.0.0", "1"), UID("cspine", "sr", "1.2.31.0.0", "", "0")} {
		if a == other {
			t.Errorf("collision: %s", a)
		}
	}
	if len(a) > 64 || !strings.HasPrefix(a, "2.25.") || strings.HasPrefix(a, "2.25.0") {
		t.Fatalf("bad UID %q", a)
	}
	n, ok := new(big.Int).SetString(strings.TrimPrefix(a, "2.25."), 10)
	if !ok || n.BitLen() > 128 {
		t.Fatalf("not a 128-bit decimal: %s", a)
	}
	b := n.FillBytes(make([]byte, 16))
	if b[6]>>4 != 8 || b[8]>>6 != 2 {
		t.Errorf("not an RFC 9562 version-8 UUID: %x", b)
	}
}

func TestStrPadding(t *testing.T) {
	tests := []struct {
		vr     string
		values []string
		want   string
	}{
		{"UI", []string{"1.2.3"}, "1.2.3\x00"},
		{"LO", []string{"abc"}, "abc "},
		{"CS", []string{"DERIVED", "SECONDARY"}, "DERIVED\\SECONDARY "},
		{"UT", []string{"ab"}, "ab"},
		{"PN", nil, ""},
	}
	for _, tt := range tests {
		e, err := Str(tag.Tag{Group: 0x0008, Element: 0x0018}, tt.vr, tt.values...)
		if err != nil {
			t.Fatal(err)
		}
		got := e.Value.GetValue().([]string)
		if strings.Join(got, "|") != tt.want {
			t.Errorf("%s %q: got %q want %q", tt.vr, tt.values, got, tt.want)
		}
	}
	if _, err := Str(tag.StationName, "SH", "seventeen chars!!"); err == nil {
		t.Error("SH longer than 16 accepted")
	}
	if _, err := Str(tag.PatientID, "LO", `a\b`); err == nil {
		t.Error("backslash inside a value accepted")
	}
}

func TestDS(t *testing.T) {
	for _, tt := range []struct {
		v     float64
		exact bool
	}{{12.5, true}, {-0.25, true}, {24.052172869305901, false}, {1e-20, true}} {
		s, exact, err := DS(tt.v)
		if err != nil || len(s) > 16 || exact != tt.exact {
			t.Errorf("DS(%v) = %q %v %v", tt.v, s, exact, err)
		}
	}
}

func TestNewDatasetSortsAndChoosesCharset(t *testing.T) {
	mk := func(tg tag.Tag, vr string, v ...string) *dicom.Element {
		e, err := Str(tg, vr, v...)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	inner1, inner2 := mk(tag.CodeMeaning, "LO", "x"), mk(tag.CodeValue, "SH", "1")
	seq, err := Seq(tag.ConceptNameCodeSequence, []*dicom.Element{inner1, inner2})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := NewDataset([]*dicom.Element{mk(tag.PatientName, "PN", "Müller^Jürgen"), seq, mk(tag.SOPInstanceUID, "UI", "1.2.3"),
		mk(tag.SOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.7"), mk(tag.SpecificCharacterSet, "CS", "ISO_IR 100")})
	if err != nil {
		t.Fatal(err)
	}
	var tags []tag.Tag
	for _, e := range ds.Elements {
		tags = append(tags, e.Tag)
	}
	want := []tag.Tag{tag.SpecificCharacterSet, tag.SOPClassUID, tag.SOPInstanceUID, tag.PatientName, tag.ConceptNameCodeSequence}
	if len(tags) != len(want) {
		t.Fatalf("tags %v", tags)
	}
	for i := range want {
		if tags[i] != want[i] {
			t.Fatalf("order %v, want %v", tags, want)
		}
	}
	if cs := ds.Elements[0].Value.GetValue().([]string)[0]; cs != "ISO_IR 192" {
		t.Errorf("charset %q", cs)
	}
	item := ds.Elements[4].Value.GetValue().([]*dicom.SequenceItemValue)[0].GetValue().([]*dicom.Element)
	if item[0].Tag != tag.CodeValue {
		t.Errorf("sequence item not sorted")
	}
	// The input sequence was not modified.
	orig := seq.Value.GetValue().([]*dicom.SequenceItemValue)[0].GetValue().([]*dicom.Element)
	if orig[0].Tag != tag.CodeMeaning {
		t.Errorf("NewDataset modified its input")
	}
	if _, err := NewDataset([]*dicom.Element{mk(tag.PatientID, "LO", "a"), mk(tag.PatientID, "LO", "b")}); err == nil {
		t.Error("duplicate accepted")
	}
	ascii, err := NewDataset([]*dicom.Element{mk(tag.PatientName, "PN", "Doe^John"), mk(tag.SpecificCharacterSet, "CS", "ISO_IR 100")})
	if err != nil || len(ascii.Elements) != 1 {
		t.Errorf("ASCII dataset keeps a SpecificCharacterSet: %v %v", ascii.Elements, err)
	}
	b, err := Encode(ds)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[128:132], []byte("DICM")) {
		t.Error("no Part-10 preamble")
	}
}

func TestSeriesNumber(t *testing.T) {
	src := Source{SeriesNumber: 3}
	if SeriesNumber(src, KindSR) != 9031 || SeriesNumber(src, KindSC) != 9032 {
		t.Errorf("series numbers %d %d", SeriesNumber(src, KindSR), SeriesNumber(src, KindSC))
	}
}

func TestSourceRequiresUIDs(t *testing.T) {
	e, _ := Str(tag.SOPInstanceUID, "UI", "1.2.3")
	if _, err := SourceFromDataset(dicom.Dataset{Elements: []*dicom.Element{e}}); err == nil {
		t.Error("source without study UID accepted")
	}
}
