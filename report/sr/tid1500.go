package sr

import (
	"fmt"
	"strings"

	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/report/dicomio"
	"github.com/cspine/cspine/report/param"
)

// measurementReport builds the content tree of TID 1500 "Measurement
// Report" for one analysed image. partial reports whether a parameter of the
// contract could not be reported (its landmarks absent or its value null).
func measurementReport(src dicomio.Source, res result.Result, opts Options) (root Item, partial bool, err error) {
	srcImage := ImageRef{SOPClassUID: src.SOPClassUID, SOPInstanceUID: src.SOPInstanceUID}
	root = Item{
		ValueType:  vtContainer,
		Name:       named(codeImagingMeasurementReport),
		Continuity: "SEPARATE",
		Template:   "1500",
	}
	add := func(it Item) { root.Children = append(root.Children, it) }

	// Row 2: language (TID 1204).
	add(Item{Rel: relHasConcept, ValueType: vtCode, Name: named(codeLanguage), Code: codeEnglishUS})

	// Row 3: observation context (TID 1001 → 1002 → 1004 device observer).
	d := opts.Device
	add(Item{Rel: relHasObsCtx, ValueType: vtCode, Name: named(codeObserverType), Code: codeDevice})
	add(Item{Rel: relHasObsCtx, ValueType: vtUIDRef, Name: named(codeDeviceObserverUID), UID: d.UID})
	add(Item{Rel: relHasObsCtx, ValueType: vtText, Name: named(codeDeviceObserverName), Text: d.Name})
	add(Item{Rel: relHasObsCtx, ValueType: vtText, Name: named(codeDeviceObserverMfr), Text: d.Manufacturer})
	add(Item{Rel: relHasObsCtx, ValueType: vtText, Name: named(codeDeviceObserverModel), Text: d.ModelName})
	if d.SerialNumber != "" {
		add(Item{Rel: relHasObsCtx, ValueType: vtText, Name: named(codeDeviceObserverSerial), Text: d.SerialNumber})
	}
	if a := opts.Amendment; a != nil && a.Corrected {
		// The landmarks of a corrected report were placed by a person.
		add(Item{Rel: relHasObsCtx, ValueType: vtCode, Name: named(codeObserverType), Code: codePerson})
		add(Item{Rel: relHasObsCtx, ValueType: vtPName, Name: named(codePersonObserverName), PName: a.ObserverName})
		if a.Organization != "" {
			add(Item{Rel: relHasObsCtx, ValueType: vtText, Name: named(codePersonObserverOrg), Text: a.Organization})
		}
	}

	// Row 4: procedure reported.
	add(Item{Rel: relHasConcept, ValueType: vtCode, Name: named(codeProcedureReported), Code: opts.procedure()})

	// Row 5: image library (TID 1600), which OHIF requires.
	group := Item{Rel: relContains, ValueType: vtContainer, Name: named(codeImageLibraryGroup), Continuity: "SEPARATE"}
	if m, ok := modalityCode(src.Modality); ok {
		group.Children = append(group.Children, Item{Rel: relHasAcqCtx, ValueType: vtCode, Name: named(codeModality), Code: m})
	}
	group.Children = append(group.Children,
		Item{Rel: relHasAcqCtx, ValueType: vtCode, Name: named(codeTargetRegion), Code: codeCervicalSpine},
		Item{Rel: relHasAcqCtx, ValueType: vtCode, Name: named(codeImageView), Code: codeLateral},
		Item{Rel: relContains, ValueType: vtImage, Image: srcImage},
	)
	add(Item{Rel: relContains, ValueType: vtContainer, Name: named(codeImageLibrary), Continuity: "SEPARATE",
		Children: []Item{group}})

	// Row 6: imaging measurements, one TID 1501 group per parameter.
	meas := Item{Rel: relContains, ValueType: vtContainer, Name: named(codeImagingMeasurements), Continuity: "SEPARATE"}
	idx := param.Index(res.Landmarks)
	for _, p := range param.All() {
		if !p.HasLandmarks(idx) {
			partial = true
			continue
		}
		g, complete, err := measurementGroup(src, res, opts, p, idx, srcImage)
		if err != nil {
			return Item{}, false, fmt.Errorf("sr: group %s: %w", p.Key, err)
		}
		if !complete {
			partial = true
		}
		meas.Children = append(meas.Children, g)
	}
	if len(meas.Children) == 0 {
		return Item{}, false, fmt.Errorf("sr: no parameter can be reported: landmarks missing")
	}
	add(meas)

	// Rows 12-14: qualitative evaluations (review state).
	qe, err := qualitativeEvaluations(res, opts)
	if err != nil {
		return Item{}, false, err
	}
	add(qe)
	return root, partial, nil
}

// measurementGroup is TID 1501 "Measurement and Qualitative Evaluation
// Group" for one parameter: tracking identifier and UID, finding sites,
// method and algorithm identification at group level, and one TID 300 NUM
// whose only child is the INFERRED FROM SCOORD (or, for angles, the two arms)
// selected from the source image. Keeping the NUM's children to the
// coordinates is what lets OHIF draw a slope or SVA group.
func measurementGroup(src dicomio.Source, res result.Result, opts Options, p param.Param,
	idx map[string]result.Landmark, img ImageRef) (g Item, complete bool, err error) {
	g = Item{Rel: relContains, ValueType: vtContainer, Name: named(codeMeasurementGroup), Continuity: "SEPARATE"}
	add := func(it Item) { g.Children = append(g.Children, it) }
	add(Item{Rel: relHasObsCtx, ValueType: vtText, Name: named(codeTrackingIdentifier), Text: p.Label})
	add(Item{Rel: relHasObsCtx, ValueType: vtUIDRef, Name: named(codeTrackingUID), UID: TrackingUID(src, p.Key)})
	for _, fs := range findingSites(p) {
		add(fs)
	}
	add(Item{Rel: relHasConcept, ValueType: vtCode, Name: named(codeMeasurementMethod), Code: methodCode(p)})
	for _, a := range algorithmIdentification(res) {
		add(a)
	}

	num := Item{Rel: relContains, ValueType: vtNum, Name: named(conceptCode(p))}
	unit := codeDegree
	if p.Unit == "mm" {
		unit = codeMillimeter
	}
	num.Num.Unit = unit
	if v, ok := p.Value(res.Parameters); ok {
		num.Num.Value = &v
		complete = true
	} else {
		// PS3.3 C.18.1: an empty Measured Value Sequence with a Numeric Value
		// Qualifier. For SVA without pixel spacing the mm value was not
		// attempted; the points used are still referenced below.
		q := codeMeasurementNotAttempted
		num.Num.Qualifier = &q
	}
	for _, line := range p.Lines {
		a, b := idx[line[0]], idx[line[1]]
		pts := []float64{dicomCoord(a.X), dicomCoord(a.Y), dicomCoord(b.X), dicomCoord(b.Y)}
		sc := Item{Rel: relInferredFrom, ValueType: vtSCoord, Points: pts,
			Children: []Item{{Rel: relSelectedFrom, ValueType: vtImage, Image: img}}}
		switch p.Kind {
		case param.Angle:
			sc.Name = named(codeArmOfAngle)
			sc.Graphic = GraphicPolyline
		case param.Slope:
			sc.Name = named(codeSourceOfMeasurement)
			sc.Graphic = GraphicPolyline
		case param.Distance:
			sc.Name = named(codeSourceOfMeasurement)
			sc.Graphic = GraphicMultipoint
		}
		num.Children = append(num.Children, sc)
	}
	add(num)
	return g, complete, nil
}

// dicomCoord converts a landmark coordinate (pixel centres at integers, the
// measurement contract) to SR image coordinates, where the top-left corner
// of the top-left pixel is 0.0 and a pixel centre is at +0.5 (PS3.3
// C.18.6.1.1).
func dicomCoord(v float64) float64 { return v + 0.5 }

func conceptCode(p param.Param) Code {
	switch p.Key {
	case "c2_slope_deg":
		return codeC2Slope
	case "c7_slope_deg":
		return codeC7Slope
	case "c7_sup_slope_deg":
		return codeC7SupSlope
	case "c2c7_sva_mm":
		return codeSVA
	}
	return codeCobbAngle // C2-C7 and segmental angles
}

func methodCode(p param.Param) Code {
	switch p.Kind {
	case param.Slope:
		return codeMethodSlope
	case param.Distance:
		return codeMethodSVA
	}
	return codeMethodCobb
}

// findingSites returns the Finding Site items of a parameter: the vertebrae
// whose endplates are used (with the Inferior/Superior topographical
// modifier), or the disc level of a segmental angle.
func findingSites(p param.Param) []Item {
	if p.Segment != "" {
		return []Item{{Rel: relHasConcept, ValueType: vtCode, Name: named(codeFindingSite), Code: discCodes[p.Segment]}}
	}
	var out []Item
	seen := map[string]bool{}
	for _, name := range p.Landmarks() {
		v, rest, _ := strings.Cut(name, "_")
		if seen[v] {
			continue
		}
		seen[v] = true
		fs := Item{Rel: relHasConcept, ValueType: vtCode, Name: named(codeFindingSite), Code: vertebraCodes[v]}
		switch {
		case strings.HasPrefix(rest, "inf_"):
			fs.Children = []Item{{Rel: relHasConcept, ValueType: vtCode, Name: named(codeTopographicalModifier), Code: codeInferior}}
		case strings.HasPrefix(rest, "sup_"):
			fs.Children = []Item{{Rel: relHasConcept, ValueType: vtCode, Name: named(codeTopographicalModifier), Code: codeSuperior}}
		}
		out = append(out, fs)
	}
	return out
}

// algorithmIdentification is TID 4019: name, version and parameters of the
// model that produced the landmarks.
func algorithmIdentification(res result.Result) []Item {
	m := res.Model
	items := []Item{
		{Rel: relHasConcept, ValueType: vtText, Name: named(codeAlgorithmName), Text: m.Name},
		{Rel: relHasConcept, ValueType: vtText, Name: named(codeAlgorithmVersion), Text: m.Version},
	}
	var params []string
	if m.Mode != "" {
		params = append(params, "mode="+m.Mode)
	}
	if res.SpacingSource != "" {
		params = append(params, "spacing_source="+res.SpacingSource)
	}
	if res.Facing != "" {
		params = append(params, "facing="+res.Facing)
	}
	for _, p := range params {
		items = append(items, Item{Rel: relHasConcept, ValueType: vtText, Name: named(codeAlgorithmParameters), Text: p})
	}
	return items
}

// qualitativeEvaluations says whether human review is required, why (one
// coded reason per key), and the review status of this revision.
func qualitativeEvaluations(res result.Result, opts Options) (Item, error) {
	qe := Item{Rel: relContains, ValueType: vtContainer, Name: named(codeQualitativeEvaluations), Continuity: "SEPARATE"}
	req := codeNo
	if res.Review.Required {
		req = codeYes
	}
	qe.Children = append(qe.Children, Item{Rel: relContains, ValueType: vtCode, Name: named(codeReviewReq), Code: req})
	for _, r := range res.Review.Reasons {
		c, ok := reasonCodes[r]
		if !ok {
			return Item{}, fmt.Errorf("sr: unknown review reason %q", r)
		}
		qe.Children = append(qe.Children, Item{Rel: relContains, ValueType: vtCode, Name: named(codeReviewRsn), Code: c})
	}
	if res.C7 != nil && res.C7.Obscuration != "" {
		c, ok := obscurationCodes[res.C7.Obscuration]
		if !ok {
			return Item{}, fmt.Errorf("sr: unknown C7 obscuration %q", res.C7.Obscuration)
		}
		qe.Children = append(qe.Children, Item{Rel: relContains, ValueType: vtCode, Name: named(codeC7Obscured), Code: c})
	}
	state := codeStateNotReq
	switch {
	case opts.Amendment != nil && opts.Amendment.Corrected:
		state = codeStateCorr
	case opts.Amendment != nil:
		state = codeStateVerif
	case res.Review.Required:
		state = codeStatePend
	}
	qe.Children = append(qe.Children, Item{Rel: relContains, ValueType: vtCode, Name: named(codeReviewState), Code: state})
	return qe, nil
}

func modalityCode(m string) (Code, bool) {
	switch m {
	case "CR":
		return Code{"CR", "DCM", "Computed Radiography"}, true
	case "DX":
		return Code{"DX", "DCM", "Digital Radiography"}, true
	case "RG":
		return Code{"RG", "DCM", "Radiographic imaging"}, true
	case "OT":
		return Code{"OT", "DCM", "Other"}, true
	}
	return Code{}, false
}
