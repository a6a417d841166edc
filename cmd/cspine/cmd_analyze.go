package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/cspine/cspine/pipeline"
	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/pipeline/stages"
)

func init() {
	register(command{
		name:    "analyze",
		summary: "measure lateral cervical radiographs (DICOM files) and print the results",
		usage: `Usage: cspine analyze [--json] [--single-stage] [--models DIR] [--threads N] [--out DIR] FILE...

Runs the hierarchical landmark pipeline on each DICOM file and prints one
result per file: with --json, one JSON object per line as in
shared/spec/measurements.md, in the order of the files. A file the pipeline
will not measure (not an image, a structured report, too small, an AP/PA or
oblique view, an unsupported transfer syntax) gets "status": "rejected" with
an "error"; the exit status is non-zero only when the command itself fails
(models missing, bad flags, output not writable).

The models come from --models, else $CSPINE_MODELS, else refmodels/ found
upward from the working directory or the executable; the ONNX Runtime library
from --ort-lib, else $CSPINE_ORT_LIB, else the search of package ort. --thresholds replaces the shipped review thresholds.`,
		run: runAnalyze,
	})
}

// modelFlags are the flags shared by analyze and eval.
type modelFlags struct {
	models, ortLib, thresholds string
	threads, workers           int
	cuda                       bool
}

func (m *modelFlags) register(fs interface {
	StringVar(*string, string, string, string)
	IntVar(*int, string, int, string)
	BoolVar(*bool, string, bool, string)
}) {
	fs.StringVar(&m.models, "models", "", "model directory with the manifest (default $CSPINE_MODELS or ./refmodels)")
	fs.StringVar(&m.ortLib, "ort-lib", "", "ONNX Runtime shared library (default $CSPINE_ORT_LIB or the stages default)")
	fs.StringVar(&m.thresholds, "thresholds", "", "review thresholds JSON file (default: the shipped, calibrated pipeline/thresholds.json)")
	fs.IntVar(&m.threads, "threads", 0, "ONNX Runtime intra-op threads per session (0: default)")
	fs.IntVar(&m.workers, "workers", 0, "files analyzed concurrently (0: number of CPUs, at most 4)")
	fs.BoolVar(&m.cuda, "cuda", true, "try the CUDA execution provider first (falls back to CPU)")
}

// open loads the models and builds the analyzer.
func (m *modelFlags) open() (*stages.Models, *pipeline.Analyzer, error) {
	// Empty values let package stages resolve them: $CSPINE_MODELS, then
	// refmodels/ searched upward; the ONNX Runtime library by package ort.
	dir, lib := m.models, m.ortLib
	if lib == "" {
		lib = os.Getenv("CSPINE_ORT_LIB")
	}
	var cfg pipeline.Config
	if m.thresholds != "" {
		th, err := pipeline.LoadThresholds(m.thresholds)
		if err != nil {
			return nil, nil, err
		}
		cfg.Thresholds = &th
	}
	models, err := stages.Load(stages.Config{ModelDir: dir, ORTLibrary: lib, Threads: m.threads, PreferCUDA: m.cuda})
	if err != nil {
		return nil, nil, fmt.Errorf("load models: %w", err)
	}
	an, err := pipeline.New(models, cfg)
	if err != nil {
		models.Close()
		return nil, nil, err
	}
	return models, an, nil
}

func (m *modelFlags) workerCount() int {
	if m.workers > 0 {
		return m.workers
	}
	return min(runtime.NumCPU(), 4)
}

func runAnalyze(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := commands["analyze"]
	fs := newFlagSet(c, stderr)
	var mf modelFlags
	mf.register(fs)
	asJSON := fs.Bool("json", false, "print one JSON object per file (the spec's contract)")
	single := fs.Bool("single-stage", false, "run the global model alone (the paper's baseline; every result is then flagged for review)")
	outDir := fs.String("out", "", "also write the reports of each measured file into DIR: <SOP Instance UID>.sr.dcm (TID 1500 SR) and .sc.dcm (overlay)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	files := fs.Args()
	if len(files) == 0 {
		return fmt.Errorf("%w: no FILE given", errUsage)
	}
	if *outDir != "" {
		if err := os.MkdirAll(*outDir, 0o755); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
	}
	models, an, err := mf.open()
	if err != nil {
		return err
	}
	defer models.Close()
	info := models.Info()
	slog.Info("models loaded", "name", info.Name, "version", info.Version, "provider", info.Provider)

	opts := pipeline.Options{SingleStage: *single}
	started := time.Now().UTC().Truncate(time.Second)
	results := analyzeAll(ctx, an, files, opts, mf.workerCount())
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	for i, ch := range results {
		r := <-ch
		if *asJSON {
			if err := enc.Encode(r); err != nil {
				return fmt.Errorf("write result: %w", err)
			}
		} else if _, err := fmt.Fprintln(stdout, summaryLine(r)); err != nil {
			return fmt.Errorf("write result: %w", err)
		}
		if *outDir != "" && r.Status == result.StatusOK {
			if err := writeReports(*outDir, files[i], r, started); err != nil {
				return fmt.Errorf("write reports for %s: %w", files[i], err)
			}
		}
	}
	return ctx.Err()
}

// analyzeAll analyzes files with workers concurrent analyses; the i-th
// channel delivers the i-th file's result, so output keeps the input order.
func analyzeAll(ctx context.Context, an *pipeline.Analyzer, files []string, opts pipeline.Options, workers int) []chan result.Result {
	out := make([]chan result.Result, len(files))
	for i := range out {
		out[i] = make(chan result.Result, 1)
	}
	sem := make(chan struct{}, max(workers, 1))
	go func() {
		for i, f := range files {
			sem <- struct{}{}
			go func() {
				defer func() { <-sem }()
				out[i] <- an.AnalyzeFile(ctx, f, opts)
			}()
		}
	}()
	return out
}

// summaryLine is the human-readable form of a result.
func summaryLine(r result.Result) string {
	if r.Status != result.StatusOK {
		return fmt.Sprintf("%s: rejected: %s", r.File, r.Error)
	}
	p := r.Parameters
	var b strings.Builder
	fmt.Fprintf(&b, "%s: C2–C7 %+.1f° (C2 slope %.1f°, C7 slope %.1f°, C7 superior %.1f°)", r.File, p.C2C7CobbDeg, p.C2SlopeDeg, p.C7SlopeDeg, p.C7SupSlopeDeg)
	if p.C2C7SVAmm != nil {
		fmt.Fprintf(&b, ", SVA %.1f mm", *p.C2C7SVAmm)
	}
	fmt.Fprintf(&b, ", facing %s, C7 %s (confidence %.2f)", r.Facing, r.C7.Obscuration, r.C7.Confidence)
	if r.Review.Required {
		fmt.Fprintf(&b, "; REVIEW: %s", strings.Join(r.Review.Reasons, ", "))
	}
	return b.String()
}
