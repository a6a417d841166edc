package dicomnodetest

import (
	"encoding/binary"
	"fmt"
	"os"
	"sort"
)

// Image describes a synthetic single-frame, 16-bit MONOCHROME2 image.
type Image struct {
	SOPClassUID       string // default CR Image Storage
	SOPInstanceUID    string
	StudyInstanceUID  string
	SeriesInstanceUID string
	PatientID         string
	PatientName       string
	Rows, Columns     int // default 64 × 64
	// Seed varies the pixel pattern (deterministic).
	Seed int
}

type element struct {
	group, elem uint16
	vr          string
	value       []byte
}

func str(s string, pad byte) []byte {
	b := []byte(s)
	if len(b)%2 == 1 {
		b = append(b, pad)
	}
	return b
}

func u16(v int) []byte { return binary.LittleEndian.AppendUint16(nil, uint16(v)) }

// WriteImage writes img as a Part-10 file in Explicit VR Little Endian.
// The bytes depend only on img.
func WriteImage(path string, img Image) error {
	if img.SOPClassUID == "" {
		img.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
	}
	if img.Rows == 0 {
		img.Rows, img.Columns = 64, 64
	}
	if img.PatientID == "" {
		img.PatientID = "TEST0001"
	}
	if img.PatientName == "" {
		img.PatientName = "TEST^PATIENT"
	}
	if img.SOPInstanceUID == "" || img.StudyInstanceUID == "" || img.SeriesInstanceUID == "" {
		return fmt.Errorf("write image: UIDs required")
	}
	pixels := make([]byte, img.Rows*img.Columns*2)
	for y := 0; y < img.Rows; y++ {
		for x := 0; x < img.Columns; x++ {
			v := (x*7 + y*13 + img.Seed*31 + (x*y)%97) % 4096
			binary.LittleEndian.PutUint16(pixels[2*(y*img.Columns+x):], uint16(v))
		}
	}
	ds := []element{
		{0x0008, 0x0016, "UI", str(img.SOPClassUID, 0)},
		{0x0008, 0x0018, "UI", str(img.SOPInstanceUID, 0)},
		{0x0008, 0x0020, "DA", str("20240102", ' ')},
		{0x0008, 0x0030, "TM", str("101010", ' ')},
		{0x0008, 0x0050, "SH", str("ACC0001", ' ')},
		{0x0008, 0x0060, "CS", str("CR", ' ')},
		{0x0008, 0x0070, "LO", str("CSPINE TEST", ' ')},
		{0x0008, 0x0090, "PN", str("", ' ')},
		{0x0010, 0x0010, "PN", str(img.PatientName, ' ')},
		{0x0010, 0x0020, "LO", str(img.PatientID, ' ')},
		{0x0010, 0x0030, "DA", str("19700101", ' ')},
		{0x0010, 0x0040, "CS", str("O", ' ')},
		{0x0018, 0x0015, "CS", str("CSPINE", ' ')},
		{0x0018, 0x5101, "CS", str("LL", ' ')},
		{0x0020, 0x000D, "UI", str(img.StudyInstanceUID, 0)},
		{0x0020, 0x000E, "UI", str(img.SeriesInstanceUID, 0)},
		{0x0020, 0x0010, "SH", str("1", ' ')},
		{0x0020, 0x0011, "IS", str("1", ' ')},
		{0x0020, 0x0013, "IS", str(fmt.Sprint(img.Seed+1), ' ')},
		{0x0020, 0x0020, "CS", str(`A\F`, ' ')},
		{0x0028, 0x0002, "US", u16(1)},
		{0x0028, 0x0004, "CS", str("MONOCHROME2", ' ')},
		{0x0028, 0x0010, "US", u16(img.Rows)},
		{0x0028, 0x0011, "US", u16(img.Columns)},
		{0x0028, 0x0100, "US", u16(16)},
		{0x0028, 0x0101, "US", u16(12)},
		{0x0028, 0x0102, "US", u16(11)},
		{0x0028, 0x0103, "US", u16(0)},
		{0x7FE0, 0x0010, "OW", pixels},
	}
	sort.Slice(ds, func(i, j int) bool {
		return uint32(ds[i].group)<<16|uint32(ds[i].elem) < uint32(ds[j].group)<<16|uint32(ds[j].elem)
	})
	meta := []element{
		{0x0002, 0x0001, "OB", []byte{0, 1}},
		{0x0002, 0x0002, "UI", str(img.SOPClassUID, 0)},
		{0x0002, 0x0003, "UI", str(img.SOPInstanceUID, 0)},
		{0x0002, 0x0010, "UI", str("1.2.840.10008.1.2.1", 0)},
		{0x0002, 0x0012, "UI", str("1.2.826.0.1.3680043.10.1999", 0)},
	}
	var g []byte
	for _, e := range meta {
		g = appendElem(g, e)
	}
	out := make([]byte, 128, 128+len(g)+len(pixels)+2048)
	out = append(out, "DICM"...)
	out = appendElem(out, element{0x0002, 0x0000, "UL", binary.LittleEndian.AppendUint32(nil, uint32(len(g)))})
	out = append(out, g...)
	for _, e := range ds {
		out = appendElem(out, e)
	}
	return os.WriteFile(path, out, 0o644)
}

func appendElem(b []byte, e element) []byte {
	b = binary.LittleEndian.AppendUint16(b, e.group)
	b = binary.LittleEndian.AppendUint16(b, e.elem)
	b = append(b, e.vr...)
	switch e.vr {
	case "OB", "OW", "SQ", "UN", "UT":
		b = append(b, 0, 0)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e.value)))
	default:
		b = binary.LittleEndian.AppendUint16(b, uint16(len(e.value)))
	}
	return append(b, e.value...)
}

// WriteSeries writes n images of one study and series into dir, named
// img0000.dcm ..., with UIDs under root, and returns their paths.
func WriteSeries(dir, root string, n, rows, cols int) ([]string, error) {
	var paths []string
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("%s/img%04d.dcm", dir, i)
		err := WriteImage(p, Image{
			SOPInstanceUID: fmt.Sprintf("%s.3.%d", root, i+1), StudyInstanceUID: root + ".1",
			SeriesInstanceUID: root + ".2", Rows: rows, Columns: cols, Seed: i,
		})
		if err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}
