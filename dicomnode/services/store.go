// Package services implements the DIMSE-C service classes of PS3.4 on top of
// association and dimse: the Verification and Storage SCPs (Server), and
// the SCU side of Verification, Storage, Query/Retrieve FIND, MOVE and GET
// (Client).
//
// The Storage SCP streams each received data set into a Part-10 file in a
// temporary directory, fsyncs it, and hands its path to a StoreHandler: the
// single intervention hook whose answer is the C-STORE status. SpoolStore is
// the default durable handler.
package services

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	"github.com/cspine/cspine/dicomnode/dimse"
)

// StoreRequest describes a received instance. The file at Path is a
// complete Part-10 file (preamble, File Meta Information with the
// negotiated transfer syntax, data set exactly as received) in the
// StoreHandler's TempDir, written but not yet fsynced (its write-back to
// disk was started while it arrived). A handler that keeps it must make it
// durable and move it (SpoolStore.Keep: fsync, link, fsync of the
// directory); after HandleStore returns, the server removes whatever is
// left at Path.
type StoreRequest struct {
	SOPClassUID       string
	SOPInstanceUID    string
	TransferSyntaxUID string
	CallingAETitle    string
	CalledAETitle     string
	RemoteAddr        net.Addr
	// MoveOriginatorAETitle and MoveOriginatorMessageID are set when the
	// C-STORE is a sub-operation of a C-MOVE.
	MoveOriginatorAETitle   string
	MoveOriginatorMessageID uint16
	Path                    string
	// DataSetSize is the number of data set bytes received (excluding file meta).
	DataSetSize int64
	Received    time.Time
	// Head holds the first bytes of the data set (up to 64 KiB), set for
	// StoreStream.Commit: enough to read the UIDs near its start without
	// reading the data back.
	Head []byte
}

// StoreHandler decides the outcome of a C-STORE. It is called once per
// instance, after the data set was received completely and verified to
// match the command's SOP Class and Instance UIDs.
//
// The returned status is sent as is when err is nil (0x0000 success, or a
// 0xBxxx warning). When err is non-nil it is logged; a failure status
// (0xA7xx, 0xA9xx, 0xCxxx) returned with it is sent, anything else becomes
// 0xA700 (out of resources). A handler must only answer success once the
// instance is durable: that is the promise C-STORE success makes.
type StoreHandler interface {
	HandleStore(ctx context.Context, req *StoreRequest) (dimse.Status, error)
}

// TempDirer is implemented by handlers that want incoming files written in
// a particular directory (on the same file system as their store, so that
// moving a file is a rename).
type TempDirer interface {
	TempDir() string
}

// StoreHandlerFunc adapts a function to StoreHandler.
type StoreHandlerFunc func(ctx context.Context, req *StoreRequest) (dimse.Status, error)

// HandleStore implements StoreHandler.
func (f StoreHandlerFunc) HandleStore(ctx context.Context, req *StoreRequest) (dimse.Status, error) {
	return f(ctx, req)
}

// StreamStorer is implemented by handlers that take a data set as it
// arrives instead of from a temporary file. For each C-STORE the server
// calls BeginStore (req has no Path, DataSetSize or Head yet), writes the
// Part-10 file (preamble and File Meta Information, then the data set as
// received) to the returned StoreStream, and then calls exactly one of
// Commit (everything arrived and was accepted by the server's checks) or
// Abort (it did not, or was refused). BeginStore returning ErrNoStream
// makes the server use the temporary file and HandleStore instead; any
// other error answers A700.
type StreamStorer interface {
	BeginStore(ctx context.Context, req *StoreRequest) (StoreStream, error)
}

// StoreStream receives one data set. A Write error makes the server stop
// writing, answer A700 and call Abort. Commit's status is the answer, by the
// same rules as StoreHandler.HandleStore; like HandleStore it must only
// answer success once the instance is durable.
type StoreStream interface {
	io.Writer
	Commit(ctx context.Context, req *StoreRequest) (dimse.Status, error)
	Abort()
}

// ErrNoStream is returned by StreamStorer.BeginStore to have the data set
// written to a temporary file and passed to HandleStore.
var ErrNoStream = errors.New("store handler does not stream")
