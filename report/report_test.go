package report_test

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/cspine/cspine/report"
	"github.com/cspine/cspine/report/dicomio"
	"github.com/cspine/cspine/report/reporttest"
)

func TestBuildAndWriteFiles(t *testing.T) {
	c := reporttest.NewCase(t, reporttest.CaseOptions{Seed: 100, Rows: 300, Cols: 240})
	d := reporttest.Device
	o := report.Options{Device: dicomio.Device{Manufacturer: d.Manufacturer, ModelName: d.ModelName, Name: d.Name,
		UID: d.UID, SoftwareVersion: d.SoftwareVersion}, ContentTime: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)}
	objs, err := report.Build(c.Source, c.Result, c.Display, c.Rows, c.Cols, o)
	if err != nil {
		t.Fatal(err)
	}
	srPath, scPath, err := report.WriteFiles(t.TempDir(), "in", objs)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		path string
		want []byte
		sr   bool
	}{{srPath, objs.SR, true}, {scPath, objs.SC, false}} {
		b, err := os.ReadFile(p.path)
		if err != nil || !bytes.Equal(b, p.want) {
			t.Fatalf("%s: %v", p.path, err)
		}
		reporttest.Validate(t, p.path, p.sr)
	}
	if objs.SRInstanceUID == objs.SCInstanceUID || objs.SRSeriesUID == objs.SCSeriesUID {
		t.Error("SR and SC share UIDs")
	}
	if _, err := report.Build(c.Source, c.Result, c.Display[:10], c.Rows, c.Cols, o); err == nil {
		t.Error("bad display accepted")
	}
}
