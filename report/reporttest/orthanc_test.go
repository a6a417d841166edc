package reporttest_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/suyashkumar/dicom"

	"github.com/cspine/cspine/report/dicomio"
	"github.com/cspine/cspine/report/reporttest"
	"github.com/cspine/cspine/report/sc"
	"github.com/cspine/cspine/report/sr"
)

// TestOrthancAcceptsReports stores a source image, its SR and its SC in a
// real Orthanc through the REST API (POST /instances; a DICOM C-STORE test
// belongs with the node's SCU in dicomnode/) and finds both reports in the
// source study: same patient and study, new series, SR content readable by
// Orthanc, SC rendered by Orthanc as a PNG. A re-send replaces rather than
// duplicates; the reviewed SR joins the SR series as a second instance.
func TestOrthancAcceptsReports(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Orthanc")
	}
	o := reporttest.StartOrthanc(t)
	c := reporttest.NewCase(t, reporttest.CaseOptions{Flagged: true, Seed: 77})
	src, err := dicomio.SourceFromDataset(c.Source)
	if err != nil {
		t.Fatal(err)
	}
	d := reporttest.Device
	dev := dicomio.Device{Manufacturer: d.Manufacturer, ModelName: d.ModelName, Name: d.Name, UID: d.UID, SoftwareVersion: d.SoftwareVersion}
	now := time.Date(2026, 1, 2, 11, 0, 0, 0, time.UTC)
	srDS, err := sr.Build(src, c.Result, sr.Options{Device: dev, ContentTime: now})
	if err != nil {
		t.Fatal(err)
	}
	scDS, err := sc.Build(src, c.Result, c.Display, c.Rows, c.Cols, sc.Options{Device: dev, ContentTime: now})
	if err != nil {
		t.Fatal(err)
	}
	srBytes, err := dicomio.Encode(srDS)
	if err != nil {
		t.Fatal(err)
	}
	scBytes, err := dicomio.Encode(scDS)
	if err != nil {
		t.Fatal(err)
	}

	srcUp := o.Upload(t, c.SourceBytes)
	srUp := o.Upload(t, srBytes)
	scUp := o.Upload(t, scBytes)
	for name, up := range map[string]map[string]string{"SR": srUp, "SC": scUp} {
		if up["ParentStudy"] != srcUp["ParentStudy"] || up["ParentPatient"] != srcUp["ParentPatient"] {
			t.Errorf("%s stored in study %s patient %s, source in %s %s", name, up["ParentStudy"], up["ParentPatient"],
				srcUp["ParentStudy"], srcUp["ParentPatient"])
		}
		if up["ParentSeries"] == srcUp["ParentSeries"] {
			t.Errorf("%s stored in the source series", name)
		}
	}

	// Find both through the study's REST resources.
	type instance struct {
		ID            string
		ParentSeries  string
		MainDicomTags map[string]string
	}
	var insts []instance
	o.Get(t, "/studies/"+srcUp["ParentStudy"]+"/instances", &insts)
	byUID := map[string]instance{}
	for _, in := range insts {
		byUID[in.MainDicomTags["SOPInstanceUID"]] = in
	}
	srUID, scUID := sr.InstanceUID(src, "1.0.0", 0), sc.InstanceUID(src, "1.0.0", 0)
	for _, u := range []string{src.SOPInstanceUID, srUID, scUID} {
		if _, ok := byUID[u]; !ok {
			t.Errorf("instance %s not in the source study (have %v)", u, byUID)
		}
	}
	var series []struct {
		ID            string
		Instances     []string
		MainDicomTags map[string]string
	}
	o.Get(t, "/studies/"+srcUp["ParentStudy"]+"/series", &series)
	modalities := map[string]string{}
	for _, s := range series {
		modalities[s.MainDicomTags["Modality"]] = s.MainDicomTags["SeriesDescription"]
	}
	if len(series) != 3 || modalities["SR"] != sr.SeriesDescription || modalities["OT"] != sc.SeriesDescription {
		t.Errorf("study series %v", modalities)
	}

	// Orthanc parsed the SR content tree and renders the SC.
	var tags map[string]any
	o.Get(t, "/instances/"+srUp["ID"]+"/tags?simplify", &tags)
	if tags["VerificationFlag"] != "UNVERIFIED" || tags["ContentSequence"] == nil {
		t.Errorf("SR tags in Orthanc: VerificationFlag %v, ContentSequence present %v", tags["VerificationFlag"], tags["ContentSequence"] != nil)
	}
	png, ctype := o.Get(t, "/instances/"+scUp["ID"]+"/preview", nil)
	if ctype != "image/png" || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("SC preview: %s, %d bytes", ctype, len(png))
	}

	// Re-send: same UIDs, so no duplicate.
	o.Upload(t, srBytes)
	o.Upload(t, scBytes)
	var again []instance
	o.Get(t, "/studies/"+srcUp["ParentStudy"]+"/instances", &again)
	if len(again) != 3 {
		t.Errorf("after a re-send the study has %d instances, want 3", len(again))
	}

	// The reviewed SR: a new instance in the same SR series.
	parsed, err := dicom.Parse(bytes.NewReader(srBytes), int64(len(srBytes)), nil)
	if err != nil {
		t.Fatal(err)
	}
	pred, err := sr.ReferenceOf(parsed)
	if err != nil {
		t.Fatal(err)
	}
	amended, err := sr.Build(src, c.Result, sr.Options{Device: dev, ContentTime: now.Add(time.Hour), Revision: 1,
		Amendment: &sr.Amendment{Predecessor: pred, ObserverName: "Reviewer^Quinn", Organization: "QA", VerifiedAt: now.Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	amBytes, err := dicomio.Encode(amended)
	if err != nil {
		t.Fatal(err)
	}
	amUp := o.Upload(t, amBytes)
	if amUp["ParentSeries"] != srUp["ParentSeries"] || amUp["ID"] == srUp["ID"] {
		t.Errorf("amended SR: series %s (SR series %s), id %s", amUp["ParentSeries"], srUp["ParentSeries"], amUp["ID"])
	}
}
