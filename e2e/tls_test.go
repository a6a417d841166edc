package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
)

// TestTLS: the DICOM TLS profile on both sides. storescu sends over TLS with
// a client certificate (required by the node); a plain-TCP caller is
// refused; the reports go to a storescp destination over TLS, whose server
// certificate the node verifies against the configured CA.
func TestTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end (-short)")
	}
	dir := t.TempDir()
	lat, _ := lateralAndAP(t, dir)
	pki := dicomnodetest.NewPKI(t)
	db := newDatabase(t, store.SQLite)
	dest := filepath.Join(dir, "pacs")
	require.NoError(t, os.MkdirAll(dest, 0o755))
	// -ic: the destination does not ask for our client certificate.
	scp := dicomnodetest.StartServer(t, "storescp", "+tls", pki.ServerKey, pki.ServerCert, "+cf", pki.CAFile, "-ic",
		"-aet", "PACS", "-od", dest, "PORT")
	n := startNode(t, nodeOpts{DSN: db.DSN, DataDir: filepath.Join(dir, "data"),
		Destinations: []string{fmt.Sprintf("{ae_title: PACS, host: 127.0.0.1, port: %d, tls: true}", scp.Port)},
		DICOMExtra: fmt.Sprintf("  tls:\n    enabled: true\n    cert_file: %s\n    key_file: %s\n    ca_file: %s\n    require_client_cert: true\n",
			pki.ServerCert, pki.ServerKey, pki.CAFile)})

	out, err := dicomnodetest.Run(t, true, "storescu", "-to", "5", "-aet", "PACS", "-aec", "CSPINE", "127.0.0.1", itoa(n.DICOMPort), lat.File)
	require.Error(t, err, "plain TCP accepted by a TLS node: %s", out)
	require.Zero(t, db.count(t, &models.Instance{}, ""))

	dicomnodetest.Run(t, false, "storescu", "+tls", pki.ClientKey, pki.ClientCert, "+cf", pki.CAFile,
		"-aet", "PACS", "-aec", "CSPINE", "127.0.0.1", itoa(n.DICOMPort), lat.File)
	waitFor(t, 60*time.Second, "SR and SC at the TLS destination", func() bool {
		r := received(t, dest)
		return len(r["SR"]) == 1 && len(r["SC"]) == 1
	})
	// Recorded once the association is released, just after the files landed.
	waitFor(t, 10*time.Second, "the transfer recorded as sent", func() bool {
		return db.count(t, &models.Transfer{}, "status = ?", models.TransferSent) == 1
	})
}
