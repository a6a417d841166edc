package review

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/pipeline/decode"
	"github.com/cspine/cspine/pipeline/window"
)

func TestRender(t *testing.T) {
	// A 4×4 image: a checkerboard of 2×2 blocks of 0 and 100, windowed to
	// [0, 100].
	im := &decode.Image{Rows: 4, Cols: 4, Modality: []float32{
		0, 0, 100, 100,
		0, 0, 100, 100,
		100, 100, 0, 0,
		100, 100, 0, 0,
	}}
	ci := &cachedImage{im: im, def: window.Params{Center: 50, Width: 100, Function: window.LinearExact}}
	for _, tc := range []struct {
		name string
		p    renderParams
		want []uint8
		w, h int
	}{
		{"full size", renderParams{W: 4, H: 4, Size: 4}, []uint8{0, 0, 255, 255, 0, 0, 255, 255, 255, 255, 0, 0, 255, 255, 0, 0}, 4, 4},
		{"halved: block averages", renderParams{W: 4, H: 4, Size: 2}, []uint8{0, 255, 255, 0}, 2, 2},
		{"region", renderParams{X: 2, Y: 0, W: 2, H: 2, Size: 2}, []uint8{255, 255, 255, 255}, 2, 2},
		{"narrow window", renderParams{W: 4, H: 4, Size: 1, Window: &window.Params{Center: 75, Width: 1, Function: window.LinearExact}}, []uint8{0}, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := render(ci, tc.p)
			require.Equal(t, tc.w, g.Rect.Dx())
			require.Equal(t, tc.h, g.Rect.Dy())
			if tc.want != nil {
				require.Equal(t, tc.want, g.Pix)
			}
		})
	}
	// Enlarged 4×: the corners keep their values; output pixel (8, 8) has
	// its centre at source (1.625, 1.625), interpolated bilinearly:
	// rows 62.5 and 37.5, then 46.875 → 0.46875·255 ≈ 120.
	g := render(ci, renderParams{W: 4, H: 4, Size: 16})
	require.Equal(t, uint8(0), g.GrayAt(0, 0).Y)
	require.Equal(t, uint8(255), g.GrayAt(15, 0).Y)
	require.Equal(t, uint8(120), g.GrayAt(8, 8).Y)
}
