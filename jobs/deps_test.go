package jobs_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirection keeps the persistence layer free of the domain
// packages (style guide, "Import direction"): config, migrations, store,
// models and jobs never import the DICOM node, the pipeline (beyond its
// result contract), the reports, ingest or review.
func TestImportDirection(t *testing.T) {
	t.Parallel()
	forbidden := []string{
		"github.com/cspine/cspine/dicomnode", "github.com/cspine/cspine/report",
		"github.com/cspine/cspine/ingest", "github.com/cspine/cspine/review",
		"github.com/cspine/cspine/pipeline/stages", "github.com/cspine/cspine/pipeline/ort",
		"github.com/cspine/cspine/pipeline/decode", "github.com/yalue/onnxruntime_go",
	}
	for _, pkg := range []string{"config", "migrations", "store", "models", "jobs"} {
		out, err := exec.Command("go", "list", "-deps", "github.com/cspine/cspine/"+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
			if strings.HasPrefix(dep, "github.com/cspine/cspine/pipeline") && dep != "github.com/cspine/cspine/pipeline/result" {
				t.Errorf("%s depends on %s (only pipeline/result is allowed)", pkg, dep)
			}
		}
	}
}
