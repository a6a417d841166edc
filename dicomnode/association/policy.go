package association

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/cspine/cspine/dicomnode/pdu"
)

// Peer is a calling AE allowed to associate with us.
type Peer struct {
	// AETitle of the caller; "*" matches any title.
	AETitle string
	// Host is an IP address, a CIDR prefix, or a host name resolved when the
	// peer connects; "" matches any host.
	Host string
}

// Policy decides whether an association request is accepted.
type Policy struct {
	// AETitles we answer to; the Called AE Title must be one of them.
	AETitles []string
	// AllowedPeers lists the callers accepted; nil accepts any caller.
	AllowedPeers []Peer
	Offer
	// Resolver looks up host names in AllowedPeers; nil uses net.DefaultResolver.
	Resolver *net.Resolver
}

// Validate reports configuration mistakes.
func (p *Policy) Validate() error {
	var errs []error
	if len(p.AETitles) == 0 {
		errs = append(errs, errors.New("no AE title configured"))
	}
	for _, ae := range p.AETitles {
		if err := ValidateAETitle(ae); err != nil {
			errs = append(errs, err)
		}
	}
	for i, peer := range p.AllowedPeers {
		if peer.AETitle == "" {
			errs = append(errs, fmt.Errorf("allowed peer %d: empty AE title (use \"*\" for any)", i))
		}
	}
	if len(p.SOPClasses) == 0 && !p.AllStorage {
		errs = append(errs, errors.New("no SOP class accepted"))
	}
	if len(p.TransferSyntaxes) == 0 {
		errs = append(errs, errors.New("no transfer syntax accepted"))
	}
	if p.MaxPDULength != 0 && p.MaxPDULength < 4096 {
		errs = append(errs, fmt.Errorf("max PDU length %d below 4096", p.MaxPDULength))
	}
	return errors.Join(errs...)
}

// ValidateAETitle checks an AE title against PS3.5 Table 6.2-1 (AE VR).
func ValidateAETitle(ae string) error {
	if strings.TrimSpace(ae) == "" || len(ae) > 16 {
		return fmt.Errorf("AE title %q: must be 1 to 16 characters", ae)
	}
	for _, r := range ae {
		if r < 0x20 || r > 0x7e || r == '\\' {
			return fmt.Errorf("AE title %q: invalid character %q", ae, r)
		}
	}
	return nil
}

// Check decides on the AE titles and protocol fields of rq coming from
// remote. It returns nil when the request may proceed to presentation
// context negotiation, or the rejection to send (PS3.8 Table 9-21).
func (p *Policy) Check(ctx context.Context, rq *pdu.AssociateRQ, remote net.Addr) *pdu.AssociateRJ {
	switch {
	case rq.ProtocolVersion&pdu.ProtocolVersion == 0:
		return &pdu.AssociateRJ{Result: pdu.RejectResultPermanent, Source: pdu.RejectSourceProviderACSE, Reason: pdu.RejectReasonProtocolVersionNotSupported}
	case rq.ApplicationContext != pdu.ApplicationContextName:
		return &pdu.AssociateRJ{Result: pdu.RejectResultPermanent, Source: pdu.RejectSourceUser, Reason: pdu.RejectReasonAppContextNotSupported}
	case !slices.Contains(p.AETitles, rq.CalledAETitle):
		return &pdu.AssociateRJ{Result: pdu.RejectResultPermanent, Source: pdu.RejectSourceUser, Reason: pdu.RejectReasonCalledAENotRecognized}
	case !p.callerAllowed(ctx, rq.CallingAETitle, remote):
		return &pdu.AssociateRJ{Result: pdu.RejectResultPermanent, Source: pdu.RejectSourceUser, Reason: pdu.RejectReasonCallingAENotRecognized}
	}
	return nil
}

func (p *Policy) callerAllowed(ctx context.Context, ae string, remote net.Addr) bool {
	if p.AllowedPeers == nil {
		return true
	}
	var ip net.IP
	if ta, ok := remote.(*net.TCPAddr); ok {
		ip = ta.IP
	} else if remote != nil {
		if h, _, err := net.SplitHostPort(remote.String()); err == nil {
			ip = net.ParseIP(h)
		}
	}
	for _, peer := range p.AllowedPeers {
		if peer.AETitle != "*" && peer.AETitle != ae {
			continue
		}
		if p.hostMatches(ctx, peer.Host, ip) {
			return true
		}
	}
	return false
}

func (p *Policy) hostMatches(ctx context.Context, host string, ip net.IP) bool {
	if host == "" {
		return true
	}
	if ip == nil {
		return false
	}
	if _, n, err := net.ParseCIDR(host); err == nil {
		return n.Contains(ip)
	}
	if h := net.ParseIP(host); h != nil {
		return h.Equal(ip)
	}
	r := p.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupIPAddr(ctx, host)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if a.IP.Equal(ip) {
			return true
		}
	}
	return false
}
