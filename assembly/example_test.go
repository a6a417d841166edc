package assembly_test

import (
	"fmt"

	"github.com/cspine/cspine/assembly"
	"github.com/cspine/cspine/models"
)

// A study with a lateral, an AP and a flexion view: only the neutral
// lateral is measured by default.
func ExampleSelect() {
	study := models.Study{StudyDescription: "C-SPINE 3 VIEWS"}
	cands := []assembly.Candidate{
		{Instance: models.Instance{ID: 1, SOPClassUID: "1.2.840.10008.5.1.4.1.1.1", ViewPosition: "LL", ImageRows: 2500, ImageColumns: 2048},
			Series: models.Series{SeriesDescription: "C-Spine LAT"}, Study: study},
		{Instance: models.Instance{ID: 2, SOPClassUID: "1.2.840.10008.5.1.4.1.1.1", ViewPosition: "AP", ImageRows: 2500, ImageColumns: 2048},
			Series: models.Series{SeriesDescription: "C-Spine AP"}, Study: study},
		{Instance: models.Instance{ID: 3, SOPClassUID: "1.2.840.10008.5.1.4.1.1.1", ViewPosition: "LL", ImageRows: 2500, ImageColumns: 2048},
			Series: models.Series{SeriesDescription: "C-Spine LAT flexion"}, Study: study},
	}
	for _, d := range assembly.Select(cands, assembly.Policy{}) {
		fmt.Printf("%d measure=%v: %s\n", d.InstanceID, d.Measure, d.Reason)
	}
	// Output:
	// 1 measure=true: lateral view by SeriesDescription "C-Spine LAT"
	// 2 measure=false: frontal (AP/PA) view by SeriesDescription "C-Spine AP"
	// 3 measure=false: flexion/extension view by description "C-Spine LAT flexion"
}
