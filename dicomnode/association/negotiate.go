package association

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cspine/cspine/dicomnode/pdu"
)

// Well-known UIDs used by the policy.
const (
	VerificationSOPClass          = "1.2.840.10008.1.1"
	CRImageStorage                = "1.2.840.10008.5.1.4.1.1.1"
	DXImageStorageForPresentation = "1.2.840.10008.5.1.4.1.1.1.1"
	DXImageStorageForProcessing   = "1.2.840.10008.5.1.4.1.1.1.1.1"

	ImplicitVRLittleEndian = "1.2.840.10008.1.2"
	ExplicitVRLittleEndian = "1.2.840.10008.1.2.1"
	JPEGLossless           = "1.2.840.10008.1.2.4.57" // Process 14
	JPEGLosslessSV1        = "1.2.840.10008.1.2.4.70" // Process 14, selection value 1
	RLELossless            = "1.2.840.10008.1.2.5"

	// storagePrefix is the root of the Storage SOP classes of PS3.4 Annex B.
	storagePrefix = "1.2.840.10008.5.1.4.1.1."
)

// DefaultTransferSyntaxes is our order of preference: uncompressed first
// (nothing to decode), then the lossless compressions the pipeline decodes.
// Lossy JPEG and JPEG 2000 are never accepted.
var DefaultTransferSyntaxes = []string{
	ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLosslessSV1, JPEGLossless, RLELossless,
}

// DefaultSOPClasses are the abstract syntaxes accepted by default.
var DefaultSOPClasses = []string{
	VerificationSOPClass, CRImageStorage, DXImageStorageForPresentation, DXImageStorageForProcessing,
}

// IsStorageSOPClass reports whether uid is a Storage SOP class (PS3.4 Annex B).
func IsStorageSOPClass(uid string) bool { return strings.HasPrefix(uid, storagePrefix) }

// Context is a negotiated presentation context.
type Context struct {
	ID             byte
	AbstractSyntax string
	TransferSyntax string // empty unless accepted
	Result         byte
	// Roles of the requestor for this SOP class after role selection
	// (default: requestor is SCU, acceptor is SCP).
	RequestorSCU, RequestorSCP bool
}

// Accepted reports whether the context was accepted.
func (c Context) Accepted() bool { return c.Result == pdu.ResultAcceptance }

// Offer is what an acceptor is prepared to accept; it is the pure part of
// the policy (no network look-ups).
type Offer struct {
	// SOPClasses are the accepted abstract syntaxes.
	SOPClasses []string
	// AllStorage accepts every Storage SOP class in addition to SOPClasses.
	AllStorage bool
	// TransferSyntaxes in our order of preference.
	TransferSyntaxes []string
	// MaxPDULength we announce (the largest P-DATA-TF we accept); 0 = no limit.
	MaxPDULength uint32
	// ImplementationClassUID and ImplementationVersionName identify us.
	ImplementationClassUID    string
	ImplementationVersionName string
}

func (o *Offer) acceptsSOPClass(uid string) bool {
	return slices.Contains(o.SOPClasses, uid) || (o.AllStorage && IsStorageSOPClass(uid))
}

// NegotiateAcceptor answers the presentation contexts and user information
// of rq with what o accepts (PS3.8 §9.3.3, PS3.7 Annex D). For each context
// the transfer syntax chosen is the first of our preferences that the
// requestor proposed. The AE checks are done by the caller (Policy).
func NegotiateAcceptor(rq *pdu.AssociateRQ, o *Offer) (*pdu.AssociateAC, []Context) {
	ac := &pdu.AssociateAC{
		ProtocolVersion:    pdu.ProtocolVersion,
		CalledAETitle:      rq.CalledAETitle,
		CallingAETitle:     rq.CallingAETitle,
		ApplicationContext: pdu.ApplicationContextName,
	}
	roles := map[string]*pdu.RoleSelection{}
	for _, r := range rq.UserInformation.RoleSelections() {
		roles[r.SOPClassUID] = r
	}
	var ctxs []Context
	seen := map[byte]bool{}
	for _, pc := range rq.PresentationContexts {
		c := Context{ID: pc.ID, AbstractSyntax: pc.AbstractSyntax, RequestorSCU: true}
		switch {
		case pc.ID%2 == 0 || seen[pc.ID]:
			// Presentation context IDs are odd and unique (PS3.8 §9.3.2.2).
			c.Result = pdu.ResultNoReason
		case !o.acceptsSOPClass(pc.AbstractSyntax):
			c.Result = pdu.ResultAbstractSyntaxNotSupported
		default:
			c.Result = pdu.ResultTransferSyntaxesNotSupported
			for _, ts := range o.TransferSyntaxes {
				if slices.Contains(pc.TransferSyntaxes, ts) {
					c.TransferSyntax, c.Result = ts, pdu.ResultAcceptance
					break
				}
			}
		}
		seen[pc.ID] = true
		if r, ok := roles[pc.AbstractSyntax]; ok && c.Accepted() {
			// We act only as SCP on associations we accept: the requestor
			// may keep its SCU role; an SCP role for it is refused.
			c.RequestorSCU, c.RequestorSCP = r.SCU, false
		}
		ctxs = append(ctxs, c)
		ac.PresentationContexts = append(ac.PresentationContexts, pdu.PresentationContextAC{
			ID: c.ID, Result: c.Result, TransferSyntax: c.TransferSyntax,
		})
	}
	items := []pdu.UserItem{
		&pdu.MaxLength{Length: o.MaxPDULength},
		&pdu.ImplementationClassUID{UID: o.ImplementationClassUID},
	}
	if w := rq.UserInformation.AsyncOperationsWindow(); w != nil {
		// We perform operations one at a time (PS3.7 D.3.3.3: 1/1 is the default).
		items = append(items, &pdu.AsyncOperationsWindow{MaxInvoked: 1, MaxPerformed: 1})
	}
	answered := map[string]bool{}
	for _, c := range ctxs {
		if r, ok := roles[c.AbstractSyntax]; ok && c.Accepted() && !answered[c.AbstractSyntax] {
			answered[c.AbstractSyntax] = true
			items = append(items, &pdu.RoleSelection{SOPClassUID: r.SOPClassUID, SCU: r.SCU, SCP: false})
		}
	}
	if o.ImplementationVersionName != "" {
		items = append(items, &pdu.ImplementationVersionName{Name: o.ImplementationVersionName})
	}
	// SOP Class Extended Negotiation is not answered: PS3.7 D.3.3.5 lets the
	// acceptor omit it, meaning none of the proposed options is supported.
	ac.UserInformation.Items = items
	return ac, ctxs
}

// NegotiateRequestor combines what we proposed with the acceptor's answer.
func NegotiateRequestor(rq *pdu.AssociateRQ, ac *pdu.AssociateAC) ([]Context, error) {
	proposed := map[byte]pdu.PresentationContextRQ{}
	for _, pc := range rq.PresentationContexts {
		proposed[pc.ID] = pc
	}
	roles := map[string]*pdu.RoleSelection{}
	for _, r := range ac.UserInformation.RoleSelections() {
		roles[r.SOPClassUID] = r
	}
	ourRoles := map[string]*pdu.RoleSelection{}
	for _, r := range rq.UserInformation.RoleSelections() {
		ourRoles[r.SOPClassUID] = r
	}
	var ctxs []Context
	for _, pc := range ac.PresentationContexts {
		p, ok := proposed[pc.ID]
		if !ok {
			return nil, fmt.Errorf("acceptor answered presentation context %d that was not proposed", pc.ID)
		}
		c := Context{ID: pc.ID, AbstractSyntax: p.AbstractSyntax, Result: pc.Result, RequestorSCU: true}
		if c.Accepted() {
			if !slices.Contains(p.TransferSyntaxes, pc.TransferSyntax) {
				return nil, fmt.Errorf("acceptor chose transfer syntax %q for context %d, not proposed", pc.TransferSyntax, pc.ID)
			}
			c.TransferSyntax = pc.TransferSyntax
		}
		if our, ok := ourRoles[c.AbstractSyntax]; ok {
			// PS3.7 D.3.3.4: no answer means the default roles.
			c.RequestorSCU, c.RequestorSCP = true, false
			if r, ok := roles[c.AbstractSyntax]; ok {
				c.RequestorSCU, c.RequestorSCP = our.SCU && r.SCU, our.SCP && r.SCP
			}
		}
		ctxs = append(ctxs, c)
	}
	return ctxs, nil
}
