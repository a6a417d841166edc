package decode_test

import (
	"fmt"

	"github.com/cspine/cspine/pipeline/decode"
	"github.com/cspine/cspine/pipeline/window"
)

// A real Agfa CR header (MONOCHROME1, 12 bits, rescaled, one window) from
// the shared real-world files.
func ExampleFile() {
	im, err := decode.File("../../../shared/realworld/pydicom-cspine-cr/dicomdirtests_77654033_CR1_6154")
	if err != nil {
		fmt.Println(err)
		return
	}
	m := im.Meta
	fmt.Println(im.Rows, im.Cols, m.Photometric, m.BitsStored, m.ViewPosition, m.ImagerPixelSpacing)
	// MONOCHROME1 values are inverted, and the window with them.
	fmt.Println("inverted:", m.Inverted)
	voi := im.VOI()
	fmt.Printf("%s %.3f/%.0f %s\n", voi.Source, voi.Window.Center, voi.Window.Width, voi.Window.Function)

	// Display is window.Apply with that window: values in [0,1], 1 = white.
	display := im.Display()
	same := make([]float32, len(im.Modality))
	window.Apply(same, im.Modality, voi.Window)
	fmt.Println(display[0] == same[0], display[0] >= 0 && display[0] <= 1)
	// Output:
	// 16 16 MONOCHROME1 12 LL [0.1 0.1]
	// inverted: true
	// window 1601.980/2800 LINEAR
	// true true
}
