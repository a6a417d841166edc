package decode

import (
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// phantomPixels returns a deterministic radiograph-like 12-bit image: smooth
// anatomy-sized structures, an edge, and noise, so that compression and
// histograms behave as on real data.
func phantomPixels(rows, cols int, bits int, seed uint64) []int {
	r := rand.New(rand.NewPCG(seed, 7))
	maxV := float64(int(1)<<bits - 1)
	px := make([]int, rows*cols)
	for y := 0; y < rows; y++ {
		for x := 0; x < cols; x++ {
			fx, fy := float64(x)/float64(cols), float64(y)/float64(rows)
			v := 0.35 + 0.25*math.Sin(6*fx+2*fy) + 0.15*math.Cos(17*fy*fx)
			if (fx-0.5)*(fx-0.5)+(fy-0.45)*(fy-0.45) < 0.04 {
				v += 0.2
			}
			v += 0.02 * r.NormFloat64()
			px[y*cols+x] = int(math.Round(math.Max(0, math.Min(1, v)) * maxV))
		}
	}
	return px
}

// cpuTime is the process's user+system CPU time. The benchmarks report it
// per operation ("cpu-ms/op") besides wall time, because on a shared 2-core
// machine wall time mostly measures the other load.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loop runs f b.N times and reports CPU time per operation.
func loop(b *testing.B, f func()) {
	c0 := cpuTime()
	for b.Loop() {
		f()
	}
	b.ReportMetric(float64(cpuTime()-c0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

func benchImage(b *testing.B) []byte {
	spec := imageSpec{rows: 2500, cols: 2048, bitsAlloc: 16, bitsStore: 12, photometric: "MONOCHROME1",
		pixels: u16(phantomPixels(2500, 2048, 12, 1)...),
		extra: []el{{tag: tagWindowCenter, vr: "DS", val: text("2048")}, {tag: tagWindowWidth, vr: "DS", val: text("4096")},
			{tag: tagRescaleSlope, vr: "DS", val: text("1")}, {tag: tagRescaleIntercept, vr: "DS", val: text("0")}}}
	return encode(b, explicitLE, spec.elems())
}

// BenchmarkDecodeNative16 decodes a 2500×2048 12-in-16-bit MONOCHROME1 image
// from memory; /display adds the windowing into a reused buffer.
func BenchmarkDecodeNative16(b *testing.B) {
	data := benchImage(b)
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		loop(b, func() {
			if _, err := Decode(data); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("decode+display", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		dst := make([]float32, 2500*2048)
		loop(b, func() {
			im, err := Decode(data)
			if err != nil {
				b.Fatal(err)
			}
			im.DisplayTo(dst)
		})
	})
}

// benchCompressed compresses the 2500×2048 benchmark image with a DCMTK tool.
func benchCompressed(b *testing.B, spec imageSpec, tool ...string) []byte {
	b.Helper()
	dir := b.TempDir()
	src := filepath.Join(dir, "src.dcm")
	if err := os.WriteFile(src, encode(b, explicitLE, spec.elems()), 0o600); err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(dir, "out.dcm")
	path, err := exec.LookPath(tool[0])
	if err != nil {
		b.Fatalf("DCMTK tool %s not found: %v", tool[0], err)
	}
	if msg, err := exec.Command(path, append(tool[1:], src, out)...).CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", tool[0], err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func benchDecode(b *testing.B, data []byte) {
	b.SetBytes(2500 * 2048 * 2)
	b.ReportAllocs()
	dst := make([]float32, 2500*2048)
	loop(b, func() {
		im, err := Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		im.DisplayTo(dst)
	})
}

// BenchmarkDecodeCompressed decodes and windows 2500×2048 images compressed
// by DCMTK (SetBytes counts the 16-bit pixel matrix, not the stream).
func BenchmarkDecodeCompressed(b *testing.B) {
	spec16 := imageSpec{rows: 2500, cols: 2048, bitsAlloc: 16, bitsStore: 12, pixels: u16(phantomPixels(2500, 2048, 12, 1)...)}
	px8 := phantomPixels(2500, 2048, 8, 1)
	b8 := make([]byte, len(px8))
	for i, v := range px8 {
		b8[i] = byte(v)
	}
	spec8 := imageSpec{rows: 2500, cols: 2048, bitsAlloc: 8, pixels: b8}
	b.Run("jpeg_lossless_sv1_12bit", func(b *testing.B) { benchDecode(b, benchCompressed(b, spec16, "dcmcjpeg", "+e1")) })
	b.Run("rle_12bit", func(b *testing.B) { benchDecode(b, benchCompressed(b, spec16, "dcmcrle")) })
	b.Run("jpeg_baseline_8bit", func(b *testing.B) { benchDecode(b, benchCompressed(b, spec8, "dcmcjpeg", "+eb")) })
}

// BenchmarkFileNative16 is BenchmarkDecodeNative16/decode+display through
// File, reading the object from disk (page cache) as cspine analyze does.
func BenchmarkFileNative16(b *testing.B) {
	path := filepath.Join(b.TempDir(), "native16.dcm")
	if err := os.WriteFile(path, benchImage(b), 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(2500 * 2048 * 2)
	b.ReportAllocs()
	dst := make([]float32, 2500*2048)
	loop(b, func() {
		im, err := File(path)
		if err != nil {
			b.Fatal(err)
		}
		im.DisplayTo(dst)
	})
}
