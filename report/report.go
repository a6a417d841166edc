// Package report writes what cspine sends back to the PACS for one analysed
// image: the measurement report (sub-package sr, a TID 1500 Comprehensive
// SR) and the overlay (sub-package sc, a Secondary Capture). This package
// only bundles the two for callers such as `cspine analyze --out`; the
// shared DICOM writing rules live in report/dicomio.
package report

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/suyashkumar/dicom"

	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/report/dicomio"
	"github.com/cspine/cspine/report/sc"
	"github.com/cspine/cspine/report/sr"
)

// Options for both objects of a machine report (revision 0).
type Options struct {
	Device          dicomio.Device
	InstitutionName string
	// ContentTime is the analysis time; required (outputs are a function
	// of the inputs).
	ContentTime time.Time
}

// Objects are the Part-10 bytes of the two reports and their identity.
type Objects struct {
	SR, SC                   []byte
	SRInstanceUID            string
	SCInstanceUID            string
	SRSeriesUID, SCSeriesUID string
}

// Build makes the SR and the SC of an analysis of the source image. display
// is the windowed source image, rows*cols values in [0,1].
func Build(source dicom.Dataset, res result.Result, display []float32, rows, cols int, o Options) (Objects, error) {
	src, err := dicomio.SourceFromDataset(source)
	if err != nil {
		return Objects{}, fmt.Errorf("report: %w", err)
	}
	srDS, err := sr.Build(src, res, sr.Options{Device: o.Device, InstitutionName: o.InstitutionName, ContentTime: o.ContentTime})
	if err != nil {
		return Objects{}, fmt.Errorf("report: %w", err)
	}
	scDS, err := sc.Build(src, res, display, rows, cols, sc.Options{Device: o.Device, InstitutionName: o.InstitutionName, ContentTime: o.ContentTime})
	if err != nil {
		return Objects{}, fmt.Errorf("report: %w", err)
	}
	var out Objects
	if out.SR, err = dicomio.Encode(srDS); err != nil {
		return Objects{}, fmt.Errorf("report: %w", err)
	}
	if out.SC, err = dicomio.Encode(scDS); err != nil {
		return Objects{}, fmt.Errorf("report: %w", err)
	}
	out.SRInstanceUID, out.SRSeriesUID = sr.InstanceUID(src, res.Model.Version, 0), sr.SeriesInstanceUID(src)
	out.SCInstanceUID, out.SCSeriesUID = sc.InstanceUID(src, res.Model.Version, 0), sc.SeriesInstanceUID(src)
	return out, nil
}

// WriteFiles writes the objects as DIR/BASE.sr.dcm and DIR/BASE.sc.dcm
// (each written to a temporary name first, then renamed) and returns the
// paths.
func WriteFiles(dir, base string, objs Objects) (srPath, scPath string, err error) {
	srPath = filepath.Join(dir, base+".sr.dcm")
	scPath = filepath.Join(dir, base+".sc.dcm")
	for _, f := range []struct {
		path string
		b    []byte
	}{{srPath, objs.SR}, {scPath, objs.SC}} {
		tmp := f.path + ".tmp"
		if err := os.WriteFile(tmp, f.b, 0o644); err != nil {
			return "", "", fmt.Errorf("report: write %s: %w", f.path, err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			return "", "", fmt.Errorf("report: write %s: %w", f.path, err)
		}
	}
	return srPath, scPath, nil
}
