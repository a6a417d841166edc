package pipelinetest

import (
	"image"
	"image/draw"
	"os"
	"path/filepath"
	"testing"

	"github.com/cspine/cspine/pipeline/decode"
)

func TestWrapImageFile(t *testing.T) {
	t.Parallel()
	src := Realworld(t, "radiopaedia-c2c7demo/extension.jpg")
	dst := filepath.Join(t.TempDir(), "x.dcm")
	rows, cols := WrapImageFile(t, src, dst, Image{})
	im, err := decode.File(dst)
	if err != nil {
		t.Fatal(err)
	}
	if im.Rows != rows || im.Cols != cols || rows != 1600 || im.Meta.SOPClassUID != SecondaryCaptureClass ||
		im.Meta.PixelSpacing != nil || im.Meta.ImagerPixelSpacing != nil {
		t.Fatalf("decoded %d×%d %+v", im.Cols, im.Rows, im.Meta)
	}
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	g := image.NewGray(img.Bounds())
	draw.Draw(g, g.Bounds(), img, img.Bounds().Min, draw.Src)
	for i, v := range g.Pix {
		if im.Modality[i] != float32(v) {
			t.Fatalf("pixel %d: %v, want %v", i, im.Modality[i], v)
		}
	}
}

func TestWriteDICOM16(t *testing.T) {
	t.Parallel()
	dst := filepath.Join(t.TempDir(), "x.dcm")
	pix := make([]uint16, 300*200)
	for i := range pix {
		pix[i] = uint16(i * 7 % 65536)
	}
	WriteDICOM(t, dst, Image{Rows: 300, Cols: 200, Pix: pix, SOPClassUID: DXPresentationClass, Modality: "DX",
		ViewPosition: "LL", ImagerPixelSpacing: []float64{0.139, 0.14}, PixelSpacing: []float64{0.1, 0.1}, WindowCenter: 2000, WindowWidth: 4000})
	im, err := decode.File(dst)
	if err != nil {
		t.Fatal(err)
	}
	if im.Rows != 300 || im.Cols != 200 || im.Meta.ViewPosition != "LL" || im.Meta.ImagerPixelSpacing[1] != 0.14 || im.Meta.PixelSpacing[0] != 0.1 || len(im.Meta.Window) != 1 {
		t.Fatalf("decoded %+v", im.Meta)
	}
	for i, v := range pix {
		if im.Modality[i] != float32(v) {
			t.Fatalf("pixel %d: %v, want %v", i, im.Modality[i], v)
		}
	}
}
