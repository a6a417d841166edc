package phantom

import "sync"

// Large per-image buffers are recycled between images: a 2000×2500 image
// needs about 50 MB of scratch, and reallocating it for every image keeps the
// garbage collector busy.
var (
	f32Pool sync.Pool
	u16Pool sync.Pool
)

func getF32(n int) []float32 {
	if p, ok := f32Pool.Get().(*[]float32); ok && cap(*p) >= n {
		s := (*p)[:n]
		clear(s)
		return s
	}
	return make([]float32, n)
}

// getF32Dirty is getF32 without clearing a recycled buffer: for callers
// that write every element before reading any.
func getF32Dirty(n int) []float32 {
	if p, ok := f32Pool.Get().(*[]float32); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]float32, n)
}

func putF32(s []float32) { f32Pool.Put(&s) }

func getU16(n int) []uint16 {
	if p, ok := u16Pool.Get().(*[]uint16); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]uint16, n)
}

func putU16(s []uint16) { u16Pool.Put(&s) }
