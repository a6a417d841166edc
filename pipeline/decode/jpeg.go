package decode

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
)

// sofInfo is the frame header of a JPEG stream (ITU-T T.81 B.2.2).
type sofInfo struct {
	marker        byte // 0xC0..0xCF
	precision     int
	height, width int
	components    int
}

// scanSOF walks the marker segments of a JPEG stream up to its first SOFn.
func scanSOF(data []byte) (sofInfo, error) {
	if len(data) < 4 || data[0] != 0xFF || data[1] != 0xD8 {
		return sofInfo{}, fmt.Errorf("%w: JPEG stream does not start with SOI", ErrMalformed)
	}
	p := 2
	for {
		for p < len(data) && data[p] == 0xFF && p+1 < len(data) && data[p+1] == 0xFF {
			p++ // fill bytes
		}
		if p+4 > len(data) {
			return sofInfo{}, fmt.Errorf("%w: JPEG stream ends before its frame header", ErrTruncated)
		}
		if data[p] != 0xFF {
			return sofInfo{}, fmt.Errorf("%w: JPEG marker expected at byte %d", ErrMalformed, p)
		}
		m := data[p+1]
		l := int(data[p+2])<<8 | int(data[p+3])
		if l < 2 || p+2+l > len(data) {
			return sofInfo{}, fmt.Errorf("%w: JPEG marker segment %02X of length %d", ErrTruncated, m, l)
		}
		seg := data[p+4 : p+2+l]
		if m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC {
			if len(seg) < 6 {
				return sofInfo{}, fmt.Errorf("%w: short JPEG frame header", ErrMalformed)
			}
			return sofInfo{
				marker:     m,
				precision:  int(seg[0]),
				height:     int(seg[1])<<8 | int(seg[2]),
				width:      int(seg[3])<<8 | int(seg[4]),
				components: int(seg[5]),
			}, nil
		}
		if m == 0xDA || m == 0xD9 {
			return sofInfo{}, fmt.Errorf("%w: JPEG stream without frame header", ErrMalformed)
		}
		p += 2 + l
	}
}

// decodeJPEGBaseline decodes 8-bit lossy JPEG (Processes 1 and 2) with the
// standard library. 12-bit lossy JPEG is rejected.
func decodeJPEGBaseline(data []byte, f pixelFormat, ts string) (sampleSource, error) {
	sof, err := scanSOF(data)
	if err != nil {
		return sampleSource{}, err
	}
	switch sof.marker {
	case 0xC0, 0xC1, 0xC2:
	case 0xC3:
		return sampleSource{}, fmt.Errorf("%w: lossless JPEG stream under %s", ErrMalformed, syntaxName(ts))
	default:
		return sampleSource{}, &UnsupportedTransferSyntaxError{UID: ts, Name: fmt.Sprintf("%s with JPEG SOF%d", syntaxName(ts), sof.marker-0xC0)}
	}
	if sof.precision != 8 {
		return sampleSource{}, &UnsupportedTransferSyntaxError{UID: ts, Name: fmt.Sprintf("%s, %d-bit lossy JPEG", syntaxName(ts), sof.precision)}
	}
	if sof.width != f.cols || sof.height != f.rows {
		return sampleSource{}, fmt.Errorf("%w: JPEG frame is %d×%d, header says %d×%d", ErrMalformed, sof.width, sof.height, f.cols, f.rows)
	}
	if (sof.components == 1) != (f.spp == 1) {
		return sampleSource{}, fmt.Errorf("%w: JPEG frame has %d components, SamplesPerPixel is %d", ErrMalformed, sof.components, f.spp)
	}
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		var fe jpeg.FormatError
		var ue jpeg.UnsupportedError
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
			return sampleSource{}, fmt.Errorf("%w: JPEG: %v", ErrTruncated, err)
		case errors.As(err, &ue):
			return sampleSource{}, fmt.Errorf("%w: JPEG: %v", ErrUnsupported, err)
		case errors.As(err, &fe):
			return sampleSource{}, fmt.Errorf("%w: JPEG: %v", ErrMalformed, err)
		}
		return sampleSource{}, fmt.Errorf("%w: JPEG: %v", ErrMalformed, err)
	}
	b := img.Bounds()
	if b.Dx() != f.cols || b.Dy() != f.rows {
		return sampleSource{}, fmt.Errorf("%w: JPEG decodes to %d×%d, header says %d×%d", ErrMalformed, b.Dx(), b.Dy(), f.cols, f.rows)
	}
	out := make([]byte, f.npix())
	switch im := img.(type) {
	case *image.Gray:
		for y := 0; y < f.rows; y++ {
			copy(out[y*f.cols:(y+1)*f.cols], im.Pix[y*im.Stride:])
		}
	case *image.YCbCr:
		for y := 0; y < f.rows; y++ {
			copy(out[y*f.cols:(y+1)*f.cols], im.Y[y*im.YStride:])
		}
	default:
		for y := 0; y < f.rows; y++ {
			for x := 0; x < f.cols; x++ {
				c := color.RGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.RGBA)
				out[y*f.cols+x] = byte(luma(uint32(c.R), uint32(c.G), uint32(c.B)))
			}
		}
	}
	if f.bitsAlloc == 8 {
		return sampleSource{b8: out}, nil
	}
	u := make([]uint16, len(out))
	for i, v := range out {
		u[i] = uint16(v)
	}
	return sampleSource{u16: u}, nil
}

// decodeJPEGLossless is implemented in jpegll.go.
