package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/cspine/cspine/eval"
	"github.com/cspine/cspine/pipeline"
	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/pipeline/stages"
)

func init() {
	register(command{
		name:    "eval",
		summary: "evaluate the pipeline against ground truth (truth.jsonl) and calibrate review thresholds",
		usage: `Usage: cspine eval --data DIR [--single-stage | --compare] [--calibrate FILE] [model flags]

Runs the production pipeline on every file listed in DIR/truth.jsonl (as
written by 'cspine phantom') and prints Markdown tables per parameter and per
C7 obscuration grade (none, partial, complete, all): MAE, median absolute
error, ICC(2,1), Bland–Altman bias and 95% limits of agreement, landmark
error (mean, 95th percentile), the rate flagged for review and how many large
errors (any angle off by more than --large-error-deg) the flag catches.
--compare evaluates the hierarchical and the single-stage mode side by side.

--calibrate FILE calibrates the review thresholds on DIR, which must be a
validation set, never the test set: it chooses the C7 confidence, C7 stage
disagreement and C7 obscuration thresholds that catch at least
--target-recall of the large errors while flagging as few results as
possible, writes them to FILE (e.g. pipeline/thresholds.json, which is
embedded in the binary) and prints the report with them applied.

--fit-risk FILE fits the C7 risk model (a logistic model of the probability
of a large error from the review features; pipeline.RiskModel) on DIR, which
must be a phantom set of its own, neither the validation nor the test set,
and writes the current thresholds with it to FILE; its threshold is then
chosen by --calibrate on the validation set (--thresholds FILE --calibrate
FILE). With a risk model, --calibrate chooses the risk threshold, the C7
stage disagreement and the C7 obscuration thresholds.

With a risk model in the thresholds, the hierarchical report ends with the
review trade-off on DIR: the configured operating point, then the most large
errors caught within flag budgets of 20–50% and the fewest flags for catch
targets of 80–99%, each with the thresholds --calibrate would choose on DIR
for it. It shows a QA lead what a stricter or looser --target-recall costs
before calibrating; on a test set its rows (chosen on that set) bound what
any calibration could reach there.

--fit-prior fits the C7 shape prior (pipeline.C7Prior: the C7 endplate
slopes predicted from the endplates above, blended into the specialist's as
far as C7 is estimated to be hidden) on DIR, which must be a phantom set of
its own, and installs it in the model directory being evaluated
(c7_prior-VERSION.json, recorded with its sha256 in manifest.json) as the new model
version --model-version: the prior changes measurements. Fit it after the
models, then the risk model (--fit-risk), then calibrate.

--require adds acceptance criteria (as CI uses them); the command then fails
when one is missed. Syntax: GRADE/PARAM.STAT<=V or GRADE/STAT>=V with GRADE
none|partial|complete|all, PARAM a JSON key (c2c7_cobb_deg, c7_slope_deg, …),
STAT mae|medae|icc|bias|abs_bias|mae_vs_single (hierarchical MAE over
single-stage MAE, with --compare), or the group statistics
flag_rate|catch|landmark_mean|landmark_p95|rejected.`,
		run: runEval,
	})
}

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := commands["eval"]
	fs := newFlagSet(c, stderr)
	var mf modelFlags
	mf.register(fs)
	data := fs.String("data", "", "directory with truth.jsonl and the DICOM files it names (required)")
	single := fs.Bool("single-stage", false, "evaluate the single-stage baseline instead of the hierarchical pipeline")
	compare := fs.Bool("compare", false, "evaluate both modes and print them side by side")
	largeDeg := fs.Float64("large-error-deg", eval.DefaultLargeErrorDeg, "angle error that counts as a large error")
	calibrate := fs.String("calibrate", "", "calibrate the review thresholds on --data (a validation set) and write them to FILE")
	target := fs.Float64("target-recall", 0.95, "with --calibrate: share of large errors the flag must catch")
	fitRisk := fs.String("fit-risk", "", "fit the C7 risk model on --data (a fitting set: neither validation nor test) and write the thresholds with it to FILE")
	riskL2 := fs.Float64("risk-l2", 3, "with --fit-risk: L2 penalty on the standardised weights")
	fitPrior := fs.Bool("fit-prior", false, "fit the C7 shape prior on --data (a fitting set of its own) and install it in the model directory as --model-version (from the models' run or --from-samples of it)")
	modelVersion := fs.String("model-version", "", "with --fit-prior: the model set's new version (the prior changes measurements)")
	samplesIn := fs.String("from-samples", "", "evaluate the samples a previous --samples run wrote (hierarchical, same --data) instead of running the models; review flags are recomputed with the current thresholds")
	samplesOut := fs.String("samples", "", "also write every result with its truth and review features to FILE (JSON lines)")
	var reqs []eval.Requirement
	fs.Func("require", "acceptance criterion, e.g. all/c2c7_cobb_deg.mae<=2.5 or all/flag_rate<=0.3 (repeatable, comma-separated); the command fails when one is missed", func(v string) error {
		for _, part := range strings.Split(v, ",") {
			if strings.TrimSpace(part) == "" {
				continue
			}
			r, err := eval.ParseRequirement(part)
			if err != nil {
				return err
			}
			reqs = append(reqs, r)
		}
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" || fs.NArg() > 0 {
		return fmt.Errorf("%w: --data DIR is required and no other arguments are taken", errUsage)
	}
	if *single && *compare {
		return fmt.Errorf("%w: --single-stage and --compare exclude each other", errUsage)
	}
	if *fitRisk != "" && (*single || *compare || *calibrate != "") {
		return fmt.Errorf("%w: --fit-risk fits on the hierarchical mode alone; drop --single-stage/--compare/--calibrate", errUsage)
	}
	if *fitPrior && (*single || *compare || *calibrate != "" || *fitRisk != "") {
		return fmt.Errorf("%w: --fit-prior fits on a hierarchical run alone; drop --single-stage/--compare/--calibrate/--fit-risk", errUsage)
	}
	if *fitPrior != (*modelVersion != "") {
		return fmt.Errorf("%w: --fit-prior and --model-version go together", errUsage)
	}
	if *calibrate != "" && (*single || *compare) {
		return fmt.Errorf("%w: --calibrate calibrates the hierarchical mode; drop --single-stage/--compare", errUsage)
	}
	if *samplesIn != "" && (*single || *compare) {
		return fmt.Errorf("%w: --from-samples reads one hierarchical run; drop --single-stage/--compare", errUsage)
	}
	if !(*riskL2 > 0) {
		return fmt.Errorf("%w: --risk-l2 must be positive", errUsage)
	}
	truth, err := eval.ReadTruth(*data)
	if err != nil {
		return err
	}
	models, an, err := mf.open()
	if err != nil {
		return err
	}
	defer models.Close()
	info := models.Info()
	if *fitPrior && *modelVersion == info.Version {
		return fmt.Errorf("%w: --model-version %s is the models' current version; a prior changes measurements, give a new one", errUsage, *modelVersion)
	}

	modes := []bool{*single}
	if *compare {
		modes = []bool{false, true}
	}
	var reports []eval.Report
	var sampleSets [][]eval.Sample
	for _, ss := range modes {
		if *samplesIn != "" {
			samples, err := readSamples(*samplesIn, truth, info)
			if err != nil {
				return err
			}
			sampleSets = append(sampleSets, eval.Reflag(samples, *an.Config().Thresholds))
			continue
		}
		opts := pipeline.Options{SingleStage: ss}
		analyze := func(ctx context.Context, path string) (result.Result, pipeline.Features) {
			return an.AnalyzeFileDetailed(ctx, path, opts)
		}
		samples, err := eval.Run(ctx, *data, truth, analyze, mf.workerCount())
		if err != nil {
			return err
		}
		sampleSets = append(sampleSets, samples)
	}

	if *fitRisk != "" {
		rm, err := eval.FitRisk(sampleSets[0], pipeline.DefaultRiskFeatures(info.C7Prior != nil), *riskL2, *largeDeg)
		if err != nil {
			return err
		}
		rm.Fit.Data, rm.Fit.Command, rm.Fit.ModelVersion = *data, "cspine eval "+strings.Join(args, " "), info.Name+" "+info.Version
		th := *an.Config().Thresholds
		th.C7Risk = &rm
		if err := writeThresholds(*fitRisk, th); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Fitted the C7 risk model on %d measured images (%d large errors), features %s; written to %s (min_risk not yet calibrated)\n\n",
			rm.Fit.Images, rm.Fit.LargeErrors, strings.Join(rm.Features, ", "), *fitRisk)
	}

	inEffect := *an.Config().Thresholds // the thresholds the flags in sampleSets[0] come from
	if *calibrate != "" {
		cal, err := eval.Calibrate(sampleSets[0], *an.Config().Thresholds, *target, *largeDeg)
		if err != nil {
			return err
		}
		th := cal.Thresholds
		th.Calibration = &pipeline.Calibration{
			Data: *data, Mode: result.ModeHierarchical, Images: cal.Measured, LargeErrors: cal.LargeErrors,
			TargetRecall: *target, Recall: cal.Recall, FlagRate: cal.FlagRate, LargeErrorDeg: *largeDeg,
			Command:      "cspine eval " + strings.Join(args, " "),
			ModelVersion: info.Name + " " + info.Version, ModelsTrainedOn: info.TrainedOn,
		}
		if err := writeThresholds(*calibrate, th); err != nil {
			return err
		}
		status := "met"
		if !cal.MetTarget {
			status = "NOT met"
		}
		risk := ""
		if th.C7Risk != nil {
			risk = fmt.Sprintf(", c7_risk.min_risk %.6f", th.C7Risk.MinRisk)
		}
		fmt.Fprintf(stdout, "Calibrated on %d measured images (%d large errors): catches %d (%.1f%%, target %.0f%% %s), flags %d (%.1f%%).\n"+
			"c7_min_confidence %.4f, c7_max_disagreement_mm %.3f, c7_obscured_min_prob %.4f, c7_max_spread_deg %.3f%s; written to %s\n\n",
			cal.Measured, cal.LargeErrors, cal.Caught, 100*cal.Recall, 100**target, status, cal.Flagged, 100*cal.FlagRate,
			th.C7MinConfidence, th.C7MaxDisagreementMM, th.C7ObscuredMinProb, th.C7MaxSpreadDeg, risk, *calibrate)
		sampleSets[0] = eval.Reflag(sampleSets[0], th)
		inEffect = th
	}

	for i, ss := range modes {
		mode := result.ModeHierarchical
		if ss {
			mode = result.ModeSingleStage
		}
		reports = append(reports, eval.Summarize(*data, mode, sampleSets[i], *largeDeg))
	}
	if *samplesOut != "" {
		if err := writeSamples(*samplesOut, sampleSets); err != nil {
			return err
		}
	}
	if *fitPrior { // after the samples are safe: a failed install loses no run
		if err := installPrior(stdout, sampleSets[0], info, *data, *modelVersion, args); err != nil {
			return err
		}
	}
	if err := eval.WriteMarkdown(stdout, reports...); err != nil {
		return err
	}
	if !modes[0] && inEffect.C7Risk != nil {
		points, err := eval.Frontier(sampleSets[0], inEffect, *largeDeg)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout)
		if err := eval.WriteTradeoff(stdout, *data, points, eval.CurrentPoint(sampleSets[0], inEffect, *largeDeg)); err != nil {
			return err
		}
	}
	if len(reqs) > 0 {
		var single *eval.Report
		if len(reports) == 2 {
			single = &reports[1]
		}
		lines, ok := eval.Check(reqs, reports[0], single)
		fmt.Fprintf(stdout, "\nRequirements (%s):\n", reports[0].Mode)
		for _, l := range lines {
			fmt.Fprintln(stdout, "  "+l)
		}
		if !ok {
			return errRequirements
		}
	}
	return nil
}

// installPrior fits the C7 shape prior on samples and installs it in the
// evaluated model directory as model version version.
func installPrior(stdout io.Writer, samples []eval.Sample, info stages.Info, data, version string, args []string) error {
	p, err := eval.FitC7Prior(samples, eval.DefaultPriorFolds)
	if err != nil {
		return err
	}
	p.Fit.Data, p.Fit.Command, p.Fit.ModelVersion = data, "cspine eval "+strings.Join(args, " "), info.Name+" "+info.Version
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("encode c7 prior: %w", err)
	}
	if err := stages.SetC7Prior(info.Dir, append(b, '\n'), version); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Fitted the C7 shape prior on %d measured images (%d folds): residual SD inferior %.2f°, superior %.2f° (cross-validated); "+
		"blend weights inferior %.3f/%.3f, superior %.3f/%.3f (partial/complete); installed in %s as %s %s (the report below is of the models as evaluated)\n\n",
		p.Fit.Images, p.Fit.Folds, p.Inf.ResidualSDDeg, p.Sup.ResidualSDDeg, p.Inf.Blend[1], p.Inf.Blend[2], p.Sup.Blend[1], p.Sup.Blend[2],
		info.Dir, info.Name, version)
	return nil
}

// errRequirements: the evaluation ran but missed an acceptance criterion.
var errRequirements = errors.New("evaluation requirements not met")

// writeThresholds writes a thresholds file (validated first).
func writeThresholds(path string, th pipeline.Thresholds) error {
	if err := th.Validate(); err != nil {
		return fmt.Errorf("thresholds: %w", err)
	}
	b, err := json.MarshalIndent(th, "", "  ")
	if err != nil {
		return fmt.Errorf("encode thresholds: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write thresholds: %w", err)
	}
	return nil
}

// readSamples reads what writeSamples wrote for one hierarchical run: a
// sample per image of the truth, in its order, measured by the loaded
// models (name and version). The truth is the one just
// read from DIR, not the file's copy; results must be hierarchical and
// carry every review feature this binary computes (a file from an older
// binary lacks some, and zeros would pass for measurements).
func readSamples(path string, truth []result.Truth, info stages.Info) ([]eval.Sample, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read samples: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var out []eval.Sample
	for dec.More() {
		var raw struct {
			Features map[string]json.RawMessage
		}
		var msg json.RawMessage
		if err := dec.Decode(&msg); err != nil {
			return nil, fmt.Errorf("read samples %s: sample %d: %w", path, len(out)+1, err)
		}
		var s eval.Sample
		if err := json.Unmarshal(msg, &s); err != nil {
			return nil, fmt.Errorf("read samples %s: sample %d: %w", path, len(out)+1, err)
		}
		if err := json.Unmarshal(msg, &raw); err != nil {
			return nil, fmt.Errorf("read samples %s: sample %d: %w", path, len(out)+1, err)
		}
		if s.Result.Status == result.StatusOK {
			if s.Result.Model == nil || s.Result.Model.Mode != result.ModeHierarchical {
				return nil, fmt.Errorf("read samples %s: sample %d is not a hierarchical result", path, len(out)+1)
			}
			if s.Result.Model.Name != info.Name || s.Result.Model.Version != info.Version {
				return nil, fmt.Errorf("read samples %s: sample %d was measured by models %s %s, the loaded models are %s %s",
					path, len(out)+1, s.Result.Model.Name, s.Result.Model.Version, info.Name, info.Version)
			}
			for _, k := range featureKeys {
				if _, ok := raw.Features[k]; !ok {
					return nil, fmt.Errorf("read samples %s: sample %d has no feature %q (written by an older cspine? run the evaluation again)", path, len(out)+1, k)
				}
			}
		}
		out = append(out, s)
	}
	if len(out) != len(truth) {
		return nil, fmt.Errorf("read samples %s: %d samples, the truth lists %d images", path, len(out), len(truth))
	}
	for i, s := range out {
		if s.Truth.File != truth[i].File || s.Truth.SOPInstanceUID != truth[i].SOPInstanceUID {
			return nil, fmt.Errorf("read samples %s: sample %d is %s, the truth says %s", path, i+1, s.Truth.File, truth[i].File)
		}
		out[i].Truth = truth[i]
	}
	return out, nil
}

// featureKeys are the JSON names of every review feature.
var featureKeys = func() []string {
	b, _ := json.Marshal(pipeline.Features{})
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}()

// writeSamples writes every evaluated sample as one JSON line.
func writeSamples(path string, sets [][]eval.Sample) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write samples: %w", err)
	}
	enc := json.NewEncoder(f)
	for _, set := range sets {
		for _, s := range set {
			if err := enc.Encode(s); err != nil {
				f.Close()
				return fmt.Errorf("write samples: %w", err)
			}
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write samples: %w", err)
	}
	return nil
}
