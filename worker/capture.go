package worker

import (
	"context"
	"math"

	"github.com/cspine/cspine/pipeline"
	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/pipeline/stages"
)

// CapturingStages wraps the pipeline's stages so that the analyze worker
// can keep the stage-1 (global) positions of the landmarks the specialists
// refined: result.Result carries only the final landmarks, and the review
// tool shows the global and the refined C7 side by side. Build the
// pipeline.Analyzer the worker uses around it. It changes nothing in what
// the stages compute.
type CapturingStages struct {
	Inner pipeline.Stages
}

// Run implements pipeline.Stages.
func (c CapturingStages) Run(ctx context.Context, in stages.Input, hierarchical bool) (*stages.Output, error) {
	out, err := c.Inner.Run(ctx, in, hierarchical)
	if cp, ok := ctx.Value(captureKey{}).(*capture); ok && err == nil && out != nil {
		cp.ok = true
		cp.global, cp.conf = out.Global, out.GlobalConf // arrays: copied
	}
	return out, err
}

// Info implements pipeline.Stages.
func (c CapturingStages) Info() stages.Info { return c.Inner.Info() }

type captureKey struct{}

type capture struct {
	ok     bool
	global [23]stages.Point
	conf   [23]float64
}

// globalOfRefined returns the stage-1 landmarks of the names res reports
// as refined, rounded as the pipeline rounds its landmarks.
func (cp *capture) globalOfRefined(res *result.Result) []result.Landmark {
	if cp == nil || !cp.ok {
		return nil
	}
	var out []result.Landmark
	for _, l := range res.Landmarks {
		if l.Stage != result.StageRefined {
			continue
		}
		i := result.LandmarkIndex(l.Name)
		if i < 0 || i >= len(cp.global) {
			continue
		}
		out = append(out, result.Landmark{Name: l.Name, Stage: result.StageGlobal,
			X: roundTo(cp.global[i].X, 0.01), Y: roundTo(cp.global[i].Y, 0.01), Confidence: roundTo(cp.conf[i], 0.001)})
	}
	return out
}

func roundTo(v, step float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v/step) * step
}
