package review

import (
	"testing"

	"github.com/cspine/cspine/pipeline/decode"
	"github.com/cspine/cspine/pipeline/geometry"
	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/pipeline/window"
)

// benchImage is a 2500×2048 radiograph-sized image with a smooth pattern.
func benchImage() *cachedImage {
	const rows, cols = 2500, 2048
	im := &decode.Image{Rows: rows, Cols: cols, Modality: make([]float32, rows*cols)}
	for y := 0; y < rows; y++ {
		for x := 0; x < cols; x++ {
			im.Modality[y*cols+x] = float32((x*7 + y*3) % 4096)
		}
	}
	return &cachedImage{im: im, def: window.Params{Center: 2048, Width: 4096, Function: window.Linear}}
}

// BenchmarkRender measures the image endpoint's rendering (without PNG
// encoding): the whole image for the page, and a zoomed-in region.
func BenchmarkRender(b *testing.B) {
	ci := benchImage()
	for _, bc := range []struct {
		name string
		p    renderParams
	}{
		{"whole_2048", renderParams{W: 2048, H: 2500, Size: 2048}},
		{"whole_1024", renderParams{W: 2048, H: 2500, Size: 1024}},
		{"region_300_to_1200", renderParams{X: 900, Y: 1200, W: 300, H: 300, Size: 1200, Window: &window.Params{Center: 1000, Width: 800}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				render(ci, bc.p)
			}
		})
	}
}

// BenchmarkMeasure measures one live recomputation of the parameters.
func BenchmarkMeasure(b *testing.B) {
	lms := make([]result.TruthLandmark, 0, result.NumLandmarks)
	for i, n := range result.LandmarkNames {
		lms = append(lms, result.TruthLandmark{Name: n, X: 300 + float64(i%4)*40, Y: 200 + float64(i)*30})
	}
	lim := geometry.DefaultLimits()
	sp := geometry.Spacing{RowMM: 0.14, ColMM: 0.14}
	b.ReportAllocs()
	for b.Loop() {
		measure(lms, sp, lim)
	}
}
