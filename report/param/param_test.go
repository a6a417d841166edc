package param

import (
	"testing"

	"github.com/cspine/cspine/pipeline/result"
)

func TestAllParametersUseContractLandmarks(t *testing.T) {
	ps := All()
	if len(ps) != 5+len(result.SegmentNames) {
		t.Fatalf("%d parameters", len(ps))
	}
	sva := 17.2
	p := &result.Parameters{C2C7CobbDeg: 1, C2SlopeDeg: 2, C7SlopeDeg: 3, C7SupSlopeDeg: 4, C2C7SVAmm: &sva,
		SegmentalDeg: map[string]float64{"C2-C3": 5, "C3-C4": 6, "C4-C5": 7, "C5-C6": 8, "C6-C7": 9}}
	seen := map[float64]bool{}
	for _, pp := range ps {
		for _, n := range pp.Landmarks() {
			if result.LandmarkIndex(n) < 0 {
				t.Errorf("%s uses unknown landmark %s", pp.Key, n)
			}
		}
		v, ok := pp.Value(p)
		if !ok || seen[v] {
			t.Errorf("%s: value %v ok %v", pp.Key, v, ok)
		}
		seen[v] = true
	}
	p.C2C7SVAmm = nil
	for _, pp := range ps {
		if _, ok := pp.Value(p); ok == (pp.Key == "c2c7_sva_mm") {
			t.Errorf("%s: null handling", pp.Key)
		}
	}
}
