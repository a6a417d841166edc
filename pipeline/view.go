package pipeline

import (
	"fmt"
	"strings"
	"unicode"
)

// View is the projection of a radiograph as far as the DICOM header says.
type View int

const (
	// ViewUnknown: the header says nothing usable.
	ViewUnknown View = iota
	// ViewLateral: a lateral projection (also flexion, extension, swimmer's).
	ViewLateral
	// ViewFrontal: AP or PA.
	ViewFrontal
	// ViewOblique: an oblique projection.
	ViewOblique
)

func (v View) String() string {
	switch v {
	case ViewLateral:
		return "lateral"
	case ViewFrontal:
		return "frontal (AP/PA)"
	case ViewOblique:
		return "oblique"
	}
	return "unknown"
}

// HeaderView is what the header says about the projection, and which
// attribute said it (for the rejection message).
type HeaderView struct {
	View     View
	Evidence string // e.g. `SeriesDescription "Cervical OBLI 1"`
}

// Words in free-text descriptions, lower case, matched as whole tokens.
// Real CR headers often keep ViewPosition at a default (AP) while the
// series description names the real view, so descriptions win.
var (
	obliqueWords = map[string]bool{"obl": true, "obli": true, "obliq": true, "oblique": true, "oblik": true,
		"rao": true, "lao": true, "rpo": true, "lpo": true, "schraeg": true, "schräg": true, "schrag": true}
	lateralWords = map[string]bool{"lat": true, "lateral": true, "lateralis": true, "ll": true, "rl": true, "seitl": true,
		"seitlich": true, "swimmer": true, "swimmers": true, "flexion": true, "extension": true, "flex": true, "ext": true}
	frontalWords = map[string]bool{"ap": true, "pa": true, "frontal": true, "odontoid": true, "dens": true, "openmouth": true}
)

// classifyText classifies one free-text description; ambiguous text (words of
// two categories, such as a study description "C-SPINE AP LAT") is unknown.
func classifyText(s string) View {
	var obl, lat, fro bool
	for _, tok := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		obl = obl || obliqueWords[tok] || strings.HasPrefix(tok, "obliq")
		lat = lat || lateralWords[tok]
		fro = fro || frontalWords[tok]
	}
	switch {
	case obl && !lat && !fro:
		return ViewOblique
	case obl:
		// "LAT OBL" and the like: an oblique is not measurable either.
		return ViewOblique
	case lat && !fro:
		return ViewLateral
	case fro && !lat:
		return ViewFrontal
	}
	return ViewUnknown
}

// classifyViewPosition maps the defined terms of View Position (0018,5101).
func classifyViewPosition(vp string) View {
	switch strings.ToUpper(strings.TrimSpace(vp)) {
	case "LL", "RL", "LAT", "LATERAL", "LLD", "RLD":
		return ViewLateral
	case "AP", "PA", "FRONTAL":
		return ViewFrontal
	case "RLO", "LLO", "OBL", "OBLIQUE", "RAO", "LAO", "RPO", "LPO":
		return ViewOblique
	}
	return ViewUnknown
}

// ViewHeader holds the header attributes the projection is decided on.
type ViewHeader struct {
	ViewPosition, SeriesDescription, ProtocolName, StudyDescription string
	// PatientOrientation (0020,0020), e.g. "P\\F": only ever taken as
	// evidence for a lateral (rows running anterior or posterior), never
	// against one, because CR readers often write a fixed value (the Agfa
	// lateral of shared/realworld says "L\\F").
	PatientOrientation string
}

// ClassifyView decides the projection from the header. Series description
// and protocol name (one acquisition) come first, then View Position, then a
// study description that names a single kind of view, then Patient
// Orientation.
func ClassifyView(h ViewHeader) HeaderView {
	for _, c := range []struct{ attr, val string }{
		{"SeriesDescription", h.SeriesDescription},
		{"ProtocolName", h.ProtocolName},
	} {
		if v := classifyText(c.val); v != ViewUnknown {
			return HeaderView{v, fmt.Sprintf("%s %q", c.attr, c.val)}
		}
	}
	if v := classifyViewPosition(h.ViewPosition); v != ViewUnknown {
		return HeaderView{v, fmt.Sprintf("ViewPosition %q", h.ViewPosition)}
	}
	if v := classifyText(h.StudyDescription); v != ViewUnknown {
		return HeaderView{v, fmt.Sprintf("StudyDescription %q", h.StudyDescription)}
	}
	if row, _, _ := strings.Cut(strings.ToUpper(h.PatientOrientation), "\\"); row == "A" || row == "P" {
		return HeaderView{ViewLateral, fmt.Sprintf("PatientOrientation %q", h.PatientOrientation)}
	}
	return HeaderView{ViewUnknown, ""}
}

// Body parts (0018,0015) that are certainly not a cervical spine. Anything
// else, including an empty value, a spine, the neck or the head, is accepted:
// the attribute is often missing or generic in practice.
var otherBodyParts = map[string]bool{
	"CHEST": true, "ABDOMEN": true, "PELVIS": true, "LSPINE": true, "SSPINE": true, "COCCYX": true,
	"HIP": true, "KNEE": true, "LEG": true, "ANKLE": true, "FOOT": true, "HEEL": true, "TOE": true,
	"HAND": true, "WRIST": true, "FINGER": true, "THUMB": true, "ELBOW": true, "ARM": true, "FOREARM": true,
	"BREAST": true, "FEMUR": true, "TIBIA": true, "HUMERUS": true, "RIB": true, "RIBS": true, "SACRUM": true,
}

// OtherBodyPart reports whether BodyPartExamined names a region that is
// certainly not the cervical spine.
func OtherBodyPart(bodyPart string) bool {
	return otherBodyParts[strings.ToUpper(strings.TrimSpace(bodyPart))]
}
