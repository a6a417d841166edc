package reporttest

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// AllowedWarnings are dciodvfy warnings that are expected for cspine's
// objects; docs/conformance.md explains each. Any other warning fails the
// tests, so a new one is noticed and either fixed or documented.
var AllowedWarnings = []*regexp.Regexp{
	// The private coding scheme (PS3.3 §8.2): dciodvfy knows only standard
	// designators; ours is declared in the Coding Scheme Identification
	// Sequence.
	regexp.MustCompile(`^Warning - Unrecognized defined term <99CSPINE> for value 1 of attribute <Coding Scheme Designator>$`),
}

// Validate runs dciodvfy, dcmdump -E and (for SRs) dsrdump on a file and
// fails the test on any dciodvfy error, any warning not in
// AllowedWarnings, or a reader failure. It returns the dciodvfy warnings.
func Validate(tb testing.TB, path string, isSR bool) []string {
	tb.Helper()
	errs, warns, out := Dciodvfy(tb, path)
	if len(errs) > 0 {
		tb.Errorf("dciodvfy errors on %s:\n%s", path, out)
	}
	for _, w := range warns {
		ok := false
		for _, re := range AllowedWarnings {
			if re.MatchString(w) {
				ok = true
				break
			}
		}
		if !ok {
			tb.Errorf("unexpected dciodvfy warning on %s: %s", path, w)
		}
	}
	Tool(tb, "dcmdump")
	out, err := Run(tb, "dcmdump", "-E", path)
	if err != nil {
		tb.Errorf("dcmdump -E failed on %s: %v\n%s", path, err, out)
	}
	if l := dcmtkProblems(out); l != "" {
		tb.Errorf("dcmdump reported problems on %s:\n%s", path, l)
	}
	if isSR {
		// dsrdump checks the relationship content constraints of the IOD
		// (unless told -Ec) and the value types of every content item.
		Tool(tb, "dsrdump")
		out, err := Run(tb, "dsrdump", path)
		if err != nil {
			tb.Errorf("dsrdump failed on %s: %v\n%s", path, err, out)
		}
		if l := dcmtkProblems(out); l != "" {
			tb.Errorf("dsrdump reported problems on %s:\n%s", path, l)
		}
	}
	return warns
}

// dcmtkAllowed are DCMTK warnings about DCMTK's own limits, not about our
// objects: DCMTK 3.6.7's string VR checker does not handle UTF-8, which is
// what a report with non-ASCII names must use (docs/conformance.md).
var dcmtkAllowed = []string{
	"W: The VR checker does not support this Specific Character Set: ISO_IR 192",
}

// dcmtkProblems returns the warning, error and fatal lines of DCMTK log
// output ("W: ...", "E: ...", "F: ..."), less the allowed ones.
func dcmtkProblems(out string) string {
	var bad []string
	for _, l := range strings.Split(out, "\n") {
		if slices.Contains(dcmtkAllowed, strings.TrimSpace(l)) {
			continue
		}
		if strings.HasPrefix(l, "W: ") || strings.HasPrefix(l, "E: ") || strings.HasPrefix(l, "F: ") {
			bad = append(bad, l)
		}
	}
	return strings.Join(bad, "\n")
}

// CheckTagOrder parses Part-10 bytes and fails the test unless every level
// is in strictly ascending tag order.
func CheckTagOrder(tb testing.TB, b []byte) {
	tb.Helper()
	ds, err := dicom.Parse(bytes.NewReader(b), int64(len(b)), nil, dicom.SkipPixelData())
	if err != nil {
		tb.Fatalf("parse back: %v", err)
	}
	var walk func(path string, es []*dicom.Element)
	walk = func(path string, es []*dicom.Element) {
		for i, e := range es {
			if i > 0 && es[i-1].Tag.Compare(e.Tag) >= 0 && e.Tag.Group != 0x0002 {
				tb.Errorf("%s: %s after %s", path, tag.DebugString(e.Tag), tag.DebugString(es[i-1].Tag))
			}
			if e.Value != nil && e.Value.ValueType() == dicom.Sequences {
				for _, it := range e.Value.GetValue().([]*dicom.SequenceItemValue) {
					walk(path+"/"+e.Tag.String(), it.GetValue().([]*dicom.Element))
				}
			}
		}
	}
	walk("", ds.Elements)
}
