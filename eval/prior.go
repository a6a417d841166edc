package eval

import (
	"errors"
	"fmt"
	"math"

	"github.com/cspine/cspine/pipeline"
	"github.com/cspine/cspine/pipeline/result"
)

// DefaultPriorFolds is the number of cross-fitting folds FitC7Prior uses
// for the blend weights.
const DefaultPriorFolds = 5

// PriorDeltaLimitSDs: the prior's distance from the specialist is clipped
// at this many of its residual SDs (pipeline.PriorRegression.DeltaLimitDeg).
const PriorDeltaLimitSDs = 3

// FitC7Prior fits the C7 shape prior (pipeline.C7Prior) on the measured
// hierarchical samples of a phantom set of its own (neither the validation
// nor the test set):
//
//   - each C7 endplate's slope is regressed (ordinary least squares with an
//     intercept) on every column input as the pipeline measured it
//     (pipeline.PriorInputs: Features.EndplateSlopesDeg and
//     ColumnDirectionsDeg) and on the specialist's slope of the other C7
//     endplate, against the ground truth;
//   - the blend weights for partial and complete obscuration are the least
//     squares fit of truth − specialist on weight·(prior − specialist), the
//     weight mixed by the specialist's obscuration probabilities, with the
//     prior predicted out of fold (folds: the i-th usable sample is in
//     fold i mod folds), so
//     that the weights see the prior's error on images it was not fitted
//     on; they are constrained to [0, 1] (box-constrained least squares),
//     and a class with less than PriorMinClassImages of probability mass
//     keeps weight 0. The weight for a visible C7 is 0.
//     prior − specialist is clipped, as the pipeline clips it, at
//     PriorDeltaLimitSDs times the prior's out-of-fold residual SD.
//
// Samples without the features (single-stage, rejected, not measurable) are
// skipped. Same samples, same prior, bit for bit.
func FitC7Prior(samples []Sample, folds int) (pipeline.C7Prior, error) {
	if folds < 2 {
		return pipeline.C7Prior{}, fmt.Errorf("fit c7 prior: %d folds, need at least 2", folds)
	}
	nIn := len(pipeline.PriorInputs)
	n := nIn + 1 // and the other endplate's slope
	type row struct {
		x     [2][]float64 // per endplate: inputs, the other endplate's image slope, 1
		y     [2]float64   // truth inferior, superior
		image [2]float64   // specialist
		p     [3]float64   // obscuration probabilities, normalised
	}
	var rows []row
	for _, s := range samples {
		f := &s.Features
		if s.Result.Status != result.StatusOK || !s.Truth.Measurable || s.Truth.Parameters == nil ||
			len(f.EndplateSlopesDeg) != len(pipeline.PriorSlopeInputs) || len(f.ColumnDirectionsDeg) != len(pipeline.PriorDirectionInputs) ||
			s.Result.Model == nil || s.Result.Model.Mode != result.ModeHierarchical {
			continue
		}
		ps := f.C7Obscuration[0] + f.C7Obscuration[1] + f.C7Obscuration[2]
		if !(ps > 0) {
			continue
		}
		in := append(append([]float64(nil), f.EndplateSlopesDeg...), f.ColumnDirectionsDeg...)
		r := row{y: [2]float64{s.Truth.Parameters.C7SlopeDeg, s.Truth.Parameters.C7SupSlopeDeg}, image: f.C7ImageSlopesDeg}
		for k := range 2 {
			r.x[k] = append(append(append([]float64(nil), in...), f.C7ImageSlopesDeg[1-k]), 1)
		}
		for k := range 3 {
			r.p[k] = f.C7Obscuration[k] / ps
		}
		rows = append(rows, r)
	}
	if len(rows) < 10*(n+1) {
		return pipeline.C7Prior{}, fmt.Errorf("fit c7 prior: %d usable samples, need at least %d", len(rows), 10*(n+1))
	}
	// ols fits y[k] on x over the rows where use(i).
	ols := func(k int, use func(i int) bool) ([]float64, error) {
		A := make([][]float64, n+1)
		for i := range A {
			A[i] = make([]float64, n+1)
		}
		b := make([]float64, n+1)
		for i, r := range rows {
			if !use(i) {
				continue
			}
			x := r.x[k]
			for a := range x {
				for c := range x {
					A[a][c] += x[a] * x[c]
				}
				b[a] += x[a] * r.y[k]
			}
		}
		return solve(A, b)
	}
	p := pipeline.C7Prior{Format: pipeline.C7PriorFormat, Inputs: append([]string(nil), pipeline.PriorInputs...)}
	for k, reg := range []*pipeline.PriorRegression{&p.Inf, &p.Sup} {
		w, err := ols(k, func(int) bool { return true })
		if err != nil {
			return pipeline.C7Prior{}, fmt.Errorf("fit c7 prior: %w", err)
		}
		reg.Coef, reg.OtherCoef, reg.Intercept = w[:nIn], w[nIn], w[n]
		oof := make([]float64, len(rows))
		for fold := range folds {
			wf, err := ols(k, func(i int) bool { return i%folds != fold })
			if err != nil {
				return pipeline.C7Prior{}, fmt.Errorf("fit c7 prior: fold %d: %w", fold, err)
			}
			for i, r := range rows {
				if i%folds == fold {
					oof[i] = dot(wf, r.x[k])
				}
			}
		}
		var ss float64
		for i, r := range rows {
			ss += (r.y[k] - oof[i]) * (r.y[k] - oof[i])
		}
		reg.ResidualSDDeg = math.Sqrt(ss / float64(len(rows)))
		reg.DeltaLimitDeg = PriorDeltaLimitSDs * reg.ResidualSDDeg
		// Blend: r = y − image ≈ (wp·pp + wc·pc)·d, d = oof − image clipped.
		var A [2][2]float64
		var b [2]float64
		for i, r := range rows {
			d := reg.Clip(oof[i] - r.image[k])
			z := [2]float64{r.p[1] * d, r.p[2] * d}
			for a := range 2 {
				for c := range 2 {
					A[a][c] += z[a] * z[c]
				}
				b[a] += z[a] * (r.y[k] - r.image[k])
			}
		}
		var mass [2]float64
		for _, r := range rows {
			mass[0] += r.p[1]
			mass[1] += r.p[2]
		}
		bw := boxLeastSquares(A, b, [2]bool{mass[0] >= PriorMinClassImages, mass[1] >= PriorMinClassImages})
		reg.Blend = [3]float64{0, bw[0], bw[1]}
	}
	p.Fit = &pipeline.PriorFit{Images: len(rows), Folds: folds}
	if err := p.Validate(); err != nil {
		return pipeline.C7Prior{}, errors.Join(errors.New("fit c7 prior: the fitted prior is invalid"), err)
	}
	return p, nil
}

// PriorMinClassImages: a blend weight is fitted only for an obscuration
// class with at least this much probability mass in the fitting set (about
// as many images); otherwise it is 0.
const PriorMinClassImages = 20

// boxLeastSquares minimises wᵀAw − 2bᵀw over w in [0, 1]² (a least-squares
// fit with normal equations A w = b), with w[c] held at 0 where free[c] is
// false. A convex quadratic's minimum over a box lies at the unconstrained
// minimum, on an edge (the one-dimensional minimum there, clamped) or at a
// corner; every such candidate is tried.
func boxLeastSquares(A [2][2]float64, b [2]float64, free [2]bool) [2]float64 {
	obj := func(w [2]float64) float64 {
		return w[0]*w[0]*A[0][0] + 2*w[0]*w[1]*A[0][1] + w[1]*w[1]*A[1][1] - 2*(w[0]*b[0]+w[1]*b[1])
	}
	var cands [][2]float64
	if x, err := solve([][]float64{A[0][:], A[1][:]}, b[:]); err == nil {
		cands = append(cands, [2]float64{x[0], x[1]})
	}
	for c := range 2 {
		o := 1 - c
		for _, v := range []float64{0, 1} {
			w := [2]float64{}
			w[o] = v
			if A[c][c] > 0 {
				w[c] = clamp01((b[c] - A[c][o]*v) / A[c][c])
			}
			cands = append(cands, w)
		}
	}
	best, bestObj := [2]float64{}, obj([2]float64{})
	for _, w := range cands {
		ok := true
		for c := range 2 {
			if w[c] < 0 || w[c] > 1 || math.IsNaN(w[c]) || (!free[c] && w[c] != 0) {
				ok = false
			}
		}
		if v := obj(w); ok && v < bestObj {
			best, bestObj = w, v
		}
	}
	return best
}

func clamp01(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return math.Min(1, math.Max(0, v))
}
