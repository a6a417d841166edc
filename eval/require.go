package eval

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Requirement is one acceptance criterion on an evaluation, written
//
//	GRADE/PARAM.STAT<=VALUE   e.g. all/c2c7_cobb_deg.mae<=2.5, all/c7_slope_deg.icc>=0.95
//	GRADE/STAT<=VALUE         e.g. all/flag_rate<=0.3, all/catch>=0.95, all/landmark_p95<=4
//
// GRADE is none, partial, complete or all. Parameter statistics: mae,
// medae, icc, bias, abs_bias, and mae_vs_single (hierarchical MAE divided
// by single-stage MAE; needs both modes). Group statistics: flag_rate,
// catch, landmark_mean, landmark_p95, rejected. A statistic that is NaN
// (no data) fails.
type Requirement struct {
	Grade, Param, Stat string
	Op                 string // "<=" or ">="
	Value              float64
	text               string
}

func (r Requirement) String() string { return r.text }

var paramStats = []string{"mae", "medae", "icc", "bias", "abs_bias", "mae_vs_single"}
var groupStats = []string{"flag_rate", "catch", "landmark_mean", "landmark_p95", "rejected"}

// ParseRequirement parses one requirement.
func ParseRequirement(s string) (Requirement, error) {
	r := Requirement{text: strings.TrimSpace(s)}
	var lhs, rhs string
	switch {
	case strings.Contains(s, "<="):
		r.Op = "<="
	case strings.Contains(s, ">="):
		r.Op = ">="
	default:
		return r, fmt.Errorf("requirement %q: want <= or >=", s)
	}
	lhs, rhs, _ = strings.Cut(r.text, r.Op)
	v, err := strconv.ParseFloat(strings.TrimSpace(rhs), 64)
	if err != nil {
		return r, fmt.Errorf("requirement %q: %w", s, err)
	}
	r.Value = v
	grade, what, ok := strings.Cut(strings.TrimSpace(lhs), "/")
	if !ok || !slices.Contains(Grades, grade) {
		return r, fmt.Errorf("requirement %q: want GRADE/… with GRADE one of %v", s, Grades)
	}
	r.Grade = grade
	if slices.Contains(groupStats, what) {
		r.Stat = what
		return r, nil
	}
	i := strings.LastIndex(what, ".")
	if i < 0 {
		return r, fmt.Errorf("requirement %q: unknown statistic %q (group: %v)", s, what, groupStats)
	}
	r.Param, r.Stat = what[:i], what[i+1:]
	if !slices.Contains(paramStats, r.Stat) {
		return r, fmt.Errorf("requirement %q: unknown statistic %q (parameter: %v)", s, r.Stat, paramStats)
	}
	if !slices.ContainsFunc(Params, func(p Param) bool { return p.Key == r.Param }) {
		return r, fmt.Errorf("requirement %q: unknown parameter %q", s, r.Param)
	}
	return r, nil
}

// Check evaluates the requirements on rep (the hierarchical or only report)
// and, for mae_vs_single, single (may be nil). It returns one line per
// requirement, and whether all passed.
func Check(reqs []Requirement, rep Report, single *Report) ([]string, bool) {
	var lines []string
	allOK := true
	for _, r := range reqs {
		v, err := r.value(rep, single)
		ok := err == nil && !math.IsNaN(v) && ((r.Op == "<=" && v <= r.Value) || (r.Op == ">=" && v >= r.Value))
		status := "ok  "
		if !ok {
			status, allOK = "FAIL", false
		}
		switch {
		case err != nil:
			lines = append(lines, fmt.Sprintf("%s %s: %v", status, r, err))
		default:
			lines = append(lines, fmt.Sprintf("%s %s (measured %.4g)", status, r, v))
		}
	}
	return lines, allOK
}

func (r Requirement) value(rep Report, single *Report) (float64, error) {
	gi := slices.Index(Grades, r.Grade)
	g := rep.Groups[gi]
	switch r.Stat {
	case "flag_rate":
		return g.FlagRate(), nil
	case "catch":
		if g.LargeErrors == 0 {
			return 1, nil
		}
		return g.Catch(), nil
	case "landmark_mean":
		return g.LandmarkMean, nil
	case "landmark_p95":
		return g.LandmarkP95, nil
	case "rejected":
		return float64(g.Rejected), nil
	}
	pi := slices.IndexFunc(Params, func(p Param) bool { return p.Key == r.Param })
	p := g.Params[pi]
	switch r.Stat {
	case "mae":
		return p.MAE, nil
	case "medae":
		return p.MedAE, nil
	case "icc":
		return p.ICC, nil
	case "bias":
		return p.Bias, nil
	case "abs_bias":
		return math.Abs(p.Bias), nil
	case "mae_vs_single":
		if single == nil {
			return math.NaN(), fmt.Errorf("needs --compare")
		}
		s := single.Groups[gi].Params[pi].MAE
		if !(s > 0) {
			return math.NaN(), fmt.Errorf("single-stage MAE is %v", s)
		}
		return p.MAE / s, nil
	}
	return math.NaN(), fmt.Errorf("unknown statistic %q", r.Stat)
}
