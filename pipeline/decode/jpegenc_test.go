package decode

import (
	"bytes"
	"math/bits"
	"math/rand/v2"
)

// Test-only JPEG encoders. They write streams with features DCMTK's
// dcmcjpeg never emits (restart intervals, 4:2:0 sampling, category-16
// lossless differences), which the interop tests then decode with both
// dcmdjpeg and this package.

type bitWriter struct {
	buf  bytes.Buffer
	acc  uint32
	nacc uint
}

func (w *bitWriter) put(code uint32, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		w.acc = w.acc<<1 | (code>>uint(i))&1
		w.nacc++
		if w.nacc == 8 {
			b := byte(w.acc)
			w.buf.WriteByte(b)
			if b == 0xFF {
				w.buf.WriteByte(0)
			}
			w.acc, w.nacc = 0, 0
		}
	}
}

// flush pads the last byte with 1 bits (T.81 F.1.2.3).
func (w *bitWriter) flush() {
	for w.nacc != 0 {
		w.put(1, 1)
	}
}

func (w *bitWriter) marker(m byte, payload ...byte) {
	w.flush()
	w.buf.WriteByte(0xFF)
	w.buf.WriteByte(m)
	if m != 0xD8 && m != 0xD9 && (m < 0xD0 || m > 0xD7) {
		l := len(payload) + 2
		w.buf.WriteByte(byte(l >> 8))
		w.buf.WriteByte(byte(l))
		w.buf.Write(payload)
	}
}

// category returns the magnitude category of v and its extra bits (F.1.2.1).
func category(v int) (uint, uint32) {
	if v == 0 {
		return 0, 0
	}
	a := v
	if a < 0 {
		a = -a
	}
	s := uint(bits.Len(uint(a)))
	if v < 0 {
		v += 1<<s - 1
	}
	return s, uint32(v) & (1<<s - 1)
}

// fixedTable is a Huffman table giving every symbol in syms a code of
// length n, in order; it returns the DHT payload body and the codes.
func fixedTable(class, id byte, syms []byte, n int) ([]byte, map[byte]uint32) {
	p := []byte{class<<4 | id}
	var counts [16]byte
	counts[n-1] = byte(len(syms))
	p = append(p, counts[:]...)
	p = append(p, syms...)
	codes := map[byte]uint32{}
	for i, s := range syms {
		codes[s] = uint32(i)
	}
	return p, codes
}

// encodeLosslessJPEG writes a one-component Process 14 stream of precision p
// with selection value sel, point transform pt and a restart interval of
// restartRows rows (0: none).
func encodeLosslessJPEG(px []uint16, width, height, p, sel, pt, restartRows int) []byte {
	w := &bitWriter{}
	w.marker(0xD8)
	w.marker(0xC3, byte(p), byte(height>>8), byte(height), byte(width>>8), byte(width), 1, 1, 0x11, 0)
	syms := make([]byte, 17)
	for i := range syms {
		syms[i] = byte(i)
	}
	dht, codes := fixedTable(0, 0, syms, 5)
	w.marker(0xC4, dht...)
	if restartRows > 0 {
		ri := restartRows * width
		w.marker(0xDD, byte(ri>>8), byte(ri))
	}
	w.marker(0xDA, 1, 1, 0x00, byte(sel), 0, byte(pt))
	v := func(x, y int) int { return int(px[y*width+x]) >> pt }
	rst := 0
	for y := 0; y < height; y++ {
		first := y == 0
		if restartRows > 0 && y > 0 && y%restartRows == 0 {
			w.marker(0xD0 + byte(rst%8))
			rst++
			first = true
		}
		for x := 0; x < width; x++ {
			var pred int
			switch {
			case first && x == 0:
				pred = 1 << (p - pt - 1)
			case first:
				pred = v(x-1, y)
			case x == 0:
				pred = v(0, y-1)
			default:
				ra, rb, rc := v(x-1, y), v(x, y-1), v(x-1, y-1)
				pred = [8]int{0, ra, rb, rc, ra + rb - rc, ra + (rb-rc)>>1, rb + (ra-rc)>>1, (ra + rb) >> 1}[sel]
			}
			d := (v(x, y) - pred) & 0xFFFF
			if d >= 32768 {
				d -= 65536
			}
			if d == -32768 {
				w.put(codes[16], 5)
				continue
			}
			s, extra := category(d)
			w.put(codes[byte(s)], 5)
			w.put(extra, s)
		}
	}
	w.marker(0xD9)
	return w.buf.Bytes()
}

type dctTestComponent struct {
	h, v int
}

// encodeBaselineJPEG writes an 8-bit baseline stream of random quantised
// coefficients (deterministic for seed) for the given components, with a
// restart interval of restart MCUs (0: none). All components share one
// quantisation table and one pair of Huffman tables.
func encodeBaselineJPEG(width, height int, comps []dctTestComponent, restart int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 11))
	w := &bitWriter{}
	w.marker(0xD8)
	q := make([]byte, 65)
	for k := range 64 {
		q[1+k] = byte(1 + (k*7)%23)
	}
	q[1] = 16 // DC: the level swings ±120, so both clamps of the range limit occur
	w.marker(0xDB, q...)
	sof := []byte{8, byte(height >> 8), byte(height), byte(width >> 8), byte(width), byte(len(comps))}
	hmax, vmax := 1, 1
	for i, c := range comps {
		sof = append(sof, byte(i+1), byte(c.h<<4|c.v), 0)
		hmax, vmax = max(hmax, c.h), max(vmax, c.v)
	}
	w.marker(0xC0, sof...)
	dcSyms := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	dht, dcCodes := fixedTable(0, 0, dcSyms, 4)
	w.marker(0xC4, dht...)
	var acSyms []byte
	acSyms = append(acSyms, 0x00, 0xF0)
	for run := 0; run < 16; run++ {
		for s := 1; s <= 10; s++ {
			acSyms = append(acSyms, byte(run<<4|s))
		}
	}
	dht, acCodes := fixedTable(1, 0, acSyms, 8)
	w.marker(0xC4, dht...)
	if restart > 0 {
		w.marker(0xDD, byte(restart>>8), byte(restart))
	}
	sos := []byte{byte(len(comps))}
	for i := range comps {
		sos = append(sos, byte(i+1), 0x00)
	}
	sos = append(sos, 0, 63, 0)
	w.marker(0xDA, sos...)
	mcusX := (width + 8*hmax - 1) / (8 * hmax)
	mcusY := (height + 8*vmax - 1) / (8 * vmax)
	preds := make([]int, len(comps))
	mcu, rst := 0, 0
	for my := 0; my < mcusY; my++ {
		for mx := 0; mx < mcusX; mx++ {
			if restart > 0 && mcu > 0 && mcu%restart == 0 {
				w.marker(0xD0 + byte(rst%8))
				rst++
				clear(preds)
			}
			mcu++
			for ci, c := range comps {
				for range c.h * c.v {
					var zz [64]int
					zz[0] = r.IntN(121) - 60
					for k := 1; k < 12; k++ {
						if r.IntN(3) == 0 {
							zz[k] = r.IntN(41) - 20
						}
					}
					if r.IntN(4) == 0 {
						zz[40+r.IntN(24)] = r.IntN(9) - 4 // long zero runs (ZRL)
					}
					s, extra := category(zz[0] - preds[ci])
					preds[ci] = zz[0]
					w.put(dcCodes[byte(s)], 4)
					w.put(extra, s)
					run := 0
					for k := 1; k < 64; k++ {
						if zz[k] == 0 {
							run++
							continue
						}
						for run > 15 {
							w.put(acCodes[0xF0], 8)
							run -= 16
						}
						s, extra := category(zz[k])
						w.put(acCodes[byte(run<<4)|byte(s)], 8)
						w.put(extra, s)
						run = 0
					}
					if run > 0 {
						w.put(acCodes[0x00], 8)
					}
				}
			}
		}
	}
	w.marker(0xD9)
	return w.buf.Bytes()
}
