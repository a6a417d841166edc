package decode

import "sort"

// transferSyntax describes how this package handles one transfer syntax.
type transferSyntax struct {
	name      string
	supported bool
	implicit  bool
	deflated  bool
	codec     codec
}

type codec int

const (
	codecNative codec = iota
	codecJPEGBaseline
	codecJPEGLossless
	codecRLE
	codecOther
)

// syntaxes lists the transfer syntaxes of PS3.6 Table A-1 this package knows
// by name; only those marked supported are decoded.
var syntaxes = map[string]transferSyntax{
	"1.2.840.10008.1.2":       {name: "Implicit VR Little Endian", supported: true, implicit: true},
	"1.2.840.10008.1.2.1":     {name: "Explicit VR Little Endian", supported: true},
	"1.2.840.10008.1.2.1.99":  {name: "Deflated Explicit VR Little Endian", supported: true, deflated: true},
	"1.2.840.10008.1.2.2":     {name: "Explicit VR Big Endian (retired)", codec: codecOther},
	"1.2.840.10008.1.2.4.50":  {name: "JPEG Baseline (Process 1)", supported: true, codec: codecJPEGBaseline},
	"1.2.840.10008.1.2.4.51":  {name: "JPEG Extended (Process 2 & 4)", supported: true, codec: codecJPEGBaseline},
	"1.2.840.10008.1.2.4.57":  {name: "JPEG Lossless, Non-Hierarchical (Process 14)", supported: true, codec: codecJPEGLossless},
	"1.2.840.10008.1.2.4.70":  {name: "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])", supported: true, codec: codecJPEGLossless},
	"1.2.840.10008.1.2.5":     {name: "RLE Lossless", supported: true, codec: codecRLE},
	"1.2.840.10008.1.2.4.53":  {name: "JPEG Spectral Selection, Non-Hierarchical (retired)", codec: codecOther},
	"1.2.840.10008.1.2.4.55":  {name: "JPEG Full Progression, Non-Hierarchical (retired)", codec: codecOther},
	"1.2.840.10008.1.2.4.80":  {name: "JPEG-LS Lossless", codec: codecOther},
	"1.2.840.10008.1.2.4.81":  {name: "JPEG-LS Lossy (Near-Lossless)", codec: codecOther},
	"1.2.840.10008.1.2.4.90":  {name: "JPEG 2000 Image Compression (Lossless Only)", codec: codecOther},
	"1.2.840.10008.1.2.4.91":  {name: "JPEG 2000 Image Compression", codec: codecOther},
	"1.2.840.10008.1.2.4.92":  {name: "JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)", codec: codecOther},
	"1.2.840.10008.1.2.4.93":  {name: "JPEG 2000 Part 2 Multi-component Image Compression", codec: codecOther},
	"1.2.840.10008.1.2.4.94":  {name: "JPIP Referenced", codec: codecOther},
	"1.2.840.10008.1.2.4.95":  {name: "JPIP Referenced Deflate", codec: codecOther},
	"1.2.840.10008.1.2.4.100": {name: "MPEG2 Main Profile / Main Level", codec: codecOther},
	"1.2.840.10008.1.2.4.101": {name: "MPEG2 Main Profile / High Level", codec: codecOther},
	"1.2.840.10008.1.2.4.102": {name: "MPEG-4 AVC/H.264 High Profile / Level 4.1", codec: codecOther},
	"1.2.840.10008.1.2.4.103": {name: "MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1", codec: codecOther},
	"1.2.840.10008.1.2.4.104": {name: "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video", codec: codecOther},
	"1.2.840.10008.1.2.4.105": {name: "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video", codec: codecOther},
	"1.2.840.10008.1.2.4.106": {name: "MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2", codec: codecOther},
	"1.2.840.10008.1.2.4.107": {name: "HEVC/H.265 Main Profile / Level 5.1", codec: codecOther},
	"1.2.840.10008.1.2.4.108": {name: "HEVC/H.265 Main 10 Profile / Level 5.1", codec: codecOther},
	"1.2.840.10008.1.2.4.201": {name: "High-Throughput JPEG 2000 Image Compression (Lossless Only)", codec: codecOther},
	"1.2.840.10008.1.2.4.202": {name: "High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)", codec: codecOther},
	"1.2.840.10008.1.2.4.203": {name: "High-Throughput JPEG 2000 Image Compression", codec: codecOther},
	"1.2.840.10008.1.2.8.1":   {name: "SMPTE ST 2110-20 Uncompressed Progressive Active Video", codec: codecOther},
	"1.2.840.10008.1.2.1.98":  {name: "Encapsulated Uncompressed Explicit VR Little Endian", codec: codecOther},
	"1.2.840.10008.1.2.4.204": {name: "JPEG XL Lossless", codec: codecOther},
	"1.2.840.10008.1.2.4.205": {name: "JPEG XL JPEG Recompression", codec: codecOther},
	"1.2.840.10008.1.2.4.206": {name: "JPEG XL", codec: codecOther},
	"1.2.840.10008.1.2.6.1":   {name: "RFC 2557 MIME encapsulation (retired)", codec: codecOther},
	"1.2.840.10008.1.2.6.2":   {name: "XML Encoding (retired)", codec: codecOther},
	"1.2.840.10008.1.2.4.52":  {name: "JPEG Extended (Process 3 & 5) (retired)", codec: codecOther},
	"1.2.840.10008.1.2.4.54":  {name: "JPEG Spectral Selection, Non-Hierarchical (Process 7 & 9) (retired)", codec: codecOther},
	"1.2.840.10008.1.2.4.58":  {name: "JPEG Lossless, Non-Hierarchical (Process 15) (retired)", codec: codecOther},
	"1.2.840.10008.1.2.4.65":  {name: "JPEG Lossless, Hierarchical (Process 28) (retired)", codec: codecOther},
	"1.2.840.10008.1.2.4.66":  {name: "JPEG Lossless, Hierarchical (Process 29) (retired)", codec: codecOther},
}

func syntaxName(uid string) string {
	if s, ok := syntaxes[uid]; ok {
		return s.name
	}
	return "unknown transfer syntax"
}

// SupportedTransferSyntaxes returns the UIDs of the transfer syntaxes a
// Storage SCP can accept knowing this package decodes every object sent in
// them, sorted. JPEG Extended (.51) is left out although 8-bit .51 objects
// decode: it also carries 12-bit lossy data, which does not, and an SCU with
// 8-bit lossy data must offer JPEG Baseline (.50) anyway (PS3.5 §10.2).
func SupportedTransferSyntaxes() []string {
	var out []string
	for uid, s := range syntaxes {
		if s.supported && uid != "1.2.840.10008.1.2.4.51" {
			out = append(out, uid)
		}
	}
	sort.Strings(out)
	return out
}

// TransferSyntaxName returns the PS3.6 name of a transfer syntax UID, or
// "unknown transfer syntax".
func TransferSyntaxName(uid string) string { return syntaxName(uid) }
