package sr

import (
	"fmt"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/report/dicomio"
)

// Code is a coded concept (PS3.3 Table 8.8-1). Codes compare by scheme and
// value, never by meaning.
type Code struct {
	Value   string // Code Value (0008,0100), at most 16 characters
	Scheme  string // Coding Scheme Designator (0008,0102)
	Meaning string // Code Meaning (0008,0104), at most 64 characters
}

// Equal reports whether two codes denote the same concept.
func (c Code) Equal(o Code) bool { return c.Value == o.Value && c.Scheme == o.Scheme }

func (c Code) String() string { return fmt.Sprintf("(%s, %s, %q)", c.Value, c.Scheme, c.Meaning) }

// Validate checks the lengths the Basic Code Sequence Macro allows.
func (c Code) Validate() error {
	if c.Value == "" || len(c.Value) > 16 {
		return fmt.Errorf("sr: code value %q must have 1..16 characters", c.Value)
	}
	if c.Scheme == "" || len(c.Scheme) > 16 {
		return fmt.Errorf("sr: coding scheme %q must have 1..16 characters", c.Scheme)
	}
	if c.Meaning == "" || len(c.Meaning) > 64 {
		return fmt.Errorf("sr: code meaning %q must have 1..64 characters", c.Meaning)
	}
	return nil
}

// item returns the elements of one code sequence item.
func (c Code) item() ([]*dicom.Element, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var b dicomio.Builder
	b.Add(dicomio.Str(tag.CodeValue, "SH", c.Value))
	b.Add(dicomio.Str(tag.CodingSchemeDesignator, "SH", c.Scheme))
	b.Add(dicomio.Str(tag.CodeMeaning, "LO", c.Meaning))
	return b.Elements()
}

// seq returns a code sequence element holding one code.
func (c Code) seq(t tag.Tag) (*dicom.Element, error) {
	it, err := c.item()
	if err != nil {
		return nil, err
	}
	return dicomio.Seq(t, it)
}

// PrivateScheme is cspine's private coding scheme designator. PS3.3 §8.2:
// designators beginning with "99" are private; it is declared in the Coding
// Scheme Identification Sequence of every SR.
const PrivateScheme = "99CSPINE"

// Private coding scheme declaration (Coding Scheme Identification Sequence).
const (
	PrivateSchemeName    = "cspine cervical alignment codes"
	PrivateSchemeVersion = "1"
	PrivateSchemeOrg     = "cspine project"
)

// Standard codes (see docs/conformance.md for where each is checked).
var (
	codeImagingMeasurementReport = Code{"126000", "DCM", "Imaging Measurement Report"}
	codeLanguage                 = Code{"121049", "DCM", "Language of Content Item and Descendants"}
	codeEnglishUS                = Code{"en-US", "RFC5646", "English (United States)"}
	codeObserverType             = Code{"121005", "DCM", "Observer Type"}
	codeDevice                   = Code{"121007", "DCM", "Device"}
	codePerson                   = Code{"121006", "DCM", "Person"}
	codeDeviceObserverUID        = Code{"121012", "DCM", "Device Observer UID"}
	codeDeviceObserverName       = Code{"121013", "DCM", "Device Observer Name"}
	codeDeviceObserverMfr        = Code{"121014", "DCM", "Device Observer Manufacturer"}
	codeDeviceObserverModel      = Code{"121015", "DCM", "Device Observer Model Name"}
	codeDeviceObserverSerial     = Code{"121016", "DCM", "Device Observer Serial Number"}
	codePersonObserverName       = Code{"121008", "DCM", "Person Observer Name"}
	codePersonObserverOrg        = Code{"121009", "DCM", "Person Observer's Organization Name"}
	codeProcedureReported        = Code{"121058", "DCM", "Procedure reported"}
	codeImageLibrary             = Code{"111028", "DCM", "Image Library"}
	codeImageLibraryGroup        = Code{"126200", "DCM", "Image Library Group"}
	codeModality                 = Code{"121139", "DCM", "Modality"}
	codeTargetRegion             = Code{"123014", "DCM", "Target Region"}
	codeImageView                = Code{"111031", "DCM", "Image View"}
	codeLateral                  = Code{"399067008", "SCT", "Lateral"}
	codeCervicalSpine            = Code{"122494005", "SCT", "Cervical spine"}
	codeImagingMeasurements      = Code{"126010", "DCM", "Imaging Measurements"}
	codeMeasurementGroup         = Code{"125007", "DCM", "Measurement Group"}
	codeTrackingIdentifier       = Code{"112039", "DCM", "Tracking Identifier"}
	codeTrackingUID              = Code{"112040", "DCM", "Tracking Unique Identifier"}
	codeFindingSite              = Code{"363698007", "SCT", "Finding Site"}
	codeTopographicalModifier    = Code{"106233006", "SCT", "Topographical modifier"}
	codeInferior                 = Code{"261089000", "SCT", "Inferior"}
	codeSuperior                 = Code{"264217000", "SCT", "Superior"}
	codeMeasurementMethod        = Code{"370129005", "SCT", "Measurement Method"}
	codeAlgorithmName            = Code{"111001", "DCM", "Algorithm Name"}
	codeAlgorithmVersion         = Code{"111003", "DCM", "Algorithm Version"}
	codeAlgorithmParameters      = Code{"111002", "DCM", "Algorithm Parameters"}
	codeCobbAngle                = Code{"285285000", "SCT", "Cobb angle"}
	codeSourceOfMeasurement      = Code{"121112", "DCM", "Source of Measurement"}
	codeArmOfAngle               = Code{"121223", "DCM", "Arm of angle"}
	codeQualitativeEvaluations   = Code{"C0034375", "UMLS", "Qualitative Evaluations"}
	codeYes                      = Code{"373066001", "SCT", "Yes"}
	codeNo                       = Code{"373067005", "SCT", "No"}
	codeDegree                   = Code{"deg", "UCUM", "degree"}
	codeMillimeter               = Code{"mm", "UCUM", "millimeter"}
	codeMeasurementNotAttempted  = Code{"114007", "DCM", "Measurement not attempted"}
	codePoorImageQuality         = Code{"122742", "DCM", "Poor image quality"}
)

// ProcedureXRCervicalSpineLateral is the default Procedure Reported, an
// extension of the extensible CID 100 (see docs/conformance.md).
var ProcedureXRCervicalSpineLateral = Code{"24943-3", "LN", "XR Cervical spine Lateral"}

// Vertebrae and discs (CID 7603 / CID 7604).
var (
	vertebraCodes = map[string]Code{
		"C2": {"39976000", "SCT", "C2 vertebra"},
		"C3": {"113205007", "SCT", "C3 vertebra"},
		"C4": {"5329002", "SCT", "C4 vertebra"},
		"C5": {"36978003", "SCT", "C5 vertebra"},
		"C6": {"36054005", "SCT", "C6 vertebra"},
		"C7": {"87391001", "SCT", "C7 vertebra"},
	}
	discCodes = map[string]Code{
		"C2-C3": {"1078209008", "SCT", "C2/C3 intervertebral disc"},
		"C3-C4": {"58820006", "SCT", "C3/C4 intervertebral disc"},
		"C4-C5": {"49400002", "SCT", "C4/C5 intervertebral disc"},
		"C5-C6": {"73959003", "SCT", "C5/C6 intervertebral disc"},
		"C6-C7": {"75095006", "SCT", "C6/C7 intervertebral disc"},
	}
)

// Private codes (scheme 99CSPINE): concepts with no standard code.
var (
	codeC2Slope     = Code{"C2SLOPE", PrivateScheme, "C2 inferior endplate slope"}
	codeC7Slope     = Code{"C7SLOPE", PrivateScheme, "C7 inferior endplate slope"}
	codeC7SupSlope  = Code{"C7SUPSLOPE", PrivateScheme, "C7 superior endplate slope"}
	codeSVA         = Code{"C2C7SVA", PrivateScheme, "C2-C7 sagittal vertical axis"}
	codeMethodSlope = Code{"MTH-SLOPE", PrivateScheme, "Endplate angle to image horizontal, + when anterior lower"}
	codeMethodCobb  = Code{"MTH-COBB", PrivateScheme, "Caudal minus cranial endplate slope, + = lordosis"}
	codeMethodSVA   = Code{"MTH-SVA", PrivateScheme, "Horizontal C2 centroid to C7 posterosuperior, + anterior"}
	codeReviewReq   = Code{"REVIEWREQ", PrivateScheme, "Review required"}
	codeReviewRsn   = Code{"REVIEWRSN", PrivateScheme, "Reason for review"}
	codeReviewState = Code{"REVIEWSTATE", PrivateScheme, "Review status"}
	codeStatePend   = Code{"RS-PENDING", PrivateScheme, "Awaiting human review"}
	codeStateNotReq = Code{"RS-NOTREQ", PrivateScheme, "Not flagged for review"}
	codeStateVerif  = Code{"RS-VERIFIED", PrivateScheme, "Verified by human reviewer"}
	codeStateCorr   = Code{"RS-CORRECTED", PrivateScheme, "Corrected by human reviewer"}
	codeC7Obscured  = Code{"C7OBSCURATION", PrivateScheme, "C7 obscuration"}
)

// obscurationCodes are the values of "C7 obscuration" for the contract's
// grades.
var obscurationCodes = map[string]Code{
	result.ObscurationNone:     {"OBSC-NONE", PrivateScheme, "C7 fully visible"},
	result.ObscurationPartial:  {"OBSC-PARTIAL", PrivateScheme, "C7 partially obscured"},
	result.ObscurationComplete: {"OBSC-COMPLETE", PrivateScheme, "C7 completely obscured"},
}

// reasonCodes maps the spec's review reason keys to codes: standard where
// one fits, private otherwise.
var reasonCodes = map[string]Code{
	result.ReasonC7LowConfidence:     {"C7LOWCONF", PrivateScheme, "C7 landmarks have low confidence"},
	result.ReasonC7StageDisagreement: {"C7DISAGREE", PrivateScheme, "Global and specialist C7 positions disagree"},
	result.ReasonC7Obscured:          {"C7OBSCURED", PrivateScheme, "C7 estimated completely obscured"},
	result.ReasonImplausibleGeometry: {"IMPLAUSIBLEGEOM", PrivateScheme, "Landmark geometry outside anatomical ranges"},
	result.ReasonNoPixelSpacing:      {"NOPIXELSPACING", PrivateScheme, "No pixel spacing: mm values unavailable"},
	result.ReasonNotLateral:          {"NOTLATERAL", PrivateScheme, "Image may not be a lateral view"},
	result.ReasonLowImageQuality:     codePoorImageQuality,
}

// ReasonCode returns the code written for a review reason key.
func ReasonCode(key string) (Code, bool) {
	c, ok := reasonCodes[key]
	return c, ok
}
