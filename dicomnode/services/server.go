package services

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/cspine/cspine/dicomnode/association"
	"github.com/cspine/cspine/dicomnode/dimse"
)

// Server is the SCP side: it answers C-ECHO and C-STORE on accepted
// associations. Other DIMSE requests are answered with status 0x0211
// (unrecognized operation).
type Server struct {
	// Store receives C-STOREs; nil refuses them with 0x0122 (SOP class
	// not supported).
	Store StoreHandler
	// TempDir receives incoming files when Store is not a TempDirer;
	// "" means os.TempDir().
	TempDir string
	// MaxObjectSize bounds one data set in bytes; 0 means no limit. A larger
	// object is answered 0xA700 and not kept.
	MaxObjectSize int64
	// ImplementationClassUID and ImplementationVersionName are written in
	// the File Meta Information of received files.
	ImplementationClassUID    string
	ImplementationVersionName string
	Logger                    *slog.Logger
}

func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

// Serve answers DIMSE requests on a until the peer releases or aborts, the
// association is interrupted, or a protocol error occurs. It returns nil
// after an orderly release.
func (s *Server) Serve(ctx context.Context, a *association.Association) error {
	r := dimse.NewReader(a)
	for {
		a.SetIdle(true)
		m, err := r.ReadMessage()
		a.SetIdle(false)
		if err != nil {
			if errors.Is(err, association.ErrReleased) {
				return nil
			}
			if errors.Is(err, dimse.ErrProtocol) || errors.Is(err, dimse.ErrMalformedCommand) {
				a.Abort()
			}
			return err
		}
		if err := s.dispatch(ctx, a, m); err != nil {
			// A-ABORT (a no-op when the association is already closed).
			a.Abort()
			return err
		}
	}
}

func (s *Server) dispatch(ctx context.Context, a *association.Association, m *dimse.Message) error {
	c := m.Command
	switch c.CommandField {
	case dimse.CEchoRQ:
		if err := m.Discard(); err != nil {
			return err
		}
		return s.respond(a, m, &dimse.Command{CommandField: dimse.CEchoRSP, AffectedSOPClassUID: c.AffectedSOPClassUID,
			MessageIDBeingRespondedTo: c.MessageID, Status: dimse.StatusSuccess})
	case dimse.CStoreRQ:
		return s.handleStore(ctx, a, m)
	case dimse.CCancelRQ:
		return m.Discard()
	default:
		if err := m.Discard(); err != nil {
			return err
		}
		if c.CommandField.IsResponse() {
			// A response to nothing we asked: ignore it (PS3.7 §9.3.1.3 leaves this to the user).
			return nil
		}
		return s.respond(a, m, &dimse.Command{CommandField: c.CommandField | 0x8000, AffectedSOPClassUID: c.AffectedSOPClassUID,
			MessageIDBeingRespondedTo: c.MessageID, Status: dimse.StatusUnrecognizedOperation})
	}
}

func (s *Server) respond(a *association.Association, m *dimse.Message, rsp *dimse.Command) error {
	if err := dimse.WriteMessage(a, a.PeerMaxPDULength(), m.ContextID, rsp, nil, 0); err != nil {
		return fmt.Errorf("send %v: %w", rsp.CommandField, err)
	}
	return nil
}

// headerPrefixLen is how much of each data set is kept in memory to check
// its SOP Class and Instance UIDs against the command.
const headerPrefixLen = 64 << 10

// storeOutcome is the status and comment of one C-STORE.
type storeOutcome struct {
	status  dimse.Status
	comment string
}

func (s *Server) handleStore(ctx context.Context, a *association.Association, m *dimse.Message) error {
	c := m.Command
	rsp := &dimse.Command{CommandField: dimse.CStoreRSP, AffectedSOPClassUID: c.AffectedSOPClassUID,
		MessageIDBeingRespondedTo: c.MessageID, AffectedSOPInstanceUID: c.AffectedSOPInstanceUID}
	out, err := s.receive(ctx, a, m)
	if err != nil {
		return err // the association is gone (abort, transport error)
	}
	rsp.Status, rsp.ErrorComment = out.status, out.comment
	return s.respond(a, m, rsp)
}

// receive streams the data set of a C-STORE-RQ to a temporary Part-10 file
// and runs the handler. An error means the association cannot continue.
func (s *Server) receive(ctx context.Context, a *association.Association, m *dimse.Message) (storeOutcome, error) {
	c := m.Command
	log := s.log().With("calling_ae", a.CallingAETitle(), "message_id", c.MessageID)
	pc, _ := a.Context(m.ContextID)
	if m.Data == nil {
		return storeOutcome{dimse.StatusCannotUnderstand, "C-STORE-RQ without data set"}, nil
	}
	if s.Store == nil || pc.AbstractSyntax != c.AffectedSOPClassUID {
		if err := m.Discard(); err != nil {
			return storeOutcome{}, err
		}
		return storeOutcome{dimse.StatusSOPClassNotSupported, "SOP class does not match the presentation context"}, nil
	}
	if c.AffectedSOPInstanceUID == "" {
		if err := m.Discard(); err != nil {
			return storeOutcome{}, err
		}
		return storeOutcome{dimse.StatusCannotUnderstand, "no Affected SOP Instance UID"}, nil
	}
	if ss, ok := s.Store.(StreamStorer); ok {
		req := &StoreRequest{
			SOPClassUID: c.AffectedSOPClassUID, SOPInstanceUID: c.AffectedSOPInstanceUID,
			TransferSyntaxUID: pc.TransferSyntax, CallingAETitle: a.CallingAETitle(), CalledAETitle: a.CalledAETitle(),
			RemoteAddr: a.RemoteAddr(), MoveOriginatorAETitle: c.MoveOriginatorAETitle,
			MoveOriginatorMessageID: c.MoveOriginatorMessageID, Received: time.Now(),
		}
		stream, err := s.beginStream(ctx, ss, req)
		switch {
		case err == nil:
			return s.receiveStream(ctx, log, a, m, pc.TransferSyntax, req, stream)
		case !errors.Is(err, ErrNoStream):
			log.Error("c-store: cannot receive", "err", err)
			if err := m.Discard(); err != nil {
				return storeOutcome{}, err
			}
			return storeOutcome{dimse.StatusOutOfResources, "the receiving node cannot keep instances now"}, nil
		}
	}
	dir := s.TempDir
	if td, ok := s.Store.(TempDirer); ok {
		dir = td.TempDir()
	}
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, "incoming-*.part")
	if err != nil {
		log.Error("c-store: create spool file", "err", err)
		if err := m.Discard(); err != nil {
			return storeOutcome{}, err
		}
		return storeOutcome{dimse.StatusOutOfResources, "cannot create spool file"}, nil
	}
	path := f.Name()
	defer os.Remove(path) // whatever the handler did not move
	closed := false
	defer func() {
		if !closed {
			f.Close()
		}
	}()

	meta := s.fileMeta(a, m, pc.TransferSyntax)
	// Start writing the data back to disk while it is still arriving, so
	// that the handler's fsync has little left to wait for.
	wb := &writebackWriter{f: f}
	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(wb)
	defer func() {
		bw.Reset(nil)
		writerPool.Put(bw)
	}()
	sink, over, err := s.receiveDataSet(log, bw, meta, m.Data)
	if err != nil {
		return storeOutcome{}, err
	}
	if over != nil {
		return *over, nil
	}
	if sink.werr == nil {
		sink.werr = bw.Flush()
	}
	if err := f.Close(); sink.werr == nil {
		sink.werr = err
	}
	closed = true
	if out, bad := checkReceived(ctx, log, sink, "c-store: write spool file", pc.TransferSyntax, c); bad {
		return out, nil
	}

	req := &StoreRequest{
		SOPClassUID: c.AffectedSOPClassUID, SOPInstanceUID: c.AffectedSOPInstanceUID,
		TransferSyntaxUID: pc.TransferSyntax, CallingAETitle: a.CallingAETitle(), CalledAETitle: a.CalledAETitle(),
		RemoteAddr: a.RemoteAddr(), MoveOriginatorAETitle: c.MoveOriginatorAETitle,
		MoveOriginatorMessageID: c.MoveOriginatorMessageID, Path: path, DataSetSize: sink.n, Received: time.Now(),
	}
	st, herr := s.callHandler(ctx, req)
	return handled(log, st, herr, c.AffectedSOPInstanceUID, sink.n), nil
}

// checkReceived checks a received data set before it goes to the handler:
// written without error (what says where it was written to, for the log),
// parseable at its head, and naming the SOP Class and Instance of the
// command. bad is true with the outcome to answer when a check failed.
func checkReceived(ctx context.Context, log *slog.Logger, sink *storeSink, what, ts string, c *dimse.Command) (out storeOutcome, bad bool) {
	if sink.werr != nil {
		level := slog.LevelError
		if errors.Is(sink.werr, syscall.ENOSPC) {
			level = slog.LevelWarn
		}
		log.Log(ctx, level, what, "err", sink.werr)
		return storeOutcome{dimse.StatusOutOfResources, "write error on the receiving node"}, true
	}
	class, inst, complete, err := headerIDs(sink.prefix, sink.n > int64(len(sink.prefix)), ts)
	switch {
	case err != nil:
		log.Warn("c-store: data set not understood", "err", err)
		return storeOutcome{dimse.StatusCannotUnderstand, "data set cannot be parsed"}, true
	case complete && (class != c.AffectedSOPClassUID || inst != c.AffectedSOPInstanceUID):
		log.Warn("c-store: data set does not match command")
		return storeOutcome{dimse.StatusDataSetDoesNotMatchSOPClass, "SOP Class/Instance UID differ from the command"}, true
	}
	return storeOutcome{}, false
}

// handled turns the store handler's answer into the outcome to send: a
// handler error is a failure status (A700 unless it gave one).
func handled(log *slog.Logger, st dimse.Status, herr error, sopInstanceUID string, n int64) storeOutcome {
	if herr != nil {
		log.Error("c-store: handler failed", "status", st, "err", herr)
		if !st.IsFailure() {
			st = dimse.StatusOutOfResources
		}
		return storeOutcome{st, "the receiving node could not keep the instance"}
	}
	log.Debug("c-store: stored", "sop_instance_uid", sopInstanceUID, "bytes", n, "status", st)
	return storeOutcome{status: st}
}

func (s *Server) fileMeta(a *association.Association, m *dimse.Message, ts string) []byte {
	c := m.Command
	return EncodeFileMeta(FileMeta{
		MediaStorageSOPClassUID: c.AffectedSOPClassUID, MediaStorageSOPInstanceUID: c.AffectedSOPInstanceUID,
		TransferSyntaxUID: ts, ImplementationClassUID: s.ImplementationClassUID,
		ImplementationVersionName: s.ImplementationVersionName, SourceAETitle: a.CallingAETitle(),
	})
}

// receiveStream streams the data set of a C-STORE-RQ into a StoreStream:
// the same checks as for a temporary file, then Commit or Abort.
func (s *Server) receiveStream(ctx context.Context, log *slog.Logger, a *association.Association, m *dimse.Message,
	ts string, req *StoreRequest, stream StoreStream) (out storeOutcome, err error) {
	c := m.Command
	committed := false
	defer func() {
		if !committed {
			stream.Abort()
		}
	}()
	sink, over, err := s.receiveDataSet(log, stream, s.fileMeta(a, m, ts), m.Data)
	if err != nil {
		return storeOutcome{}, err
	}
	if over != nil {
		return *over, nil
	}
	if out, bad := checkReceived(ctx, log, sink, "c-store: write received data", ts, c); bad {
		return out, nil
	}
	req.DataSetSize, req.Head = sink.n, sink.prefix
	committed = true
	st, herr := s.commitStream(ctx, stream, req)
	return handled(log, st, herr, c.AffectedSOPInstanceUID, sink.n), nil
}

func (s *Server) beginStream(ctx context.Context, ss StreamStorer, req *StoreRequest) (st StoreStream, err error) {
	defer func() {
		if r := recover(); r != nil {
			st, err = nil, fmt.Errorf("store handler panicked: %v", r)
		}
	}()
	return ss.BeginStore(ctx, req)
}

func (s *Server) commitStream(ctx context.Context, stream StoreStream, req *StoreRequest) (st dimse.Status, err error) {
	defer func() {
		if r := recover(); r != nil {
			st, err = dimse.StatusOutOfResources, fmt.Errorf("store handler panicked: %v", r)
		}
	}()
	return stream.Commit(ctx, req)
}

// callHandler runs the StoreHandler, turning a panic into a failure.
func (s *Server) callHandler(ctx context.Context, req *StoreRequest) (st dimse.Status, err error) {
	defer func() {
		if r := recover(); r != nil {
			st, err = dimse.StatusOutOfResources, fmt.Errorf("store handler panicked: %v", r)
		}
	}()
	return s.Store.HandleStore(ctx, req)
}

// writerPool recycles the spool file write buffers.
var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 256<<10) }}

// storeSink writes the data set to the spool file, keeps its first bytes,
// counts it, and after a write error or the size limit keeps consuming
// (so that the association stays usable) without writing.
// receiveDataSet writes the file meta information and then the C-STORE data set
// into w through a sink that counts, keeps the head and enforces
// MaxObjectSize; a write error is kept in the sink (checkReceived answers
// it) so that the rest of the data set is still read off the association.
// A data set that did not arrive is an error: the association is broken.
// One over the size limit gives the outcome to answer instead of a sink.
func (s *Server) receiveDataSet(log *slog.Logger, w io.Writer, meta []byte, data io.Reader) (*storeSink, *storeOutcome, error) {
	sink := &storeSink{w: w, limit: s.MaxObjectSize}
	if _, err := w.Write(meta); err != nil {
		sink.werr = err
	}
	if _, err := io.Copy(sink, data); err != nil {
		return nil, nil, fmt.Errorf("receive C-STORE data set: %w", err)
	}
	if sink.tooBig {
		log.Warn("c-store: object larger than limit", "limit", s.MaxObjectSize)
		return nil, &storeOutcome{dimse.StatusOutOfResources, "object exceeds the size limit"}, nil
	}
	return sink, nil, nil
}

type storeSink struct {
	w      io.Writer
	limit  int64
	n      int64
	prefix []byte
	werr   error
	tooBig bool
}

func (s *storeSink) Write(p []byte) (int, error) {
	s.n += int64(len(p))
	if len(s.prefix) < headerPrefixLen {
		s.prefix = append(s.prefix, p[:min(len(p), headerPrefixLen-len(s.prefix))]...)
	}
	if s.limit > 0 && s.n > s.limit {
		s.tooBig = true
	}
	if s.werr == nil && !s.tooBig {
		if _, err := s.w.Write(p); err != nil {
			s.werr = err
		}
	}
	return len(p), nil
}
