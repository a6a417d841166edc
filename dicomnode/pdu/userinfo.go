package pdu

import (
	"encoding/binary"
	"fmt"
)

// UserInformation is the User Information Item (PS3.8 §9.3.2.3, Annex D).
// Sub-items are kept in wire order so that a decoded PDU re-encodes to the
// same bytes; use the accessor methods to read them by kind.
type UserInformation struct {
	Items []UserItem
}

// UserItem is one sub-item of the User Information Item: one of
// *MaxLength, *ImplementationClassUID, *ImplementationVersionName,
// *AsyncOperationsWindow, *RoleSelection, *SOPClassExtendedNegotiation or
// *RawUserItem (any other sub-item, passed through unchanged).
type UserItem interface {
	ItemType() byte
	value() []byte
}

// MaxLength is the Maximum Length sub-item (PS3.8 D.1): the largest P-DATA-TF
// variable field the sender can receive. 0 means no limit.
type MaxLength struct{ Length uint32 }

// ImplementationClassUID is the Implementation Class UID sub-item (PS3.7 D.3.3.2).
type ImplementationClassUID struct{ UID string }

// ImplementationVersionName is the Implementation Version Name sub-item.
type ImplementationVersionName struct{ Name string }

// AsyncOperationsWindow is the Asynchronous Operations Window sub-item
// (PS3.7 D.3.3.3). 0 means unlimited.
type AsyncOperationsWindow struct {
	MaxInvoked   uint16
	MaxPerformed uint16
}

// RoleSelection is the SCP/SCU Role Selection sub-item (PS3.7 D.3.3.4).
// SCU and SCP are the roles of the association requestor.
type RoleSelection struct {
	SOPClassUID string
	SCU         bool
	SCP         bool
}

// SOPClassExtendedNegotiation is the SOP Class Extended Negotiation
// sub-item (PS3.7 D.3.3.5); Info is passed through unparsed.
type SOPClassExtendedNegotiation struct {
	SOPClassUID string
	Info        []byte
}

// RawUserItem is any other user-information sub-item (SOP Class Common
// Extended Negotiation, User Identity, or an unknown type), kept verbatim.
type RawUserItem struct {
	Type  byte
	Value []byte
}

// ItemType implements UserItem.
func (*MaxLength) ItemType() byte                   { return ItemMaxLength }
func (*ImplementationClassUID) ItemType() byte      { return ItemImplementationClassUID }
func (*ImplementationVersionName) ItemType() byte   { return ItemImplementationVersionName }
func (*AsyncOperationsWindow) ItemType() byte       { return ItemAsyncOperationsWindow }
func (*RoleSelection) ItemType() byte               { return ItemRoleSelection }
func (*SOPClassExtendedNegotiation) ItemType() byte { return ItemSOPClassExtendedNegotiation }

// ItemType implements UserItem.
func (r *RawUserItem) ItemType() byte { return r.Type }

func (m *MaxLength) value() []byte                 { return binary.BigEndian.AppendUint32(nil, m.Length) }
func (u *ImplementationClassUID) value() []byte    { return []byte(u.UID) }
func (v *ImplementationVersionName) value() []byte { return []byte(v.Name) }
func (a *AsyncOperationsWindow) value() []byte {
	b := binary.BigEndian.AppendUint16(nil, a.MaxInvoked)
	return binary.BigEndian.AppendUint16(b, a.MaxPerformed)
}

func (r *RoleSelection) value() []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(r.SOPClassUID)))
	b = append(b, r.SOPClassUID...)
	return append(b, boolByte(r.SCU), boolByte(r.SCP))
}

func (s *SOPClassExtendedNegotiation) value() []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(s.SOPClassUID)))
	b = append(b, s.SOPClassUID...)
	return append(b, s.Info...)
}

func (r *RawUserItem) value() []byte { return r.Value }

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func (u *UserInformation) append(b []byte) ([]byte, error) {
	return appendNested(b, ItemUserInformation, func(b []byte) ([]byte, error) {
		var err error
		for _, it := range u.Items {
			if b, err = appendItem(b, it.ItemType(), it.value()); err != nil {
				return nil, fmt.Errorf("user information: %w", err)
			}
		}
		return b, nil
	})
}

func (u *UserInformation) decode(v []byte) error {
	c := &cursor{b: v}
	for c.left() > 0 {
		typ, sv, err := c.item()
		if err != nil {
			return fmt.Errorf("user information: %w", err)
		}
		it, err := decodeUserItem(typ, sv)
		if err != nil {
			return fmt.Errorf("user information sub-item 0x%02x: %w", typ, err)
		}
		u.Items = append(u.Items, it)
	}
	return nil
}

func decodeUserItem(typ byte, v []byte) (UserItem, error) {
	switch typ {
	case ItemMaxLength:
		if len(v) != 4 {
			return nil, fmt.Errorf("length %d, want 4: %w", len(v), ErrMalformed)
		}
		return &MaxLength{Length: binary.BigEndian.Uint32(v)}, nil
	case ItemImplementationClassUID:
		return &ImplementationClassUID{UID: trimUID(v)}, nil
	case ItemImplementationVersionName:
		return &ImplementationVersionName{Name: trimAE(v)}, nil
	case ItemAsyncOperationsWindow:
		if len(v) != 4 {
			return nil, fmt.Errorf("length %d, want 4: %w", len(v), ErrMalformed)
		}
		return &AsyncOperationsWindow{
			MaxInvoked:   binary.BigEndian.Uint16(v[0:2]),
			MaxPerformed: binary.BigEndian.Uint16(v[2:4]),
		}, nil
	case ItemRoleSelection:
		c := &cursor{b: v}
		uid, err := c.uidField()
		if err != nil {
			return nil, err
		}
		roles, err := c.bytes(2)
		if err != nil {
			return nil, err
		}
		if c.left() != 0 {
			return nil, fmt.Errorf("%d trailing bytes: %w", c.left(), ErrMalformed)
		}
		return &RoleSelection{SOPClassUID: uid, SCU: roles[0] == 1, SCP: roles[1] == 1}, nil
	case ItemSOPClassExtendedNegotiation:
		c := &cursor{b: v}
		uid, err := c.uidField()
		if err != nil {
			return nil, err
		}
		info, _ := c.bytes(c.left())
		return &SOPClassExtendedNegotiation{SOPClassUID: uid, Info: append([]byte(nil), info...)}, nil
	default:
		return &RawUserItem{Type: typ, Value: append([]byte(nil), v...)}, nil
	}
}

// uidField reads a 2-byte length followed by a UID.
func (c *cursor) uidField() (string, error) {
	n, err := c.u16()
	if err != nil {
		return "", err
	}
	v, err := c.bytes(int(n))
	if err != nil {
		return "", err
	}
	return trimUID(v), nil
}

// MaxLength returns the Maximum Length sub-item value and whether it was present.
func (u *UserInformation) MaxLength() (uint32, bool) {
	for _, it := range u.Items {
		if m, ok := it.(*MaxLength); ok {
			return m.Length, true
		}
	}
	return 0, false
}

// ImplementationClassUID returns the Implementation Class UID, or "".
func (u *UserInformation) ImplementationClassUID() string {
	for _, it := range u.Items {
		if m, ok := it.(*ImplementationClassUID); ok {
			return m.UID
		}
	}
	return ""
}

// ImplementationVersionName returns the Implementation Version Name, or "".
func (u *UserInformation) ImplementationVersionName() string {
	for _, it := range u.Items {
		if m, ok := it.(*ImplementationVersionName); ok {
			return m.Name
		}
	}
	return ""
}

// AsyncOperationsWindow returns the window, or nil when absent.
func (u *UserInformation) AsyncOperationsWindow() *AsyncOperationsWindow {
	for _, it := range u.Items {
		if m, ok := it.(*AsyncOperationsWindow); ok {
			return m
		}
	}
	return nil
}

// RoleSelections returns the SCP/SCU Role Selection sub-items.
func (u *UserInformation) RoleSelections() []*RoleSelection {
	var out []*RoleSelection
	for _, it := range u.Items {
		if m, ok := it.(*RoleSelection); ok {
			out = append(out, m)
		}
	}
	return out
}

// ExtendedNegotiations returns the SOP Class Extended Negotiation sub-items.
func (u *UserInformation) ExtendedNegotiations() []*SOPClassExtendedNegotiation {
	var out []*SOPClassExtendedNegotiation
	for _, it := range u.Items {
		if m, ok := it.(*SOPClassExtendedNegotiation); ok {
			out = append(out, m)
		}
	}
	return out
}
