package decode

import (
	"fmt"
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
