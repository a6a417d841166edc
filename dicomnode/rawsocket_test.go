package dicomnode_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/cspine/cspine/dicomnode"
	"github.com/cspine/cspine/dicomnode/association"
	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/dicomnode/dimse"
	"github.com/cspine/cspine/dicomnode/pdu"
	"github.com/cspine/cspine/dicomnode/services"
)

// raw is a hand-driven peer that speaks PDUs on a plain socket.
type raw struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &raw{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *raw) sendBytes(b []byte) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("send: %v", err)
	}
}

func (r *raw) send(p pdu.PDU) {
	r.t.Helper()
	b, err := pdu.Encode(p)
	if err != nil {
		r.t.Fatal(err)
	}
	r.sendBytes(b)
}

func (r *raw) recv() pdu.PDU {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := pdu.Read(r.br, 0)
	if err != nil {
		r.t.Fatalf("recv: %v", err)
	}
	return p
}

// expectClosed checks that the node closes the connection, after an
// optional A-ABORT, within d.
func (r *raw) expectClosed(d time.Duration) *pdu.Abort {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(d))
	var ab *pdu.Abort
	for {
		p, err := pdu.Read(r.br, 0)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				r.t.Fatalf("connection still open after %v", d)
			}
			return ab
		}
		if a, ok := p.(*pdu.Abort); ok {
			ab = a
		}
	}
}

func rqFor(items []pdu.UserItem, pcs ...pdu.PresentationContextRQ) *pdu.AssociateRQ {
	for i := range pcs {
		pcs[i].ID = byte(2*i + 1)
	}
	return &pdu.AssociateRQ{ProtocolVersion: 1, CalledAETitle: "CSPINE", CallingAETitle: "RAW",
		ApplicationContext: pdu.ApplicationContextName, PresentationContexts: pcs,
		UserInformation: pdu.UserInformation{Items: items}}
}

var (
	echoPC  = pdu.PresentationContextRQ{AbstractSyntax: association.VerificationSOPClass, TransferSyntaxes: []string{association.ImplicitVRLittleEndian}}
	storePC = pdu.PresentationContextRQ{AbstractSyntax: association.CRImageStorage, TransferSyntaxes: []string{association.ExplicitVRLittleEndian}}
)

func (r *raw) associate(items []pdu.UserItem) *pdu.AssociateAC {
	r.t.Helper()
	r.send(rqFor(items, echoPC, storePC))
	p := r.recv()
	ac, ok := p.(*pdu.AssociateAC)
	if !ok {
		r.t.Fatalf("got %#v, want A-ASSOCIATE-AC", p)
	}
	return ac
}

func pdata(ctxID, ctl byte, data []byte) *pdu.PDataTF {
	return &pdu.PDataTF{Items: []pdu.PDV{{ContextID: ctxID, Control: ctl, Data: data}}}
}

func (r *raw) expectResponse(field dimse.CommandField) *dimse.Command {
	r.t.Helper()
	var cmd []byte
	for {
		p, ok := r.recv().(*pdu.PDataTF)
		if !ok {
			r.t.Fatalf("want P-DATA-TF")
		}
		for _, v := range p.Items {
			cmd = append(cmd, v.Data...)
			if v.IsLast() {
				c, err := dimse.DecodeCommand(cmd)
				if err != nil {
					r.t.Fatal(err)
				}
				if c.CommandField != field {
					r.t.Fatalf("got %v, want %v", c.CommandField, field)
				}
				return c
			}
		}
	}
}

func (r *raw) release() {
	r.t.Helper()
	r.send(&pdu.ReleaseRQ{})
	if _, ok := r.recv().(*pdu.ReleaseRP); !ok {
		r.t.Fatal("want A-RELEASE-RP")
	}
}

func echoCommand(t *testing.T, id uint16) []byte {
	b, err := dimse.EncodeCommand(&dimse.Command{CommandField: dimse.CEchoRQ, AffectedSOPClassUID: association.VerificationSOPClass,
		MessageID: id, CommandDataSetType: dimse.NoDataSet})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func storeCommand(t *testing.T, id uint16, class, inst string) []byte {
	b, err := dimse.EncodeCommand(&dimse.Command{CommandField: dimse.CStoreRQ, AffectedSOPClassUID: class,
		MessageID: id, CommandDataSetType: dimse.HasDataSet, AffectedSOPInstanceUID: inst})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testDataSet returns the data set bytes of a synthetic image.
func testDataSet(t *testing.T, inst string, rows int) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.dcm")
	if err := dicomnodetest.WriteImage(p, dicomnodetest.Image{SOPInstanceUID: inst, StudyInstanceUID: uidRoot + ".20.1",
		SeriesInstanceUID: uidRoot + ".20.2", Rows: rows, Columns: rows}); err != nil {
		t.Fatal(err)
	}
	b, _ := dataSet(t, p)
	return b
}

// TestRawSocket drives the node with hand-made PDUs for what real peers
// rarely send. It runs alone (not parallel) so that goroutine counts mean
// something: after each case the node must be back to its idle goroutines
// and no temporary file may remain.
func TestRawSocket(t *testing.T) {
	b := setup(t, func(c *dicomnode.Config) {
		c.Timeouts = association.Timeouts{ARTIM: 500 * time.Millisecond, Idle: 700 * time.Millisecond, Read: 700 * time.Millisecond, Write: 2 * time.Second}
		c.MaxObjectSize = 1 << 20
	})
	runtime.GC()
	time.Sleep(50 * time.Millisecond)
	base := runtime.NumGoroutine()

	cases := []struct {
		name string
		run  func(t *testing.T, r *raw)
	}{
		{"max PDU 0 and async window", func(t *testing.T, r *raw) {
			ac := r.associate([]pdu.UserItem{&pdu.MaxLength{Length: 0}, &pdu.ImplementationClassUID{UID: "1.2.3"},
				&pdu.AsyncOperationsWindow{MaxInvoked: 8, MaxPerformed: 8}})
			if w := ac.UserInformation.AsyncOperationsWindow(); w == nil || w.MaxInvoked != 1 {
				t.Fatalf("async window answer %+v", w)
			}
			if ac.UserInformation.ImplementationClassUID() != dicomnode.ImplementationClassUID {
				t.Fatal("no implementation class UID in A-ASSOCIATE-AC")
			}
			r.send(pdata(1, pdu.PDVCommand|pdu.PDVLast, echoCommand(t, 1)))
			if c := r.expectResponse(dimse.CEchoRSP); c.Status != 0 || c.MessageIDBeingRespondedTo != 1 {
				t.Fatalf("%+v", c)
			}
			r.release()
		}},
		{"command split across PDVs and PDUs", func(t *testing.T, r *raw) {
			r.associate([]pdu.UserItem{&pdu.MaxLength{Length: 16384}})
			cmd := echoCommand(t, 7)
			r.send(pdata(1, pdu.PDVCommand, cmd[:5]))
			r.send(&pdu.PDataTF{Items: []pdu.PDV{{ContextID: 1, Control: pdu.PDVCommand, Data: cmd[5:20]},
				{ContextID: 1, Control: pdu.PDVCommand, Data: cmd[20:21]}}})
			r.send(pdata(1, pdu.PDVCommand|pdu.PDVLast, cmd[21:]))
			if c := r.expectResponse(dimse.CEchoRSP); c.MessageIDBeingRespondedTo != 7 {
				t.Fatalf("%+v", c)
			}
			r.release()
		}},
		{"unknown items and sub-items are ignored", func(t *testing.T, r *raw) {
			rq := rqFor([]pdu.UserItem{&pdu.MaxLength{Length: 16384}, &pdu.RawUserItem{Type: 0x5f, Value: []byte{1, 2, 3}},
				&pdu.SOPClassExtendedNegotiation{SOPClassUID: association.CRImageStorage, Info: []byte{1}},
				&pdu.RoleSelection{SOPClassUID: association.CRImageStorage, SCU: true, SCP: true}}, echoPC, storePC)
			bb, _ := pdu.Encode(rq)
			bb = append(bb, 0x7e, 0, 0, 1, 0xff) // unknown variable item
			binary.BigEndian.PutUint32(bb[2:], uint32(len(bb)-6))
			r.sendBytes(bb)
			ac, ok := r.recv().(*pdu.AssociateAC)
			if !ok {
				t.Fatal("want A-ASSOCIATE-AC")
			}
			roles := ac.UserInformation.RoleSelections()
			if len(roles) != 1 || !roles[0].SCU || roles[0].SCP {
				t.Fatalf("role selection answer %+v", roles)
			}
			r.release()
		}},
		{"unknown PDU type after association", func(t *testing.T, r *raw) {
			r.associate(nil)
			r.sendBytes([]byte{0x42, 0, 0, 0, 0, 2, 1, 2})
			if ab := r.expectClosed(2 * time.Second); ab == nil || ab.Reason != pdu.AbortReasonUnrecognizedPDU {
				t.Fatalf("abort %+v", ab)
			}
		}},
		{"unknown PDU type instead of A-ASSOCIATE-RQ", func(t *testing.T, r *raw) {
			r.sendBytes([]byte{0x09, 0, 0, 0, 0, 0})
			if ab := r.expectClosed(2 * time.Second); ab == nil {
				t.Fatal("no A-ABORT")
			}
		}},
		{"PDU length beyond our maximum", func(t *testing.T, r *raw) {
			r.associate(nil)
			r.sendBytes([]byte{0x04, 0, 0x7f, 0xff, 0xff, 0xff})
			if ab := r.expectClosed(2 * time.Second); ab == nil {
				t.Fatal("no A-ABORT")
			}
		}},
		{"PDV length beyond its PDU", func(t *testing.T, r *raw) {
			r.associate(nil)
			r.sendBytes([]byte{0x04, 0, 0, 0, 0, 8, 0, 0, 0, 0x40, 1, 3, 0, 0})
			if ab := r.expectClosed(2 * time.Second); ab == nil {
				t.Fatal("no A-ABORT")
			}
		}},
		{"item length lies in A-ASSOCIATE-RQ", func(t *testing.T, r *raw) {
			bb, _ := pdu.Encode(rqFor(nil, echoPC))
			bb[6+68+3] = 0xff // application context item length
			r.sendBytes(bb)
			if ab := r.expectClosed(2 * time.Second); ab == nil {
				t.Fatal("no A-ABORT")
			}
		}},
		{"PDU body shorter than its length, then silence", func(t *testing.T, r *raw) {
			r.associate(nil)
			r.sendBytes([]byte{0x04, 0, 0, 0, 0x10, 0, 0, 0, 0})
			r.expectClosed(3 * time.Second)
		}},
		{"PDV on a context that was not accepted", func(t *testing.T, r *raw) {
			r.associate(nil)
			r.send(pdata(9, pdu.PDVCommand|pdu.PDVLast, echoCommand(t, 1)))
			if ab := r.expectClosed(2 * time.Second); ab == nil {
				t.Fatal("no A-ABORT")
			}
		}},
		{"silent after connect (ARTIM)", func(t *testing.T, r *raw) {
			r.expectClosed(3 * time.Second)
		}},
		{"silent after association (idle timeout)", func(t *testing.T, r *raw) {
			r.associate(nil)
			if ab := r.expectClosed(3 * time.Second); ab == nil || ab.Source != pdu.AbortSourceServiceProvider {
				t.Fatalf("abort %+v", ab)
			}
		}},
		{"abort in the middle of a data set", func(t *testing.T, r *raw) {
			r.associate(nil)
			inst := uidRoot + ".20.3.1"
			ds := testDataSet(t, inst, 256)
			r.send(pdata(3, pdu.PDVCommand|pdu.PDVLast, storeCommand(t, 1, association.CRImageStorage, inst)))
			r.send(pdata(3, 0, ds[:len(ds)/2]))
			r.send(&pdu.Abort{})
			r.expectClosed(2 * time.Second)
		}},
		{"connection dropped in the middle of a data set", func(t *testing.T, r *raw) {
			r.associate(nil)
			inst := uidRoot + ".20.3.2"
			ds := testDataSet(t, inst, 256)
			r.send(pdata(3, pdu.PDVCommand|pdu.PDVLast, storeCommand(t, 1, association.CRImageStorage, inst)))
			r.send(pdata(3, 0, ds[:len(ds)/3]))
			r.c.Close()
		}},
		{"command PDV inside a data set", func(t *testing.T, r *raw) {
			r.associate(nil)
			inst := uidRoot + ".20.3.3"
			ds := testDataSet(t, inst, 64)
			r.send(pdata(3, pdu.PDVCommand|pdu.PDVLast, storeCommand(t, 1, association.CRImageStorage, inst)))
			r.send(pdata(3, 0, ds[:100]))
			r.send(pdata(3, pdu.PDVCommand|pdu.PDVLast, echoCommand(t, 2)))
			if ab := r.expectClosed(2 * time.Second); ab == nil {
				t.Fatal("no A-ABORT")
			}
		}},
		{"store statuses: A900, C000, A700, success", func(t *testing.T, r *raw) {
			r.associate([]pdu.UserItem{&pdu.MaxLength{Length: 0}})
			send := func(id uint16, inst string, ds []byte) *dimse.Command {
				r.send(pdata(3, pdu.PDVCommand|pdu.PDVLast, storeCommand(t, id, association.CRImageStorage, inst)))
				for off := 0; off < len(ds); off += 16000 {
					ctl := byte(0)
					if off+16000 >= len(ds) {
						ctl = pdu.PDVLast
					}
					r.send(pdata(3, ctl, ds[off:min(off+16000, len(ds))]))
				}
				return r.expectResponse(dimse.CStoreRSP)
			}
			// Data set of another instance than the command says.
			if c := send(1, uidRoot+".20.4.1", testDataSet(t, uidRoot+".20.4.2", 32)); c.Status != dimse.StatusDataSetDoesNotMatchSOPClass {
				t.Fatalf("mismatch: %v", c.Status)
			}
			// Garbage.
			if c := send(2, uidRoot+".20.4.3", bytes.Repeat([]byte{0xff}, 300)); c.Status != dimse.StatusCannotUnderstand {
				t.Fatalf("garbage: %v", c.Status)
			}
			// Larger than MaxObjectSize (1 MiB).
			if c := send(3, uidRoot+".20.4.4", testDataSet(t, uidRoot+".20.4.4", 800)); c.Status != dimse.StatusOutOfResources {
				t.Fatalf("too large: %v", c.Status)
			}
			// And the association is still fine.
			if c := send(4, uidRoot+".20.4.5", testDataSet(t, uidRoot+".20.4.5", 64)); c.Status != dimse.StatusSuccess {
				t.Fatalf("good: %v", c.Status)
			}
			r.release()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, b.addr)
			tc.run(t, r)
			r.c.Close()
			settleGoroutines(t, base+1) // +1: this subtest
			if left := b.incoming(t); len(left) != 0 {
				t.Fatalf("temporary files left: %v", left)
			}
		})
	}
	want := []string{uidRoot + ".20.4.5.dcm"}
	if got := b.spooled(t); len(got) != 1 || got[0] != want[0] {
		t.Fatalf("kept %v, want %v", got, want)
	}
}

// TestHandlerPanicAndError: a panicking or failing handler answers A700 (or
// the failure status it returned), a warning passes through, and the
// association goes on.
func TestHandlerPanicAndError(t *testing.T) {
	t.Parallel()
	calls := 0
	h := services.StoreHandlerFunc(func(ctx context.Context, req *services.StoreRequest) (dimse.Status, error) {
		calls++
		switch calls {
		case 1:
			panic("boom")
		case 2:
			return 0, errors.New("database down")
		case 3:
			return dimse.StatusCannotUnderstand, errors.New("not an image we can read")
		case 4:
			return dimse.StatusCoercionOfDataElements, nil // a warning passes through
		}
		return dimse.StatusSuccess, nil
	})
	n, err := dicomnode.New(dicomnode.Config{AETitles: []string{"CSPINE"}, Logger: discardLogger()}, h)
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go n.Serve(context.Background(), ln)
	defer n.Shutdown(context.Background())
	dir := t.TempDir()
	files, _ := dicomnodetest.WriteSeries(dir, uidRoot+".21", 5, 16, 16)
	ctx := context.Background()
	c, err := dicomnode.Dial(ctx, ln.Addr().String(), dicomnode.DialOpts{CallingAETitle: "SCU", CalledAETitle: "CSPINE",
		Contexts: dicomnode.StorageContexts(map[string][]string{association.CRImageStorage: {association.ExplicitVRLittleEndian}})})
	if err != nil {
		t.Fatal(err)
	}
	want := []dimse.Status{dimse.StatusOutOfResources, dimse.StatusOutOfResources, dimse.StatusCannotUnderstand,
		dimse.StatusCoercionOfDataElements, dimse.StatusSuccess}
	for i, f := range files {
		st, err := c.StoreFile(ctx, f)
		if err != nil || st != want[i] {
			t.Fatalf("file %d: %v %v, want %v", i, st, err, want[i])
		}
	}
	c.Release(ctx)
}

var _ = io.EOF
var _ = os.Remove
