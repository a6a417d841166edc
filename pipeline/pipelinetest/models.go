package pipelinetest

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cspine/cspine/pipeline/stages"
)

var (
	modelsOnce sync.Once
	models     *stages.Models
	modelsErr  error
)

// ORTLibrary returns the ONNX Runtime library: $CSPINE_ORT_LIB, else the
// copy scripts/setup.sh installs under third_party/onnxruntime.
func ORTLibrary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("CSPINE_ORT_LIB"); p != "" {
		return p
	}
	return filepath.Join(RepoRoot(tb), "third_party", "onnxruntime", "libonnxruntime.so.1")
}

// Models loads the reference models of refmodels/ once per test binary (ONNX
// Runtime sessions are shared, as in production) and fails the test with a
// clear message when they or the ONNX Runtime library are missing.
func Models(tb testing.TB) *stages.Models {
	tb.Helper()
	modelsOnce.Do(func() {
		lib := ORTLibrary(tb)
		if _, err := os.Stat(lib); err != nil {
			modelsErr = err
			return
		}
		models, modelsErr = stages.Load(stages.Config{ModelDir: filepath.Join(RepoRoot(tb), "refmodels"), ORTLibrary: lib, Threads: 1})
	})
	if modelsErr != nil {
		tb.Fatalf("reference models (refmodels/) with the ONNX Runtime library (run scripts/setup.sh) are required: %v", modelsErr)
	}
	return models
}
