package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cspine/cspine/dicomnode"
	"github.com/cspine/cspine/dicomnode/association"
)

func init() {
	register(command{
		name:    "echo",
		summary: "verify a DICOM peer with C-ECHO",
		usage: `Usage: cspine echo [flags] AE@HOST:PORT

Opens an association to AE at HOST:PORT, sends C-ECHO (Verification SOP
Class) and releases the association. Exit status 0 when the peer answers
success.`,
		run: runEcho,
	})
}

// scuFlags are the flags shared by the SCU subcommands.
type scuFlags struct {
	aet                    string
	timeout                time.Duration
	tlsCA, tlsCert, tlsKey string
}

func (f *scuFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.aet, "aet", "CSPINE", "our (calling) AE title")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "timeout of association establishment and of each read")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "PEM file of CA certificates trusted for the peer; enables DICOM TLS")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM client certificate (with -tls-key) for DICOM TLS")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of -tls-cert")
}

func (f *scuFlags) dialOpts(calledAE, host string) (dicomnode.DialOpts, error) {
	o := dicomnode.DialOpts{CallingAETitle: f.aet, CalledAETitle: calledAE,
		Timeouts: association.Timeouts{ARTIM: f.timeout, Read: f.timeout, Idle: f.timeout, Write: f.timeout}}
	if err := association.ValidateAETitle(f.aet); err != nil {
		return o, fmt.Errorf("%w: -aet: %v", errUsage, err)
	}
	if f.tlsCA == "" && f.tlsCert == "" {
		return o, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if f.tlsCA != "" {
		pem, err := os.ReadFile(f.tlsCA)
		if err != nil {
			return o, fmt.Errorf("read -tls-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return o, fmt.Errorf("-tls-ca %s: no PEM certificate", f.tlsCA)
		}
	}
	if f.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return o, fmt.Errorf("load -tls-cert/-tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	o.TLS = cfg
	return o, nil
}

// parsePeer splits AE@HOST:PORT.
func parsePeer(s string) (ae, addr, host string, err error) {
	ae, addr, ok := strings.Cut(s, "@")
	if !ok || ae == "" || addr == "" {
		return "", "", "", fmt.Errorf("%w: peer %q: want AE@HOST:PORT", errUsage, s)
	}
	if err := association.ValidateAETitle(ae); err != nil {
		return "", "", "", fmt.Errorf("%w: %v", errUsage, err)
	}
	host, port, err := splitHostPort(addr)
	if err != nil || port == "" {
		return "", "", "", fmt.Errorf("%w: peer %q: want AE@HOST:PORT", errUsage, s)
	}
	return ae, addr, host, nil
}

func splitHostPort(addr string) (string, string, error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", "", fmt.Errorf("no port in %q", addr)
	}
	return strings.Trim(addr[:i], "[]"), addr[i+1:], nil
}

func runEcho(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := commands["echo"]
	fs := newFlagSet(c, stderr)
	var sf scuFlags
	sf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: want one AE@HOST:PORT", errUsage)
	}
	ae, addr, host, err := parsePeer(fs.Arg(0))
	if err != nil {
		return err
	}
	o, err := sf.dialOpts(ae, host)
	if err != nil {
		return err
	}
	o.Contexts = dicomnode.VerificationContexts()
	start := time.Now()
	cl, err := dicomnode.Dial(ctx, addr, o)
	if err != nil {
		return err
	}
	st, err := cl.Echo(ctx)
	if err != nil {
		cl.A.Abort()
		return err
	}
	if err := cl.Release(ctx); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if st != 0 {
		return fmt.Errorf("C-ECHO status %v", st)
	}
	fmt.Fprintf(stdout, "C-ECHO %s@%s: success (%v)\n", ae, addr, time.Since(start).Round(time.Millisecond))
	return nil
}
