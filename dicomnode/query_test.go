package dicomnode_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/cspine/cspine/dicomnode"
	"github.com/cspine/cspine/dicomnode/association"
	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/dicomnode/dimse"
	"github.com/cspine/cspine/dicomnode/pdu"
	"github.com/cspine/cspine/dicomnode/services"
)

// archive is a DCMTK dcmqrscp loaded with two studies of one patient.
type archive struct {
	port    int
	studies []string
}

func startArchive(t *testing.T, ourPort, otherPort int) *archive {
	t.Helper()
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	os.Mkdir(db, 0o700)
	port := dicomnodetest.FreePort(t)
	cfg := fmt.Sprintf(`NetworkTCPPort = %d
MaxPDUSize = 16384
MaxAssociations = 16
HostTable BEGIN
cspine = (CSPINE, 127.0.0.1, %d)
other = (OTHER, 127.0.0.1, %d)
HostTable END
VendorTable BEGIN
VendorTable END
AETable BEGIN
QRSCP %s RW (200, 1024mb) ANY
AETable END
`, port, ourPort, otherPort, db)
	cfgPath := filepath.Join(dir, "dcmqrscp.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	dicomnodetest.StartServerOnPort(t, port, "dcmqrscp", "-c", cfgPath, strconv.Itoa(port))
	a := &archive{port: port}
	// Load it with our own C-STORE SCU.
	ctx := context.Background()
	c, err := dicomnode.Dial(ctx, "127.0.0.1:"+strconv.Itoa(port), dicomnode.DialOpts{CallingAETitle: "LOADER", CalledAETitle: "QRSCP",
		Contexts: dicomnode.StorageContexts(map[string][]string{association.CRImageStorage: {association.ExplicitVRLittleEndian}})})
	if err != nil {
		t.Fatal(err)
	}
	for s := 0; s < 2; s++ {
		root := fmt.Sprintf("%s.40.%d", uidRoot, s)
		files, err := dicomnodetest.WriteSeries(t.TempDir(), root, 3, 32, 32)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if st, err := c.StoreFile(ctx, f); err != nil || st != dimse.StatusSuccess {
				t.Fatalf("load archive: %v %v", st, err)
			}
		}
		a.studies = append(a.studies, root+".1")
	}
	if err := c.Release(ctx); err != nil {
		t.Fatal(err)
	}
	return a
}

func elem(t *testing.T, tg tag.Tag, v string) *dicom.Element {
	e, err := dicom.NewElement(tg, []string{v})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func str(ds *dicom.Dataset, tg tag.Tag) string {
	e, err := ds.FindElementByTag(tg)
	if err != nil {
		return ""
	}
	if s, ok := e.Value.GetValue().([]string); ok && len(s) > 0 {
		return s[0]
	}
	return ""
}

// TestFindMoveAgainstDcmqrscp: C-FIND (study root, patient root) and C-MOVE
// to our own node and to a third AE (DCMTK storescp), with DCMTK dcmqrscp as
// the archive.
func TestFindMoveAgainstDcmqrscp(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	otherDir := t.TempDir()
	other := dicomnodetest.StartServer(t, "storescp", "-aet", "OTHER", "-od", otherDir, "PORT")
	arc := startArchive(t, b.port, other.Port)
	ctx := context.Background()
	c, err := dicomnode.Dial(ctx, "127.0.0.1:"+strconv.Itoa(arc.port), dicomnode.DialOpts{CallingAETitle: "CSPINE", CalledAETitle: "QRSCP",
		Contexts: dicomnode.QueryContexts(services.StudyRootFind, services.PatientRootFind, services.StudyRootMove, services.PatientRootMove)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release(ctx)

	// Study root, STUDY level, by patient ID.
	res, st, err := c.Find(ctx, services.StudyRootFind, []*dicom.Element{
		elem(t, tag.QueryRetrieveLevel, "STUDY"), elem(t, tag.PatientID, "TEST0001"), elem(t, tag.StudyInstanceUID, "")})
	if err != nil || st != dimse.StatusSuccess {
		t.Fatalf("study root find: %v %v", st, err)
	}
	var got []string
	for _, ds := range res {
		got = append(got, str(ds, tag.StudyInstanceUID))
	}
	if len(got) != 2 {
		t.Fatalf("study root find: %v, want %v", got, arc.studies)
	}
	// Patient root, PATIENT level.
	res, st, err = c.Find(ctx, services.PatientRootFind, []*dicom.Element{
		elem(t, tag.QueryRetrieveLevel, "PATIENT"), elem(t, tag.PatientID, ""), elem(t, tag.PatientName, "")})
	if err != nil || st != dimse.StatusSuccess || len(res) != 1 || str(res[0], tag.PatientID) != "TEST0001" {
		t.Fatalf("patient root find: %d results, %v %v", len(res), st, err)
	}
	// Patient root, SERIES level below a study.
	res, st, err = c.Find(ctx, services.PatientRootFind, []*dicom.Element{
		elem(t, tag.QueryRetrieveLevel, "SERIES"), elem(t, tag.PatientID, "TEST0001"),
		elem(t, tag.StudyInstanceUID, arc.studies[0]), elem(t, tag.SeriesInstanceUID, "")})
	if err != nil || st != dimse.StatusSuccess || len(res) != 1 {
		t.Fatalf("patient root series find: %d results, %v %v", len(res), st, err)
	}

	// C-MOVE study 0 to our own node.
	mr, err := c.Move(ctx, services.StudyRootMove, "CSPINE", []*dicom.Element{
		elem(t, tag.QueryRetrieveLevel, "STUDY"), elem(t, tag.StudyInstanceUID, arc.studies[0])})
	if err != nil || mr.Status != dimse.StatusSuccess || mr.Completed != 3 || mr.Failed != 0 {
		t.Fatalf("move to us: %+v %v", mr, err)
	}
	if n := len(b.spooled(t)); n != 3 {
		t.Fatalf("our node received %d instances, want 3", n)
	}
	// C-MOVE study 1 (patient root) to another AE.
	mr, err = c.Move(ctx, services.PatientRootMove, "OTHER", []*dicom.Element{
		elem(t, tag.QueryRetrieveLevel, "STUDY"), elem(t, tag.PatientID, "TEST0001"), elem(t, tag.StudyInstanceUID, arc.studies[1])})
	if err != nil || mr.Status != dimse.StatusSuccess || mr.Completed != 3 {
		t.Fatalf("move to OTHER: %+v %v", mr, err)
	}
	ents, _ := os.ReadDir(otherDir)
	if len(ents) != 3 {
		t.Fatalf("OTHER received %d instances", len(ents))
	}
	// Unknown destination: refused with A801.
	mr, err = c.Move(ctx, services.StudyRootMove, "NOWHERE", []*dicom.Element{
		elem(t, tag.QueryRetrieveLevel, "STUDY"), elem(t, tag.StudyInstanceUID, arc.studies[1])})
	if err != nil || mr.Status != dimse.StatusMoveDestinationUnknown {
		t.Fatalf("move to an unknown AE: %+v %v", mr, err)
	}
}

// TestGetAgainstDcmqrscp: C-GET with SCP role selection for CR storage; the
// instances come back on the same association and are kept by a SpoolStore.
func TestGetAgainstDcmqrscp(t *testing.T) {
	t.Parallel()
	arc := startArchive(t, dicomnodetest.FreePort(t), dicomnodetest.FreePort(t))
	spool, err := services.NewSpoolStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := dicomnode.Dial(ctx, "127.0.0.1:"+strconv.Itoa(arc.port), dicomnode.DialOpts{CallingAETitle: "CSPINE", CalledAETitle: "QRSCP",
		Contexts: append(dicomnode.QueryContexts(services.StudyRootGet),
			dicomnode.StorageContexts(map[string][]string{association.CRImageStorage: {association.ExplicitVRLittleEndian}})...),
		Roles: []pdu.RoleSelection{{SOPClassUID: association.CRImageStorage, SCU: false, SCP: true}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release(ctx)
	pc, ok := c.A.FindContext(association.CRImageStorage)
	if !ok || !pc.RequestorSCP {
		t.Fatalf("SCP role for CR storage not granted: %+v", pc)
	}
	c.Server = &services.Server{Store: spool, Logger: discardLogger()}
	res, err := c.Get(ctx, services.StudyRootGet, []*dicom.Element{
		elem(t, tag.QueryRetrieveLevel, "STUDY"), elem(t, tag.StudyInstanceUID, arc.studies[0])})
	if err != nil || res.Status != dimse.StatusSuccess || res.Completed != 3 {
		t.Fatalf("c-get: %+v %v", res, err)
	}
	ents, _ := os.ReadDir(spool.Dir)
	if len(ents) != 3+1 { // + .incoming
		t.Fatalf("kept %d entries", len(ents))
	}
}
