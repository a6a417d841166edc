package eval

import (
	"math"
	"testing"
)

func TestICC21ShroutFleiss(t *testing.T) {
	t.Parallel()
	// Shrout & Fleiss (1979), Table 2: six targets rated by four judges.
	// Their Table 3 gives BMS 11.24, JMS 32.49, EMS 1.02 and ICC(2,1) = .29.
	data := [][]float64{
		{9, 2, 5, 8},
		{6, 1, 3, 2},
		{8, 4, 6, 8},
		{7, 1, 2, 6},
		{10, 5, 6, 9},
		{6, 2, 4, 7},
	}
	got, err := ICC21(data)
	if err != nil {
		t.Fatal(err)
	}
	// By hand: BMS = 134.9/12 = 11.2416…, JMS = 97.4583…/3 = 32.4861…,
	// EMS = 15.2916…/15 = 1.0194…;
	// (BMS − EMS) / (BMS + 3·EMS + 4·(JMS − EMS)/6) = 0.28976…
	const want = 0.2897637795275592
	if math.Abs(got-want) > 1e-12 || math.Abs(got-0.29) > 0.005 {
		t.Errorf("ICC(2,1) = %.15f, want %.15f (S&F: .29)", got, want)
	}
}

func TestICC21Edges(t *testing.T) {
	t.Parallel()
	// Perfect agreement between two raters: ICC = 1.
	a := []float64{1, 5, 3, 8, -2}
	if got, err := ICC21Pairs(a, a); err != nil || math.Abs(got-1) > 1e-12 {
		t.Errorf("perfect agreement: %v %v", got, err)
	}
	// A constant offset lowers absolute agreement below 1 (consistency
	// would stay 1): two raters differing by 1 on subjects 1, 2, 3.
	// MSR = 2·(var of row means)… by hand: rows (1,2),(2,3),(3,4):
	// grand 2.5, SSR = 2·(1+0+1) = 4 → MSR 2; SSC = 3·(0.25+0.25) = 1.5 →
	// MSC 1.5; SSE = 0 → ICC = 2 / (2 + 0 + 2·1.5/3) = 2/3.
	if got, err := ICC21Pairs([]float64{1, 2, 3}, []float64{2, 3, 4}); err != nil || math.Abs(got-2.0/3) > 1e-12 {
		t.Errorf("offset: %v %v, want 2/3", got, err)
	}
	if _, err := ICC21Pairs([]float64{1}, []float64{1}); err == nil {
		t.Error("one subject accepted")
	}
	if _, err := ICC21([][]float64{{1, 2}, {3}}); err == nil {
		t.Error("ragged data accepted")
	}
	if got, _ := ICC21Pairs([]float64{2, 2}, []float64{2, 2}); !math.IsNaN(got) {
		t.Errorf("constant data: %v, want NaN", got)
	}
}

func TestBlandAltman(t *testing.T) {
	t.Parallel()
	// Differences −0.5, 0, 0.5, −0.5, 1: mean 0.1; squared deviations
	// .36 .01 .16 .36 .81 sum 1.7, SD = sqrt(1.7/4) = 0.65192…
	ba := BlandAltmanOf([]float64{1, 2, 3, 4, 5}, []float64{1.5, 2, 2.5, 4.5, 4})
	sd := math.Sqrt(1.7 / 4)
	if math.Abs(ba.Bias-0.1) > 1e-12 || math.Abs(ba.SD-sd) > 1e-12 ||
		math.Abs(ba.Lower-(0.1-1.96*sd)) > 1e-12 || math.Abs(ba.Upper-(0.1+1.96*sd)) > 1e-12 {
		t.Errorf("BlandAltman = %+v, want bias 0.1 sd %v", ba, sd)
	}
	if ba := BlandAltmanOf([]float64{1}, []float64{2}); !math.IsNaN(ba.Bias) {
		t.Errorf("one pair: %+v", ba)
	}
}

func TestPercentileAndAbs(t *testing.T) {
	t.Parallel()
	v := []float64{3, 1, 4, 1, 5, 9, 2, 6}
	// Sorted 1 1 2 3 4 5 6 9; p95: h = 7·0.95 = 6.65 → 6 + 0.65·3 = 7.95.
	tests := []struct{ p, want float64 }{{0, 1}, {50, 3.5}, {95, 7.95}, {100, 9}}
	for _, tc := range tests {
		if got := Percentile(v, tc.p); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("Percentile(%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if v[0] != 3 {
		t.Error("Percentile sorted its input")
	}
	errs := []float64{-2, 1, -4, 3}
	if got := MeanAbs(errs); got != 2.5 {
		t.Errorf("MeanAbs = %v", got)
	}
	if got := MedianAbs(errs); got != 2.5 {
		t.Errorf("MedianAbs = %v", got)
	}
	if !math.IsNaN(MeanAbs(nil)) || !math.IsNaN(Percentile(nil, 50)) {
		t.Error("empty lists must give NaN")
	}
}
