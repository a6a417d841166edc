package eval

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

func f2(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.2f", v)
}

func f3(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.3f", v)
}

func pct(a, b int) string {
	if b == 0 {
		return fmt.Sprintf("%d/%d", a, b)
	}
	return fmt.Sprintf("%d/%d (%.1f%%)", a, b, 100*float64(a)/float64(b))
}

func loa(p ParamStats) string {
	if math.IsNaN(p.LoALow) {
		return "–"
	}
	return fmt.Sprintf("%.2f … %.2f", p.LoALow, p.LoAHigh)
}

// WriteMarkdown writes the report of one mode, or of two modes side by side
// (hierarchical first), as Markdown tables: one per obscuration grade.
func WriteMarkdown(w io.Writer, reps ...Report) error {
	if len(reps) == 0 || len(reps) > 2 {
		return fmt.Errorf("write report: %d reports, want 1 or 2", len(reps))
	}
	var b strings.Builder
	r0 := reps[0]
	modes := make([]string, len(reps))
	for i, r := range reps {
		modes[i] = r.Mode
	}
	fmt.Fprintf(&b, "Evaluation of %s: %d images (%d negatives); model %s; mode %s; large error: any angle off by more than %g°\n\n",
		r0.Data, r0.Images, r0.Negatives, r0.Model, strings.Join(modes, " vs "), r0.LargeErrorDeg)
	for gi, grade := range Grades {
		g0 := r0.Groups[gi]
		fmt.Fprintf(&b, "### C7 obscuration: %s (%d measurable)\n\n", grade, g0.Measured+g0.Rejected)
		if len(reps) == 1 {
			b.WriteString("| parameter | n | MAE | median AE | ICC(2,1) | bias | 95% limits of agreement |\n")
			b.WriteString("|---|---:|---:|---:|---:|---:|---|\n")
			for _, p := range g0.Params {
				fmt.Fprintf(&b, "| %s (%s) | %d | %s | %s | %s | %s | %s |\n", p.Param.Label, p.Param.Unit, p.N,
					f2(p.MAE), f2(p.MedAE), f3(p.ICC), f2(p.Bias), loa(p))
			}
		} else {
			g1 := reps[1].Groups[gi]
			fmt.Fprintf(&b, "| parameter | MAE %[1]s | MAE %[2]s | MAE %[1]s vs %[2]s | median AE %[1]s | median AE %[2]s | ICC %[1]s | ICC %[2]s | bias %[1]s | bias %[2]s | LoA %[1]s | LoA %[2]s |\n", short(reps[0].Mode), short(reps[1].Mode))
			b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
			for j, p := range g0.Params {
				q := g1.Params[j]
				change := "–"
				if q.MAE > 0 && !math.IsNaN(p.MAE) {
					change = fmt.Sprintf("%+.0f%%", 100*(p.MAE-q.MAE)/q.MAE)
				}
				fmt.Fprintf(&b, "| %s (%s) | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", p.Param.Label, p.Param.Unit,
					f2(p.MAE), f2(q.MAE), change, f2(p.MedAE), f2(q.MedAE), f3(p.ICC), f3(q.ICC), f2(p.Bias), f2(q.Bias), loa(p), loa(q))
			}
		}
		b.WriteString("\n")
		for _, r := range reps {
			g := r.Groups[gi]
			prefix := ""
			if len(reps) > 1 {
				prefix = short(r.Mode) + ": "
			}
			noSp := ""
			if g.LandmarkNoSpacing > 0 {
				noSp = fmt.Sprintf(" (%d images without pixel spacing not included)", g.LandmarkNoSpacing)
			}
			fmt.Fprintf(&b, "- %slandmark error mean %s mm, 95th percentile %s mm%s; flagged for review %s; large errors %d, caught by the flag %s; rejected %d\n",
				prefix, f2(g.LandmarkMean), f2(g.LandmarkP95), noSp, pct(g.Flagged, g.Measured),
				g.LargeErrors, pct(g.LargeCaught, g.LargeErrors), g.Rejected)
		}
		b.WriteString("\n")
	}
	for _, r := range reps {
		prefix := ""
		if len(reps) > 1 {
			prefix = short(r.Mode) + ": "
		}
		if r.Negatives > 0 {
			fmt.Fprintf(&b, "- %snegative images (must not be measured): %d; rejected %d, flagged %d, passed unflagged %d\n",
				prefix, r.Negatives, r.NegRejected, r.NegFlagged, r.NegMissed)
		}
		keys := make([]string, 0, len(r.ReasonCounts))
		for k := range r.ReasonCounts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s %d", k, r.ReasonCounts[k])
		}
		fmt.Fprintf(&b, "- %sreview reasons: %s\n", prefix, strings.Join(parts, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func short(mode string) string {
	switch mode {
	case "hierarchical":
		return "hier."
	case "single_stage":
		return "single"
	}
	return mode
}
