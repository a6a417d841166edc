package stages

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/cspine/cspine/pipeline/ort"
)

// exportCheck is refmodels/export_check.json, written by the training
// export: PyTorch's outputs for a deterministic probe input.
type exportCheck struct {
	Stages map[string][]struct {
		Shape       []int64   `json:"shape"`
		Sum         float64   `json:"sum"`
		Max         float64   `json:"max"`
		Argmax      int       `json:"argmax"`
		SampleIndex []int     `json:"sample_index"`
		Sample      []float64 `json:"sample"`
	} `json:"stages"`
}

// probeInput is training/cspine_train/export.py probe_input.
func probeInput(shape []int64) []float32 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	out := make([]float32, n)
	if len(shape) == 4 {
		h, w := int(shape[2]), int(shape[3])
		for i := range h {
			for j := range w {
				out[i*w+j] = float32(0.5 + 0.4*math.Sin(0.07*float64(i)+0.3)*math.Cos(0.05*float64(j)))
			}
		}
		return out
	}
	for k := range out {
		out[k] = float32(0.3 + 0.2*math.Sin(float64(k)))
	}
	return out
}

// The ONNX files, run by ONNX Runtime from Go, compute what the PyTorch
// modules they were exported from compute (export fidelity, all stages).
func TestONNXMatchesPyTorchExport(t *testing.T) {
	m := models(t)
	b, err := os.ReadFile(filepath.Join(refDir, "export_check.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ec exportCheck
	if err := json.Unmarshal(b, &ec); err != nil {
		t.Fatal(err)
	}
	sessions := map[string]struct {
		s    *ort.Session
		spec *StageSpec
	}{
		"global": {m.global, &m.man.Stages.Global}, "c7_locator": {m.loc, &m.man.Stages.C7Locator},
		"c2": {m.c2, &m.man.Stages.C2}, "c7": {m.c7, &m.man.Stages.C7},
	}
	if len(ec.Stages) != len(sessions) {
		t.Fatalf("export check covers %d stages, want %d", len(ec.Stages), len(sessions))
	}
	for name, x := range sessions {
		want, ok := ec.Stages[name]
		if !ok {
			t.Fatalf("no export check for %s", name)
		}
		shape := x.spec.Inputs[0].Shape
		out, err := x.s.Run(context.Background(), ort.Tensor{Shape: shape, Data: probeInput(shape)})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(out) != len(want) {
			t.Fatalf("%s: %d outputs, export had %d", name, len(out), len(want))
		}
		for k, w := range want {
			got := out[k].Data
			var sum float64
			best := 0
			for i, v := range got {
				sum += float64(v)
				if v > got[best] {
					best = i
				}
			}
			if math.Abs(sum-w.Sum) > 1e-4*float64(len(got))+1e-3 {
				t.Errorf("%s output %d: sum %v, PyTorch %v", name, k, sum, w.Sum)
			}
			if math.Abs(float64(got[best])-w.Max) > 1e-4 {
				t.Errorf("%s output %d: max %v, PyTorch %v", name, k, got[best], w.Max)
			}
			for i, idx := range w.SampleIndex {
				if math.Abs(float64(got[idx])-w.Sample[i]) > 1e-4 {
					t.Errorf("%s output %d[%d] = %v, PyTorch %v", name, k, idx, got[idx], w.Sample[i])
				}
			}
		}
	}
}
