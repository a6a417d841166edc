package stages

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cspine/cspine/phantom"
	"github.com/cspine/cspine/pipeline/decode"
	"github.com/cspine/cspine/pipeline/ort"
	"github.com/cspine/cspine/pipeline/result"
)

// refDir is the shipped reference model directory.
const refDir = "../../refmodels"

// requirePeers fails (skips only with -short) when the ONNX Runtime
// library or the reference models are missing: both are required peers.
func requirePeers(t testing.TB) {
	t.Helper()
	_, errLib := ort.ResolveLibrary("")
	_, errMan := os.Stat(filepath.Join(refDir, ManifestFile))
	if err := errors.Join(errLib, errMan); err != nil {
		if testing.Short() {
			t.Skipf("short mode: %v", err)
		}
		t.Fatalf("ONNX Runtime and the reference models are required (run scripts/setup.sh): %v", err)
	}
}

var (
	sharedOnce   sync.Once
	sharedModels *Models
	sharedErr    error
)

// models returns one Models shared by the package's tests, as production
// shares one across analyses.
func models(t testing.TB) *Models {
	t.Helper()
	requirePeers(t)
	sharedOnce.Do(func() {
		sharedModels, sharedErr = Load(Config{ModelDir: refDir, Threads: 2})
	})
	if sharedErr != nil {
		t.Fatalf("Load: %v", sharedErr)
	}
	return sharedModels
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedModels != nil {
		sharedModels.Close()
	}
	if phantomDir != "" {
		os.RemoveAll(phantomDir)
	}
	os.Exit(code)
}

type phantomImage struct {
	in    Input
	truth result.Truth
}

var (
	phantomOnce sync.Once
	phantomDir  string
	phantomImgs []phantomImage
	phantomErr  error
)

// phantoms generates a small fixed phantom set once (cspine phantom, seed
// 4242, mixed obscuration) and decodes it with the production decoder.
func phantoms(t testing.TB) []phantomImage {
	t.Helper()
	phantomOnce.Do(func() {
		phantomDir, phantomErr = os.MkdirTemp("", "stages-phantom-")
		if phantomErr != nil {
			return
		}
		phantomErr = phantom.Generate(context.Background(), phantom.Options{Count: 8, Seed: 4242, OutDir: phantomDir, Obscuration: phantom.ObscureMixed, Workers: 2})
		if phantomErr != nil {
			return
		}
		f, err := os.Open(filepath.Join(phantomDir, "truth.jsonl"))
		if err != nil {
			phantomErr = err
			return
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			var tr result.Truth
			if err := json.Unmarshal(sc.Bytes(), &tr); err != nil {
				phantomErr = err
				return
			}
			if !tr.Measurable {
				continue
			}
			im, err := decode.File(filepath.Join(phantomDir, tr.File))
			if err != nil {
				phantomErr = fmt.Errorf("decode %s: %w", tr.File, err)
				return
			}
			in := Input{Rows: im.Rows, Cols: im.Cols, Pix: im.Display()}
			if tr.SpacingSource != result.SpacingNone && len(tr.PixelSpacingMM) == 2 {
				in.SpacingMM = [2]float64{tr.PixelSpacingMM[0], tr.PixelSpacingMM[1]}
			}
			phantomImgs = append(phantomImgs, phantomImage{in: in, truth: tr})
		}
		phantomErr = sc.Err()
	})
	if phantomErr != nil {
		t.Fatalf("phantom set: %v", phantomErr)
	}
	return phantomImgs
}

func TestReferenceManifest(t *testing.T) {
	requirePeers(t)
	man, err := ReadManifest(refDir) // verifies every sha256
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(man.ClinicalUse, "NOT FOR CLINICAL USE") || !strings.Contains(strings.ToLower(man.TrainedOn), "phantom") {
		t.Fatalf("manifest must label the models as phantom-trained and not for clinical use: %q / %q", man.ClinicalUse, man.TrainedOn)
	}
	info := models(t).Info()
	if info.Name != man.Name || info.Version != man.Version || (info.Provider != "cpu" && info.Provider != "cuda") {
		t.Fatalf("info %+v", info)
	}
}

// copyModels copies the reference models to a temporary directory.
func copyModels(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ents, err := os.ReadDir(refDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(refDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadRejectsTamperedModels(t *testing.T) {
	requirePeers(t)
	dir := copyModels(t)
	p := filepath.Join(dir, "c2_refine.onnx")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(Config{ModelDir: dir})
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "c2_refine.onnx") {
		t.Fatalf("err = %v, want checksum error naming c2_refine.onnx", err)
	}
}

func TestManifestValidation(t *testing.T) {
	requirePeers(t)
	raw, err := os.ReadFile(filepath.Join(refDir, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(m map[string]any)
		want   string
	}{
		{"format", func(m map[string]any) { m["format"] = "other/2" }, "format"},
		{"landmark order", func(m map[string]any) {
			l := m["landmarks"].([]any)
			l[1], l[2] = l[2], l[1]
		}, "landmark order"},
		{"global input shape", func(m map[string]any) {
			g := m["stages"].(map[string]any)["global"].(map[string]any)
			g["input_size"] = 512.0
		}, "stage global"},
		{"obscuration classes", func(m map[string]any) {
			c := m["stages"].(map[string]any)["c7"].(map[string]any)
			c["obscuration_classes"] = []any{"complete", "partial", "none"}
		}, "obscuration classes"},
		{"path escape", func(m map[string]any) {
			c := m["stages"].(map[string]any)["c2"].(map[string]any)
			c["file"] = "../c2_refine.onnx"
		}, "plain name"},
		{"missing sha", func(m map[string]any) {
			c := m["stages"].(map[string]any)["c7_locator"].(map[string]any)
			delete(c, "sha256")
		}, "sha256 are required"},
		{"prior path escape", func(m map[string]any) {
			m["stages"].(map[string]any)["c7_prior"] = map[string]any{"file": "../c7_prior.json", "sha256": strings.Repeat("0", 64)}
		}, "stage c7_prior"},
		{"prior without sha", func(m map[string]any) {
			m["stages"].(map[string]any)["c7_prior"] = map[string]any{"file": "c7_prior.json"}
		}, "stage c7_prior"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			tc.change(m)
			b, _ := json.Marshal(m)
			var man Manifest
			if err := json.Unmarshal(b, &man); err != nil {
				t.Fatal(err)
			}
			err := man.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want containing %q", err, tc.want)
			}
		})
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	m := models(t)
	for _, in := range []Input{{}, {Rows: 100, Cols: 100, Pix: make([]float32, 10)}, {Rows: 8, Cols: 8, Pix: make([]float32, 64)}} {
		if _, err := m.Run(context.Background(), in, true); !errors.Is(err, ErrBadInput) {
			t.Fatalf("%d×%d: err = %v", in.Cols, in.Rows, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	img := phantoms(t)[0]
	if _, err := m.Run(ctx, img.in, true); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: err = %v", err)
	}
}

func withoutTimings(o *Output) Output {
	c := *o
	c.TimingsMS = nil
	return c
}

func TestRunIsDeterministicAndSafeConcurrently(t *testing.T) {
	m := models(t)
	imgs := phantoms(t)[:3]
	want := make([]Output, len(imgs))
	for i, img := range imgs {
		o, err := m.Run(context.Background(), img.in, true)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = withoutTimings(o)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range len(imgs) {
				i := (g + k) % len(imgs)
				o, err := m.Run(context.Background(), imgs[i].in, true)
				if err != nil {
					errs <- err
					return
				}
				if got := withoutTimings(o); !reflect.DeepEqual(got, want[i]) {
					errs <- fmt.Errorf("image %d: concurrent run differs:\n%+v\n%+v", i, got, want[i])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestSingleStageSkipsRefinement(t *testing.T) {
	m := models(t)
	img := phantoms(t)[0]
	o, err := m.Run(context.Background(), img.in, false)
	if err != nil {
		t.Fatal(err)
	}
	h, err := m.Run(context.Background(), img.in, true)
	if err != nil {
		t.Fatal(err)
	}
	if o.Refined || o.C7Region != (Region{}) || o.C7Obscuration != [3]float64{} || o.C7[0] != o.Global[19] || o.C2[1] != o.Global[1] {
		t.Fatalf("single stage output %+v", o)
	}
	if o.Global != h.Global || o.GlobalConf != h.GlobalConf {
		t.Fatal("stage 1 must not depend on the mode")
	}
	if !h.Refined || h.C7Region.W <= 0 || h.C7Region.H <= 0 {
		t.Fatalf("hierarchical output %+v", h)
	}
	var sum float64
	for _, p := range h.C7Obscuration {
		if p < 0 || p > 1 {
			t.Fatalf("obscuration %v", h.C7Obscuration)
		}
		sum += p
	}
	if math.Abs(sum-1) > 1e-5 {
		t.Fatalf("obscuration probabilities sum to %v", sum)
	}
	for _, k := range []string{"global", "c7_locator", "refine"} {
		if _, ok := h.TimingsMS[k]; !ok {
			t.Fatalf("timings %v lack %s", h.TimingsMS, k)
		}
	}
}

// landmarkErrorsMM returns the per-landmark distance to the truth in mm.
func landmarkErrorsMM(lm [23]Point, tr result.Truth) [23]float64 {
	var e [23]float64
	sp := tr.PixelSpacingMM
	for _, l := range tr.Landmarks {
		j := result.LandmarkIndex(l.Name)
		e[j] = math.Hypot((lm[j].X-l.X)*sp[1], (lm[j].Y-l.Y)*sp[0])
	}
	return e
}

func merged(o *Output) [23]Point {
	lm := o.Global
	if o.Refined {
		copy(lm[:3], o.C2[:])
		copy(lm[19:], o.C7[:])
	}
	return lm
}

// The reference models find the landmarks of phantoms they never saw
// (seed 4242 is not a training seed) to within a few millimetres, and the
// specialists improve C2 and C7 over stage 1.
func TestReferenceModelsAccuracyOnPhantoms(t *testing.T) {
	m := models(t)
	var glob, hier [23]float64
	imgs := phantoms(t)
	for _, img := range imgs {
		if len(img.truth.PixelSpacingMM) != 2 {
			t.Fatalf("%s: truth without pixel spacing", img.truth.File)
		}
		o, err := m.Run(context.Background(), img.in, true)
		if err != nil {
			t.Fatal(err)
		}
		eg := landmarkErrorsMM(o.Global, img.truth)
		eh := landmarkErrorsMM(merged(o), img.truth)
		for i := range eg {
			glob[i] += eg[i] / float64(len(imgs))
			hier[i] += eh[i] / float64(len(imgs))
		}
	}
	mean := func(e [23]float64, idx ...int) float64 {
		var s float64
		for _, i := range idx {
			s += e[i]
		}
		return s / float64(len(idx))
	}
	c2 := []int{0, 1, 2}
	c7 := []int{19, 20, 21, 22}
	mid := []int{3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18}
	t.Logf("mean landmark error (mm) on %d phantoms: C2 global %.2f refined %.2f; C7 global %.2f refined %.2f; C3-C6 %.2f",
		len(imgs), mean(glob, c2...), mean(hier, c2...), mean(glob, c7...), mean(hier, c7...), mean(glob, mid...))
	if e := mean(hier, c2...); e > accuracyLimitMM.c2 {
		t.Errorf("refined C2 error %.2f mm > %.2f", e, accuracyLimitMM.c2)
	}
	if e := mean(hier, c7...); e > accuracyLimitMM.c7 {
		t.Errorf("refined C7 error %.2f mm > %.2f", e, accuracyLimitMM.c7)
	}
	if mean(hier, c7...) >= mean(glob, c7...) || mean(hier, c2...) >= mean(glob, c2...) {
		t.Errorf("the specialists must improve on stage 1 (C2 %.2f -> %.2f mm, C7 %.2f -> %.2f mm)",
			mean(glob, c2...), mean(hier, c2...), mean(glob, c7...), mean(hier, c7...))
	}
	if e := mean(glob, mid...); e > accuracyLimitMM.mid {
		t.Errorf("global C3-C6 error %.2f mm > %.2f", e, accuracyLimitMM.mid)
	}
}

// accuracyLimitMM are regression guards, looser than the validation figures
// in refmodels/README.md.
var accuracyLimitMM = struct{ c2, c7, mid float64 }{c2: 0.6, c7: 3.0, mid: 2.0}

func BenchmarkRun(b *testing.B) {
	m := models(b)
	// a 2500×2048 phantom, the size of a typical CR/DX cervical film
	dir := b.TempDir()
	if err := phantom.Generate(context.Background(), phantom.Options{Count: 1, Seed: 99, OutDir: dir, Rows: 2500, Cols: 2048, Obscuration: phantom.ObscurePartial, Workers: 1}); err != nil {
		b.Fatal(err)
	}
	ents, _ := filepath.Glob(filepath.Join(dir, "*.dcm"))
	im, err := decode.File(ents[0])
	if err != nil {
		b.Fatal(err)
	}
	in := Input{Rows: im.Rows, Cols: im.Cols, Pix: im.Display()}
	if len(im.Meta.PixelSpacing) == 2 {
		in.SpacingMM = [2]float64{im.Meta.PixelSpacing[0], im.Meta.PixelSpacing[1]}
	} else if len(im.Meta.ImagerPixelSpacing) == 2 {
		in.SpacingMM = [2]float64{im.Meta.ImagerPixelSpacing[0], im.Meta.ImagerPixelSpacing[1]}
	}
	for _, mode := range []struct {
		name string
		hier bool
	}{{"single_stage", false}, {"hierarchical", true}} {
		b.Run(mode.name, func(b *testing.B) {
			sum := map[string]float64{}
			for b.Loop() {
				o, err := m.Run(context.Background(), in, mode.hier)
				if err != nil {
					b.Fatal(err)
				}
				for k, v := range o.TimingsMS {
					sum[k] += v
				}
			}
			for k, v := range sum {
				b.ReportMetric(v/float64(b.N), k+"_ms")
			}
		})
	}
}

func TestLoadMissingModelDirIsAClearError(t *testing.T) {
	_, err := Load(Config{ModelDir: filepath.Join(t.TempDir(), "nope")})
	if err == nil || !strings.Contains(err.Error(), "manifest") {
		t.Fatalf("err = %v, want an error about the manifest", err)
	}
	t.Setenv(EnvModelDir, "/some/where")
	if d, err := ResolveModelDir(""); err != nil || d != "/some/where" {
		t.Fatalf("ResolveModelDir with %s = %q, %v", EnvModelDir, d, err)
	}
}

// TestSetC7Prior installs a prior file in a copy of the reference models:
// the manifest records it with its sha256 and the new version and keeps
// every other field; Load hands the verified content on; a tampered prior
// is refused like a tampered model; the version must change.
func TestSetC7Prior(t *testing.T) {
	requirePeers(t)
	dir := copyModels(t)
	before, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	content := []byte(`{"format":"test prior"}` + "\n")
	if err := SetC7Prior(dir, content, before.Version); err == nil || !strings.Contains(err.Error(), "new version") {
		t.Fatalf("same version: err = %v", err)
	}
	if err := SetC7Prior(dir, content, ""); err == nil {
		t.Fatal("empty version accepted")
	}
	if err := SetC7Prior(dir, content, "../x"); err == nil || !strings.Contains(err.Error(), "letters, digits") {
		t.Fatalf("version with a path: err = %v", err)
	}
	if err := SetC7Prior(dir, content, "9.9.9-test"); err != nil {
		t.Fatal(err)
	}
	after, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	if p := after.Stages.C7Prior; after.Version != "9.9.9-test" || p == nil || p.File != "c7_prior-9.9.9-test.json" || p.SHA256 != hex.EncodeToString(sum[:]) || p.Bytes != int64(len(content)) {
		t.Fatalf("manifest after: version %s, prior %+v", after.Version, after.Stages.C7Prior)
	}
	// Every other field as it was (compared as generic JSON).
	generic := func(path string) map[string]any {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "version")
		delete(m["stages"].(map[string]any), "c7_prior")
		return m
	}
	if a, b := generic(filepath.Join(refDir, ManifestFile)), generic(filepath.Join(dir, ManifestFile)); !reflect.DeepEqual(a, b) {
		t.Fatal("SetC7Prior changed other manifest fields")
	}
	m, err := Load(Config{ModelDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	got := m.Info().C7Prior
	m.Close()
	if !bytes.Equal(got, content) {
		t.Fatalf("Info().C7Prior = %q", got)
	}
	// The previous prior file (the shipped set's, if it has one) is gone.
	if old := before.Stages.C7Prior; old != nil {
		if _, err := os.Stat(filepath.Join(dir, old.File)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("previous prior %s: %v, want removed", old.File, err)
		}
	}
	// Members keep their order: the top level's and the stages' keys as
	// before, c7_prior last if it is new.
	order := func(b []byte) (top, st []string) {
		o, err := readObject(b)
		if err != nil {
			t.Fatal(err)
		}
		s, err := readObject(o.get("stages"))
		if err != nil {
			t.Fatal(err)
		}
		return o.keys, s.keys
	}
	origRaw, err := os.ReadFile(filepath.Join(refDir, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	newRaw, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	top0, st0 := order(origRaw)
	top1, st1 := order(newRaw)
	if !slices.Contains(st0, "c7_prior") {
		st0 = append(st0, "c7_prior")
	}
	if !slices.Equal(top0, top1) || !slices.Equal(st0, st1) {
		t.Fatalf("member order changed: %v %v → %v %v", top0, st0, top1, st1)
	}
	if err := os.WriteFile(filepath.Join(dir, after.Stages.C7Prior.File), []byte(`{"format":"tampered"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(Config{ModelDir: dir}); !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "c7_prior") {
		t.Fatalf("tampered prior: err = %v", err)
	}
}
