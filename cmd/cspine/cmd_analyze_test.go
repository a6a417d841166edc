package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cspine/cspine/phantom"
	"github.com/cspine/cspine/pipeline"
	"github.com/cspine/cspine/pipeline/pipelinetest"
	"github.com/cspine/cspine/pipeline/result"
)

// modelArgs point the commands at the repository's reference models and
// ONNX Runtime library.
func modelArgs(t *testing.T) []string {
	t.Helper()
	pipelinetest.Models(t) // fails clearly when models or library are missing
	return []string{"--models", filepath.Join(pipelinetest.RepoRoot(t), "refmodels"), "--ort-lib", pipelinetest.ORTLibrary(t), "--threads", "1", "--workers", "2"}
}

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runMain(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestAnalyzeCommand(t *testing.T) {
	dir := t.TempDir()
	if err := phantom.Generate(context.Background(), phantom.Options{Count: 2, Seed: 3, OutDir: dir}); err != nil {
		t.Fatal(err)
	}
	notDICOM := filepath.Join(dir, "truth.jsonl")
	files := []string{filepath.Join(dir, "img00000.dcm"), notDICOM, filepath.Join(dir, "img00001.dcm"),
		pipelinetest.Realworld(t, "pydicom-cspine-cr/dicomdirtests_77654033_CR1_6154")}
	args := append(append([]string{"analyze", "--json"}, modelArgs(t)...), files...)
	code, stdout, stderr := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(nil, 1<<20)
	var got []result.Result
	for sc.Scan() {
		var r result.Result
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, r)
	}
	if len(got) != len(files) {
		t.Fatalf("%d lines for %d files:\n%s", len(got), len(files), stdout)
	}
	for i, r := range got {
		if r.File != files[i] {
			t.Errorf("line %d is for %s, want %s (input order)", i, r.File, files[i])
		}
	}
	if got[0].Status != result.StatusOK || got[2].Status != result.StatusOK || got[0].Model.Mode != result.ModeHierarchical {
		t.Errorf("phantoms not measured: %+v", got)
	}
	if got[1].Status != result.StatusRejected || !strings.Contains(got[1].Error, "not an image") {
		t.Errorf("text file: %+v", got[1])
	}
	if got[3].Status != result.StatusRejected || !strings.Contains(got[3].Error, "too small") {
		t.Errorf("16×16 CR: %+v", got[3])
	}

	// --out writes the SR and the overlay of each measured file, named by
	// the source's SOP Instance UID; DCMTK's dcmdump reads them.
	out := t.TempDir()
	args = append(append([]string{"analyze", "--json", "--out", out}, modelArgs(t)...), files[0], files[1])
	if code, _, stderr := runCmd(t, args...); code != 0 {
		t.Fatalf("--out: exit %d %s", code, stderr)
	}
	written, _ := filepath.Glob(filepath.Join(out, "*.dcm"))
	if len(written) != 2 {
		t.Fatalf("--out wrote %v", written)
	}
	for _, suffix := range []string{".sr.dcm", ".sc.dcm"} {
		p := filepath.Join(out, got[0].SOPInstanceUID+suffix)
		if o, err := exec.Command("dcmdump", "-q", p).CombinedOutput(); err != nil {
			t.Errorf("dcmdump %s: %v\n%s", p, err, o)
		}
	}

	// Human-readable output and single-stage mode.
	args = append(append([]string{"analyze", "--single-stage"}, modelArgs(t)...), files[0])
	code, stdout, stderr = runCmd(t, args...)
	if code != 0 || !strings.Contains(stdout, "C2–C7") || !strings.HasPrefix(stdout, files[0]+":") {
		t.Errorf("exit %d, output %q, stderr %q", code, stdout, stderr)
	}
}

func TestAnalyzeCommandFailures(t *testing.T) {
	t.Parallel()
	if code, _, stderr := runCmd(t, "analyze", "--json"); code != 2 || !strings.Contains(stderr, "no FILE") {
		t.Errorf("no files: exit %d %q", code, stderr)
	}
	f := filepath.Join(t.TempDir(), "x.dcm")
	os.WriteFile(f, []byte("x"), 0o644)
	if code, _, stderr := runCmd(t, "analyze", "--models", t.TempDir(), f); code != 1 || !strings.Contains(stderr, "load models") {
		t.Errorf("missing models: exit %d %q", code, stderr)
	}
	if code, _, stderr := runCmd(t, "eval"); code != 2 || !strings.Contains(stderr, "--data") {
		t.Errorf("eval without data: exit %d %q", code, stderr)
	}
	if code, _, stderr := runCmd(t, "eval", "--data", t.TempDir()); code != 1 || !strings.Contains(stderr, "truth.jsonl") {
		t.Errorf("eval without truth: exit %d %q", code, stderr)
	}
}

func TestEvalCommand(t *testing.T) {
	dir := t.TempDir()
	if err := phantom.Generate(context.Background(), phantom.Options{Count: 4, Seed: 5, OutDir: dir, Negatives: 0.25}); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"eval", "--data", dir, "--compare"}, modelArgs(t)...)
	code, stdout, stderr := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"### C7 obscuration: all", "MAE hier. | MAE single | MAE hier. vs single", "| C2–C7 Cobb (°) |", "landmark error mean", "caught by the flag"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("eval output lacks %q:\n%s", want, stdout)
		}
	}

	// Calibration writes a valid thresholds file with its provenance.
	th := filepath.Join(t.TempDir(), "thresholds.json")
	args = append([]string{"eval", "--data", dir, "--calibrate", th}, modelArgs(t)...)
	code, stdout, stderr = runCmd(t, args...)
	if code != 0 || !strings.Contains(stdout, "Calibrated on") {
		t.Fatalf("calibrate: exit %d: %s %s", code, stdout, stderr)
	}
	b, err := os.ReadFile(th)
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		Calibration struct {
			Data   string `json:"data"`
			Images int    `json:"images"`
		} `json:"calibration"`
	}
	if err := json.Unmarshal(b, &parsed); err != nil || parsed.Calibration.Data != dir || parsed.Calibration.Images == 0 {
		t.Errorf("thresholds file %s: %v", b, err)
	}
	// The calibrated file is accepted by analyze.
	args = append(append([]string{"analyze", "--json", "--thresholds", th}, modelArgs(t)...), filepath.Join(dir, "img00000.dcm"))
	if code, _, stderr := runCmd(t, args...); code != 0 {
		t.Errorf("analyze with calibrated thresholds: exit %d %s", code, stderr)
	}

	// --samples and --from-samples: the same report without running the
	// models again.
	samples := filepath.Join(t.TempDir(), "samples.jsonl")
	args = append([]string{"eval", "--data", dir, "--samples", samples}, modelArgs(t)...)
	code, first, stderr := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("eval --samples: exit %d %s", code, stderr)
	}
	args = append([]string{"eval", "--data", dir, "--from-samples", samples}, modelArgs(t)...)
	if code, again, stderr := runCmd(t, args...); code != 0 || again != first {
		t.Errorf("--from-samples: exit %d %s\n%s\nwant\n%s", code, stderr, again, first)
	}
	if code, _, stderr := runCmd(t, append([]string{"eval", "--data", dir, "--from-samples", samples, "--compare"}, modelArgs(t)...)...); code != 2 {
		t.Errorf("--from-samples --compare: exit %d %s", code, stderr)
	}

	// --fit-risk on a set with and without large errors: make the first
	// measured result 10° off, then fit, calibrate and analyze with the file.
	lines := strings.Split(strings.TrimSpace(readFile(t, samples)), "\n")
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		r := m["Result"].(map[string]any)
		if r["status"] != "ok" {
			continue
		}
		p := r["parameters"].(map[string]any)
		p["c2c7_cobb_deg"] = p["c2c7_cobb_deg"].(float64) + 10
		b, _ := json.Marshal(m)
		lines[i] = string(b)
		break
	}
	if err := os.WriteFile(samples, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fitted := filepath.Join(t.TempDir(), "fitted.json")
	args = append([]string{"eval", "--data", dir, "--from-samples", samples, "--fit-risk", fitted}, modelArgs(t)...)
	if code, stdout, stderr := runCmd(t, args...); code != 0 || !strings.Contains(stdout, "Fitted the C7 risk model") {
		t.Fatalf("--fit-risk: exit %d %s %s", code, stdout, stderr)
	}
	if th, err := pipeline.LoadThresholds(fitted); err != nil || th.C7Risk == nil || th.C7Risk.MinRisk <= 1 || th.C7Risk.Fit == nil {
		t.Fatalf("fitted thresholds: %v %+v", err, th.C7Risk)
	}
	cal := filepath.Join(t.TempDir(), "calibrated.json")
	args = append([]string{"eval", "--data", dir, "--from-samples", samples, "--thresholds", fitted, "--calibrate", cal}, modelArgs(t)...)
	code, stdout, stderr = runCmd(t, args...)
	if code != 0 || !strings.Contains(stdout, "c7_risk.min_risk") {
		t.Fatalf("calibrate with a risk model: exit %d %s %s", code, stdout, stderr)
	}
	// With a risk model the report ends with the review trade-off, whose
	// configured row is the calibration just made (one large error: caught).
	if !strings.Contains(stdout, "### Review trade-off on "+dir) || !strings.Contains(stdout, "| large errors caught | thresholds |") ||
		!regexp.MustCompile(`\| configured \| \d+/\d+ \([0-9.]+%\) \| 1/1 \(100\.0%\) \| c7_risk\.min_risk `).MatchString(stdout) {
		t.Errorf("no review trade-off after calibration:\n%s", stdout)
	}
	if th, err := pipeline.LoadThresholds(cal); err != nil || th.C7Risk == nil || th.C7Risk.MinRisk > 1 {
		t.Fatalf("calibrated thresholds: %v %+v", err, th.C7Risk)
	}
	// --fit-prior: needs --model-version (a new one) and a hierarchical run
	// alone; this small set has too few images to fit a prior, which is a
	// clear error that leaves the model directory as it was. Run on a copy
	// of the models, never on the repository's.
	mdir := copyDir(t, filepath.Join(pipelinetest.RepoRoot(t), "refmodels"))
	margs := modelArgs(t)
	margs[1] = mdir
	manifest := readFile(t, filepath.Join(mdir, "manifest.json"))
	var cur struct{ Version string }
	if err := json.Unmarshal([]byte(manifest), &cur); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{{"--fit-prior"}, {"--model-version", "9.9"}, {"--fit-prior", "--model-version", "9.9", "--compare"},
		{"--fit-prior", "--model-version", "9.9", "--calibrate", cal}, {"--fit-prior", "--model-version", cur.Version}} {
		if code, _, stderr := runCmd(t, append(append([]string{"eval", "--data", dir}, bad...), margs...)...); code != 2 {
			t.Errorf("eval %v: exit %d %s, want a usage error", bad, code, stderr)
		}
	}
	prior := filepath.Join(t.TempDir(), "prior-samples.jsonl")
	if code, _, stderr := runCmd(t, append([]string{"eval", "--data", dir, "--fit-prior", "--model-version", "9.9", "--samples", prior}, margs...)...); code != 1 || !strings.Contains(stderr, "usable samples") {
		t.Errorf("--fit-prior on a small set: exit %d %s", code, stderr)
	}
	if got := readFile(t, filepath.Join(mdir, "manifest.json")); got != manifest {
		t.Error("a failed --fit-prior changed the manifest")
	}
	if readFile(t, prior) == "" {
		t.Error("a failed --fit-prior lost the run's --samples")
	}
	// Samples of other models are refused.
	other := strings.ReplaceAll(readFile(t, prior), `"version":"`+cur.Version+`"`, `"version":"0.0.0-other"`)
	if err := os.WriteFile(prior, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCmd(t, append([]string{"eval", "--data", dir, "--from-samples", prior}, margs...)...); code != 1 || !strings.Contains(stderr, "measured by models") {
		t.Errorf("samples of other models: exit %d %s", code, stderr)
	}
	// A set with one class only cannot be fitted.
	args = append([]string{"eval", "--data", dir, "--fit-risk", fitted}, modelArgs(t)...)
	if code, _, stderr := runCmd(t, append(args, "--large-error-deg", "1000")...); code != 1 || !strings.Contains(stderr, "with and without a large error") {
		t.Errorf("--fit-risk on one class: exit %d %s", code, stderr)
	}
}

// copyDir copies the regular files of dir into a new temporary directory.
func copyDir(t *testing.T, dir string) string {
	t.Helper()
	out := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
