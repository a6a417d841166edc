package phantom

import (
	"math"
	"math/rand/v2"
)

// sampler draws the random quantities of one image. It is seeded from the
// run's seed and the image index only, so every image is reproducible on its
// own, whatever the number of workers.
type sampler struct{ r *rand.Rand }

func newSampler(seed uint64, index int, stream uint64) *sampler {
	return &sampler{rand.New(rand.NewPCG(seed^0x9e3779b97f4a7c15, uint64(index)*0x100000001b3+stream))}
}

func (s *sampler) uniform(lo, hi float64) float64  { return lo + (hi-lo)*s.r.Float64() }
func (s *sampler) normal(mean, sd float64) float64 { return mean + sd*s.r.NormFloat64() }

// normalClip draws from a normal distribution truncated to [lo, hi] by
// rejection (falling back to clamping after a few tries).
func (s *sampler) normalClip(mean, sd, lo, hi float64) float64 {
	for i := 0; i < 8; i++ {
		v := s.normal(mean, sd)
		if v >= lo && v <= hi {
			return v
		}
	}
	return math.Max(lo, math.Min(hi, mean))
}
func (s *sampler) chance(p float64) bool { return s.r.Float64() < p }
func (s *sampler) intn(n int) int        { return s.r.IntN(n) }
func (s *sampler) uint64() uint64        { return s.r.Uint64() }

// pick returns an index drawn with the given weights.
func (s *sampler) pick(w ...float64) int {
	t := 0.0
	for _, x := range w {
		t += x
	}
	u := s.r.Float64() * t
	for i, x := range w {
		if u < x {
			return i
		}
		u -= x
	}
	return len(w) - 1
}
