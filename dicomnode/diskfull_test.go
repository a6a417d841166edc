package dicomnode_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/cspine/cspine/dicomnode"
	"github.com/cspine/cspine/dicomnode/association"
	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/dicomnode/dimse"
	"github.com/cspine/cspine/dicomnode/services"
)

// TestDiskFull fills a small tmpfs spool: every C-STORE answered success
// must be kept whole, the first that does not fit must be answered A700,
// and nothing half-written may remain. The test re-executes itself in a
// private user and mount namespace (unshare -rm) to mount the tmpfs
// without privileges.
func TestDiskFull(t *testing.T) {
	if !dicomnodetest.InMountNamespace(t, "CSPINE_DISKFULL_CHILD", "refused with A700") {
		return
	}
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "spool")
	os.Mkdir(spoolDir, 0o700)
	dicomnodetest.MountTmpfs(t, spoolDir, "600k")
	spool, err := services.NewSpoolStore(spoolDir)
	if err != nil {
		t.Fatal(err)
	}
	n, err := dicomnode.New(dicomnode.Config{AETitles: []string{"CSPINE"}, Logger: discardLogger()}, spool)
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go n.Serve(context.Background(), ln)
	defer n.Shutdown(context.Background())

	src := t.TempDir()
	files, err := dicomnodetest.WriteSeries(src, uidRoot+".30", 12, 128, 128) // ~33 KiB each
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := dicomnode.Dial(ctx, ln.Addr().String(), dicomnode.DialOpts{CallingAETitle: "SCU", CalledAETitle: "CSPINE",
		Contexts: dicomnode.StorageContexts(map[string][]string{association.CRImageStorage: {association.ExplicitVRLittleEndian}})})
	if err != nil {
		t.Fatal(err)
	}
	// Fill the disk with a big file first so that only a few images fit.
	filler, _ := os.Create(filepath.Join(spoolDir, "filler"))
	filler.Write(make([]byte, 450<<10))
	filler.Close()
	ok, full := 0, 0
	for i, f := range files {
		st, err := c.StoreFile(ctx, f)
		if err != nil {
			t.Fatalf("store %d: %v", i, err)
		}
		switch st {
		case dimse.StatusSuccess:
			ok++
			if full > 0 {
				t.Fatalf("success after A700 with the disk still full")
			}
			want, _ := dataSet(t, f)
			have, _ := dataSet(t, filepath.Join(spoolDir, fmt.Sprintf("%s.30.3.%d.dcm", uidRoot, i+1)))
			if !bytes.Equal(want, have) {
				t.Fatalf("instance %d kept incomplete", i)
			}
		case dimse.StatusOutOfResources:
			full++
			if _, err := os.Stat(filepath.Join(spoolDir, fmt.Sprintf("%s.30.3.%d.dcm", uidRoot, i+1))); err == nil {
				t.Fatalf("instance %d answered A700 but kept", i)
			}
		default:
			t.Fatalf("store %d: status %v", i, st)
		}
	}
	c.Release(ctx)
	if ok == 0 || full == 0 {
		t.Fatalf("%d stored, %d refused: the test did not reach a full disk", ok, full)
	}
	ents, _ := os.ReadDir(spool.TempDir())
	if len(ents) != 0 {
		t.Fatalf("temporary files left on a full disk: %d", len(ents))
	}
	t.Logf("%d stored, %d refused with A700", ok, full)
}
