package dimse

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/cspine/cspine/dicomnode/pdu"
)

func u16p(v uint16) *uint16 { return &v }

func TestCommandRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range []*Command{
		{CommandField: CEchoRQ, AffectedSOPClassUID: "1.2.840.10008.1.1", MessageID: 1, CommandDataSetType: NoDataSet},
		{CommandField: CEchoRSP, AffectedSOPClassUID: "1.2.840.10008.1.1", MessageIDBeingRespondedTo: 1, CommandDataSetType: NoDataSet, Status: StatusSuccess},
		{CommandField: CStoreRQ, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.1.1", MessageID: 7, Priority: PriorityMedium,
			CommandDataSetType: HasDataSet, AffectedSOPInstanceUID: "1.2.3.4.5", MoveOriginatorAETitle: "MOVER", MoveOriginatorMessageID: 3},
		{CommandField: CStoreRSP, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.1.1", MessageIDBeingRespondedTo: 7,
			CommandDataSetType: NoDataSet, Status: StatusOutOfResources, ErrorComment: "disk full", AffectedSOPInstanceUID: "1.2.3.4.5"},
		{CommandField: CFindRQ, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.2.2.1", MessageID: 2, CommandDataSetType: HasDataSet},
		{CommandField: CMoveRQ, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.2.2.2", MessageID: 3, MoveDestination: "CSPINE", CommandDataSetType: HasDataSet},
		{CommandField: CMoveRSP, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.2.2.2", MessageIDBeingRespondedTo: 3, CommandDataSetType: NoDataSet,
			Status: StatusPending, Remaining: u16p(2), Completed: u16p(1), Failed: u16p(0), Warning: u16p(0)},
		{CommandField: CCancelRQ, MessageIDBeingRespondedTo: 3, CommandDataSetType: NoDataSet},
	} {
		t.Run(c.CommandField.String(), func(t *testing.T) {
			t.Parallel()
			b, err := EncodeCommand(c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeCommand(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c) {
				t.Fatalf("got %+v\nwant %+v", got, c)
			}
		})
	}
}

// TestEchoRQGolden checks the C-ECHO-RQ command set byte for byte (PS3.7
// Table 9.3-12: group length first, elements ascending, UID padded with NUL).
func TestEchoRQGolden(t *testing.T) {
	t.Parallel()
	want, _ := hex.DecodeString(strings.Join(strings.Fields(`
		00000000 04000000 38000000
		00000200 12000000 312e322e3834302e31303030382e312e3100
		00000001 02000000 3000
		00001001 02000000 0100
		00000008 02000000 0101`), ""))
	got, err := EncodeCommand(&Command{CommandField: CEchoRQ, AffectedSOPClassUID: "1.2.840.10008.1.1", MessageID: 1, CommandDataSetType: NoDataSet})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %x\nwant %x", got, want)
	}
}

func TestDecodeCommandRejects(t *testing.T) {
	t.Parallel()
	for name, h := range map[string]string{
		"truncated header":      "000000000400",
		"length beyond end":     "0000000004000000ff",
		"other group":           "08001600020000003100",
		"no command field":      "0000100102000000 0100",
		"command field 3 bytes": "0000000103000000 010203",
	} {
		t.Run(name, func(t *testing.T) {
			b, _ := hex.DecodeString(strings.ReplaceAll(h, " ", ""))
			if _, err := DecodeCommand(b); !errors.Is(err, ErrMalformedCommand) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// pdvs is a PDVSource over a fixed list; it returns io.EOF at the end.
type pdvs []pdu.PDV

func (p *pdvs) NextPDV() (pdu.PDV, error) {
	if len(*p) == 0 {
		return pdu.PDV{}, io.EOF
	}
	v := (*p)[0]
	*p = (*p)[1:]
	return v, nil
}

// pduCapture records the P-DATA-TF PDUs written by WriteMessage.
type pduCapture struct{ items []pdu.PDV }

func (c *pduCapture) Write(b []byte) (int, error) {
	p, err := pdu.Read(bytes.NewReader(b), 0)
	if err != nil {
		return 0, err
	}
	pd := p.(*pdu.PDataTF)
	if len(pd.Items) != 1 {
		return 0, errors.New("want one PDV per PDU")
	}
	c.items = append(c.items, pd.Items...)
	return len(b), nil
}

func TestFragmentAndReassemble(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("0123456789"), 1000)
	for _, peerMax := range []uint32{0, 7, 16, 100, 4096, 1 << 20} {
		cap := &pduCapture{}
		cmd := &Command{CommandField: CStoreRQ, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.1.1", MessageID: 9, AffectedSOPInstanceUID: "1.2.3"}
		if err := WriteMessage(cap, peerMax, 3, cmd, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("peerMax %d: %v", peerMax, err)
		}
		for _, it := range cap.items {
			if peerMax != 0 && len(it.Data)+pdu.PDVHeaderLen > int(max(peerMax, 7)) {
				t.Fatalf("peerMax %d: PDV of %d bytes", peerMax, len(it.Data))
			}
		}
		src := pdvs(cap.items)
		r := NewReader(&src)
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("peerMax %d: %v", peerMax, err)
		}
		if m.ContextID != 3 || m.Command.AffectedSOPInstanceUID != "1.2.3" || m.Data == nil {
			t.Fatalf("peerMax %d: %+v", peerMax, m.Command)
		}
		got, err := io.ReadAll(m.Data)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("peerMax %d: data %d bytes, err %v", peerMax, len(got), err)
		}
	}
}

func TestReaderProtocolErrors(t *testing.T) {
	t.Parallel()
	cb, _ := EncodeCommand(&Command{CommandField: CStoreRQ, AffectedSOPClassUID: "1.2", MessageID: 1, CommandDataSetType: HasDataSet, AffectedSOPInstanceUID: "1.3"})
	for name, items := range map[string][]pdu.PDV{
		"data first": {{ContextID: 1, Control: pdu.PDVLast, Data: []byte{1}}},
		"context changes inside command": {
			{ContextID: 1, Control: pdu.PDVCommand, Data: cb[:10]},
			{ContextID: 3, Control: pdu.PDVCommand | pdu.PDVLast, Data: cb[10:]}},
		"command inside data set": {
			{ContextID: 1, Control: pdu.PDVCommand | pdu.PDVLast, Data: cb},
			{ContextID: 1, Control: 0, Data: []byte{1}},
			{ContextID: 1, Control: pdu.PDVCommand | pdu.PDVLast, Data: cb}},
	} {
		t.Run(name, func(t *testing.T) {
			src := pdvs(items)
			r := NewReader(&src)
			m, err := r.ReadMessage()
			if err == nil && m.Data != nil {
				_, err = io.ReadAll(m.Data)
			}
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("got %v", err)
			}
		})
	}
	t.Run("association ends inside data set", func(t *testing.T) {
		src := pdvs{{ContextID: 1, Control: pdu.PDVCommand | pdu.PDVLast, Data: cb}, {ContextID: 1, Data: []byte{1, 2}}}
		m, err := NewReader(&src).ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(m.Data); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestStatusKind(t *testing.T) {
	t.Parallel()
	for s, k := range map[Status]Kind{
		StatusSuccess: KindSuccess, 0xB000: KindWarning, 0xB007: KindWarning, StatusPending: KindPending,
		StatusCancel: KindCancel, StatusOutOfResources: KindFailure, StatusDataSetDoesNotMatchSOPClass: KindFailure,
		StatusCannotUnderstand: KindFailure, 0xC123: KindFailure,
	} {
		if s.Kind() != k {
			t.Errorf("%v: kind %d, want %d", s, s.Kind(), k)
		}
	}
}

func FuzzDecodeCommand(f *testing.F) {
	for _, c := range []*Command{
		{CommandField: CEchoRQ, AffectedSOPClassUID: "1.2.840.10008.1.1", MessageID: 1},
		{CommandField: CMoveRSP, Status: StatusPending, Remaining: u16p(1), OffendingElements: []uint32{0x00100010}},
		{CommandField: CStoreRQ, AffectedSOPClassUID: "1.2", AffectedSOPInstanceUID: "1.2.3", MoveOriginatorAETitle: "X"},
	} {
		b, _ := EncodeCommand(c)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		if _, ok := commandElements[c.CommandField]; !ok {
			return
		}
		enc, err := EncodeCommand(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeCommand(enc); err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
	})
}

// FuzzReader feeds arbitrary PDV sequences to the message reader.
func FuzzReader(f *testing.F) {
	cb, _ := EncodeCommand(&Command{CommandField: CStoreRQ, AffectedSOPClassUID: "1.2", MessageID: 1, CommandDataSetType: HasDataSet, AffectedSOPInstanceUID: "1.3"})
	pd, _ := pdu.Encode(&pdu.PDataTF{Items: []pdu.PDV{{ContextID: 1, Control: 3, Data: cb}, {ContextID: 1, Control: 2, Data: []byte("data")}}})
	f.Add(pd[pdu.HeaderLen:])
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := pdu.Decode(pdu.TypePDataTF, body)
		if err != nil {
			return
		}
		src := pdvs(p.(*pdu.PDataTF).Items)
		r := NewReader(&src)
		for i := 0; i < 4; i++ {
			m, err := r.ReadMessage()
			if err != nil {
				return
			}
			if m.Data != nil {
				if _, err := io.Copy(io.Discard, m.Data); err != nil {
					return
				}
			}
		}
	})
}
