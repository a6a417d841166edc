// Package pdu encodes and decodes the protocol data units of the DICOM upper
// layer (PS3.8 §9.3): A-ASSOCIATE-RQ/AC/RJ, P-DATA-TF, A-RELEASE-RQ/RP and
// A-ABORT, with their items and user-information sub-items.
//
// The package is pure: it only turns bytes into values and back. Read never
// panics on hostile input; every length is checked against what is left of
// the enclosing PDU or item.
package pdu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Type is the PDU-type field (PS3.8 Table 9-1).
type Type byte

// PDU types.
const (
	TypeAssociateRQ Type = 0x01
	TypeAssociateAC Type = 0x02
	TypeAssociateRJ Type = 0x03
	TypePDataTF     Type = 0x04
	TypeReleaseRQ   Type = 0x05
	TypeReleaseRP   Type = 0x06
	TypeAbort       Type = 0x07
)

func (t Type) String() string {
	switch t {
	case TypeAssociateRQ:
		return "A-ASSOCIATE-RQ"
	case TypeAssociateAC:
		return "A-ASSOCIATE-AC"
	case TypeAssociateRJ:
		return "A-ASSOCIATE-RJ"
	case TypePDataTF:
		return "P-DATA-TF"
	case TypeReleaseRQ:
		return "A-RELEASE-RQ"
	case TypeReleaseRP:
		return "A-RELEASE-RP"
	case TypeAbort:
		return "A-ABORT"
	}
	return fmt.Sprintf("PDU-type 0x%02x", byte(t))
}

// HeaderLen is the length of the fixed PDU header: type, reserved, length.
const HeaderLen = 6

// Sentinel errors.
var (
	// ErrUnknownType is returned by Read for a PDU type outside Table 9-1
	// (PS3.8 §9.2, event Evt19: the connection is aborted).
	ErrUnknownType = errors.New("pdu: unrecognized PDU type")
	// ErrTooLarge is returned when a PDU is longer than the limit given to Read.
	ErrTooLarge = errors.New("pdu: PDU longer than the negotiated maximum")
	// ErrMalformed is returned when a PDU's fields contradict its length.
	ErrMalformed = errors.New("pdu: malformed PDU")
)

// PDU is one of *AssociateRQ, *AssociateAC, *AssociateRJ, *PDataTF,
// *ReleaseRQ, *ReleaseRP, *Abort.
type PDU interface {
	Type() Type
	// encodeBody appends the PDU body (everything after the 6-byte header).
	encodeBody(b []byte) ([]byte, error)
}

// Encode returns the wire bytes of p, header included.
func Encode(p PDU) ([]byte, error) {
	b := make([]byte, HeaderLen, 256)
	b, err := p.encodeBody(b)
	if err != nil {
		return nil, fmt.Errorf("encode %v: %w", p.Type(), err)
	}
	n := len(b) - HeaderLen
	if uint64(n) > 0xFFFFFFFF {
		return nil, fmt.Errorf("encode %v: body of %d bytes: %w", p.Type(), n, ErrTooLarge)
	}
	b[0] = byte(p.Type())
	b[1] = 0
	binary.BigEndian.PutUint32(b[2:6], uint32(n))
	return b, nil
}

// Write encodes p and writes it to w in a single Write call.
func Write(w io.Writer, p PDU) error {
	b, err := Encode(p)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write %v: %w", p.Type(), err)
	}
	return nil
}

// ReadHeader reads the 6-byte PDU header.
func ReadHeader(r io.Reader) (Type, uint32, error) {
	var h [HeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, 0, err
	}
	return Type(h[0]), binary.BigEndian.Uint32(h[2:6]), nil
}

// Read reads one whole PDU from r. A PDU whose body is longer than maxLen
// bytes is refused with ErrTooLarge before its body is read; maxLen 0 means no
// limit (only sensible for trusted input). For P-DATA-TF the limit is the
// Maximum Length we announced; for the other PDUs callers pass a fixed bound.
func Read(r io.Reader, maxLen uint32) (PDU, error) {
	t, n, err := ReadHeader(r)
	if err != nil {
		return nil, err
	}
	if maxLen != 0 && n > maxLen {
		return nil, fmt.Errorf("%v of %d bytes, limit %d: %w", t, n, maxLen, ErrTooLarge)
	}
	switch t {
	case TypeAssociateRQ, TypeAssociateAC, TypeAssociateRJ, TypePDataTF,
		TypeReleaseRQ, TypeReleaseRP, TypeAbort:
	default:
		return nil, fmt.Errorf("%v: %w", t, ErrUnknownType)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read %v body of %d bytes: %w", t, n, err)
	}
	return Decode(t, body)
}

// Decode decodes the body of a PDU of type t.
func Decode(t Type, body []byte) (PDU, error) {
	var (
		p   PDU
		err error
	)
	switch t {
	case TypeAssociateRQ:
		var a AssociateRQ
		err = a.decode(body)
		p = &a
	case TypeAssociateAC:
		var a AssociateAC
		err = a.decode(body)
		p = &a
	case TypeAssociateRJ:
		var a AssociateRJ
		err = a.decode(body)
		p = &a
	case TypePDataTF:
		var a PDataTF
		err = a.decode(body)
		p = &a
	case TypeReleaseRQ:
		err = checkFixed(body, 4)
		p = &ReleaseRQ{}
	case TypeReleaseRP:
		err = checkFixed(body, 4)
		p = &ReleaseRP{}
	case TypeAbort:
		var a Abort
		err = a.decode(body)
		p = &a
	default:
		return nil, fmt.Errorf("%v: %w", t, ErrUnknownType)
	}
	if err != nil {
		return nil, fmt.Errorf("decode %v: %w", t, err)
	}
	return p, nil
}

func checkFixed(body []byte, n int) error {
	if len(body) != n {
		return fmt.Errorf("body of %d bytes, want %d: %w", len(body), n, ErrMalformed)
	}
	return nil
}

// ReleaseRQ is the A-RELEASE-RQ PDU (PS3.8 Table 9-24).
type ReleaseRQ struct{}

// Type implements PDU.
func (*ReleaseRQ) Type() Type { return TypeReleaseRQ }

func (*ReleaseRQ) encodeBody(b []byte) ([]byte, error) { return append(b, 0, 0, 0, 0), nil }

// ReleaseRP is the A-RELEASE-RP PDU (PS3.8 Table 9-25).
type ReleaseRP struct{}

// Type implements PDU.
func (*ReleaseRP) Type() Type { return TypeReleaseRP }

func (*ReleaseRP) encodeBody(b []byte) ([]byte, error) { return append(b, 0, 0, 0, 0), nil }

// Abort sources (PS3.8 Table 9-26).
const (
	AbortSourceServiceUser     byte = 0
	AbortSourceServiceProvider byte = 2
)

// Abort reasons when the source is the service provider (PS3.8 Table 9-26).
const (
	AbortReasonNotSpecified          byte = 0
	AbortReasonUnrecognizedPDU       byte = 1
	AbortReasonUnexpectedPDU         byte = 2
	AbortReasonUnrecognizedParameter byte = 4
	AbortReasonUnexpectedParameter   byte = 5
	AbortReasonInvalidParameterValue byte = 6
)

// Abort is the A-ABORT PDU (PS3.8 Table 9-26).
type Abort struct {
	Source byte
	Reason byte
}

// Type implements PDU.
func (*Abort) Type() Type { return TypeAbort }

func (a *Abort) encodeBody(b []byte) ([]byte, error) {
	return append(b, 0, 0, a.Source, a.Reason), nil
}

func (a *Abort) decode(body []byte) error {
	if err := checkFixed(body, 4); err != nil {
		return err
	}
	a.Source, a.Reason = body[2], body[3]
	return nil
}

func (a *Abort) String() string {
	return fmt.Sprintf("A-ABORT source=%d reason=%d", a.Source, a.Reason)
}

// Rejection results, sources and reasons (PS3.8 Table 9-21).
const (
	RejectResultPermanent byte = 1
	RejectResultTransient byte = 2

	RejectSourceUser                 byte = 1 // DICOM UL service-user
	RejectSourceProviderACSE         byte = 2 // DICOM UL service-provider (ACSE related function)
	RejectSourceProviderPresentation byte = 3 // DICOM UL service-provider (Presentation related function)

	// Source 1 reasons.
	RejectReasonNoReason               byte = 1
	RejectReasonAppContextNotSupported byte = 2
	RejectReasonCallingAENotRecognized byte = 3
	RejectReasonCalledAENotRecognized  byte = 7
	// Source 2 reasons.
	RejectReasonProtocolVersionNotSupported byte = 2
	// Source 3 reasons.
	RejectReasonTemporaryCongestion byte = 1
	RejectReasonLocalLimitExceeded  byte = 2
)

// AssociateRJ is the A-ASSOCIATE-RJ PDU (PS3.8 Table 9-21).
type AssociateRJ struct {
	Result byte
	Source byte
	Reason byte
}

// Type implements PDU.
func (*AssociateRJ) Type() Type { return TypeAssociateRJ }

func (a *AssociateRJ) encodeBody(b []byte) ([]byte, error) {
	return append(b, 0, a.Result, a.Source, a.Reason), nil
}

func (a *AssociateRJ) decode(body []byte) error {
	if err := checkFixed(body, 4); err != nil {
		return err
	}
	a.Result, a.Source, a.Reason = body[1], body[2], body[3]
	return nil
}

// Error lets a rejection be returned as an error by requestors.
func (a *AssociateRJ) Error() string {
	return fmt.Sprintf("association rejected: result=%d source=%d reason=%d", a.Result, a.Source, a.Reason)
}
