package decode

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// str returns the first value of a string element, without padding. Bytes
// that are not valid UTF-8 are read as ISO 8859-1, the usual character set of
// radiography headers.
func str(el *element) string {
	v := strs(el)
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// strs returns all backslash-separated values of a string element.
func strs(el *element) []string {
	if el == nil || len(el.val) == 0 {
		return nil
	}
	s := latin1(el.val)
	s = strings.TrimRight(s, " \x00")
	if s == "" {
		return nil
	}
	parts := strings.Split(s, `\`)
	for i := range parts {
		parts[i] = strings.Trim(parts[i], " \x00")
	}
	return parts
}

func latin1(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// floats parses a DS (or IS) element. ok is false when a value is not a
// finite number.
func floats(el *element) (v []float64, ok bool) {
	ss := strs(el)
	if len(ss) == 0 {
		return nil, true
	}
	v = make([]float64, len(ss))
	for i, s := range ss {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, false
		}
		v[i] = f
	}
	return v, true
}

// uint16s reads a US (or OW) element as little-endian 16-bit words.
func uint16s(el *element) []uint16 {
	if el == nil {
		return nil
	}
	n := len(el.val) / 2
	out := make([]uint16, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint16(el.val[2*i:])
	}
	return out
}

// us returns the first value of a US element and whether it is present.
func us(el *element) (int, bool) {
	if el == nil || len(el.val) < 2 {
		return 0, false
	}
	return int(binary.LittleEndian.Uint16(el.val)), true
}

// integer returns the first value of an IS element.
func integer(el *element) (int, bool) {
	s := str(el)
	if s == "" {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimPrefix(s, "+"))
	if err != nil {
		return 0, false
	}
	return n, true
}
