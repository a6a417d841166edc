package dicomnode_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/cspine/cspine/dicomnode"
	"github.com/cspine/cspine/dicomnode/association"
	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/dicomnode/dimse"
	"github.com/cspine/cspine/dicomnode/services"
)

// orthanc is a running Orthanc with its REST base URL and DICOM port.
type orthanc struct {
	url  string
	port int
}

func startOrthanc(t *testing.T, ourPort int) *orthanc {
	t.Helper()
	dir := t.TempDir()
	httpPort, dicomPort := dicomnodetest.FreePort(t), dicomnodetest.FreePort(t)
	cfg := map[string]any{
		"Name": "cspine-test", "StorageDirectory": filepath.Join(dir, "storage"), "IndexDirectory": filepath.Join(dir, "index"),
		"HttpPort": httpPort, "DicomPort": dicomPort, "DicomAet": "ORTHANC", "RemoteAccessAllowed": false,
		"AuthenticationEnabled": false, "DicomCheckCalledAet": true, "Plugins": []string{},
		"DicomModalities":      map[string]any{"cspine": []any{"CSPINE", "127.0.0.1", ourPort}},
		"DicomAlwaysAllowEcho": true, "DicomAlwaysAllowStore": true, "DicomScpTimeout": 10,
	}
	b, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(dir, "orthanc.json")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	dicomnodetest.StartServerOnPort(t, httpPort, "Orthanc", cfgPath)
	dicomnodetest.WaitListening(t, dicomPort, 10*time.Second)
	return &orthanc{url: "http://127.0.0.1:" + strconv.Itoa(httpPort), port: dicomPort}
}

func (o *orthanc) post(t *testing.T, path string, body []byte, out any) {
	t.Helper()
	resp, err := http.Post(o.url+path, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s\n%s", path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("POST %s: %v\n%s", path, err, b)
		}
	}
}

func (o *orthanc) get(t *testing.T, path string, out any) {
	t.Helper()
	resp, err := http.Get(o.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, b)
	}
}

// TestOrthanc: Orthanc 1.10 as the SCU sending to our node (including a
// JPEG Lossless instance), and as the archive for our C-STORE, C-FIND and
// C-MOVE SCU.
func TestOrthanc(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	o := startOrthanc(t, b.port)
	dir := t.TempDir()
	files, err := dicomnodetest.WriteSeries(dir, uidRoot+".70", 2, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	jpeg := filepath.Join(dir, "jpeg.dcm")
	dicomnodetest.WriteImage(jpeg+".src", dicomnodetest.Image{SOPInstanceUID: uidRoot + ".70.3.9", StudyInstanceUID: uidRoot + ".70.1",
		SeriesInstanceUID: uidRoot + ".70.2", Seed: 9})
	dicomnodetest.Run(t, false, "dcmcjpeg", "+e1", jpeg+".src", jpeg)
	files = append(files, jpeg)

	ctx := context.Background()
	// Our C-STORE SCU → Orthanc.
	c, err := dicomnode.Dial(ctx, "127.0.0.1:"+strconv.Itoa(o.port), dicomnode.DialOpts{CallingAETitle: "CSPINE", CalledAETitle: "ORTHANC",
		Contexts: append(dicomnode.VerificationContexts(), dicomnode.StorageContexts(map[string][]string{
			association.CRImageStorage: {association.ExplicitVRLittleEndian, association.JPEGLosslessSV1}})...)})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Echo(ctx); err != nil || st != dimse.StatusSuccess {
		t.Fatalf("echo Orthanc: %v %v", st, err)
	}
	for _, f := range files {
		if st, err := c.StoreFile(ctx, f); err != nil || st != dimse.StatusSuccess {
			t.Fatalf("store to Orthanc %s: %v %v", f, st, err)
		}
	}
	if err := c.Release(ctx); err != nil {
		t.Fatal(err)
	}
	var ids []string
	o.get(t, "/instances", &ids)
	if len(ids) != 3 {
		t.Fatalf("Orthanc holds %d instances, want 3", len(ids))
	}

	// Orthanc's C-STORE SCU → our node.
	o.post(t, "/modalities/cspine/store", []byte(`{"Resources": ["`+strings.Join(ids, `","`)+`"], "Synchronous": true}`), nil)
	kept := b.spooled(t)
	if len(kept) != 3 {
		t.Fatalf("our node kept %v", kept)
	}
	for _, f := range files {
		want, wm := dataSet(t, f)
		have, hm := dataSet(t, filepath.Join(b.spool.Dir, wm.MediaStorageSOPInstanceUID+".dcm"))
		if hm.TransferSyntaxUID == wm.TransferSyntaxUID && !bytes.Equal(want, have) {
			t.Errorf("%s: data set changed on the way through Orthanc", f)
		}
		if hm.SourceAETitle != "ORTHANC" {
			t.Errorf("source AE %q", hm.SourceAETitle)
		}
	}

	// Our C-FIND and C-MOVE SCU against Orthanc.
	q, err := dicomnode.Dial(ctx, "127.0.0.1:"+strconv.Itoa(o.port), dicomnode.DialOpts{CallingAETitle: "CSPINE", CalledAETitle: "ORTHANC",
		Contexts: dicomnode.QueryContexts(services.StudyRootFind, services.PatientRootFind, services.StudyRootMove)})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Release(ctx)
	res, st, err := q.Find(ctx, services.StudyRootFind, []*dicom.Element{
		elem(t, tag.QueryRetrieveLevel, "STUDY"), elem(t, tag.StudyInstanceUID, ""), elem(t, tag.PatientID, "TEST0001")})
	if err != nil || st != dimse.StatusSuccess || len(res) != 1 || str(res[0], tag.StudyInstanceUID) != uidRoot+".70.1" {
		t.Fatalf("find study: %d results, %v %v", len(res), st, err)
	}
	res, st, err = q.Find(ctx, services.PatientRootFind, []*dicom.Element{
		elem(t, tag.QueryRetrieveLevel, "PATIENT"), elem(t, tag.PatientID, ""), elem(t, tag.PatientName, "")})
	if err != nil || st != dimse.StatusSuccess || len(res) != 1 || str(res[0], tag.PatientName) != "TEST^PATIENT" {
		t.Fatalf("find patient: %d results, %v %v", len(res), st, err)
	}
	// Move back to us: the instances are already kept, so the spool stays at 3
	// files (identical re-sends) or gains variants if Orthanc re-encoded.
	mr, err := q.Move(ctx, services.StudyRootMove, "CSPINE", []*dicom.Element{
		elem(t, tag.QueryRetrieveLevel, "STUDY"), elem(t, tag.StudyInstanceUID, uidRoot+".70.1")})
	if err != nil || mr.Status != dimse.StatusSuccess || mr.Failed != 0 || mr.Completed != 3 {
		t.Fatalf("move from Orthanc: %+v %v", mr, err)
	}
	if n := len(b.spooled(t)); n < 3 {
		t.Fatalf("spool lost instances: %d", n)
	}
}
