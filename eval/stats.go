package eval

import (
	"errors"
	"math"
	"sort"
)

// MeanAbs is the mean absolute value of errs (the MAE of a list of errors);
// NaN for an empty list.
func MeanAbs(errs []float64) float64 {
	if len(errs) == 0 {
		return math.NaN()
	}
	var s float64
	for _, e := range errs {
		s += math.Abs(e)
	}
	return s / float64(len(errs))
}

// MedianAbs is the median absolute value of errs; NaN for an empty list.
func MedianAbs(errs []float64) float64 {
	a := make([]float64, len(errs))
	for i, e := range errs {
		a[i] = math.Abs(e)
	}
	return Percentile(a, 50)
}

// Percentile returns the p-th percentile (0..100) of v by linear
// interpolation between closest ranks (the "type 7" definition of R and
// NumPy's default); NaN for an empty list. v is not modified.
func Percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	h := (float64(len(s)) - 1) * p / 100
	lo := math.Floor(h)
	if int(lo) >= len(s)-1 {
		return s[len(s)-1]
	}
	return s[int(lo)] + (h-lo)*(s[int(lo)+1]-s[int(lo)])
}

// ErrICCData is returned for data an ICC cannot be computed on.
var ErrICCData = errors.New("icc: need at least 2 subjects and 2 raters with equal counts")

// ICC21 returns ICC(2,1) of Shrout & Fleiss (1979), in McGraw & Wong's
// terms ICC(A,1): two-way random effects, absolute agreement, single
// measure. data[i][j] is subject i rated by rater j:
//
//	ICC(2,1) = (MSR − MSE) / (MSR + (k−1)·MSE + k·(MSC − MSE)/n)
//
// with MSR, MSC and MSE the mean squares of rows (subjects), columns (raters)
// and residual error of the two-way ANOVA. Returns NaN when the denominator
// is zero (all values equal).
func ICC21(data [][]float64) (float64, error) {
	n := len(data)
	if n < 2 {
		return math.NaN(), ErrICCData
	}
	k := len(data[0])
	if k < 2 {
		return math.NaN(), ErrICCData
	}
	var grand float64
	rowMean := make([]float64, n)
	colMean := make([]float64, k)
	for i, row := range data {
		if len(row) != k {
			return math.NaN(), ErrICCData
		}
		for j, x := range row {
			rowMean[i] += x
			colMean[j] += x
			grand += x
		}
	}
	for i := range rowMean {
		rowMean[i] /= float64(k)
	}
	for j := range colMean {
		colMean[j] /= float64(n)
	}
	grand /= float64(n * k)
	var ssr, ssc, sst float64
	for i, row := range data {
		ssr += (rowMean[i] - grand) * (rowMean[i] - grand)
		for _, x := range row {
			sst += (x - grand) * (x - grand)
		}
	}
	ssr *= float64(k)
	for j := range colMean {
		ssc += (colMean[j] - grand) * (colMean[j] - grand)
	}
	ssc *= float64(n)
	sse := sst - ssr - ssc
	msr := ssr / float64(n-1)
	msc := ssc / float64(k-1)
	mse := sse / float64((n-1)*(k-1))
	den := msr + float64(k-1)*mse + float64(k)*(msc-mse)/float64(n)
	if den == 0 {
		return math.NaN(), nil
	}
	return (msr - mse) / den, nil
}

// ICC21Pairs is ICC21 for two raters: a[i] and b[i] rate subject i.
func ICC21Pairs(a, b []float64) (float64, error) {
	if len(a) != len(b) {
		return math.NaN(), ErrICCData
	}
	data := make([][]float64, len(a))
	for i := range a {
		data[i] = []float64{a[i], b[i]}
	}
	return ICC21(data)
}

// BlandAltman holds the Bland–Altman agreement of two methods: the bias
// (mean difference a − b), the standard deviation of the differences (n − 1
// denominator) and the 95% limits of agreement bias ± 1.96·SD.
type BlandAltman struct {
	Bias, SD, Lower, Upper float64
}

// BlandAltmanOf computes the agreement of a with b (differences a − b).
// Fields are NaN for fewer than two pairs.
func BlandAltmanOf(a, b []float64) BlandAltman {
	n := len(a)
	if n != len(b) || n < 2 {
		nan := math.NaN()
		return BlandAltman{nan, nan, nan, nan}
	}
	var mean float64
	for i := range a {
		mean += a[i] - b[i]
	}
	mean /= float64(n)
	var ss float64
	for i := range a {
		d := a[i] - b[i] - mean
		ss += d * d
	}
	sd := math.Sqrt(ss / float64(n-1))
	return BlandAltman{Bias: mean, SD: sd, Lower: mean - 1.96*sd, Upper: mean + 1.96*sd}
}
