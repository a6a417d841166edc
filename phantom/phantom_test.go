package phantom

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cspine/cspine/pipeline/result"
)

func generate(t testing.TB, o Options) (string, []result.Truth) {
	t.Helper()
	if o.OutDir == "" {
		o.OutDir = t.TempDir()
	}
	if err := Generate(context.Background(), o); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return o.OutDir, readTruth(t, filepath.Join(o.OutDir, "truth.jsonl"))
}

func readTruth(t testing.TB, path string) []result.Truth {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []result.Truth
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var tr result.Truth
		if err := json.Unmarshal(sc.Bytes(), &tr); err != nil {
			t.Fatalf("truth line: %v", err)
		}
		out = append(out, tr)
	}
	return out
}

func TestOptionsValidate(t *testing.T) {
	cases := []struct {
		name string
		o    Options
		ok   bool
	}{
		{"ok", Options{Count: 1, OutDir: "x"}, true},
		{"zero count", Options{Count: 0, OutDir: "x"}, false},
		{"no out", Options{Count: 1}, false},
		{"bad obscuration", Options{Count: 1, OutDir: "x", Obscuration: "some"}, false},
		{"negatives > 1", Options{Count: 1, OutDir: "x", Negatives: 1.5}, false},
		{"rows without cols", Options{Count: 1, OutDir: "x", Rows: 100}, false},
		{"tiny size", Options{Count: 1, OutDir: "x", Rows: 10, Cols: 10}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.o.validate()
			if (err == nil) != c.ok {
				t.Fatalf("validate() = %v, want ok=%v", err, c.ok)
			}
		})
	}
}

// Same seed, byte-identical files and truth, whatever the worker count.
func TestDeterminism(t *testing.T) {
	o := Options{Count: 4, Seed: 7, Negatives: 0.25, Rows: 700, Cols: 600}
	o.Workers = 1
	d1, _ := generate(t, o)
	o.Workers = 3
	o.OutDir = ""
	d2, _ := generate(t, o)
	ents, _ := os.ReadDir(d1)
	if len(ents) != 5 {
		t.Fatalf("want 4 images + truth, got %d entries", len(ents))
	}
	for _, e := range ents {
		a, _ := os.ReadFile(filepath.Join(d1, e.Name()))
		b, _ := os.ReadFile(filepath.Join(d2, e.Name()))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between runs", e.Name())
		}
	}
	o.Seed = 8
	o.OutDir = ""
	d3, _ := generate(t, o)
	a, _ := os.ReadFile(filepath.Join(d1, "img00000.dcm"))
	b, _ := os.ReadFile(filepath.Join(d3, "img00000.dcm"))
	if bytes.Equal(a, b) {
		t.Error("different seeds gave the same image")
	}
}

// The truth's parameters (from the placed angles) agree with the truth's
// landmarks measured independently here, so landmarks are in the written
// pixel grid after rotation and flipping.
func TestTruthParametersMatchLandmarks(t *testing.T) {
	_, truths := generate(t, Options{Count: 6, Seed: 3, Rows: 800, Cols: 700})
	for _, tr := range truths {
		pts := map[string]result.TruthLandmark{}
		for _, l := range tr.Landmarks {
			pts[l.Name] = l
		}
		if len(pts) != result.NumLandmarks {
			t.Fatalf("%s: %d landmarks", tr.File, len(pts))
		}
		slope := func(lv string) float64 {
			a, p := pts[lv+"_ant"], pts[lv+"_post"]
			return math.Atan2(a.Y-p.Y, math.Abs(a.X-p.X)) * 180 / math.Pi
		}
		prm := tr.Parameters
		check := func(name string, got, want float64) {
			if math.Abs(got-want) > 2e-3 {
				t.Errorf("%s %s: truth %v, from landmarks %v", tr.File, name, want, got)
			}
		}
		check("c2 slope", slope("C2_inf"), prm.C2SlopeDeg)
		check("c7 slope", slope("C7_inf"), prm.C7SlopeDeg)
		check("c7 sup slope", slope("C7_sup"), prm.C7SupSlopeDeg)
		check("cobb", slope("C7_inf")-slope("C2_inf"), prm.C2C7CobbDeg)
		check("C4-C5", slope("C5_inf")-slope("C4_inf"), prm.SegmentalDeg["C4-C5"])
		// Facing: anterior corners toward smaller x when facing left.
		ant, post := pts["C4_inf_ant"].X, pts["C4_inf_post"].X
		if (ant < post) != (tr.Facing == result.FacingLeft) {
			t.Errorf("%s: facing %s but C4 ant x %.1f post x %.1f", tr.File, tr.Facing, ant, post)
		}
		if tr.SpacingSource == result.SpacingNone {
			if prm.C2C7SVAmm != nil {
				t.Errorf("%s: SVA without spacing", tr.File)
			}
			continue
		}
		dx := pts["C2_centroid"].X - pts["C7_sup_post"].X
		if tr.Facing == result.FacingLeft {
			dx = -dx
		}
		check("sva", dx*tr.PixelSpacingMM[1], *prm.C2C7SVAmm)
		for _, l := range tr.Landmarks {
			if l.X < 0 || l.Y < 0 || l.X > float64(tr.Columns-1) || l.Y > float64(tr.Rows-1) {
				t.Errorf("%s: %s outside the image", tr.File, l.Name)
			}
		}
	}
}

// The image shows what the truth says: bone is denser than the disc just
// below each truth endplate, and hidden C7 corners sit under far more
// attenuation than the upper spine.
func TestTruthAgainstImage(t *testing.T) {
	for _, grade := range []string{ObscureNone, ObscureComplete} {
		o := Options{Count: 1, Seed: 11, Obscuration: grade, Rows: 1400, Cols: 1200, OutDir: "unused"}
		p := plan(o)[0]
		s := newSampler(o.Seed, p.index, 2)
		an := buildSpine(s, sampleAlignment(s))
		an.sampleNeck(s)
		an.placeShoulders(s, p.grade)
		im := sampleImaging(s, an.regionOfInterest(), o.Rows, o.Cols)
		v := render(an, im, s)
		at := func(c vec, radiusPx int) float64 {
			q := im.xf.apply(c)
			sum, n := 0.0, 0
			for y := int(q.Y) - radiusPx; y <= int(q.Y)+radiusPx; y++ {
				for x := int(q.X) - radiusPx; x <= int(q.X)+radiusPx; x++ {
					sum += float64(v[y*im.cols+x])
					n++
				}
			}
			return sum / float64(n)
		}
		if grade == ObscureNone {
			r := int(math.Max(1, 0.4/im.ps))
			for n := 3; n <= 6; n++ {
				vt := an.v[n]
				mid := lerp(vt.infAnt, vt.infPost, 0.5)
				dn := downNormal(vt.infSlope)
				inBone := at(mid.sub(dn.mul(2.0)), r)
				inDisc := at(mid.add(dn.mul(1.8)), r)
				if inBone <= inDisc {
					t.Errorf("C%d inferior endplate: bone %.4f not denser than disc %.4f", n, inBone, inDisc)
				}
			}
			if an.grade != ObscureNone {
				t.Errorf("grade %s, want none", an.grade)
			}
			continue
		}
		if an.grade != ObscureComplete || an.hiddenCorner != 4 {
			t.Fatalf("grade %s with %d hidden corners, want complete", an.grade, an.hiddenCorner)
		}
		// Under the shoulders far fewer photons arrive: the pixel noise (the
		// residual after a 3×3 mean) at the hidden C7 must be much larger
		// than at C3, which is what drowns C7's edges.
		noise := func(c vec) float64 {
			q := im.xf.apply(c)
			r := int(1.0 / im.ps)
			var ss float64
			n := 0
			for y := int(q.Y) - r; y <= int(q.Y)+r; y++ {
				for x := int(q.X) - r; x <= int(q.X)+r; x++ {
					m := 0.0
					for dy := -1; dy <= 1; dy++ {
						for dx := -1; dx <= 1; dx++ {
							m += float64(v[(y+dy)*im.cols+x+dx])
						}
					}
					d := float64(v[y*im.cols+x]) - m/9
					ss += d * d
					n++
				}
			}
			return math.Sqrt(ss / float64(n))
		}
		n7, n3 := noise(an.v[lvC7].centroid), noise(an.v[3].centroid)
		if n7 < 2*n3 {
			t.Errorf("noise at hidden C7 %.4f not well above C3's %.4f", n7, n3)
		}
		_ = at
	}
}

// Distributions over several hundred sampled geometries (no rendering).
func TestDistributions(t *testing.T) {
	o := Options{Count: 400, Seed: 5, Obscuration: ObscureMixed, OutDir: "unused"}
	counts := map[string]int{}
	var cobbMin, cobbMax, sum float64 = 99, -99, 0
	hiddenMismatch := 0
	right := 0
	for _, p := range plan(o) {
		s := newSampler(o.Seed, p.index, 2)
		al := sampleAlignment(s)
		an := buildSpine(s, al)
		an.sampleNeck(s)
		an.placeShoulders(s, p.grade)
		im := sampleImaging(s, an.regionOfInterest(), 0, 0)
		counts[an.grade]++
		if an.grade != p.grade {
			hiddenMismatch++
		}
		cobb := al.infSlope[lvC7] - al.infSlope[lvC2]
		cobbMin, cobbMax = math.Min(cobbMin, cobb), math.Max(cobbMax, cobb)
		sum += cobb
		if im.faceRight {
			right++
		}
		if math.Abs(im.rotDeg) > 10 {
			t.Fatalf("rotation %.1f outside ±10°", im.rotDeg)
		}
		if im.rows < 1000 || im.rows > 3000 || im.cols < 1000 || im.cols > 3000 {
			t.Fatalf("size %dx%d outside 1000–3000", im.cols, im.rows)
		}
		if im.ips < 0.1 || im.ips > 0.2 {
			t.Fatalf("imager spacing %.3f outside 0.1–0.2", im.ips)
		}
	}
	n := 400.0
	t.Logf("grades %v, cobb %.1f..%.1f mean %.1f, facing right %d, target misses %d", counts, cobbMin, cobbMax, sum/n, right, hiddenMismatch)
	want := map[string]float64{"none": 0.2, "partial": 0.45, "complete": 0.35}
	for g, f := range want {
		if got := float64(counts[g]) / n; math.Abs(got-f) > 0.08 {
			t.Errorf("grade %s: %.2f of images, want about %.2f", g, got, f)
		}
	}
	if cobbMin > -12 || cobbMax < 35 {
		t.Errorf("Cobb range %.1f..%.1f does not span kyphosis to strong lordosis", cobbMin, cobbMax)
	}
	if r := float64(right) / n; r < 0.3 || r > 0.5 {
		t.Errorf("facing right in %.2f of images, want about 0.4", r)
	}
	if hiddenMismatch > 20 {
		t.Errorf("%d images missed their target grade", hiddenMismatch)
	}
}

// Every variant is valid DICOM to dciodvfy (dicom3tools) and its pixel data
// reads in pydicom.
func TestDICOMValidity(t *testing.T) {
	if _, err := exec.LookPath("dciodvfy"); err != nil {
		t.Fatal("dciodvfy not found: install Debian package dicom3tools (scripts/setup.sh)")
	}
	dir, truths := generate(t, Options{Count: 24, Seed: 21, Negatives: 0.3, Rows: 600, Cols: 500})
	variants := map[string]bool{}
	for _, tr := range truths {
		if out, err := exec.Command("dcmdump", "-q", "+P", "0028,3006", filepath.Join(dir, tr.File)).CombinedOutput(); err != nil {
			t.Errorf("%s: DCMTK cannot read it: %v\n%s", tr.File, err, out)
		}
		out, _ := exec.Command("dciodvfy", filepath.Join(dir, tr.File)).CombinedOutput()
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "Error") {
				t.Errorf("%s: %s", tr.File, line)
			}
		}
		variants[tr.Modality] = true
		if !tr.Measurable {
			variants["negative:"+tr.Reason] = true
		}
	}
	for _, v := range []string{"CR", "DX", "negative:ap_view"} {
		if !variants[v] {
			t.Errorf("variant %s not generated in this run", v)
		}
	}
	script := `
import json, sys, os, pydicom
d = sys.argv[1]
seen = set()
for line in open(os.path.join(d, "truth.jsonl")):
    t = json.loads(line)
    ds = pydicom.dcmread(os.path.join(d, t["file"]))
    a = ds.pixel_array
    assert a.shape == (t["rows"], t["columns"]), (t["file"], a.shape)
    assert ds.SOPInstanceUID == t["sop_instance_uid"]
    seen.add((ds.file_meta.TransferSyntaxUID, ds.PhotometricInterpretation, ds.Modality))
print(len(seen))
`
	out, err := exec.Command("/usr/bin/python3", "-c", script, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("pydicom could not read the phantom: %v\n%s", err, out)
	}
	if n := strings.TrimSpace(string(out)); n < "4" {
		t.Errorf("only %s transfer-syntax/photometric/modality combinations", n)
	}
}

func BenchmarkGenerate2000x2500(b *testing.B) {
	dir := b.TempDir()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o := Options{Count: 1, Seed: uint64(i), Rows: 2500, Cols: 2000, OutDir: dir, Workers: 1}
		if err := Generate(context.Background(), o); err != nil {
			b.Fatal(err)
		}
	}
}
