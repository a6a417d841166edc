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
// carried from C7's position to its endplates.
//
// C7Prior is a linear model of each C7 endplate's slope from the column
// above as the pipeline measures it (the nine endplate slopes C2 inferior,
// C3–C6 superior and inferior, and the directions of the four segments
// joining the C2 inferior endplate and the C3–C6 body centres) and from the
// specialist's slope of the other C7 endplate (a vertebral body's two
// endplates are close to parallel, and one is often less hidden than the
// other), with a blend weight per obscuration class. The pipeline moves
// each C7 endplate slope from the specialist's value toward the prediction
// by weight·clip(prior − specialist), the weight mixed from the
// specialist's obscuration probabilities. The weight for a visible C7 is
// zero (the image is trusted), so the prior acts only as far as C7 is
// estimated to be hidden. The clip is a few of the prior's residual SDs:
// when the two disagree by more than the prior's own scatter allows, one of
// them is broken (for example a failed global stage gives the prior
// nonsense inputs), and the prior may not drag the measurement far. The
// disagreement is also a review feature (a specialist far from what the
// column predicts is often wrong): the risk features
// log_c7_*_prior_delta_deg.
//
// The coefficients are fitted from the pipeline's own landmarks against
// ground truth on a phantom set of its own (`cspine eval --fit-prior`), so
// they encode the training population's curvature and C7 shape: a model set
// trained on other data needs its prior fitted on that data
// (training/README.md). The prior is part of the model set (manifest stage
// "c7_prior", sha256 checked), because it changes measurements.

// PriorSlopeInputs name the endplates whose slopes the prior may read, and
// PriorDirectionInputs the column segments whose directions it may read:
// from the C2 inferior endplate's midpoint to the C3 body centre, then from
// body centre to body centre down to C6 (a body centre is the mean of its
// four corners; a direction is the segment's angle from the image vertical,
// positive toward anterior, in degrees).
var (
	PriorSlopeInputs     = []string{"C2_inf", "C3_sup", "C3_inf", "C4_sup", "C4_inf", "C5_sup", "C5_inf", "C6_sup", "C6_inf"}
	PriorDirectionInputs = []string{"C2C3_dir", "C3C4_dir", "C4C5_dir", "C5C6_dir"}
)

// PriorInputs are every input a prior may read, slopes then directions: what
// `cspine eval --fit-prior` fits on.
var PriorInputs = append(append([]string(nil), PriorSlopeInputs...), PriorDirectionInputs...)

// priorPairs are the landmark indices (anterior, posterior label) of
// PriorSlopeInputs.
var priorPairs = func() [][2]int {
	p := [][2]int{{geometry.C2InfAnt, geometry.C2InfPost}}
	for n := 3; n <= 6; n++ {
		p = append(p, [2]int{geometry.SupAnt(n), geometry.SupPost(n)}, [2]int{geometry.InfAnt(n), geometry.InfPost(n)})
	}
	return p
}()

// priorInputIndex is each input's position in PriorInputs.
var priorInputIndex = func() map[string]int {
	m := make(map[string]int, len(PriorInputs))
	for i, n := range PriorInputs {
		m[n] = i
	}
	return m
}()

// C7Prior predicts the C7 endplate slopes from the endplates above and says
// how far to trust the prediction per obscuration class.
type C7Prior struct {
	Format string `json:"format"`
	// Inputs are the column inputs read (names of PriorInputs, each once),
	// in the order of the regressions' Coef.
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
	// Coef are the inputs' coefficients (len(Inputs)); OtherCoef is the
	// coefficient of the specialist's slope of the other C7 endplate (the
	// superior one for the inferior endplate and vice versa; 0: not read);
	// Intercept in degrees.
	Coef      []float64 `json:"coef"`
	OtherCoef float64   `json:"c7_other_coef"`
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
	if len(p.Inputs) == 0 {
		errs = append(errs, errors.New("c7 prior: no inputs"))
	}
	seen := map[string]bool{}
	for _, n := range p.Inputs {
		if _, ok := priorInputIndex[n]; !ok || seen[n] {
			errs = append(errs, fmt.Errorf("c7 prior: input %q unknown or repeated (inputs are names of %v)", n, PriorInputs))
		}
		seen[n] = true
	}
	for _, r := range []struct {
		name string
		r    *PriorRegression
	}{{"c7_inf", &p.Inf}, {"c7_sup", &p.Sup}} {
		if len(r.r.Coef) != len(p.Inputs) {
			errs = append(errs, fmt.Errorf("c7 prior %s: %d coefficients, want %d", r.name, len(r.r.Coef), len(p.Inputs)))
		}
		for _, v := range append([]float64{r.r.Intercept, r.r.OtherCoef}, r.r.Coef...) {
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

// predict is the regression's value for the inputs x (in Inputs' order)
// and the specialist's slope of the other C7 endplate.
func (r *PriorRegression) predict(x []float64, other float64) float64 {
	v := r.Intercept + r.OtherCoef*other
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

// endplateSlopes returns the slopes of PriorSlopeInputs' endplates of lm.
func endplateSlopes(lm *[geometry.NumLandmarks]geometry.Point, f geometry.Facing) []float64 {
	out := make([]float64, len(priorPairs))
	for i, pr := range priorPairs {
		out[i] = geometry.EndplateSlope(lm[pr[0]], lm[pr[1]], f)
	}
	return out
}

// columnDirections returns the directions of PriorDirectionInputs'
// segments of lm (degrees from the image vertical, positive toward anterior
// as f says).
func columnDirections(lm *[geometry.NumLandmarks]geometry.Point, f geometry.Facing) []float64 {
	mid := func(a, b geometry.Point) geometry.Point {
		return geometry.Point{X: (a.X + b.X) / 2, Y: (a.Y + b.Y) / 2}
	}
	centres := []geometry.Point{mid(lm[geometry.C2InfAnt], lm[geometry.C2InfPost])}
	for n := 3; n <= 6; n++ {
		centres = append(centres, mid(mid(lm[geometry.SupAnt(n)], lm[geometry.SupPost(n)]), mid(lm[geometry.InfAnt(n)], lm[geometry.InfPost(n)])))
	}
	ant := 1.0 // anterior toward larger x
	if f == geometry.FacingLeft {
		ant = -1
	}
	out := make([]float64, len(centres)-1)
	for i := range out {
		a, b := centres[i], centres[i+1]
		out[i] = math.Atan2(ant*(b.X-a.X), b.Y-a.Y) * 180 / math.Pi
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
	// slopes and dirs are the column inputs (PriorSlopeInputs,
	// PriorDirectionInputs); image the C7 inferior and superior slopes before
	// the prior (the specialist's), prior the predicted ones, weight the
	// blend weights applied.
	slopes, dirs         []float64
	image, prior, weight [2]float64
}

// observeColumn reads what a prior reads from lm: the column inputs and
// the specialist's C7 inferior and superior slopes.
func observeColumn(lm *[geometry.NumLandmarks]geometry.Point, f geometry.Facing) priorOutcome {
	return priorOutcome{slopes: endplateSlopes(lm, f), dirs: columnDirections(lm, f), image: [2]float64{
		geometry.EndplateSlope(lm[geometry.InfAnt(7)], lm[geometry.InfPost(7)], f),
		geometry.EndplateSlope(lm[geometry.SupAnt(7)], lm[geometry.SupPost(7)], f),
	}}
}

// apply blends the C7 endplates of lm toward the prior (see C7Prior) and
// reports what it read and did. obscuration is the specialist's P(none),
// P(partial), P(complete).
func (p *C7Prior) apply(lm *[geometry.NumLandmarks]geometry.Point, f geometry.Facing, obscuration [3]float64) priorOutcome {
	o := observeColumn(lm, f)
	all := append(append([]float64(nil), o.slopes...), o.dirs...)
	x := make([]float64, len(p.Inputs))
	for i, n := range p.Inputs {
		x[i] = all[priorInputIndex[n]]
	}
	ends := []struct {
		r    *PriorRegression
		i, j int
	}{{&p.Inf, geometry.InfAnt(7), geometry.InfPost(7)}, {&p.Sup, geometry.SupAnt(7), geometry.SupPost(7)}}
	for k, e := range ends {
		o.prior[k] = e.r.predict(x, o.image[1-k]) // both from the specialist's slopes
		o.weight[k] = e.r.weight(obscuration)
		if o.weight[k] > 0 && !math.IsNaN(o.prior[k]) {
			setEndplateSlope(lm, e.i, e.j, f, o.image[k]+o.weight[k]*e.r.Clip(o.prior[k]-o.image[k]))
		}
	}
	return o
}
