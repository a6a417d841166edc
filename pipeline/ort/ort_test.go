package ort

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// openTest opens a Runtime on the real ONNX Runtime library. The library is
// a required peer: the test fails (it is skipped only with -short) when
// scripts/setup.sh has not been run.
func openTest(t testing.TB, cfg Config) *Runtime {
	t.Helper()
	if _, err := ResolveLibrary(cfg.Library); err != nil {
		if testing.Short() {
			t.Skipf("short mode: %v", err)
		}
		t.Fatalf("ONNX Runtime is required for this test: %v", err)
	}
	r, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

func affine(t testing.TB, r *Runtime) *Session {
	t.Helper()
	s, err := r.NewSession(filepath.Join("testdata", "affine.onnx"),
		[]IO{{Name: "x", Shape: []int64{1, 4}}},
		[]IO{{Name: "y", Shape: []int64{1, 4}}, {Name: "s", Shape: []int64{1, 1}}})
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRunComputesTheModel(t *testing.T) {
	r := openTest(t, Config{Threads: 1})
	s := affine(t, r)
	tests := []struct {
		name string
		in   []float32
		y    []float32
		sum  float32
	}{
		{"zeros", []float32{0, 0, 0, 0}, []float32{1, 1, 1, 1}, 0},
		{"mixed", []float32{1, -2, 0.5, 3}, []float32{3, -3, 2, 7}, 2.5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := s.Run(context.Background(), Tensor{Shape: []int64{1, 4}, Data: tc.in})
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != 2 {
				t.Fatalf("%d outputs, want 2", len(out))
			}
			for i, v := range tc.y {
				if out[0].Data[i] != v {
					t.Errorf("y[%d] = %v, want %v", i, out[0].Data[i], v)
				}
			}
			if out[1].Data[0] != tc.sum || len(out[1].Shape) != 2 || out[1].Shape[1] != 1 {
				t.Errorf("s = %v %v, want %v [1 1]", out[1].Data, out[1].Shape, tc.sum)
			}
		})
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	r := openTest(t, Config{})
	s := affine(t, r)
	ctx := context.Background()
	tests := []struct {
		name string
		in   []Tensor
		want string
	}{
		{"wrong shape", []Tensor{{Shape: []int64{1, 3}, Data: make([]float32, 3)}}, "has shape [1 3]"},
		{"short data", []Tensor{{Shape: []int64{1, 4}, Data: make([]float32, 2)}}, "2 values for shape"},
		{"no input", nil, "0 inputs given"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Run(ctx, tc.in...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want containing %q", err, tc.want)
			}
		})
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Run(cctx, Tensor{Shape: []int64{1, 4}, Data: make([]float32, 4)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: err = %v", err)
	}
}

func TestMissingLibraryIsAClearError(t *testing.T) {
	_, err := Open(Config{Library: "/nonexistent/libonnxruntime.so.1"})
	if !errors.Is(err, ErrLibraryNotFound) || !strings.Contains(err.Error(), "/nonexistent/libonnxruntime.so.1") {
		t.Fatalf("err = %v", err)
	}
	t.Setenv(EnvLibrary, "/also/missing.so")
	_, err = Open(Config{})
	if !errors.Is(err, ErrLibraryNotFound) || !strings.Contains(err.Error(), EnvLibrary) {
		t.Fatalf("env: err = %v", err)
	}
}

func TestMissingModelIsAnError(t *testing.T) {
	r := openTest(t, Config{})
	_, err := r.NewSession("testdata/nope.onnx", []IO{{Name: "x"}}, []IO{{Name: "y"}})
	if err == nil || !strings.Contains(err.Error(), "nope.onnx") {
		t.Fatalf("err = %v", err)
	}
}

// With PreferCUDA the runtime logs exactly one line naming the provider.
// On this repository's CPU build of ONNX Runtime that provider is the CPU
// and the line says why CUDA is not used; on a GPU build it is "cuda".
func TestPreferCUDALogsOneProviderLine(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := openTest(t, Config{PreferCUDA: true, Threads: 1, Logger: log})
	s := affine(t, r)
	out, err := s.Run(context.Background(), Tensor{Shape: []int64{1, 4}, Data: []float32{1, 2, 3, 4}})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Data[3] != 9 {
		t.Fatalf("y = %v", out[0].Data)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want exactly one log line, have %d:\n%s", len(lines), buf.String())
	}
	switch r.Provider() {
	case ProviderCPU:
		if !strings.Contains(lines[0], "provider=cpu") || !strings.Contains(lines[0], "cuda=") {
			t.Fatalf("line %q", lines[0])
		}
	case ProviderCUDA:
		if !strings.Contains(lines[0], "provider=cuda") {
			t.Fatalf("line %q", lines[0])
		}
	default:
		t.Fatalf("provider %q", r.Provider())
	}
	t.Logf("provider %s: %s", r.Provider(), lines[0])
}

func TestConcurrentRunsShareOneSession(t *testing.T) {
	r := openTest(t, Config{Threads: 1})
	s := affine(t, r)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				x := float32(g*1000 + i)
				out, err := s.Run(context.Background(), Tensor{Shape: []int64{1, 4}, Data: []float32{x, x + 1, x + 2, x + 3}})
				if err != nil {
					errs <- err
					return
				}
				if out[0].Data[0] != 2*x+1 || out[1].Data[0] != 4*x+6 {
					errs <- errors.New("wrong result under concurrency")
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

func TestTwoRuntimesShareTheEnvironment(t *testing.T) {
	a := openTest(t, Config{})
	b, err := Open(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	s := affine(t, a) // a still works after b closed
	if _, err := s.Run(context.Background(), Tensor{Shape: []int64{1, 4}, Data: make([]float32, 4)}); err != nil {
		t.Fatal(err)
	}
}
