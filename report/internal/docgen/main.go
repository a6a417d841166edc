// Command docgen makes the illustrations of docs/report.md: the overlay for a
// phantom case (its ground truth drawn as a result) and for the real
// radiograph in shared/realworld (four endplate points from another group's
// model, a partial, illustrative result), downscaled for the page, plus the
// phantom case's SR for dsrdump.
//
//	go run ./report/internal/docgen -out docs/img -sr /tmp/phantom_sr.dcm
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/suyashkumar/dicom"
	xdraw "golang.org/x/image/draw"

	"github.com/cspine/cspine/phantom"
	"github.com/cspine/cspine/pipeline/decode"
	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/report/dicomio"
	"github.com/cspine/cspine/report/sc"
	"github.com/cspine/cspine/report/sr"
)

func main() {
	out := flag.String("out", "docs/img", "directory for the PNGs")
	realworld := flag.String("realworld", "../shared/realworld", "shared real-world files")
	srOut := flag.String("sr", "", "also write the phantom case's SR and SC (.dcm) with this path prefix")
	width := flag.Int("width", 1100, "width of the PNGs on the page")
	flag.Parse()
	if err := run(*out, *realworld, *srOut, *width); err != nil {
		fmt.Fprintln(os.Stderr, "docgen:", err)
		os.Exit(1)
	}
}

var device = dicomio.Device{Manufacturer: "cspine project", ModelName: "cspine", Name: "CSPINE-DOCS",
	UID: dicomio.UID("cspine", "docs-device"), SoftwareVersion: "docs"}

func run(out, realworld, srOut string, width int) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := phantomCase(out, srOut, width); err != nil {
		return fmt.Errorf("phantom case: %w", err)
	}
	if err := realCase(out, realworld, width); err != nil {
		return fmt.Errorf("real radiograph: %w", err)
	}
	return nil
}

func phantomCase(out, srOut string, width int) error {
	dir, err := os.MkdirTemp("", "docgen")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := phantom.Generate(context.Background(), phantom.Options{Count: 1, Seed: 20260102, OutDir: dir,
		Obscuration: "partial", Rows: 1000, Cols: 1000, Workers: 1}); err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(dir, "truth.jsonl"))
	if err != nil {
		return err
	}
	defer f.Close()
	var truth result.Truth
	sc0 := bufio.NewScanner(f)
	sc0.Buffer(nil, 1<<24)
	if !sc0.Scan() {
		return fmt.Errorf("empty truth.jsonl")
	}
	if err := json.Unmarshal(sc0.Bytes(), &truth); err != nil {
		return err
	}
	path := truth.File
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	im, err := decode.File(path)
	if err != nil {
		return err
	}
	ds, err := dicom.ParseFile(path, nil, dicom.SkipPixelData())
	if err != nil {
		return err
	}
	src, err := dicomio.SourceFromDataset(ds)
	if err != nil {
		return err
	}
	res := result.Result{File: filepath.Base(path), SOPInstanceUID: truth.SOPInstanceUID, StudyInstanceUID: truth.StudyInstanceUID,
		Status: result.StatusOK, Facing: truth.Facing, Parameters: truth.Parameters,
		PixelSpacingMM: truth.PixelSpacingMM, SpacingSource: truth.SpacingSource,
		Review: &result.Review{Required: true, Reasons: []string{result.ReasonC7LowConfidence}},
		C7:     &result.C7{Confidence: 1, Obscuration: truth.Obscuration},
		Model:  &result.Model{Name: "phantom-ground-truth", Version: "0", Mode: result.ModeHierarchical}}
	for _, l := range truth.Landmarks {
		res.Landmarks = append(res.Landmarks, result.Landmark{Name: l.Name, X: l.X, Y: l.Y, Confidence: 1, Stage: result.StageRefined})
	}
	display := im.Display()
	img, _, err := sc.Render(res, display, im.Rows, im.Cols, sc.RenderOptions{
		Illustration: "Phantom ground truth drawn as a result (flag set for illustration)"})
	if err != nil {
		return err
	}
	if err := writePNG(filepath.Join(out, "overlay_phantom_flagged.png"), img, width); err != nil {
		return err
	}
	unflagged := res
	unflagged.Review = &result.Review{Required: false, Reasons: []string{}}
	img, _, err = sc.Render(unflagged, display, im.Rows, im.Cols, sc.RenderOptions{
		Illustration: "Phantom ground truth drawn as a result"})
	if err != nil {
		return err
	}
	if err := writePNG(filepath.Join(out, "overlay_phantom.png"), img, width); err != nil {
		return err
	}
	if srOut == "" {
		return nil
	}
	t := time.Date(2026, 1, 2, 10, 30, 0, 0, time.UTC)
	srDS, err := sr.Build(src, res, sr.Options{Device: device, ContentTime: t})
	if err != nil {
		return err
	}
	if err := dicomio.WriteFile(srOut+"_sr.dcm", srDS); err != nil {
		return err
	}
	scDS, err := sc.Build(src, res, display, im.Rows, im.Cols, sc.Options{Device: device, ContentTime: t})
	if err != nil {
		return err
	}
	if err := dicomio.WriteFile(srOut+"_sc.dcm", scDS); err != nil {
		return err
	}
	return os.WriteFile(srOut+"_source.dcm", mustRead(path), 0o644)
}

func mustRead(p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	return b
}

// realCase draws the four c2c7demo points on the Radiopaedia radiograph.
func realCase(out, realworld string, width int) error {
	dir := filepath.Join(realworld, "radiopaedia-c2c7demo")
	f, err := os.Open(filepath.Join(dir, "extension.jpg"))
	if err != nil {
		return err
	}
	defer f.Close()
	jimg, err := jpeg.Decode(f)
	if err != nil {
		return err
	}
	b := jimg.Bounds()
	rows, cols := b.Dy(), b.Dx()
	display := make([]float32, rows*cols)
	for y := 0; y < rows; y++ {
		for x := 0; x < cols; x++ {
			r, g, bl, _ := jimg.At(b.Min.X+x, b.Min.Y+y).RGBA()
			display[y*cols+x] = float32((0.299*float64(r) + 0.587*float64(g) + 0.114*float64(bl)) / 65535)
		}
	}
	var pts struct {
		Points map[string][2]float64 `json:"points_xy_px"`
	}
	pb, err := os.ReadFile(filepath.Join(dir, "extension_points.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(pb, &pts); err != nil {
		return err
	}
	names := map[string]string{"C2_inferior_anterior": "C2_inf_ant", "C2_inferior_posterior": "C2_inf_post",
		"C7_inferior_anterior": "C7_inf_ant", "C7_inferior_posterior": "C7_inf_post"}
	res := result.Result{File: "extension.jpg", Status: result.StatusOK, Facing: result.FacingLeft,
		SpacingSource: result.SpacingNone,
		Review:        &result.Review{Required: true, Reasons: []string{result.ReasonNoPixelSpacing}},
		Model:         &result.Model{Name: "c2c7demo-points", Version: "36e79a5"}}
	idx := map[string]result.Landmark{}
	for _, k := range []string{"C2_inferior_anterior", "C2_inferior_posterior", "C7_inferior_anterior", "C7_inferior_posterior"} {
		p, ok := pts.Points[k]
		if !ok {
			return fmt.Errorf("point %s missing", k)
		}
		l := result.Landmark{Name: names[k], X: p[0], Y: p[1], Confidence: 1, Stage: result.StageGlobal}
		res.Landmarks = append(res.Landmarks, l)
		idx[l.Name] = l
	}
	slope := func(v string) float64 {
		a, p := idx[v+"_inf_ant"], idx[v+"_inf_post"]
		return math.Atan2(a.Y-p.Y, math.Abs(a.X-p.X)) * 180 / math.Pi
	}
	res.Parameters = &result.Parameters{C2SlopeDeg: slope("C2"), C7SlopeDeg: slope("C7")}
	res.Parameters.C2C7CobbDeg = res.Parameters.C7SlopeDeg - res.Parameters.C2SlopeDeg
	img, _, err := sc.Render(res, display, rows, cols, sc.RenderOptions{
		Illustration: "ILLUSTRATIVE ONLY: 4 endplate points from another group's AI model (c2c7demo), not cspine output"})
	if err != nil {
		return err
	}
	return writePNG(filepath.Join(out, "overlay_radiopaedia_extension.png"), img, width)
}

// writePNG writes img scaled to the given width (Catmull-Rom).
func writePNG(path string, img image.Image, width int) error {
	b := img.Bounds()
	if b.Dx() > width {
		h := int(math.Round(float64(b.Dy()) * float64(width) / float64(b.Dx())))
		dst := image.NewRGBA(image.Rect(0, 0, width, h))
		xdraw.CatmullRom.Scale(dst, dst.Bounds(), img, b, xdraw.Src, nil)
		img = dst
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
