// Package param describes the clinical parameters of the measurement
// contract (shared/spec/measurements.md) for the report writers: their
// readable names, units, and the landmarks each one is defined from, so that
// the SR can reference exactly the points used and the overlay can label the
// values it shows. It holds no measurement math (that is pipeline/geometry);
// the values come from result.Parameters.
package param

import (
	"fmt"
	"strings"

	"github.com/cspine/cspine/pipeline/result"
)

// Kind is the geometric kind of a parameter.
type Kind int

const (
	// Slope is one endplate's angle to the image horizontal: one line.
	Slope Kind = iota
	// Angle is the angle between two endplate lines (Cobb, segmental).
	Angle
	// Distance is the horizontal C2–C7 SVA between two points.
	Distance
)

// Param is one reported parameter.
type Param struct {
	// Key is the JSON key; segmental angles are "segmental_deg/C2-C3".
	Key string
	// Label is the readable name used in reports and overlays.
	Label string
	// Unit is the UCUM unit code: "deg" or "mm".
	Unit string
	Kind Kind
	// Lines are the landmark pairs, each (anterior, posterior) corner of an
	// endplate, in the order the parameter uses them (for an Angle, the
	// upper endplate first). For a Distance, Lines[0] is
	// (C2_centroid, C7_sup_post).
	Lines [][2]string
	// Segment is the segment name ("C2-C3") of a segmental angle, else "".
	Segment string
}

// All returns the parameters in report order: C2–C7 Cobb, the slopes, SVA,
// then the segmental angles from cranial to caudal.
func All() []Param {
	ps := []Param{
		{Key: "c2c7_cobb_deg", Label: "C2-C7 Cobb angle", Unit: "deg", Kind: Angle,
			Lines: [][2]string{{"C2_inf_ant", "C2_inf_post"}, {"C7_inf_ant", "C7_inf_post"}}},
		{Key: "c2_slope_deg", Label: "C2 slope", Unit: "deg", Kind: Slope,
			Lines: [][2]string{{"C2_inf_ant", "C2_inf_post"}}},
		{Key: "c7_slope_deg", Label: "C7 slope", Unit: "deg", Kind: Slope,
			Lines: [][2]string{{"C7_inf_ant", "C7_inf_post"}}},
		{Key: "c7_sup_slope_deg", Label: "C7 superior slope", Unit: "deg", Kind: Slope,
			Lines: [][2]string{{"C7_sup_ant", "C7_sup_post"}}},
		{Key: "c2c7_sva_mm", Label: "C2-C7 SVA", Unit: "mm", Kind: Distance,
			Lines: [][2]string{{"C2_centroid", "C7_sup_post"}}},
	}
	for _, seg := range result.SegmentNames {
		var a, b int
		if _, err := fmt.Sscanf(seg, "C%d-C%d", &a, &b); err != nil {
			panic("param: bad segment name " + seg)
		}
		ps = append(ps, Param{
			Key: "segmental_deg/" + seg, Label: "Segmental angle " + seg, Unit: "deg", Kind: Angle,
			Lines: [][2]string{
				{fmt.Sprintf("C%d_inf_ant", a), fmt.Sprintf("C%d_inf_post", a)},
				{fmt.Sprintf("C%d_inf_ant", b), fmt.Sprintf("C%d_inf_post", b)},
			},
			Segment: seg,
		})
	}
	return ps
}

// Value returns the parameter's value in p. ok is false when the value is
// absent: SVA without pixel spacing, or a segment missing from the map.
func (pp Param) Value(p *result.Parameters) (v float64, ok bool) {
	if p == nil {
		return 0, false
	}
	switch {
	case pp.Key == "c2c7_cobb_deg":
		return p.C2C7CobbDeg, true
	case pp.Key == "c2_slope_deg":
		return p.C2SlopeDeg, true
	case pp.Key == "c7_slope_deg":
		return p.C7SlopeDeg, true
	case pp.Key == "c7_sup_slope_deg":
		return p.C7SupSlopeDeg, true
	case pp.Key == "c2c7_sva_mm":
		if p.C2C7SVAmm == nil {
			return 0, false
		}
		return *p.C2C7SVAmm, true
	case strings.HasPrefix(pp.Key, "segmental_deg/"):
		v, ok := p.SegmentalDeg[pp.Segment]
		return v, ok
	}
	return 0, false
}

// Landmarks returns the landmark names the parameter is defined from.
func (pp Param) Landmarks() []string {
	var out []string
	for _, l := range pp.Lines {
		out = append(out, l[0], l[1])
	}
	return out
}

// Index maps landmark names to landmarks of a result.
func Index(lms []result.Landmark) map[string]result.Landmark {
	m := make(map[string]result.Landmark, len(lms))
	for _, l := range lms {
		m[l.Name] = l
	}
	return m
}

// HasLandmarks reports whether every landmark the parameter uses is in idx.
func (pp Param) HasLandmarks(idx map[string]result.Landmark) bool {
	for _, n := range pp.Landmarks() {
		if _, ok := idx[n]; !ok {
			return false
		}
	}
	return true
}

// Format formats a value with its unit for display: one decimal, the degree
// sign for angles.
func (pp Param) Format(v float64) string {
	if pp.Unit == "deg" {
		return fmt.Sprintf("%.1f°", v)
	}
	return fmt.Sprintf("%.1f mm", v)
}
