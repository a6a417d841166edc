package decode

import (
	"errors"
	"path/filepath"
	"testing"
)

// TestRealWorldRadiopaediaJPEG wraps a real lateral radiograph (JFIF, 8-bit
// baseline) in DICOM with DCMTK's img2dcm, without recompression, and
// decodes it pixel for pixel like dcmdjpeg.
func TestRealWorldRadiopaediaJPEG(t *testing.T) {
	if testing.Short() {
		t.Skip("DCMTK interop skipped in -short mode")
	}
	t.Parallel()
	dir := t.TempDir()
	in := filepath.Join(realworld(t), "radiopaedia-c2c7demo", "extension.jpg")
	wrapped := filepath.Join(dir, "extension.dcm")
	ref := filepath.Join(dir, "extension_ref.dcm")
	dcmtk(t, "img2dcm", in, wrapped)
	dcmtk(t, "dcmdjpeg", "+te", wrapped, ref)
	got, err := File(wrapped)
	if err != nil {
		t.Fatal(err)
	}
	want, err := File(ref)
	if err != nil {
		t.Fatal(err)
	}
	if got.Rows != 1600 || got.Cols != 1600 || got.Meta.TransferSyntaxUID != "1.2.840.10008.1.2.4.50" {
		t.Fatalf("%d×%d %s", got.Rows, got.Cols, got.Meta.TransferSyntaxUID)
	}
	if d := firstDiff(got.Modality, want.Modality); d != "" {
		t.Errorf("differs from dcmdjpeg: %s", d)
	}
	if p := got.VOI(); p.Source != "auto" {
		t.Errorf("VOI %+v", p)
	}
}

// TestRealWorldSR: structured reports written by other tools are not images.
func TestRealWorldSR(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"sr_document.dcm", "sr_document_with_multiple_groups.dcm", "dcmqi_sr_tid1500.dcm"} {
		_, err := File(filepath.Join(realworld(t), "sr-examples", f))
		if !errors.Is(err, ErrNotImage) {
			t.Errorf("%s: got %v, want ErrNotImage", f, err)
		}
	}
}
