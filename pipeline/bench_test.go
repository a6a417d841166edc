package pipeline_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cspine/cspine/phantom"
	"github.com/cspine/cspine/pipeline"
	"github.com/cspine/cspine/pipeline/decode"
	"github.com/cspine/cspine/pipeline/pipelinetest"
	"github.com/cspine/cspine/pipeline/stages"
)

// Benchmarks on a 2500×2048 (rows × columns) 16-bit phantom radiograph:
//
//	go test ./pipeline -run '^$' -bench . -benchtime 20x
//
// Each reports ms/op and, where useful, the median and the per-stage times.

var (
	benchOnce sync.Once
	benchFile string
	benchErr  error
)

func benchImage(b *testing.B) string {
	b.Helper()
	benchOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cspine-bench-")
		if err != nil {
			benchErr = err
			return
		}
		benchDir = dir // removed by TestMain
		benchErr = phantom.Generate(context.Background(), phantom.Options{Count: 1, Seed: 42, OutDir: dir, Rows: 2500, Cols: 2048, Obscuration: phantom.ObscurePartial})
		benchFile = filepath.Join(dir, "img00000.dcm")
	})
	if benchErr != nil {
		b.Fatalf("generate benchmark image: %v", benchErr)
	}
	return benchFile
}

func benchAnalyzer(b *testing.B) *pipeline.Analyzer {
	a, err := pipeline.New(pipelinetest.Models(b), pipeline.Config{})
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// medianMS reports the median of the durations as "median-ms".
func medianMS(b *testing.B, d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	if len(d) > 0 {
		b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "median-ms")
	}
}

func BenchmarkDecode(b *testing.B) {
	path := benchImage(b)
	b.ResetTimer()
	for range b.N {
		if _, err := decode.File(path); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWindow(b *testing.B) {
	im, err := decode.File(benchImage(b))
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, len(im.Modality))
	b.ResetTimer()
	for range b.N {
		im.DisplayTo(dst)
	}
}

// BenchmarkStages runs the models alone on the windowed image and reports
// the time of each stage (global, c7_locator, refine) as measured inside.
func BenchmarkStages(b *testing.B) {
	im, err := decode.File(benchImage(b))
	if err != nil {
		b.Fatal(err)
	}
	sp, _ := pipeline.SpacingFrom(im.Meta.PixelSpacing, im.Meta.ImagerPixelSpacing, im.Meta.ERMF)
	in := stages.Input{Rows: im.Rows, Cols: im.Cols, Pix: im.Display(), SpacingMM: [2]float64{sp.RowMM, sp.ColMM}}
	m := pipelinetest.Models(b)
	for _, mode := range []struct {
		name         string
		hierarchical bool
	}{{"single_stage", false}, {"hierarchical", true}} {
		b.Run(mode.name, func(b *testing.B) {
			sums := map[string]float64{}
			for range b.N {
				out, err := m.Run(context.Background(), in, mode.hierarchical)
				if err != nil {
					b.Fatal(err)
				}
				for k, v := range out.TimingsMS {
					sums[k] += v
				}
			}
			for k, v := range sums {
				b.ReportMetric(v/float64(b.N), k+"-ms")
			}
		})
	}
}

// BenchmarkAnalyze is the whole analysis, decode → parameters, from the file.
func BenchmarkAnalyze(b *testing.B) {
	path := benchImage(b)
	a := benchAnalyzer(b)
	for _, mode := range []struct {
		name string
		opts pipeline.Options
	}{{"hierarchical", pipeline.Options{}}, {"single_stage", pipeline.Options{SingleStage: true}}} {
		b.Run(mode.name, func(b *testing.B) {
			a.AnalyzeFile(context.Background(), path, mode.opts) // warm-up
			d := make([]time.Duration, 0, b.N)
			sums := map[string]float64{}
			b.ResetTimer()
			for range b.N {
				t := time.Now()
				r := a.AnalyzeFile(context.Background(), path, mode.opts)
				d = append(d, time.Since(t))
				if r.Status != "ok" {
					b.Fatalf("%s: %s", r.Status, r.Error)
				}
				for k, v := range r.TimingsMS {
					sums[k] += v
				}
			}
			medianMS(b, d)
			for _, k := range []string{"decode", "window", "global", "c7_locator", "refine", "measure"} {
				if v, ok := sums[k]; ok {
					b.ReportMetric(v/float64(b.N), k+"-ms")
				}
			}
		})
	}
}

// BenchmarkAnalyzeParallel4 runs four analyses at once and reports the
// process's peak resident memory during them (VmHWM, reset before each
// round through /proc/self/clear_refs): the whole process, models and ONNX
// Runtime included.
func BenchmarkAnalyzeParallel4(b *testing.B) {
	path := benchImage(b)
	a := benchAnalyzer(b)
	a.AnalyzeFile(context.Background(), path, pipeline.Options{})
	var peak float64
	b.ResetTimer()
	for range b.N {
		// Return the garbage of earlier work (the phantom generation, the
		// previous round) to the OS, so the peak is that of this round.
		debug.FreeOSMemory()
		if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
			b.Fatalf("reset peak RSS: %v", err)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if r := a.AnalyzeFile(context.Background(), path, pipeline.Options{}); r.Status != "ok" {
					b.Errorf("%s: %s", r.Status, r.Error)
				}
			}()
		}
		wg.Wait()
		if p := vmHWM(b); p > peak {
			peak = p
		}
	}
	b.ReportMetric(peak, "peak-RSS-MB")
}

// vmHWM returns the peak resident set size in MB from /proc/self/status.
func vmHWM(b *testing.B) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb / 1024
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}
