package window_test

import (
	"fmt"

	"github.com/cspine/cspine/pipeline/window"
)

// A LINEAR window of centre 40, width 400 (PS3.3 C.11.2.1.2.1): 0 up to
// -160, 1 above 239, (x - 39.5)/399 + 0.5 between.
func ExampleApply() {
	src := []float32{-1000, -160, 39.5, 139.25, 239, 3000}
	dst := make([]float32, len(src))
	window.Apply(dst, src, window.Params{Center: 40, Width: 400, Function: window.Linear})
	fmt.Println(dst)
	// Output: [0 0 0.5 0.75 1 1]
}

// A VOI LUT of 8-bit entries for inputs 100, 101 and 102.
func ExampleApplyLUT() {
	lut := &window.LUT{FirstMapped: 100, Data: []uint16{0, 51, 255}, Bits: 8}
	src := []float32{0, 101, 101.4, 500}
	dst := make([]float32, len(src))
	window.ApplyLUT(dst, src, lut)
	fmt.Println(dst)
	// Output: [0 0.2 0.2 1]
}
