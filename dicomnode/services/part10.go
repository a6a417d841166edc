package services

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// FileMeta is the File Meta Information of a Part-10 file (PS3.10 §7.1).
type FileMeta struct {
	MediaStorageSOPClassUID    string // (0002,0002)
	MediaStorageSOPInstanceUID string // (0002,0003)
	TransferSyntaxUID          string // (0002,0010)
	ImplementationClassUID     string // (0002,0012)
	ImplementationVersionName  string // (0002,0013)
	SourceAETitle              string // (0002,0016)
}

// ErrNotPart10 is returned for input without the "DICM" prefix.
var ErrNotPart10 = errors.New("not a DICOM Part-10 file")

func appendMetaElem(b []byte, elem uint16, vr string, v []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, 0x0002)
	b = binary.LittleEndian.AppendUint16(b, elem)
	b = append(b, vr...)
	if vr == "OB" {
		b = append(b, 0, 0)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
	} else {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
	}
	return append(b, v...)
}

func padded(s string, pad byte) []byte {
	b := []byte(s)
	if len(b)%2 == 1 {
		b = append(b, pad)
	}
	return b
}

// EncodeFileMeta returns the 128-byte preamble, "DICM" and the File Meta
// Information group, Explicit VR Little Endian.
func EncodeFileMeta(m FileMeta) []byte {
	var g []byte
	g = appendMetaElem(g, 0x0001, "OB", []byte{0, 1})
	g = appendMetaElem(g, 0x0002, "UI", padded(m.MediaStorageSOPClassUID, 0))
	g = appendMetaElem(g, 0x0003, "UI", padded(m.MediaStorageSOPInstanceUID, 0))
	g = appendMetaElem(g, 0x0010, "UI", padded(m.TransferSyntaxUID, 0))
	g = appendMetaElem(g, 0x0012, "UI", padded(m.ImplementationClassUID, 0))
	if m.ImplementationVersionName != "" {
		g = appendMetaElem(g, 0x0013, "SH", padded(m.ImplementationVersionName, ' '))
	}
	if m.SourceAETitle != "" {
		g = appendMetaElem(g, 0x0016, "AE", padded(m.SourceAETitle, ' '))
	}
	out := make([]byte, 128, 128+4+12+len(g))
	out = append(out, "DICM"...)
	out = appendMetaElem(out, 0x0000, "UL", binary.LittleEndian.AppendUint32(nil, uint32(len(g))))
	return append(out, g...)
}

// ReadFileMeta reads the preamble and File Meta Information from r, leaving
// r at the first byte of the data set. It returns the meta and the number
// of bytes consumed.
func ReadFileMeta(r *bufio.Reader) (FileMeta, int64, error) {
	var m FileMeta
	head := make([]byte, 132)
	if _, err := io.ReadFull(r, head); err != nil {
		return m, 0, fmt.Errorf("read preamble: %w", err)
	}
	if string(head[128:]) != "DICM" {
		return m, 0, ErrNotPart10
	}
	n := int64(132)
	for {
		peek, err := r.Peek(2)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return m, n, fmt.Errorf("read file meta: %w", err)
		}
		if binary.LittleEndian.Uint16(peek) != 0x0002 {
			break
		}
		h := make([]byte, 8)
		if _, err := io.ReadFull(r, h); err != nil {
			return m, n, fmt.Errorf("read file meta element: %w", err)
		}
		n += 8
		elem := binary.LittleEndian.Uint16(h[2:])
		vr := string(h[4:6])
		var vl uint32
		switch vr {
		case "OB", "OW", "OF", "SQ", "UT", "UN":
			var l [4]byte
			if _, err := io.ReadFull(r, l[:]); err != nil {
				return m, n, fmt.Errorf("read file meta element: %w", err)
			}
			n += 4
			vl = binary.LittleEndian.Uint32(l[:])
		default:
			vl = uint32(binary.LittleEndian.Uint16(h[6:]))
		}
		if vl > 1<<16 {
			return m, n, fmt.Errorf("file meta element (0002,%04x) of %d bytes: %w", elem, vl, ErrNotPart10)
		}
		v := make([]byte, vl)
		if _, err := io.ReadFull(r, v); err != nil {
			return m, n, fmt.Errorf("read file meta element (0002,%04x): %w", elem, err)
		}
		n += int64(vl)
		s := strings.TrimRight(string(v), "\x00 ")
		switch elem {
		case 0x0002:
			m.MediaStorageSOPClassUID = s
		case 0x0003:
			m.MediaStorageSOPInstanceUID = s
		case 0x0010:
			m.TransferSyntaxUID = s
		case 0x0012:
			m.ImplementationClassUID = s
		case 0x0013:
			m.ImplementationVersionName = s
		case 0x0016:
			m.SourceAETitle = s
		}
	}
	if m.TransferSyntaxUID == "" || m.MediaStorageSOPClassUID == "" || m.MediaStorageSOPInstanceUID == "" {
		return m, n, fmt.Errorf("file meta lacks transfer syntax, SOP class or SOP instance UID: %w", ErrNotPart10)
	}
	return m, n, nil
}
