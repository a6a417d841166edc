package dicomnode_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cspine/cspine/dicomnode"
	"github.com/cspine/cspine/dicomnode/association"
	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/dicomnode/services"
)

const uidRoot = "1.2.826.0.1.3680043.10.1999"

// testBundle is a running node with a spool directory.
type testBundle struct {
	node  *dicomnode.Node
	spool *services.SpoolStore
	port  int
	addr  string
	done  chan error
}

func setup(t *testing.T, mutate func(*dicomnode.Config)) *testBundle {
	t.Helper()
	spool, err := services.NewSpoolStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := dicomnode.Config{
		AETitles: []string{"CSPINE"},
		Timeouts: association.Timeouts{ARTIM: 2 * time.Second, Idle: 5 * time.Second, Read: 5 * time.Second, Write: 5 * time.Second},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if mutate != nil {
		mutate(&cfg)
	}
	n, err := dicomnode.New(cfg, spool)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &testBundle{node: n, spool: spool, port: ln.Addr().(*net.TCPAddr).Port, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { b.done <- n.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Shutdown(ctx)
		<-b.done
	})
	return b
}

// spooled returns the names of the kept instances.
func (b *testBundle) spooled(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(b.spool.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// incoming returns leftover temporary files (there must be none).
func (b *testBundle) incoming(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(b.spool.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// dataSet returns the data set part of a Part-10 file.
func dataSet(t *testing.T, path string) ([]byte, services.FileMeta) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufioReader(f)
	meta, _, err := services.ReadFileMeta(br)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	return b, meta
}

func TestEchoscu(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	out, _ := dicomnodetest.Run(t, false, "echoscu", "-aet", "MODALITY", "-aec", "CSPINE", "127.0.0.1", strconv.Itoa(b.port))
	_ = out
	// Wrong called AE title: rejected.
	out, err := dicomnodetest.Run(t, true, "echoscu", "-aet", "MODALITY", "-aec", "NOTUS", "127.0.0.1", strconv.Itoa(b.port))
	if err == nil || !strings.Contains(out, "Called AE Title Not Recognized") {
		t.Fatalf("echoscu to a wrong AE title: err %v\n%s", err, out)
	}
}

func TestAllowedPeers(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *dicomnode.Config) {
		c.AllowedPeers = []association.Peer{{AETitle: "GOODPACS", Host: "127.0.0.0/8"}, {AETitle: "REMOTE", Host: "10.1.2.3"}}
	})
	dicomnodetest.Run(t, false, "echoscu", "-aet", "GOODPACS", "-aec", "CSPINE", "127.0.0.1", strconv.Itoa(b.port))
	for _, aet := range []string{"EVIL", "REMOTE"} {
		out, err := dicomnodetest.Run(t, true, "echoscu", "-aet", aet, "-aec", "CSPINE", "127.0.0.1", strconv.Itoa(b.port))
		if err == nil || !strings.Contains(out, "Calling AE Title Not Recognized") {
			t.Fatalf("echoscu as %s: err %v\n%s", aet, err, out)
		}
	}
}

func TestStorescuManyFilesOneAssociation(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	dir := t.TempDir()
	files, err := dicomnodetest.WriteSeries(dir, uidRoot+".10", 25, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-aet", "MODALITY", "-aec", "CSPINE", "127.0.0.1", strconv.Itoa(b.port)}, files...)
	dicomnodetest.Run(t, false, "storescu", args...)
	got := b.spooled(t)
	if len(got) != len(files) {
		t.Fatalf("spooled %d files, want %d: %v", len(got), len(files), got)
	}
	for i, f := range files {
		want, _ := dataSet(t, f)
		have, meta := dataSet(t, filepath.Join(b.spool.Dir, fmt.Sprintf("%s.10.3.%d.dcm", uidRoot, i+1)))
		if !bytes.Equal(want, have) {
			t.Fatalf("%s: data set differs after transfer", f)
		}
		if meta.SourceAETitle != "MODALITY" || meta.TransferSyntaxUID != association.ExplicitVRLittleEndian {
			t.Fatalf("file meta %+v", meta)
		}
	}
	if left := b.incoming(t); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	// Re-sending the same instances is detected: nothing new is kept.
	dicomnodetest.Run(t, false, "storescu", args...)
	if got2 := b.spooled(t); len(got2) != len(files) {
		t.Fatalf("after re-send: %d files", len(got2))
	}
	// The kept files are valid DICOM for an independent reader.
	out, _ := dicomnodetest.Run(t, false, "dcmdump", "-q", filepath.Join(b.spool.Dir, got[0]))
	if !strings.Contains(out, "MONOCHROME2") {
		t.Fatalf("dcmdump: %s", out)
	}
}

// TestStorescuTransferSyntaxes sends the same image in every transfer syntax
// we accept, made with DCMTK's own converters, and checks that each is kept
// in the syntax it was sent in.
func TestStorescuTransferSyntaxes(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.dcm")
	cases := []struct {
		ts, tool string
		args     []string
	}{
		{association.ExplicitVRLittleEndian, "", nil},
		{association.ImplicitVRLittleEndian, "dcmconv", []string{"+ti"}},
		{association.JPEGLosslessSV1, "dcmcjpeg", []string{"+e1"}},
		{association.JPEGLossless, "dcmcjpeg", []string{"+el"}},
		{association.RLELossless, "dcmcrle", nil},
	}
	var files []string
	for i, c := range cases {
		uid := fmt.Sprintf("%s.11.3.%d", uidRoot, i+1)
		if err := dicomnodetest.WriteImage(src, dicomnodetest.Image{SOPInstanceUID: uid,
			StudyInstanceUID: uidRoot + ".11.1", SeriesInstanceUID: uidRoot + ".11.2", Seed: i}); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, fmt.Sprintf("ts%d.dcm", i))
		if c.tool == "" {
			os.Rename(src, dst)
		} else {
			dicomnodetest.Run(t, false, c.tool, append(c.args, src, dst)...)
		}
		files = append(files, dst)
	}
	// storescu proposes compressed syntaxes only from a configuration file:
	// one presentation context per transfer syntax, all in one association.
	cfg := filepath.Join(dir, "storescu.cfg")
	writeStorescuConfig(t, cfg, association.CRImageStorage,
		association.ExplicitVRLittleEndian, association.ImplicitVRLittleEndian, association.JPEGLosslessSV1,
		association.JPEGLossless, association.RLELossless)
	dicomnodetest.Run(t, false, "storescu", append([]string{"-xf", cfg, "Default", "-aec", "CSPINE", "127.0.0.1", strconv.Itoa(b.port)}, files...)...)
	for i, c := range cases {
		want, wantMeta := dataSet(t, files[i])
		have, meta := dataSet(t, filepath.Join(b.spool.Dir, wantMeta.MediaStorageSOPInstanceUID+".dcm"))
		if meta.TransferSyntaxUID != c.ts || wantMeta.TransferSyntaxUID != c.ts {
			t.Errorf("case %d: sent %s, kept %s, want %s", i, wantMeta.TransferSyntaxUID, meta.TransferSyntaxUID, c.ts)
		}
		if !bytes.Equal(want, have) {
			t.Errorf("case %d (%s): data set differs", i, c.ts)
		}
	}
	// A lossy JPEG (baseline) context is refused at negotiation, so storescu
	// cannot send such a file.
	lossy := filepath.Join(dir, "lossy.dcm")
	dicomnodetest.WriteImage(src, dicomnodetest.Image{SOPInstanceUID: uidRoot + ".11.9", StudyInstanceUID: uidRoot + ".11.1",
		SeriesInstanceUID: uidRoot + ".11.2", Rows: 64, Columns: 64})
	dicomnodetest.Run(t, false, "dcmconv", "+te", src, src+".le")
	dicomnodetest.Run(t, false, "dcmcjpeg", "+eb", src+".le", lossy)
	writeStorescuConfig(t, cfg, association.CRImageStorage, "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.90")
	out, err := dicomnodetest.Run(t, true, "storescu", "-xf", cfg, "Default", "-aec", "CSPINE", "127.0.0.1", strconv.Itoa(b.port), lossy)
	if err == nil {
		t.Fatalf("storescu sent a lossy JPEG file:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(b.spool.Dir, uidRoot+".11.9.dcm")); err == nil {
		t.Fatal("a lossy JPEG instance was accepted")
	}
}

// writeStorescuConfig writes a storescu --config-file with profile
// "Default": one presentation context for sopClass per transfer syntax.
func writeStorescuConfig(t *testing.T, path, sopClass string, tss ...string) {
	t.Helper()
	var s strings.Builder
	s.WriteString("[[TransferSyntaxes]]\n")
	for i, ts := range tss {
		fmt.Fprintf(&s, "[TS%d]\nTransferSyntax1 = %s\n", i, ts)
	}
	s.WriteString("[[PresentationContexts]]\n[Contexts]\n")
	for i := range tss {
		fmt.Fprintf(&s, "PresentationContext%d = %s\\TS%d\n", i+1, sopClass, i)
	}
	s.WriteString("[[Profiles]]\n[Default]\nPresentationContexts = Contexts\n")
	if err := os.WriteFile(path, []byte(s.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestAcceptAllStorage: with AcceptAllStorage an MR instance (not
// analysed) is accepted and kept; without it the context is refused.
func TestAcceptAllStorage(t *testing.T) {
	t.Parallel()
	const mr = "1.2.840.10008.5.1.4.1.1.4"
	f := filepath.Join(t.TempDir(), "mr.dcm")
	if err := dicomnodetest.WriteImage(f, dicomnodetest.Image{SOPClassUID: mr, SOPInstanceUID: uidRoot + ".15.3.1",
		StudyInstanceUID: uidRoot + ".15.1", SeriesInstanceUID: uidRoot + ".15.2"}); err != nil {
		t.Fatal(err)
	}
	strict := setup(t, nil)
	if out, err := dicomnodetest.Run(t, true, "storescu", "-aec", "CSPINE", "127.0.0.1", strconv.Itoa(strict.port), f); err == nil {
		t.Fatalf("MR accepted by default:\n%s", out)
	}
	all := setup(t, func(c *dicomnode.Config) { c.AcceptAllStorage = true })
	dicomnodetest.Run(t, false, "storescu", "-aec", "CSPINE", "127.0.0.1", strconv.Itoa(all.port), f)
	if got := all.spooled(t); len(got) != 1 || got[0] != uidRoot+".15.3.1.dcm" {
		t.Fatalf("kept %v", got)
	}
}

func TestStorescuParallelAssociations(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	const assocs, per = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, assocs)
	for a := 0; a < assocs; a++ {
		dir := t.TempDir()
		files, err := dicomnodetest.WriteSeries(dir, fmt.Sprintf("%s.12.%d", uidRoot, a), per, 128, 128)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := dicomnodetest.Run(t, true, "storescu", append([]string{"-aec", "CSPINE", "127.0.0.1", strconv.Itoa(b.port)}, files...)...); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := len(b.spooled(t)); got != assocs*per {
		t.Fatalf("spooled %d, want %d", got, assocs*per)
	}
}

func TestAssociationLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *dicomnode.Config) { c.MaxAssociations = 1 })
	// Hold one association open with a silent raw connection that has associated.
	c, err := dicomnode.Dial(context.Background(), b.addr, dicomnode.DialOpts{CallingAETitle: "HOLDER", CalledAETitle: "CSPINE",
		Contexts: dicomnode.VerificationContexts()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.A.Abort()
	out, err := dicomnodetest.Run(t, true, "echoscu", "-aec", "CSPINE", "127.0.0.1", strconv.Itoa(b.port))
	if err == nil || !strings.Contains(out, "Local Limit Exceeded") {
		t.Fatalf("second association over the limit: err %v\n%s", err, out)
	}
}

func TestOurEchoAndStore(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	dir := t.TempDir()
	files, err := dicomnodetest.WriteSeries(dir, uidRoot+".13", 3, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := dicomnode.Dial(ctx, b.addr, dicomnode.DialOpts{CallingAETitle: "SCU", CalledAETitle: "CSPINE",
		Contexts: append(dicomnode.VerificationContexts(), dicomnode.StorageContexts(map[string][]string{
			association.CRImageStorage: {association.ExplicitVRLittleEndian}})...)})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Echo(ctx); err != nil || st != 0 {
		t.Fatalf("echo: %v %v", st, err)
	}
	for _, f := range files {
		if st, err := c.StoreFile(ctx, f); err != nil || st != 0 {
			t.Fatalf("store %s: %v %v", f, st, err)
		}
	}
	if err := c.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(b.spooled(t)); got != 3 {
		t.Fatalf("spooled %d", got)
	}
}

func TestOurSCUToStorescp(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	p := dicomnodetest.StartServer(t, "storescp", "+xa", "-aet", "STORESCP", "-od", out, "PORT")
	dir := t.TempDir()
	files, err := dicomnodetest.WriteSeries(dir, uidRoot+".14", 5, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	// One file compressed, to check that its transfer syntax is kept.
	jpeg := filepath.Join(dir, "jpeg.dcm")
	dicomnodetest.WriteImage(jpeg+".src", dicomnodetest.Image{SOPInstanceUID: uidRoot + ".14.9", StudyInstanceUID: uidRoot + ".14.1", SeriesInstanceUID: uidRoot + ".14.2"})
	dicomnodetest.Run(t, false, "dcmcjpeg", "+e1", jpeg+".src", jpeg)
	files = append(files, jpeg)

	ctx := context.Background()
	c, err := dicomnode.Dial(ctx, "127.0.0.1:"+strconv.Itoa(p.Port), dicomnode.DialOpts{CallingAETitle: "CSPINE", CalledAETitle: "STORESCP",
		Contexts: append(dicomnode.VerificationContexts(), dicomnode.StorageContexts(map[string][]string{
			association.CRImageStorage: {association.ExplicitVRLittleEndian, association.JPEGLosslessSV1}})...)})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Echo(ctx); err != nil || st != 0 {
		t.Fatalf("echo: %v %v", st, err)
	}
	for _, f := range files {
		if st, err := c.StoreFile(ctx, f); err != nil || st != 0 {
			t.Fatalf("store %s: %v %v", f, st, err)
		}
	}
	if err := c.Release(ctx); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != len(files) {
		t.Fatalf("storescp kept %d files, want %d\n%s", len(ents), len(files), p.Out.String())
	}
	for _, e := range ents {
		_, meta := dataSet(t, filepath.Join(out, e.Name()))
		if meta.MediaStorageSOPInstanceUID == uidRoot+".14.9" && meta.TransferSyntaxUID != association.JPEGLosslessSV1 {
			t.Fatalf("JPEG file arrived as %s", meta.TransferSyntaxUID)
		}
	}
}

// settleGoroutines waits until the number of goroutines is back to base.
func settleGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if runtime.NumGoroutine() <= base {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	t.Fatalf("goroutines: %d, want <= %d\n%s", runtime.NumGoroutine(), base, buf[:n])
}

var _ = errors.New

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]dicomnode.Config{
		"no AE title":         {},
		"AE title too long":   {AETitles: []string{"ABCDEFGHIJKLMNOPQ"}},
		"tiny PDU":            {AETitles: []string{"CSPINE"}, MaxPDULength: 100},
		"caller without AE":   {AETitles: []string{"CSPINE"}, AllowedPeers: []association.Peer{{Host: "10.0.0.1"}}},
		"TLS without cert":    {AETitles: []string{"CSPINE"}, TLS: &tls.Config{}},
		"negative object max": {AETitles: []string{"CSPINE"}, MaxObjectSize: -1},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: validated", name)
		}
		if _, err := dicomnode.New(c, nil); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
	if err := (dicomnode.Config{AETitles: []string{"CSPINE"}}).Validate(); err != nil {
		t.Fatal(err)
	}
}
