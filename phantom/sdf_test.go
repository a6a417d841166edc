package phantom

import (
	"math"
	"testing"
)

func TestFastMath(t *testing.T) {
	for x := -80.0; x <= 0; x += 0.00137 {
		if got, want := fastExp(x), math.Exp(x); math.Abs(got-want) > 1e-10*want+1e-300 {
			t.Fatalf("fastExp(%v) = %v, want %v", x, got, want)
		}
	}
	for x := 1e-6; x < 1e4; x *= 1.0137 {
		if got, want := fastLog(x), math.Log(x); math.Abs(got-want) > 2e-6 {
			t.Fatalf("fastLog(%v) = %v, want %v", x, got, want)
		}
	}
}

func TestPolySDF(t *testing.T) {
	sq := newPolySDF([]vec{{0, 0}, {10, 0}, {10, 10}, {0, 10}})
	cases := []struct{ x, y, want float64 }{
		{5, 5, 5}, {1, 5, 1}, {-2, 5, -2}, {13, 14, -5}, {10, 5, 0},
	}
	for _, c := range cases {
		if got := sq.at(c.x, c.y); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("sdf(%v,%v) = %v, want %v", c.x, c.y, got, c.want)
		}
	}
}
