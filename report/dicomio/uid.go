package dicomio

import (
	"crypto/sha256"
	"math/big"
	"strings"
)

// UID returns a UID under the 2.25 root (PS3.5 §B.2: "2.25." followed by the
// decimal value of a UUID) whose UUID is a version-8 (RFC 9562, custom) UUID
// made of the first 122 bits of the SHA-256 of the parts. The parts are
// joined with a NUL separator, so ("ab","c") and ("a","bc") differ. The same
// parts always give the same UID; this is how re-sent reports replace rather
// than duplicate the earlier copy in a PACS.
func UID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	var u [16]byte
	copy(u[:], h[:16])
	u[6] = (u[6] & 0x0f) | 0x80 // version 8
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 9562 variant
	return "2.25." + new(big.Int).SetBytes(u[:]).String()
}
