package services

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/suyashkumar/dicom"

	"github.com/cspine/cspine/dicomnode/association"
	"github.com/cspine/cspine/dicomnode/dimse"
)

// Query/Retrieve information models (PS3.4 C.6).
const (
	PatientRootFind = "1.2.840.10008.5.1.4.1.2.1.1"
	PatientRootMove = "1.2.840.10008.5.1.4.1.2.1.2"
	PatientRootGet  = "1.2.840.10008.5.1.4.1.2.1.3"
	StudyRootFind   = "1.2.840.10008.5.1.4.1.2.2.1"
	StudyRootMove   = "1.2.840.10008.5.1.4.1.2.2.2"
	StudyRootGet    = "1.2.840.10008.5.1.4.1.2.2.3"
)

// Client is the SCU side of an association we requested. Its methods run
// one operation at a time (asynchronous window 1).
type Client struct {
	A     *association.Association
	r     *dimse.Reader
	msgID uint16
	// Server answers the C-STOREs of C-GET sub-operations; nil refuses them.
	Server *Server
}

// NewClient wraps an established association.
func NewClient(a *association.Association) *Client {
	return &Client{A: a, r: dimse.NewReader(a)}
}

// Release releases the association.
func (c *Client) Release(ctx context.Context) error { return c.A.Release(ctx) }

func (c *Client) nextID() uint16 {
	c.msgID++
	if c.msgID == 0 {
		c.msgID = 1
	}
	return c.msgID
}

// watch makes ctx cancellation abort the association; it returns a stop func.
func (c *Client) watch(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, c.A.Abort)
}

func (c *Client) readResponse(ctx context.Context, want dimse.CommandField, id uint16) (*dimse.Message, error) {
	for {
		m, err := c.r.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%v: %w", want, ctx.Err())
			}
			return nil, fmt.Errorf("wait for %v: %w", want, err)
		}
		if m.Command.CommandField == dimse.CStoreRQ && c.Server != nil {
			// C-GET sub-operation arriving on this association: only on a
			// context where we were granted the SCP role.
			if pc, ok := c.A.Context(m.ContextID); !ok || !pc.RequestorSCP {
				if err := m.Discard(); err != nil {
					return nil, err
				}
				rsp := &dimse.Command{CommandField: dimse.CStoreRSP, AffectedSOPClassUID: m.Command.AffectedSOPClassUID,
					MessageIDBeingRespondedTo: m.Command.MessageID, AffectedSOPInstanceUID: m.Command.AffectedSOPInstanceUID,
					Status: dimse.StatusNotAuthorized, ErrorComment: "SCP role not negotiated"}
				if err := c.Server.respond(c.A, m, rsp); err != nil {
					return nil, err
				}
				continue
			}
			if err := c.Server.handleStore(ctx, c.A, m); err != nil {
				return nil, err
			}
			continue
		}
		if m.Command.CommandField != want || m.Command.MessageIDBeingRespondedTo != id {
			m.Discard()
			c.A.Abort()
			return nil, fmt.Errorf("unexpected %v (responding to %d) while waiting for %v to %d",
				m.Command.CommandField, m.Command.MessageIDBeingRespondedTo, want, id)
		}
		return m, nil
	}
}

// Echo performs C-ECHO (Verification SOP Class) and returns its status.
func (c *Client) Echo(ctx context.Context) (dimse.Status, error) {
	pc, ok := c.A.FindContext(association.VerificationSOPClass)
	if !ok {
		return 0, errors.New("c-echo: Verification not accepted by the peer")
	}
	defer c.watch(ctx)()
	id := c.nextID()
	rq := &dimse.Command{CommandField: dimse.CEchoRQ, AffectedSOPClassUID: association.VerificationSOPClass, MessageID: id}
	if err := dimse.WriteMessage(c.A, c.A.PeerMaxPDULength(), pc.ID, rq, nil, 0); err != nil {
		return 0, fmt.Errorf("c-echo: %w", err)
	}
	m, err := c.readResponse(ctx, dimse.CEchoRSP, id)
	if err != nil {
		return 0, err
	}
	m.Discard()
	return m.Command.Status, nil
}

// StoreFile sends the Part-10 file at path with C-STORE and returns the
// peer's status. The data set is streamed from the file; it must be sent in
// the file's own transfer syntax, so the peer must have accepted a context
// for the file's SOP class with that transfer syntax.
func (c *Client) StoreFile(ctx context.Context, path string) (dimse.Status, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("c-store: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("c-store: %w", err)
	}
	br := bufio.NewReaderSize(f, 256<<10)
	meta, n, err := ReadFileMeta(br)
	if err != nil {
		return 0, fmt.Errorf("c-store %s: %w", path, err)
	}
	return c.Store(ctx, meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID, br, st.Size()-n)
}

// Store sends size bytes of data set from data, encoded in transfer syntax ts.
func (c *Client) Store(ctx context.Context, sopClass, sopInstance, ts string, data io.Reader, size int64) (dimse.Status, error) {
	pc, ok := c.A.FindContext(sopClass, ts)
	if !ok {
		return 0, fmt.Errorf("c-store: no accepted presentation context for %s in %s", sopClass, ts)
	}
	defer c.watch(ctx)()
	id := c.nextID()
	rq := &dimse.Command{CommandField: dimse.CStoreRQ, AffectedSOPClassUID: sopClass, MessageID: id,
		Priority: dimse.PriorityMedium, AffectedSOPInstanceUID: sopInstance}
	if err := dimse.WriteMessage(c.A, c.A.PeerMaxPDULength(), pc.ID, rq, data, size); err != nil {
		return 0, fmt.Errorf("c-store: %w", err)
	}
	m, err := c.readResponse(ctx, dimse.CStoreRSP, id)
	if err != nil {
		return 0, err
	}
	m.Discard()
	return m.Command.Status, nil
}

// Find performs C-FIND with the identifier elems in information model
// sopClass (StudyRootFind or PatientRootFind) and returns the matches.
func (c *Client) Find(ctx context.Context, sopClass string, elems []*dicom.Element) ([]*dicom.Dataset, dimse.Status, error) {
	var out []*dicom.Dataset
	st, err := c.query(ctx, dimse.CFindRQ, sopClass, "", elems, func(m *dimse.Message, ts string) error {
		if m.Data == nil {
			return nil
		}
		b, err := io.ReadAll(m.Data)
		if err != nil {
			return err
		}
		ds, err := DecodeDataSet(b, ts)
		if err != nil {
			return fmt.Errorf("c-find: response identifier: %w", err)
		}
		out = append(out, ds)
		return nil
	})
	return out, st, err
}

// MoveResult is the final response of a C-MOVE or C-GET.
type MoveResult struct {
	Status                                dimse.Status
	Completed, Failed, Warning, Remaining int
}

// Move performs C-MOVE of the instances matching elems to destination AE
// (which may be our own AE), in model sopClass (StudyRootMove or
// PatientRootMove).
func (c *Client) Move(ctx context.Context, sopClass, destination string, elems []*dicom.Element) (MoveResult, error) {
	var res MoveResult
	st, err := c.query(ctx, dimse.CMoveRQ, sopClass, destination, elems, func(m *dimse.Message, _ string) error {
		counts(&res, m.Command)
		return m.Discard()
	})
	res.Status = st
	return res, err
}

// Get performs C-GET; the instances arrive as C-STOREs on this association
// and are handled by c.Server. The association must have been requested
// with SCP role selection for the storage SOP classes expected.
func (c *Client) Get(ctx context.Context, sopClass string, elems []*dicom.Element) (MoveResult, error) {
	if c.Server == nil {
		return MoveResult{}, errors.New("c-get: no Server to receive the instances")
	}
	var res MoveResult
	st, err := c.query(ctx, dimse.CGetRQ, sopClass, "", elems, func(m *dimse.Message, _ string) error {
		counts(&res, m.Command)
		return m.Discard()
	})
	res.Status = st
	return res, err
}

func counts(r *MoveResult, c *dimse.Command) {
	get := func(p *uint16) int {
		if p == nil {
			return 0
		}
		return int(*p)
	}
	r.Completed, r.Failed, r.Warning, r.Remaining = get(c.Completed), get(c.Failed), get(c.Warning), get(c.Remaining)
}

// query sends a C-FIND/C-MOVE/C-GET request and feeds each response to fn
// until the final (non-pending) one, whose status it returns.
func (c *Client) query(ctx context.Context, field dimse.CommandField, sopClass, dest string, elems []*dicom.Element,
	fn func(*dimse.Message, string) error) (dimse.Status, error) {
	pc, ok := c.A.FindContext(sopClass, association.ExplicitVRLittleEndian, association.ImplicitVRLittleEndian)
	if !ok {
		return 0, fmt.Errorf("%v: no accepted presentation context for %s", field, sopClass)
	}
	ident, err := EncodeDataSet(elems, pc.TransferSyntax)
	if err != nil {
		return 0, fmt.Errorf("%v: %w", field, err)
	}
	defer c.watch(ctx)()
	id := c.nextID()
	rq := &dimse.Command{CommandField: field, AffectedSOPClassUID: sopClass, MessageID: id,
		Priority: dimse.PriorityMedium, MoveDestination: dest}
	if err := dimse.WriteMessage(c.A, c.A.PeerMaxPDULength(), pc.ID, rq, bytesReader(ident), int64(len(ident))); err != nil {
		return 0, fmt.Errorf("%v: %w", field, err)
	}
	for {
		m, err := c.readResponse(ctx, field|0x8000, id)
		if err != nil {
			return 0, err
		}
		if err := fn(m, pc.TransferSyntax); err != nil {
			c.A.Abort()
			return 0, err
		}
		if m.Command.Status.Kind() != dimse.KindPending {
			return m.Command.Status, nil
		}
	}
}

// Cancel sends C-CANCEL-RQ for the operation with message ID id.
func (c *Client) Cancel(ctxID byte, id uint16) error {
	return dimse.WriteMessage(c.A, c.A.PeerMaxPDULength(), ctxID,
		&dimse.Command{CommandField: dimse.CCancelRQ, MessageIDBeingRespondedTo: id}, nil, 0)
}
