package sc_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"math"
	"testing"
	"time"

	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/report/dicomio"
	"github.com/cspine/cspine/report/reporttest"
	"github.com/cspine/cspine/report/sc"
)

var contentTime = time.Date(2026, 1, 2, 10, 30, 0, 0, time.UTC)

func testOptions() sc.Options {
	d := reporttest.Device
	return sc.Options{
		Device:      dicomio.Device{Manufacturer: d.Manufacturer, ModelName: d.ModelName, Name: d.Name, UID: d.UID, SoftwareVersion: d.SoftwareVersion},
		ContentTime: contentTime,
	}
}

func build(t *testing.T, c reporttest.Case, opts sc.Options) (dicomio.Source, []byte) {
	t.Helper()
	src, err := dicomio.SourceFromDataset(c.Source)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := sc.Build(src, c.Result, c.Display, c.Rows, c.Cols, opts)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	b, err := dicomio.Encode(ds)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return src, b
}

// TestValidators: dciodvfy reports no error (and no unexpected warning),
// dcmdump -E reads it, for unflagged, flagged and reviewed overlays.
func TestValidators(t *testing.T) {
	reviewed := testOptions()
	reviewed.Revision = 1
	reviewed.Verified = &sc.Verification{ObserverName: "Reviewer^Quinn", Organization: "Example Hospital QA",
		VerifiedAt: contentTime.Add(time.Hour), Corrected: true}
	tests := []struct {
		name string
		o    reporttest.CaseOptions
		opts sc.Options
	}{
		{"unflagged", reporttest.CaseOptions{Seed: 1}, testOptions()},
		{"flagged_no_spacing", reporttest.CaseOptions{Seed: 2, Flagged: true, NoSpacing: true}, testOptions()},
		{"reviewed", reporttest.CaseOptions{Seed: 3, Flagged: true}, reviewed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := reporttest.NewCase(t, tt.o)
			_, b := build(t, c, tt.opts)
			reporttest.CheckTagOrder(t, b)
			reporttest.Validate(t, reporttest.WriteTemp(t, "sc.dcm", b), false)
		})
	}
}

const pyCheck = `
import json, sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
px = ds.pixel_array
probes = json.loads(sys.argv[2])
src = ds.SourceImageSequence[0]
print(json.dumps({
  "shape": list(px.shape), "photometric": ds.PhotometricInterpretation,
  "image_type": list(ds.ImageType), "burned": ds.BurnedInAnnotation, "conversion": ds.ConversionType,
  "source": [src.ReferencedSOPClassUID, src.ReferencedSOPInstanceUID],
  "study": ds.StudyInstanceUID, "patient_id": ds.PatientID, "series": ds.SeriesInstanceUID,
  "modality": ds.Modality, "spacing": [float(v) for v in ds.get("PixelSpacing", [])],
  "probes": [[int(v) for v in px[y, x]] for x, y in probes]}))
`

// TestPydicomReadsOverlay reads the SC with pydicom (pixel data decoded by
// numpy) and checks the header and pixels: untouched image pixels keep the
// windowed grey value, landmark pixels carry the overlay colour.
func TestPydicomReadsOverlay(t *testing.T) {
	c := reporttest.NewCase(t, reporttest.CaseOptions{Seed: 5})
	src, b := build(t, c, testOptions())
	p := reporttest.WriteTemp(t, "sc.dcm", b)
	// Probes: a corner pixel (no overlay, 0.5% in from the edge) and two
	// landmark centres (C7 inferior corners: orange).
	idx := map[string]result.Landmark{}
	for _, l := range c.Result.Landmarks {
		idx[l.Name] = l
	}
	probes := [][2]int{{c.Cols / 200, c.Rows / 200}}
	for _, n := range []string{"C7_inf_ant", "C7_inf_post"} {
		probes = append(probes, [2]int{int(math.Round(idx[n].X)), int(math.Round(idx[n].Y))})
	}
	pj, _ := json.Marshal(probes)
	out := reporttest.PyDicom(t, pyCheck, p, string(pj))
	var o struct {
		Shape                   []int
		Photometric             string
		ImageType               []string `json:"image_type"`
		Burned, Conversion      string
		Source                  []string
		Study, Series, Modality string
		PatientID               string `json:"patient_id"`
		Spacing                 []float64
		Probes                  [][]int
	}
	if err := json.Unmarshal([]byte(out), &o); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(o.Shape) != 3 || o.Shape[0] != c.Rows || o.Shape[1] <= c.Cols || o.Shape[2] != 3 {
		t.Errorf("pixel array shape %v for a %dx%d source", o.Shape, c.Rows, c.Cols)
	}
	if o.Photometric != "RGB" || fmt.Sprint(o.ImageType) != "[DERIVED SECONDARY]" || o.Burned != "YES" || o.Conversion != "WSD" {
		t.Errorf("header: %s %v %s %s", o.Photometric, o.ImageType, o.Burned, o.Conversion)
	}
	if fmt.Sprint(o.Source) != fmt.Sprint([]string{src.SOPClassUID, src.SOPInstanceUID}) || o.Study != src.StudyInstanceUID || o.PatientID != "PHANTOM-0001" {
		t.Errorf("references: source %v study %s patient %s", o.Source, o.Study, o.PatientID)
	}
	if o.Series == src.SeriesInstanceUID || o.Series != sc.SeriesInstanceUID(src) {
		t.Errorf("series %s", o.Series)
	}
	if len(o.Spacing) != 0 {
		t.Errorf("detector-plane spacing written as PixelSpacing: %v", o.Spacing)
	}
	want := uint8(math.Round(float64(c.Display[(c.Rows/200)*c.Cols+c.Cols/200]) * 255))
	if g := o.Probes[0]; g[0] != int(want) || g[1] != int(want) || g[2] != int(want) {
		t.Errorf("untouched pixel %v, want grey %d", g, want)
	}
	for _, g := range o.Probes[1:] {
		if !(g[0] > 200 && g[1] > 100 && g[1] < 180 && g[2] < 80) {
			t.Errorf("C7 landmark pixel %v is not the orange overlay", g)
		}
	}
}

// TestDownscale: with MaxDimension the image is block-averaged by an
// integer factor, the landmarks follow, and Pixel Spacing is scaled.
func TestDownscale(t *testing.T) {
	c := reporttest.NewCase(t, reporttest.CaseOptions{Seed: 6})
	c.Result.SpacingSource = result.SpacingPixelSpacing
	c.Result.PixelSpacingMM = []float64{0.15, 0.15}
	opts := testOptions()
	opts.MaxDimension = 500 // 1000x800 -> factor 2 -> 500x400
	_, b := build(t, c, opts)
	p := reporttest.WriteTemp(t, "sc.dcm", b)
	reporttest.Validate(t, p, false)
	var l result.Landmark
	for _, lm := range c.Result.Landmarks {
		if lm.Name == "C7_inf_post" {
			l = lm
		}
	}
	probe := [][2]int{{int(math.Round((l.X+0.5)/2 - 0.5)), int(math.Round((l.Y+0.5)/2 - 0.5))}}
	pj, _ := json.Marshal(probe)
	var o struct {
		Shape   []int
		Spacing []float64
		Probes  [][]int
	}
	if err := json.Unmarshal([]byte(reporttest.PyDicom(t, pyCheck, p, string(pj))), &o); err != nil {
		t.Fatal(err)
	}
	if o.Shape[0] != 500 || fmt.Sprint(o.Spacing) != "[0.3 0.3]" {
		t.Errorf("shape %v spacing %v", o.Shape, o.Spacing)
	}
	if g := o.Probes[0]; !(g[0] > 200 && g[1] > 100 && g[1] < 180 && g[2] < 80) {
		t.Errorf("scaled C7 landmark pixel %v is not the orange overlay", g)
	}
}

// TestLegibility renders 1000 px and 2000 px images: the body text scales
// with the image (at least 13 px; ~24 px at 1000 rows, ~48 px at 2000), the
// panel fits, and the red review banner is present exactly when flagged.
func TestLegibility(t *testing.T) {
	for _, tt := range []struct {
		rows, cols int
		flagged    bool
		minFont    float64
	}{
		{1000, 800, true, 23}, {1000, 800, false, 23}, {2000, 1600, true, 47}, {2000, 1600, false, 47}, {400, 300, true, 13},
	} {
		t.Run(fmt.Sprintf("%dx%d_flagged=%v", tt.rows, tt.cols, tt.flagged), func(t *testing.T) {
			c := reporttest.NewCase(t, reporttest.CaseOptions{Rows: tt.rows, Cols: tt.cols, Flagged: tt.flagged, Seed: 7})
			img, l, err := sc.Render(c.Result, c.Display, c.Rows, c.Cols, sc.RenderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if l.FontSize < tt.minFont {
				t.Errorf("font %.1f px < %.1f", l.FontSize, tt.minFont)
			}
			if l.ImageWidth != tt.cols || img.Bounds().Dx() != tt.cols+l.PanelWidth || img.Bounds().Dy() < tt.rows {
				t.Errorf("layout %+v, canvas %v", l, img.Bounds())
			}
			red := 0
			banner := color.RGBA{0xc4, 0x10, 0x10, 0xff}
			for y := 0; y < tt.rows/3; y++ {
				for x := tt.cols; x < img.Bounds().Dx(); x++ {
					if img.RGBAAt(x, y) == banner {
						red++
					}
				}
			}
			if tt.flagged != (red > l.PanelWidth*int(l.FontSize)) {
				t.Errorf("flagged=%v but %d banner pixels in the panel", tt.flagged, red)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	c := reporttest.NewCase(t, reporttest.CaseOptions{Seed: 9, Flagged: true})
	_, b1 := build(t, c, testOptions())
	_, b2 := build(t, c, testOptions())
	if !bytes.Equal(b1, b2) {
		t.Fatal("two builds of the same input differ")
	}
}

func TestBuildRejectsBadInput(t *testing.T) {
	c := reporttest.NewCase(t, reporttest.CaseOptions{Seed: 10, Rows: 200, Cols: 160})
	src, err := dicomio.SourceFromDataset(c.Source)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name       string
		rows, cols int
		display    []float32
		mutate     func(*result.Result, *sc.Options)
	}{
		{"short display", 200, 160, c.Display[:100], nil},
		{"size differs from source", 100, 320, c.Display, nil},
		{"rejected result", 200, 160, c.Display, func(r *result.Result, _ *sc.Options) { r.Status = result.StatusRejected }},
		{"no model", 200, 160, c.Display, func(r *result.Result, _ *sc.Options) { r.Model = nil }},
		{"no time", 200, 160, c.Display, func(_ *result.Result, o *sc.Options) { o.ContentTime = time.Time{} }},
		{"verified without revision", 200, 160, c.Display, func(_ *result.Result, o *sc.Options) { o.Verified = &sc.Verification{} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, o := c.Result, testOptions()
			if tt.mutate != nil {
				tt.mutate(&r, &o)
			}
			if _, err := sc.Build(src, r, tt.display, tt.rows, tt.cols, o); !errors.Is(err, sc.ErrInvalid) {
				t.Errorf("error %v, want ErrInvalid", err)
			}
		})
	}
}

func BenchmarkRender(b *testing.B) {
	for _, size := range [][2]int{{1000, 800}, {2000, 1600}} {
		c := reporttest.NewCase(b, reporttest.CaseOptions{Rows: size[0], Cols: size[1], Flagged: true})
		b.Run(fmt.Sprintf("%dx%d", size[0], size[1]), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := sc.Render(c.Result, c.Display, c.Rows, c.Cols, sc.RenderOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
