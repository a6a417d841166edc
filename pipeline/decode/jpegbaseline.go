package decode

import (
	"fmt"
)

// This file decodes 8-bit sequential DCT JPEG with Huffman coding (T.81
// Processes 1 and 2: SOF0 and 8-bit SOF1), the content of JPEG Baseline and
// 8-bit JPEG Extended objects. It exists, rather than using image/jpeg,
// because the result must match DCMTK pixel for pixel: DCMTK decodes with the
// IJG library's default "islow" inverse DCT (the Loeffler–Ligtenberg–
// Moschytz algorithm in 13-bit fixed point with 2 extra bits between the
// passes), while image/jpeg's IDCT differs by one grey level on about 2% of
// pixels. idct below computes the same integer arithmetic.
//
// Only what luminance needs is reconstructed: for YCbCr streams the chroma
// blocks are entropy-decoded (to stay in step) but not transformed, so no
// upsampling or colour conversion takes place.

// zigzag maps the zig-zag position of a coefficient to its natural index.
var zigzag = [64]int{
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
}

type dctComponent struct {
	id           byte
	h, v, tq     int
	bw, bh       int // blocks per line and per column
	stride       int
	plane        []uint8
	needed       bool
	dcPred       int
	dcTab, acTab *huffTable
	scanned      bool
}

func decodeJPEGBaseline(data []byte, f pixelFormat, ts string) (sampleSource, error) {
	sof, err := scanSOF(data)
	if err != nil {
		return sampleSource{}, err
	}
	switch sof.marker {
	case 0xC0, 0xC1:
	case 0xC3:
		return sampleSource{}, fmt.Errorf("%w: lossless JPEG stream under %s", ErrMalformed, syntaxName(ts))
	default:
		return sampleSource{}, &UnsupportedTransferSyntaxError{UID: ts, Name: fmt.Sprintf("%s with JPEG SOF%d (only sequential Huffman DCT is decoded)", syntaxName(ts), sof.marker-0xC0)}
	}
	if sof.precision != 8 {
		return sampleSource{}, &UnsupportedTransferSyntaxError{UID: ts, Name: fmt.Sprintf("%s, %d-bit lossy JPEG", syntaxName(ts), sof.precision)}
	}
	if sof.width != f.cols || sof.height != f.rows {
		return sampleSource{}, fmt.Errorf("%w: JPEG frame is %d×%d, header says %d×%d", ErrMalformed, sof.width, sof.height, f.cols, f.rows)
	}
	if sof.components != f.spp {
		return sampleSource{}, fmt.Errorf("%w: JPEG frame has %d components, SamplesPerPixel is %d", ErrMalformed, sof.components, f.spp)
	}
	// Each 8×8 block takes at least 2 bits (DC category and EOB codes).
	if int64(f.npix())*int64(f.spp) > 256*int64(len(data)) {
		return sampleSource{}, fmt.Errorf("%w: %d-byte JPEG stream cannot hold %d×%d pixels", ErrTruncated, len(data), f.rows, f.cols)
	}

	var (
		dc, ac     [4]huffTable
		quant      [4][64]int32
		qdefined   [4]bool
		comps      []*dctComponent
		restart    int
		adobe      = -1
		jfif       bool
		hmax, vmax = 1, 1
		mcusX      int
		mcusY      int
		scans      int
		p          = 2
	)
	for {
		for p+1 < len(data) && data[p] == 0xFF && data[p+1] == 0xFF {
			p++
		}
		if p+2 > len(data) {
			return sampleSource{}, fmt.Errorf("%w: JPEG stream ends without EOI", ErrTruncated)
		}
		if data[p] != 0xFF {
			return sampleSource{}, fmt.Errorf("%w: JPEG marker expected at byte %d", ErrMalformed, p)
		}
		m := data[p+1]
		if m == 0xD9 {
			break
		}
		if m == 0xD8 || (m >= 0xD0 && m <= 0xD7) || m == 0x01 {
			return sampleSource{}, fmt.Errorf("%w: unexpected JPEG marker %02X at byte %d", ErrMalformed, m, p)
		}
		if p+4 > len(data) {
			return sampleSource{}, fmt.Errorf("%w: JPEG stream ends inside a marker", ErrTruncated)
		}
		l := int(data[p+2])<<8 | int(data[p+3])
		if l < 2 || p+2+l > len(data) {
			return sampleSource{}, fmt.Errorf("%w: JPEG marker segment %02X of length %d", ErrTruncated, m, l)
		}
		seg := data[p+4 : p+2+l]
		p += 2 + l
		switch {
		case m == 0xC0 || m == 0xC1:
			if comps != nil {
				return sampleSource{}, fmt.Errorf("%w: second JPEG frame header", ErrMalformed)
			}
			if len(seg) != 6+3*sof.components {
				return sampleSource{}, fmt.Errorf("%w: JPEG frame header length", ErrMalformed)
			}
			for i := 0; i < sof.components; i++ {
				c := seg[6+3*i:]
				dc := &dctComponent{id: c[0], h: int(c[1] >> 4), v: int(c[1] & 15), tq: int(c[2])}
				if dc.h < 1 || dc.h > 4 || dc.v < 1 || dc.v > 4 || dc.tq > 3 {
					return sampleSource{}, fmt.Errorf("%w: JPEG component sampling %d×%d, table %d", ErrMalformed, dc.h, dc.v, dc.tq)
				}
				hmax, vmax = max(hmax, dc.h), max(vmax, dc.v)
				comps = append(comps, dc)
			}
			mcusX = (sof.width + 8*hmax - 1) / (8 * hmax)
			mcusY = (sof.height + 8*vmax - 1) / (8 * vmax)
			for _, c := range comps {
				cw := (sof.width*c.h + hmax - 1) / hmax
				ch := (sof.height*c.v + vmax - 1) / vmax
				c.bw, c.bh = (cw+7)/8, (ch+7)/8
			}
		case m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC:
			return sampleSource{}, fmt.Errorf("%w: JPEG SOF%d after SOF%d", ErrMalformed, m-0xC0, sof.marker-0xC0)
		case m == 0xDB: // DQT
			for len(seg) > 0 {
				pq, tq := int(seg[0]>>4), int(seg[0]&15)
				size := 1 + 64*(pq+1)
				if pq > 1 || tq > 3 || len(seg) < size {
					return sampleSource{}, fmt.Errorf("%w: JPEG quantisation table", ErrMalformed)
				}
				for k := 0; k < 64; k++ {
					if pq == 0 {
						quant[tq][zigzag[k]] = int32(seg[1+k])
					} else {
						quant[tq][zigzag[k]] = int32(seg[1+2*k])<<8 | int32(seg[2+2*k])
					}
				}
				qdefined[tq] = true
				seg = seg[size:]
			}
		case m == 0xC4: // DHT
			for len(seg) > 0 {
				if len(seg) < 17 {
					return sampleSource{}, fmt.Errorf("%w: short JPEG Huffman table", ErrMalformed)
				}
				tc, th := seg[0]>>4, seg[0]&15
				if th > 3 || tc > 1 {
					return sampleSource{}, fmt.Errorf("%w: JPEG Huffman table class %d id %d", ErrMalformed, tc, th)
				}
				var counts [16]int
				total := 0
				for i := range counts {
					counts[i] = int(seg[1+i])
					total += counts[i]
				}
				if total > 256 || len(seg) < 17+total {
					return sampleSource{}, fmt.Errorf("%w: JPEG Huffman table of %d values", ErrMalformed, total)
				}
				t := &dc[th]
				if tc == 1 {
					t = &ac[th]
				}
				if err := t.build(counts, seg[17:17+total]); err != nil {
					return sampleSource{}, err
				}
				seg = seg[17+total:]
			}
		case m == 0xDD: // DRI
			if len(seg) != 2 {
				return sampleSource{}, fmt.Errorf("%w: JPEG restart interval length", ErrMalformed)
			}
			restart = int(seg[0])<<8 | int(seg[1])
		case m == 0xE0:
			jfif = len(seg) >= 5 && string(seg[:5]) == "JFIF\x00"
		case m == 0xEE:
			if len(seg) >= 12 && string(seg[:5]) == "Adobe" {
				adobe = int(seg[11])
			}
		case m == 0xDA: // SOS
			if comps == nil {
				return sampleSource{}, fmt.Errorf("%w: JPEG scan before frame header", ErrMalformed)
			}
			if scans == 0 {
				if err := planComponents(comps, f, adobe, jfif, hmax, vmax, mcusX, mcusY); err != nil {
					return sampleSource{}, err
				}
			}
			if len(seg) < 1 || seg[0] == 0 || seg[0] > 4 || len(seg) != 4+2*int(seg[0]) {
				return sampleSource{}, fmt.Errorf("%w: JPEG scan header length", ErrMalformed)
			}
			ns := int(seg[0])
			sc := make([]*dctComponent, ns)
			blocks := 0
			for i := 0; i < ns; i++ {
				id, td, ta := seg[1+2*i], seg[2+2*i]>>4, seg[2+2*i]&15
				for _, c := range comps {
					if c.id == id {
						sc[i] = c
					}
				}
				c := sc[i]
				if c == nil || td > 3 || ta > 3 || !dc[td].defined || !ac[ta].defined || !qdefined[c.tq] {
					return sampleSource{}, fmt.Errorf("%w: JPEG scan component %d or its tables undefined", ErrMalformed, id)
				}
				if c.scanned {
					return sampleSource{}, fmt.Errorf("%w: JPEG component %d in two scans", ErrMalformed, id)
				}
				c.scanned = true
				c.dcTab, c.acTab = &dc[td], &ac[ta]
				blocks += c.h * c.v
			}
			tail := seg[1+2*ns:]
			if tail[0] != 0 || tail[1] != 63 || tail[2] != 0 {
				return sampleSource{}, fmt.Errorf("%w: JPEG scan is not sequential (Ss %d, Se %d, Ah/Al %02X)", ErrUnsupported, tail[0], tail[1], tail[2])
			}
			if ns > 1 && blocks > 10 {
				return sampleSource{}, fmt.Errorf("%w: JPEG MCU of %d blocks", ErrMalformed, blocks)
			}
			used, err := decodeDCTScan(data[p:], sc, &quant, restart, mcusX, mcusY)
			if err != nil {
				return sampleSource{}, err
			}
			p += used
			scans++
		}
	}
	if scans == 0 {
		return sampleSource{}, fmt.Errorf("%w: JPEG stream without scan", ErrMalformed)
	}
	for _, c := range comps {
		if !c.scanned {
			return sampleSource{}, fmt.Errorf("%w: JPEG component %d not in any scan", ErrTruncated, c.id)
		}
	}
	n := f.npix()
	crop := func(c *dctComponent, y, x int) uint32 { return uint32(c.plane[y*c.stride+x]) }
	if f.spp == 1 || !comps[1].needed {
		c := comps[0]
		out := make([]uint8, n)
		for y := 0; y < f.rows; y++ {
			copy(out[y*f.cols:(y+1)*f.cols], c.plane[y*c.stride:])
		}
		if f.bitsAlloc == 8 {
			return sampleSource{b8: out}, nil
		}
		u := make([]uint16, n)
		for i, v := range out {
			u[i] = uint16(v)
		}
		return sampleSource{u16: u}, nil
	}
	u := make([]uint16, n)
	for y := 0; y < f.rows; y++ {
		for x := 0; x < f.cols; x++ {
			u[y*f.cols+x] = luma(crop(comps[0], y, x), crop(comps[1], y, x), crop(comps[2], y, x))
		}
	}
	return sampleSource{u16: u}, nil
}

// planComponents decides which components are reconstructed and allocates
// their planes: the first component of a greyscale or YCbCr stream, all three
// of an RGB stream. The colour space of a 3-component stream is decided as
// libjpeg does (JFIF: YCbCr; Adobe transform 0: RGB, otherwise YCbCr;
// component ids 1,2,3: YCbCr; 'R','G','B': RGB); when neither marker nor ids
// decide, the DICOM Photometric Interpretation does. Subsampled chroma means
// YCbCr whatever the label says.
func planComponents(comps []*dctComponent, f pixelFormat, adobe int, jfif bool, hmax, vmax, mcusX, mcusY int) error {
	rgb := false
	switch len(comps) {
	case 1:
	case 3:
		ids := [3]byte{comps[0].id, comps[1].id, comps[2].id}
		switch {
		case jfif:
		case adobe >= 0:
			rgb = adobe == 0
		case ids == [3]byte{1, 2, 3}:
		case ids == [3]byte{'R', 'G', 'B'}:
			rgb = true
		default:
			rgb = f.photometric == "RGB"
		}
		for _, c := range comps {
			if c.h != hmax || c.v != vmax {
				rgb = false
			}
		}
	default:
		return fmt.Errorf("%w: JPEG with %d components", ErrUnsupported, len(comps))
	}
	for i, c := range comps {
		c.needed = i == 0 || rgb
		if !c.needed {
			continue
		}
		if c.h != hmax || c.v != vmax {
			return fmt.Errorf("%w: subsampled JPEG component %d holds luminance", ErrUnsupported, c.id)
		}
		c.stride = mcusX * c.h * 8
		c.plane = make([]uint8, c.stride*mcusY*c.v*8)
	}
	return nil
}

// decodeDCTScan decodes one sequential scan (T.81 F.2) and returns the bytes
// of entropy-coded data it used.
func decodeDCTScan(data []byte, sc []*dctComponent, quant *[4][64]int32, restart, mcusX, mcusY int) (int, error) {
	br := &bitReader{data: data}
	for _, c := range sc {
		c.dcPred = 0
	}
	var coef [64]int32
	var err error
	nextRST := byte(0xD0)
	block := func(c *dctComponent, bx, by int) error {
		coef = [64]int32{}
		s, err := br.symbol(c.dcTab)
		if err != nil {
			return err
		}
		if s > 15 {
			return fmt.Errorf("%w: JPEG DC category %d", ErrMalformed, s)
		}
		if s > 0 {
			c.dcPred += br.extend(s)
		}
		q := &quant[c.tq]
		coef[0] = int32(c.dcPred) * q[0]
		ac := false
		for k := 1; k < 64; k++ {
			rs, err := br.symbol(c.acTab)
			if err != nil {
				return err
			}
			r, s := rs>>4, rs&15
			if s == 0 {
				if r != 15 {
					break // EOB
				}
				k += 15
				continue
			}
			k += r
			if k > 63 {
				return fmt.Errorf("%w: JPEG AC coefficient run past the block", ErrMalformed)
			}
			z := zigzag[k]
			coef[z] = int32(br.extend(s)) * q[z]
			ac = true
		}
		if c.needed {
			dst := c.plane[by*8*c.stride+bx*8:]
			if ac {
				idct(&coef, dst, c.stride)
			} else {
				// DC only: both passes reduce to one value, exactly
				// descale(dc << (PASS1_BITS+CONST_BITS), CONST_BITS+PASS1_BITS+3).
				v := rangeLimit[descale(coef[0]<<(idctPass1Bits+idctConstBits), idctConstBits+idctPass1Bits+3)&1023]
				for r := 0; r < 8; r++ {
					row := dst[r*c.stride : r*c.stride+8]
					for i := range row {
						row[i] = v
					}
				}
			}
		}
		return nil
	}
	mcu := 0
	checkRestart := func() error {
		if restart > 0 && mcu > 0 && mcu%restart == 0 {
			if err := br.restart(nextRST); err != nil {
				return err
			}
			nextRST = 0xD0 + (nextRST-0xD0+1)%8
			for _, c := range sc {
				c.dcPred = 0
			}
		}
		mcu++
		return nil
	}
	if len(sc) == 1 {
		// Non-interleaved: one block per MCU, over the component's own grid.
		c := sc[0]
		for by := 0; by < c.bh; by++ {
			for bx := 0; bx < c.bw; bx++ {
				if err = checkRestart(); err != nil {
					return 0, err
				}
				if err = block(c, bx, by); err != nil {
					return 0, err
				}
			}
			if br.overread() {
				return 0, br.errOverread()
			}
		}
	} else {
		for my := 0; my < mcusY; my++ {
			for mx := 0; mx < mcusX; mx++ {
				if err = checkRestart(); err != nil {
					return 0, err
				}
				for _, c := range sc {
					for v := 0; v < c.v; v++ {
						for h := 0; h < c.h; h++ {
							if err = block(c, mx*c.h+h, my*c.v+v); err != nil {
								return 0, err
							}
						}
					}
				}
			}
			if br.overread() {
				return 0, br.errOverread()
			}
		}
	}
	return scanEnd(data, br.pos), nil
}

// Fixed-point constants of the islow IDCT: round(x * 2^13).
const (
	idctConstBits = 13
	idctPass1Bits = 2
	fix0298631336 = 2446
	fix0390180644 = 3196
	fix0541196100 = 4433
	fix0765366865 = 6270
	fix0899976223 = 7373
	fix1175875602 = 9633
	fix1501321110 = 12299
	fix1847759065 = 15137
	fix1961570560 = 16069
	fix2053119869 = 16819
	fix2562915447 = 20995
	fix3072711026 = 25172
)

// rangeLimit reproduces the IJG post-IDCT range limiting: the output is
// x+128 clamped to [0,255] for x in [-512, 511], with the input taken modulo
// 1024 as a signed 10-bit value.
var rangeLimit = func() (t [1024]uint8) {
	for j := range t {
		x := j
		if x >= 512 {
			x -= 1024
		}
		t[j] = uint8(min(max(x+128, 0), 255))
	}
	return t
}()

func descale(x int32, n uint) int32 { return (x + 1<<(n-1)) >> n }

// idct is the separable 8×8 inverse DCT in integer arithmetic: columns first
// into a workspace scaled by 2^idctPass1Bits, then rows, level shift and
// range limiting into dst (row stride stride).
func idct(in *[64]int32, dst []uint8, stride int) {
	var ws [64]int32
	for c := 0; c < 8; c++ {
		if in[8+c] == 0 && in[16+c] == 0 && in[24+c] == 0 && in[32+c] == 0 &&
			in[40+c] == 0 && in[48+c] == 0 && in[56+c] == 0 {
			d := in[c] << idctPass1Bits
			for r := 0; r < 8; r++ {
				ws[8*r+c] = d
			}
			continue
		}
		var o [8]int32
		idct1(in[c], in[8+c], in[16+c], in[24+c], in[32+c], in[40+c], in[48+c], in[56+c], idctConstBits-idctPass1Bits, &o)
		for r := 0; r < 8; r++ {
			ws[8*r+c] = o[r]
		}
	}
	for r := 0; r < 8; r++ {
		w := ws[8*r : 8*r+8]
		var o [8]int32
		idct1(w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], idctConstBits+idctPass1Bits+3, &o)
		row := dst[r*stride : r*stride+8]
		for i := range row {
			row[i] = rangeLimit[o[i]&1023]
		}
	}
}

// idct1 is the one-dimensional 8-point inverse DCT of the LL&M flow graph
// with the given final descaling.
func idct1(i0, i1, i2, i3, i4, i5, i6, i7 int32, shift uint, o *[8]int32) {
	// Even part.
	z1 := (i2 + i6) * fix0541196100
	tmp2 := z1 + i6*(-fix1847759065)
	tmp3 := z1 + i2*fix0765366865
	tmp0 := (i0 + i4) << idctConstBits
	tmp1 := (i0 - i4) << idctConstBits
	tmp10 := tmp0 + tmp3
	tmp13 := tmp0 - tmp3
	tmp11 := tmp1 + tmp2
	tmp12 := tmp1 - tmp2

	// Odd part.
	t0, t1, t2, t3 := i7, i5, i3, i1
	z1 = t0 + t3
	z2 := t1 + t2
	z3 := t0 + t2
	z4 := t1 + t3
	z5 := (z3 + z4) * fix1175875602
	t0 *= fix0298631336
	t1 *= fix2053119869
	t2 *= fix3072711026
	t3 *= fix1501321110
	z1 *= -fix0899976223
	z2 *= -fix2562915447
	z3 *= -fix1961570560
	z4 *= -fix0390180644
	z3 += z5
	z4 += z5
	t0 += z1 + z3
	t1 += z2 + z4
	t2 += z2 + z3
	t3 += z1 + z4

	o[0] = descale(tmp10+t3, shift)
	o[7] = descale(tmp10-t3, shift)
	o[1] = descale(tmp11+t2, shift)
	o[6] = descale(tmp11-t2, shift)
	o[2] = descale(tmp12+t1, shift)
	o[5] = descale(tmp12-t1, shift)
	o[3] = descale(tmp13+t0, shift)
	o[4] = descale(tmp13-t0, shift)
}
