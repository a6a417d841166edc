package sc

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
	"golang.org/x/image/vector"
)

// pt is a point in canvas pixel coordinates (pixel centres at +0.5).
type pt struct{ X, Y float64 }

// fillPolygon fills a closed polygon with c, anti-aliased, clipped to dst.
func fillPolygon(dst *image.RGBA, pts []pt, c color.Color) {
	if len(pts) < 3 {
		return
	}
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, p := range pts {
		minX, minY = math.Min(minX, p.X), math.Min(minY, p.Y)
		maxX, maxY = math.Max(maxX, p.X), math.Max(maxY, p.Y)
	}
	r := image.Rect(int(math.Floor(minX)), int(math.Floor(minY)), int(math.Ceil(maxX))+1, int(math.Ceil(maxY))+1)
	clip := r.Intersect(dst.Bounds())
	if clip.Empty() {
		return
	}
	z := vector.NewRasterizer(clip.Dx(), clip.Dy())
	ox, oy := float64(clip.Min.X), float64(clip.Min.Y)
	z.MoveTo(float32(pts[0].X-ox), float32(pts[0].Y-oy))
	for _, p := range pts[1:] {
		z.LineTo(float32(p.X-ox), float32(p.Y-oy))
	}
	z.ClosePath()
	z.Draw(dst, clip, image.NewUniform(c), image.Point{})
}

// line draws a segment of width w.
func line(dst *image.RGBA, a, b pt, w float64, c color.Color) {
	dx, dy := b.X-a.X, b.Y-a.Y
	l := math.Hypot(dx, dy)
	if l == 0 {
		return
	}
	nx, ny := -dy/l*w/2, dx/l*w/2
	fillPolygon(dst, []pt{{a.X + nx, a.Y + ny}, {b.X + nx, b.Y + ny}, {b.X - nx, b.Y - ny}, {a.X - nx, a.Y - ny}}, c)
}

// outlinedLine draws a line with a dark outline so that it stays visible on
// bright bone and dark air alike.
func outlinedLine(dst *image.RGBA, a, b pt, w float64, c color.Color) {
	line(dst, a, b, w*2, color.RGBA{0, 0, 0, 200})
	line(dst, a, b, w, c)
}

// dashedLine draws a dashed outlined line with dash length d.
func dashedLine(dst *image.RGBA, a, b pt, w, d float64, c color.Color) {
	l := math.Hypot(b.X-a.X, b.Y-a.Y)
	if l == 0 || d <= 0 {
		return
	}
	ux, uy := (b.X-a.X)/l, (b.Y-a.Y)/l
	for s := 0.0; s < l; s += 2 * d {
		e := math.Min(s+d, l)
		outlinedLine(dst, pt{a.X + ux*s, a.Y + uy*s}, pt{a.X + ux*e, a.Y + uy*e}, w, c)
	}
}

// disc draws a filled circle with a dark rim.
func disc(dst *image.RGBA, c pt, r float64, col color.Color) {
	circle := func(rad float64) []pt {
		const n = 32
		ps := make([]pt, n)
		for i := range ps {
			a := 2 * math.Pi * float64(i) / n
			ps[i] = pt{c.X + rad*math.Cos(a), c.Y + rad*math.Sin(a)}
		}
		return ps
	}
	fillPolygon(dst, circle(r+math.Max(1, r*0.35)), color.RGBA{0, 0, 0, 220})
	fillPolygon(dst, circle(r), col)
}

// fonts are parsed once; faces are made per size.
var (
	fontsOnce           sync.Once
	regularTTF, boldTTF *opentype.Font
	errFonts            error
)

func loadFonts() error {
	fontsOnce.Do(func() {
		regularTTF, errFonts = opentype.Parse(goregular.TTF)
		if errFonts != nil {
			return
		}
		boldTTF, errFonts = opentype.Parse(gobold.TTF)
	})
	if errFonts != nil {
		return fmt.Errorf("sc: parse Go fonts: %w", errFonts)
	}
	return nil
}

func face(bold bool, size float64) (font.Face, error) {
	if err := loadFonts(); err != nil {
		return nil, err
	}
	f := regularTTF
	if bold {
		f = boldTTF
	}
	fc, err := opentype.NewFace(f, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingNone})
	if err != nil {
		return nil, fmt.Errorf("sc: font face: %w", err)
	}
	return fc, nil
}

// textWidth returns the advance width of s in pixels.
func textWidth(f font.Face, s string) float64 {
	return fixedToFloat(font.MeasureString(f, s))
}

func fixedToFloat(v fixed.Int26_6) float64 { return float64(v) / 64 }

// drawText draws s with its baseline at (x, y).
func drawText(dst *image.RGBA, f font.Face, x, y float64, s string, c color.Color) {
	d := font.Drawer{Dst: dst, Src: image.NewUniform(c), Face: f,
		Dot: fixed.Point26_6{X: fixed.Int26_6(math.Round(x * 64)), Y: fixed.Int26_6(math.Round(y * 64))}}
	d.DrawString(s)
}

// drawLabel draws s on a dark translucent box (for labels on the image).
func drawLabel(dst *image.RGBA, f font.Face, x, y float64, s string, c color.Color) {
	m := f.Metrics()
	asc, desc := fixedToFloat(m.Ascent), fixedToFloat(m.Descent)
	w := textWidth(f, s)
	pad := asc * 0.15
	draw.Draw(dst, image.Rect(int(x-pad), int(y-asc-pad), int(x+w+pad), int(y+desc+pad)).Intersect(dst.Bounds()),
		image.NewUniform(color.RGBA{0, 0, 0, 170}), image.Point{}, draw.Over)
	drawText(dst, f, x, y, s, c)
}

// wrap splits s into lines no wider than maxW.
func wrap(f font.Face, s string, maxW float64) []string {
	var lines []string
	var cur string
	for _, w := range splitWords(s) {
		try := w
		if cur != "" {
			try = cur + " " + w
		}
		if cur != "" && textWidth(f, try) > maxW {
			lines = append(lines, cur)
			cur = w
			continue
		}
		cur = try
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

func splitWords(s string) []string {
	var out []string
	word := []rune{}
	for _, r := range s {
		if r == ' ' {
			if len(word) > 0 {
				out = append(out, string(word))
				word = word[:0]
			}
			continue
		}
		word = append(word, r)
	}
	if len(word) > 0 {
		out = append(out, string(word))
	}
	return out
}
