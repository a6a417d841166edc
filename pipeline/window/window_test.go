package window

import (
	"math"
	"syscall"
	"testing"
	"time"
)

// loop runs f b.N times and reports CPU time per operation besides wall
// time: on a shared machine wall time mostly measures the other load.
func loop(b *testing.B, f func()) {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return 0
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	c0 := cpu()
	for b.Loop() {
		f()
	}
	b.ReportMetric(float64(cpu()-c0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6 }

func TestApplyHandComputed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		p    Params
		in   []float32
		want []float64
	}{
		// LINEAR c=40 w=400: 0 at x <= 40-0.5-199.5 = -160, 1 above 239,
		// else (x-39.5)/399+0.5.
		{"linear", Params{Center: 40, Width: 400},
			[]float32{-1000, -160, -159, 39.5, 139.25, 239, 239.5, 5000},
			[]float64{0, 0, 1.0 / 399, 0.5, 0.75, 1, 1, 1}},
		// LINEAR w=1: threshold at c-0.5.
		{"linear width 1", Params{Center: 10, Width: 1},
			[]float32{9, 9.5, 9.6, 10},
			[]float64{0, 0, 1, 1}},
		// LINEAR_EXACT c=100 w=50: 0 at x <= 75, 1 above 125, (x-100)/50+0.5.
		{"linear exact", Params{Center: 100, Width: 50, Function: LinearExact},
			[]float32{0, 75, 80, 100, 112.5, 125, 126},
			[]float64{0, 0, 0.1, 0.5, 0.75, 1, 1}},
		// SIGMOID c=0 w=4: 1/(1+exp(-x)).
		{"sigmoid", Params{Center: 0, Width: 4, Function: Sigmoid},
			[]float32{0, 1, -1, 20},
			[]float64{0.5, 1 / (1 + math.Exp(-1)), 1 / (1 + math.Exp(1)), 1 / (1 + math.Exp(-20))}},
		// Invalid width: threshold at the centre.
		{"zero width", Params{Center: 5, Width: 0, Function: LinearExact},
			[]float32{4, 5, 6},
			[]float64{0, 0, 1}},
		{"nan input", Params{Center: 0, Width: 10, Function: LinearExact},
			[]float32{float32(math.NaN())},
			[]float64{0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dst := make([]float32, len(tc.in))
			Apply(dst, tc.in, tc.p)
			for i := range dst {
				if !near(float64(dst[i]), tc.want[i]) {
					t.Errorf("x=%v: got %v, want %v", tc.in[i], dst[i], tc.want[i])
				}
			}
			// In place gives the same.
			in := append([]float32(nil), tc.in...)
			Apply(in, in, tc.p)
			for i := range in {
				if in[i] != dst[i] {
					t.Errorf("in place x=%v: got %v, want %v", tc.in[i], in[i], dst[i])
				}
			}
		})
	}
}

func TestApplyRange(t *testing.T) {
	t.Parallel()
	src := make([]float32, 20001)
	for i := range src {
		src[i] = float32(i - 10000)
	}
	for _, fn := range []Function{Linear, LinearExact, Sigmoid} {
		dst := make([]float32, len(src))
		Apply(dst, src, Params{Center: 123.4, Width: 777, Function: fn})
		for i := range dst {
			if dst[i] < 0 || dst[i] > 1 {
				t.Fatalf("%v: out of range %v", fn, dst[i])
			}
			if i > 0 && dst[i] < dst[i-1] {
				t.Fatalf("%v: not monotonic at %v", fn, src[i])
			}
		}
	}
}

func TestApplyLUT(t *testing.T) {
	t.Parallel()
	lut := &LUT{FirstMapped: -2, Data: []uint16{0, 100, 200, 255}, Bits: 8}
	in := []float32{-100, -2, -1.4, -0.6, 0, 1, 1000, float32(math.NaN())}
	want := []float64{0, 0, 100.0 / 255, 100.0 / 255, 200.0 / 255, 1, 1, 0}
	dst := make([]float32, len(in))
	ApplyLUT(dst, in, lut)
	for i := range dst {
		if !near(float64(dst[i]), want[i]) {
			t.Errorf("x=%v: got %v, want %v", in[i], dst[i], want[i])
		}
	}
	// Entries above 2^Bits-1 clamp to 1.
	ApplyLUT(dst[:1], []float32{0}, &LUT{Data: []uint16{4000}, Bits: 8})
	if dst[0] != 1 {
		t.Errorf("overflowing entry: got %v, want 1", dst[0])
	}
	ApplyLUT(dst[:1], []float32{3}, &LUT{})
	if dst[0] != 0 {
		t.Errorf("empty LUT: got %v", dst[0])
	}
}

func TestAuto(t *testing.T) {
	t.Parallel()
	// 10000 values 0..9999 plus two outliers: the window must ignore them.
	src := make([]float32, 0, 10002)
	for i := range 10000 {
		src = append(src, float32(i))
	}
	src = append(src, -50000, 90000)
	p := Auto(src)
	lo, hi := p.Center-p.Width/2, p.Center+p.Width/2
	if lo < -100 || lo > 150 || hi < 9850 || hi > 10100 {
		t.Errorf("auto window [%g, %g], want about [50, 9950]", lo, hi)
	}
	if p.Function != LinearExact || p.Explanation != "AUTO" {
		t.Errorf("got %+v", p)
	}
	if q := Auto(src); q != p {
		t.Errorf("not deterministic: %+v vs %+v", p, q)
	}
	if p := Auto([]float32{7, 7, 7}); p.Center != 7 || p.Width != 1 {
		t.Errorf("constant: %+v", p)
	}
	if p := Auto(nil); !p.Valid() {
		t.Errorf("empty: %+v", p)
	}
	if p := Auto([]float32{float32(math.NaN()), 1, 3}); !p.Valid() || p.Center < 1 || p.Center > 3 {
		t.Errorf("with NaN: %+v", p)
	}
}

func TestParseFunction(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Function{"": Linear, "LINEAR": Linear, "linear_exact": LinearExact, " SIGMOID ": Sigmoid} {
		got, err := ParseFunction(in)
		if err != nil || got != want {
			t.Errorf("%q: got %v, %v", in, got, err)
		}
		if got.String() == "" {
			t.Error("empty String")
		}
	}
	if _, err := ParseFunction("GAMMA"); err == nil {
		t.Error("GAMMA accepted")
	}
}

func BenchmarkApply(b *testing.B) {
	src := make([]float32, 2500*2048)
	for i := range src {
		src[i] = float32(i % 4096)
	}
	dst := make([]float32, len(src))
	for _, fn := range []Function{Linear, LinearExact, Sigmoid} {
		b.Run(fn.String(), func(b *testing.B) {
			b.SetBytes(int64(4 * len(src)))
			b.ReportAllocs()
			loop(b, func() { Apply(dst, src, Params{Center: 2048, Width: 3000, Function: fn}) })
		})
	}
	b.Run("LUT", func(b *testing.B) {
		lut := &LUT{Data: make([]uint16, 4096), Bits: 12}
		for i := range lut.Data {
			lut.Data[i] = uint16(i)
		}
		b.SetBytes(int64(4 * len(src)))
		b.ReportAllocs()
		loop(b, func() { ApplyLUT(dst, src, lut) })
	})
	b.Run("Auto", func(b *testing.B) {
		b.SetBytes(int64(4 * len(src)))
		b.ReportAllocs()
		loop(b, func() { Auto(src) })
	})
}

func TestAutoSampled(t *testing.T) {
	t.Parallel()
	// 3M values (sampled with a stride) in 0..2999 plus extreme outliers.
	src := make([]float32, 3_000_000)
	for i := range src {
		src[i] = float32(i % 3000)
	}
	for i := 0; i < len(src); i += 1001 {
		src[i] = 1e6
	}
	src[5] = float32(math.Inf(1))
	p := Auto(src)
	lo, hi := p.Center-p.Width/2, p.Center+p.Width/2
	if lo < 0 || lo > 40 || hi < 2960 || hi > 3010 {
		t.Errorf("auto window [%g, %g], want about [15, 2985]", lo, hi)
	}
}

func TestAutoExcluding(t *testing.T) {
	t.Parallel()
	// 40% padding at 0, anatomy in 1000..1999.
	src := make([]float32, 0, 10000)
	for i := range 6000 {
		src = append(src, float32(1000+i%1000))
	}
	for range 4000 {
		src = append(src, 0)
	}
	p := AutoExcluding(src, 0, 0)
	lo := p.Center - p.Width/2
	if lo < 990 || lo > 1010 {
		t.Errorf("excluding padding: window starts at %g, want about 1005", lo)
	}
	if q := Auto(src); q.Center-q.Width/2 > 1 {
		t.Errorf("without exclusion the padding should set the low end: %+v", q)
	}
}
