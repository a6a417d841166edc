package decode

import (
	"encoding/binary"
	"fmt"
)

// This file decodes JPEG Lossless, Non-Hierarchical (Process 14, ITU-T T.81
// Annex H): SOF3 frames of 2 to 16 bits with Huffman-coded prediction
// differences, predictors (selection values) 1 to 7, point transform,
// restart intervals at row boundaries, one or several components in one or
// several scans (interleaved scans need sampling factors 1×1). It serves both
// 1.2.840.10008.1.2.4.57 and .70 (selection value 1 only).

const huffLookupBits = 9

// huffTable is a DC Huffman table (T.81 Annex C) with a lookup table for
// codes up to huffLookupBits long and the canonical decoding of F.2.2.3 for
// longer ones.
type huffTable struct {
	lookup  [1 << huffLookupBits]uint16 // length<<8 | value; 0 = longer code
	maxcode [17]int32                   // largest code of each length, -1 if none
	valptr  [17]int32
	mincode [17]int32
	vals    []byte
	defined bool
	// diffs, built for lossless tables only, decodes code and extra bits in
	// one lookup: difference<<8 | bits consumed, 0 when they need more than
	// diffBits bits.
	diffs *[1 << diffBits]int32
}

const diffBits = 12

// buildDiffs fills h.diffs from the canonical codes (T.81 C.2).
func (h *huffTable) buildDiffs() {
	h.diffs = new([1 << diffBits]int32)
	code := 0
	k := 0
	for l := 1; l <= 16; l++ {
		n := 0
		if h.maxcode[l] >= 0 {
			n = int(h.maxcode[l]-h.mincode[l]) + 1
		}
		for i := 0; i < n; i, code, k = i+1, code+1, k+1 {
			if l > diffBits {
				continue
			}
			s := int(h.vals[k])
			extra := s
			if s == 16 || s == 0 {
				extra = 0
			}
			if s > 16 || l+extra > diffBits {
				continue
			}
			free := diffBits - l - extra
			for v := 0; v < 1<<extra; v++ {
				d := 0
				switch {
				case s == 16:
					d = 32768
				case s > 0:
					d = v
					if v < 1<<(s-1) {
						d -= 1<<s - 1
					}
				}
				base := (code<<extra | v) << free
				e := int32(d)<<8 | int32(l+extra)
				for j := 0; j < 1<<free; j++ {
					h.diffs[base|j] = e
				}
			}
		}
		code <<= 1
	}
}

func (h *huffTable) build(counts [16]int, vals []byte) error {
	h.vals = vals
	h.defined = true
	h.diffs = nil
	h.lookup = [1 << huffLookupBits]uint16{}
	code := int32(0)
	k := int32(0)
	for l := 1; l <= 16; l++ {
		n := int32(counts[l-1])
		h.valptr[l] = k
		h.mincode[l] = code
		if n == 0 {
			h.maxcode[l] = -1
		} else {
			h.maxcode[l] = code + n - 1
		}
		for i := int32(0); i < n; i++ {
			if code >= 1<<l {
				return fmt.Errorf("%w: JPEG Huffman table has too many codes of length %d", ErrMalformed, l)
			}
			if l <= huffLookupBits {
				shift := huffLookupBits - l
				for j := int32(0); j < 1<<shift; j++ {
					h.lookup[code<<shift|j] = uint16(l)<<8 | uint16(vals[k+i])
				}
			}
			code++
		}
		k += n
		code <<= 1
	}
	return nil
}

// bitReader reads the entropy-coded segment of a scan (T.81 F.2.2.5):
// 0xFF00 is a stuffed 0xFF, any other 0xFFxx is a marker, after which zeros
// are supplied and counted so that over-reading can be detected.
type bitReader struct {
	data   []byte
	pos    int
	acc    uint64
	n      uint // valid bits at the bottom of acc
	marker bool // stopped at a marker (or the end of data)
	padded uint // zero bits supplied after the marker or end
}

func (br *bitReader) fill() {
	// Fast path: the next 8 bytes hold no 0xFF, so whole bytes can be
	// taken without looking for stuffing or markers.
	if !br.marker && br.pos+8 <= len(br.data) {
		v := binary.BigEndian.Uint64(br.data[br.pos:])
		if t := ^v; (t-0x0101010101010101)&^t&0x8080808080808080 == 0 {
			k := (64 - br.n) / 8
			br.acc = br.acc<<(8*k) | v>>(64-8*k)
			br.n += 8 * k
			br.pos += int(k)
			return
		}
	}
	for br.n <= 56 {
		var b byte
		if br.marker {
			br.padded += 8
		} else if br.pos >= len(br.data) {
			br.marker = true
			br.padded += 8
		} else {
			b = br.data[br.pos]
			if b == 0xFF {
				if br.pos+1 < len(br.data) && br.data[br.pos+1] == 0x00 {
					br.pos += 2
				} else {
					br.marker = true
					br.padded += 8
					b = 0
				}
			} else {
				br.pos++
			}
		}
		br.acc = br.acc<<8 | uint64(b)
		br.n += 8
	}
}

// overread reports whether more bits were consumed than the segment holds.
func (br *bitReader) overread() bool { return br.padded > br.n }

// restart discards the remaining bits and consumes the RSTn marker m.
func (br *bitReader) restart(m byte) error {
	if br.overread() {
		return br.errOverread()
	}
	// The marker follows the interval's data; an encoder may leave fill
	// bytes, so look for the next marker (skipping stuffed 0xFF00).
	p := br.pos
	for p+1 < len(br.data) && !(br.data[p] == 0xFF && br.data[p+1] != 0x00 && br.data[p+1] != 0xFF) {
		p++
	}
	if p+1 >= len(br.data) {
		return fmt.Errorf("%w: JPEG stream ends before restart marker", ErrTruncated)
	}
	if br.data[p+1] != m {
		return fmt.Errorf("%w: expected JPEG marker RST%d at byte %d, found %02X", ErrMalformed, m-0xD0, p, br.data[p+1])
	}
	br.pos = p + 2
	br.acc, br.n, br.marker, br.padded = 0, 0, false, 0
	return nil
}

func (br *bitReader) errOverread() error {
	if br.pos >= len(br.data) {
		return fmt.Errorf("%w: JPEG entropy-coded data ends early", ErrTruncated)
	}
	return fmt.Errorf("%w: JPEG entropy-coded data ends early (marker at byte %d)", ErrMalformed, br.pos)
}

// symbol decodes one Huffman-coded symbol (T.81 F.2.2.3).
func (br *bitReader) symbol(h *huffTable) (int, error) {
	if br.n < 32 {
		br.fill()
	}
	if e := h.lookup[(br.acc>>(br.n-huffLookupBits))&(1<<huffLookupBits-1)]; e != 0 {
		br.n -= uint(e >> 8)
		return int(e & 0xFF), nil
	}
	code := int32((br.acc >> (br.n - 16)) & 0xFFFF)
	for l := huffLookupBits + 1; l <= 16; l++ {
		c := code >> (16 - l)
		if c <= h.maxcode[l] {
			i := h.valptr[l] + c - h.mincode[l]
			if int(i) >= len(h.vals) {
				break
			}
			br.n -= uint(l)
			return int(h.vals[i]), nil
		}
	}
	return 0, fmt.Errorf("%w: invalid JPEG Huffman code", ErrMalformed)
}

// extend reads s more bits (s in 1..15) and extends them to a signed value
// (T.81 F.2.2.1, Figure F.12).
func (br *bitReader) extend(s int) int {
	if br.n < uint(s) {
		br.fill()
	}
	v := int((br.acc >> (br.n - uint(s))) & (1<<uint(s) - 1))
	br.n -= uint(s)
	if v < 1<<(s-1) {
		v -= 1<<s - 1
	}
	return v
}

// diff decodes one prediction difference (T.81 H.1.2.2).
func (br *bitReader) diff(h *huffTable) (int, error) {
	s, err := br.symbol(h)
	if err != nil {
		return 0, err
	}
	switch {
	case s == 0:
		return 0, nil
	case s == 16:
		return 32768, nil
	case s > 16:
		return 0, fmt.Errorf("%w: JPEG lossless difference category %d", ErrMalformed, s)
	}
	return br.extend(s), nil
}

// scanEnd returns the offset of the marker that ends the entropy-coded data
// in which the reader stopped.
func scanEnd(data []byte, pos int) int {
	for pos < len(data) && !(data[pos] == 0xFF && pos+1 < len(data) && data[pos+1] != 0x00) {
		pos++
	}
	return pos
}

type llComponent struct {
	id     byte
	h, v   int
	plane  []uint16
	decode bool // seen in a scan
}

// decodeJPEGLossless decodes one frame of JPEG Lossless Process 14.
func decodeJPEGLossless(data []byte, f pixelFormat) (sampleSource, error) {
	sof, err := scanSOF(data)
	if err != nil {
		return sampleSource{}, err
	}
	if sof.marker != 0xC3 {
		return sampleSource{}, fmt.Errorf("%w: JPEG SOF%d stream in a JPEG Lossless transfer syntax", ErrMalformed, sof.marker-0xC0)
	}
	if sof.precision < 2 || sof.precision > 16 || sof.precision > f.bitsAlloc {
		return sampleSource{}, fmt.Errorf("%w: JPEG lossless precision %d with BitsAllocated %d", ErrMalformed, sof.precision, f.bitsAlloc)
	}
	if sof.width != f.cols || sof.height != f.rows {
		return sampleSource{}, fmt.Errorf("%w: JPEG frame is %d×%d, header says %d×%d", ErrMalformed, sof.width, sof.height, f.cols, f.rows)
	}
	if sof.components != f.spp {
		return sampleSource{}, fmt.Errorf("%w: JPEG frame has %d components, SamplesPerPixel is %d", ErrMalformed, sof.components, f.spp)
	}
	n := f.npix()
	if int64(n)*int64(f.spp) > 8*int64(len(data)) {
		return sampleSource{}, fmt.Errorf("%w: %d-byte JPEG stream cannot hold %d×%d samples", ErrTruncated, len(data), f.rows, f.cols)
	}

	var (
		tables   [4]huffTable
		comps    []*llComponent
		restart  int
		p        = 2
		scans    int
		precise  = sof.precision
		width    = sof.width
		height   = sof.height
		planeBuf []uint16
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
		if m == 0xD9 { // EOI
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
		case m == 0xC3:
			if comps != nil {
				return sampleSource{}, fmt.Errorf("%w: second JPEG frame header", ErrMalformed)
			}
			if len(seg) != 6+3*sof.components {
				return sampleSource{}, fmt.Errorf("%w: JPEG frame header length", ErrMalformed)
			}
			planeBuf = make([]uint16, n*sof.components)
			for i := 0; i < sof.components; i++ {
				c := seg[6+3*i:]
				comps = append(comps, &llComponent{id: c[0], h: int(c[1] >> 4), v: int(c[1] & 15), plane: planeBuf[i*n : (i+1)*n]})
				// Every plane is decoded at full size: subsampled
				// components of a colour frame are not supported.
				if sof.components > 1 && (comps[i].h != comps[0].h || comps[i].v != comps[0].v) {
					return sampleSource{}, fmt.Errorf("%w: JPEG lossless components with different sampling factors", ErrUnsupported)
				}
			}
		case m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC:
			return sampleSource{}, fmt.Errorf("%w: JPEG SOF%d in a lossless stream", ErrMalformed, m-0xC0)
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
				if tc == 0 {
					if err := tables[th].build(counts, seg[17:17+total]); err != nil {
						return sampleSource{}, err
					}
				}
				seg = seg[17+total:]
			}
		case m == 0xDD: // DRI
			if len(seg) != 2 {
				return sampleSource{}, fmt.Errorf("%w: JPEG restart interval length", ErrMalformed)
			}
			restart = int(seg[0])<<8 | int(seg[1])
		case m == 0xDA: // SOS
			if comps == nil {
				return sampleSource{}, fmt.Errorf("%w: JPEG scan before frame header", ErrMalformed)
			}
			if len(seg) < 1 || len(seg) != 4+2*int(seg[0]) || seg[0] == 0 {
				return sampleSource{}, fmt.Errorf("%w: JPEG scan header length", ErrMalformed)
			}
			ns := int(seg[0])
			sc := make([]*llComponent, ns)
			hts := make([]*huffTable, ns)
			for i := 0; i < ns; i++ {
				id, td := seg[1+2*i], seg[2+2*i]>>4
				for _, c := range comps {
					if c.id == id {
						sc[i] = c
					}
				}
				if sc[i] == nil || td > 3 || !tables[td].defined {
					return sampleSource{}, fmt.Errorf("%w: JPEG scan component %d or Huffman table %d undefined", ErrMalformed, id, td)
				}
				if ns > 1 && (sc[i].h != 1 || sc[i].v != 1) {
					return sampleSource{}, fmt.Errorf("%w: interleaved JPEG lossless scan with sampling factors %d×%d", ErrUnsupported, sc[i].h, sc[i].v)
				}
				if sc[i].decode {
					return sampleSource{}, fmt.Errorf("%w: JPEG component %d in two scans", ErrMalformed, id)
				}
				sc[i].decode = true
				hts[i] = &tables[td]
			}
			tail := seg[1+2*ns:]
			sel, pt := int(tail[0]), int(tail[2]&15)
			if sel < 1 || sel > 7 || pt >= precise {
				return sampleSource{}, fmt.Errorf("%w: JPEG lossless predictor %d, point transform %d", ErrMalformed, sel, pt)
			}
			used, err := decodeLosslessScan(data[p:], sc, hts, width, height, precise, sel, pt, restart)
			if err != nil {
				return sampleSource{}, err
			}
			p += used
			scans++
		default:
			// APPn, COM, DQT, DNL and others carry nothing needed here.
		}
	}
	if scans == 0 {
		return sampleSource{}, fmt.Errorf("%w: JPEG stream without scan", ErrMalformed)
	}
	for _, c := range comps {
		if !c.decode {
			return sampleSource{}, fmt.Errorf("%w: JPEG component %d not in any scan", ErrTruncated, c.id)
		}
	}
	if f.spp == 1 {
		return sampleSource{u16: comps[0].plane}, nil
	}
	out := make([]uint16, n)
	r, g, b := comps[0].plane, comps[1].plane, comps[2].plane
	for i := range out {
		if f.photometric == "RGB" {
			out[i] = luma(uint32(r[i]), uint32(g[i]), uint32(b[i]))
		} else {
			out[i] = r[i]
		}
	}
	return sampleSource{u16: out}, nil
}

// decodeLosslessScan decodes one scan and returns the bytes of
// entropy-coded data (with restart markers) it used.
func decodeLosslessScan(data []byte, sc []*llComponent, hts []*huffTable, width, height, precision, sel, pt, restart int) (int, error) {
	if restart > 0 && restart%width != 0 {
		return 0, fmt.Errorf("%w: JPEG lossless restart interval %d is not a multiple of the row length %d", ErrUnsupported, restart, width)
	}
	rowsPerInterval := height
	if restart > 0 {
		rowsPerInterval = restart / width
	}
	br := &bitReader{data: data}
	initial := 1 << (precision - pt - 1)
	nextRST := byte(0xD0)
	for y := 0; y < height; y++ {
		first := y%rowsPerInterval == 0
		if first && y > 0 {
			if err := br.restart(nextRST); err != nil {
				return 0, err
			}
			nextRST = 0xD0 + (nextRST-0xD0+1)%8
		}
		if len(sc) == 1 { // the common case, with its own loop
			c := sc[0]
			row := c.plane[y*width : (y+1)*width]
			var prev []uint16
			if !first {
				prev = c.plane[(y-1)*width : y*width]
			}
			if err := decodeLosslessRow(br, hts[0], row, prev, first, sel, initial); err != nil {
				return 0, err
			}
		} else {
			for x := 0; x < width; x++ {
				for ci, c := range sc {
					row := c.plane[y*width : (y+1)*width]
					var prev []uint16
					if !first {
						prev = c.plane[(y-1)*width : y*width]
					}
					d, err := br.diff(hts[ci])
					if err != nil {
						return 0, err
					}
					row[x] = uint16(predict(row, prev, x, first, sel, initial) + d)
				}
			}
		}
		if br.overread() {
			return 0, br.errOverread()
		}
	}
	if pt > 0 {
		for _, c := range sc {
			for i, v := range c.plane {
				c.plane[i] = v << uint(pt)
			}
		}
	}
	return scanEnd(data, br.pos), nil
}

// decodeLosslessRow decodes one row of a single-component scan: the hot
// loop, with the Huffman lookup, the difference extension (T.81 H.1.2.2) and
// the prediction inlined.
func decodeLosslessRow(br *bitReader, h *huffTable, row, prev []uint16, first bool, sel, initial int) error {
	if prev != nil && len(prev) != len(row) {
		return fmt.Errorf("%w: row length", ErrMalformed)
	}
	if h.diffs == nil {
		h.buildDiffs()
	}
	diffs := h.diffs
	// The bit buffer lives in locals in this loop (written back around the
	// calls that use the reader), so the compiler can keep it in registers.
	acc, n := br.acc, br.n
	for x := range row {
		if n < 32 {
			br.acc, br.n = acc, n
			br.fill()
			acc, n = br.acc, br.n
		}
		// After fill at least 57 bits are buffered: enough for a 16-bit code
		// and 15 extra bits, so no second fill is needed for this sample.
		var d int
		if e := diffs[(acc>>(n-diffBits))&(1<<diffBits-1)]; e != 0 {
			n -= uint(e & 0xFF)
			d = int(e >> 8)
		} else {
			br.acc, br.n = acc, n
			s, err := br.symbol(h)
			if err != nil {
				return err
			}
			acc, n = br.acc, br.n
			switch {
			case s == 0:
			case s == 16:
				d = 32768
			case s > 16:
				return fmt.Errorf("%w: JPEG lossless difference category %d", ErrMalformed, s)
			default:
				v := int((acc >> (n - uint(s))) & (1<<uint(s) - 1))
				n -= uint(s)
				if v < 1<<(s-1) {
					v -= 1<<s - 1
				}
				d = v
			}
		}
		var pred int
		switch {
		case first && x == 0:
			pred = initial
		case first:
			pred = int(row[x-1])
		case x == 0:
			pred = int(prev[0])
		default:
			ra, rb, rc := int(row[x-1]), int(prev[x]), int(prev[x-1])
			switch sel {
			case 1:
				pred = ra
			case 2:
				pred = rb
			case 3:
				pred = rc
			case 4:
				pred = ra + rb - rc
			case 5:
				pred = ra + (rb-rc)>>1
			case 6:
				pred = rb + (ra-rc)>>1
			default:
				pred = (ra + rb) >> 1
			}
		}
		row[x] = uint16(pred + d)
	}
	br.acc, br.n = acc, n
	return nil
}

// predict is the prediction of T.81 Table H.1 and H.1.2.1 for sample x of
// row, given the previous row (nil on the first row of a restart interval).
func predict(row, prev []uint16, x int, first bool, sel, initial int) int {
	if first {
		if x == 0 {
			return initial
		}
		return int(row[x-1])
	}
	if x == 0 {
		return int(prev[0])
	}
	ra, rb, rc := int(row[x-1]), int(prev[x]), int(prev[x-1])
	switch sel {
	case 1:
		return ra
	case 2:
		return rb
	case 3:
		return rc
	case 4:
		return ra + rb - rc
	case 5:
		return ra + (rb-rc)>>1
	case 6:
		return rb + (ra-rc)>>1
	default:
		return (ra + rb) >> 1
	}
}
