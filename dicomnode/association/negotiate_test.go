package association

import (
	"context"
	"net"
	"reflect"
	"testing"

	"github.com/cspine/cspine/dicomnode/pdu"
)

func offer() *Offer {
	return &Offer{SOPClasses: DefaultSOPClasses, TransferSyntaxes: DefaultTransferSyntaxes, MaxPDULength: 1 << 20,
		ImplementationClassUID: "1.2.3", ImplementationVersionName: "TEST"}
}

func TestNegotiateAcceptor(t *testing.T) {
	t.Parallel()
	const jpegBaseline, j2k = "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.90"
	const mr = "1.2.840.10008.5.1.4.1.1.4"
	for _, tc := range []struct {
		name     string
		pc       pdu.PresentationContextRQ
		allStore bool
		want     Context
	}{
		{"verification implicit", pdu.PresentationContextRQ{ID: 1, AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
			false, Context{ID: 1, AbstractSyntax: VerificationSOPClass, TransferSyntax: ImplicitVRLittleEndian, RequestorSCU: true}},
		{"our preference wins over the proposal order", pdu.PresentationContextRQ{ID: 3, AbstractSyntax: CRImageStorage,
			TransferSyntaxes: []string{RLELossless, ImplicitVRLittleEndian, ExplicitVRLittleEndian}},
			false, Context{ID: 3, AbstractSyntax: CRImageStorage, TransferSyntax: ExplicitVRLittleEndian, RequestorSCU: true}},
		{"jpeg lossless sv1 alone", pdu.PresentationContextRQ{ID: 5, AbstractSyntax: DXImageStorageForPresentation, TransferSyntaxes: []string{JPEGLosslessSV1}},
			false, Context{ID: 5, AbstractSyntax: DXImageStorageForPresentation, TransferSyntax: JPEGLosslessSV1, RequestorSCU: true}},
		{"jpeg process 14", pdu.PresentationContextRQ{ID: 5, AbstractSyntax: DXImageStorageForProcessing, TransferSyntaxes: []string{JPEGLossless}},
			false, Context{ID: 5, AbstractSyntax: DXImageStorageForProcessing, TransferSyntax: JPEGLossless, RequestorSCU: true}},
		{"lossy and jpeg 2000 refused", pdu.PresentationContextRQ{ID: 7, AbstractSyntax: CRImageStorage, TransferSyntaxes: []string{jpegBaseline, j2k}},
			false, Context{ID: 7, AbstractSyntax: CRImageStorage, Result: pdu.ResultTransferSyntaxesNotSupported, RequestorSCU: true}},
		{"MR refused by default", pdu.PresentationContextRQ{ID: 9, AbstractSyntax: mr, TransferSyntaxes: []string{ExplicitVRLittleEndian}},
			false, Context{ID: 9, AbstractSyntax: mr, Result: pdu.ResultAbstractSyntaxNotSupported, RequestorSCU: true}},
		{"MR accepted with all storage", pdu.PresentationContextRQ{ID: 9, AbstractSyntax: mr, TransferSyntaxes: []string{ExplicitVRLittleEndian}},
			true, Context{ID: 9, AbstractSyntax: mr, TransferSyntax: ExplicitVRLittleEndian, RequestorSCU: true}},
		{"query model never accepted by all storage", pdu.PresentationContextRQ{ID: 11, AbstractSyntax: "1.2.840.10008.5.1.4.1.2.2.1", TransferSyntaxes: []string{ExplicitVRLittleEndian}},
			true, Context{ID: 11, AbstractSyntax: "1.2.840.10008.5.1.4.1.2.2.1", Result: pdu.ResultAbstractSyntaxNotSupported, RequestorSCU: true}},
		{"even context ID refused", pdu.PresentationContextRQ{ID: 2, AbstractSyntax: CRImageStorage, TransferSyntaxes: []string{ExplicitVRLittleEndian}},
			false, Context{ID: 2, AbstractSyntax: CRImageStorage, Result: pdu.ResultNoReason, RequestorSCU: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := offer()
			o.AllStorage = tc.allStore
			rq := &pdu.AssociateRQ{CalledAETitle: "A", CallingAETitle: "B", PresentationContexts: []pdu.PresentationContextRQ{tc.pc}}
			ac, ctxs := NegotiateAcceptor(rq, o)
			if len(ctxs) != 1 || !reflect.DeepEqual(ctxs[0], tc.want) {
				t.Fatalf("got %+v, want %+v", ctxs, tc.want)
			}
			if got := ac.PresentationContexts[0]; got.Result != tc.want.Result || got.TransferSyntax != tc.want.TransferSyntax {
				t.Fatalf("AC item %+v", got)
			}
			if l, _ := ac.UserInformation.MaxLength(); l != 1<<20 || ac.UserInformation.ImplementationClassUID() != "1.2.3" {
				t.Fatal("user information")
			}
		})
	}
}

func TestNegotiateRoundTrip(t *testing.T) {
	t.Parallel()
	rq := &pdu.AssociateRQ{PresentationContexts: []pdu.PresentationContextRQ{
		{ID: 1, AbstractSyntax: CRImageStorage, TransferSyntaxes: []string{ExplicitVRLittleEndian}},
		{ID: 3, AbstractSyntax: "1.2.840.10008.5.1.4.1.1.4", TransferSyntaxes: []string{ExplicitVRLittleEndian}},
	}, UserInformation: pdu.UserInformation{Items: []pdu.UserItem{
		&pdu.RoleSelection{SOPClassUID: CRImageStorage, SCU: true, SCP: true},
	}}}
	ac, acc := NegotiateAcceptor(rq, offer())
	req, err := NegotiateRequestor(rq, ac)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(acc, req) {
		t.Fatalf("acceptor %+v\nrequestor %+v", acc, req)
	}
	if !req[0].RequestorSCU || req[0].RequestorSCP {
		t.Fatalf("roles %+v: we never take the SCU role on an accepted association", req[0])
	}
	// An acceptor answering a context we never proposed is an error.
	ac.PresentationContexts = append(ac.PresentationContexts, pdu.PresentationContextAC{ID: 5})
	if _, err := NegotiateRequestor(rq, ac); err == nil {
		t.Fatal("want error for an unproposed context")
	}
}

func TestPolicyCheck(t *testing.T) {
	t.Parallel()
	p := &Policy{AETitles: []string{"CSPINE", "CSPINE2"}, Offer: *offer(),
		AllowedPeers: []Peer{{AETitle: "PACS", Host: "10.0.0.0/8"}, {AETitle: "*", Host: "192.168.1.7"}, {AETitle: "LOCAL", Host: "localhost"}}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	addr := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 1} }
	rq := func(called, calling string) *pdu.AssociateRQ {
		return &pdu.AssociateRQ{ProtocolVersion: 1, CalledAETitle: called, CallingAETitle: calling, ApplicationContext: pdu.ApplicationContextName}
	}
	for _, tc := range []struct {
		name   string
		rq     *pdu.AssociateRQ
		remote net.Addr
		reason byte // 0 = accepted
	}{
		{"pacs from its network", rq("CSPINE", "PACS"), addr("10.1.2.3"), 0},
		{"second AE title", rq("CSPINE2", "PACS"), addr("10.1.2.3"), 0},
		{"pacs from elsewhere", rq("CSPINE", "PACS"), addr("172.16.0.1"), pdu.RejectReasonCallingAENotRecognized},
		{"any title from the allowed host", rq("CSPINE", "WHOEVER"), addr("192.168.1.7"), 0},
		{"host name resolved", rq("CSPINE", "LOCAL"), addr("127.0.0.1"), 0},
		{"unknown caller", rq("CSPINE", "EVIL"), addr("10.1.2.3"), pdu.RejectReasonCallingAENotRecognized},
		{"wrong called AE", rq("OTHER", "PACS"), addr("10.1.2.3"), pdu.RejectReasonCalledAENotRecognized},
		{"wrong application context", &pdu.AssociateRQ{ProtocolVersion: 1, CalledAETitle: "CSPINE", CallingAETitle: "PACS", ApplicationContext: "1.2.3"},
			addr("10.1.2.3"), pdu.RejectReasonAppContextNotSupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rj := p.Check(context.Background(), tc.rq, tc.remote)
			switch {
			case tc.reason == 0 && rj != nil:
				t.Fatalf("rejected: %v", rj)
			case tc.reason != 0 && (rj == nil || rj.Reason != tc.reason):
				t.Fatalf("got %v, want reason %d", rj, tc.reason)
			}
		})
	}
	bad := &Policy{AETitles: []string{"THIS TITLE IS WAY TOO LONG"}}
	if err := bad.Validate(); err == nil {
		t.Fatal("invalid policy validated")
	}
}
