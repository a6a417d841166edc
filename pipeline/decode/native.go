package decode

import (
	"encoding/binary"
	"fmt"
)

// sampleSource holds one raw sample (a Bits Allocated wide word, before Bits
// Stored extraction) per pixel, in one of three layouts.
type sampleSource struct {
	b8  []byte   // 8-bit samples
	b16 []byte   // 16-bit little-endian samples
	u16 []uint16 // decoded samples
}

// apply maps the samples through the modality table into dst.
func (s sampleSource) apply(dst []float32, table []float32) {
	mask := len(table) - 1
	switch {
	case s.b8 != nil:
		b := s.b8[:len(dst)]
		for i, v := range b {
			dst[i] = table[int(v)&mask]
		}
	case s.b16 != nil:
		b := s.b16[:2*len(dst)]
		for i := range dst {
			dst[i] = table[int(binary.LittleEndian.Uint16(b[2*i:]))&mask]
		}
	default:
		u := s.u16[:len(dst)]
		for i, v := range u {
			dst[i] = table[int(v)&mask]
		}
	}
}

// luma is the Rec. 601 luminance of an RGB triple, rounded to an integer.
func luma(r, g, b uint32) uint16 {
	return uint16((299*r + 587*g + 114*b + 500) / 1000)
}

// nativeSamples extracts frame 0 of native Pixel Data (PS3.5 §8.1).
func nativeSamples(val []byte, f pixelFormat) (sampleSource, error) {
	bps := f.bitsAlloc / 8
	n := f.npix()
	samples := n * f.spp
	if f.photometric == "YBR_FULL_422" {
		if f.cols%2 != 0 || f.planar {
			return sampleSource{}, fmt.Errorf("%w: YBR_FULL_422 with odd Columns or planar configuration", ErrMalformed)
		}
		samples = n * 2
	}
	frameBytes := int64(samples) * int64(bps)
	if need := frameBytes * int64(f.frames); int64(len(val)) < need {
		return sampleSource{}, fmt.Errorf("%w: Pixel Data holds %d bytes, %d frame(s) of %d×%d×%d at %d bits need %d",
			ErrMalformed, len(val), f.frames, f.rows, f.cols, f.spp, f.bitsAlloc, need)
	}
	val = val[:frameBytes]
	if f.spp == 1 {
		if bps == 1 {
			return sampleSource{b8: val}, nil
		}
		return sampleSource{b16: val}, nil
	}
	get := func(k int) uint32 { return uint32(val[k]) }
	if bps == 2 {
		get = func(k int) uint32 { return uint32(binary.LittleEndian.Uint16(val[2*k:])) }
	}
	out := make([]uint16, n)
	switch f.photometric {
	case "RGB":
		for i := range out {
			if f.planar {
				out[i] = luma(get(i), get(n+i), get(2*n+i))
			} else {
				out[i] = luma(get(3*i), get(3*i+1), get(3*i+2))
			}
		}
	case "YBR_FULL":
		for i := range out {
			if f.planar {
				out[i] = uint16(get(i))
			} else {
				out[i] = uint16(get(3 * i))
			}
		}
	case "YBR_FULL_422":
		for i := range out {
			out[i] = uint16(get(i/2*4 + i%2))
		}
	}
	return sampleSource{u16: out}, nil
}

func endsWithEOI(b []byte) bool {
	n := len(b)
	if n > 0 && b[n-1] == 0 {
		n--
	}
	return n >= 2 && b[n-2] == 0xFF && b[n-1] == 0xD9
}

// frame0 returns the compressed bytes of the first frame of encapsulated
// Pixel Data (PS3.5 §A.4): all fragments of a single-frame object; for a
// multi-frame object the fragments before the second Basic Offset Table
// entry, or the first fragment when there is one fragment per frame, or (for
// JPEG) the fragments up to the first that ends with EOI.
func frame0(pd *element, frames int, jpeg bool) ([]byte, error) {
	if len(pd.frags) == 0 {
		return nil, fmt.Errorf("%w: encapsulated Pixel Data without fragments", ErrMalformed)
	}
	frags := pd.frags
	if frames > 1 {
		switch {
		case len(pd.bot) >= 8:
			if len(pd.bot)%4 != 0 || binary.LittleEndian.Uint32(pd.bot) != 0 {
				return nil, fmt.Errorf("%w: Basic Offset Table", ErrMalformed)
			}
			next := int64(binary.LittleEndian.Uint32(pd.bot[4:]))
			var off int64
			k := 0
			for k < len(frags) && off < next {
				off += 8 + int64(len(frags[k]))
				k++
			}
			if off != next || k == 0 {
				return nil, fmt.Errorf("%w: Basic Offset Table entry %d does not fall on a fragment boundary", ErrMalformed, next)
			}
			frags = frags[:k]
		case len(pd.frags) == frames:
			frags = frags[:1]
		case jpeg:
			// The first frame ends with the fragment that ends with EOI
			// (possibly followed by one padding byte).
			k := 0
			for k < len(frags) && !endsWithEOI(frags[k]) {
				k++
			}
			if k == len(frags) {
				return nil, fmt.Errorf("%w: no JPEG EOI in %d fragments", ErrMalformed, len(frags))
			}
			frags = frags[:k+1]
		default:
			return nil, fmt.Errorf("%w: %d frames in %d fragments without a Basic Offset Table", ErrUnsupported, frames, len(pd.frags))
		}
	}
	if len(frags) == 1 {
		return frags[0], nil
	}
	total := 0
	for _, f := range frags {
		total += len(f)
	}
	out := make([]byte, 0, total)
	for _, f := range frags {
		out = append(out, f...)
	}
	return out, nil
}
