package phantom

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
	"os"
	"sort"
	"strconv"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// SOP classes and transfer syntaxes the phantom writes.
const (
	sopCR              = "1.2.840.10008.5.1.4.1.1.1"
	sopDXPresentation  = "1.2.840.10008.5.1.4.1.1.1.1"
	tsExplicitLE       = "1.2.840.10008.1.2.1"
	tsImplicitLE       = "1.2.840.10008.1.2"
	implementationUID  = "2.25.246601398546133375129405326787655290623"
	implementationName = "CSPINE_PHANTOM1"
)

// dsBuilder collects elements and writes them in ascending tag order, as
// PS3.5 requires (suyashkumar/dicom writes elements in the order given).
type dsBuilder struct {
	elems  []*dicom.Element
	err    error
	pixels []uint16 // native pixel data, written after the other elements
}

func (b *dsBuilder) add(t tag.Tag, v any) {
	if b.err != nil {
		return
	}
	e, err := dicom.NewElement(t, v)
	if err != nil {
		b.err = fmt.Errorf("element %v: %w", t, err)
		return
	}
	b.elems = append(b.elems, e)
}

func (b *dsBuilder) str(t tag.Tag, s ...string) { b.add(t, s) }

// lutDataOW adds LUT Data as OW: a US element's 16-bit length in explicit
// VR cannot hold more than 32767 entries, and DCMTK rejects the overflow.
func (b *dsBuilder) lutDataOW(v []int) {
	raw := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(raw[2*i:], uint16(x))
	}
	val, err := dicom.NewValue(raw)
	if err != nil {
		b.err = err
		return
	}
	b.elems = append(b.elems, &dicom.Element{Tag: tag.LUTData, ValueRepresentation: tag.VRBytes,
		RawValueRepresentation: "OW", Value: val})
}
func (b *dsBuilder) ints(t tag.Tag, v ...int) { b.add(t, v) }

func sortElems(es []*dicom.Element) {
	sort.SliceStable(es, func(i, j int) bool {
		a, c := es[i].Tag, es[j].Tag
		if a.Group != c.Group {
			return a.Group < c.Group
		}
		return a.Element < c.Element
	})
}

// seq adds a sequence whose items are built by the given builders.
func (b *dsBuilder) seq(t tag.Tag, items ...*dsBuilder) {
	var vals [][]*dicom.Element
	for _, it := range items {
		if it.err != nil && b.err == nil {
			b.err = it.err
		}
		sortElems(it.elems)
		vals = append(vals, it.elems)
	}
	if vals == nil {
		vals = [][]*dicom.Element{}
	}
	b.add(t, vals)
}

func (b *dsBuilder) writeFile(path string) error {
	if b.err != nil {
		return b.err
	}
	sortElems(b.elems)
	implicit := false
	for _, e := range b.elems {
		if e.Tag == tag.TransferSyntaxUID {
			if v, ok := e.Value.GetValue().([]string); ok && len(v) == 1 && v[0] == tsImplicitLE {
				implicit = true
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := dicom.Write(w, dicom.Dataset{Elements: b.elems}, dicom.SkipVRVerification()); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if b.pixels != nil {
		if err := writePixelData(w, b.pixels, implicit); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writePixelData writes native 16-bit (7FE0,0010) Pixel Data, OW little
// endian, in implicit or explicit VR (PS3.5 7.1.2 and 7.1.3), after every
// other element (it has the highest tag the phantom writes). The values go
// out through a small buffer: the library would first copy the whole value
// into a buffer of its own, which for a 2000×2500 image costs more than the
// rest of the file.
func writePixelData(w io.Writer, px []uint16, implicit bool) error {
	var h [12]byte
	binary.LittleEndian.PutUint16(h[0:], 0x7FE0)
	binary.LittleEndian.PutUint16(h[2:], 0x0010)
	n := 8
	if implicit {
		binary.LittleEndian.PutUint32(h[4:], uint32(2*len(px)))
	} else {
		copy(h[4:], "OW") // two reserved bytes stay zero
		binary.LittleEndian.PutUint32(h[8:], uint32(2*len(px)))
		n = 12
	}
	if _, err := w.Write(h[:n]); err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	for len(px) > 0 {
		k := min(len(px), len(buf)/2)
		for i, v := range px[:k] {
			binary.LittleEndian.PutUint16(buf[2*i:], v)
		}
		if _, err := w.Write(buf[:2*k]); err != nil {
			return err
		}
		px = px[k:]
	}
	return nil
}

// uidFor derives a deterministic UID under the 2.25 root (PS3.5 B.2) from a
// run's seed and a label: the same seed always gives the same UIDs.
func uidFor(seed uint64, label string) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("cspine-phantom/%d/%s", seed, label)))
	n := new(big.Int).SetBytes(h[:16])
	return "2.25." + n.String()
}

// ds formats a decimal string value (PS3.5 DS: at most 16 characters).
func ds(v float64) string {
	for prec := 6; prec >= 0; prec-- {
		s := strconv.FormatFloat(v, 'f', prec, 64)
		if len(s) <= 16 {
			// Trim trailing zeros for readability.
			for len(s) > 1 && s[len(s)-1] == '0' && containsDot(s) {
				s = s[:len(s)-1]
			}
			if s[len(s)-1] == '.' {
				s = s[:len(s)-1]
			}
			return s
		}
	}
	return strconv.FormatFloat(v, 'g', 10, 64)
}

func containsDot(s string) bool {
	for _, c := range s {
		if c == '.' {
			return true
		}
	}
	return false
}

// pixelData sets the native pixel data; px must stay untouched until the
// file is written.
func (b *dsBuilder) pixelData(px []uint16) { b.pixels = px }
