package stages

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	} `json:"stages"`
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
	return &m, nil
}

// VerifyFile checks a file's sha256 against the expected hex sum.
func VerifyFile(path, want string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open model: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("read model %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%w: %s has sha256 %s, manifest says %s", ErrChecksum, path, got, want)
	}
	return nil
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
