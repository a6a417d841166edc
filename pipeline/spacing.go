package pipeline

import (
	"math"

	"github.com/cspine/cspine/pipeline/geometry"
	"github.com/cspine/cspine/pipeline/result"
)

// validPair reports whether v holds exactly two positive finite spacings.
func validPair(v []float64) bool {
	if len(v) != 2 {
		return false
	}
	for _, x := range v {
		if !(x > 0) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// SpacingFrom chooses the pixel spacing for mm values in the spec's order of
// preference: PixelSpacing (0028,0030); ImagerPixelSpacing (0018,1164)
// divided by EstimatedRadiographicMagnificationFactor (0018,1114) when that is
// present and positive; ImagerPixelSpacing alone; none. Values that are not
// two positive finite numbers count as absent. Row spacing comes first.
func SpacingFrom(pixelSpacing, imagerPixelSpacing []float64, ermf float64) (geometry.Spacing, string) {
	switch {
	case validPair(pixelSpacing):
		return geometry.Spacing{RowMM: pixelSpacing[0], ColMM: pixelSpacing[1]}, result.SpacingPixelSpacing
	case validPair(imagerPixelSpacing) && ermf > 0 && !math.IsInf(ermf, 0):
		return geometry.Spacing{RowMM: imagerPixelSpacing[0] / ermf, ColMM: imagerPixelSpacing[1] / ermf}, result.SpacingImagerERMF
	case validPair(imagerPixelSpacing):
		return geometry.Spacing{RowMM: imagerPixelSpacing[0], ColMM: imagerPixelSpacing[1]}, result.SpacingImager
	}
	return geometry.Spacing{}, result.SpacingNone
}
