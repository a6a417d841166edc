package reporttest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/suyashkumar/dicom"

	"github.com/cspine/cspine/phantom"
	"github.com/cspine/cspine/pipeline/decode"
	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/report/dicomio"
	"github.com/cspine/cspine/report/reporttest"
	"github.com/cspine/cspine/report/sc"
	"github.com/cspine/cspine/report/sr"
)

var device = dicomio.Device{Manufacturer: reporttest.Device.Manufacturer, ModelName: reporttest.Device.ModelName,
	Name: reporttest.Device.Name, UID: reporttest.Device.UID, SoftwareVersion: reporttest.Device.SoftwareVersion}

var when = time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)

// validateBoth builds, writes and validates the SR and the SC of one input.
func validateBoth(t *testing.T, ds dicom.Dataset, res result.Result, display []float32, rows, cols int) {
	t.Helper()
	src, err := dicomio.SourceFromDataset(ds)
	if err != nil {
		t.Fatal(err)
	}
	srDS, err := sr.Build(src, res, sr.Options{Device: device, ContentTime: when})
	if err != nil {
		t.Fatalf("sr.Build: %v", err)
	}
	scDS, err := sc.Build(src, res, display, rows, cols, sc.Options{Device: device, ContentTime: when})
	if err != nil {
		t.Fatalf("sc.Build: %v", err)
	}
	for _, o := range []struct {
		name string
		ds   dicom.Dataset
	}{{"sr.dcm", srDS}, {"sc.dcm", scDS}} {
		b, err := dicomio.Encode(o.ds)
		if err != nil {
			t.Fatal(err)
		}
		reporttest.CheckTagOrder(t, b)
		reporttest.Validate(t, reporttest.WriteTemp(t, o.name, b), o.name == "sr.dcm")
	}
}

// TestRealCRHeader uses a real Agfa CR header (ISO_IR 100, from pydicom's
// test files in shared/realworld) as the source: patient and study modules
// copied from a real modality's object must still validate.
func TestRealCRHeader(t *testing.T) {
	path := filepath.Join("..", "..", "..", "shared", "realworld", "pydicom-cspine-cr", "dicomdirtests_77654033_CR1_6154")
	ds, err := dicom.ParseFile(path, nil)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	im, err := decode.File(path)
	if err != nil {
		t.Fatal(err)
	}
	// The publisher shrank the pixels to 16x16: put the landmarks of a
	// synthetic case into that grid.
	c := reporttest.NewCase(t, reporttest.CaseOptions{Rows: 1000, Cols: 800, Seed: 90})
	res := c.Result
	res.SOPInstanceUID, res.StudyInstanceUID = "", ""
	res.Landmarks = nil
	for _, l := range c.Result.Landmarks {
		l.X, l.Y = l.X*float64(im.Cols)/800, l.Y*float64(im.Rows)/1000
		res.Landmarks = append(res.Landmarks, l)
	}
	validateBoth(t, ds, res, im.Display(), im.Rows, im.Cols)
}

// TestPhantomSources uses the phantom generator's DICOM objects (CR and DX
// header variants, MONOCHROME1/2) with their ground truth as the result.
func TestPhantomSources(t *testing.T) {
	if testing.Short() {
		t.Skip("generates phantom images")
	}
	dir := t.TempDir()
	if err := phantom.Generate(context.Background(), phantom.Options{Count: 3, Seed: 4242, OutDir: dir,
		Obscuration: "mixed", Rows: 640, Cols: 560, Workers: 1}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "truth.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<24)
	n := 0
	for s.Scan() {
		var tr result.Truth
		if err := json.Unmarshal(s.Bytes(), &tr); err != nil {
			t.Fatal(err)
		}
		if !tr.Measurable {
			continue
		}
		n++
		p := tr.File
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		t.Run(filepath.Base(p), func(t *testing.T) {
			ds, err := dicom.ParseFile(p, nil, dicom.SkipPixelData())
			if err != nil {
				t.Fatal(err)
			}
			im, err := decode.File(p)
			if err != nil {
				t.Fatal(err)
			}
			res := result.Result{File: p, SOPInstanceUID: tr.SOPInstanceUID, Status: result.StatusOK, Facing: tr.Facing,
				Parameters: tr.Parameters, PixelSpacingMM: tr.PixelSpacingMM, SpacingSource: tr.SpacingSource,
				Review: &result.Review{Required: tr.Parameters.C2C7SVAmm == nil, Reasons: []string{}},
				Model:  &result.Model{Name: "phantom-ground-truth", Version: "0"}}
			if res.Review.Required {
				res.Review.Reasons = []string{result.ReasonNoPixelSpacing}
			}
			for _, l := range tr.Landmarks {
				res.Landmarks = append(res.Landmarks, result.Landmark{Name: l.Name, X: l.X, Y: l.Y, Confidence: 1, Stage: result.StageRefined})
			}
			validateBoth(t, ds, res, im.Display(), im.Rows, im.Cols)
		})
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no measurable phantom image")
	}
}
