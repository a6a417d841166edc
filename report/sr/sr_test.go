package sr_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/suyashkumar/dicom"

	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/report/dicomio"
	"github.com/cspine/cspine/report/param"
	"github.com/cspine/cspine/report/reporttest"
	"github.com/cspine/cspine/report/sr"
)

var contentTime = time.Date(2026, 1, 2, 10, 30, 0, 0, time.UTC)

func testOptions() sr.Options {
	d := reporttest.Device
	return sr.Options{
		Device:      sr.Device{Manufacturer: d.Manufacturer, ModelName: d.ModelName, Name: d.Name, UID: d.UID, SoftwareVersion: d.SoftwareVersion},
		ContentTime: contentTime,
	}
}

func build(t *testing.T, c reporttest.Case, opts sr.Options) (dicomio.Source, []byte) {
	t.Helper()
	src, err := dicomio.SourceFromDataset(c.Source)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := sr.Build(src, c.Result, opts)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	b, err := dicomio.Encode(ds)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return src, b
}

// amendment returns options for a verified (or corrected) revision 1 of the
// machine report b.
func amendment(t *testing.T, b []byte, corrected bool) sr.Options {
	t.Helper()
	ds, err := dicom.Parse(bytes.NewReader(b), int64(len(b)), nil)
	if err != nil {
		t.Fatal(err)
	}
	pred, err := sr.ReferenceOf(ds)
	if err != nil {
		t.Fatal(err)
	}
	o := testOptions()
	o.Revision = 1
	o.ContentTime = contentTime.Add(2 * time.Hour)
	o.Amendment = &sr.Amendment{Predecessor: pred, ObserverName: "Reviewer^Quinn", Organization: "Example Hospital QA",
		VerifiedAt: contentTime.Add(2 * time.Hour), Corrected: corrected}
	return o
}

// TestValidators runs dciodvfy, dcmdump -E and dsrdump on an unflagged, a
// flagged, a no-spacing and both amendment reports.
func TestValidators(t *testing.T) {
	unflagged := reporttest.NewCase(t, reporttest.CaseOptions{})
	flagged := reporttest.NewCase(t, reporttest.CaseOptions{Flagged: true, Seed: 2})
	noSpacing := reporttest.NewCase(t, reporttest.CaseOptions{NoSpacing: true, Seed: 3})
	_, machine := build(t, flagged, testOptions())
	corrected := flagged
	corrected.Result.Landmarks = append([]result.Landmark(nil), flagged.Result.Landmarks...)
	corrected.Result.Landmarks[len(corrected.Result.Landmarks)-1].X += 4
	tests := []struct {
		name string
		c    reporttest.Case
		opts sr.Options
		flag string
	}{
		{"unflagged", unflagged, testOptions(), "UNVERIFIED"},
		{"flagged", flagged, testOptions(), "UNVERIFIED"},
		{"no_spacing", noSpacing, testOptions(), "UNVERIFIED"},
		{"verified", flagged, amendment(t, machine, false), "VERIFIED"},
		{"corrected", corrected, amendment(t, machine, true), "VERIFIED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, b := build(t, tt.c, tt.opts)
			reporttest.CheckTagOrder(t, b)
			p := reporttest.WriteTemp(t, "sr.dcm", b)
			reporttest.Validate(t, p, true)
			out, err := reporttest.Run(t, "dsrdump", p)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "Verification Flag   : "+tt.flag) {
				t.Errorf("dsrdump does not show VerificationFlag %s:\n%s", tt.flag, out)
			}
		})
	}
}

// pyWalk reads an SR with pydicom and prints, as JSON, the header facts and
// every NUM with its SCOORDs and their referenced images.
const pyWalk = `
import json, sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
out = {"sop_class": ds.SOPClassUID, "sop_instance": ds.SOPInstanceUID,
       "study": ds.StudyInstanceUID, "patient_name": str(ds.PatientName),
       "charset": ds.get("SpecificCharacterSet", ""),
       "verification": ds.VerificationFlag, "completion": ds.CompletionFlag,
       "evidence": [], "library": [], "nums": [], "codes": [],
       "predecessor": [], "verifier": []}
for st in ds.get("CurrentRequestedProcedureEvidenceSequence", []):
    for se in st.ReferencedSeriesSequence:
        for so in se.ReferencedSOPSequence:
            out["evidence"].append([st.StudyInstanceUID, se.SeriesInstanceUID,
                                    so.ReferencedSOPClassUID, so.ReferencedSOPInstanceUID])
for st in ds.get("PredecessorDocumentsSequence", []):
    for se in st.ReferencedSeriesSequence:
        for so in se.ReferencedSOPSequence:
            out["predecessor"].append(so.ReferencedSOPInstanceUID)
for v in ds.get("VerifyingObserverSequence", []):
    out["verifier"].append(str(v.VerifyingObserverName))
def name(it):
    return it.ConceptNameCodeSequence[0].CodeMeaning if "ConceptNameCodeSequence" in it else ""
def walk(items, tracking, path):
    for it in items:
        if it.ValueType == "CONTAINER" and name(it) == "Measurement Group":
            tid = [c.TextValue for c in it.ContentSequence if name(c) == "Tracking Identifier"][0]
            walk(it.ContentSequence, tid, path + [name(it)])
            continue
        if it.ValueType == "IMAGE" and path and path[-1] == "Image Library Group":
            r = it.ReferencedSOPSequence[0]
            out["library"].append([r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID])
        if it.ValueType == "CODE":
            c = it.ConceptCodeSequence[0]
            out["codes"].append([name(it), c.CodeValue, c.CodingSchemeDesignator])
        if it.ValueType == "NUM":
            mv = it.MeasuredValueSequence
            num = {"tracking": tracking, "concept": name(it), "value": None, "unit": None,
                   "qualifier": None, "scoords": []}
            if len(mv):
                num["value"] = float(mv[0].NumericValue)
                num["unit"] = mv[0].MeasurementUnitsCodeSequence[0].CodeValue
            else:
                num["qualifier"] = it.NumericValueQualifierCodeSequence[0].CodeValue
            for sc in it.ContentSequence:
                assert sc.RelationshipType == "INFERRED FROM" and sc.ValueType == "SCOORD"
                img = sc.ContentSequence[0]
                assert img.RelationshipType == "SELECTED FROM" and img.ValueType == "IMAGE"
                r = img.ReferencedSOPSequence[0]
                num["scoords"].append({"type": sc.GraphicType, "points": [float(x) for x in sc.GraphicData],
                                       "purpose": name(sc),
                                       "ref": [r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID]})
            out["nums"].append(num)
        if "ContentSequence" in it:
            walk(it.ContentSequence, tracking, path + [name(it)])
walk(ds.ContentSequence, None, [name(ds)])
print(json.dumps(out))
`

type pyOut struct {
	SOPClass     string     `json:"sop_class"`
	SOPInstance  string     `json:"sop_instance"`
	Study        string     `json:"study"`
	PatientName  string     `json:"patient_name"`
	Charset      any        `json:"charset"`
	Verification string     `json:"verification"`
	Completion   string     `json:"completion"`
	Evidence     [][]string `json:"evidence"`
	Library      [][]string `json:"library"`
	Codes        [][]string `json:"codes"`
	Predecessor  []string   `json:"predecessor"`
	Verifier     []string   `json:"verifier"`
	Nums         []struct {
		Tracking  string   `json:"tracking"`
		Concept   string   `json:"concept"`
		Value     *float64 `json:"value"`
		Unit      *string  `json:"unit"`
		Qualifier *string  `json:"qualifier"`
		SCoords   []struct {
			Type    string    `json:"type"`
			Points  []float64 `json:"points"`
			Purpose string    `json:"purpose"`
			Ref     []string  `json:"ref"`
		} `json:"scoords"`
	} `json:"nums"`
}

func readWithPydicom(t *testing.T, b []byte) pyOut {
	t.Helper()
	p := reporttest.WriteTemp(t, "sr.dcm", b)
	out := reporttest.PyDicom(t, pyWalk, p)
	var o pyOut
	if err := json.Unmarshal([]byte(out), &o); err != nil {
		t.Fatalf("pydicom output: %v\n%s", err, out)
	}
	return o
}

// TestPydicomSCOORDsMatchLandmarks reads the SR with pydicom and checks that
// every SCOORD point is the landmark of the result it stands for (in SR
// image coordinates: +0.5 pixel, PS3.3 C.18.6.1.1), that every reference is
// the source image, and that the values and review state are those of the
// result.
func TestPydicomSCOORDsMatchLandmarks(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    reporttest.CaseOptions
	}{
		{"unflagged", reporttest.CaseOptions{Seed: 11}},
		{"flagged_no_spacing", reporttest.CaseOptions{Seed: 12, Flagged: true, NoSpacing: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := reporttest.NewCase(t, tc.o)
			src, b := build(t, c, testOptions())

			// In Python: SR points against the analysis JSON.
			resJSON, err := json.Marshal(c.Result)
			if err != nil {
				t.Fatal(err)
			}
			lines := map[string][][]string{}
			want := 0
			for _, p := range param.All() {
				for _, l := range p.Lines {
					lines[p.Label] = append(lines[p.Label], []string{l[0], l[1]})
					want += 2
				}
			}
			lj, _ := json.Marshal(lines)
			got := reporttest.PyDicom(t, pyJSONCheck, reporttest.WriteTemp(t, "sr.dcm", b),
				reporttest.WriteTemp(t, "result.json", resJSON), string(lj))
			if strings.TrimSpace(got) != fmt.Sprint(want) {
				t.Errorf("pydicom checked %s points, want %d", strings.TrimSpace(got), want)
			}

			o := readWithPydicom(t, b)
			if o.SOPClass != sr.ComprehensiveSRStorage || o.Study != src.StudyInstanceUID {
				t.Errorf("SOP class %s study %s", o.SOPClass, o.Study)
			}
			if o.Verification != "UNVERIFIED" {
				t.Errorf("VerificationFlag %s", o.Verification)
			}
			srcRef := []string{src.SOPClassUID, src.SOPInstanceUID}
			wantEvidence := [][]string{{src.StudyInstanceUID, src.SeriesInstanceUID, src.SOPClassUID, src.SOPInstanceUID}}
			if !equalJSON(o.Evidence, wantEvidence) {
				t.Errorf("evidence %v, want %v", o.Evidence, wantEvidence)
			}
			if !equalJSON(o.Library, [][]string{srcRef}) {
				t.Errorf("image library %v, want %v", o.Library, srcRef)
			}
			idx := param.Index(c.Result.Landmarks)
			byLabel := map[string]param.Param{}
			for _, p := range param.All() {
				byLabel[p.Label] = p
			}
			if len(o.Nums) != len(param.All()) {
				t.Fatalf("%d NUMs, want %d", len(o.Nums), len(param.All()))
			}
			for _, n := range o.Nums {
				p, ok := byLabel[n.Tracking]
				if !ok {
					t.Fatalf("unknown tracking identifier %q", n.Tracking)
				}
				want, has := p.Value(c.Result.Parameters)
				switch {
				case has && (n.Value == nil || math.Abs(*n.Value-want) > 1e-9):
					t.Errorf("%s: value %v, want %v", p.Key, n.Value, want)
				case !has && (n.Value != nil || n.Qualifier == nil || *n.Qualifier != "114007"):
					t.Errorf("%s: null value must be empty with qualifier 114007, got %v %v", p.Key, n.Value, n.Qualifier)
				case has && *n.Unit != p.Unit:
					t.Errorf("%s: unit %s, want %s", p.Key, *n.Unit, p.Unit)
				}
				if len(n.SCoords) != len(p.Lines) {
					t.Fatalf("%s: %d SCOORDs, want %d", p.Key, len(n.SCoords), len(p.Lines))
				}
				for i, sc := range n.SCoords {
					if !equalJSON(sc.Ref, srcRef) {
						t.Errorf("%s: SCOORD references %v, want source %v", p.Key, sc.Ref, srcRef)
					}
					for j, lm := range p.Lines[i] {
						l := idx[lm]
						gx, gy := sc.Points[2*j], sc.Points[2*j+1]
						// GraphicData is FL (float32): compare at its precision.
						if math.Abs(gx-(l.X+0.5)) > 1e-3 || math.Abs(gy-(l.Y+0.5)) > 1e-3 {
							t.Errorf("%s: point %d = (%v,%v), landmark %s = (%v,%v)+0.5", p.Key, j, gx, gy, lm, l.X, l.Y)
						}
					}
				}
			}
			// Review state: Yes/No, reasons, status.
			var req string
			var reasons []string
			for _, cd := range o.Codes {
				switch cd[0] {
				case "Review required":
					req = cd[1]
				case "Reason for review":
					reasons = append(reasons, cd[1])
				}
			}
			wantReq := "373067005"
			if c.Result.Review.Required {
				wantReq = "373066001"
			}
			if req != wantReq || len(reasons) != len(c.Result.Review.Reasons) {
				t.Errorf("review required %s reasons %v; result %+v", req, reasons, c.Result.Review)
			}
		})
	}
}

// pyJSONCheck compares, in Python, every SCOORD point of the SR with the
// landmarks of the analysis JSON (the `cspine analyze --json` line): the
// lines argument maps each tracking identifier to the landmark names of its
// SCOORDs, in order.
const pyJSONCheck = `
import json, sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
res = json.load(open(sys.argv[2]))
lines = json.loads(sys.argv[3])
lm = {l["name"]: (l["x"], l["y"]) for l in res["landmarks"]}
checked = 0
def walk(items, tid):
    global checked
    for it in items:
        name = it.ConceptNameCodeSequence[0].CodeMeaning if "ConceptNameCodeSequence" in it else ""
        if it.ValueType == "CONTAINER" and name == "Measurement Group":
            t = [c.TextValue for c in it.ContentSequence if c.ValueType == "TEXT" and
                 c.ConceptNameCodeSequence[0].CodeValue == "112039"][0]
            walk(it.ContentSequence, t)
            continue
        if it.ValueType == "NUM" and tid is not None:
            scs = [c for c in it.ContentSequence if c.ValueType == "SCOORD"]
            assert len(scs) == len(lines[tid]), (tid, len(scs))
            for sc, names in zip(scs, lines[tid]):
                ref = sc.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
                assert ref == res["sop_instance_uid"], (tid, ref)
                pts = list(sc.GraphicData)
                assert len(pts) == 2 * len(names), (tid, pts)
                for i, n in enumerate(names):
                    x, y = lm[n]
                    assert abs(pts[2*i] - (x + 0.5)) < 1e-3 and abs(pts[2*i+1] - (y + 0.5)) < 1e-3, (tid, n, pts)
                    checked += 1
        if "ContentSequence" in it:
            walk(it.ContentSequence, tid)
walk(ds.ContentSequence, None)
print(checked)
`

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// TestAmendment checks the verified/corrected revision: a new instance in
// the same series, predecessor and verifying observer present.
func TestAmendment(t *testing.T) {
	c := reporttest.NewCase(t, reporttest.CaseOptions{Flagged: true, Seed: 21})
	src, machine := build(t, c, testOptions())
	_, amended := build(t, c, amendment(t, machine, true))
	m, a := readWithPydicom(t, machine), readWithPydicom(t, amended)
	if m.SOPInstance == a.SOPInstance {
		t.Fatal("amendment reuses the SOP Instance UID")
	}
	if a.Verification != "VERIFIED" || !equalJSON(a.Predecessor, []string{m.SOPInstance}) || !equalJSON(a.Verifier, []string{"Reviewer^Quinn"}) {
		t.Errorf("amendment header: verification %s predecessor %v verifier %v", a.Verification, a.Predecessor, a.Verifier)
	}
	if a.SOPInstance != sr.InstanceUID(src, "1.0.0", 1) {
		t.Errorf("amendment UID %s", a.SOPInstance)
	}
	hasCorrected := false
	for _, cd := range a.Codes {
		if cd[0] == "Review status" && cd[1] == "RS-CORRECTED" {
			hasCorrected = true
		}
	}
	if !hasCorrected {
		t.Errorf("review status not CORRECTED: %v", a.Codes)
	}
}

// TestDeterministic: the same input gives bit-identical bytes; UIDs depend
// on the source, model version and revision only.
func TestDeterministic(t *testing.T) {
	c := reporttest.NewCase(t, reporttest.CaseOptions{Seed: 31})
	_, b1 := build(t, c, testOptions())
	_, b2 := build(t, c, testOptions())
	if !bytes.Equal(b1, b2) {
		t.Fatal("two builds of the same input differ")
	}
	src, _ := dicomio.SourceFromDataset(c.Source)
	if sr.InstanceUID(src, "1.0.0", 0) == sr.InstanceUID(src, "1.0.1", 0) ||
		sr.InstanceUID(src, "1.0.0", 0) == sr.InstanceUID(src, "1.0.0", 1) {
		t.Error("instance UID ignores model version or revision")
	}
	for _, u := range []string{sr.InstanceUID(src, "1.0.0", 0), sr.SeriesInstanceUID(src)} {
		if len(u) > 64 || !strings.HasPrefix(u, "2.25.") {
			t.Errorf("bad UID %q", u)
		}
	}
}

// TestCharacterSet: non-ASCII patient names make the SR UTF-8
// (ISO_IR 192), and pydicom decodes them back.
func TestCharacterSet(t *testing.T) {
	c := reporttest.NewCase(t, reporttest.CaseOptions{Seed: 41, PatientName: "Müller^Jürgen"})
	_, b := build(t, c, testOptions())
	reporttest.Validate(t, reporttest.WriteTemp(t, "sr.dcm", b), true)
	o := readWithPydicom(t, b)
	if o.PatientName != "Müller^Jürgen" || o.Charset != dicomio.CharsetUTF8 {
		t.Errorf("patient name %q charset %q", o.PatientName, o.Charset)
	}
	ascii := reporttest.NewCase(t, reporttest.CaseOptions{Seed: 42})
	_, b = build(t, ascii, testOptions())
	if o := readWithPydicom(t, b); o.Charset != "" {
		t.Errorf("ASCII-only SR has SpecificCharacterSet %q", o.Charset)
	}
}

func TestBuildRejectsBadInput(t *testing.T) {
	c := reporttest.NewCase(t, reporttest.CaseOptions{Seed: 51})
	src, err := dicomio.SourceFromDataset(c.Source)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(*result.Result, *sr.Options)
	}{
		{"rejected result", func(r *result.Result, _ *sr.Options) { r.Status = result.StatusRejected }},
		{"other instance", func(r *result.Result, _ *sr.Options) { r.SOPInstanceUID = "1.2.3" }},
		{"no model", func(r *result.Result, _ *sr.Options) { r.Model = nil }},
		{"no review", func(r *result.Result, _ *sr.Options) { r.Review = nil }},
		{"no parameters", func(r *result.Result, _ *sr.Options) { r.Parameters = nil }},
		{"no time", func(_ *result.Result, o *sr.Options) { o.ContentTime = time.Time{} }},
		{"no device uid", func(_ *result.Result, o *sr.Options) { o.Device.UID = "" }},
		{"revision without amendment", func(_ *result.Result, o *sr.Options) { o.Revision = 1 }},
		{"amendment without organization", func(_ *result.Result, o *sr.Options) {
			o.Revision = 1
			o.Amendment = &sr.Amendment{Predecessor: sr.Reference{StudyInstanceUID: "1.2", SeriesInstanceUID: "1.3",
				SOPClassUID: sr.ComprehensiveSRStorage, SOPInstanceUID: "1.4"}, ObserverName: "A^B", VerifiedAt: contentTime}
		}},
		{"unknown reason", func(r *result.Result, _ *sr.Options) {
			r.Review = &result.Review{Required: true, Reasons: []string{"cosmic_rays"}}
		}},
		{"no landmarks", func(r *result.Result, _ *sr.Options) { r.Landmarks = nil }},
		{"unknown obscuration", func(r *result.Result, _ *sr.Options) { r.C7 = &result.C7{Obscuration: "foggy"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, o := c.Result, testOptions()
			tt.mutate(&r, &o)
			if _, err := sr.Build(src, r, o); !errors.Is(err, sr.ErrInvalid) {
				t.Errorf("Build error %v, want ErrInvalid", err)
			}
		})
	}
}

func BenchmarkBuildEncode(b *testing.B) {
	c := reporttest.NewCase(b, reporttest.CaseOptions{Seed: 61})
	src, err := dicomio.SourceFromDataset(c.Source)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ds, err := sr.Build(src, c.Result, testOptions())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := dicomio.Encode(ds); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReadRoundTrip: Read gives back the values, landmarks, review state and
// identity that Build wrote.
func TestReadRoundTrip(t *testing.T) {
	c := reporttest.NewCase(t, reporttest.CaseOptions{Seed: 71, Flagged: true, NoSpacing: true})
	src, b := build(t, c, testOptions())
	ds, err := dicom.Parse(bytes.NewReader(b), int64(len(b)), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := sr.Read(ds)
	if err != nil {
		t.Fatal(err)
	}
	if r.Source.SOPInstanceUID != src.SOPInstanceUID || r.Reference.SOPInstanceUID != sr.InstanceUID(src, "1.0.0", 0) ||
		r.Verification != "UNVERIFIED" || r.Completion != "PARTIAL" || r.AlgorithmVersion != "1.0.0" {
		t.Errorf("header: %+v", r)
	}
	if r.C7Obscuration != c.Result.C7.Obscuration {
		t.Errorf("C7 obscuration %q, want %q", r.C7Obscuration, c.Result.C7.Obscuration)
	}
	if !r.ReviewRequired || fmt.Sprint(r.ReviewReasons) != fmt.Sprint(c.Result.Review.Reasons) || r.ReviewStatus.Value != "RS-PENDING" {
		t.Errorf("review: %v %v %v", r.ReviewRequired, r.ReviewReasons, r.ReviewStatus)
	}
	byLabel := map[string]sr.Measurement{}
	for _, m := range r.Measurements {
		byLabel[m.TrackingID] = m
	}
	for _, p := range param.All() {
		m, ok := byLabel[p.Label]
		if !ok {
			t.Fatalf("no group %s", p.Label)
		}
		want, has := p.Value(c.Result.Parameters)
		if has != (m.Value != nil) || (has && *m.Value != want) {
			t.Errorf("%s: value %v, want %v (exact, via Floating Point Value)", p.Key, m.Value, want)
		}
		if !has && (m.Qualifier == nil || m.Qualifier.Value != "114007") {
			t.Errorf("%s: qualifier %v", p.Key, m.Qualifier)
		}
	}
	lms := r.Landmarks()
	n := 0
	for _, l := range c.Result.Landmarks {
		got, ok := lms[l.Name]
		if !ok {
			continue // corners no parameter uses (C3-C6 superior) are not in the SR
		}
		n++
		if math.Abs(got.X-l.X) > 1e-3 || math.Abs(got.Y-l.Y) > 1e-3 {
			t.Errorf("%s: read (%v,%v), want (%v,%v)", l.Name, got.X, got.Y, l.X, l.Y)
		}
	}
	if n != 15 { // C2 (3) + C3-C6 inferior (8) + C7 (4)
		t.Errorf("%d landmarks read back, want 15", n)
	}
}
