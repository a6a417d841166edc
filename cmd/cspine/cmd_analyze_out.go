package main

import (
	"errors"

	"github.com/cspine/cspine/pipeline/result"
)

// TODO(report): write the DICOM SR (TID 1500) and the Secondary Capture
// overlay for each measured file once package report lands; until then
// --out fails clearly instead of silently writing nothing.
var errNoReports = errors.New("--out: writing reports is not available in this build yet (package report has not landed)")

func writeReportsAvailable() error { return errNoReports }

func writeReports(dir, file string, r result.Result) error { return errNoReports }
