package pdu

import (
	"encoding/binary"
	"fmt"
)

// Message Control Header bits of a PDV (PS3.8 Annex E.2).
const (
	PDVCommand byte = 0x01 // set: command information; clear: data set
	PDVLast    byte = 0x02 // set: last fragment of the command or data set
)

// PDV is one Presentation Data Value item (PS3.8 Table 9-23).
type PDV struct {
	ContextID byte
	Control   byte
	Data      []byte
}

// IsCommand reports whether the PDV carries command information.
func (p PDV) IsCommand() bool { return p.Control&PDVCommand != 0 }

// IsLast reports whether the PDV is the last fragment of its message part.
func (p PDV) IsLast() bool { return p.Control&PDVLast != 0 }

// PDVHeaderLen is the overhead of one PDV item: length(4), context ID(1), control(1).
const PDVHeaderLen = 6

// PDataTF is the P-DATA-TF PDU (PS3.8 Table 9-22).
type PDataTF struct {
	Items []PDV
}

// Type implements PDU.
func (*PDataTF) Type() Type { return TypePDataTF }

func (p *PDataTF) encodeBody(b []byte) ([]byte, error) {
	for _, v := range p.Items {
		if uint64(len(v.Data))+2 > 0xFFFFFFFF {
			return nil, fmt.Errorf("PDV of %d bytes: %w", len(v.Data), ErrTooLarge)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(v.Data)+2))
		b = append(b, v.ContextID, v.Control)
		b = append(b, v.Data...)
	}
	return b, nil
}

func (p *PDataTF) decode(body []byte) error {
	c := &cursor{b: body}
	if c.left() == 0 {
		return fmt.Errorf("no PDV items: %w", ErrMalformed)
	}
	for c.left() > 0 {
		h, err := c.bytes(4)
		if err != nil {
			return fmt.Errorf("PDV length: %w", err)
		}
		n := binary.BigEndian.Uint32(h)
		if n < 2 || uint64(n) > uint64(c.left()) {
			return fmt.Errorf("PDV item length %d with %d bytes left: %w", n, c.left(), ErrMalformed)
		}
		v, _ := c.bytes(int(n))
		p.Items = append(p.Items, PDV{ContextID: v[0], Control: v[1], Data: v[2:]})
	}
	return nil
}

// AppendPDataHeader appends the headers of a P-DATA-TF PDU holding exactly
// one PDV of dataLen bytes; the caller writes the data after it. This lets a
// sender stream a large data fragment without copying it into a PDU buffer.
func AppendPDataHeader(b []byte, contextID, control byte, dataLen int) []byte {
	b = append(b, byte(TypePDataTF), 0)
	b = binary.BigEndian.AppendUint32(b, uint32(dataLen+PDVHeaderLen))
	b = binary.BigEndian.AppendUint32(b, uint32(dataLen+2))
	return append(b, contextID, control)
}
