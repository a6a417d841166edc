package eval

import (
	"fmt"
	"io"
	"strings"

	"github.com/cspine/cspine/pipeline"
)

// The review trade-off.
//
// The review flag trades reading time for safety: the more results a site
// sends to QA, the more of the large errors it catches. Calibrate picks one
// point of that trade-off on a validation set (--target-recall); Frontier
// shows the whole curve on any set, so that a QA lead can see what a
// stricter or looser target costs before choosing it, and so that a test
// set shows how far a calibrated point lies from the best the risk model
// could do there.

// OperatingPoint is the review flag on a set with Thresholds.
type OperatingPoint struct {
	Thresholds  pipeline.Thresholds
	Measured    int // measured results
	Flagged     int // of those, flagged for review (any reason)
	LargeErrors int // measured results with an angle off by more than the limit
	Caught      int // of those, flagged
}

// FlagRate is Flagged / Measured (NaN without measured results).
func (p OperatingPoint) FlagRate() float64 { return ratio(p.Flagged, p.Measured) }

// Catch is Caught / LargeErrors (1 when there are none: nothing is missed).
func (p OperatingPoint) Catch() float64 {
	if p.LargeErrors == 0 {
		return 1
	}
	return ratio(p.Caught, p.LargeErrors)
}

// BestWithin returns the point that catches the most large errors while
// flagging at most maxRate of the results (the fewest flags among equals),
// and false when even the fewest flags exceed maxRate.
func BestWithin(points []OperatingPoint, maxRate float64) (OperatingPoint, bool) {
	var best OperatingPoint
	found := false
	for _, p := range points {
		if p.FlagRate() > maxRate {
			continue
		}
		if !found || p.Caught > best.Caught || (p.Caught == best.Caught && p.Flagged < best.Flagged) {
			best, found = p, true
		}
	}
	return best, found
}

// LeastFor returns the point that flags the fewest results while catching at
// least minCatch of the large errors, and false when none does.
func LeastFor(points []OperatingPoint, minCatch float64) (OperatingPoint, bool) {
	var best OperatingPoint
	found := false
	for _, p := range points {
		if p.Catch() < minCatch {
			continue
		}
		if !found || p.Flagged < best.Flagged {
			best, found = p, true
		}
	}
	return best, found
}

// TradeoffBudgets and TradeoffTargets are the rows WriteTradeoff prints:
// flag-rate budgets and catch targets.
var (
	TradeoffBudgets = []float64{0.2, 0.3, 0.4, 0.5}
	TradeoffTargets = []float64{0.8, 0.9, 0.95, 0.99}
)

// WriteTradeoff writes the trade-off as Markdown: the configured point
// (current), then from the frontier points (Frontier) the most caught
// within each of TradeoffBudgets and the fewest flags for each of
// TradeoffTargets. Those rows' thresholds are chosen on the set itself: on
// a test set they bound what any calibration could reach there.
func WriteTradeoff(w io.Writer, data string, points []OperatingPoint, current OperatingPoint) error {
	var b strings.Builder
	fmt.Fprintf(&b, "### Review trade-off on %s (%d measured, %d large errors)\n\n", data, current.Measured, current.LargeErrors)
	b.WriteString("Every row but the first has its tunable thresholds (those `--calibrate` chooses) chosen on this set\n")
	b.WriteString("itself: on a set the thresholds were not calibrated on, they bound what any calibration could reach there.\n\n")
	b.WriteString("| operating point | flagged | large errors caught | thresholds |\n|---|---:|---:|---|\n")
	row := func(label string, p OperatingPoint) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", label, pct(p.Flagged, p.Measured), pct(p.Caught, p.LargeErrors), describe(p.Thresholds))
	}
	row("configured", current)
	for _, r := range TradeoffBudgets {
		if p, ok := BestWithin(points, r); ok {
			row(fmt.Sprintf("most caught, flagging ≤ %.0f%%", 100*r), p)
		} else {
			fmt.Fprintf(&b, "| most caught, flagging ≤ %.0f%% | – | – | the untunable reasons alone flag more |\n", 100*r)
		}
	}
	for _, c := range TradeoffTargets {
		if p, ok := LeastFor(points, c); ok {
			row(fmt.Sprintf("fewest flags, catching ≥ %.0f%%", 100*c), p)
		}
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// describe names the tunable thresholds of th.
func describe(th pipeline.Thresholds) string {
	var parts []string
	if th.C7Risk != nil {
		parts = append(parts, "c7_risk.min_risk "+riskCut(th.C7Risk.MinRisk))
	} else {
		parts = append(parts, fmt.Sprintf("c7_min_confidence %.4f, c7_max_spread_deg %.3f", th.C7MinConfidence, th.C7MaxSpreadDeg))
	}
	parts = append(parts, fmt.Sprintf("c7_obscured_min_prob %.4f, c7_max_disagreement_mm %.3f", th.C7ObscuredMinProb, th.C7MaxDisagreementMM))
	return strings.Join(parts, ", ")
}

func riskCut(t float64) string {
	if t > 1 {
		return "never"
	}
	return fmt.Sprintf("%.6f", t)
}

// CurrentPoint is the operating point of the thresholds th themselves on
// samples (the risk threshold as configured): the "all" group of their
// report.
func CurrentPoint(samples []Sample, th pipeline.Thresholds, largeDeg float64) OperatingPoint {
	p := OperatingPoint{Thresholds: th}
	for _, g := range Summarize("", "", Reflag(samples, th), largeDeg).Groups {
		if g.Grade == "all" {
			p.Measured, p.Flagged, p.LargeErrors, p.Caught = g.Measured, g.Flagged, g.LargeErrors, g.LargeCaught
		}
	}
	return p
}
