package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/cspine/cspine/pipeline/geometry"
)

// C7 shape prior.
//
// When the shoulders hide C7, the C7 specialist sees little of the bone and
// its endplate slopes scatter (on the validation phantoms about twice as
// much with C7 completely hidden as with C7 visible). The vertebrae above
// are visible, and the shape of the column predicts much of C7's tilt: this
// is the paper's argument for locating C7 from the vertebrae above it,
// carried from C7's position to its endplates. C7Prior is a linear model of
// the C7 inferior and superior endplate slopes from the nine endplate slopes
// above (C2 inferior, C3–C6 superior and inferior) as the pipeline measures
// them, and a blend weight per obscuration class: the pipeline moves each C7
// endplate slope from the specialist's value toward the prediction by
// weight·(prior − specialist), weight mixed from the specialist's
// obscuration probabilities, with prior − specialist clipped to a limit (a
// few of the prior's residual SDs): when the two disagree by more than the
// prior's own scatter allows, one of them is broken (for example a global
// stage that failed gives the prior nonsense inputs), and the prior may not
// drag the measurement far; the review flag sees the disagreement. The weight for a visible C7 is zero (the image
// is trusted), so the prior acts only as far as C7 is estimated to be hidden.
// The disagreement between the prior and the specialist is also a review
// feature (a specialist far from what the column above predicts is often
// wrong): see the risk features log_c7_*_prior_delta_deg.
//
// The coefficients are fitted from the pipeline's own landmarks against
// ground truth on a phantom set of its own (`cspine eval --fit-prior`), so
// they encode the training population's curvature: a model set trained on
// other data needs its prior fitted on that data (training/README.md). The
// prior is part of the model set (manifest stage "c7_prior", sha256 checked),
// because it changes measurements.

// PriorInputs names the endplates whose slopes the prior reads, in order.
var PriorInputs = []string{"C2_inf", "C3_sup", "C3_inf", "C4_sup", "C4_inf", "C5_sup", "C5_inf", "C6_sup", "C6_inf"}

// priorPairs are the landmark indices (anterior, posterior label) of
// PriorInputs.
var priorPairs = func() [][2]int {
	p := [][2]int{{geometry.C2InfAnt, geometry.C2InfPost}}
	for n := 3; n <= 6; n++ {
		p = append(p, [2]int{geometry.SupAnt(n), geometry.SupPost(n)}, [2]int{geometry.InfAnt(n), geometry.InfPost(n)})
	}
	return p
}()

// C7Prior predicts the C7 endplate slopes from the endplates above and says
// how far to trust the prediction per obscuration class.
type C7Prior struct {
	Format string `json:"format"`
	// Inputs must equal PriorInputs.
	Inputs []string `json:"inputs"`
	// Inf and Sup predict the C7 inferior and superior endplate slopes
	// (degrees) from the input slopes (degrees).
	Inf PriorRegression `json:"c7_inf"`
	Sup PriorRegression `json:"c7_sup"`
	// Fit records where the coefficients came from.
	Fit *PriorFit `json:"fit,omitempty"`
}

// C7PriorFormat is the format string of a prior file this package reads.
const C7PriorFormat = "cspine-c7-prior/1"

// PriorRegression is one endplate's linear prediction and blend weights.
type PriorRegression struct {
	// Coef are the input slopes' coefficients (len(Inputs)); Intercept in
	// degrees.
	Coef      []float64 `json:"coef"`
	Intercept float64   `json:"intercept"`
	// Blend is the prior's weight for C7 obscuration none, partial and
	// complete, each in [0, 1]; the weight applied is their mix by the
	// specialist's obscuration probabilities.
	Blend [3]float64 `json:"blend"`
	// ResidualSDDeg is the prediction's residual standard deviation on the
	// fitting set (cross-validated).
	ResidualSDDeg float64 `json:"residual_sd_deg"`
	// DeltaLimitDeg clips prior − specialist before blending (degrees,
	// positive): the prior moves a slope by at most the weight times this.
	DeltaLimitDeg float64 `json:"delta_limit_deg"`
}

// PriorFit is the provenance of a C7Prior.
type PriorFit struct {
	Data         string `json:"data"`
	Images       int    `json:"images"`
	Folds        int    `json:"folds"`
	Command      string `json:"command"`
	ModelVersion string `json:"model_version,omitempty"`
}

// ParseC7Prior parses and validates a prior file's content.
func ParseC7Prior(b []byte) (*C7Prior, error) {
	var p C7Prior
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("parse c7 prior: %w", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks the format, the inputs and that every coefficient is
// finite and every blend weight in [0, 1].
func (p *C7Prior) Validate() error {
	var errs []error
	if p.Format != C7PriorFormat {
		errs = append(errs, fmt.Errorf("c7 prior: format %q, want %q", p.Format, C7PriorFormat))
	}
	if len(p.Inputs) != len(PriorInputs) {
		errs = append(errs, fmt.Errorf("c7 prior: inputs %v, want %v", p.Inputs, PriorInputs))
	} else {
		for i := range p.Inputs {
			if p.Inputs[i] != PriorInputs[i] {
				errs = append(errs, fmt.Errorf("c7 prior: inputs %v, want %v", p.Inputs, PriorInputs))
				break
			}
		}
	}
	for _, r := range []struct {
		name string
		r    *PriorRegression
	}{{"c7_inf", &p.Inf}, {"c7_sup", &p.Sup}} {
		if len(r.r.Coef) != len(PriorInputs) {
			errs = append(errs, fmt.Errorf("c7 prior %s: %d coefficients, want %d", r.name, len(r.r.Coef), len(PriorInputs)))
		}
		for _, v := range append([]float64{r.r.Intercept}, r.r.Coef...) {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				errs = append(errs, fmt.Errorf("c7 prior %s: coefficient %v not finite", r.name, v))
			}
		}
		for _, w := range r.r.Blend {
			if !(w >= 0 && w <= 1) {
				errs = append(errs, fmt.Errorf("c7 prior %s: blend weight %v outside [0, 1]", r.name, w))
			}
		}
		if !(r.r.DeltaLimitDeg > 0 && r.r.DeltaLimitDeg <= 180) {
			errs = append(errs, fmt.Errorf("c7 prior %s: delta_limit_deg %v outside (0, 180]", r.name, r.r.DeltaLimitDeg))
		}
	}
	return errors.Join(errs...)
}

// predict is the regression's value for the input slopes.
func (r *PriorRegression) predict(x []float64) float64 {
	v := r.Intercept
	for i, c := range r.Coef {
		v += c * x[i]
	}
	return v
}

// weight is the blend weight for the obscuration probabilities p (none,
// partial, complete), normalised to sum 1; zero when p is all zero.
func (r *PriorRegression) weight(p [3]float64) float64 {
	s := p[0] + p[1] + p[2]
	if !(s > 0) {
		return 0
	}
	return math.Max(0, math.Min(1, (r.Blend[0]*p[0]+r.Blend[1]*p[1]+r.Blend[2]*p[2])/s))
}

// Clip limits a prior − specialist difference to ±DeltaLimitDeg.
func (r *PriorRegression) Clip(d float64) float64 {
	return math.Max(-r.DeltaLimitDeg, math.Min(r.DeltaLimitDeg, d))
}

// endplateSlopes returns the slopes of PriorInputs' endplates of lm.
func endplateSlopes(lm *[geometry.NumLandmarks]geometry.Point, f geometry.Facing) []float64 {
	out := make([]float64, len(priorPairs))
	for i, pr := range priorPairs {
		out[i] = geometry.EndplateSlope(lm[pr[0]], lm[pr[1]], f)
	}
	return out
}

// setEndplateSlope turns the endplate with corners lm[i] and lm[j] about its
// midpoint, keeping its length, so that its slope (oriented by f) becomes
// slope degrees. Each corner keeps its anterior or posterior side.
func setEndplateSlope(lm *[geometry.NumLandmarks]geometry.Point, i, j int, f geometry.Facing, slope float64) {
	ant, post := geometry.Orient(lm[i], lm[j], f)
	antIsI := ant == lm[i]
	mid := geometry.Point{X: (ant.X + post.X) / 2, Y: (ant.Y + post.Y) / 2}
	half := geometry.Dist(ant, post) / 2
	dir := 1.0 // anterior toward larger x
	if f == geometry.FacingLeft {
		dir = -1
	}
	rad := slope * math.Pi / 180
	d := geometry.Point{X: dir * half * math.Cos(rad), Y: half * math.Sin(rad)}
	ant = geometry.Point{X: mid.X + d.X, Y: mid.Y + d.Y}
	post = geometry.Point{X: mid.X - d.X, Y: mid.Y - d.Y}
	if antIsI {
		lm[i], lm[j] = ant, post
	} else {
		lm[i], lm[j] = post, ant
	}
}

// priorOutcome is what applying the prior did, for the review features.
type priorOutcome struct {
	// inputs are the nine endplate slopes read; image the C7 inferior and
	// superior slopes before the prior (the specialist's), prior the
	// predicted ones, after the slopes measured after blending.
	inputs               []float64
	image, prior, weight [2]float64
}

// apply blends the C7 endplates of lm toward the prior (see C7Prior) and
// reports what it read and did. obscuration is the specialist's P(none),
// P(partial), P(complete).
func (p *C7Prior) apply(lm *[geometry.NumLandmarks]geometry.Point, f geometry.Facing, obscuration [3]float64) priorOutcome {
	o := priorOutcome{inputs: endplateSlopes(lm, f)}
	for k, e := range []struct {
		r    *PriorRegression
		i, j int
	}{{&p.Inf, geometry.InfAnt(7), geometry.InfPost(7)}, {&p.Sup, geometry.SupAnt(7), geometry.SupPost(7)}} {
		o.image[k] = geometry.EndplateSlope(lm[e.i], lm[e.j], f)
		o.prior[k] = e.r.predict(o.inputs)
		o.weight[k] = e.r.weight(obscuration)
		if o.weight[k] > 0 && !math.IsNaN(o.prior[k]) {
			setEndplateSlope(lm, e.i, e.j, f, o.image[k]+o.weight[k]*e.r.Clip(o.prior[k]-o.image[k]))
		}
	}
	return o
}
