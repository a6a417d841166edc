package dimse

import (
	"errors"
	"fmt"
	"io"

	"github.com/cspine/cspine/dicomnode/pdu"
)

// PDVSource yields the PDVs received on an association, in order. The Data
// of a returned PDV is only valid until the next call.
type PDVSource interface {
	NextPDV() (pdu.PDV, error)
}

// MaxCommandLen bounds a reassembled command set; real ones are < 1 KiB.
const MaxCommandLen = 64 << 10

// ErrProtocol reports PDVs that break PS3.8 Annex E sequencing, e.g. a data
// PDV where a command was expected or a change of presentation context in
// the middle of a message.
var ErrProtocol = errors.New("dimse: PDV sequence violates PS3.8 Annex E")

// Message is one received DIMSE message. When the command announces a data
// set, Data streams it; it must be read to io.EOF (or Discarded) before the
// next ReadMessage.
type Message struct {
	ContextID byte
	Command   *Command
	Data      io.Reader // nil when the command has no data set
}

// Discard drains the remaining data set, if any.
func (m *Message) Discard() error {
	if m.Data == nil {
		return nil
	}
	_, err := io.Copy(io.Discard, m.Data)
	return err
}

// Reader reassembles DIMSE messages from PDVs.
type Reader struct {
	src  PDVSource
	data *dataReader // data set of the last message, if still open
}

// NewReader returns a Reader over src.
func NewReader(src PDVSource) *Reader { return &Reader{src: src} }

// ReadMessage reads the next command set (reassembling command fragments)
// and returns the message. A still-unread data set of the previous message
// is discarded first.
func (r *Reader) ReadMessage() (*Message, error) {
	if r.data != nil && !r.data.done {
		if _, err := io.Copy(io.Discard, r.data); err != nil {
			return nil, err
		}
	}
	r.data = nil
	var (
		cmd   []byte
		ctxID byte
		first = true
	)
	for {
		p, err := r.src.NextPDV()
		if err != nil {
			return nil, err
		}
		if !p.IsCommand() {
			return nil, fmt.Errorf("data PDV (context %d) while waiting for a command: %w", p.ContextID, ErrProtocol)
		}
		if first {
			ctxID, first = p.ContextID, false
		} else if p.ContextID != ctxID {
			return nil, fmt.Errorf("command fragment on context %d, message started on %d: %w", p.ContextID, ctxID, ErrProtocol)
		}
		if len(cmd)+len(p.Data) > MaxCommandLen {
			return nil, fmt.Errorf("command set longer than %d bytes: %w", MaxCommandLen, ErrMalformedCommand)
		}
		cmd = append(cmd, p.Data...)
		if p.IsLast() {
			break
		}
	}
	c, err := DecodeCommand(cmd)
	if err != nil {
		return nil, err
	}
	m := &Message{ContextID: ctxID, Command: c}
	if c.HasDataSet() {
		r.data = &dataReader{src: r.src, ctxID: ctxID}
		m.Data = r.data
	}
	return m, nil
}

// dataReader streams the data PDVs of one message.
type dataReader struct {
	src   PDVSource
	ctxID byte
	buf   []byte // unread part of the current PDV
	last  bool   // the current PDV is the last fragment
	done  bool
	err   error
}

func (d *dataReader) Read(p []byte) (int, error) {
	for len(d.buf) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		if d.last {
			d.done = true
			return 0, io.EOF
		}
		v, err := d.src.NextPDV()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			d.err = err
			return 0, err
		}
		if v.IsCommand() || v.ContextID != d.ctxID {
			d.err = fmt.Errorf("PDV (context %d, control 0x%02x) inside the data set of context %d: %w",
				v.ContextID, v.Control, d.ctxID, ErrProtocol)
			return 0, d.err
		}
		d.buf, d.last = v.Data, v.IsLast()
	}
	n := copy(p, d.buf)
	d.buf = d.buf[n:]
	return n, nil
}

// WriteTo lets io.Copy hand whole PDVs to the destination without an
// intermediate buffer.
func (d *dataReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(d.buf) == 0 {
			var one [0]byte
			if _, err := d.Read(one[:]); err != nil {
				if err == io.EOF {
					return total, nil
				}
				return total, err
			}
			if len(d.buf) == 0 {
				continue
			}
		}
		n, err := w.Write(d.buf)
		total += int64(n)
		d.buf = d.buf[n:]
		if err != nil {
			return total, err
		}
	}
}

// DefaultMaxPDV is the PDV data size we use when the peer announced no
// limit (Maximum Length 0).
const DefaultMaxPDV = 1 << 20

// FragmentSize returns how many data bytes fit in one PDV when the peer's
// Maximum Length is peerMax (0 = unlimited).
func FragmentSize(peerMax uint32) int {
	if peerMax == 0 || peerMax > DefaultMaxPDV+pdu.PDVHeaderLen {
		return DefaultMaxPDV
	}
	if peerMax <= pdu.PDVHeaderLen+1 {
		return 1
	}
	return int(peerMax) - pdu.PDVHeaderLen
}

// WriteMessage writes cmd on presentation context ctxID, followed by
// dataLen bytes of data when data is non-nil, fragmenting both into
// P-DATA-TF PDUs of one PDV each that fit peerMax (0 = unlimited). Each PDU is
// handed to w in a single Write.
func WriteMessage(w io.Writer, peerMax uint32, ctxID byte, cmd *Command, data io.Reader, dataLen int64) error {
	if data != nil {
		cmd.CommandDataSetType = HasDataSet
	} else {
		cmd.CommandDataSetType = NoDataSet
	}
	cb, err := EncodeCommand(cmd)
	if err != nil {
		return err
	}
	frag := FragmentSize(peerMax)
	buf := make([]byte, 0, pdu.HeaderLen+pdu.PDVHeaderLen+min(frag, len(cb)))
	for off := 0; off < len(cb); {
		n := min(frag, len(cb)-off)
		ctl := pdu.PDVCommand
		if off+n == len(cb) {
			ctl |= pdu.PDVLast
		}
		buf = pdu.AppendPDataHeader(buf[:0], ctxID, ctl, n)
		buf = append(buf, cb[off:off+n]...)
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("write %v command: %w", cmd.CommandField, err)
		}
		off += n
	}
	if data == nil {
		return nil
	}
	if dataLen == 0 {
		buf = pdu.AppendPDataHeader(buf[:0], ctxID, pdu.PDVLast, 0)
		_, err := w.Write(buf)
		return err
	}
	hdr := pdu.HeaderLen + pdu.PDVHeaderLen
	if need := hdr + int(min(int64(frag), dataLen)); cap(buf) < need {
		buf = make([]byte, 0, need)
	}
	for sent := int64(0); sent < dataLen; {
		n := int(min(int64(frag), dataLen-sent))
		var ctl byte
		if sent+int64(n) == dataLen {
			ctl = pdu.PDVLast
		}
		buf = pdu.AppendPDataHeader(buf[:0], ctxID, ctl, n)
		buf = buf[:hdr+n]
		if _, err := io.ReadFull(data, buf[hdr:]); err != nil {
			return fmt.Errorf("read data set at byte %d of %d: %w", sent, dataLen, err)
		}
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("write %v data: %w", cmd.CommandField, err)
		}
		sent += int64(n)
	}
	return nil
}
