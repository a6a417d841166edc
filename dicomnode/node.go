// Package dicomnode is cspine's DICOM Application Entity: a Node accepts
// associations (Verification and Storage SCP) under an acceptance policy,
// and Dial opens associations to other AEs (SCU).
//
// The layers follow the standard: pdu (PS3.8 §9.3 wire format),
// association (PS3.8 association control and negotiation), dimse (PS3.7
// messages), services (PS3.4 service classes). This package only wires
// them to the network: listening, limits, TLS, panic recovery and graceful
// shutdown.
package dicomnode

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/cspine/cspine/dicomnode/association"
	"github.com/cspine/cspine/dicomnode/pdu"
	"github.com/cspine/cspine/dicomnode/services"
)

// Our implementation identity (PS3.7 D.3.3.2). The class UID is a UUID-
// derived UID (PS3.5 B.2), fixed for this implementation.
const (
	ImplementationClassUID    = "2.25.5054477978589262686675685242591301329"
	ImplementationVersionName = "CSPINE_1"
)

// Config configures a Node. Zero fields take the defaults of WithDefaults.
type Config struct {
	// AETitles we answer to (the Called AE Title must be one of them).
	AETitles []string
	// AllowedPeers are the accepted callers; nil accepts anyone.
	AllowedPeers []association.Peer
	// SOPClasses accepted; default Verification, CR, DX for presentation and processing.
	SOPClasses []string
	// AcceptAllStorage also accepts every Storage SOP class (kept, not analysed).
	AcceptAllStorage bool
	// TransferSyntaxes in our order of preference; default
	// association.DefaultTransferSyntaxes (never lossy, never JPEG 2000).
	TransferSyntaxes []string
	// MaxPDULength we announce; default 1 MiB (we never announce "unlimited").
	MaxPDULength uint32
	// MaxAssociations is the number of concurrent associations; more are
	// rejected (transient, local limit exceeded). Default 32.
	MaxAssociations int
	// MaxObjectSize bounds one received data set; default 4 GiB.
	MaxObjectSize int64
	// Timeouts of each association.
	Timeouts association.Timeouts
	// TLS, when set, makes the node speak the DICOM TLS profile (PS3.15
	// B.1/B.9): the listener is wrapped with tls.Server. Set ClientAuth to
	// tls.RequireAndVerifyClientCert to verify client certificates.
	TLS    *tls.Config
	Logger *slog.Logger
}

// WithDefaults returns c with zero fields defaulted.
func (c Config) WithDefaults() Config {
	if c.SOPClasses == nil {
		c.SOPClasses = association.DefaultSOPClasses
	}
	if c.TransferSyntaxes == nil {
		c.TransferSyntaxes = association.DefaultTransferSyntaxes
	}
	if c.MaxPDULength == 0 {
		c.MaxPDULength = 1 << 20
	}
	if c.MaxAssociations == 0 {
		c.MaxAssociations = 32
	}
	if c.MaxObjectSize == 0 {
		c.MaxObjectSize = 4 << 30
	}
	c.Timeouts = c.Timeouts.WithDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports configuration mistakes (after defaults are applied).
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	if err := c.policy().Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxAssociations < 0 {
		errs = append(errs, fmt.Errorf("max associations %d < 0", c.MaxAssociations))
	}
	if c.MaxObjectSize < 0 {
		errs = append(errs, fmt.Errorf("max object size %d < 0", c.MaxObjectSize))
	}
	if c.TLS != nil && len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil {
		errs = append(errs, errors.New("TLS configured without a server certificate"))
	}
	return errors.Join(errs...)
}

func (c Config) policy() *association.Policy {
	return &association.Policy{
		AETitles:     c.AETitles,
		AllowedPeers: c.AllowedPeers,
		Offer: association.Offer{
			SOPClasses: c.SOPClasses, AllStorage: c.AcceptAllStorage, TransferSyntaxes: c.TransferSyntaxes,
			MaxPDULength: c.MaxPDULength, ImplementationClassUID: ImplementationClassUID,
			ImplementationVersionName: ImplementationVersionName,
		},
	}
}

// Node is a DICOM AE that accepts associations.
type Node struct {
	cfg    Config
	pol    *association.Policy
	server *services.Server
	log    *slog.Logger

	mu       sync.Mutex
	active   map[*association.Association]struct{}
	conns    map[net.Conn]struct{}
	lns      map[net.Listener]struct{}
	stopping bool
	wg       sync.WaitGroup
	// hard is cancelled when Shutdown's deadline passes: it cancels the
	// context of every association and of the StoreHandler calls.
	hard       context.Context
	hardCancel context.CancelFunc
}

// New returns a Node storing received instances with store.
func New(cfg Config, store services.StoreHandler) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dicomnode config: %w", err)
	}
	cfg = cfg.WithDefaults()
	pol := cfg.policy()
	hard, hardCancel := context.WithCancel(context.Background())
	return &Node{
		cfg: cfg, pol: pol, log: cfg.Logger, hard: hard, hardCancel: hardCancel,
		server: &services.Server{Store: store, MaxObjectSize: cfg.MaxObjectSize,
			ImplementationClassUID: ImplementationClassUID, ImplementationVersionName: ImplementationVersionName,
			Logger: cfg.Logger},
		active: map[*association.Association]struct{}{},
		conns:  map[net.Conn]struct{}{},
		lns:    map[net.Listener]struct{}{},
	}, nil
}

// ErrNodeClosed is returned by Serve after Shutdown.
var ErrNodeClosed = errors.New("dicomnode: node closed")

// ListenAndServe listens on addr (TCP) and serves until ctx ends or Shutdown.
func (n *Node) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("dicomnode: %w", err)
	}
	return n.Serve(ctx, ln)
}

// Serve accepts connections on ln until Shutdown is called or ctx ends
// (ctx ending aborts the associations in progress at once; Shutdown lets
// them finish). It always closes ln.
func (n *Node) Serve(ctx context.Context, ln net.Listener) error {
	if n.cfg.TLS != nil {
		ln = tls.NewListener(ln, n.cfg.TLS)
	}
	n.mu.Lock()
	if n.stopping {
		n.mu.Unlock()
		ln.Close()
		return ErrNodeClosed
	}
	n.lns[ln] = struct{}{}
	n.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer func() {
		n.mu.Lock()
		delete(n.lns, ln)
		n.mu.Unlock()
		ln.Close()
	}()
	n.log.Info("dicom node listening", "addr", ln.Addr().String(), "ae_titles", n.cfg.AETitles)
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			n.mu.Lock()
			stopping := n.stopping
			n.mu.Unlock()
			if stopping {
				return ErrNodeClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("dicomnode: accept: %w", err)
		}
		delay = 0
		n.mu.Lock()
		over := len(n.conns) >= n.cfg.MaxAssociations
		if len(n.conns) >= 2*n.cfg.MaxAssociations {
			// A flood: do not even spend a goroutine on a rejection.
			n.mu.Unlock()
			conn.Close()
			continue
		}
		n.conns[conn] = struct{}{}
		n.wg.Add(1)
		n.mu.Unlock()
		go n.handle(ctx, conn, over)
	}
}

// handle runs one connection: establishment, DIMSE service, release. A
// panic anywhere in it aborts this association only.
func (n *Node) handle(ctx context.Context, conn net.Conn, over bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopHard := context.AfterFunc(n.hard, cancel)
	defer stopHard()
	log := n.log.With("remote", conn.RemoteAddr().String())
	var a *association.Association
	defer func() {
		if r := recover(); r != nil {
			log.Error("association handler panicked", "panic", r)
			if a != nil {
				a.Abort()
			}
		}
		conn.Close()
		n.mu.Lock()
		delete(n.conns, conn)
		if a != nil {
			delete(n.active, a)
		}
		n.mu.Unlock()
		n.wg.Done()
	}()
	opts := &association.AcceptOpts{Timeouts: n.cfg.Timeouts, Logger: log}
	if over {
		opts.Reject = &pdu.AssociateRJ{Result: pdu.RejectResultTransient, Source: pdu.RejectSourceProviderPresentation,
			Reason: pdu.RejectReasonLocalLimitExceeded}
	}
	if tc, ok := conn.(*tls.Conn); ok {
		hctx, cancel := context.WithTimeout(ctx, n.cfg.Timeouts.ARTIM)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			log.Warn("tls handshake failed", "err", err)
			return
		}
	}
	var err error
	a, err = association.Accept(ctx, conn, n.pol, opts)
	if err != nil {
		var rj *pdu.AssociateRJ
		if errors.As(err, &rj) {
			log.Info("association rejected", "reason", rj.Reason, "source", rj.Source)
		} else {
			log.Warn("association not established", "err", err)
		}
		return
	}
	n.mu.Lock()
	if n.stopping {
		a.Interrupt()
	}
	n.active[a] = struct{}{}
	n.mu.Unlock()
	log = log.With("calling_ae", a.CallingAETitle(), "called_ae", a.CalledAETitle())
	log.Info("association accepted", "implementation", a.RQ.UserInformation.ImplementationClassUID())
	stop := context.AfterFunc(ctx, a.Abort)
	defer stop()
	err = n.server.Serve(ctx, a)
	switch {
	case err == nil:
		log.Info("association released")
	case errors.Is(err, association.ErrShutdown):
		log.Info("association aborted for shutdown")
	default:
		log.Warn("association ended", "err", err)
		a.Close()
	}
}

// Shutdown stops accepting associations, lets those in progress finish the
// message they are on (idle ones are aborted at once), and waits until they
// end or ctx ends, when the rest are aborted and the contexts given to
// StoreHandlers are cancelled (handlers must honour them).
func (n *Node) Shutdown(ctx context.Context) error {
	n.mu.Lock()
	n.stopping = true
	for ln := range n.lns {
		ln.Close()
	}
	for a := range n.active {
		a.Interrupt()
	}
	n.mu.Unlock()
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		n.hardCancel()
		n.mu.Lock()
		for a := range n.active {
			a.Abort()
		}
		for c := range n.conns {
			c.Close()
		}
		n.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// ActiveAssociations returns the number of connections being served.
func (n *Node) ActiveAssociations() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.conns)
}
