package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/suyashkumar/dicom"

	"github.com/cspine/cspine/pipeline/decode"
	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/report"
	"github.com/cspine/cspine/report/dicomio"
)

// analyzeDevice identifies `cspine analyze` as the device observer of the
// reports it writes: a UID derived from the host name (stable per host), or
// $CSPINE_DEVICE_UID.
func analyzeDevice() dicomio.Device {
	host, _ := os.Hostname()
	uid := os.Getenv("CSPINE_DEVICE_UID")
	if uid == "" {
		uid = dicomio.UID("cspine", "device", host)
	}
	version := "devel"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		version = bi.Main.Version
	}
	name := strings.ToUpper(host)
	if name == "" {
		name = "CSPINE"
	}
	return dicomio.Device{Manufacturer: "cspine project", ModelName: "cspine", Name: dicomio.Shorten(name, 16), UID: uid, SoftwareVersion: version}
}

// writeReports writes the DICOM SR (TID 1500) and the Secondary Capture
// overlay of a measured file into dir as <SOP Instance UID>.sr.dcm and
// .sc.dcm. The source is read again: the pipeline keeps no copy of it.
func writeReports(dir, file string, r result.Result, at time.Time) error {
	ds, err := dicom.ParseFile(file, nil, dicom.SkipPixelData())
	if err != nil {
		return fmt.Errorf("read source header: %w", err)
	}
	im, err := decode.File(file)
	if err != nil {
		return err
	}
	objs, err := report.Build(ds, r, im.Display(), im.Rows, im.Cols, report.Options{Device: analyzeDevice(), ContentTime: at})
	if err != nil {
		return err
	}
	base := r.SOPInstanceUID
	if base == "" {
		base = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	}
	_, _, err = report.WriteFiles(dir, base, objs)
	return err
}
