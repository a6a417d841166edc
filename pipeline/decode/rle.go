package decode

import (
	"encoding/binary"
	"fmt"
)

// decodeRLE decodes one frame of RLE Lossless (PS3.5 Annex G): a 64-byte
// header with the segment count and offsets, then one PackBits segment per
// byte plane, most significant byte first, sample by sample.
func decodeRLE(data []byte, f pixelFormat) (sampleSource, error) {
	if len(data) < 64 {
		return sampleSource{}, fmt.Errorf("%w: RLE frame of %d bytes has no 64-byte header", ErrTruncated, len(data))
	}
	bps := f.bitsAlloc / 8
	nseg := int(binary.LittleEndian.Uint32(data))
	if nseg != f.spp*bps {
		return sampleSource{}, fmt.Errorf("%w: RLE header has %d segments, %d samples of %d bits need %d", ErrMalformed, nseg, f.spp, f.bitsAlloc, f.spp*bps)
	}
	if f.photometric == "YBR_FULL_422" {
		return sampleSource{}, fmt.Errorf("%w: YBR_FULL_422 is not allowed with RLE", ErrMalformed)
	}
	n := f.npix()
	// A PackBits run yields at most 128 bytes from 2 input bytes.
	if int64(n)*int64(nseg) > 64*int64(len(data)) {
		return sampleSource{}, fmt.Errorf("%w: RLE frame of %d bytes cannot hold %d×%d pixels", ErrTruncated, len(data), f.rows, f.cols)
	}
	offs := make([]int, nseg+1)
	for i := 0; i < nseg; i++ {
		offs[i] = int(binary.LittleEndian.Uint32(data[4+4*i:]))
	}
	offs[nseg] = len(data)
	if offs[0] != 64 {
		return sampleSource{}, fmt.Errorf("%w: first RLE segment at offset %d, not 64", ErrMalformed, offs[0])
	}
	for i := 0; i < nseg; i++ {
		if offs[i+1] < offs[i] || offs[i+1] > len(data) {
			return sampleSource{}, fmt.Errorf("%w: RLE segment %d offsets %d..%d outside the %d-byte frame", ErrMalformed, i, offs[i], offs[i+1], len(data))
		}
	}
	planes := make([][]byte, nseg)
	buf := make([]byte, n*nseg)
	for i := range planes {
		planes[i] = buf[i*n : (i+1)*n]
		if err := unpackBits(planes[i], data[offs[i]:offs[i+1]]); err != nil {
			return sampleSource{}, fmt.Errorf("RLE segment %d: %w", i, err)
		}
	}
	switch {
	case f.spp == 1 && bps == 1:
		return sampleSource{b8: planes[0]}, nil
	case f.spp == 1:
		out := make([]uint16, n)
		hi, lo := planes[0], planes[1]
		for i := range out {
			out[i] = uint16(hi[i])<<8 | uint16(lo[i])
		}
		return sampleSource{u16: out}, nil
	}
	sample := func(s, i int) uint32 {
		if bps == 1 {
			return uint32(planes[s][i])
		}
		return uint32(planes[2*s][i])<<8 | uint32(planes[2*s+1][i])
	}
	out := make([]uint16, n)
	for i := range out {
		if f.photometric == "RGB" {
			out[i] = luma(sample(0, i), sample(1, i), sample(2, i))
		} else { // YBR_FULL
			out[i] = uint16(sample(0, i))
		}
	}
	return sampleSource{u16: out}, nil
}

// unpackBits fills dst from a PackBits segment (PS3.5 §G.3.1). Output beyond
// dst (encoders may pad a segment) is ignored; too little output is an error.
func unpackBits(dst, src []byte) error {
	o, i := 0, 0
	for o < len(dst) {
		if i >= len(src) {
			return fmt.Errorf("%w: segment yields %d of %d bytes", ErrTruncated, o, len(dst))
		}
		h := int8(src[i])
		i++
		switch {
		case h >= 0:
			k := int(h) + 1
			if i+k > len(src) {
				return fmt.Errorf("%w: literal run of %d bytes past the segment end", ErrTruncated, k)
			}
			copy(dst[o:], src[i:i+k])
			o += k
			i += k
		case h != -128:
			k := 1 - int(h)
			if i >= len(src) {
				return fmt.Errorf("%w: replicate run without its byte", ErrTruncated)
			}
			b := src[i]
			i++
			end := min(o+k, len(dst))
			for ; o < end; o++ {
				dst[o] = b
			}
		}
	}
	return nil
}
