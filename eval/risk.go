package eval

import (
	"errors"
	"fmt"
	"math"

	"github.com/cspine/cspine/pipeline"
	"github.com/cspine/cspine/pipeline/result"
)

// ErrSingleClass: a risk model needs both results with and without a large
// error to learn from.
var ErrSingleClass = errors.New("fit risk: the set needs results with and without a large error")

// FitRisk fits a logistic risk model (pipeline.RiskModel) of "this result
// has an angle error above largeDeg" on the measured results of samples,
// over the named features, standardised, with an L2 penalty l2 on the
// weights (not the bias), by Newton's method: deterministic for the same
// samples. MinRisk is left above 1 (never fires) until Calibrate chooses it
// on a validation set. Fit records the counts, the penalty and the limit;
// the caller adds where the data and models came from.
func FitRisk(samples []Sample, features []string, l2, largeDeg float64) (pipeline.RiskModel, error) {
	if !(l2 > 0) || math.IsInf(l2, 0) {
		// Without a penalty, separable data drive the weights to infinity.
		return pipeline.RiskModel{}, fmt.Errorf("fit risk: L2 penalty %v, must be positive and finite", l2)
	}
	var X [][]float64
	var y []float64
	for _, s := range samples {
		if !s.Truth.Measurable || s.Result.Status != result.StatusOK || s.Result.Parameters == nil {
			continue
		}
		x, err := pipeline.RiskInputs(features, &s.Features)
		if err != nil {
			return pipeline.RiskModel{}, fmt.Errorf("fit risk: %w", err)
		}
		for j, v := range x {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return pipeline.RiskModel{}, fmt.Errorf("fit risk: %s: feature %s not available (a hierarchical evaluation is needed)", s.Truth.File, features[j])
			}
		}
		X = append(X, x)
		y = append(y, b2f(LargeError(&s.Result, &s.Truth, largeDeg)))
	}
	if len(X) == 0 {
		return pipeline.RiskModel{}, fmt.Errorf("fit risk: %w", ErrNoSamples)
	}
	pos := 0.0
	for _, v := range y {
		pos += v
	}
	if pos == 0 || pos == float64(len(y)) {
		return pipeline.RiskModel{}, ErrSingleClass
	}
	k := len(features)
	m := pipeline.RiskModel{Features: append([]string(nil), features...), Mean: make([]float64, k),
		Scale: make([]float64, k), Weights: make([]float64, k), MinRisk: 1.01,
		Fit: &pipeline.RiskFit{Images: len(X), LargeErrors: int(pos), LargeErrorDeg: largeDeg, L2: l2}}
	for j := range k {
		col := make([]float64, len(X))
		for i := range X {
			col[i] = X[i][j]
		}
		for _, v := range col {
			m.Mean[j] += v / float64(len(col))
		}
		var ss float64
		for _, v := range col {
			ss += (v - m.Mean[j]) * (v - m.Mean[j])
		}
		m.Scale[j] = math.Sqrt(ss / float64(len(col)))
		if !(m.Scale[j] > 1e-12) {
			m.Scale[j] = 1 // a constant feature: its weight stays 0 under the penalty
		}
	}
	Z := make([][]float64, len(X)) // standardised, with a trailing 1 for the bias
	for i, x := range X {
		Z[i] = make([]float64, k+1)
		for j := range k {
			Z[i][j] = (x[j] - m.Mean[j]) / m.Scale[j]
		}
		Z[i][k] = 1
	}
	w := make([]float64, k+1)
	w[k] = math.Log(pos / (float64(len(y)) - pos))
	// loss is the penalised negative log-likelihood.
	loss := func(w []float64) float64 {
		var l float64
		for i, z := range Z {
			t := dot(w, z)
			// log(1+e^t) − y·t, computed without overflow
			l += math.Max(t, 0) + math.Log1p(math.Exp(-math.Abs(t))) - y[i]*t
		}
		for a := range k {
			l += l2 / 2 * w[a] * w[a]
		}
		return l
	}
	cur := loss(w)
	converged := false
	for iter := 0; iter < 100 && !converged; iter++ {
		g := make([]float64, k+1)
		H := make([][]float64, k+1)
		for a := range H {
			H[a] = make([]float64, k+1)
		}
		for i, z := range Z {
			p := sigmoid(dot(w, z))
			for a := range z {
				g[a] += (p - y[i]) * z[a]
				for b := range z {
					H[a][b] += p * (1 - p) * z[a] * z[b]
				}
			}
		}
		for a := range k {
			g[a] += l2 * w[a]
			H[a][a] += l2
		}
		H[k][k] += 1e-9
		step, err := solve(H, g)
		if err != nil {
			return pipeline.RiskModel{}, fmt.Errorf("fit risk: %w", err)
		}
		// Newton step, halved until the loss does not rise (it is convex,
		// so a full step nearly always does).
		next := make([]float64, k+1)
		for t := 1.0; ; t /= 2 {
			var norm float64
			for a := range w {
				next[a] = w[a] - t*step[a]
				norm = math.Max(norm, math.Abs(t*step[a]))
			}
			l := loss(next)
			if l <= cur || norm < 1e-12 {
				converged = norm < 1e-10
				copy(w, next)
				cur = l
				break
			}
		}
	}
	if !converged {
		return pipeline.RiskModel{}, errors.New("fit risk: Newton's method did not converge in 100 steps")
	}
	copy(m.Weights, w[:k])
	m.Bias = w[k]
	if err := m.Validate(); err != nil {
		return pipeline.RiskModel{}, fmt.Errorf("fit risk: %w", err)
	}
	return m, nil
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// solve solves A x = b by Gaussian elimination with partial pivoting (A is
// small and, with the penalty, positive definite).
func solve(A [][]float64, b []float64) ([]float64, error) {
	n := len(b)
	M := make([][]float64, n)
	for i := range A {
		M[i] = append(append([]float64(nil), A[i]...), b[i])
	}
	for c := range n {
		p := c
		for r := c + 1; r < n; r++ {
			if math.Abs(M[r][c]) > math.Abs(M[p][c]) {
				p = r
			}
		}
		if math.Abs(M[p][c]) < 1e-300 {
			return nil, errors.New("singular system")
		}
		M[c], M[p] = M[p], M[c]
		for r := c + 1; r < n; r++ {
			f := M[r][c] / M[c][c]
			for j := c; j <= n; j++ {
				M[r][j] -= f * M[c][j]
			}
		}
	}
	x := make([]float64, n)
	for r := n - 1; r >= 0; r-- {
		s := M[r][n]
		for j := r + 1; j < n; j++ {
			s -= M[r][j] * x[j]
		}
		x[r] = s / M[r][r]
	}
	return x, nil
}
