// Package dimse implements the DIMSE message exchange of PS3.7: command sets
// (group 0000, always Implicit VR Little Endian, §6.3.1 and §9.3), their
// fragmentation into PDVs and reassembly, and the status codes of Annex C.
//
// A message is a command set optionally followed by a data set. The command
// set is small and decoded into a Command; the data set is never held in
// memory here: Reader hands it out as an io.Reader over the incoming PDVs,
// and WriteMessage streams it from an io.Reader.
package dimse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// CommandField is the value of (0000,0100) (PS3.7 Annex E).
type CommandField uint16

// Command fields of the DIMSE-C services.
const (
	CStoreRQ  CommandField = 0x0001
	CStoreRSP CommandField = 0x8001
	CGetRQ    CommandField = 0x0010
	CGetRSP   CommandField = 0x8010
	CFindRQ   CommandField = 0x0020
	CFindRSP  CommandField = 0x8020
	CMoveRQ   CommandField = 0x0021
	CMoveRSP  CommandField = 0x8021
	CEchoRQ   CommandField = 0x0030
	CEchoRSP  CommandField = 0x8030
	CCancelRQ CommandField = 0x0FFF
)

func (c CommandField) String() string {
	switch c {
	case CStoreRQ:
		return "C-STORE-RQ"
	case CStoreRSP:
		return "C-STORE-RSP"
	case CGetRQ:
		return "C-GET-RQ"
	case CGetRSP:
		return "C-GET-RSP"
	case CFindRQ:
		return "C-FIND-RQ"
	case CFindRSP:
		return "C-FIND-RSP"
	case CMoveRQ:
		return "C-MOVE-RQ"
	case CMoveRSP:
		return "C-MOVE-RSP"
	case CEchoRQ:
		return "C-ECHO-RQ"
	case CEchoRSP:
		return "C-ECHO-RSP"
	case CCancelRQ:
		return "C-CANCEL-RQ"
	}
	return fmt.Sprintf("command 0x%04x", uint16(c))
}

// IsResponse reports whether c is a response command field.
func (c CommandField) IsResponse() bool { return c&0x8000 != 0 }

// Priorities (0000,0700).
const (
	PriorityMedium uint16 = 0x0000
	PriorityHigh   uint16 = 0x0001
	PriorityLow    uint16 = 0x0002
)

// NoDataSet is the Command Data Set Type value meaning "no data set";
// any other value means a data set follows (PS3.7 §9.3.1).
const NoDataSet uint16 = 0x0101

// HasDataSet is the value we write when a data set follows.
const HasDataSet uint16 = 0x0000

// Command is a decoded command set. Only the elements of PS3.7 §9.3 and
// §10.3 used by the DIMSE-C services are represented; others are ignored on
// decode.
type Command struct {
	CommandField              CommandField
	AffectedSOPClassUID       string // (0000,0002)
	RequestedSOPClassUID      string // (0000,0003)
	MessageID                 uint16 // (0000,0110)
	MessageIDBeingRespondedTo uint16 // (0000,0120)
	MoveDestination           string // (0000,0600)
	Priority                  uint16 // (0000,0700)
	CommandDataSetType        uint16 // (0000,0800)
	Status                    Status // (0000,0900)
	OffendingElements         []uint32
	ErrorComment              string // (0000,0902)
	ErrorID                   uint16 // (0000,0903)
	AffectedSOPInstanceUID    string // (0000,1000)
	RequestedSOPInstanceUID   string // (0000,1001)
	// Sub-operation counters of C-MOVE/C-GET responses; nil when absent.
	Remaining, Completed, Failed, Warning *uint16
	MoveOriginatorAETitle                 string // (0000,1030)
	MoveOriginatorMessageID               uint16 // (0000,1031)
}

// HasDataSet reports whether a data set follows the command.
func (c *Command) HasDataSet() bool { return c.CommandDataSetType != NoDataSet }

// Command set element tags (element numbers of group 0000).
const (
	tagGroupLength               = 0x0000
	tagAffectedSOPClassUID       = 0x0002
	tagRequestedSOPClassUID      = 0x0003
	tagCommandField              = 0x0100
	tagMessageID                 = 0x0110
	tagMessageIDBeingRespondedTo = 0x0120
	tagMoveDestination           = 0x0600
	tagPriority                  = 0x0700
	tagCommandDataSetType        = 0x0800
	tagStatus                    = 0x0900
	tagOffendingElement          = 0x0901
	tagErrorComment              = 0x0902
	tagErrorID                   = 0x0903
	tagAffectedSOPInstanceUID    = 0x1000
	tagRequestedSOPInstanceUID   = 0x1001
	tagRemaining                 = 0x1020
	tagCompleted                 = 0x1021
	tagFailed                    = 0x1022
	tagWarning                   = 0x1023
	tagMoveOriginatorAETitle     = 0x1030
	tagMoveOriginatorMessageID   = 0x1031
)

// ErrMalformedCommand is returned for a command set that cannot be decoded.
var ErrMalformedCommand = errors.New("dimse: malformed command set")

// elements lists, per command field, the elements written in order
// (PS3.7 Tables 9.3-1 ... 9.3-12, 9.3-15). Elements marked optional are
// written only when set.
type elem struct {
	tag      uint16
	optional bool
}

var commandElements = map[CommandField][]elem{
	CStoreRQ: {{tagAffectedSOPClassUID, false}, {tagCommandField, false}, {tagMessageID, false},
		{tagPriority, false}, {tagCommandDataSetType, false}, {tagAffectedSOPInstanceUID, false},
		{tagMoveOriginatorAETitle, true}, {tagMoveOriginatorMessageID, true}},
	CStoreRSP: {{tagAffectedSOPClassUID, true}, {tagCommandField, false}, {tagMessageIDBeingRespondedTo, false},
		{tagCommandDataSetType, false}, {tagStatus, false}, {tagOffendingElement, true}, {tagErrorComment, true},
		{tagAffectedSOPInstanceUID, true}},
	CEchoRQ:  {{tagAffectedSOPClassUID, false}, {tagCommandField, false}, {tagMessageID, false}, {tagCommandDataSetType, false}},
	CEchoRSP: {{tagAffectedSOPClassUID, true}, {tagCommandField, false}, {tagMessageIDBeingRespondedTo, false}, {tagCommandDataSetType, false}, {tagStatus, false}, {tagErrorComment, true}},
	CFindRQ: {{tagAffectedSOPClassUID, false}, {tagCommandField, false}, {tagMessageID, false},
		{tagPriority, false}, {tagCommandDataSetType, false}},
	CFindRSP: {{tagAffectedSOPClassUID, true}, {tagCommandField, false}, {tagMessageIDBeingRespondedTo, false},
		{tagCommandDataSetType, false}, {tagStatus, false}, {tagOffendingElement, true}, {tagErrorComment, true}},
	CMoveRQ: {{tagAffectedSOPClassUID, false}, {tagCommandField, false}, {tagMessageID, false},
		{tagMoveDestination, false}, {tagPriority, false}, {tagCommandDataSetType, false}},
	CMoveRSP: {{tagAffectedSOPClassUID, true}, {tagCommandField, false}, {tagMessageIDBeingRespondedTo, false},
		{tagCommandDataSetType, false}, {tagStatus, false}, {tagOffendingElement, true}, {tagErrorComment, true},
		{tagRemaining, true}, {tagCompleted, true}, {tagFailed, true}, {tagWarning, true}},
	CGetRQ: {{tagAffectedSOPClassUID, false}, {tagCommandField, false}, {tagMessageID, false},
		{tagPriority, false}, {tagCommandDataSetType, false}},
	CGetRSP: {{tagAffectedSOPClassUID, true}, {tagCommandField, false}, {tagMessageIDBeingRespondedTo, false},
		{tagCommandDataSetType, false}, {tagStatus, false}, {tagOffendingElement, true}, {tagErrorComment, true},
		{tagRemaining, true}, {tagCompleted, true}, {tagFailed, true}, {tagWarning, true}},
	CCancelRQ: {{tagCommandField, false}, {tagMessageIDBeingRespondedTo, false}, {tagCommandDataSetType, false}},
}

func padUID(s string) []byte {
	b := []byte(s)
	if len(b)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

func padText(s string) []byte {
	b := []byte(s)
	if len(b)%2 == 1 {
		b = append(b, ' ')
	}
	return b
}

func us(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }

// value returns the encoded value of element tag and whether it is set.
func (c *Command) value(tag uint16) ([]byte, bool) {
	switch tag {
	case tagAffectedSOPClassUID:
		return padUID(c.AffectedSOPClassUID), c.AffectedSOPClassUID != ""
	case tagRequestedSOPClassUID:
		return padUID(c.RequestedSOPClassUID), c.RequestedSOPClassUID != ""
	case tagCommandField:
		return us(uint16(c.CommandField)), true
	case tagMessageID:
		return us(c.MessageID), true
	case tagMessageIDBeingRespondedTo:
		return us(c.MessageIDBeingRespondedTo), true
	case tagMoveDestination:
		return padText(c.MoveDestination), c.MoveDestination != ""
	case tagPriority:
		return us(c.Priority), true
	case tagCommandDataSetType:
		return us(c.CommandDataSetType), true
	case tagStatus:
		return us(uint16(c.Status)), true
	case tagOffendingElement:
		var b []byte
		for _, t := range c.OffendingElements {
			b = binary.LittleEndian.AppendUint16(b, uint16(t>>16))
			b = binary.LittleEndian.AppendUint16(b, uint16(t))
		}
		return b, len(b) > 0
	case tagErrorComment:
		if len(c.ErrorComment) > 64 {
			return padText(c.ErrorComment[:64]), true
		}
		return padText(c.ErrorComment), c.ErrorComment != ""
	case tagErrorID:
		return us(c.ErrorID), c.ErrorID != 0
	case tagAffectedSOPInstanceUID:
		return padUID(c.AffectedSOPInstanceUID), c.AffectedSOPInstanceUID != ""
	case tagRequestedSOPInstanceUID:
		return padUID(c.RequestedSOPInstanceUID), c.RequestedSOPInstanceUID != ""
	case tagRemaining:
		return optUS(c.Remaining)
	case tagCompleted:
		return optUS(c.Completed)
	case tagFailed:
		return optUS(c.Failed)
	case tagWarning:
		return optUS(c.Warning)
	case tagMoveOriginatorAETitle:
		return padText(c.MoveOriginatorAETitle), c.MoveOriginatorAETitle != ""
	case tagMoveOriginatorMessageID:
		return us(c.MoveOriginatorMessageID), c.MoveOriginatorAETitle != ""
	}
	return nil, false
}

func optUS(v *uint16) ([]byte, bool) {
	if v == nil {
		return nil, false
	}
	return us(*v), true
}

// EncodeCommand encodes c as an Implicit VR Little Endian command set,
// starting with (0000,0000) Command Group Length.
func EncodeCommand(c *Command) ([]byte, error) {
	elems, ok := commandElements[c.CommandField]
	if !ok {
		return nil, fmt.Errorf("encode command: unsupported %v", c.CommandField)
	}
	body := make([]byte, 0, 160)
	for _, e := range elems {
		v, set := c.value(e.tag)
		if e.optional && !set {
			continue
		}
		body = binary.LittleEndian.AppendUint16(body, 0x0000)
		body = binary.LittleEndian.AppendUint16(body, e.tag)
		body = binary.LittleEndian.AppendUint32(body, uint32(len(v)))
		body = append(body, v...)
	}
	out := make([]byte, 0, len(body)+12)
	out = binary.LittleEndian.AppendUint16(out, 0x0000)
	out = binary.LittleEndian.AppendUint16(out, tagGroupLength)
	out = binary.LittleEndian.AppendUint32(out, 4)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(body)))
	return append(out, body...), nil
}

// DecodeCommand decodes an Implicit VR Little Endian command set. Elements
// outside group 0000 are an error; unknown group 0000 elements are ignored.
func DecodeCommand(b []byte) (*Command, error) {
	c := &Command{CommandDataSetType: NoDataSet}
	seen := map[uint16]bool{}
	for off := 0; off < len(b); {
		if len(b)-off < 8 {
			return nil, fmt.Errorf("element header at offset %d: %w", off, ErrMalformedCommand)
		}
		group := binary.LittleEndian.Uint16(b[off:])
		tag := binary.LittleEndian.Uint16(b[off+2:])
		n := binary.LittleEndian.Uint32(b[off+4:])
		off += 8
		if group != 0x0000 {
			return nil, fmt.Errorf("element (%04x,%04x) outside the command group: %w", group, tag, ErrMalformedCommand)
		}
		if uint64(n) > uint64(len(b)-off) {
			return nil, fmt.Errorf("element (0000,%04x) length %d with %d bytes left: %w", tag, n, len(b)-off, ErrMalformedCommand)
		}
		v := b[off : off+int(n)]
		off += int(n)
		if err := c.set(tag, v); err != nil {
			return nil, fmt.Errorf("element (0000,%04x): %w", tag, err)
		}
		seen[tag] = true
	}
	if !seen[tagCommandField] {
		return nil, fmt.Errorf("no Command Field (0000,0100): %w", ErrMalformedCommand)
	}
	return c, nil
}

func (c *Command) set(tag uint16, v []byte) error {
	u16 := func() (uint16, error) {
		if len(v) != 2 {
			return 0, fmt.Errorf("US value of %d bytes: %w", len(v), ErrMalformedCommand)
		}
		return binary.LittleEndian.Uint16(v), nil
	}
	opt := func(p **uint16) error {
		x, err := u16()
		if err != nil {
			return err
		}
		*p = &x
		return nil
	}
	var err error
	switch tag {
	case tagAffectedSOPClassUID:
		c.AffectedSOPClassUID = trimUID(v)
	case tagRequestedSOPClassUID:
		c.RequestedSOPClassUID = trimUID(v)
	case tagCommandField:
		var x uint16
		x, err = u16()
		c.CommandField = CommandField(x)
	case tagMessageID:
		c.MessageID, err = u16()
	case tagMessageIDBeingRespondedTo:
		c.MessageIDBeingRespondedTo, err = u16()
	case tagMoveDestination:
		c.MoveDestination = trimText(v)
	case tagPriority:
		c.Priority, err = u16()
	case tagCommandDataSetType:
		c.CommandDataSetType, err = u16()
	case tagStatus:
		var x uint16
		x, err = u16()
		c.Status = Status(x)
	case tagOffendingElement:
		if len(v)%4 != 0 {
			return fmt.Errorf("AT value of %d bytes: %w", len(v), ErrMalformedCommand)
		}
		c.OffendingElements = nil
		for i := 0; i < len(v); i += 4 {
			c.OffendingElements = append(c.OffendingElements,
				uint32(binary.LittleEndian.Uint16(v[i:]))<<16|uint32(binary.LittleEndian.Uint16(v[i+2:])))
		}
	case tagErrorComment:
		c.ErrorComment = trimText(v)
	case tagErrorID:
		c.ErrorID, err = u16()
	case tagAffectedSOPInstanceUID:
		c.AffectedSOPInstanceUID = trimUID(v)
	case tagRequestedSOPInstanceUID:
		c.RequestedSOPInstanceUID = trimUID(v)
	case tagRemaining:
		err = opt(&c.Remaining)
	case tagCompleted:
		err = opt(&c.Completed)
	case tagFailed:
		err = opt(&c.Failed)
	case tagWarning:
		err = opt(&c.Warning)
	case tagMoveOriginatorAETitle:
		c.MoveOriginatorAETitle = trimText(v)
	case tagMoveOriginatorMessageID:
		c.MoveOriginatorMessageID, err = u16()
	}
	return err
}

func trimUID(b []byte) string  { return strings.TrimRight(string(b), "\x00 ") }
func trimText(b []byte) string { return strings.Trim(string(b), " \x00") }
