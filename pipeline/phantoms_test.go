package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cspine/cspine/phantom"
)

// benchDir holds the benchmark image (bench_test.go); removed by TestMain.
var benchDir string

var (
	phantomOnce sync.Once
	phantomDir  string
	phantomErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range []string{phantomDir, benchDir} {
		if d != "" {
			os.RemoveAll(d)
		}
	}
	os.Exit(code)
}

// truthDir generates, once per test binary, a small phantom set with
// `cspine phantom`'s generator: five measurable laterals with mixed C7
// obscuration (subdirectory "lat") and three negatives (AP view, chest film,
// thumbnail) that must be rejected ("neg").
func truthDir(t *testing.T) string {
	t.Helper()
	phantomOnce.Do(func() {
		phantomDir, phantomErr = os.MkdirTemp("", "cspine-phantom-")
		if phantomErr != nil {
			return
		}
		phantomErr = phantom.Generate(context.Background(), phantom.Options{Count: 5, Seed: 20261127, OutDir: filepath.Join(phantomDir, "lat"), Obscuration: phantom.ObscureMixed})
		if phantomErr != nil {
			return
		}
		phantomErr = phantom.Generate(context.Background(), phantom.Options{Count: 3, Seed: 7, OutDir: filepath.Join(phantomDir, "neg"), Negatives: 1})
	})
	if phantomErr != nil {
		t.Fatalf("generate phantoms: %v", phantomErr)
	}
	return filepath.Join(phantomDir, "lat")
}

func negativesDir(t *testing.T) string {
	truthDir(t)
	return filepath.Join(phantomDir, "neg")
}
