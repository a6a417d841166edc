// Package window implements the VOI LUT stage of the grayscale pipeline of
// DICOM PS3.3 C.11.2: window centre/width with the LINEAR, LINEAR_EXACT and
// SIGMOID functions (C.11.2.1.2, C.11.2.1.3), VOI LUT Sequence lookup tables
// (C.11.2.1.1), and an automatic window derived from the image histogram for
// objects that carry none.
//
// Every function maps modality values (the output of the Modality LUT stage)
// to display values in [0,1] as float32, where 0 is black and 1 is white on a
// MONOCHROME2 display. Inputs are never modified unless dst aliases src.
// The package is pure: it knows nothing about DICOM files.
package window

import (
	"fmt"
	"math"
	"strings"
)

// Function is the VOI LUT Function (0028,1056) of PS3.3 C.11.2.1.3.
type Function int

const (
	// Linear is the default function (C.11.2.1.2.1), used when VOI LUT Function is absent.
	Linear Function = iota
	// LinearExact is LINEAR_EXACT (C.11.2.1.3.2).
	LinearExact
	// Sigmoid is SIGMOID (C.11.2.1.3.1).
	Sigmoid
)

// String returns the DICOM defined term of f.
func (f Function) String() string {
	switch f {
	case Linear:
		return "LINEAR"
	case LinearExact:
		return "LINEAR_EXACT"
	case Sigmoid:
		return "SIGMOID"
	}
	return fmt.Sprintf("Function(%d)", int(f))
}

// ParseFunction maps a VOI LUT Function defined term to a Function. An empty
// string means LINEAR, as the standard says.
func ParseFunction(s string) (Function, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "", "LINEAR":
		return Linear, nil
	case "LINEAR_EXACT":
		return LinearExact, nil
	case "SIGMOID":
		return Sigmoid, nil
	}
	return Linear, fmt.Errorf("unknown VOI LUT function %q", s)
}

// Params is one window: Window Center (0028,1050), Window Width (0028,1051),
// VOI LUT Function (0028,1056) and Window Center & Width Explanation (0028,1055).
type Params struct {
	Center, Width float64
	Function      Function
	Explanation   string
}

// Valid reports whether the width is usable with the function: at least 1 for
// LINEAR, positive for LINEAR_EXACT and SIGMOID (PS3.3 C.11.2.1.2).
func (p Params) Valid() bool {
	if math.IsNaN(p.Center) || math.IsInf(p.Center, 0) || math.IsNaN(p.Width) || math.IsInf(p.Width, 0) {
		return false
	}
	if p.Function == Linear {
		return p.Width >= 1
	}
	return p.Width > 0
}

// LUT is one item of the VOI LUT Sequence (0028,3010): LUT Descriptor
// (0028,3002) values 2 and 3 as FirstMapped and Bits, and LUT Data (0028,3006).
type LUT struct {
	// FirstMapped is the input value mapped to Data[0].
	FirstMapped int
	// Data holds the output values; inputs below FirstMapped map to Data[0],
	// inputs above the last entry map to the last entry.
	Data []uint16
	// Bits is the number of bits of each output value (8 to 16); the output
	// range 0..2^Bits-1 is scaled to [0,1].
	Bits        int
	Explanation string
}

// Apply maps src through the window p into dst, which must be at least as
// long as src and may be src itself. Output values lie in [0,1].
//
// A width that is not Valid (zero, negative, or below 1 for LINEAR) cannot be
// evaluated by the standard's formulas; Apply then thresholds at the centre
// (values above it map to 1), which is the limit of the formulas as the width
// shrinks. NaN inputs map to 0.
func Apply(dst, src []float32, p Params) {
	dst = dst[:len(src)]
	c, w := p.Center, p.Width
	if !p.Valid() {
		for i, x := range src {
			if float64(x) > c {
				dst[i] = 1
			} else {
				dst[i] = 0
			}
		}
		return
	}
	switch p.Function {
	case Sigmoid:
		// y = 1 / (1 + exp(-4 (x - c) / w))
		// Images hold few distinct values (at most 2^BitsStored), so a
		// direct-mapped cache keyed by the input's bits saves most of the
		// exponentials; a hit returns exactly what the formula would.
		k := -4 / w
		const cacheBits = 13
		var keys [1 << cacheBits]uint32
		var vals [1 << cacheBits]float32
		var valid [1 << cacheBits]bool
		for i, x := range src {
			if x != x {
				dst[i] = 0
				continue
			}
			bits := math.Float32bits(x)
			h := (bits * 0x9E3779B1) >> (32 - cacheBits)
			if valid[h] && keys[h] == bits {
				dst[i] = vals[h]
				continue
			}
			y := float32(1 / (1 + math.Exp(k*(float64(x)-c))))
			keys[h], vals[h], valid[h] = bits, y, true
			dst[i] = y
		}
		return
	case LinearExact:
		// x <= c - w/2 -> 0; x > c + w/2 -> 1; else (x - c)/w + 0.5
		linear(dst, src, 1/w, 0.5-c/w)
	default:
		// x <= c - 0.5 - (w-1)/2 -> 0; x > c - 0.5 + (w-1)/2 -> 1;
		// else ((x - (c - 0.5)) / (w - 1) + 0.5)
		if w == 1 {
			lo := c - 0.5
			// No interior: a pure threshold at c - 0.5.
			for i, x := range src {
				if float64(x) > lo {
					dst[i] = 1
				} else {
					dst[i] = 0
				}
			}
			return
		}
		linear(dst, src, 1/(w-1), 0.5-(c-0.5)/(w-1))
	}
}

// linear evaluates the clamped affine map shared by LINEAR and LINEAR_EXACT.
// The map is continuous (0 at lo, 1 at hi), so clamping a*x+b to [0,1]
// equals the standard's piecewise definition. The negated comparison sends
// NaN to 0.
func linear(dst, src []float32, a, b float64) {
	for i, x := range src {
		y := float64(x)*a + b
		if !(y > 0) {
			y = 0
		}
		if y > 1 {
			y = 1
		}
		dst[i] = float32(y)
	}
}

// ApplyLUT maps src through the VOI LUT into dst (which may be src). Input
// values are rounded to the nearest integer before lookup; inputs outside the
// table take its first or last entry (PS3.3 C.11.2.1.1). Output values are
// Data/(2^Bits-1), clamped to [0,1]. An empty LUT maps everything to 0.
func ApplyLUT(dst, src []float32, lut *LUT) {
	dst = dst[:len(src)]
	if lut == nil || len(lut.Data) == 0 {
		clear(dst)
		return
	}
	bits := lut.Bits
	if bits < 1 || bits > 16 {
		bits = 16
	}
	scale := 1 / float64(uint32(1)<<bits-1)
	// Precompute the float output of each entry once.
	out := make([]float32, len(lut.Data))
	for i, d := range lut.Data {
		out[i] = float32(math.Min(float64(d)*scale, 1))
	}
	// Index = round(x) - FirstMapped, clamped to the table.
	off := 0.5 - float64(lut.FirstMapped)
	last := float64(len(out) - 1)
	for i, x := range src {
		v := float64(x) + off
		if !(v > 0) { // also NaN
			v = 0
		}
		if v > last {
			v = last
		}
		dst[i] = out[int(v)]
	}
}

// Auto percentiles: the window spans the values between these fractions of
// the histogram, which ignores isolated outliers such as burned-in markers,
// dead detector pixels and the unexposed background beyond the collimation.
const (
	autoLow  = 0.005
	autoHigh = 0.995
	autoBins = 4096
)

// percentileEdges builds a histogram of the finite sampled values in [a,b]
// and returns the lower edge of the bin holding the lowCount-th value and the
// upper edge of the bin holding the highCount-th value, counting values
// below a as preceding every bin.
func percentileEdges(src []float32, step int, ex exclusion, a, b float64, lowCount, highCount int) (lo, hi float64) {
	const big = math.MaxFloat32
	var hist [autoBins]int
	below := 0
	scale := float64(autoBins) / (b - a)
	for i := 0; i < len(src); i += step {
		x := src[i]
		if !(x >= -big && x <= big) || ex.has(x) {
			continue
		}
		v := float64(x)
		if v < a {
			below++
			continue
		}
		if v > b {
			continue
		}
		k := int((v - a) * scale)
		if k >= autoBins {
			k = autoBins - 1
		}
		hist[k]++
	}
	binW := (b - a) / autoBins
	lo, hi = a, b
	cum := below
	for k, h := range hist {
		if cum+h > lowCount {
			lo = a + float64(k)*binW
			break
		}
		cum += h
	}
	cum = below
	for k, h := range hist {
		cum += h
		if cum >= highCount {
			hi = a + float64(k+1)*binW
			break
		}
	}
	return lo, min(hi, b)
}

// autoSamples bounds the number of values Auto examines: larger inputs are
// sampled with a fixed stride, which keeps it fast and deterministic.
const autoSamples = 1 << 20

// Auto derives a LINEAR_EXACT window from the histogram of src for objects
// that carry neither a window nor a VOI LUT: the window spans the 0.5th to the
// 99.5th percentile of the finite values (4096-bin histogram between the
// minimum and maximum; inputs above 2^20 values are sampled with a fixed
// stride). A constant image gets width 1 centred on its value; an empty one
// (or all NaN/Inf) gets centre 0.5, width 1. The result is deterministic and
// its Explanation is "AUTO".
func Auto(src []float32) Params {
	return auto(src, exclusion{})
}

// AutoExcluding is Auto ignoring the values in [lo, hi], such as the Pixel
// Padding Value range of a radiograph (PS3.3 C.7.5.1.1.2), which would
// otherwise pull the low percentile to the padding.
func AutoExcluding(src []float32, lo, hi float32) Params {
	return auto(src, exclusion{on: true, lo: lo, hi: hi})
}

// exclusion is a closed range of values that Auto ignores.
type exclusion struct {
	on     bool
	lo, hi float32
}

func (e exclusion) has(x float32) bool { return e.on && x >= e.lo && x <= e.hi }

func auto(src []float32, ex exclusion) Params {
	step := 1
	if len(src) > autoSamples {
		step = (len(src) + autoSamples - 1) / autoSamples
	}
	const big = math.MaxFloat32
	minV, maxV := float32(big), float32(-big)
	n := 0
	for i := 0; i < len(src); i += step {
		x := src[i]
		if !(x >= -big && x <= big) || ex.has(x) { // NaN, ±Inf, excluded
			continue
		}
		n++
		minV = min(minV, x)
		maxV = max(maxV, x)
	}
	if n == 0 {
		return Params{Center: 0.5, Width: 1, Function: LinearExact, Explanation: "AUTO"}
	}
	lo64, hi64 := float64(minV), float64(maxV)
	if maxV == minV {
		return Params{Center: lo64, Width: 1, Function: LinearExact, Explanation: "AUTO"}
	}
	lowCount := int(math.Floor(autoLow * float64(n)))
	highCount := int(math.Ceil(autoHigh * float64(n)))
	// Histogram between a and b; when the percentiles fall within a few bins
	// (extreme outliers stretch the range), zoom into them and repeat.
	a, b := lo64, hi64
	var lo, hi float64
	for range 4 {
		lo, hi = percentileEdges(src, step, ex, a, b, lowCount, highCount)
		if hi-lo >= 64*(b-a)/autoBins {
			break
		}
		a, b = lo, hi
	}
	if hi <= lo {
		hi = lo + (b-a)/autoBins
	}
	if hi <= lo { // range below float64 resolution
		return Params{Center: lo, Width: 1, Function: LinearExact, Explanation: "AUTO"}
	}
	return Params{Center: (lo + hi) / 2, Width: hi - lo, Function: LinearExact, Explanation: "AUTO"}
}
