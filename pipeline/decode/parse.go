package decode

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// This file holds a small, strict parser of the DICOM data set encodings this
// package supports (PS3.5 §7: explicit and implicit VR little endian, and the
// deflated explicit VR little endian of §A.5). It keeps only what decoding
// needs: top-level elements by tag, sequence items, and the fragments of
// encapsulated Pixel Data. Every length is checked against the bytes present,
// so a truncated object is an error, never a partial image.
//
// It is hand-written rather than built on github.com/suyashkumar/dicom v1.1.0
// because that parser, for untrusted input, (a) reports success for files cut
// inside or between encapsulated fragments (readPixelData drops item read
// errors and parseInternal treats io.EOF as the end of the object), (b) panics
// on a malformed Transfer Syntax UID (MustGetStrings), (c) writes to the global
// log on odd items, and (d) copies and expands native pixel data into []int
// without applying Pixel Representation or Bits Stored. Parsing in place over
// one byte slice also keeps decoding allocation-light.

const (
	tagItem              = 0xFFFEE000
	tagItemDelimitation  = 0xFFFEE00D
	tagSeqDelimitation   = 0xFFFEE0DD
	tagPixelData         = 0x7FE00010
	tagFloatPixelData    = 0x7FE00008
	tagDoubleFloatPixels = 0x7FE00009
	tagTransferSyntaxUID = 0x00020010
	undefinedLength      = 0xFFFFFFFF

	// maxDepth bounds sequence nesting so hostile input cannot exhaust the stack.
	maxDepth = 16
	// maxInflated bounds the inflated size of a deflated data set (the largest
	// image, MaxPixels × 3 samples × 2 bytes, is 384 MiB).
	maxInflated = 512 << 20
)

// element is one parsed data element. Values are sub-slices of the input.
type element struct {
	tag uint32
	vr  string // explicit VR, or "" for implicit VR
	val []byte
	// items holds the parsed items of a sequence.
	items []dataset
	// encapsulated is set for encapsulated Pixel Data: bot is the Basic
	// Offset Table item, frags the following fragments.
	encapsulated bool
	bot          []byte
	frags        [][]byte
}

// dataset maps a tag to its element; the first occurrence of a tag wins.
type dataset map[uint32]*element

// knownSequences lists the sequences the decoder reads, so that they can be
// recognised with defined length in implicit VR (where no VR is encoded).
var knownSequences = map[uint32]bool{
	0x00283000: true, // Modality LUT Sequence
	0x00283010: true, // VOI LUT Sequence
}

// longVRs have a 2-byte reserved field and a 4-byte length in explicit VR (PS3.5 Table 7.1-1).
var longVRs = map[string]bool{"OB": true, "OD": true, "OF": true, "OL": true, "OV": true, "OW": true,
	"SQ": true, "SV": true, "UC": true, "UN": true, "UR": true, "UT": true, "UV": true}

var shortVRs = map[string]bool{"AE": true, "AS": true, "AT": true, "CS": true, "DA": true, "DS": true,
	"DT": true, "FL": true, "FD": true, "IS": true, "LO": true, "LT": true, "PN": true, "SH": true,
	"SL": true, "SS": true, "ST": true, "TM": true, "UI": true, "UL": true, "US": true}

type parser struct {
	b        []byte
	pos      int
	explicit bool
}

func (p *parser) truncated(what string) error {
	return fmt.Errorf("%w: %s at offset %d", ErrTruncated, what, p.pos)
}

func (p *parser) malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d", ErrMalformed, fmt.Sprintf(format, args...), p.pos)
}

func (p *parser) peekTag() (uint32, bool) {
	if len(p.b)-p.pos < 4 {
		return 0, false
	}
	g := binary.LittleEndian.Uint16(p.b[p.pos:])
	e := binary.LittleEndian.Uint16(p.b[p.pos+2:])
	return uint32(g)<<16 | uint32(e), true
}

// header reads tag, VR and length of the next element.
func (p *parser) header() (tag uint32, vr string, length uint32, err error) {
	t, ok := p.peekTag()
	if !ok {
		return 0, "", 0, p.truncated("element tag")
	}
	// Items and delimiters are always encoded with implicit VR (PS3.5 §7.5).
	if !p.explicit || t>>16 == 0xFFFE {
		if len(p.b)-p.pos < 8 {
			return 0, "", 0, p.truncated("element header")
		}
		length = binary.LittleEndian.Uint32(p.b[p.pos+4:])
		p.pos += 8
		return t, "", length, nil
	}
	if len(p.b)-p.pos < 8 {
		return 0, "", 0, p.truncated("element header")
	}
	vr = string(p.b[p.pos+4 : p.pos+6])
	switch {
	case longVRs[vr]:
		if len(p.b)-p.pos < 12 {
			return 0, "", 0, p.truncated("element header")
		}
		length = binary.LittleEndian.Uint32(p.b[p.pos+8:])
		p.pos += 12
	case shortVRs[vr]:
		length = uint32(binary.LittleEndian.Uint16(p.b[p.pos+6:]))
		p.pos += 8
	default:
		return 0, "", 0, p.malformed("invalid VR %q in element (%04X,%04X)", vr, t>>16, t&0xFFFF)
	}
	return t, vr, length, nil
}

// readDataset reads elements until end. With untilDelimiter it reads an item
// of undefined length and stops after the Item Delimitation Item.
func (p *parser) readDataset(end, depth int, untilDelimiter bool) (dataset, error) {
	ds := dataset{}
	for p.pos < end {
		t, _ := p.peekTag()
		if t == tagItemDelimitation {
			if !untilDelimiter {
				return nil, p.malformed("unexpected item delimitation")
			}
			if _, _, _, err := p.header(); err != nil {
				return nil, err
			}
			return ds, nil
		}
		el, err := p.readElement(end, depth)
		if err != nil {
			return nil, err
		}
		if _, dup := ds[el.tag]; !dup {
			ds[el.tag] = el
		}
		if depth == 0 && el.tag == tagPixelData && allZero(p.b[p.pos:end]) {
			// Zero bytes after the pixel data: file padding some writers add.
			p.pos = end
		}
	}
	if untilDelimiter {
		return nil, p.truncated("item without delimitation")
	}
	return ds, nil
}

func (p *parser) readElement(end, depth int) (*element, error) {
	start := p.pos
	t, vr, length, err := p.header()
	if err != nil {
		return nil, err
	}
	if p.pos > end {
		p.pos = start
		return nil, p.truncated("element header")
	}
	if t>>16 == 0xFFFE {
		p.pos = start
		return nil, p.malformed("unexpected item tag (%04X,%04X)", t>>16, t&0xFFFF)
	}
	el := &element{tag: t, vr: vr}
	if length == undefinedLength {
		switch {
		case t == tagPixelData: // also an encapsulated icon in a sequence
			if err := p.readEncapsulated(el, end); err != nil {
				return nil, err
			}
			return el, nil
		case vr == "SQ" || vr == "" || vr == "UN":
			// UN of undefined length holds a sequence in implicit VR (PS3.5 §6.2.2).
			saved := p.explicit
			if vr == "UN" {
				p.explicit = false
			}
			items, err := p.readSequence(end, -1, depth+1)
			p.explicit = saved
			if err != nil {
				return nil, fmt.Errorf("sequence (%04X,%04X): %w", t>>16, t&0xFFFF, err)
			}
			el.items = items
			return el, nil
		default:
			return nil, p.malformed("undefined length for VR %s in (%04X,%04X)", vr, t>>16, t&0xFFFF)
		}
	}
	if uint64(length) > uint64(end-p.pos) {
		return nil, p.truncated(fmt.Sprintf("value of (%04X,%04X) needs %d bytes, %d left", t>>16, t&0xFFFF, length, end-p.pos))
	}
	if vr == "SQ" || (vr == "" && knownSequences[t]) {
		items, err := p.readSequence(p.pos+int(length), int(length), depth+1)
		if err != nil {
			return nil, fmt.Errorf("sequence (%04X,%04X): %w", t>>16, t&0xFFFF, err)
		}
		el.items = items
		return el, nil
	}
	el.val = p.b[p.pos : p.pos+int(length)]
	p.pos += int(length)
	return el, nil
}

// readSequence reads items up to end (defined length, length >= 0) or up to
// the Sequence Delimitation Item (length < 0).
func (p *parser) readSequence(end, length, depth int) ([]dataset, error) {
	if depth > maxDepth {
		return nil, p.malformed("sequences nested deeper than %d", maxDepth)
	}
	var items []dataset
	for {
		if length >= 0 && p.pos == end {
			return items, nil
		}
		t, il, err := p.itemHeader(end)
		if err != nil {
			return nil, err
		}
		switch t {
		case tagSeqDelimitation:
			if length >= 0 {
				return nil, p.malformed("sequence delimitation in a sequence of defined length")
			}
			return items, nil
		case tagItem:
		default:
			return nil, p.malformed("expected item, found (%04X,%04X)", t>>16, t&0xFFFF)
		}
		var ds dataset
		if il == undefinedLength {
			ds, err = p.readDataset(end, depth, true)
		} else {
			if uint64(il) > uint64(end-p.pos) {
				return nil, p.truncated("sequence item")
			}
			ds, err = p.readDataset(p.pos+int(il), depth, false)
		}
		if err != nil {
			return nil, err
		}
		items = append(items, ds)
	}
}

func (p *parser) itemHeader(end int) (uint32, uint32, error) {
	if end-p.pos < 8 {
		return 0, 0, p.truncated("item header")
	}
	t, _ := p.peekTag()
	l := binary.LittleEndian.Uint32(p.b[p.pos+4:])
	p.pos += 8
	return t, l, nil
}

// readEncapsulated reads the items of encapsulated Pixel Data (PS3.5 §A.4):
// the Basic Offset Table, the fragments and the Sequence Delimitation Item.
func (p *parser) readEncapsulated(el *element, end int) error {
	el.encapsulated = true
	first := true
	for {
		t, l, err := p.itemHeader(end)
		if err != nil {
			return fmt.Errorf("encapsulated pixel data: %w", err)
		}
		if t == tagSeqDelimitation {
			if first {
				return p.malformed("encapsulated pixel data without basic offset table item")
			}
			return nil
		}
		if t != tagItem {
			return p.malformed("encapsulated pixel data: expected item, found (%04X,%04X)", t>>16, t&0xFFFF)
		}
		if l == undefinedLength {
			return p.malformed("encapsulated pixel data: fragment of undefined length")
		}
		if uint64(l) > uint64(end-p.pos) {
			return p.truncated(fmt.Sprintf("encapsulated pixel data: fragment of %d bytes, %d left", l, end-p.pos))
		}
		v := p.b[p.pos : p.pos+int(l)]
		p.pos += int(l)
		if first {
			el.bot = v
			first = false
		} else {
			el.frags = append(el.frags, v)
		}
	}
}

// parsed is a whole DICOM object: the file meta information (possibly empty)
// and the data set.
type parsed struct {
	meta     dataset
	ds       dataset
	ts       string
	warnings []string
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func validVR(b []byte) bool {
	s := string(b)
	return longVRs[s] || shortVRs[s]
}

// parseObject parses a Part-10 file (preamble, "DICM", meta group), a data
// set that starts with the meta group but no preamble, or a bare data set in
// implicit or explicit VR little endian (the encoding is then inferred from
// the first element).
func parseObject(b []byte) (*parsed, error) {
	out := &parsed{meta: dataset{}}
	p := &parser{b: b, explicit: true}
	switch {
	case len(b) >= 132 && string(b[128:132]) == "DICM":
		p.pos = 132
	case len(b) < 8:
		return nil, fmt.Errorf("%w: %d bytes is too short for a DICOM object", ErrNotImage, len(b))
	default:
		// No preamble: the meta group or a bare data set starts at byte 0.
	}
	if t, ok := p.peekTag(); ok && t>>16 == 0x0002 {
		for {
			t, ok := p.peekTag()
			if !ok || t>>16 != 0x0002 {
				break
			}
			el, err := p.readElement(len(b), 1)
			if err != nil {
				return nil, fmt.Errorf("file meta information: %w", err)
			}
			if _, dup := out.meta[el.tag]; !dup {
				out.meta[el.tag] = el
			}
		}
		out.ts = str(out.meta[tagTransferSyntaxUID])
	} else if p.pos == 0 {
		// A bare data set: infer implicit or explicit VR from its first element.
		ts, err := guessEncoding(b)
		if err != nil {
			return nil, err
		}
		out.ts = ts
	} else {
		return nil, fmt.Errorf("%w: no file meta information after the DICM prefix", ErrMalformed)
	}
	if out.ts == "" {
		return nil, fmt.Errorf("%w: file meta information without Transfer Syntax UID", ErrMalformed)
	}
	syn, ok := syntaxes[out.ts]
	if !ok || !syn.supported {
		return nil, &UnsupportedTransferSyntaxError{UID: out.ts, Name: syntaxName(out.ts)}
	}
	body := b[p.pos:]
	if syn.deflated {
		inflated, err := inflate(body)
		if err != nil {
			return nil, err
		}
		body = inflated
	}
	explicit := !syn.implicit
	// Objects whose data set contradicts the transfer syntax in their meta
	// information exist; follow the data when the first element leaves no
	// doubt, as DCMTK does.
	if len(body) >= 8 {
		switch {
		case explicit && !validVR(body[4:6]):
			explicit = false
			out.warnings = append(out.warnings, "data set is implicit VR although the transfer syntax says explicit")
		case !explicit && validVR(body[4:6]) && int64(binary.LittleEndian.Uint32(body[4:])) > int64(len(body)-8):
			explicit = true
			out.warnings = append(out.warnings, "data set is explicit VR although the transfer syntax says implicit")
		}
	}
	dp := &parser{b: body, explicit: explicit}
	ds, err := dp.readDataset(len(body), 0, false)
	if err != nil {
		return nil, err
	}
	out.ds = ds
	return out, nil
}

// guessEncoding decides between implicit and explicit VR little endian for a
// data set without meta information, from the first element.
func guessEncoding(b []byte) (string, error) {
	g := binary.LittleEndian.Uint16(b)
	if g == 0x0800 || g == 0x0200 {
		return "1.2.840.10008.1.2.2", nil // big endian: rejected as unsupported
	}
	if g < 0x0008 {
		return "", fmt.Errorf("%w: not a DICOM file (no DICM prefix, first group %04X)", ErrNotImage, g)
	}
	vr := string(b[4:6])
	if longVRs[vr] || shortVRs[vr] {
		return "1.2.840.10008.1.2.1", nil
	}
	l := binary.LittleEndian.Uint32(b[4:])
	if l != undefinedLength && int64(l) > int64(len(b)-8) {
		return "", fmt.Errorf("%w: not a DICOM file (no DICM prefix and no plausible first element)", ErrNotImage)
	}
	return "1.2.840.10008.1.2", nil
}

func inflate(b []byte) ([]byte, error) {
	r := flate.NewReader(bytes.NewReader(b))
	defer r.Close()
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(r, maxInflated+1))
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: deflated data set: %v", ErrTruncated, err)
		}
		return nil, fmt.Errorf("%w: deflated data set: %v", ErrMalformed, err)
	}
	if n > maxInflated {
		return nil, fmt.Errorf("%w: deflated data set inflates beyond %d bytes", ErrMalformed, maxInflated)
	}
	return buf.Bytes(), nil
}
