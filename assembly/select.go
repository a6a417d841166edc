package assembly

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/pipeline"
)

// Storage SOP classes the pipeline measures (PS3.4 B.5): CR, and DX for
// presentation and for processing.
var measurableClasses = map[string]string{
	"1.2.840.10008.5.1.4.1.1.1":     "CR",
	"1.2.840.10008.5.1.4.1.1.1.1":   "DX for presentation",
	"1.2.840.10008.5.1.4.1.1.1.1.1": "DX for processing",
}

// MinImageSize: smaller images cannot be measured (the pipeline's own
// minimum; thumbnails some archives keep are skipped here already).
const MinImageSize = 256

// Policy says which views are measured besides neutral laterals.
type Policy struct {
	IncludeFlexionExtension bool
	IncludeOblique          bool
}

// Decision is the assembly's verdict on one instance.
type Decision struct {
	InstanceID int64
	Measure    bool
	// Reason: why it is skipped, or what made it eligible.
	Reason string
	// Kind is the reason without its evidence ("frontal view", ...).
	Kind string
	// View is the projection the header gave.
	View pipeline.View
}

// Candidate is an instance with its series and study, as selection needs.
type Candidate struct {
	Instance models.Instance
	Series   models.Series
	Study    models.Study
}

var dynamicWords = map[string]bool{"flexion": true, "extension": true, "flex": true, "ext": true, "flx": true,
	"ante": true, "retro": true, "anteflexion": true, "retroflexion": true, "inklination": true, "reklination": true}

// dynamicView reports whether a description names a flexion or extension
// (functional) view.
func dynamicView(s string) bool {
	for _, tok := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if dynamicWords[tok] {
			return true
		}
	}
	return false
}

// Select decides, for the instances of one study, which are measured:
// CR and DX images large enough, whose header says lateral (View Position,
// Patient Orientation, series and protocol descriptions, via
// pipeline.ClassifyView); frontal views never, oblique and flexion/extension
// views only when the policy says so. When no image of the study is
// lateral by its header, images whose view the header does not tell are
// measured (the pipeline then decides and flags what it is unsure of).
// It is pure and deterministic: decisions come in the order of cands.
func Select(cands []Candidate, p Policy) []Decision {
	out := make([]Decision, len(cands))
	var unknown []int
	lateral := false
	for i, c := range cands {
		d := Decision{InstanceID: c.Instance.ID}
		out[i] = d
		if _, ok := measurableClasses[c.Instance.SOPClassUID]; !ok {
			out[i].Kind = "not a CR or DX image"
			out[i].Reason = fmt.Sprintf("not a CR or DX image (SOP Class %s)", c.Instance.SOPClassUID)
			continue
		}
		if c.Instance.ImageRows > 0 && c.Instance.ImageColumns > 0 &&
			(c.Instance.ImageRows < MinImageSize || c.Instance.ImageColumns < MinImageSize) {
			out[i].Kind = "image too small"
			out[i].Reason = fmt.Sprintf("image too small to measure (%d×%d)", c.Instance.ImageColumns, c.Instance.ImageRows)
			continue
		}
		if pipeline.OtherBodyPart(c.Series.BodyPartExamined) {
			out[i].Kind = "other body part"
			out[i].Reason = fmt.Sprintf("body part %q is not the cervical spine", c.Series.BodyPartExamined)
			continue
		}
		hv := pipeline.ClassifyView(pipeline.ViewHeader{
			ViewPosition: c.Instance.ViewPosition, SeriesDescription: c.Series.SeriesDescription,
			ProtocolName: c.Series.ProtocolName, StudyDescription: c.Study.StudyDescription,
			PatientOrientation: c.Instance.PatientOrientation,
		})
		out[i].View = hv.View
		switch hv.View {
		case pipeline.ViewFrontal:
			out[i].Kind = "frontal (AP/PA) view"
			out[i].Reason = "frontal (AP/PA) view by " + hv.Evidence
			continue
		case pipeline.ViewOblique:
			if !p.IncludeOblique {
				out[i].Kind = "oblique view"
				out[i].Reason = "oblique view by " + hv.Evidence
				continue
			}
		case pipeline.ViewUnknown:
			unknown = append(unknown, i)
			out[i].Kind = "view not stated"
			out[i].Reason = "view not stated in the header"
			continue
		}
		if !p.IncludeFlexionExtension {
			if desc := c.Series.SeriesDescription + " " + c.Series.ProtocolName; dynamicView(desc) {
				out[i].Kind = "flexion/extension view"
				out[i].Reason = fmt.Sprintf("flexion/extension view by description %q", strings.TrimSpace(desc))
				continue
			}
		}
		out[i].Measure = true
		out[i].Kind = hv.View.String() + " view"
		out[i].Reason = hv.View.String() + " view by " + hv.Evidence
		lateral = true
	}
	if !lateral {
		for _, i := range unknown {
			out[i].Measure = true
			out[i].Kind = "view not stated"
			out[i].Reason = "view not stated in the header; no lateral image in the study"
		}
	}
	return out
}
