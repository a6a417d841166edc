// Package sr writes the cspine measurement report: a Comprehensive SR
// (PS3.3 A.35.3) whose content follows TID 1500 "Measurement Report", with
// one TID 1501 measurement group per clinical parameter, 2D SCOORDs of the
// landmarks used referencing the source image, TID 4019 algorithm
// identification, and a qualitative evaluation of the review state.
//
// Build makes the machine report (UNVERIFIED, PRELIMINARY). The same Build
// with Options.Amendment makes a verified or corrected report from human
// review: a new instance (next revision) with the Predecessor Documents
// Sequence, VerificationFlag VERIFIED and the Verifying Observer Sequence.
// See docs/report.md and docs/conformance.md.
package sr

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/report/dicomio"
)

// ComprehensiveSRStorage is the SOP Class UID of the reports.
const ComprehensiveSRStorage = "1.2.840.10008.5.1.4.1.1.88.33"

// SeriesDescription of every cspine SR series.
const SeriesDescription = "cspine AI C-spine alignment measurements (SR)"

// Device identifies this node as the device observer and the equipment.
type Device = dicomio.Device

// Options configure a report. ContentTime and Device.UID are required: the
// output is a function of the inputs alone (bit-identical on a re-run).
type Options struct {
	Device          Device
	InstitutionName string
	// ContentTime is the time the content was made (the analysis, or for an
	// amendment the review); it sets Content, Instance Creation and Series
	// date/time.
	ContentTime time.Time
	// Revision is 0 for machine output and increments with each amendment.
	Revision int
	// SeriesNumber overrides the default from dicomio.SeriesNumber.
	SeriesNumber int
	// Procedure overrides the Procedure Reported code.
	Procedure *Code
	// Amendment, when set, makes a verified/corrected report.
	Amendment *Amendment
}

// Amendment describes the human review that a new report revision records.
type Amendment struct {
	// Predecessor is the report this one replaces.
	Predecessor Reference
	// ObserverName is the verifying observer's name in DICOM PN form
	// ("Family^Given").
	ObserverName string
	Organization string // required: Verifying Organization is Type 1
	VerifiedAt   time.Time
	// Corrected is true when the reviewer changed landmarks or values,
	// false when the machine result was confirmed as is.
	Corrected bool
}

// Reference identifies a stored SR instance.
type Reference struct {
	StudyInstanceUID  string
	SeriesInstanceUID string
	SOPClassUID       string
	SOPInstanceUID    string
}

// ErrInvalid is wrapped by every error about unusable input.
var ErrInvalid = errors.New("invalid report input")

func (o Options) procedure() Code {
	if o.Procedure != nil {
		return *o.Procedure
	}
	return ProcedureXRCervicalSpineLateral
}

// SeriesInstanceUID returns the SR series UID for a source image: the same
// for every revision and model version, so amendments sit in one series.
func SeriesInstanceUID(src dicomio.Source) string {
	return dicomio.UID("cspine", "sr-series", src.SOPInstanceUID)
}

// InstanceUID returns the SOP Instance UID of the report for a source image,
// model version and revision.
func InstanceUID(src dicomio.Source, modelVersion string, revision int) string {
	return dicomio.UID("cspine", "sr", src.SOPInstanceUID, modelVersion, strconv.Itoa(revision))
}

// TrackingUID returns the Tracking Unique Identifier of a parameter's
// measurement group: stable across revisions, so a reviewed report's group
// tracks the machine report's.
func TrackingUID(src dicomio.Source, key string) string {
	return dicomio.UID("cspine", "tracking", src.SOPInstanceUID, key)
}

// Build returns the SR dataset for an analysis result of the source image.
func Build(src dicomio.Source, res result.Result, opts Options) (dicom.Dataset, error) {
	if err := validate(src, res, opts); err != nil {
		return dicom.Dataset{}, err
	}
	root, partial, err := measurementReport(src, res, opts)
	if err != nil {
		return dicom.Dataset{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	content, err := root.encode()
	if err != nil {
		return dicom.Dataset{}, fmt.Errorf("sr: encode content: %w", err)
	}

	t := opts.ContentTime
	seriesNo := opts.SeriesNumber
	if seriesNo == 0 {
		seriesNo = dicomio.SeriesNumber(src, dicomio.KindSR)
	}
	var b dicomio.Builder
	b.AddAll(src.PatientStudy...)
	// SOP Common.
	b.AddSOPCommon(ComprehensiveSRStorage, InstanceUID(src, res.Model.Version, opts.Revision), t)
	b.Add(codingSchemeIdentification())
	// SR Document Series.
	b.Add(dicomio.Str(tag.Modality, "CS", "SR"))
	b.Add(dicomio.Str(tag.SeriesInstanceUID, "UI", SeriesInstanceUID(src)))
	b.Add(dicomio.Str(tag.SeriesNumber, "IS", strconv.Itoa(seriesNo)))
	b.Add(dicomio.Str(tag.SeriesDescription, "LO", SeriesDescription))
	b.Add(dicomio.Seq(tag.ReferencedPerformedProcedureStepSequence))
	// General Equipment.
	eq, err := opts.Device.Equipment(opts.InstitutionName, res.Model.Name, res.Model.Version)
	if err != nil {
		return dicom.Dataset{}, fmt.Errorf("sr: %w", err)
	}
	b.AddAll(eq...)
	// SR Document General.
	b.Add(dicomio.Str(tag.InstanceNumber, "IS", strconv.Itoa(opts.Revision+1)))
	b.Add(dicomio.Str(tag.ContentDate, "DA", dicomio.Date(t)))
	b.Add(dicomio.Str(tag.ContentTime, "TM", dicomio.Time(t)))
	completion := "COMPLETE"
	if partial {
		completion = "PARTIAL"
	}
	b.Add(dicomio.Str(tag.CompletionFlag, "CS", completion))
	if a := opts.Amendment; a != nil {
		b.Add(dicomio.Str(tag.VerificationFlag, "CS", "VERIFIED"))
		b.Add(dicomio.Str(tag.PreliminaryFlag, "CS", "FINAL"))
		b.Add(verifyingObserver(a))
		b.Add(referenceSeq(tag.PredecessorDocumentsSequence, a.Predecessor))
	} else {
		b.Add(dicomio.Str(tag.VerificationFlag, "CS", "UNVERIFIED"))
		b.Add(dicomio.Str(tag.PreliminaryFlag, "CS", "PRELIMINARY"))
	}
	b.Add(opts.procedure().seq(tag.PerformedProcedureCodeSequence))
	b.Add(referenceSeq(tag.CurrentRequestedProcedureEvidenceSequence, Reference{
		StudyInstanceUID: src.StudyInstanceUID, SeriesInstanceUID: src.SeriesInstanceUID,
		SOPClassUID: src.SOPClassUID, SOPInstanceUID: src.SOPInstanceUID,
	}))
	// SR Document Content: the root content item's attributes are top level.
	b.AddAll(content...)

	elems, err := b.Elements()
	if err != nil {
		return dicom.Dataset{}, fmt.Errorf("sr: %w", err)
	}
	return dicomio.NewDataset(elems)
}

func validate(src dicomio.Source, res result.Result, opts Options) error {
	var errs []string
	if res.Status != result.StatusOK {
		errs = append(errs, fmt.Sprintf("result status %q is not %q", res.Status, result.StatusOK))
	}
	if res.SOPInstanceUID != "" && res.SOPInstanceUID != src.SOPInstanceUID {
		errs = append(errs, "result is for another SOP instance than the source")
	}
	if res.Parameters == nil {
		errs = append(errs, "result has no parameters")
	}
	if res.Model == nil || res.Model.Name == "" || res.Model.Version == "" {
		errs = append(errs, "result has no model name and version")
	}
	if res.Review == nil {
		errs = append(errs, "result has no review state")
	}
	if src.SOPInstanceUID == "" || src.SOPClassUID == "" || src.StudyInstanceUID == "" || src.SeriesInstanceUID == "" {
		errs = append(errs, "source lacks SOP class, SOP instance, study or series UID")
	}
	if opts.ContentTime.IsZero() {
		errs = append(errs, "Options.ContentTime is required")
	}
	if err := opts.Device.Validate(); err != nil {
		errs = append(errs, err.Error())
	}
	if opts.Revision < 0 {
		errs = append(errs, "negative revision")
	}
	if a := opts.Amendment; a != nil {
		if opts.Revision < 1 {
			errs = append(errs, "an amendment needs Revision >= 1")
		}
		if a.ObserverName == "" || a.Organization == "" || a.VerifiedAt.IsZero() {
			// Verifying Observer Name, Verifying Organization and
			// Verification DateTime are Type 1 (PS3.3 C.17.2).
			errs = append(errs, "an amendment needs the verifying observer's name, organization and time")
		}
		p := a.Predecessor
		if p.SOPInstanceUID == "" || p.SOPClassUID == "" || p.SeriesInstanceUID == "" || p.StudyInstanceUID == "" {
			errs = append(errs, "an amendment needs the complete predecessor reference")
		}
	} else if opts.Revision != 0 {
		errs = append(errs, "revision > 0 needs an Amendment")
	}
	if len(errs) > 0 {
		return fmt.Errorf("sr: %w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

func codingSchemeIdentification() (*dicom.Element, error) {
	var b dicomio.Builder
	b.Add(dicomio.Str(tag.CodingSchemeDesignator, "SH", PrivateScheme))
	b.Add(dicomio.Str(tag.CodingSchemeVersion, "SH", PrivateSchemeVersion))
	b.Add(dicomio.Str(tag.CodingSchemeName, "ST", PrivateSchemeName))
	b.Add(dicomio.Str(tag.CodingSchemeResponsibleOrganization, "ST", PrivateSchemeOrg))
	it, err := b.Elements()
	if err != nil {
		return nil, err
	}
	return dicomio.Seq(tag.CodingSchemeIdentificationSequence, it)
}

// referenceSeq is a Hierarchical SOP Instance Reference Macro item
// (study > series > instance) in the given sequence.
func referenceSeq(t tag.Tag, r Reference) (*dicom.Element, error) {
	var inst dicomio.Builder
	inst.Add(dicomio.Str(tag.ReferencedSOPClassUID, "UI", r.SOPClassUID))
	inst.Add(dicomio.Str(tag.ReferencedSOPInstanceUID, "UI", r.SOPInstanceUID))
	ie, err := inst.Elements()
	if err != nil {
		return nil, err
	}
	var series dicomio.Builder
	series.Add(dicomio.Seq(tag.ReferencedSOPSequence, ie))
	series.Add(dicomio.Str(tag.SeriesInstanceUID, "UI", r.SeriesInstanceUID))
	se, err := series.Elements()
	if err != nil {
		return nil, err
	}
	var study dicomio.Builder
	study.Add(dicomio.Seq(tag.ReferencedSeriesSequence, se))
	study.Add(dicomio.Str(tag.StudyInstanceUID, "UI", r.StudyInstanceUID))
	st, err := study.Elements()
	if err != nil {
		return nil, err
	}
	return dicomio.Seq(t, st)
}

func verifyingObserver(a *Amendment) (*dicom.Element, error) {
	var b dicomio.Builder
	b.Add(dicomio.Str(tag.VerifyingOrganization, "LO", a.Organization))
	b.Add(dicomio.Str(tag.VerificationDateTime, "DT", dicomio.DateTime(a.VerifiedAt)))
	b.Add(dicomio.Str(tag.VerifyingObserverName, "PN", a.ObserverName))
	b.Add(dicomio.Seq(tag.VerifyingObserverIdentificationCodeSequence))
	it, err := b.Elements()
	if err != nil {
		return nil, err
	}
	return dicomio.Seq(tag.VerifyingObserverSequence, it)
}

// ReferenceOf returns the reference of a report built by Build, for use as
// the predecessor of its amendment.
func ReferenceOf(ds dicom.Dataset) (Reference, error) {
	src, err := dicomio.SourceFromDataset(ds)
	if err != nil {
		return Reference{}, fmt.Errorf("sr: reference of report: %w", err)
	}
	return Reference{
		StudyInstanceUID: src.StudyInstanceUID, SeriesInstanceUID: src.SeriesInstanceUID,
		SOPClassUID: src.SOPClassUID, SOPInstanceUID: src.SOPInstanceUID,
	}, nil
}
