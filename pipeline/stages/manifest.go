package stages

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"

	"github.com/cspine/cspine/pipeline/result"
)

// ManifestFile is the manifest's file name inside a model directory.
const ManifestFile = "manifest.json"

// ManifestFormat is the manifest format this package reads.
const ManifestFormat = "cspine-models/1"

// ErrChecksum is returned when a model file does not match the sha256 sum
// its manifest records.
var ErrChecksum = errors.New("model file checksum mismatch")

// Manifest describes the four stage models of a model directory (written by
// training/cspine_train/export.py).
type Manifest struct {
	Format      string            `json:"format"`
	Name        string            `json:"name"`
	Version     string            `json:"version"`
	ClinicalUse string            `json:"clinical_use"`
	TrainedOn   string            `json:"trained_on"`
	Landmarks   []string          `json:"landmarks"`
	Normalise   map[string]string `json:"normalisation"`
	Training    json.RawMessage   `json:"training"`
	Stages      struct {
		Global    StageSpec `json:"global"`
		C7Locator StageSpec `json:"c7_locator"`
		C2        StageSpec `json:"c2"`
		C7        StageSpec `json:"c7"`
		// C7Prior is the optional C7 shape prior (a JSON file read by
		// package pipeline; see pipeline.C7Prior), fitted after the models
		// by `cspine eval --fit-prior`.
		C7Prior *FileSpec `json:"c7_prior,omitempty"`
	} `json:"stages"`
}

// FileSpec names a non-ONNX file of the model set and its checksum.
type FileSpec struct {
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
}

// TensorSpec is a model input or output: its name and fixed shape.
type TensorSpec struct {
	Name  string  `json:"name"`
	Shape []int64 `json:"shape"`
}

// StageSpec is one stage's model file and geometry.
type StageSpec struct {
	File    string       `json:"file"`
	SHA256  string       `json:"sha256"`
	Bytes   int64        `json:"bytes"`
	Inputs  []TensorSpec `json:"inputs"`
	Outputs []TensorSpec `json:"outputs"`
	// InputSize is the square input side (global: letterbox; specialists: crop).
	InputSize int `json:"input_size"`
	// Stride is input pixels per heatmap pixel.
	Stride int `json:"stride"`
	// SideMM is a specialist crop's side in mm when the spacing is known.
	SideMM float64 `json:"side_mm"`
	// FallbackVertebraFactor: crop side = factor × median C3–C6 endplate
	// width when the spacing is unknown.
	FallbackVertebraFactor float64 `json:"fallback_vertebra_factor"`
	// Landmarks are the output channels (heatmaps) or, for the locator, the
	// input landmarks.
	Landmarks []string `json:"landmarks"`
	// PresenceThreshold (locator): stage-1 confidence below which a landmark
	// is passed as absent.
	PresenceThreshold float64 `json:"presence_threshold"`
	// ObscurationClasses (C7 specialist): order of the obscuration output.
	ObscurationClasses []string `json:"obscuration_classes"`
}

// ReadManifest reads and validates dir/manifest.json and verifies the
// sha256 sum of every model file it names.
func ReadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse %s: %w", filepath.Join(dir, ManifestFile), err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", filepath.Join(dir, ManifestFile), err)
	}
	for _, s := range m.specs() {
		if err := VerifyFile(filepath.Join(dir, s.spec.File), s.spec.SHA256); err != nil {
			return nil, fmt.Errorf("stage %s: %w", s.name, err)
		}
	}
	if p := m.Stages.C7Prior; p != nil {
		if err := VerifyFile(filepath.Join(dir, p.File), p.SHA256); err != nil {
			return nil, fmt.Errorf("stage c7_prior: %w", err)
		}
	}
	return &m, nil
}

// ReadVerified reads a file whose sha256 must be want (hex) and returns its
// content: what is used is what was checked.
func ReadVerified(path, want string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read model file: %w", err)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != want {
		return nil, fmt.Errorf("%w: %s has sha256 %s, manifest says %s", ErrChecksum, path, got, want)
	}
	return b, nil
}

// VerifyFile checks a file's sha256 against the expected hex sum.
func VerifyFile(path, want string) error {
	_, err := ReadVerified(path, want)
	return err
}

// SetC7Prior writes content as the C7 shape prior file of the model
// directory dir (c7_prior-VERSION.json), records it with its sha256 in dir's
// manifest and sets the manifest's version: a prior changes measurements,
// so the model set becomes a new version. Every other field of the manifest
// is kept as written, in its order. Both files are replaced atomically, the
// manifest last, and a previous prior file is removed after: an interrupted
// call leaves the old, consistent model set.
func SetC7Prior(dir string, content []byte, version string) error {
	if version == "" {
		return errors.New("set c7 prior: a new model version is required")
	}
	m, err := ReadManifest(dir)
	if err != nil {
		return err
	}
	if version == m.Version {
		return fmt.Errorf("set c7 prior: version %s is the current one; a prior changes measurements, give a new version", version)
	}
	if !versionName.MatchString(version) {
		return fmt.Errorf("set c7 prior: version %q: use letters, digits, '.', '_' and '-' only", version)
	}
	// A file name of its own per version: until the manifest is replaced,
	// the old manifest and the old prior file stay consistent.
	name := "c7_prior-" + version + ".json"
	sum := sha256.Sum256(content)
	spec, err := json.Marshal(FileSpec{File: name, SHA256: hex.EncodeToString(sum[:]), Bytes: int64(len(content))})
	if err != nil {
		return fmt.Errorf("set c7 prior: %w", err)
	}
	path := filepath.Join(dir, ManifestFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("set c7 prior: %w", err)
	}
	top, err := readObject(raw)
	if err != nil {
		return fmt.Errorf("set c7 prior: %s: %w", path, err)
	}
	ver, _ := json.Marshal(version)
	top.set("version", ver)
	st, err := readObject(top.get("stages"))
	if err != nil {
		return fmt.Errorf("set c7 prior: %s: stages: %w", path, err)
	}
	st.set("c7_prior", spec)
	top.set("stages", st.encode())
	var out bytes.Buffer
	if err := json.Indent(&out, top.encode(), "", "  "); err != nil {
		return fmt.Errorf("set c7 prior: encode manifest: %w", err)
	}
	out.WriteByte('\n')
	var check Manifest
	if err := json.Unmarshal(out.Bytes(), &check); err != nil {
		return fmt.Errorf("set c7 prior: %w", err)
	}
	if err := check.Validate(); err != nil {
		return fmt.Errorf("set c7 prior: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, name), content); err != nil {
		return fmt.Errorf("set c7 prior: %w", err)
	}
	if err := writeFileAtomic(path, out.Bytes()); err != nil {
		return fmt.Errorf("set c7 prior: %w", err)
	}
	if old := m.Stages.C7Prior; old != nil && old.File != name {
		if err := os.Remove(filepath.Join(dir, old.File)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("set c7 prior: installed, but the previous prior file stays: %w", err)
		}
	}
	return nil
}

// versionName is what a model version may contain (it names a file).
var versionName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// writeFileAtomic writes content to a temporary file beside path, syncs it
// and renames it over path, so that path holds either the old or the new
// content, never a part.
func writeFileAtomic(path string, content []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// object is a JSON object's members in their order, values undecoded.
type object struct {
	keys []string
	vals map[string]json.RawMessage
}

// readObject reads a JSON object keeping its members' order.
func readObject(b []byte) (*object, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	o := &object{vals: map[string]json.RawMessage{}}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		o.set(k, v)
	}
	return o, nil
}

func (o *object) get(k string) json.RawMessage { return o.vals[k] }

// set replaces a member's value in place or appends the member.
func (o *object) set(k string, v json.RawMessage) {
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

// encode writes the object compactly, members in order.
func (o *object) encode() json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		_ = json.Compact(&b, o.vals[k])
	}
	b.WriteByte('}')
	return b.Bytes()
}

type namedSpec struct {
	name string
	spec *StageSpec
}

func (m *Manifest) specs() []namedSpec {
	return []namedSpec{{"global", &m.Stages.Global}, {"c7_locator", &m.Stages.C7Locator}, {"c2", &m.Stages.C2}, {"c7", &m.Stages.C7}}
}

// Validate checks that the manifest describes models this package can run:
// the landmark order of the contract, and shapes consistent with sizes.
func (m *Manifest) Validate() error {
	if m.Format != ManifestFormat {
		return fmt.Errorf("format %q, want %q", m.Format, ManifestFormat)
	}
	if m.Name == "" || m.Version == "" {
		return errors.New("name and version are required")
	}
	if !slices.Equal(m.Landmarks, result.LandmarkNames) {
		return fmt.Errorf("landmark order %v differs from the contract's", m.Landmarks)
	}
	for _, s := range m.specs() {
		if s.spec.File == "" || len(s.spec.SHA256) != 64 {
			return fmt.Errorf("stage %s: file and sha256 are required", s.name)
		}
		if filepath.Base(s.spec.File) != s.spec.File {
			return fmt.Errorf("stage %s: file %q must be a plain name in the model directory", s.name, s.spec.File)
		}
	}
	if p := m.Stages.C7Prior; p != nil {
		if p.File == "" || len(p.SHA256) != 64 || filepath.Base(p.File) != p.File {
			return fmt.Errorf("stage c7_prior: a plain file name in the model directory and its sha256 are required")
		}
	}
	g := &m.Stages.Global
	if err := heatmapSpec("global", g, result.LandmarkNames, 1); err != nil {
		return err
	}
	if err := heatmapSpec("c2", &m.Stages.C2, result.LandmarkNames[:3], 1); err != nil {
		return err
	}
	if err := heatmapSpec("c7", &m.Stages.C7, result.LandmarkNames[19:], 2); err != nil {
		return err
	}
	for _, s := range []namedSpec{{"c2", &m.Stages.C2}, {"c7", &m.Stages.C7}} {
		if !(s.spec.SideMM > 0) || !(s.spec.FallbackVertebraFactor > 0) {
			return fmt.Errorf("stage %s: side_mm and fallback_vertebra_factor must be positive", s.name)
		}
	}
	c7 := &m.Stages.C7
	if !slices.Equal(c7.ObscurationClasses, []string{result.ObscurationNone, result.ObscurationPartial, result.ObscurationComplete}) {
		return fmt.Errorf("stage c7: obscuration classes %v, want none, partial, complete", c7.ObscurationClasses)
	}
	if !slices.Equal(c7.Outputs[1].Shape, []int64{1, 3}) {
		return fmt.Errorf("stage c7: obscuration output shape %v, want [1 3]", c7.Outputs[1].Shape)
	}
	l := &m.Stages.C7Locator
	if !slices.Equal(l.Landmarks, result.LandmarkNames[:19]) {
		return fmt.Errorf("stage c7_locator: input landmarks %v, want C2_centroid..C6_inf_post", l.Landmarks)
	}
	if len(l.Inputs) != 1 || len(l.Outputs) != 1 || !slices.Equal(l.Inputs[0].Shape, []int64{1, 19 * 3}) || !slices.Equal(l.Outputs[0].Shape, []int64{1, 4}) {
		return fmt.Errorf("stage c7_locator: want input [1 57] and output [1 4], have %v -> %v", l.Inputs, l.Outputs)
	}
	if !(l.PresenceThreshold >= 0 && l.PresenceThreshold < 1) {
		return fmt.Errorf("stage c7_locator: presence_threshold %v outside [0, 1)", l.PresenceThreshold)
	}
	return nil
}

func heatmapSpec(name string, s *StageSpec, landmarks []string, outputs int) error {
	if !slices.Equal(s.Landmarks, landmarks) {
		return fmt.Errorf("stage %s: landmarks %v, want %v", name, s.Landmarks, landmarks)
	}
	if s.InputSize < 16 || s.Stride < 1 || s.InputSize%s.Stride != 0 {
		return fmt.Errorf("stage %s: input_size %d and stride %d are inconsistent", name, s.InputSize, s.Stride)
	}
	n := int64(s.InputSize)
	h := n / int64(s.Stride)
	if len(s.Inputs) != 1 || !slices.Equal(s.Inputs[0].Shape, []int64{1, 1, n, n}) {
		return fmt.Errorf("stage %s: want one input [1 1 %d %d], have %v", name, n, n, s.Inputs)
	}
	if len(s.Outputs) != outputs || !slices.Equal(s.Outputs[0].Shape, []int64{1, int64(len(landmarks)), h, h}) {
		return fmt.Errorf("stage %s: want heatmaps [1 %d %d %d] first of %d outputs, have %v", name, len(landmarks), h, h, outputs, s.Outputs)
	}
	return nil
}
