package pipeline_test

import (
	"math"
	"testing"

	"github.com/cspine/cspine/eval"
	"github.com/cspine/cspine/pipeline/geometry"
	"github.com/cspine/cspine/pipeline/result"
)

// truthLandmarks returns a truth's landmarks in channel order.
func truthLandmarks(t *testing.T, tr result.Truth) [geometry.NumLandmarks]geometry.Point {
	t.Helper()
	var lm [geometry.NumLandmarks]geometry.Point
	if len(tr.Landmarks) != geometry.NumLandmarks {
		t.Fatalf("%s: %d landmarks", tr.File, len(tr.Landmarks))
	}
	for i, l := range tr.Landmarks {
		if l.Name != result.LandmarkNames[i] {
			t.Fatalf("%s: landmark %d is %s", tr.File, i, l.Name)
		}
		lm[i] = geometry.Point{X: l.X, Y: l.Y}
	}
	return lm
}

// TestGeometryAgreesWithPhantomTruth measures the phantom's true landmarks
// with package geometry and compares with the parameters the generator
// computed from its own geometry: two independent implementations of the
// spec's formulas must agree, and true anatomy must pass the plausibility
// checks.
func TestGeometryAgreesWithPhantomTruth(t *testing.T) {
	t.Parallel()
	dir := truthDir(t)
	truth, err := eval.ReadTruth(dir)
	if err != nil {
		t.Fatal(err)
	}
	measured := 0
	for _, tr := range truth {
		if !tr.Measurable {
			continue
		}
		measured++
		lm := truthLandmarks(t, tr)
		f, agr := geometry.DetermineFacing(&lm, nil)
		if f.String() != tr.Facing || agr != 1 {
			t.Errorf("%s: facing %s (agreement %v), truth %s", tr.File, f, agr, tr.Facing)
		}
		var sp geometry.Spacing
		if len(tr.PixelSpacingMM) == 2 {
			sp = geometry.Spacing{RowMM: tr.PixelSpacingMM[0], ColMM: tr.PixelSpacingMM[1]}
		}
		p := geometry.Measure(&lm, f, sp)
		want := tr.Parameters
		for _, c := range []struct {
			name      string
			got, want float64
		}{
			{"cobb", p.CobbDeg, want.C2C7CobbDeg}, {"c2", p.C2SlopeDeg, want.C2SlopeDeg},
			{"c7", p.C7SlopeDeg, want.C7SlopeDeg}, {"c7sup", p.C7SupSlopeDeg, want.C7SupSlopeDeg},
		} {
			if math.Abs(c.got-c.want) > 0.01 {
				t.Errorf("%s %s: %.4f, truth %.4f", tr.File, c.name, c.got, c.want)
			}
		}
		for i, s := range result.SegmentNames {
			if math.Abs(p.SegmentalDeg[i]-want.SegmentalDeg[s]) > 0.01 {
				t.Errorf("%s %s: %.4f, truth %.4f", tr.File, s, p.SegmentalDeg[i], want.SegmentalDeg[s])
			}
		}
		if (p.SVAmm == nil) != (want.C2C7SVAmm == nil) || (p.SVAmm != nil && math.Abs(*p.SVAmm-*want.C2C7SVAmm) > 0.01) {
			t.Errorf("%s SVA %v, truth %v", tr.File, p.SVAmm, want.C2C7SVAmm)
		}
		if probs := geometry.Check(&lm, f, agr, p, sp, geometry.DefaultLimits()); len(probs) > 0 {
			t.Errorf("%s: true anatomy judged implausible: %q", tr.File, probs)
		}
	}
	if measured == 0 {
		t.Fatal("no measurable phantom")
	}
}
