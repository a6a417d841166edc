package review

import (
	"bytes"
	"container/list"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/pipeline/decode"
	"github.com/cspine/cspine/pipeline/window"
)

// imageCache keeps the most recently used decoded source images.
type imageCache struct {
	mu    sync.Mutex
	max   int
	ll    *list.List // of *cachedImage, front = most recent
	byKey map[string]*list.Element
	// loading serialises decodes of one key.
	loading map[string]*sync.Mutex
}

type cachedImage struct {
	key string
	im  *decode.Image
	// def is the default window shown first.
	def window.Params
	// lut is the object's VOI LUT when it has one and no window.
	lut *window.LUT
}

func newImageCache(max int) *imageCache {
	return &imageCache{max: max, ll: list.New(), byKey: map[string]*list.Element{}, loading: map[string]*sync.Mutex{}}
}

func (c *imageCache) get(path string) (*cachedImage, error) {
	c.mu.Lock()
	if e, ok := c.byKey[path]; ok {
		c.ll.MoveToFront(e)
		c.mu.Unlock()
		return e.Value.(*cachedImage), nil
	}
	l, ok := c.loading[path]
	if !ok {
		l = &sync.Mutex{}
		c.loading[path] = l
	}
	c.mu.Unlock()

	l.Lock()
	defer l.Unlock()
	c.mu.Lock()
	if e, ok := c.byKey[path]; ok { // another request decoded it meanwhile
		c.ll.MoveToFront(e)
		c.mu.Unlock()
		return e.Value.(*cachedImage), nil
	}
	c.mu.Unlock()

	im, err := decode.File(path)
	if err != nil {
		return nil, err
	}
	ci := &cachedImage{key: path, im: im}
	dp := im.VOI()
	switch {
	case dp.Source == "voi_lut" && dp.LUT != nil:
		ci.lut = dp.LUT
		ci.def = window.Auto(im.Modality)
	default:
		ci.def = dp.Window
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.loading, path)
	c.byKey[path] = c.ll.PushFront(ci)
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.byKey, old.Value.(*cachedImage).key)
	}
	return ci, nil
}

// sourcePath returns the spool file of an instance, or a 410 when the
// spool has been purged.
func (s *server) sourcePath(in *models.Instance) (string, error) {
	if in.PurgedAt != nil {
		return "", &apiError{status: http.StatusGone, code: "purged", msg: "the source image was removed from the spool by the retention policy"}
	}
	if in.SpoolPath == "" {
		return "", &apiError{status: http.StatusGone, code: "no_source", msg: "the source image is not on this node"}
	}
	if filepath.IsAbs(in.SpoolPath) {
		return in.SpoolPath, nil
	}
	return filepath.Join(s.deps.DataDir, filepath.FromSlash(in.SpoolPath)), nil
}

func (s *server) loadImage(in *models.Instance) (*cachedImage, error) {
	p, err := s.sourcePath(in)
	if err != nil {
		return nil, err
	}
	ci, err := s.images.get(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &apiError{status: http.StatusGone, code: "no_source", msg: "the source image file is missing from the spool"}
	}
	if err != nil {
		return nil, fmt.Errorf("decode source image of instance %d: %w", in.ID, err)
	}
	return ci, nil
}

// renderParams choose what part of the image is rendered how.
type renderParams struct {
	// Region of the source image, in source pixels.
	X, Y, W, H int
	// Size is the larger side of the output in pixels.
	Size int
	// Window, when set, replaces the default VOI transformation.
	Window *window.Params
}

// MaxRenderSize is the largest output side of the image endpoint.
const MaxRenderSize = 4096

func parseRenderParams(r *http.Request, rows, cols int) (renderParams, error) {
	q := r.URL.Query()
	p := renderParams{X: 0, Y: 0, W: cols, H: rows, Size: 1024}
	num := func(key string) (float64, bool, error) {
		v := q.Get(key)
		if v == "" {
			return 0, false, nil
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, false, errBadRequest("query parameter %s=%q is not a finite number", key, v)
		}
		return f, true, nil
	}
	integer := func(key string, dst *int) error {
		f, ok, err := num(key)
		if err != nil || !ok {
			return err
		}
		if f != math.Trunc(f) {
			return errBadRequest("query parameter %s must be an integer", key)
		}
		*dst = int(f)
		return nil
	}
	for _, k := range []struct {
		key string
		dst *int
	}{{"x", &p.X}, {"y", &p.Y}, {"w", &p.W}, {"h", &p.H}, {"size", &p.Size}} {
		if err := integer(k.key, k.dst); err != nil {
			return p, err
		}
	}
	if p.X < 0 || p.Y < 0 || p.W < 1 || p.H < 1 || p.X+p.W > cols || p.Y+p.H > rows {
		return p, errBadRequest("region x=%d y=%d w=%d h=%d is outside the %d×%d image", p.X, p.Y, p.W, p.H, cols, rows)
	}
	if p.Size < 16 || p.Size > MaxRenderSize {
		return p, errBadRequest("size must be between 16 and %d", MaxRenderSize)
	}
	wc, okC, err := num("wc")
	if err != nil {
		return p, err
	}
	ww, okW, err := num("ww")
	if err != nil {
		return p, err
	}
	if okC != okW {
		return p, errBadRequest("wc and ww go together")
	}
	if okC {
		if ww <= 0 {
			return p, errBadRequest("window width must be positive")
		}
		p.Window = &window.Params{Center: wc, Width: ww, Function: window.Linear}
		if ww < 1 {
			p.Window.Function = window.LinearExact
		}
	}
	return p, nil
}

// render returns the region scaled so that its larger side is at most
// p.Size (never enlarged beyond 4× the source), windowed to 8-bit grey.
// Reduction averages the source pixels under each output pixel;
// enlargement interpolates bilinearly.
func render(ci *cachedImage, p renderParams) *image.Gray {
	scale := float64(p.Size) / float64(max(p.W, p.H))
	if scale > 4 {
		scale = 4
	}
	ow := max(1, int(math.Round(float64(p.W)*scale)))
	oh := max(1, int(math.Round(float64(p.H)*scale)))
	im := ci.im
	vals := make([]float32, ow*oh)
	sx := float64(p.W) / float64(ow)
	sy := float64(p.H) / float64(oh)
	if sx >= 1 && sy >= 1 {
		boxReduce(im, p, ow, oh, sx, sy, vals)
	} else {
		bilinearResample(im, p, ow, oh, sx, sy, vals)
	}
	switch {
	case p.Window != nil:
		window.Apply(vals, vals, *p.Window)
	case ci.lut != nil:
		window.ApplyLUT(vals, vals, ci.lut)
	default:
		window.Apply(vals, vals, ci.def)
	}
	g := image.NewGray(image.Rect(0, 0, ow, oh))
	for i, v := range vals {
		g.Pix[i] = uint8(min(max(v, 0), 1)*255 + 0.5)
	}
	return g
}

// span is the source range [a, b) under one output pixel, or for
// interpolation the two neighbours a, b and the weight f of b.
type span struct {
	a, b int
	f    float32
}

func boxSpans(off, n, out int, scale float64) []span {
	sp := make([]span, out)
	for o := range sp {
		a := off + int(float64(o)*scale)
		b := off + int(math.Ceil(float64(o+1)*scale))
		sp[o] = span{a: a, b: min(max(b, a+1), off+n)}
	}
	return sp
}

// boxReduce averages the source pixels under each output pixel.
func boxReduce(im *decode.Image, p renderParams, ow, oh int, sx, sy float64, vals []float32) {
	xs := boxSpans(p.X, p.W, ow, sx)
	ys := boxSpans(p.Y, p.H, oh, sy)
	acc := make([]float32, ow)
	for oy, ysp := range ys {
		clear(acc)
		for y := ysp.a; y < ysp.b; y++ {
			row := im.Modality[y*im.Cols : (y+1)*im.Cols]
			for ox, xsp := range xs {
				var sum float32
				for _, v := range row[xsp.a:xsp.b] {
					sum += v
				}
				acc[ox] += sum
			}
		}
		out := vals[oy*ow : (oy+1)*ow]
		ny := float32(ysp.b - ysp.a)
		for ox, xsp := range xs {
			out[ox] = acc[ox] / (ny * float32(xsp.b-xsp.a))
		}
	}
}

func lerpSpans(off, n, out int, scale float64, size int) []span {
	sp := make([]span, out)
	for o := range sp {
		// Centre of the output pixel in source coordinates.
		c := float64(off) + (float64(o)+0.5)*scale - 0.5
		c = math.Min(math.Max(c, 0), float64(size-1))
		a := int(c)
		sp[o] = span{a: a, b: min(a+1, size-1), f: float32(c - float64(a))}
	}
	return sp
}

// bilinearResample enlarges by bilinear interpolation.
func bilinearResample(im *decode.Image, p renderParams, ow, oh int, sx, sy float64, vals []float32) {
	xs := lerpSpans(p.X, p.W, ow, sx, im.Cols)
	ys := lerpSpans(p.Y, p.H, oh, sy, im.Rows)
	for oy, ysp := range ys {
		r0 := im.Modality[ysp.a*im.Cols : (ysp.a+1)*im.Cols]
		r1 := im.Modality[ysp.b*im.Cols : (ysp.b+1)*im.Cols]
		out := vals[oy*ow : (oy+1)*ow]
		for ox, xsp := range xs {
			top := r0[xsp.a] + (r0[xsp.b]-r0[xsp.a])*xsp.f
			bot := r1[xsp.a] + (r1[xsp.b]-r1[xsp.a])*xsp.f
			out[ox] = top + (bot-top)*ysp.f
		}
	}
}

func (s *server) handleImage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	cd, err := s.loadCase(r.Context(), id, false)
	if err != nil {
		return err
	}
	ci, err := s.loadImage(cd.instance)
	if err != nil {
		return err
	}
	p, err := parseRenderParams(r, ci.im.Rows, ci.im.Cols)
	if err != nil {
		return err
	}
	// Image access is audited once per session and case per hour (the
	// page fetches many renderings of one case).
	if s.imageAudit.first(c.session.ID, id, s.now()) {
		if err := s.audit(r.Context(), s.store, r, c, "case.image", "analysis", id, nil, nil); err != nil {
			return err
		}
	}
	g := render(ci, p)
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, g); err != nil {
		return fmt.Errorf("encode png: %w", err)
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "private, max-age=300")
	w.Header().Set("X-Image-Scale", strconv.FormatFloat(float64(g.Rect.Dx())/float64(p.W), 'g', 8, 64))
	_, _ = w.Write(buf.Bytes())
	return nil
}

// auditOnce remembers which (session, analysis) pairs were audited within
// the last hour.
type auditOnce struct {
	mu   sync.Mutex
	seen map[[2]int64]time.Time
}

func (a *auditOnce) first(session, analysis int64, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen == nil {
		a.seen = map[[2]int64]time.Time{}
	}
	if len(a.seen) > 10000 {
		for k, t := range a.seen {
			if now.Sub(t) > time.Hour {
				delete(a.seen, k)
			}
		}
	}
	k := [2]int64{session, analysis}
	if t, ok := a.seen[k]; ok && now.Sub(t) < time.Hour {
		return false
	}
	a.seen[k] = now
	return true
}
