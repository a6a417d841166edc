package dicomnode

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sort"

	"github.com/cspine/cspine/dicomnode/association"
	"github.com/cspine/cspine/dicomnode/pdu"
	"github.com/cspine/cspine/dicomnode/services"
)

// DialOpts describe an association to request.
type DialOpts struct {
	CallingAETitle string
	CalledAETitle  string
	// Contexts to propose. Use VerificationContext, StorageContexts, QueryContexts.
	Contexts []pdu.PresentationContextRQ
	// Roles for SCP/SCU Role Selection (C-GET).
	Roles []pdu.RoleSelection
	// MaxPDULength we announce; default 1 MiB.
	MaxPDULength uint32
	Timeouts     association.Timeouts
	// TLS, when set, connects with TLS (PS3.15 DICOM TLS profile); set
	// Certificates for a client certificate.
	TLS    *tls.Config
	Logger *slog.Logger
}

// Dial connects to addr (host:port) and requests an association.
func Dial(ctx context.Context, addr string, o DialOpts) (*services.Client, error) {
	to := o.Timeouts.WithDefaults()
	d := &net.Dialer{Timeout: to.ARTIM}
	var (
		conn net.Conn
		err  error
	)
	if o.TLS != nil {
		td := &tls.Dialer{NetDialer: d, Config: o.TLS}
		conn, err = td.DialContext(ctx, "tcp", addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if o.MaxPDULength == 0 {
		o.MaxPDULength = 1 << 20
	}
	a, err := association.Request(ctx, conn, &association.RequestParams{
		CallingAETitle: o.CallingAETitle, CalledAETitle: o.CalledAETitle, Contexts: o.Contexts, Roles: o.Roles,
		MaxPDULength: o.MaxPDULength, ImplementationClassUID: ImplementationClassUID,
		ImplementationVersionName: ImplementationVersionName, Timeouts: o.Timeouts, Logger: o.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("associate with %s@%s: %w", o.CalledAETitle, addr, err)
	}
	return services.NewClient(a), nil
}

// VerificationContext proposes the Verification SOP Class.
func VerificationContext() pdu.PresentationContextRQ {
	return pdu.PresentationContextRQ{AbstractSyntax: association.VerificationSOPClass,
		TransferSyntaxes: []string{association.ExplicitVRLittleEndian, association.ImplicitVRLittleEndian}}
}

// StorageContexts proposes, for each (SOP class, transfer syntax) pair, one
// context with that transfer syntax alone, so that any file can be sent as
// it is encoded. The order is deterministic (classes sorted).
func StorageContexts(pairs map[string][]string) []pdu.PresentationContextRQ {
	var out []pdu.PresentationContextRQ
	classes := make([]string, 0, len(pairs))
	for class := range pairs {
		classes = append(classes, class)
	}
	sort.Strings(classes)
	for _, class := range classes {
		for _, ts := range pairs[class] {
			out = append(out, pdu.PresentationContextRQ{AbstractSyntax: class, TransferSyntaxes: []string{ts}})
		}
	}
	return out
}

// QueryContexts proposes the given Query/Retrieve models in explicit and
// implicit VR little endian.
func QueryContexts(models ...string) []pdu.PresentationContextRQ {
	var out []pdu.PresentationContextRQ
	for _, m := range models {
		out = append(out, pdu.PresentationContextRQ{AbstractSyntax: m,
			TransferSyntaxes: []string{association.ExplicitVRLittleEndian, association.ImplicitVRLittleEndian}})
	}
	return out
}

// VerificationContexts proposes only the Verification SOP Class.
func VerificationContexts() []pdu.PresentationContextRQ {
	return []pdu.PresentationContextRQ{VerificationContext()}
}
