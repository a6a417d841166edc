package dicomio

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Source is what a report needs to know about the measured image: its
// identity (for references and deterministic UIDs) and the Patient, General
// Study and Patient Study module attributes it copies, so that the report
// lands in the same patient and study.
type Source struct {
	SOPClassUID       string
	SOPInstanceUID    string
	StudyInstanceUID  string
	SeriesInstanceUID string
	SeriesNumber      int // 0 when absent
	Modality          string
	Rows, Columns     int
	// PatientOrientation (0020,0020) of the source, copied into the SC.
	PatientOrientation []string
	// LossyImageCompression (0028,2110) of the source: "01" when the source
	// has been lossy compressed; derived images must keep saying so.
	LossyImageCompression string
	// PatientStudy are the copied Patient, Clinical Trial Subject, General
	// Study, Patient Study and Clinical Trial Study attributes, with the Type
	// 2 attributes of Patient and General Study present (empty when the
	// source lacks them).
	PatientStudy []*dicom.Element
}

// ErrMissing is returned when the source lacks an attribute a report needs.
var ErrMissing = errors.New("required attribute missing")

// copiedTags are the attributes copied from the source: the Patient module
// (PS3.3 C.7.1.1), Clinical Trial Subject (C.7.1.3), General Study
// (C.7.2.1), Patient Study (C.7.2.2) and Clinical Trial Study (C.7.2.3).
// Series- and instance-level attributes are never copied.
var copiedTags = []tag.Tag{
	// Patient
	{Group: 0x0010, Element: 0x0010}, // PatientName
	{Group: 0x0010, Element: 0x0020}, // PatientID
	{Group: 0x0010, Element: 0x0021}, // IssuerOfPatientID
	{Group: 0x0010, Element: 0x0022}, // TypeOfPatientID
	{Group: 0x0010, Element: 0x0024}, // IssuerOfPatientIDQualifiersSequence
	{Group: 0x0010, Element: 0x0030}, // PatientBirthDate
	{Group: 0x0010, Element: 0x0032}, // PatientBirthTime
	{Group: 0x0010, Element: 0x0040}, // PatientSex
	{Group: 0x0010, Element: 0x0200}, // QualityControlSubject
	{Group: 0x0010, Element: 0x0212}, // StrainDescription
	{Group: 0x0010, Element: 0x1001}, // OtherPatientNames
	{Group: 0x0010, Element: 0x1002}, // OtherPatientIDsSequence
	{Group: 0x0010, Element: 0x2160}, // EthnicGroup
	{Group: 0x0010, Element: 0x2201}, // PatientSpeciesDescription
	{Group: 0x0010, Element: 0x2202}, // PatientSpeciesCodeSequence
	{Group: 0x0010, Element: 0x2292}, // PatientBreedDescription
	{Group: 0x0010, Element: 0x2293}, // PatientBreedCodeSequence
	{Group: 0x0010, Element: 0x2297}, // ResponsiblePerson
	{Group: 0x0010, Element: 0x2298}, // ResponsiblePersonRole
	{Group: 0x0010, Element: 0x2299}, // ResponsibleOrganization
	{Group: 0x0010, Element: 0x4000}, // PatientComments
	{Group: 0x0012, Element: 0x0062}, // PatientIdentityRemoved
	{Group: 0x0012, Element: 0x0063}, // DeidentificationMethod
	{Group: 0x0012, Element: 0x0064}, // DeidentificationMethodCodeSequence
	// Clinical Trial Subject
	{Group: 0x0012, Element: 0x0010}, // ClinicalTrialSponsorName
	{Group: 0x0012, Element: 0x0020}, // ClinicalTrialProtocolID
	{Group: 0x0012, Element: 0x0021}, // ClinicalTrialProtocolName
	{Group: 0x0012, Element: 0x0030}, // ClinicalTrialSiteID
	{Group: 0x0012, Element: 0x0031}, // ClinicalTrialSiteName
	{Group: 0x0012, Element: 0x0040}, // ClinicalTrialSubjectID
	{Group: 0x0012, Element: 0x0042}, // ClinicalTrialSubjectReadingID
	// General Study
	{Group: 0x0008, Element: 0x0020}, // StudyDate
	{Group: 0x0008, Element: 0x0030}, // StudyTime
	{Group: 0x0008, Element: 0x0050}, // AccessionNumber
	{Group: 0x0008, Element: 0x0051}, // IssuerOfAccessionNumberSequence
	{Group: 0x0008, Element: 0x0090}, // ReferringPhysicianName
	{Group: 0x0008, Element: 0x0096}, // ReferringPhysicianIdentificationSequence
	{Group: 0x0008, Element: 0x009C}, // ConsultingPhysicianName
	{Group: 0x0008, Element: 0x1030}, // StudyDescription
	{Group: 0x0008, Element: 0x1032}, // ProcedureCodeSequence
	{Group: 0x0008, Element: 0x1048}, // PhysiciansOfRecord
	{Group: 0x0008, Element: 0x1060}, // NameOfPhysiciansReadingStudy
	{Group: 0x0008, Element: 0x1110}, // ReferencedStudySequence
	{Group: 0x0020, Element: 0x000D}, // StudyInstanceUID
	{Group: 0x0020, Element: 0x0010}, // StudyID
	{Group: 0x0032, Element: 0x1033}, // RequestingService
	{Group: 0x0040, Element: 0x1012}, // ReasonForPerformedProcedureCodeSequence
	// Patient Study
	{Group: 0x0008, Element: 0x1080}, // AdmittingDiagnosesDescription
	{Group: 0x0010, Element: 0x1010}, // PatientAge
	{Group: 0x0010, Element: 0x1020}, // PatientSize
	{Group: 0x0010, Element: 0x1030}, // PatientWeight
	{Group: 0x0010, Element: 0x2180}, // Occupation
	{Group: 0x0010, Element: 0x21B0}, // AdditionalPatientHistory
	{Group: 0x0010, Element: 0x21C0}, // PregnancyStatus
	{Group: 0x0038, Element: 0x0010}, // AdmissionID
	// Clinical Trial Study
	{Group: 0x0012, Element: 0x0050}, // ClinicalTrialTimePointID
	{Group: 0x0012, Element: 0x0051}, // ClinicalTrialTimePointDescription
}

// type2Tags are Type 2 attributes of the Patient and General Study modules:
// present, possibly empty, in every object.
var type2Tags = []struct {
	t  tag.Tag
	vr string
}{
	{tag.PatientName, "PN"}, {tag.PatientID, "LO"}, {tag.PatientBirthDate, "DA"},
	{tag.PatientSex, "CS"}, {tag.StudyDate, "DA"}, {tag.StudyTime, "TM"},
	{tag.ReferringPhysicianName, "PN"}, {tag.StudyID, "SH"}, {tag.AccessionNumber, "SH"},
}

// SourceFromDataset extracts a Source from a parsed source image. It fails
// with ErrMissing when an identifying UID is absent.
func SourceFromDataset(ds dicom.Dataset) (Source, error) {
	var s Source
	var err error
	for _, f := range []struct {
		t   tag.Tag
		dst *string
	}{
		{tag.SOPClassUID, &s.SOPClassUID}, {tag.SOPInstanceUID, &s.SOPInstanceUID},
		{tag.StudyInstanceUID, &s.StudyInstanceUID}, {tag.SeriesInstanceUID, &s.SeriesInstanceUID},
	} {
		v := firstString(ds, f.t)
		if v == "" {
			return Source{}, fmt.Errorf("dicomio: source %s: %w", tag.DebugString(f.t), ErrMissing)
		}
		*f.dst = v
	}
	s.Modality = firstString(ds, tag.Modality)
	if v := firstString(ds, tag.SeriesNumber); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			s.SeriesNumber = n
		}
	}
	s.Rows = firstInt(ds, tag.Rows)
	s.Columns = firstInt(ds, tag.Columns)
	if e, err := ds.FindElementByTag(tag.PatientOrientation); err == nil {
		if v, ok := e.Value.GetValue().([]string); ok {
			for _, p := range v {
				if p = strings.TrimSpace(p); p != "" {
					s.PatientOrientation = append(s.PatientOrientation, p)
				}
			}
		}
	}
	s.LossyImageCompression = firstString(ds, tag.LossyImageCompression)
	s.PatientStudy, err = copyPatientStudy(ds)
	if err != nil {
		return Source{}, err
	}
	return s, nil
}

func copyPatientStudy(ds dicom.Dataset) ([]*dicom.Element, error) {
	var out []*dicom.Element
	have := map[tag.Tag]bool{}
	for _, t := range copiedTags {
		e, err := ds.FindElementByTag(t)
		if err != nil {
			continue
		}
		c, err := Clone(e)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
		have[t] = true
	}
	for _, t2 := range type2Tags {
		if have[t2.t] {
			continue
		}
		e, err := Str(t2.t, t2.vr)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// Clone returns a fresh copy of a parsed element, re-padding string values
// for the writer and copying sequences deeply.
func Clone(e *dicom.Element) (*dicom.Element, error) {
	vr := e.RawValueRepresentation
	if e.Value == nil {
		return Str(e.Tag, vr)
	}
	switch e.Value.ValueType() {
	case dicom.Strings:
		vals := e.Value.GetValue().([]string)
		trimmed := make([]string, len(vals))
		for i, v := range vals {
			if vr == "UI" {
				trimmed[i] = trimUI(v)
			} else {
				trimmed[i] = strings.TrimRight(v, " \x00")
			}
		}
		if len(trimmed) == 1 && trimmed[0] == "" {
			trimmed = nil
		}
		return Str(e.Tag, vr, trimmed...)
	case dicom.Ints:
		return Ints(e.Tag, vr, e.Value.GetValue().([]int)...)
	case dicom.Floats:
		return Floats(e.Tag, vr, e.Value.GetValue().([]float64)...)
	case dicom.Bytes:
		return newElement(e.Tag, vr, append([]byte(nil), e.Value.GetValue().([]byte)...))
	case dicom.Sequences:
		items := e.Value.GetValue().([]*dicom.SequenceItemValue)
		out := make([][]*dicom.Element, 0, len(items))
		for _, it := range items {
			var sub []*dicom.Element
			for _, se := range it.GetValue().([]*dicom.Element) {
				c, err := Clone(se)
				if err != nil {
					return nil, err
				}
				sub = append(sub, c)
			}
			out = append(out, sub)
		}
		return Seq(e.Tag, out...)
	default:
		return nil, fmt.Errorf("dicomio: cannot copy %s of value type %v", tag.DebugString(e.Tag), e.Value.ValueType())
	}
}

func firstString(ds dicom.Dataset, t tag.Tag) string {
	e, err := ds.FindElementByTag(t)
	if err != nil || e.Value == nil {
		return ""
	}
	v, ok := e.Value.GetValue().([]string)
	if !ok || len(v) == 0 {
		return ""
	}
	return strings.TrimSpace(trimUI(v[0]))
}

func firstInt(ds dicom.Dataset, t tag.Tag) int {
	e, err := ds.FindElementByTag(t)
	if err != nil || e.Value == nil {
		return 0
	}
	v, ok := e.Value.GetValue().([]int)
	if !ok || len(v) == 0 {
		return 0
	}
	return v[0]
}

// Date formats t as DA (YYYYMMDD) in UTC.
func Date(t time.Time) string { return t.UTC().Format("20060102") }

// Time formats t as TM (HHMMSS.FFFFFF) in UTC.
func Time(t time.Time) string { return t.UTC().Format("150405.000000") }

// DateTime formats t as DT with an explicit UTC offset.
func DateTime(t time.Time) string { return t.UTC().Format("20060102150405.000000") + "+0000" }

// TimezoneOffset is the value of (0008,0201) for times written by Date/Time.
const TimezoneOffset = "+0000"

// Kind distinguishes the objects cspine writes into a study.
type Kind int

// Kinds of derived series.
const (
	KindSR Kind = 1
	KindSC Kind = 2
)

// SeriesNumber returns the default Series Number of a cspine series derived
// from src: 9000 + 10 × (source series number mod 100) + kind, so 9001..9992.
// Modalities number their series from 1 upwards and rarely reach 9000, and
// the SR and SC of images from different source series get different
// numbers. A site whose modalities use this range sets the number in the
// writer's options instead.
func SeriesNumber(src Source, k Kind) int {
	n := src.SeriesNumber % 100
	if n < 0 {
		n = -n
	}
	return 9000 + 10*n + int(k)
}

// Device identifies this node: the SR's device observer and, in both
// objects, the General Equipment (and SC Equipment) modules.
type Device struct {
	Manufacturer    string // Manufacturer (0008,0070), Device Observer Manufacturer
	ModelName       string // Manufacturer's Model Name, Device Observer Model Name
	Name            string // Station Name (first 16 characters), Device Observer Name
	UID             string // Device Observer UID (required)
	SerialNumber    string // Device Serial Number (optional)
	SoftwareVersion string // cspine software version, first value of Software Versions
}

// Validate reports a missing required field.
func (d Device) Validate() error {
	if d.UID == "" || d.Manufacturer == "" || d.ModelName == "" || d.Name == "" || d.SoftwareVersion == "" {
		return fmt.Errorf("dicomio: Device needs UID, Manufacturer, ModelName, Name and SoftwareVersion")
	}
	return nil
}

// SoftwareVersions returns the values of (0018,1020): the cspine version and
// the model name and version.
func (d Device) SoftwareVersions(modelName, modelVersion string) []string {
	return []string{Shorten("cspine "+d.SoftwareVersion, 64), Shorten(modelName+" "+modelVersion, 64)}
}

// Shorten cuts s to at most n bytes (for SH/LO limits) without splitting a
// UTF-8 sequence.
func Shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Equipment returns the General Equipment module attributes.
func (d Device) Equipment(institution, modelName, modelVersion string) ([]*dicom.Element, error) {
	var b Builder
	b.Add(Str(tag.Manufacturer, "LO", d.Manufacturer))
	if institution != "" {
		b.Add(Str(tag.InstitutionName, "LO", institution))
	}
	b.Add(Str(tag.StationName, "SH", Shorten(d.Name, 16)))
	b.Add(Str(tag.ManufacturerModelName, "LO", d.ModelName))
	if d.SerialNumber != "" {
		b.Add(Str(tag.DeviceSerialNumber, "LO", d.SerialNumber))
	}
	b.Add(Str(tag.SoftwareVersions, "LO", d.SoftwareVersions(modelName, modelVersion)...))
	return b.Elements()
}

// AddSOPCommon adds the SOP Common module's identity and creation time
// (SOP Class and Instance UIDs, Instance Creation Date/Time in UTC and the
// Timezone Offset From UTC), shared by every object cspine writes.
func (b *Builder) AddSOPCommon(sopClass, sopInstance string, t time.Time) {
	b.Add(Str(tag.SOPClassUID, "UI", sopClass))
	b.Add(Str(tag.SOPInstanceUID, "UI", sopInstance))
	b.Add(Str(tag.InstanceCreationDate, "DA", Date(t)))
	b.Add(Str(tag.InstanceCreationTime, "TM", Time(t)))
	b.Add(Str(tag.TimezoneOffsetFromUTC, "SH", TimezoneOffset))
}
