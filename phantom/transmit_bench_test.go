package phantom

import "testing"

func BenchmarkTransmitRow(b *testing.B) {
	const W = 2000
	row := make([]float32, W)
	src := make([]float32, W)
	srow := make([]float32, W)
	tmp := make([]float32, W)
	for i := range src {
		src[i] = float32(i%700) / 100
		srow[i] = 0.02
	}
	rng := uint64(12345)
	b.SetBytes(W * 4)
	for i := 0; i < b.N; i++ {
		copy(row, src)
		rng = transmitRow(row, srow, tmp, 9000, 10000, 4, rng)
	}
}
