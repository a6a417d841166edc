package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/cspine/cspine/phantom"
)

func init() {
	register(command{
		name:    "phantom",
		summary: "generate synthetic lateral cervical radiographs (DICOM) with exact ground truth",
		usage: `Usage: cspine phantom --count N --seed S --out DIR [--obscuration none|partial|complete|mixed] [--negatives F] [--size COLSxROWS] [--workers N]

Writes N DICOM files (CR or DX For Presentation, explicit or implicit VR little
endian, MONOCHROME1/2, 10–16 bits stored, varied spacing and VOI attributes) and
DIR/truth.jsonl with one ground-truth line per file: the 23 landmarks in the
written pixel grid, the clinical parameters, the C7 obscuration grade computed
from the geometry, and for negatives (AP views, chest films, images too small
to analyse) the reason they must not be measured. The same seed gives
byte-identical output. Phantoms are synthetic: not for clinical use.`,
		run: runPhantom,
	})
}

func runPhantom(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := commands["phantom"]
	fs := newFlagSet(c, stderr)
	var o phantom.Options
	var seed uint64
	var size string
	fs.IntVar(&o.Count, "count", 10, "number of images")
	fs.Uint64Var(&seed, "seed", 1, "random seed (same seed, same files)")
	fs.StringVar(&o.OutDir, "out", "", "output directory (required)")
	fs.StringVar(&o.Obscuration, "obscuration", phantom.ObscureMixed, "C7 obscuration by the shoulders: none, partial, complete or mixed")
	fs.Float64Var(&o.Negatives, "negatives", 0, "fraction of images that must not be measured (AP, chest, too small)")
	fs.StringVar(&size, "size", "", "fixed image size COLSxROWS (default: each image 1000–3000 px a side)")
	fs.IntVar(&o.Workers, "workers", 0, "parallel workers (default: number of CPUs)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %v", errUsage, fs.Args())
	}
	o.Seed = seed
	if size != "" {
		if _, err := fmt.Sscanf(size, "%dx%d", &o.Cols, &o.Rows); err != nil {
			return fmt.Errorf("%w: --size %q: want COLSxROWS, e.g. 2000x2500", errUsage, size)
		}
	}
	if o.OutDir == "" {
		return fmt.Errorf("%w: --out is required", errUsage)
	}
	start := time.Now()
	if err := phantom.Generate(ctx, o); err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(stderr, "phantom: wrote %d images to %s in %s (%.2f images/s)\n", o.Count, o.OutDir, el.Round(time.Millisecond), float64(o.Count)/el.Seconds())
	return nil
}
