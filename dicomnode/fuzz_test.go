package dicomnode_test

import (
	"context"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/cspine/cspine/dicomnode"
	"github.com/cspine/cspine/dicomnode/association"
	"github.com/cspine/cspine/dicomnode/dimse"
	"github.com/cspine/cspine/dicomnode/pdu"
	"github.com/cspine/cspine/dicomnode/services"
)

// FuzzAssociation feeds arbitrary bytes, after a valid A-ASSOCIATE-RQ, to
// the acceptor and the Storage/Verification SCP over an in-memory
// connection. Whatever arrives, the association must end (no hang, no
// panic) and no temporary file may remain.
func FuzzAssociation(f *testing.F) {
	echo, _ := dimse.EncodeCommand(&dimse.Command{CommandField: dimse.CEchoRQ, AffectedSOPClassUID: association.VerificationSOPClass, MessageID: 1, CommandDataSetType: dimse.NoDataSet})
	store, _ := dimse.EncodeCommand(&dimse.Command{CommandField: dimse.CStoreRQ, AffectedSOPClassUID: association.CRImageStorage,
		MessageID: 2, CommandDataSetType: dimse.HasDataSet, AffectedSOPInstanceUID: "1.2.3"})
	seed := func(ps ...pdu.PDU) []byte {
		var b []byte
		for _, p := range ps {
			e, _ := pdu.Encode(p)
			b = append(b, e...)
		}
		return b
	}
	f.Add(seed(pdata(1, 3, echo), &pdu.ReleaseRQ{}))
	f.Add(seed(pdata(3, 3, store), pdata(3, 2, []byte{8, 0, 0x16, 0, 2, 0, 0, 0, '1', 0}), &pdu.ReleaseRQ{}))
	f.Add(seed(pdata(3, 3, store), pdata(3, 0, []byte{1, 2, 3}), &pdu.Abort{}))
	f.Add([]byte{4, 0, 0, 0, 0, 8, 0, 0, 0, 2, 1, 3})
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3})
	f.Add(seed(pdata(1, 1, echo[:10])))

	spool, err := services.NewSpoolStore(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	rq, _ := pdu.Encode(rqFor([]pdu.UserItem{&pdu.MaxLength{Length: 0}}, echoPC, storePC))
	pol := &association.Policy{AETitles: []string{"CSPINE"}, Offer: association.Offer{
		SOPClasses: association.DefaultSOPClasses, TransferSyntaxes: association.DefaultTransferSyntaxes,
		MaxPDULength: 1 << 16, ImplementationClassUID: dicomnode.ImplementationClassUID}}
	srv := &services.Server{Store: spool, MaxObjectSize: 1 << 20, Logger: discardLogger()}
	f.Fuzz(func(t *testing.T, data []byte) { runOne(t, spool, pol, srv, rq, data) })
}

// runOne sends rq and data to an acceptor over net.Pipe.
func runOne(t *testing.T, spool *services.SpoolStore, pol *association.Policy, srv *services.Server, rq, data []byte) {
	to := association.Timeouts{ARTIM: 200 * time.Millisecond, Idle: 200 * time.Millisecond, Read: 200 * time.Millisecond, Write: 200 * time.Millisecond}
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer server.Close()
		a, err := association.Accept(context.Background(), server, pol, &association.AcceptOpts{Timeouts: to, Logger: discardLogger()})
		if err != nil {
			return
		}
		srv.Serve(context.Background(), a)
		a.Close()
	}()
	go io.Copy(io.Discard, client) // whatever the node answers
	client.SetWriteDeadline(time.Now().Add(2 * time.Second))
	client.Write(rq)
	client.Write(data)
	// net.Pipe is unbuffered: the node has read everything; hang up so
	// that each run ends at once instead of waiting for the idle timer.
	client.Close()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("association did not end")
	}
	ents, _ := os.ReadDir(spool.TempDir())
	if len(ents) != 0 {
		t.Fatalf("%d temporary files left", len(ents))
	}
}
