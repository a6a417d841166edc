// Package ort runs ONNX models on ONNX Runtime through
// github.com/yalue/onnxruntime_go.
//
// The ONNX Runtime environment is process-wide (one shared library, one
// OrtEnv): Open initialises it on first use and the last Runtime.Close
// releases it. A Runtime picks its execution provider once: with PreferCUDA
// it tries the CUDA execution provider and falls back to the CPU cleanly,
// logging exactly one line that says which provider runs. Sessions are
// created once and are safe for concurrent Run calls (ONNX Runtime's
// Session::Run is thread-safe; every call brings its own input and output
// tensors).
//
// The shared library is found, in this order, at Config.Library, at the
// environment variable CSPINE_ORT_LIB, or at
// third_party/onnxruntime/libonnxruntime.so.1 in the working directory, the
// executable's directory, or any of their parents (scripts/setup.sh puts it
// there).
//
// # CUDA on a GPU host
//
// The CPU build that scripts/setup.sh fetches (onnxruntime-node@1.30.0) has
// no CUDA provider; on it PreferCUDA falls back to the CPU. For a GPU host
// use the matching GPU release of ONNX Runtime (onnxruntime-linux-x64-gpu,
// same version): put libonnxruntime.so.1, libonnxruntime_providers_shared.so
// and libonnxruntime_providers_cuda.so side by side in one directory, point
// CSPINE_ORT_LIB (or Config.Library) at libonnxruntime.so.1 there, and make
// the CUDA 12 runtime, cuBLAS and cuDNN 9 libraries loadable (LD_LIBRARY_PATH
// or the system linker path). The provider log line then says "cuda".
package ort

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	ortgo "github.com/yalue/onnxruntime_go"
)

// EnvLibrary is the environment variable naming the ONNX Runtime library.
const EnvLibrary = "CSPINE_ORT_LIB"

// DefaultLibrary is the library path, relative to the repository or the
// executable's directory, where scripts/setup.sh installs ONNX Runtime.
const DefaultLibrary = "third_party/onnxruntime/libonnxruntime.so.1"

// Providers reported by Runtime.Provider.
const (
	ProviderCUDA = "cuda"
	ProviderCPU  = "cpu"
)

// ErrLibraryNotFound is returned by Open when no ONNX Runtime library exists
// at any of the places it looks.
var ErrLibraryNotFound = errors.New("onnxruntime shared library not found")

// Config configures a Runtime.
type Config struct {
	// Library is the path of libonnxruntime.so; empty: CSPINE_ORT_LIB, then
	// DefaultLibrary searched upward from the working and executable dirs.
	Library string
	// Threads is the intra-op thread count of every session; 0 lets ONNX
	// Runtime choose (one per physical core).
	Threads int
	// PreferCUDA tries the CUDA execution provider before the CPU.
	PreferCUDA bool
	// Logger receives the one provider line; nil uses slog.Default().
	Logger *slog.Logger
}

var env struct {
	sync.Mutex
	refs    int
	library string
}

// Runtime is an initialised ONNX Runtime with a chosen execution provider.
type Runtime struct {
	cfg      Config
	provider string
	reason   string // why CUDA is not used, when it is not

	mu     sync.Mutex
	closed bool
}

// ResolveLibrary returns the ONNX Runtime library path Open would use.
func ResolveLibrary(configured string) (string, error) {
	if configured != "" {
		if _, err := os.Stat(configured); err != nil {
			return "", fmt.Errorf("%w: configured library %s: %v", ErrLibraryNotFound, configured, err)
		}
		return configured, nil
	}
	if p := os.Getenv(EnvLibrary); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: %s=%s: %v", ErrLibraryNotFound, EnvLibrary, p, err)
		}
		return p, nil
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	var looked []string
	for _, dir := range starts {
		for range 8 {
			p := filepath.Join(dir, DefaultLibrary)
			looked = append(looked, p)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("%w: set %s or run scripts/setup.sh (looked at %d places, first %s)",
		ErrLibraryNotFound, EnvLibrary, len(looked), firstOr(looked, DefaultLibrary))
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}

// Open initialises ONNX Runtime (once per process) and chooses the
// execution provider. Close the Runtime when done.
func Open(cfg Config) (*Runtime, error) {
	if cfg.Threads < 0 {
		return nil, fmt.Errorf("ort: threads must be >= 0, have %d", cfg.Threads)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	lib, err := ResolveLibrary(cfg.Library)
	if err != nil {
		return nil, fmt.Errorf("ort: %w", err)
	}
	abs, err := filepath.Abs(lib)
	if err != nil {
		return nil, fmt.Errorf("ort: library path %s: %w", lib, err)
	}
	env.Lock()
	defer env.Unlock()
	if env.refs == 0 {
		ortgo.SetSharedLibraryPath(abs)
		if err := ortgo.InitializeEnvironment(ortgo.WithLogLevelError()); err != nil {
			return nil, fmt.Errorf("ort: initialise onnxruntime from %s: %w", abs, err)
		}
		env.library = abs
	} else if env.library != abs {
		return nil, fmt.Errorf("ort: onnxruntime already loaded from %s, cannot also load %s", env.library, abs)
	}
	env.refs++
	r := &Runtime{cfg: cfg, provider: ProviderCPU}
	if cfg.PreferCUDA {
		if err := probeCUDA(); err != nil {
			r.reason = err.Error()
		} else {
			r.provider = ProviderCUDA
		}
	} else {
		r.reason = "not requested"
	}
	attrs := []any{"provider", r.provider, "library", abs, "onnxruntime", ortgo.GetVersion(), "threads", cfg.Threads}
	if r.provider != ProviderCUDA {
		attrs = append(attrs, "cuda", shortReason(r.reason))
	}
	cfg.Logger.Info("onnxruntime execution provider", attrs...)
	return r, nil
}

// probeCUDA checks that the CUDA execution provider can be appended to a
// session's options (it fails on a CPU-only build or without the provider
// libraries).
func probeCUDA() error {
	opts, err := ortgo.NewSessionOptions()
	if err != nil {
		return err
	}
	defer opts.Destroy()
	return appendCUDA(opts)
}

func appendCUDA(opts *ortgo.SessionOptions) error {
	co, err := ortgo.NewCUDAProviderOptions()
	if err != nil {
		return fmt.Errorf("cuda provider options: %w", err)
	}
	defer co.Destroy()
	if err := co.Update(map[string]string{"device_id": "0"}); err != nil {
		return fmt.Errorf("cuda provider options: %w", err)
	}
	if err := opts.AppendExecutionProviderCUDA(co); err != nil {
		return fmt.Errorf("cuda provider: %w", err)
	}
	return nil
}

// Provider is the execution provider sessions use: "cuda" or "cpu".
func (r *Runtime) Provider() string { return r.provider }

// Close releases the Runtime; the process-wide environment goes with the
// last one. Sessions must be closed first.
func (r *Runtime) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	env.Lock()
	defer env.Unlock()
	env.refs--
	if env.refs == 0 {
		if err := ortgo.DestroyEnvironment(); err != nil {
			return fmt.Errorf("ort: destroy environment: %w", err)
		}
		env.library = ""
	}
	return nil
}

// Tensor is a dense float32 tensor.
type Tensor struct {
	Shape []int64
	Data  []float32
}

// Size is the number of elements the shape holds.
func (t Tensor) Size() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// IO names a model input or output and its expected shape (nil: not checked).
type IO struct {
	Name  string
	Shape []int64
}

// Session is one ONNX model, safe for concurrent Run.
type Session struct {
	name    string
	s       *ortgo.DynamicAdvancedSession
	inputs  []IO
	outputs []IO
}

// NewSession loads an ONNX file with the Runtime's provider. When the CUDA
// provider cannot create the session the CPU is used for it and a warning
// is logged once for that model.
func (r *Runtime) NewSession(path string, inputs, outputs []IO) (*Session, error) {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, errors.New("ort: runtime is closed")
	}
	if len(inputs) == 0 || len(outputs) == 0 {
		return nil, fmt.Errorf("ort: session %s: need at least one input and one output", path)
	}
	in := names(inputs)
	out := names(outputs)
	s, err := r.newSession(path, in, out, r.provider == ProviderCUDA)
	if err != nil && r.provider == ProviderCUDA {
		r.cfg.Logger.Warn("onnxruntime: cuda session failed, model runs on cpu", "model", filepath.Base(path), "error", err)
		s, err = r.newSession(path, in, out, false)
	}
	if err != nil {
		return nil, fmt.Errorf("ort: load %s: %w", path, err)
	}
	return &Session{name: filepath.Base(path), s: s, inputs: inputs, outputs: outputs}, nil
}

func (r *Runtime) newSession(path string, in, out []string, cuda bool) (*ortgo.DynamicAdvancedSession, error) {
	opts, err := ortgo.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	if r.cfg.Threads > 0 {
		if err := opts.SetIntraOpNumThreads(r.cfg.Threads); err != nil {
			return nil, err
		}
		if err := opts.SetInterOpNumThreads(1); err != nil {
			return nil, err
		}
	}
	if err := opts.SetLogSeverityLevel(ortgo.LoggingLevelError); err != nil {
		return nil, err
	}
	if cuda {
		if err := appendCUDA(opts); err != nil {
			return nil, err
		}
	}
	return ortgo.NewDynamicAdvancedSession(path, in, out, opts)
}

func names(ios []IO) []string {
	n := make([]string, len(ios))
	for i, io := range ios {
		n[i] = io.Name
	}
	return n
}

// Name is the model file's base name.
func (s *Session) Name() string { return s.name }

// Run evaluates the model on inputs (in the order given to NewSession) and
// returns the outputs in order. Shapes are checked against the declared
// ones. The context is checked before the run; a started run completes.
func (s *Session) Run(ctx context.Context, inputs ...Tensor) ([]Tensor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(inputs) != len(s.inputs) {
		return nil, fmt.Errorf("ort: %s: %d inputs given, model takes %d", s.name, len(inputs), len(s.inputs))
	}
	vals := make([]ortgo.Value, len(inputs))
	defer func() {
		for _, v := range vals {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, t := range inputs {
		if want := s.inputs[i].Shape; want != nil && !equalShape(want, t.Shape) {
			return nil, fmt.Errorf("ort: %s: input %s has shape %v, model takes %v", s.name, s.inputs[i].Name, t.Shape, want)
		}
		if int64(len(t.Data)) != t.Size() {
			return nil, fmt.Errorf("ort: %s: input %s: %d values for shape %v", s.name, s.inputs[i].Name, len(t.Data), t.Shape)
		}
		v, err := ortgo.NewTensor(ortgo.NewShape(t.Shape...), t.Data)
		if err != nil {
			return nil, fmt.Errorf("ort: %s: input %s: %w", s.name, s.inputs[i].Name, err)
		}
		vals[i] = v
	}
	outs := make([]ortgo.Value, len(s.outputs))
	defer func() {
		for _, v := range outs {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	if err := s.s.Run(vals, outs); err != nil {
		return nil, fmt.Errorf("ort: run %s: %w", s.name, err)
	}
	res := make([]Tensor, len(outs))
	for i, v := range outs {
		t, ok := v.(*ortgo.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("ort: %s: output %s is %T, want float32 tensor", s.name, s.outputs[i].Name, v)
		}
		shape := []int64(t.GetShape())
		if want := s.outputs[i].Shape; want != nil && !equalShape(want, shape) {
			return nil, fmt.Errorf("ort: %s: output %s has shape %v, manifest says %v", s.name, s.outputs[i].Name, shape, want)
		}
		res[i] = Tensor{Shape: append([]int64(nil), shape...), Data: append([]float32(nil), t.GetData()...)}
	}
	return res, nil
}

// Close releases the session.
func (s *Session) Close() error {
	if s.s == nil {
		return nil
	}
	err := s.s.Destroy()
	s.s = nil
	if err != nil {
		return fmt.Errorf("ort: close %s: %w", s.name, err)
	}
	return nil
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// shortReason keeps the provider line short: ONNX Runtime's CUDA error
// without its source location and C++ signature, first line only, cut at
// 100 characters.
func shortReason(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndex(s, "FAIL : "); i >= 0 {
		s = s[i+len("FAIL : "):]
	}
	if i := strings.Index(s, " with error:"); i >= 0 {
		s = s[:i]
	}
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return s
}
