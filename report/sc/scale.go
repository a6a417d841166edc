package sc

import (
	"github.com/cspine/cspine/pipeline/result"
)

// scaleFactor returns the integer downscale factor that brings the larger
// side of a rows x cols image to at most maxDim (1 when maxDim is 0 or the
// image is small enough).
func scaleFactor(rows, cols, maxDim int) int {
	if maxDim <= 0 {
		return 1
	}
	m := max(rows, cols)
	return (m + maxDim - 1) / maxDim
}

// downscale averages k x k blocks (partial blocks at the right and bottom
// edges average the pixels they have).
func downscale(display []float32, rows, cols, k int) ([]float32, int, int) {
	if k <= 1 {
		return display, rows, cols
	}
	r2, c2 := (rows+k-1)/k, (cols+k-1)/k
	out := make([]float32, r2*c2)
	for y2 := 0; y2 < r2; y2++ {
		for x2 := 0; x2 < c2; x2++ {
			var sum float64
			n := 0
			for y := y2 * k; y < min(rows, (y2+1)*k); y++ {
				for x := x2 * k; x < min(cols, (x2+1)*k); x++ {
					sum += float64(display[y*cols+x])
					n++
				}
			}
			out[y2*c2+x2] = float32(sum / float64(n))
		}
	}
	return out, r2, c2
}

// scaleResult maps the landmarks into the grid downscaled by k: a source
// pixel centre x (integer) lies at (x + 0.5)/k - 0.5 in the new grid.
// Values, which are in degrees and mm, do not change.
func scaleResult(res result.Result, k int) result.Result {
	if k <= 1 {
		return res
	}
	out := res
	out.Landmarks = make([]result.Landmark, len(res.Landmarks))
	for i, l := range res.Landmarks {
		l.X = (l.X+0.5)/float64(k) - 0.5
		l.Y = (l.Y+0.5)/float64(k) - 0.5
		out.Landmarks[i] = l
	}
	if len(res.PixelSpacingMM) == 2 {
		out.PixelSpacingMM = []float64{res.PixelSpacingMM[0] * float64(k), res.PixelSpacingMM[1] * float64(k)}
	}
	return out
}
