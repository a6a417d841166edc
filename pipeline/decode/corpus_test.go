package decode

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pydicomTestFiles locates the test files shipped with Debian's
// python3-pydicom: real objects from many writers (GDCM, DCMTK, vendors),
// including broken ones.
func pydicomTestFiles(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("/usr/bin/python3", "-c",
		"import os, pydicom.data; print(os.path.join(os.path.dirname(pydicom.data.__file__), 'test_files'))").Output()
	if err != nil {
		t.Fatalf("python3-pydicom is needed for the real-world corpus (see scripts/setup.sh): %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestRealWorldPydicomCorpus decodes every object of pydicom's test corpus.
// Each gives an image or one of the package's errors; the files listed
// below must give the stated outcome; every compressed image is compared
// with DCMTK's decompression, every greyscale native image with pydicom.
func TestRealWorldPydicomCorpus(t *testing.T) {
	if testing.Short() {
		t.Skip("real-world corpus skipped in -short mode")
	}
	t.Parallel()
	dir := pydicomTestFiles(t)
	const (
		ok = iota
		unsupportedTS
		unsupported
		truncated
		notImage
		malformed
	)
	expect := map[string]int{
		"CT_small.dcm": ok, "MR_small.dcm": ok, "MR_small_implicit.dcm": ok, "MR_small_padded.dcm": ok,
		"MR_small_RLE.dcm": ok, "image_dfl.dcm": ok, "SC_rgb_small_odd.dcm": ok, "SC_ybr_full_422_uncompressed.dcm": ok,
		"SC_rgb_rle.dcm": ok, "SC_rgb_rle_16bit.dcm": ok, "SC_rgb_rle_2frame.dcm": ok, "SC_rgb_rle_16bit_2frame.dcm": ok,
		"SC_rgb_jpeg_gdcm.dcm": ok, "SC_rgb_jpeg_dcmtk.dcm": ok, "SC_rgb_small_odd_jpeg.dcm": ok,
		"SC_rgb_dcmtk_+eb+cr.dcm": ok, "SC_rgb_dcmtk_+eb+cy+n1.dcm": ok, "SC_rgb_dcmtk_+eb+cy+n2.dcm": ok,
		"SC_rgb_dcmtk_+eb+cy+np.dcm": ok, "SC_rgb_dcmtk_+eb+cy+s2.dcm": ok, "SC_rgb_dcmtk_+eb+cy+s4.dcm": ok,
		"SC_jpeg_no_color_transform.dcm": ok, "SC_jpeg_no_color_transform_2.dcm": ok, "SC_rgb_jpeg_app14_dcmd.dcm": ok,
		"SC_rgb_jpeg.dcm": ok, "SC_rgb_jpeg_lossy_gdcm.dcm": ok,
		"JPEG2000.dcm": unsupportedTS, "MR_small_jp2klossless.dcm": unsupportedTS, "MR_small_jpeg_ls_lossless.dcm": unsupportedTS,
		"JPGExtended.dcm": unsupportedTS, "JPEG-lossy.dcm": unsupportedTS, "MR_small_bigendian.dcm": unsupportedTS,
		"ExplVR_BigEnd.dcm": unsupportedTS,
		"liver_1frame.dcm":  unsupported, "rtdose.dcm": unsupported, "SC_rgb_rle_32bit.dcm": unsupported,
		"MR_truncated.dcm": truncated, "rtplan_truncated.dcm": truncated,
		"rtplan.dcm": notImage, "rtstruct.dcm": notImage, "test-SR.dcm": notImage, "reportsi.dcm": notImage, "waveform_ecg.dcm": notImage,
		"meta_missing_tsyntax.dcm": malformed,
	}
	// Compressed images whose DCMTK decompression is not comparable:
	// Photometric RGB over a YCbCr-coded (subsampled, ids 1,2,3) stream;
	// DCMTK keeps the raw planes as "RGB", this package (like libjpeg) reads
	// the first plane as Y.
	// SC_rgb_jpeg.dcm has its data set in implicit VR under an explicit
	// transfer syntax: this package follows the data, DCMTK 3.6.7 cannot
	// read it.
	noReference := map[string]bool{"SC_rgb_jpeg_lossy_gdcm.dcm": true, "SC_rgb_jpeg.dcm": true}

	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	var greyNative []string
	tmp := t.TempDir()
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".dcm") {
			continue
		}
		seen++
		path := filepath.Join(dir, name)
		im, err := File(path)
		if err != nil && !errors.Is(err, ErrNotImage) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: unclassified error %v", name, err)
		}
		want, listed := expect[name]
		if listed {
			var tse *UnsupportedTransferSyntaxError
			okOutcome := map[int]bool{
				ok: err == nil, unsupportedTS: errors.As(err, &tse), unsupported: errors.Is(err, ErrUnsupported),
				truncated: errors.Is(err, ErrTruncated), notImage: errors.Is(err, ErrNotImage), malformed: errors.Is(err, ErrMalformed),
			}[want]
			if !okOutcome {
				t.Errorf("%s: got %v, want outcome %d", name, err, want)
			}
		}
		if err != nil {
			continue
		}
		ts := im.Meta.TransferSyntaxUID
		switch {
		case syntaxes[ts].codec == codecNative:
			if im.Meta.SamplesPerPixel == 1 {
				greyNative = append(greyNative, path)
			}
		case noReference[name]:
		default:
			tool := "dcmdjpeg"
			if ts == "1.2.840.10008.1.2.5" {
				tool = "dcmdrle"
			}
			refPath := filepath.Join(tmp, name)
			args := []string{"+te", path, refPath}
			if tool == "dcmdjpeg" {
				args = append([]string{"+cn"}, args...)
			}
			dcmtk(t, tool, args...)
			ref, err := File(refPath)
			if err != nil {
				t.Errorf("%s: DCMTK reference: %v", name, err)
				continue
			}
			if d := firstDiff(im.Modality, ref.Modality); d != "" {
				t.Errorf("%s: differs from %s: %s", name, tool, d)
			}
		}
	}
	if seen < 40 {
		t.Errorf("only %d objects in %s", seen, dir)
	}

	// Greyscale native images: modality values as pydicom computes them.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", append([]string{"testdata/pydicom_voi.py"}, greyNative...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pydicom: %v", err)
	}
	var ref map[string]struct{ Modality []float64 }
	if err := json.Unmarshal(out, &ref); err != nil {
		t.Fatal(err)
	}
	for _, p := range greyNative {
		im, _ := File(p)
		r := ref[p].Modality
		if len(r) < len(im.Modality) {
			t.Errorf("%s: pydicom gave %d values, want at least %d", filepath.Base(p), len(r), len(im.Modality))
			continue
		}
		for i := range im.Modality {
			want := r[i]
			if im.Meta.Inverted {
				t.Fatalf("%s: MONOCHROME1 not expected in this corpus", p)
			}
			if math.Abs(float64(im.Modality[i])-want) > 1e-3*math.Max(1, math.Abs(want)) {
				t.Errorf("%s pixel %d: %v, pydicom %v", filepath.Base(p), i, im.Modality[i], want)
				break
			}
		}
	}
	if len(greyNative) < 4 {
		t.Errorf("only %d greyscale native objects compared with pydicom", len(greyNative))
	}
}
