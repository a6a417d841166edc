package pipeline

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/cspine/cspine/pipeline/geometry"
	"github.com/cspine/cspine/pipeline/pipelinetest"
	"github.com/cspine/cspine/pipeline/stages"
)

func TestSetEndplateSlope(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		facing       geometry.Facing
		a, p         geometry.Point // labelled anterior, posterior
		target       float64
		swapIndices  bool // the labels are swapped (anterior stored in the posterior slot)
		wantAntIsLow bool
	}{
		{"facing left, tilt down", geometry.FacingLeft, geometry.Point{X: 100, Y: 210}, geometry.Point{X: 150, Y: 200}, 25, false, true},
		{"facing left, to negative", geometry.FacingLeft, geometry.Point{X: 100, Y: 210}, geometry.Point{X: 150, Y: 200}, -8, false, false},
		{"facing right", geometry.FacingRight, geometry.Point{X: 150, Y: 210}, geometry.Point{X: 100, Y: 200}, 31.5, false, true},
		{"swapped labels", geometry.FacingLeft, geometry.Point{X: 150, Y: 200}, geometry.Point{X: 100, Y: 210}, 17, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lm [geometry.NumLandmarks]geometry.Point
			i, j := geometry.InfAnt(7), geometry.InfPost(7)
			lm[i], lm[j] = tc.a, tc.p
			mid := geometry.Point{X: (tc.a.X + tc.p.X) / 2, Y: (tc.a.Y + tc.p.Y) / 2}
			length := geometry.Dist(tc.a, tc.p)
			setEndplateSlope(&lm, i, j, tc.facing, tc.target)
			if got := geometry.EndplateSlope(lm[i], lm[j], tc.facing); math.Abs(got-tc.target) > 1e-9 {
				t.Fatalf("slope %v, want %v", got, tc.target)
			}
			if m := (geometry.Point{X: (lm[i].X + lm[j].X) / 2, Y: (lm[i].Y + lm[j].Y) / 2}); math.Abs(m.X-mid.X) > 1e-9 || math.Abs(m.Y-mid.Y) > 1e-9 {
				t.Fatalf("midpoint moved: %v → %v", mid, m)
			}
			if l := geometry.Dist(lm[i], lm[j]); math.Abs(l-length) > 1e-9 {
				t.Fatalf("length %v → %v", length, l)
			}
			// Each slot keeps its side: the slot that held the anterior
			// corner (by facing) still does.
			ant, _ := geometry.Orient(lm[i], lm[j], tc.facing)
			if (ant == lm[j]) != tc.swapIndices {
				t.Fatalf("corners changed sides: %v %v", lm[i], lm[j])
			}
			if antLow := ant.Y > mid.Y; antLow != tc.wantAntIsLow {
				t.Fatalf("anterior corner %v vs midpoint %v", ant, mid)
			}
		})
	}
}

// testPrior predicts both C7 endplates as the C6 inferior slope plus 4°, fully trusted with C7 completely hidden and half with C7
// partly hidden.
func testPrior() *C7Prior {
	coef := make([]float64, len(PriorInputs))
	coef[priorInputIndex["C6_inf"]] = 1
	r := PriorRegression{Coef: coef, Intercept: 4, Blend: [3]float64{0, 0.5, 1}, DeltaLimitDeg: 180}
	return &C7Prior{Format: C7PriorFormat, Inputs: append([]string(nil), PriorInputs...), Inf: r, Sup: r}
}

func TestC7PriorApply(t *testing.T) {
	t.Parallel()
	// spinePoints: C6 inferior 20°, C7 inferior 25°, C7 superior 23°, facing left.
	for _, tc := range []struct {
		name     string
		obsc     [3]float64
		inf, sup float64
		limit    float64
	}{
		{"hidden, clipped: at most the limit", [3]float64{0, 0, 1}, 24.6, 23.4, 0.4},
		{"partly hidden, clipped", [3]float64{0, 1, 0}, 24.8, 23.2, 0.4},
		{"visible: image kept", [3]float64{1, 0, 0}, 25, 23, 0},
		{"hidden: prior", [3]float64{0, 0, 1}, 24, 24, 0},
		{"partly hidden: halfway", [3]float64{0, 1, 0}, 24.5, 23.5, 0},
		{"mixed probabilities", [3]float64{0.5, 0.25, 0.25}, 25 + (0.125+0.25)*(24-25), 23 + (0.125+0.25)*(24-23), 0},
		{"no estimate: image kept", [3]float64{0, 0, 0}, 25, 23, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lm := spinePoints()
			p := testPrior()
			if tc.limit > 0 {
				p.Inf.DeltaLimitDeg, p.Sup.DeltaLimitDeg = tc.limit, tc.limit
			}
			o := p.apply(&lm, geometry.FacingLeft, tc.obsc)
			if math.Abs(o.image[0]-25) > 1e-9 || math.Abs(o.image[1]-23) > 1e-9 || math.Abs(o.prior[0]-24) > 1e-9 || math.Abs(o.prior[1]-24) > 1e-9 {
				t.Fatalf("image %v prior %v, want [25 23] [24 24]", o.image, o.prior)
			}
			want := []float64{10, 11, 12, 14, 15, 17, 18, 19, 20}
			for k, v := range want {
				if math.Abs(o.slopes[k]-v) > 1e-9 {
					t.Fatalf("slopes %v, want %v", o.slopes, want)
				}
			}
			// Facing left, the column leans 6 px posterior over 40 px (C2
			// endplate to C3 centre), then 2 px over 60 px per level.
			dirs := []float64{-math.Atan2(6, 40) * 180 / math.Pi, -math.Atan2(2, 60) * 180 / math.Pi, -math.Atan2(2, 60) * 180 / math.Pi, -math.Atan2(2, 60) * 180 / math.Pi}
			for k, v := range dirs {
				if math.Abs(o.dirs[k]-v) > 1e-9 {
					t.Fatalf("directions %v, want %v", o.dirs, dirs)
				}
			}
			inf := geometry.EndplateSlope(lm[geometry.InfAnt(7)], lm[geometry.InfPost(7)], geometry.FacingLeft)
			sup := geometry.EndplateSlope(lm[geometry.SupAnt(7)], lm[geometry.SupPost(7)], geometry.FacingLeft)
			if math.Abs(inf-tc.inf) > 1e-9 || math.Abs(sup-tc.sup) > 1e-9 {
				t.Fatalf("C7 slopes %.6f/%.6f, want %.6f/%.6f", inf, sup, tc.inf, tc.sup)
			}
			// Nothing above C7 moves.
			ref := spinePoints()
			for i := 0; i < geometry.SupAnt(7); i++ {
				if lm[i] != ref[i] {
					t.Fatalf("landmark %d moved", i)
				}
			}
		})
	}
}

// The other C7 endplate's slope enters as the specialist gave it: a prior
// that predicts each endplate as the other one swaps them when trusted
// fully, and reads only the columns it names, in its order.
func TestC7PriorOtherEndplateAndInputOrder(t *testing.T) {
	t.Parallel()
	lm := spinePoints()
	p := &C7Prior{Format: C7PriorFormat, Inputs: []string{"C5C6_dir", "C2_inf"},
		Inf: PriorRegression{Coef: []float64{0, 0}, OtherCoef: 1, Blend: [3]float64{0, 0, 1}, DeltaLimitDeg: 180},
		Sup: PriorRegression{Coef: []float64{0, 1}, Intercept: 1, Blend: [3]float64{0, 0, 1}, DeltaLimitDeg: 180}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	o := p.apply(&lm, geometry.FacingLeft, [3]float64{0, 0, 1})
	if math.Abs(o.prior[0]-23) > 1e-9 || math.Abs(o.prior[1]-11) > 1e-9 {
		t.Fatalf("prior %v, want [23 (C7 superior) 11 (C2 inferior + 1)]", o.prior)
	}
	inf := geometry.EndplateSlope(lm[geometry.InfAnt(7)], lm[geometry.InfPost(7)], geometry.FacingLeft)
	if math.Abs(inf-23) > 1e-9 {
		t.Fatalf("C7 inferior %v, want 23", inf)
	}
}

func TestParseC7Prior(t *testing.T) {
	t.Parallel()
	good, err := json.Marshal(testPrior())
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseC7Prior(good)
	if err != nil || p.Inf.Intercept != 4 {
		t.Fatalf("good prior: %v %+v", err, p)
	}
	for _, tc := range []struct {
		name   string
		change func(p *C7Prior)
		want   string
	}{
		{"format", func(p *C7Prior) { p.Format = "other" }, "format"},
		{"repeated input", func(p *C7Prior) { p.Inputs[0] = "C3_inf" }, "repeated"},
		{"unknown input", func(p *C7Prior) { p.Inputs[2] = "C7_inf" }, "unknown"},
		{"no inputs", func(p *C7Prior) { p.Inputs = nil }, "no inputs"},
		{"input count", func(p *C7Prior) { p.Inputs = p.Inputs[:3] }, "coefficients"},
		{"coefficients", func(p *C7Prior) { p.Sup.Coef = p.Sup.Coef[:2] }, "coefficients"},
		{"blend above 1", func(p *C7Prior) { p.Inf.Blend[2] = 1.5 }, "blend weight"},
		{"negative blend", func(p *C7Prior) { p.Sup.Blend[1] = -0.1 }, "blend weight"},
		{"no delta limit", func(p *C7Prior) { p.Inf.DeltaLimitDeg = 0 }, "delta_limit_deg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPrior()
			tc.change(p)
			b, _ := json.Marshal(p)
			if _, err := ParseC7Prior(b); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want containing %q", err, tc.want)
			}
		})
	}
	if _, err := ParseC7Prior([]byte("{")); err == nil {
		t.Fatal("truncated JSON accepted")
	}
}

// priorStages is knownStages with the given C7 prior in its model set.
type priorStages struct {
	*knownStages
	prior []byte
}

func (p priorStages) Info() stages.Info {
	i := p.knownStages.Info()
	i.C7Prior = p.prior
	return i
}

// TestAnalyzeAppliesPrior: with a prior in the model set the C7 slope is
// blended toward it as far as C7 is estimated hidden, the review features
// record the inputs and the prior's distance from the specialist; without
// one they record the inputs only and the distances are "not available".
func TestAnalyzeAppliesPrior(t *testing.T) {
	t.Parallel()
	b, _ := json.Marshal(testPrior())
	k := &knownStages{c7Conf: 0.8, obsc: [3]float64{0, 0, 1}, refined: true, noPrior: true}
	path := testImage(t, pipelinetest.Image{})
	ctx := context.Background()

	plain := newAnalyzer(t, k)
	r0, f0 := plain.AnalyzeFileDetailed(ctx, path, Options{})
	withPrior, err := New(priorStages{k, b}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	r1, f1 := withPrior.AnalyzeFileDetailed(ctx, path, Options{})
	if r0.Parameters == nil || r1.Parameters == nil {
		t.Fatalf("not measured: %+v %+v", r0, r1)
	}
	if math.Abs(r0.Parameters.C7SlopeDeg-25) > 1e-3 || math.Abs(r1.Parameters.C7SlopeDeg-24) > 1e-3 || math.Abs(r1.Parameters.C7SupSlopeDeg-24) > 1e-3 {
		t.Fatalf("C7 slope without prior %v, with %v / superior %v; want 25, 24, 24", r0.Parameters.C7SlopeDeg, r1.Parameters.C7SlopeDeg, r1.Parameters.C7SupSlopeDeg)
	}
	if math.Abs(r1.Parameters.C2C7CobbDeg-(24-10)) > 1e-3 {
		t.Fatalf("Cobb %v, want 14 (C7 after the prior − C2)", r1.Parameters.C2C7CobbDeg)
	}
	if f0.C7InfPriorDeltaDeg != -1 || f0.C7SupPriorDeltaDeg != -1 || len(f0.EndplateSlopesDeg) != len(PriorSlopeInputs) || len(f0.ColumnDirectionsDeg) != len(PriorDirectionInputs) {
		t.Fatalf("without prior: deltas %v/%v, inputs %v", f0.C7InfPriorDeltaDeg, f0.C7SupPriorDeltaDeg, f0.EndplateSlopesDeg)
	}
	if math.Abs(f1.C7InfPriorDeltaDeg-1) > 1e-9 || math.Abs(f1.C7SupPriorDeltaDeg-1) > 1e-9 ||
		math.Abs(f1.C7ImageSlopesDeg[0]-25) > 1e-9 || math.Abs(f1.C7ImageSlopesDeg[1]-23) > 1e-9 {
		t.Fatalf("with prior: deltas %v/%v, image slopes %v", f1.C7InfPriorDeltaDeg, f1.C7SupPriorDeltaDeg, f1.C7ImageSlopesDeg)
	}
	// A prior the model set cannot use is an error at New, not a silent skip.
	if _, err := New(priorStages{k, []byte(`{"format":"x"}`)}, Config{}); err == nil || !strings.Contains(err.Error(), "c7 prior") {
		t.Fatalf("bad prior: err = %v", err)
	}
	// Single stage: the prior is not applied.
	rs, fs := withPrior.AnalyzeFileDetailed(ctx, path, Options{SingleStage: true})
	if rs.Parameters == nil || math.Abs(rs.Parameters.C7SlopeDeg-25) > 1e-3 || fs.C7InfPriorDeltaDeg != -1 || fs.EndplateSlopesDeg != nil || fs.ColumnDirectionsDeg != nil {
		t.Fatalf("single stage: %+v %+v", rs.Parameters, fs)
	}
}

// The prior's distance features are "not available" (NaN) when negative,
// so a risk model using them flags results the prior did not judge.
func TestPriorRiskFeatures(t *testing.T) {
	t.Parallel()
	f := Features{C7InfPriorDeltaDeg: 2.9, C7SupPriorDeltaDeg: -1}
	x, err := RiskInputs([]string{"log_c7_inf_prior_delta_deg", "log_c7_sup_prior_delta_deg"}, &f)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(x[0]-math.Log(3)) > 1e-12 || !math.IsNaN(x[1]) {
		t.Fatalf("inputs %v, want [log 3, NaN]", x)
	}
}

// BenchmarkC7PriorApply measures the prior on one result (nine slopes, two
// predictions, two endplates turned): compare with BenchmarkAnalyze.
func BenchmarkC7PriorApply(b *testing.B) {
	p := testPrior()
	ref := spinePoints()
	for b.Loop() {
		lm := ref
		_ = p.apply(&lm, geometry.FacingLeft, [3]float64{0.1, 0.3, 0.6})
	}
}
