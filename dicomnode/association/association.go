package association

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/cspine/cspine/dicomnode/pdu"
)

// Timeouts of an association (PS3.8 §9.1.5 for ARTIM).
type Timeouts struct {
	// ARTIM bounds the wait for A-ASSOCIATE-RQ after the transport opens,
	// for A-ASSOCIATE-AC/RJ after our request, and for A-RELEASE-RP.
	ARTIM time.Duration
	// Idle bounds the wait for the next message on an established association.
	Idle time.Duration
	// Read bounds the wait for each PDU once a message has started.
	Read time.Duration
	// Write bounds the writing of one PDU.
	Write time.Duration
}

// WithDefaults fills zero fields: ARTIM 30 s, Idle 120 s, Read 60 s, Write 60 s.
func (t Timeouts) WithDefaults() Timeouts {
	if t.ARTIM == 0 {
		t.ARTIM = 30 * time.Second
	}
	if t.Idle == 0 {
		t.Idle = 120 * time.Second
	}
	if t.Read == 0 {
		t.Read = 60 * time.Second
	}
	if t.Write == 0 {
		t.Write = 60 * time.Second
	}
	return t
}

// Sentinel errors.
var (
	// ErrReleased: the association ended with an orderly release.
	ErrReleased = errors.New("association released")
	// ErrShutdown: the association was aborted because the node is stopping.
	ErrShutdown = errors.New("association aborted: node shutting down")
	// ErrClosed: the association was already closed.
	ErrClosed = errors.New("association closed")
)

// AbortError reports an A-ABORT, received from the peer (Received true) or
// sent by us because of a protocol error.
type AbortError struct {
	Source, Reason byte
	Received       bool
	Cause          error
}

func (e *AbortError) Error() string {
	who := "sent"
	if e.Received {
		who = "received"
	}
	s := fmt.Sprintf("A-ABORT %s (source %d, reason %d)", who, e.Source, e.Reason)
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

func (e *AbortError) Unwrap() error { return e.Cause }

// maxControlPDU bounds every PDU other than P-DATA-TF.
const maxControlPDU = 256 << 10

// maxUnlimitedPDataTF bounds a P-DATA-TF when we announced no limit.
const maxUnlimitedPDataTF = 64 << 20

// Association is an established association, from either side. Its
// methods are not safe for concurrent use, except Abort, Interrupt and Close.
type Association struct {
	conn      net.Conn
	br        *bufio.Reader
	log       *slog.Logger
	requestor bool
	to        Timeouts

	// RQ and AC are the PDUs exchanged when the association was established.
	RQ *pdu.AssociateRQ
	AC *pdu.AssociateAC

	contexts map[byte]Context
	ourMax   uint32 // the Maximum Length we announced (what we receive)
	peerMax  uint32 // the Maximum Length the peer announced (what we send)

	buf         []byte // reused P-DATA-TF body
	pending     []pdu.PDV
	readTimeout time.Duration

	wmu sync.Mutex // serialises writes

	mu       sync.Mutex
	idle     bool // waiting for the first PDU of a message
	stopping bool
	closed   bool
}

// AcceptOpts are the options of Accept; nil means defaults.
type AcceptOpts struct {
	Timeouts Timeouts
	Logger   *slog.Logger
	// Reject, when non-nil, is sent instead of negotiating (e.g. when the
	// node is at its association limit). Accept then returns it as error.
	Reject *pdu.AssociateRJ
}

// Accept runs the acceptor side of association establishment on conn
// (PS3.8 Sta2 → Sta3 → Sta6): it waits up to ARTIM for an A-ASSOCIATE-RQ,
// applies pol, and answers A-ASSOCIATE-AC or -RJ. On any error conn is closed.
func Accept(ctx context.Context, conn net.Conn, pol *Policy, opts *AcceptOpts) (*Association, error) {
	if opts == nil {
		opts = &AcceptOpts{}
	}
	a := newAssociation(conn, opts.Timeouts, opts.Logger, false)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	conn.SetReadDeadline(time.Now().Add(a.to.ARTIM))
	p, err := pdu.Read(a.br, maxControlPDU)
	if err != nil {
		return nil, a.failEstablish(fmt.Errorf("read A-ASSOCIATE-RQ: %w", err), err)
	}
	rq, ok := p.(*pdu.AssociateRQ)
	if !ok {
		return nil, a.failEstablish(fmt.Errorf("%v while waiting for A-ASSOCIATE-RQ", p.Type()), nil)
	}
	a.RQ = rq
	rj := opts.Reject
	if rj == nil {
		rj = pol.Check(ctx, rq, conn.RemoteAddr())
	}
	if rj != nil {
		werr := a.writePDU(rj)
		a.closeConn()
		return nil, errors.Join(rj, werr)
	}
	ac, ctxs := NegotiateAcceptor(rq, &pol.Offer)
	a.AC = ac
	a.setContexts(ctxs)
	a.ourMax = pol.MaxPDULength
	a.peerMax, _ = rq.UserInformation.MaxLength()
	if err := a.writePDU(ac); err != nil {
		a.closeConn()
		return nil, fmt.Errorf("send A-ASSOCIATE-AC: %w", err)
	}
	conn.SetReadDeadline(time.Time{})
	return a, nil
}

// RequestParams describe an association we request.
type RequestParams struct {
	CallingAETitle string
	CalledAETitle  string
	// Contexts proposed; IDs of 0 are assigned (1, 3, 5, ...).
	Contexts []pdu.PresentationContextRQ
	// Roles proposed with SCP/SCU Role Selection (e.g. SCP for C-GET).
	Roles []pdu.RoleSelection
	// ExtraUserItems are appended to the user information (extended
	// negotiation, user identity).
	ExtraUserItems []pdu.UserItem
	// MaxPDULength we announce; 0 means no limit.
	MaxPDULength              uint32
	ImplementationClassUID    string
	ImplementationVersionName string
	Timeouts                  Timeouts
	Logger                    *slog.Logger
}

// Request runs the requestor side of association establishment on conn
// (PS3.8 Sta4 → Sta5 → Sta6). A rejection is returned as *pdu.AssociateRJ.
// On any error conn is closed.
func Request(ctx context.Context, conn net.Conn, p *RequestParams) (*Association, error) {
	a := newAssociation(conn, p.Timeouts, p.Logger, true)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	rq := &pdu.AssociateRQ{
		ProtocolVersion:    pdu.ProtocolVersion,
		CalledAETitle:      p.CalledAETitle,
		CallingAETitle:     p.CallingAETitle,
		ApplicationContext: pdu.ApplicationContextName,
	}
	next := byte(1)
	for _, pc := range p.Contexts {
		if pc.ID == 0 {
			pc.ID = next
		}
		next = pc.ID + 2
		rq.PresentationContexts = append(rq.PresentationContexts, pc)
	}
	items := []pdu.UserItem{
		&pdu.MaxLength{Length: p.MaxPDULength},
		&pdu.ImplementationClassUID{UID: p.ImplementationClassUID},
	}
	for i := range p.Roles {
		items = append(items, &p.Roles[i])
	}
	if p.ImplementationVersionName != "" {
		items = append(items, &pdu.ImplementationVersionName{Name: p.ImplementationVersionName})
	}
	rq.UserInformation.Items = append(items, p.ExtraUserItems...)
	a.RQ = rq
	a.ourMax = p.MaxPDULength
	if err := a.writePDU(rq); err != nil {
		a.closeConn()
		return nil, fmt.Errorf("send A-ASSOCIATE-RQ: %w", err)
	}
	conn.SetReadDeadline(time.Now().Add(a.to.ARTIM))
	resp, err := pdu.Read(a.br, maxControlPDU)
	if err != nil {
		return nil, a.failEstablish(fmt.Errorf("read A-ASSOCIATE-AC: %w", err), err)
	}
	switch r := resp.(type) {
	case *pdu.AssociateAC:
		ctxs, err := NegotiateRequestor(rq, r)
		if err != nil {
			a.abort(pdu.AbortSourceServiceProvider, pdu.AbortReasonInvalidParameterValue)
			return nil, err
		}
		a.AC = r
		a.setContexts(ctxs)
		a.peerMax, _ = r.UserInformation.MaxLength()
		conn.SetReadDeadline(time.Time{})
		return a, nil
	case *pdu.AssociateRJ:
		a.closeConn()
		return nil, r
	case *pdu.Abort:
		a.closeConn()
		return nil, &AbortError{Source: r.Source, Reason: r.Reason, Received: true}
	default:
		return nil, a.failEstablish(fmt.Errorf("%v while waiting for A-ASSOCIATE-AC", resp.Type()), nil)
	}
}

func newAssociation(conn net.Conn, to Timeouts, log *slog.Logger, requestor bool) *Association {
	if log == nil {
		log = slog.Default()
	}
	to = to.WithDefaults()
	return &Association{
		conn: conn, br: bufio.NewReaderSize(conn, 64<<10), log: log,
		requestor: requestor, to: to, readTimeout: to.Read,
	}
}

// failEstablish aborts during establishment (AA-1 for an unexpected or
// unrecognized PDU; a timer expiry or a broken transport just closes) and
// returns err.
func (a *Association) failEstablish(err, readErr error) error {
	var ne net.Error
	switch {
	case readErr != nil && (errors.Is(readErr, io.EOF) || errors.Is(readErr, io.ErrUnexpectedEOF) || errors.As(readErr, &ne)):
		a.closeConn()
	case errors.Is(readErr, pdu.ErrUnknownType):
		a.abort(pdu.AbortSourceServiceProvider, pdu.AbortReasonUnrecognizedPDU)
	case readErr != nil:
		a.abort(pdu.AbortSourceServiceProvider, pdu.AbortReasonInvalidParameterValue)
	default:
		a.abort(pdu.AbortSourceServiceProvider, pdu.AbortReasonUnexpectedPDU)
	}
	return err
}

func (a *Association) setContexts(ctxs []Context) {
	a.contexts = make(map[byte]Context, len(ctxs))
	for _, c := range ctxs {
		a.contexts[c.ID] = c
	}
}

// Contexts returns the negotiated presentation contexts.
func (a *Association) Contexts() []Context {
	out := make([]Context, 0, len(a.contexts))
	for _, c := range a.contexts {
		out = append(out, c)
	}
	return out
}

// Context returns the presentation context id.
func (a *Association) Context(id byte) (Context, bool) {
	c, ok := a.contexts[id]
	return c, ok
}

// FindContext returns an accepted context for abstract syntax as whose
// transfer syntax is one of ts (any if ts is empty), preferring the order of ts.
func (a *Association) FindContext(as string, ts ...string) (Context, bool) {
	var best Context
	bestRank := -1
	for _, c := range a.contexts {
		if !c.Accepted() || c.AbstractSyntax != as {
			continue
		}
		rank := 0
		if len(ts) > 0 {
			rank = -1
			for i, t := range ts {
				if t == c.TransferSyntax {
					rank = len(ts) - i
				}
			}
			if rank < 0 {
				continue
			}
		}
		if rank > bestRank || (rank == bestRank && c.ID < best.ID) {
			best, bestRank = c, rank
		}
	}
	return best, bestRank >= 0
}

// PeerMaxPDULength is the Maximum Length announced by the peer: the largest
// P-DATA-TF body we may send (0 = unlimited).
func (a *Association) PeerMaxPDULength() uint32 { return a.peerMax }

// CallingAETitle returns the requestor's AE title.
func (a *Association) CallingAETitle() string { return a.RQ.CallingAETitle }

// CalledAETitle returns the acceptor's AE title as requested.
func (a *Association) CalledAETitle() string { return a.RQ.CalledAETitle }

// RemoteAddr is the peer's transport address.
func (a *Association) RemoteAddr() net.Addr { return a.conn.RemoteAddr() }

// SetIdle marks whether the next read waits for a new message (Idle
// timeout, and interruptible by Interrupt) or continues one (Read timeout).
func (a *Association) SetIdle(idle bool) {
	a.mu.Lock()
	a.idle = idle
	a.mu.Unlock()
}

// Interrupt asks the association to stop at the next message boundary: a
// read waiting for a new message returns ErrShutdown at once, after an
// A-ABORT; a message in progress is finished first.
func (a *Association) Interrupt() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopping = true
	if a.idle && !a.closed {
		a.conn.SetReadDeadline(time.Now())
	}
}

// NextPDV returns the next PDV received (implements dimse.PDVSource). Its
// Data is valid until the next call. An A-RELEASE-RQ is answered and
// reported as ErrReleased; an A-ABORT as *AbortError; any protocol error
// aborts the association.
func (a *Association) NextPDV() (pdu.PDV, error) {
	for len(a.pending) == 0 {
		if err := a.readPData(); err != nil {
			return pdu.PDV{}, err
		}
	}
	v := a.pending[0]
	a.pending = a.pending[1:]
	return v, nil
}

func (a *Association) readPData() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return ErrClosed
	}
	idle, stopping := a.idle, a.stopping
	if !(idle && stopping) {
		// Set under mu so that a concurrent Interrupt's deadline is not overwritten.
		d := a.readTimeout
		if idle {
			d = a.to.Idle
		}
		a.conn.SetReadDeadline(time.Now().Add(d))
	}
	a.mu.Unlock()
	if idle && stopping {
		a.abort(pdu.AbortSourceServiceUser, 0)
		return ErrShutdown
	}
	t, n, err := pdu.ReadHeader(a.br)
	if err == nil && t == pdu.TypePDataTF {
		limit := a.ourMax
		if limit == 0 {
			limit = maxUnlimitedPDataTF
		}
		if n > limit {
			err = fmt.Errorf("P-DATA-TF of %d bytes, limit %d: %w", n, limit, pdu.ErrTooLarge)
			return a.protocolError(err, pdu.AbortReasonInvalidParameterValue)
		}
		if cap(a.buf) < int(n) {
			a.buf = make([]byte, n)
		}
		a.buf = a.buf[:n]
		// Once a PDU has begun, its rest is bounded by the read timeout.
		a.conn.SetReadDeadline(time.Now().Add(a.to.Read))
		if _, err = io.ReadFull(a.br, a.buf); err != nil {
			return a.transportError(fmt.Errorf("read P-DATA-TF body: %w", err))
		}
		p, err := pdu.Decode(t, a.buf)
		if err != nil {
			return a.protocolError(err, pdu.AbortReasonInvalidParameterValue)
		}
		items := p.(*pdu.PDataTF).Items
		for _, v := range items {
			if c, ok := a.contexts[v.ContextID]; !ok || !c.Accepted() {
				return a.protocolError(fmt.Errorf("PDV on presentation context %d, not accepted", v.ContextID), pdu.AbortReasonInvalidParameterValue)
			}
		}
		a.pending = items
		return nil
	}
	if err != nil {
		a.mu.Lock()
		stopping = a.stopping
		a.mu.Unlock()
		var ne net.Error
		if stopping && errors.As(err, &ne) && ne.Timeout() {
			a.abort(pdu.AbortSourceServiceUser, 0)
			return ErrShutdown
		}
		if errors.As(err, &ne) && ne.Timeout() {
			// Idle or read timer expired: tell the peer before closing.
			a.abort(pdu.AbortSourceServiceProvider, pdu.AbortReasonNotSpecified)
			return fmt.Errorf("read PDU header: %w", err)
		}
		return a.transportError(fmt.Errorf("read PDU header: %w", err))
	}
	if n > maxControlPDU {
		return a.protocolError(fmt.Errorf("%v of %d bytes: %w", t, n, pdu.ErrTooLarge), pdu.AbortReasonInvalidParameterValue)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(a.br, body); err != nil {
		return a.transportError(fmt.Errorf("read %v body: %w", t, err))
	}
	p, err := pdu.Decode(t, body)
	if err != nil {
		reason := pdu.AbortReasonInvalidParameterValue
		if errors.Is(err, pdu.ErrUnknownType) {
			reason = pdu.AbortReasonUnrecognizedPDU
		}
		return a.protocolError(err, reason)
	}
	switch r := p.(type) {
	case *pdu.ReleaseRQ:
		if a.requestor {
			// Release collision (PS3.8 Sta9..12) is not supported; abort.
			return a.protocolError(errors.New("A-RELEASE-RQ received by the requestor"), pdu.AbortReasonUnexpectedPDU)
		}
		// AR-2/AR-4: answer A-RELEASE-RP; the requestor closes the transport.
		err := a.writePDU(&pdu.ReleaseRP{})
		a.closeConn()
		if err != nil {
			return fmt.Errorf("send A-RELEASE-RP: %w", err)
		}
		return ErrReleased
	case *pdu.Abort:
		a.closeConn()
		return &AbortError{Source: r.Source, Reason: r.Reason, Received: true}
	default:
		return a.protocolError(fmt.Errorf("unexpected %v on an established association", t), pdu.AbortReasonUnexpectedPDU)
	}
}

func (a *Association) transportError(err error) error {
	a.closeConn()
	return err
}

// protocolError implements AA-8: send A-ABORT (service provider), close.
func (a *Association) protocolError(err error, reason byte) error {
	a.abort(pdu.AbortSourceServiceProvider, reason)
	return &AbortError{Source: pdu.AbortSourceServiceProvider, Reason: reason, Cause: err}
}

// Write writes one or more whole PDUs (as produced by dimse.WriteMessage)
// under the write timeout.
func (a *Association) Write(b []byte) (int, error) {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.conn.SetWriteDeadline(time.Now().Add(a.to.Write))
	n, err := a.conn.Write(b)
	if err != nil {
		a.closeConn()
	}
	return n, err
}

func (a *Association) writePDU(p pdu.PDU) error {
	b, err := pdu.Encode(p)
	if err != nil {
		return err
	}
	_, err = a.Write(b)
	return err
}

// Release performs an orderly release as requestor (PS3.8 AR-1 → Sta7):
// sends A-RELEASE-RQ and waits up to ARTIM for A-RELEASE-RP, then closes.
func (a *Association) Release(ctx context.Context) error {
	if !a.requestor {
		return errors.New("release: only the requestor may release (PS3.8 §7.2)")
	}
	stop := context.AfterFunc(ctx, func() { a.conn.SetDeadline(time.Now()) })
	defer stop()
	defer a.closeConn()
	if err := a.writePDU(&pdu.ReleaseRQ{}); err != nil {
		return fmt.Errorf("send A-RELEASE-RQ: %w", err)
	}
	deadline := time.Now().Add(a.to.ARTIM)
	for {
		a.conn.SetReadDeadline(deadline)
		p, err := pdu.Read(a.br, max(a.ourMax, maxControlPDU))
		if err != nil {
			return fmt.Errorf("wait for A-RELEASE-RP: %w", err)
		}
		switch r := p.(type) {
		case *pdu.ReleaseRP:
			return nil
		case *pdu.Abort:
			return &AbortError{Source: r.Source, Reason: r.Reason, Received: true}
		case *pdu.PDataTF:
			// Sta7 may still receive P-DATA; nothing is waiting for it.
		default:
			a.abort(pdu.AbortSourceServiceProvider, pdu.AbortReasonUnexpectedPDU)
			return fmt.Errorf("unexpected %v while waiting for A-RELEASE-RP", p.Type())
		}
	}
}

// Abort sends A-ABORT (service user) and closes the transport (AA-1).
func (a *Association) Abort() { a.abort(pdu.AbortSourceServiceUser, 0) }

func (a *Association) abort(source, reason byte) {
	a.mu.Lock()
	closed := a.closed
	a.mu.Unlock()
	if !closed {
		a.wmu.Lock()
		a.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		b, _ := pdu.Encode(&pdu.Abort{Source: source, Reason: reason})
		a.conn.Write(b)
		a.wmu.Unlock()
	}
	a.closeConn()
}

// Close closes the transport without any PDU.
func (a *Association) Close() error { a.closeConn(); return nil }

func (a *Association) closeConn() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.closed {
		a.closed = true
		a.conn.Close()
	}
}
