package dicomnode_test

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/cspine/cspine/dicomnode"
	"github.com/cspine/cspine/dicomnode/association"
	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/dicomnode/dimse"
)

// TestTLS: the DICOM TLS profile with client certificate verification,
// between our SCU and SCP, and with DCMTK storescu/storescp (OpenSSL) on
// the other side.
func TestTLS(t *testing.T) {
	t.Parallel()
	pki := dicomnodetest.NewPKI(t)
	b := setup(t, func(c *dicomnode.Config) { c.TLS = pki.ServerTLS() })
	files, err := dicomnodetest.WriteSeries(t.TempDir(), uidRoot+".50", 3, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	storeCtx := dicomnode.StorageContexts(map[string][]string{association.CRImageStorage: {association.ExplicitVRLittleEndian}})

	t.Run("our SCU to our SCP", func(t *testing.T) {
		c, err := dicomnode.Dial(ctx, b.addr, dicomnode.DialOpts{CallingAETitle: "SCU", CalledAETitle: "CSPINE",
			Contexts: append(dicomnode.VerificationContexts(), storeCtx...), TLS: pki.ClientTLS(true)})
		if err != nil {
			t.Fatal(err)
		}
		if st, err := c.Echo(ctx); err != nil || st != dimse.StatusSuccess {
			t.Fatalf("echo over TLS: %v %v", st, err)
		}
		if st, err := c.StoreFile(ctx, files[0]); err != nil || st != dimse.StatusSuccess {
			t.Fatalf("store over TLS: %v %v", st, err)
		}
		if err := c.Release(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("client without certificate refused", func(t *testing.T) {
		c, err := dicomnode.Dial(ctx, b.addr, dicomnode.DialOpts{CallingAETitle: "SCU", CalledAETitle: "CSPINE",
			Contexts: dicomnode.VerificationContexts(), TLS: pki.ClientTLS(false)})
		if err == nil {
			c.A.Abort()
			t.Fatal("association without client certificate")
		}
	})
	t.Run("plain TCP refused", func(t *testing.T) {
		out, err := dicomnodetest.Run(t, true, "echoscu", "-to", "5", "-aec", "CSPINE", "127.0.0.1", strconv.Itoa(b.port))
		if err == nil {
			t.Fatalf("plain echoscu succeeded against a TLS node:\n%s", out)
		}
	})
	t.Run("DCMTK storescu over TLS", func(t *testing.T) {
		args := []string{"+tls", pki.ClientKey, pki.ClientCert, "+cf", pki.CAFile, "-aet", "MODALITY", "-aec", "CSPINE",
			"127.0.0.1", strconv.Itoa(b.port)}
		dicomnodetest.Run(t, false, "storescu", append(args, files[1:]...)...)
		if n := len(b.spooled(t)); n != 3 {
			t.Fatalf("kept %d instances", n)
		}
	})
	t.Run("our SCU to DCMTK storescp over TLS", func(t *testing.T) {
		out := t.TempDir()
		p := dicomnodetest.StartServer(t, "storescp", "+tls", pki.ServerKey, pki.ServerCert, "+cf", pki.CAFile,
			"-aet", "STORESCP", "-od", out, "PORT")
		c, err := dicomnode.Dial(ctx, "127.0.0.1:"+strconv.Itoa(p.Port), dicomnode.DialOpts{CallingAETitle: "CSPINE",
			CalledAETitle: "STORESCP", Contexts: storeCtx, TLS: pki.ClientTLS(true)})
		if err != nil {
			t.Fatalf("%v\n%s", err, p.Out.String())
		}
		for _, f := range files {
			if st, err := c.StoreFile(ctx, f); err != nil || st != dimse.StatusSuccess {
				t.Fatalf("store: %v %v", st, err)
			}
		}
		if err := c.Release(ctx); err != nil {
			t.Fatal(err)
		}
		ents, _ := os.ReadDir(out)
		if len(ents) != len(files) {
			t.Fatalf("storescp kept %d files\n%s", len(ents), p.Out.String())
		}
	})
}
