package pdu

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Item types (PS3.8 Tables 9-12 ... 9-18, D.3).
const (
	ItemApplicationContext                byte = 0x10
	ItemPresentationContextRQ             byte = 0x20
	ItemPresentationContextAC             byte = 0x21
	ItemAbstractSyntax                    byte = 0x30
	ItemTransferSyntax                    byte = 0x40
	ItemUserInformation                   byte = 0x50
	ItemMaxLength                         byte = 0x51
	ItemImplementationClassUID            byte = 0x52
	ItemAsyncOperationsWindow             byte = 0x53
	ItemRoleSelection                     byte = 0x54
	ItemImplementationVersionName         byte = 0x55
	ItemSOPClassExtendedNegotiation       byte = 0x56
	ItemSOPClassCommonExtendedNegotiation byte = 0x57
	ItemUserIdentityRQ                    byte = 0x58
	ItemUserIdentityAC                    byte = 0x59
)

// ApplicationContextName is the DICOM Application Context Name (PS3.7 Annex A).
const ApplicationContextName = "1.2.840.10008.3.1.1.1"

// ProtocolVersion is the only upper-layer protocol version (bit 0 set).
const ProtocolVersion uint16 = 0x0001

// PresentationContextRQ is a Presentation Context Item of an
// A-ASSOCIATE-RQ (PS3.8 Table 9-13).
type PresentationContextRQ struct {
	ID               byte
	AbstractSyntax   string
	TransferSyntaxes []string
}

// Presentation context results (PS3.8 Table 9-18).
const (
	ResultAcceptance                   byte = 0
	ResultUserRejection                byte = 1
	ResultNoReason                     byte = 2
	ResultAbstractSyntaxNotSupported   byte = 3
	ResultTransferSyntaxesNotSupported byte = 4
)

// PresentationContextAC is a Presentation Context Item of an
// A-ASSOCIATE-AC (PS3.8 Table 9-18). TransferSyntax is only significant when
// Result is ResultAcceptance.
type PresentationContextAC struct {
	ID             byte
	Result         byte
	TransferSyntax string
}

// AssociateRQ is the A-ASSOCIATE-RQ PDU (PS3.8 Table 9-11).
type AssociateRQ struct {
	ProtocolVersion      uint16
	CalledAETitle        string
	CallingAETitle       string
	ApplicationContext   string
	PresentationContexts []PresentationContextRQ
	UserInformation      UserInformation
}

// AssociateAC is the A-ASSOCIATE-AC PDU (PS3.8 Table 9-17). The AE titles
// are returned as received in the request (they are "not tested").
type AssociateAC struct {
	ProtocolVersion      uint16
	CalledAETitle        string
	CallingAETitle       string
	ApplicationContext   string
	PresentationContexts []PresentationContextAC
	UserInformation      UserInformation
}

// Type implements PDU.
func (*AssociateRQ) Type() Type { return TypeAssociateRQ }

// Type implements PDU.
func (*AssociateAC) Type() Type { return TypeAssociateAC }

func appendAE(b []byte, ae string) ([]byte, error) {
	if len(ae) > 16 {
		return nil, fmt.Errorf("AE title %q longer than 16 bytes: %w", ae, ErrMalformed)
	}
	b = append(b, ae...)
	for i := len(ae); i < 16; i++ {
		b = append(b, ' ')
	}
	return b, nil
}

func appendAssocHeader(b []byte, version uint16, called, calling string) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, version)
	b = append(b, 0, 0)
	var err error
	if b, err = appendAE(b, called); err != nil {
		return nil, err
	}
	if b, err = appendAE(b, calling); err != nil {
		return nil, err
	}
	return append(b, make([]byte, 32)...), nil
}

func appendItem(b []byte, typ byte, value []byte) ([]byte, error) {
	if len(value) > 0xFFFF {
		return nil, fmt.Errorf("item 0x%02x of %d bytes: %w", typ, len(value), ErrTooLarge)
	}
	b = append(b, typ, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(value)))
	return append(b, value...), nil
}

// appendNested appends an item whose body is produced by fn.
func appendNested(b []byte, typ byte, fn func([]byte) ([]byte, error)) ([]byte, error) {
	start := len(b)
	b = append(b, typ, 0, 0, 0)
	b, err := fn(b)
	if err != nil {
		return nil, err
	}
	n := len(b) - start - 4
	if n > 0xFFFF {
		return nil, fmt.Errorf("item 0x%02x of %d bytes: %w", typ, n, ErrTooLarge)
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(n))
	return b, nil
}

func (a *AssociateRQ) encodeBody(b []byte) ([]byte, error) {
	b, err := appendAssocHeader(b, a.ProtocolVersion, a.CalledAETitle, a.CallingAETitle)
	if err != nil {
		return nil, err
	}
	if b, err = appendItem(b, ItemApplicationContext, []byte(a.ApplicationContext)); err != nil {
		return nil, err
	}
	for _, pc := range a.PresentationContexts {
		b, err = appendNested(b, ItemPresentationContextRQ, func(b []byte) ([]byte, error) {
			b = append(b, pc.ID, 0, 0, 0)
			b, err := appendItem(b, ItemAbstractSyntax, []byte(pc.AbstractSyntax))
			if err != nil {
				return nil, err
			}
			for _, ts := range pc.TransferSyntaxes {
				if b, err = appendItem(b, ItemTransferSyntax, []byte(ts)); err != nil {
					return nil, err
				}
			}
			return b, nil
		})
		if err != nil {
			return nil, fmt.Errorf("presentation context %d: %w", pc.ID, err)
		}
	}
	return a.UserInformation.append(b)
}

func (a *AssociateAC) encodeBody(b []byte) ([]byte, error) {
	b, err := appendAssocHeader(b, a.ProtocolVersion, a.CalledAETitle, a.CallingAETitle)
	if err != nil {
		return nil, err
	}
	if b, err = appendItem(b, ItemApplicationContext, []byte(a.ApplicationContext)); err != nil {
		return nil, err
	}
	for _, pc := range a.PresentationContexts {
		b, err = appendNested(b, ItemPresentationContextAC, func(b []byte) ([]byte, error) {
			b = append(b, pc.ID, 0, pc.Result, 0)
			return appendItem(b, ItemTransferSyntax, []byte(pc.TransferSyntax))
		})
		if err != nil {
			return nil, fmt.Errorf("presentation context %d: %w", pc.ID, err)
		}
	}
	return a.UserInformation.append(b)
}

// cursor walks a byte slice; every read is bounds-checked.
type cursor struct {
	b   []byte
	off int
}

func (c *cursor) left() int { return len(c.b) - c.off }

func (c *cursor) bytes(n int) ([]byte, error) {
	if n < 0 || n > c.left() {
		return nil, fmt.Errorf("need %d bytes at offset %d, have %d: %w", n, c.off, c.left(), ErrMalformed)
	}
	v := c.b[c.off : c.off+n]
	c.off += n
	return v, nil
}

func (c *cursor) u8() (byte, error) {
	v, err := c.bytes(1)
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

func (c *cursor) u16() (uint16, error) {
	v, err := c.bytes(2)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint16(v), nil
}

// item reads an item header (type, reserved, 2-byte length) and its value.
func (c *cursor) item() (byte, []byte, error) {
	h, err := c.bytes(4)
	if err != nil {
		return 0, nil, fmt.Errorf("item header: %w", err)
	}
	n := int(binary.BigEndian.Uint16(h[2:]))
	v, err := c.bytes(n)
	if err != nil {
		return 0, nil, fmt.Errorf("item 0x%02x value: %w", h[0], err)
	}
	return h[0], v, nil
}

// trimUID removes the trailing NUL or space padding some peers add to UIDs.
func trimUID(b []byte) string { return strings.TrimRight(string(b), "\x00 ") }

// trimAE removes the leading and trailing spaces of an AE title field
// (leading and trailing spaces are not significant, PS3.5 §6.2).
func trimAE(b []byte) string { return strings.Trim(string(b), " \x00") }

type assocHeader struct {
	version         uint16
	called, calling string
}

func decodeAssocHeader(c *cursor) (assocHeader, error) {
	var h assocHeader
	fixed, err := c.bytes(68)
	if err != nil {
		return h, fmt.Errorf("fixed fields: %w", err)
	}
	h.version = binary.BigEndian.Uint16(fixed[0:2])
	h.called = trimAE(fixed[4:20])
	h.calling = trimAE(fixed[20:36])
	return h, nil
}

func (a *AssociateRQ) decode(body []byte) error {
	c := &cursor{b: body}
	h, err := decodeAssocHeader(c)
	if err != nil {
		return err
	}
	a.ProtocolVersion, a.CalledAETitle, a.CallingAETitle = h.version, h.called, h.calling
	for c.left() > 0 {
		typ, v, err := c.item()
		if err != nil {
			return err
		}
		switch typ {
		case ItemApplicationContext:
			a.ApplicationContext = trimUID(v)
		case ItemPresentationContextRQ:
			pc, err := decodePresentationContextRQ(v)
			if err != nil {
				return err
			}
			a.PresentationContexts = append(a.PresentationContexts, pc)
		case ItemUserInformation:
			if err := a.UserInformation.decode(v); err != nil {
				return err
			}
		default:
			// PS3.8 §9.3.1: items of unrecognized type are ignored.
		}
	}
	return nil
}

func decodePresentationContextRQ(v []byte) (PresentationContextRQ, error) {
	var pc PresentationContextRQ
	c := &cursor{b: v}
	fixed, err := c.bytes(4)
	if err != nil {
		return pc, fmt.Errorf("presentation context item: %w", err)
	}
	pc.ID = fixed[0]
	for c.left() > 0 {
		typ, sv, err := c.item()
		if err != nil {
			return pc, fmt.Errorf("presentation context %d: %w", pc.ID, err)
		}
		switch typ {
		case ItemAbstractSyntax:
			pc.AbstractSyntax = trimUID(sv)
		case ItemTransferSyntax:
			pc.TransferSyntaxes = append(pc.TransferSyntaxes, trimUID(sv))
		}
	}
	return pc, nil
}

func (a *AssociateAC) decode(body []byte) error {
	c := &cursor{b: body}
	h, err := decodeAssocHeader(c)
	if err != nil {
		return err
	}
	a.ProtocolVersion, a.CalledAETitle, a.CallingAETitle = h.version, h.called, h.calling
	for c.left() > 0 {
		typ, v, err := c.item()
		if err != nil {
			return err
		}
		switch typ {
		case ItemApplicationContext:
			a.ApplicationContext = trimUID(v)
		case ItemPresentationContextAC:
			pc, err := decodePresentationContextAC(v)
			if err != nil {
				return err
			}
			a.PresentationContexts = append(a.PresentationContexts, pc)
		case ItemUserInformation:
			if err := a.UserInformation.decode(v); err != nil {
				return err
			}
		}
	}
	return nil
}

func decodePresentationContextAC(v []byte) (PresentationContextAC, error) {
	var pc PresentationContextAC
	c := &cursor{b: v}
	fixed, err := c.bytes(4)
	if err != nil {
		return pc, fmt.Errorf("presentation context item: %w", err)
	}
	pc.ID, pc.Result = fixed[0], fixed[2]
	for c.left() > 0 {
		typ, sv, err := c.item()
		if err != nil {
			return pc, fmt.Errorf("presentation context %d: %w", pc.ID, err)
		}
		if typ == ItemTransferSyntax {
			pc.TransferSyntax = trimUID(sv)
		}
	}
	return pc, nil
}
