package decode

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"sort"
	"testing"
)

// This file holds a minimal DICOM writer for tests: it writes exactly the
// bytes a test asks for, including the broken ones.

type el struct {
	tag uint32
	vr  string
	val []byte
	// items, when not nil, makes the element a sequence (undefined length
	// when undef is set).
	items [][]el
	undef bool
	// frags makes the element encapsulated Pixel Data (first = offset table).
	frags [][]byte
}

func u16(v ...int) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(x))
	}
	return b
}

func text(s string) []byte {
	if len(s)%2 == 1 {
		s += " "
	}
	return []byte(s)
}

func uid(s string) []byte {
	b := []byte(s)
	if len(b)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

type encoding struct {
	explicit bool
	meta     bool // write preamble and file meta
	ts       string
	deflate  bool
}

var explicitLE = encoding{explicit: true, meta: true, ts: "1.2.840.10008.1.2.1"}
var implicitLE = encoding{explicit: false, meta: true, ts: "1.2.840.10008.1.2"}

func putHeader(w *bytes.Buffer, tag uint32, vr string, length uint32, explicit bool) {
	var b [12]byte
	binary.LittleEndian.PutUint16(b[0:], uint16(tag>>16))
	binary.LittleEndian.PutUint16(b[2:], uint16(tag))
	if !explicit || tag>>16 == 0xFFFE {
		binary.LittleEndian.PutUint32(b[4:], length)
		w.Write(b[:8])
		return
	}
	copy(b[4:], vr)
	if longVRs[vr] {
		binary.LittleEndian.PutUint32(b[8:], length)
		w.Write(b[:12])
		return
	}
	binary.LittleEndian.PutUint16(b[6:], uint16(length))
	w.Write(b[:8])
}

func writeElems(w *bytes.Buffer, elems []el, explicit bool) {
	sorted := append([]el(nil), elems...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].tag < sorted[j].tag })
	for _, e := range sorted {
		switch {
		case e.frags != nil:
			putHeader(w, e.tag, "OB", undefinedLength, explicit)
			for _, f := range e.frags {
				putHeader(w, tagItem, "", uint32(len(f)), false)
				w.Write(f)
			}
			putHeader(w, tagSeqDelimitation, "", 0, false)
		case e.items != nil:
			var body bytes.Buffer
			for _, it := range e.items {
				var ib bytes.Buffer
				writeElems(&ib, it, explicit)
				if e.undef {
					putHeader(&body, tagItem, "", undefinedLength, false)
					body.Write(ib.Bytes())
					putHeader(&body, tagItemDelimitation, "", 0, false)
				} else {
					putHeader(&body, tagItem, "", uint32(ib.Len()), false)
					body.Write(ib.Bytes())
				}
			}
			if e.undef {
				putHeader(w, e.tag, "SQ", undefinedLength, explicit)
				w.Write(body.Bytes())
				putHeader(w, tagSeqDelimitation, "", 0, false)
			} else {
				putHeader(w, e.tag, "SQ", uint32(body.Len()), explicit)
				w.Write(body.Bytes())
			}
		default:
			putHeader(w, e.tag, e.vr, uint32(len(e.val)), explicit)
			w.Write(e.val)
		}
	}
}

// encode writes a DICOM object.
func encode(t testing.TB, enc encoding, elems []el) []byte {
	t.Helper()
	var w bytes.Buffer
	if enc.meta {
		w.Write(make([]byte, 128))
		w.WriteString("DICM")
		var meta bytes.Buffer
		writeElems(&meta, []el{
			{tag: 0x00020001, vr: "OB", val: []byte{0, 1}},
			{tag: 0x00020002, vr: "UI", val: uid("1.2.840.10008.5.1.4.1.1.1")},
			{tag: 0x00020003, vr: "UI", val: uid("1.2.3.4.5")},
			{tag: 0x00020010, vr: "UI", val: uid(enc.ts)},
			{tag: 0x00020012, vr: "UI", val: uid("1.2.3.999")},
		}, true)
		putHeader(&w, 0x00020000, "UL", 4, true)
		binary.Write(&w, binary.LittleEndian, uint32(meta.Len()))
		w.Write(meta.Bytes())
	}
	var body bytes.Buffer
	writeElems(&body, elems, enc.explicit)
	if enc.deflate {
		fw, err := flate.NewWriter(&w, flate.BestSpeed)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(body.Bytes())
		fw.Close()
	} else {
		w.Write(body.Bytes())
	}
	return w.Bytes()
}

// imageSpec describes a test image; image() turns it into elements.
type imageSpec struct {
	rows, cols           int
	bitsAlloc, bitsStore int
	highBit              int
	signed               bool
	photometric          string
	spp                  int
	extra                []el
	pixels               []byte // native pixel data; nil with frags
	frags                [][]byte
}

func (s imageSpec) elems() []el {
	if s.photometric == "" {
		s.photometric = "MONOCHROME2"
	}
	if s.spp == 0 {
		s.spp = 1
	}
	if s.bitsStore == 0 {
		s.bitsStore = s.bitsAlloc
	}
	if s.highBit == 0 {
		s.highBit = s.bitsStore - 1
	}
	pr := 0
	if s.signed {
		pr = 1
	}
	e := []el{
		{tag: tagSOPClassUID, vr: "UI", val: uid("1.2.840.10008.5.1.4.1.1.1")},
		{tag: tagSOPInstanceUID, vr: "UI", val: uid("1.2.3.4.5")},
		{tag: tagModality, vr: "CS", val: text("CR")},
		{tag: tagSamplesPerPixel, vr: "US", val: u16(s.spp)},
		{tag: tagPhotometric, vr: "CS", val: text(s.photometric)},
		{tag: tagRows, vr: "US", val: u16(s.rows)},
		{tag: tagColumns, vr: "US", val: u16(s.cols)},
		{tag: tagBitsAllocated, vr: "US", val: u16(s.bitsAlloc)},
		{tag: tagBitsStored, vr: "US", val: u16(s.bitsStore)},
		{tag: tagHighBit, vr: "US", val: u16(s.highBit)},
		{tag: tagPixelRepresentation, vr: "US", val: u16(pr)},
	}
	if s.spp > 1 {
		e = append(e, el{tag: tagPlanarConfiguration, vr: "US", val: u16(0)})
	}
	e = append(e, s.extra...)
	if s.frags != nil {
		e = append(e, el{tag: tagPixelData, frags: s.frags})
	} else {
		vr := "OW"
		if s.bitsAlloc == 8 {
			vr = "OB"
		}
		e = append(e, el{tag: tagPixelData, vr: vr, val: s.pixels})
	}
	return e
}
