// Package phantom generates synthetic lateral cervical-spine radiographs with
// exact ground truth: anatomy sampled from realistic ranges (C1–T2 with
// posterior elements, skull base, mandible, airway, soft tissue and the
// shoulders that hide C7), projected with Beer–Lambert attenuation, anode
// heel effect, scatter, detector blur, quantum and electronic noise,
// collimation and a burned-in side marker, and written as DICOM CR or DX
// (For Presentation) objects with realistic header variants. The ground truth
// (landmarks, parameters, C7 obscuration grade) comes from the generator's own
// geometry, never from the pipeline's measurement code.
package phantom

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/cspine/cspine/pipeline/result"
)

// Obscuration modes for Options.Obscuration.
const (
	ObscureNone     = "none"
	ObscurePartial  = "partial"
	ObscureComplete = "complete"
	ObscureMixed    = "mixed"
)

// Negative kinds: images that must not be measured; their truth says why.
const (
	NegativeAP       = "ap_view"
	NegativeChest    = "chest_radiograph"
	NegativeTooSmall = "too_small"
)

// Options controls a phantom run.
type Options struct {
	Count       int
	Seed        uint64
	OutDir      string
	Obscuration string  // none | partial | complete | mixed (default mixed)
	Negatives   float64 // fraction of images that must not be measured
	// Rows and Cols, when both > 0, fix the image size (for benchmarks);
	// otherwise each image gets its own size, 1000–3000 pixels a side.
	Rows, Cols int
	Workers    int // parallel workers (default GOMAXPROCS)
}

func (o *Options) validate() error {
	if o.Count < 1 {
		return errors.New("count must be at least 1")
	}
	if o.OutDir == "" {
		return errors.New("an output directory is required")
	}
	switch o.Obscuration {
	case "":
		o.Obscuration = ObscureMixed
	case ObscureNone, ObscurePartial, ObscureComplete, ObscureMixed:
	default:
		return fmt.Errorf("obscuration %q: want none, partial, complete or mixed", o.Obscuration)
	}
	if o.Negatives < 0 || o.Negatives > 1 {
		return fmt.Errorf("negatives %v: want a fraction between 0 and 1", o.Negatives)
	}
	if (o.Rows > 0) != (o.Cols > 0) || o.Rows < 0 || o.Cols < 0 {
		return errors.New("rows and cols must be given together")
	}
	if o.Rows > 0 && (o.Rows < 64 || o.Cols < 64 || o.Rows > 4096 || o.Cols > 4096) {
		return errors.New("image size must be between 64 and 4096 pixels a side")
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	return nil
}

// planned is one image of the run: what it is and which study it belongs to.
type planned struct {
	index    int
	negative string // "" for a measurable lateral
	grade    string // target C7 grade for laterals
	study    int
	series   int // series number within the study
}

// plan decides every image's kind and study from the seed alone.
func plan(o Options) []planned {
	s := newSampler(o.Seed, -1, 1)
	out := make([]planned, o.Count)
	study, inStudy, studySize := 0, 0, 1+s.pick(0.55, 0.3, 0.15)
	for i := range out {
		if inStudy == studySize {
			study++
			inStudy = 0
			studySize = 1 + s.pick(0.55, 0.3, 0.15)
		}
		p := planned{index: i, study: study, series: inStudy + 1}
		inStudy++
		if s.uniform(0, 1) < o.Negatives {
			p.negative = []string{NegativeAP, NegativeChest, NegativeTooSmall}[s.pick(0.5, 0.3, 0.2)]
		} else {
			switch o.Obscuration {
			case ObscureMixed:
				// About 80% with C7 partly or fully hidden, as in the paper's
				// external cohort.
				p.grade = []string{ObscureNone, ObscurePartial, ObscureComplete}[s.pick(0.2, 0.45, 0.35)]
			default:
				p.grade = o.Obscuration
			}
		}
		out[i] = p
	}
	return out
}

// Generate writes o.Count DICOM files and truth.jsonl into o.OutDir. The same
// options give byte-identical output whatever the number of workers.
func Generate(ctx context.Context, o Options) error {
	if err := o.validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	items := plan(o)
	truths := make([]result.Truth, len(items))
	jobs := make(chan int)
	errc := make(chan error, o.Workers)
	var wg sync.WaitGroup
	for w := 0; w < o.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				t, err := makeImage(o, items[i])
				if err != nil {
					errc <- fmt.Errorf("image %d: %w", i, err)
					return
				}
				truths[i] = t
			}
		}()
	}
	var err error
feed:
	for i := range items {
		select {
		case jobs <- i:
		case err = <-errc:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	if err != nil {
		return err
	}
	return writeTruth(filepath.Join(o.OutDir, "truth.jsonl"), truths)
}

func writeTruth(path string, truths []result.Truth) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create truth: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for i := range truths {
		if err := enc.Encode(&truths[i]); err != nil {
			f.Close()
			return fmt.Errorf("write truth: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fileName(i int) string { return fmt.Sprintf("img%05d.dcm", i) }

func makeImage(o Options, p planned) (result.Truth, error) {
	switch p.negative {
	case "":
		return makeLateral(o, p)
	default:
		return makeNegative(o, p)
	}
}
