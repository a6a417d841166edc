package phantom

import (
	"image"
	"image/draw"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

var (
	markerFontOnce sync.Once
	markerFont     *opentype.Font
)

// addMarker burns the lead side marker (a letter) into the attenuation map:
// lead stops the beam, so the letter comes out white after processing.
func addMarker(mu []float32, W, H int, im *imaging) {
	if im.marker.letter == "" {
		return
	}
	markerFontOnce.Do(func() {
		f, err := opentype.Parse(gobold.TTF)
		if err != nil {
			panic("phantom: embedded Go Bold font does not parse: " + err.Error())
		}
		markerFont = f
	})
	size := im.marker.sizePx
	face, err := opentype.NewFace(markerFont, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingNone})
	if err != nil {
		return
	}
	defer face.Close()
	box := int(size*1.4) + 4
	mask := image.NewAlpha(image.Rect(0, 0, box, box))
	draw.Draw(mask, mask.Bounds(), image.Transparent, image.Point{}, draw.Src)
	d := font.Drawer{Dst: mask, Src: image.Opaque, Face: face,
		Dot: fixed.P(int(size*0.15)+2, int(size*1.1))}
	d.DrawString(im.marker.letter)
	// A square frame around the letter, as on common lead markers.
	frame := int(size * 0.06)
	if frame < 2 {
		frame = 2
	}
	ox, oy := int(im.marker.x), int(im.marker.y)
	for y := 0; y < box; y++ {
		for x := 0; x < box; x++ {
			a := float32(mask.AlphaAt(x, y).A) / 255
			if x < frame || y < frame || x >= box-frame || y >= box-frame {
				a = 1
			}
			if a == 0 {
				continue
			}
			X, Y := ox+x, oy+y
			if X < 0 || Y < 0 || X >= W || Y >= H {
				continue
			}
			mu[Y*W+X] += 3 * a
		}
	}
}
