package decode

import "fmt"

func decodeJPEGLossless(data []byte, f pixelFormat) (sampleSource, error) {
	return sampleSource{}, fmt.Errorf("%w: JPEG Lossless decoder not yet implemented", ErrUnsupported)
}
