package services

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

func TestFileMetaRoundTrip(t *testing.T) {
	t.Parallel()
	m := FileMeta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.1", MediaStorageSOPInstanceUID: "1.2.3.4",
		TransferSyntaxUID: "1.2.840.10008.1.2.1", ImplementationClassUID: "2.25.1", ImplementationVersionName: "X1", SourceAETitle: "MOD"}
	b := EncodeFileMeta(m)
	b = append(b, 8, 0, 0x16, 0) // first data set bytes
	got, n, err := ReadFileMeta(bufio.NewReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatal(err)
	}
	if got != m || n != int64(len(b)-4) {
		t.Fatalf("got %+v (%d bytes)", got, n)
	}
	// suyashkumar/dicom reads our meta header too.
	p, err := dicom.NewParser(bytes.NewReader(EncodeFileMeta(m)), int64(len(EncodeFileMeta(m))), nil)
	if err != nil {
		t.Fatal(err)
	}
	meta := p.GetMetadata()
	e, err := meta.FindElementByTag(tag.MediaStorageSOPInstanceUID)
	if err != nil || firstString(e) != "1.2.3.4" {
		t.Fatalf("suyashkumar/dicom: %v %v", e, err)
	}
	if _, _, err := ReadFileMeta(bufio.NewReader(strings.NewReader(strings.Repeat("x", 200)))); err == nil {
		t.Fatal("non-DICOM accepted")
	}
}

func TestDataSetCodec(t *testing.T) {
	t.Parallel()
	for _, ts := range []string{"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"} {
		e1, _ := dicom.NewElement(tag.QueryRetrieveLevel, []string{"STUDY"})
		e2, _ := dicom.NewElement(tag.PatientID, []string{"P1"})
		e3, _ := dicom.NewElement(tag.StudyInstanceUID, []string{""})
		b, err := EncodeDataSet([]*dicom.Element{e1, e2, e3}, ts)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := DecodeDataSet(b, ts)
		if err != nil {
			t.Fatal(err)
		}
		e, err := ds.FindElementByTag(tag.PatientID)
		if err != nil || firstString(e) != "P1" {
			t.Fatalf("%s: %v %v", ts, e, err)
		}
	}
	if _, err := DecodeDataSet([]byte{1, 2, 3, 4, 5, 6, 7}, "1.2.840.10008.1.2"); err == nil {
		t.Fatal("garbage decoded")
	}
}

func TestFileName(t *testing.T) {
	t.Parallel()
	for uid, want := range map[string]string{
		"1.2.840.1": "1.2.840.1",
		"../../etc": "x_.._etc-",
		"1.2/3":     "x1.2_3-",
		"":          "x-",
		".1.2":      "x1.2-",
	} {
		got := FileName(uid)
		if !strings.HasPrefix(got, want) || strings.ContainsAny(got, "/\\") {
			t.Errorf("FileName(%q) = %q, want prefix %q", uid, got, want)
		}
	}
	if FileName("a/b") == FileName("a_b") {
		t.Error("distinct UIDs map to one name")
	}
}

func TestSpoolStoreKeep(t *testing.T) {
	t.Parallel()
	s, err := NewSpoolStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put := func(content string) Kept {
		t.Helper()
		f, err := os.CreateTemp(s.TempDir(), "incoming-*.part")
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(content)
		f.Close()
		defer os.Remove(f.Name())
		k, err := s.Keep(context.Background(), &StoreRequest{SOPInstanceUID: "1.2.3", Path: f.Name()})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	if k := put("first"); k.Duplicate || k.Variant || filepath.Base(k.Path) != "1.2.3.dcm" {
		t.Fatalf("first: %+v", k)
	}
	if k := put("first"); !k.Duplicate || filepath.Base(k.Path) != "1.2.3.dcm" {
		t.Fatalf("identical re-send: %+v", k)
	}
	if k := put("second"); !k.Variant || filepath.Base(k.Path) != "1.2.3~2.dcm" {
		t.Fatalf("different re-send: %+v", k)
	}
	if k := put("second"); !k.Duplicate || filepath.Base(k.Path) != "1.2.3~2.dcm" {
		t.Fatalf("identical re-send of the variant: %+v", k)
	}
	b, _ := os.ReadFile(filepath.Join(s.Dir, "1.2.3.dcm"))
	if string(b) != "first" {
		t.Fatalf("first file overwritten: %q", b)
	}
	ents, _ := os.ReadDir(s.TempDir())
	if len(ents) != 0 {
		t.Fatalf("temporary files left: %d", len(ents))
	}
}

func TestHeaderIDs(t *testing.T) {
	t.Parallel()
	e1, _ := dicom.NewElement(tag.SOPClassUID, []string{"1.2.840.10008.5.1.4.1.1.1"})
	e2, _ := dicom.NewElement(tag.SOPInstanceUID, []string{"1.2.3"})
	e3, _ := dicom.NewElement(tag.PatientID, []string{"P"})
	b, _ := EncodeDataSet([]*dicom.Element{e1, e2, e3}, "1.2.840.10008.1.2.1")
	c, i, complete, err := headerIDs(b, false, "1.2.840.10008.1.2.1")
	if err != nil || !complete || c != "1.2.840.10008.5.1.4.1.1.1" || i != "1.2.3" {
		t.Fatalf("%q %q %v %v", c, i, complete, err)
	}
	// Truncated before the instance UID: no verdict.
	if _, _, complete, err := headerIDs(b[:20], true, "1.2.840.10008.1.2.1"); err != nil || complete {
		t.Fatalf("truncated: complete %v err %v", complete, err)
	}
	if _, _, _, err := headerIDs(bytes.Repeat([]byte{0xff}, 100), false, "1.2.840.10008.1.2.1"); err == nil {
		t.Fatal("garbage understood")
	}
}

// TestSpoolStoreDuplicateAcrossSources: the same data set re-sent by another
// AE (different Source AE Title in the file meta) is a duplicate; a changed
// data set is a variant.
func TestSpoolStoreDuplicateAcrossSources(t *testing.T) {
	t.Parallel()
	s, err := NewSpoolStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put := func(source, data string) Kept {
		t.Helper()
		f, err := os.CreateTemp(s.TempDir(), "incoming-*.part")
		if err != nil {
			t.Fatal(err)
		}
		f.Write(EncodeFileMeta(FileMeta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.1", MediaStorageSOPInstanceUID: "1.2.9",
			TransferSyntaxUID: "1.2.840.10008.1.2.1", ImplementationClassUID: "2.25.1", SourceAETitle: source}))
		f.WriteString(data)
		f.Close()
		defer os.Remove(f.Name())
		k, err := s.Keep(context.Background(), &StoreRequest{SOPInstanceUID: "1.2.9", Path: f.Name()})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	if k := put("GATEWAY1", "data set"); k.Duplicate || k.Variant {
		t.Fatalf("first: %+v", k)
	}
	if k := put("GATEWAY2", "data set"); !k.Duplicate {
		t.Fatalf("same data set from another AE: %+v", k)
	}
	if k := put("GATEWAY2", "data sex"); !k.Variant {
		t.Fatalf("changed data set: %+v", k)
	}
}
