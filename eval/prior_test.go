package eval

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/cspine/cspine/pipeline"
	"github.com/cspine/cspine/pipeline/result"
)

// priorSamples makes n samples whose C7 slopes follow a known linear law of
// the endplates above plus noise of SD priorSD (what no prior can explain),
// and whose specialist slopes are the truth plus noise of SD 0.3° (C7
// visible), imageSD[0] (partly hidden) or imageSD[1] (completely hidden).
func priorSamples(n int, priorSD float64, imageSD [2]float64, seed uint64) []Sample {
	rng := rand.New(rand.NewPCG(seed, 1))
	var out []Sample
	for i := range n {
		x := make([]float64, len(pipeline.PriorInputs)) // slopes, then directions
		for k := range x {
			x[k] = 10*rng.NormFloat64() + float64(k)
		}
		inf := 2 + 0.6*x[8] + 0.3*x[6] - 0.1*x[0] + 0.2*x[10] + priorSD*rng.NormFloat64()
		sup := -1 + 0.5*x[7] + 0.4*x[5] + priorSD*rng.NormFloat64()
		grade := i % 3
		sd := []float64{0.3, imageSD[0], imageSD[1]}[grade]
		var obsc [3]float64
		obsc[grade] = 1
		out = append(out, Sample{
			Truth: result.Truth{Measurable: true, Parameters: &result.Parameters{C7SlopeDeg: inf, C7SupSlopeDeg: sup}},
			Result: result.Result{Status: result.StatusOK, Model: &result.Model{Mode: result.ModeHierarchical},
				Parameters: &result.Parameters{}},
			Features: pipeline.Features{EndplateSlopesDeg: x[:9], ColumnDirectionsDeg: x[9:], C7Obscuration: obsc,
				C7ImageSlopesDeg: [2]float64{inf + sd*rng.NormFloat64(), sup + sd*rng.NormFloat64()}},
		})
	}
	// Samples FitC7Prior must skip: rejected, single stage, no features.
	out = append(out,
		Sample{Truth: result.Truth{Measurable: true}, Result: result.Result{Status: result.StatusRejected}},
		Sample{Truth: result.Truth{Measurable: true, Parameters: &result.Parameters{C7SlopeDeg: 1e6}},
			Result:   result.Result{Status: result.StatusOK, Model: &result.Model{Mode: result.ModeSingleStage}},
			Features: pipeline.Features{EndplateSlopesDeg: make([]float64, 9), ColumnDirectionsDeg: make([]float64, 4), C7Obscuration: [3]float64{0, 0, 1}}},
	)
	return out
}

func TestFitC7Prior(t *testing.T) {
	t.Parallel()
	// Prior error SD 1°; image error SD 0.5° (partly hidden) and 1°
	// (hidden): the best blend weights are σi²/(σi²+σp²) = 0.2 and 0.5
	// (prior − image, SD 1.1° and 1.4°, is rarely beyond the 3° clip).
	samples := priorSamples(3000, 1, [2]float64{0.5, 1}, 7)
	p, err := FitC7Prior(samples, DefaultPriorFolds)
	if err != nil {
		t.Fatal(err)
	}
	wantInf := map[int]float64{8: 0.6, 6: 0.3, 0: -0.1, 10: 0.2}
	wantSup := map[int]float64{7: 0.5, 5: 0.4}
	for k := range pipeline.PriorInputs {
		if math.Abs(p.Inf.Coef[k]-wantInf[k]) > 0.03 || math.Abs(p.Sup.Coef[k]-wantSup[k]) > 0.03 {
			t.Fatalf("coefficient %d: inferior %v (want %v), superior %v (want %v)", k, p.Inf.Coef[k], wantInf[k], p.Sup.Coef[k], wantSup[k])
		}
	}
	// Each endplate here depends on the column alone: the other endplate's
	// slope, a noisy copy of its own truth, earns no weight.
	if math.Abs(p.Inf.OtherCoef) > 0.06 || math.Abs(p.Sup.OtherCoef) > 0.06 {
		t.Fatalf("other-endplate coefficients %v %v, want about 0", p.Inf.OtherCoef, p.Sup.OtherCoef)
	}
	if math.Abs(p.Inf.Intercept-2) > 0.1 || math.Abs(p.Sup.Intercept+1) > 0.1 {
		t.Fatalf("intercepts %v %v, want 2 −1", p.Inf.Intercept, p.Sup.Intercept)
	}
	for _, r := range []pipeline.PriorRegression{p.Inf, p.Sup} {
		if r.Blend[0] != 0 || math.Abs(r.Blend[1]-0.2) > 0.04 || math.Abs(r.Blend[2]-0.5) > 0.05 {
			t.Fatalf("blend %v, want [0 0.2 0.5]", r.Blend)
		}
		if math.Abs(r.ResidualSDDeg-1) > 0.05 || r.DeltaLimitDeg != PriorDeltaLimitSDs*r.ResidualSDDeg {
			t.Fatalf("residual SD %v (want about 1), limit %v", r.ResidualSDDeg, r.DeltaLimitDeg)
		}
	}
	if p.Fit == nil || p.Fit.Images != 3000 || p.Fit.Folds != DefaultPriorFolds {
		t.Fatalf("fit %+v, want 3000 images (skipped samples not counted)", p.Fit)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	again, err := FitC7Prior(samples, DefaultPriorFolds)
	if err != nil || !reflect.DeepEqual(p, again) {
		t.Fatal("same samples gave another prior")
	}
}

// An image far better than the prior gets a zero weight (clamped, never
// negative); a useless image a weight of at most 1.
func TestFitC7PriorClampsBlend(t *testing.T) {
	t.Parallel()
	p, err := FitC7Prior(priorSamples(1500, 20, [2]float64{0.01, 0.01}, 3), 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range append(p.Inf.Blend[:], p.Sup.Blend[:]...) {
		if w < 0 || w > 0.01 {
			t.Fatalf("blend %v %v, want about 0", p.Inf.Blend, p.Sup.Blend)
		}
	}
	p, err = FitC7Prior(priorSamples(1500, 0.01, [2]float64{20, 20}, 4), 4)
	if err != nil {
		t.Fatal(err)
	}
	if p.Inf.Blend[2] < 0.99 || p.Inf.Blend[2] > 1 {
		t.Fatalf("blend %v, want about 1", p.Inf.Blend)
	}
}

func TestFitC7PriorErrors(t *testing.T) {
	t.Parallel()
	if _, err := FitC7Prior(priorSamples(50, 1, [2]float64{1, 1}, 1), 5); err == nil || !strings.Contains(err.Error(), "usable samples") {
		t.Fatalf("too few samples: err = %v", err)
	}
	if _, err := FitC7Prior(priorSamples(500, 1, [2]float64{1, 1}, 1), 1); err == nil || !strings.Contains(err.Error(), "folds") {
		t.Fatalf("one fold: err = %v", err)
	}
}

func TestBoxLeastSquares(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		A    [2][2]float64
		b    [2]float64
		free [2]bool
		want [2]float64
	}{
		{"interior", [2][2]float64{{1, 0}, {0, 1}}, [2]float64{0.3, 0.6}, [2]bool{true, true}, [2]float64{0.3, 0.6}},
		{"both above 1", [2][2]float64{{1, 0}, {0, 1}}, [2]float64{2, 3}, [2]bool{true, true}, [2]float64{1, 1}},
		// Unconstrained (1.4, 0.2); clamping each alone gives (1, 0.2), the
		// box minimum is on the edge w0 = 1 at w1 = 0.4.
		{"correlated, refit on the edge", [2][2]float64{{1, 0.5}, {0.5, 1}}, [2]float64{1.5, 0.9}, [2]bool{true, true}, [2]float64{1, 0.4}},
		{"class held at 0", [2][2]float64{{1, 0}, {0, 1}}, [2]float64{0.3, 0.6}, [2]bool{true, false}, [2]float64{0.3, 0}},
		{"no data for a class (singular)", [2][2]float64{{1, 0}, {0, 0}}, [2]float64{0.4, 0}, [2]bool{true, true}, [2]float64{0.4, 0}},
		{"negative", [2][2]float64{{1, 0}, {0, 1}}, [2]float64{-0.3, 0.5}, [2]bool{true, true}, [2]float64{0, 0.5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := boxLeastSquares(tc.A, tc.b, tc.free)
			if math.Abs(got[0]-tc.want[0]) > 1e-12 || math.Abs(got[1]-tc.want[1]) > 1e-12 {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
