package sc

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"strings"
	"time"

	"golang.org/x/image/font"

	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/report/param"
)

// Verification is the human review shown on a reviewed overlay.
type Verification struct {
	ObserverName string // DICOM PN form "Family^Given"
	Organization string
	VerifiedAt   time.Time
	Corrected    bool
}

// RenderOptions change what the overlay says.
type RenderOptions struct {
	// Verified, when set, adds the reviewer line to the panel.
	Verified *Verification
	// Illustration, when non-empty, is printed in the panel as a notice
	// (used for documentation images from partial, non-pipeline results).
	Illustration string
}

// Colours of the overlay, chosen to differ on grey anatomy and from each
// other; every line and point has a dark rim.
var (
	colC2       = color.RGBA{0x30, 0xe0, 0x50, 0xff} // green: C2 endplate
	colC7       = color.RGBA{0xff, 0x8c, 0x1a, 0xff} // orange: C7 endplate
	colPlumb    = color.RGBA{0x30, 0xd0, 0xff, 0xff} // cyan: C2 plumb line, SVA
	colPoint    = color.RGBA{0xff, 0xe0, 0x30, 0xff} // yellow: C3..C6 corners
	colText     = color.RGBA{0xf0, 0xf0, 0xf0, 0xff}
	colDim      = color.RGBA{0xb0, 0xb0, 0xb0, 0xff}
	colWarn     = color.RGBA{0xff, 0xd4, 0x2a, 0xff}
	colBanner   = color.RGBA{0xc4, 0x10, 0x10, 0xff}
	colPanel    = color.RGBA{0x12, 0x12, 0x16, 0xff}
	colVerified = color.RGBA{0x5c, 0xe0, 0x7a, 0xff}
)

// Disclaimer is printed on every overlay.
const Disclaimer = "AI measurement – verify before clinical use"

// Layout reports where Render put things, for the DICOM writer and tests.
type Layout struct {
	// ImageWidth and ImageHeight are the image's part of the canvas, at its
	// top left: canvas pixel (x,y) is pixel (x,y) of the image rendered.
	ImageWidth, ImageHeight int
	// PanelWidth is the width of the text panel right of the image.
	PanelWidth int
	// FontSize is the body text size in pixels.
	FontSize float64
}

type panelLine struct {
	text  string
	bold  bool
	col   color.Color
	scale float64
	wrap  bool
	box   color.Color // background box for the line block (banner)
}

// Render draws the overlay: the windowed source image at full resolution,
// the landmarks, the extended C2 and C7 inferior endplate lines, the C2
// plumb line with the SVA offset to C7, and a text panel right of the image
// with the values, the model, the review banner and the disclaimer. display
// holds rows*cols grey values in [0,1], row-major. Landmarks and parameters
// that are absent from res are left out (a parameter is listed only when
// every landmark it is defined from is present).
func Render(res result.Result, display []float32, rows, cols int, opts RenderOptions) (*image.RGBA, Layout, error) {
	if rows <= 0 || cols <= 0 || len(display) != rows*cols {
		return nil, Layout{}, fmt.Errorf("sc: display has %d values for %dx%d", len(display), rows, cols)
	}
	fs := clamp(float64(rows)/42, 13, 72)
	body, err := face(false, fs)
	if err != nil {
		return nil, Layout{}, err
	}
	lines := panelLines(res, opts)
	margin := math.Round(fs * 0.8)
	// Panel width: the widest non-wrapping line, at least 15 ems.
	maxW := fs * 15
	faces := map[[2]float64]font.Face{}
	faceFor := func(l panelLine) (font.Face, error) {
		k := [2]float64{boolF(l.bold), l.scale}
		if f, ok := faces[k]; ok {
			return f, nil
		}
		f, err := face(l.bold, fs*l.scale)
		if err != nil {
			return nil, err
		}
		faces[k] = f
		return f, nil
	}
	for _, l := range lines {
		if l.wrap {
			continue
		}
		f, err := faceFor(l)
		if err != nil {
			return nil, Layout{}, err
		}
		maxW = math.Max(maxW, textWidth(f, l.text))
	}
	panelW := int(math.Ceil(maxW + 2*margin))
	m := body.Metrics()
	lineH := fixedToFloat(m.Height) * 1.15
	// panel lays the text out top to bottom, drawing when canvas is not nil,
	// and returns the height used.
	panel := func(canvas *image.RGBA) (float64, error) {
		x0 := float64(cols) + margin
		y := margin
		for _, l := range lines {
			f, err := faceFor(l)
			if err != nil {
				return 0, err
			}
			h := lineH * l.scale
			texts := []string{l.text}
			if l.wrap {
				texts = wrap(f, l.text, maxW)
			}
			if l.box != nil {
				if canvas != nil {
					bottom := y + h*float64(len(texts)) + h*0.3
					draw.Draw(canvas, image.Rect(cols, int(y), cols+panelW, int(bottom)), image.NewUniform(l.box), image.Point{}, draw.Src)
				}
				y += h * 0.15
			}
			for _, s := range texts {
				y += h
				if s != "" && canvas != nil {
					drawText(canvas, f, x0, y-h*0.25, s, l.col)
				}
			}
			if l.box != nil {
				y += h * 0.35
			}
		}
		return y + margin, nil
	}
	need, err := panel(nil)
	if err != nil {
		return nil, Layout{}, err
	}
	// A small image gets a taller canvas rather than unreadable text; the
	// image part stays at the top left.
	height := max(rows, int(math.Ceil(need)))
	canvas := image.NewRGBA(image.Rect(0, 0, cols+panelW, height))
	draw.Draw(canvas, canvas.Bounds(), image.NewUniform(colPanel), image.Point{}, draw.Src)
	grey(canvas, display, rows, cols)

	flagged := res.Review != nil && res.Review.Required && opts.Verified == nil
	if flagged {
		// A red frame around the image says "flagged" even when zoomed.
		t := int(math.Max(3, fs/4))
		for _, r := range []image.Rectangle{
			image.Rect(0, 0, cols, t), image.Rect(0, rows-t, cols, rows),
			image.Rect(0, 0, t, rows), image.Rect(cols-t, 0, cols, rows),
		} {
			draw.Draw(canvas, r, image.NewUniform(colBanner), image.Point{}, draw.Src)
		}
	}
	imgPart := canvas.SubImage(image.Rect(0, 0, cols, rows)).(*image.RGBA)
	if err := drawOverlay(imgPart, res, rows, fs); err != nil {
		return nil, Layout{}, err
	}
	if _, err := panel(canvas); err != nil {
		return nil, Layout{}, err
	}
	return canvas, Layout{ImageWidth: cols, ImageHeight: rows, PanelWidth: panelW, FontSize: fs}, nil
}

func boolF(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

// grey copies the display image into the canvas as R=G=B.
func grey(dst *image.RGBA, display []float32, rows, cols int) {
	for y := 0; y < rows; y++ {
		row := dst.Pix[y*dst.Stride:]
		for x := 0; x < cols; x++ {
			v := display[y*cols+x]
			var g uint8
			switch {
			case !(v > 0): // also NaN
				g = 0
			case v >= 1:
				g = 255
			default:
				g = uint8(math.Round(float64(v) * 255))
			}
			row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = g, g, g, 255
		}
	}
}

// panelLines is the text of the panel.
func panelLines(res result.Result, opts RenderOptions) []panelLine {
	var ls []panelLine
	add := func(l panelLine) {
		if l.scale == 0 {
			l.scale = 1
		}
		if l.col == nil {
			l.col = colText
		}
		ls = append(ls, l)
	}
	add(panelLine{text: "cspine: cervical alignment", bold: true, scale: 1.15})
	if opts.Illustration != "" {
		add(panelLine{text: opts.Illustration, bold: true, col: colWarn, wrap: true})
	}
	if res.Review != nil && res.Review.Required && opts.Verified == nil {
		var why []string
		for _, r := range res.Review.Reasons {
			if m, ok := result.ReasonMeanings[r]; ok {
				why = append(why, m)
			} else {
				why = append(why, r)
			}
		}
		add(panelLine{text: "REVIEW REQUIRED: " + strings.Join(why, "; "), bold: true, wrap: true, box: colBanner})
	}
	add(panelLine{text: ""})
	idx := param.Index(res.Landmarks)
	segHeader := false
	for _, p := range param.All() {
		if !p.HasLandmarks(idx) {
			continue
		}
		v, ok := p.Value(res.Parameters)
		label := p.Label
		if p.Segment != "" {
			if !segHeader {
				add(panelLine{text: "Segmental angles:", col: colDim})
				segHeader = true
			}
			label = "  " + p.Segment
		}
		var s string
		switch {
		case ok && p.Key == "c2c7_cobb_deg":
			kind := "lordosis"
			if v < 0 {
				kind = "kyphosis"
			}
			s = fmt.Sprintf("%s: %s (%s)", label, p.Format(v), kind)
		case ok:
			s = fmt.Sprintf("%s: %s", label, p.Format(v))
		case p.Unit == "mm":
			s = label + ": n/a (no pixel spacing)"
		default:
			s = label + ": n/a"
		}
		col := colText
		switch p.Key {
		case "c2_slope_deg":
			col = colC2
		case "c7_slope_deg":
			col = colC7
		case "c2c7_sva_mm":
			col = colPlumb
		}
		add(panelLine{text: s, col: col, bold: p.Key == "c2c7_cobb_deg"})
	}
	add(panelLine{text: ""})
	if m := res.Model; m != nil {
		add(panelLine{text: "Model: " + m.Name + " " + m.Version, col: colDim})
		if m.Mode != "" {
			add(panelLine{text: "Mode: " + m.Mode, col: colDim})
		}
	}
	if res.SpacingSource != "" {
		add(panelLine{text: "Spacing: " + res.SpacingSource, col: colDim})
	}
	add(panelLine{text: ""})
	if v := opts.Verified; v != nil {
		verb := "Verified"
		if v.Corrected {
			verb = "Corrected"
		}
		who := strings.ReplaceAll(strings.Trim(v.ObserverName, "^"), "^", ", ")
		if v.Organization != "" {
			who += " (" + v.Organization + ")"
		}
		add(panelLine{text: fmt.Sprintf("%s by %s, %s", verb, who, v.VerifiedAt.UTC().Format("2006-01-02 15:04 UTC")),
			col: colVerified, bold: true, wrap: true})
	}
	add(panelLine{text: Disclaimer, bold: true, col: colWarn, wrap: true})
	return ls
}

// drawOverlay draws lines and landmarks on the image part of the canvas.
func drawOverlay(dst *image.RGBA, res result.Result, rows int, fs float64) error {
	idx := param.Index(res.Landmarks)
	at := func(name string) (pt, bool) {
		l, ok := idx[name]
		if !ok {
			return pt{}, false
		}
		if math.IsNaN(l.X) || math.IsNaN(l.Y) || math.IsInf(l.X, 0) || math.IsInf(l.Y, 0) {
			return pt{}, false
		}
		// Landmark pixel centres are integers; canvas pixel centres +0.5.
		return pt{l.X + 0.5, l.Y + 0.5}, true
	}
	lw := clamp(float64(rows)/450, 1.5, 6)
	r := clamp(float64(rows)/200, 2.5, 12)

	// Extended inferior endplate lines of C2 and C7.
	for _, e := range []struct {
		v   string
		col color.Color
	}{{"C2", colC2}, {"C7", colC7}} {
		a, okA := at(e.v + "_inf_ant")
		p, okP := at(e.v + "_inf_post")
		if !okA || !okP {
			continue
		}
		dx, dy := p.X-a.X, p.Y-a.Y
		const ext = 0.9 // extend by 90% of the endplate length each way
		outlinedLine(dst, pt{a.X - ext*dx, a.Y - ext*dy}, pt{p.X + ext*dx, p.Y + ext*dy}, lw, e.col)
	}
	// C2 plumb line and the SVA offset at the C7 posterosuperior corner.
	if c2, ok := at("C2_centroid"); ok {
		if c7, ok := at("C7_sup_post"); ok {
			bottom := c7.Y + fs*1.5
			dashedLine(dst, c2, pt{c2.X, bottom}, lw, fs*0.6, colPlumb)
			outlinedLine(dst, pt{c2.X, c7.Y}, c7, lw, colPlumb)
			tick := fs * 0.4
			outlinedLine(dst, pt{c7.X, c7.Y - tick}, pt{c7.X, c7.Y + tick}, lw, colPlumb)
		}
	}
	// Landmarks, C7 last so it is on top.
	for _, name := range result.LandmarkNames {
		p, ok := at(name)
		if !ok {
			continue
		}
		col := colPoint
		switch {
		case strings.HasPrefix(name, "C2"):
			col = colC2
		case strings.HasPrefix(name, "C7"):
			col = colC7
		}
		disc(dst, p, r, col)
	}
	// Vertebra labels on the anterior side.
	small, err := face(true, fs*0.8)
	if err != nil {
		return err
	}
	anteriorLeft := res.Facing != result.FacingRight
	for n := 2; n <= 7; n++ {
		v := fmt.Sprintf("C%d", n)
		a, okA := at(v + "_inf_ant")
		s, okS := at(v + "_sup_ant")
		var anchor pt
		switch {
		case okA && okS:
			anchor = pt{(a.X + s.X) / 2, (a.Y + s.Y) / 2}
		case okA:
			anchor = a
		case okS:
			anchor = s
		default:
			continue
		}
		w := textWidth(small, v)
		x := anchor.X + fs*0.9
		if anteriorLeft {
			x = anchor.X - fs*0.9 - w
		}
		drawLabel(dst, small, x, anchor.Y+fs*0.3, v, colText)
	}
	return nil
}
