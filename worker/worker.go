// Package worker holds the handlers of cspine's durable jobs:
//
//   - Analyzer (jobs.KindAnalyze): measure one selected instance with the
//     pipeline, build the SR and the Secondary Capture with package report,
//     and record, in one transaction, the analysis with its landmarks, a
//     review task when flagged, the report, one transfer and one send job
//     per destination, the instance's new state and the job's completion.
//   - Sender (jobs.KindSend): deliver one report (SR and SC) to one
//     destination by C-STORE; failures are retried by the job queue with
//     exponential backoff until the job is dead (manual retry:
//     Sender.RetryTransfer).
//
// Idempotency: report UIDs are derived from the source SOP Instance UID, the
// model version and the revision (report/sr, report/sc), the content time is
// the analyze job's creation time, and analyses are unique per source and
// model version, so the same source and model never give two different
// reports, whichever node runs the job and however often it is retried.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/suyashkumar/dicom"

	"github.com/cspine/cspine/jobs"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/pipeline"
	"github.com/cspine/cspine/pipeline/decode"
	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/report"
	"github.com/cspine/cspine/report/dicomio"
)

// Destination is a DICOM peer that receives reports.
type Destination struct {
	Name    string
	AETitle string
	Host    string
	Port    int
	TLS     bool
}

// Router chooses the destinations of a study's reports from the AE title
// that sent the study.
type Router func(callingAE string) []Destination

// AnalyzerConfig configures the analyze job handler.
type AnalyzerConfig struct {
	// DataDir holds the spool (instance paths are relative to it) and the
	// reports (written to DataDir/reports).
	DataDir  string
	Pipeline *pipeline.Analyzer
	// Model is what the pipeline runs (name, version); jobs for another
	// version are left to the nodes that run it.
	ModelName, ModelVersion string
	Device                  dicomio.Device
	InstitutionName         string
	Route                   Router
	// SendMaxAttempts of each send job (default jobs.DefaultMaxAttempts).
	SendMaxAttempts int
	// OnAnalysis is called after an analysis is committed (metrics).
	OnAnalysis func(a *models.Analysis, took time.Duration)
	// Notify wakes the job pool after send jobs were enqueued.
	Notify func()
	Logger *slog.Logger
}

// Analyzer is the jobs.Worker of analyze jobs.
type Analyzer struct {
	st  *models.Store
	cfg AnalyzerConfig
	log *slog.Logger
}

// NewAnalyzer returns the analyze job handler.
func NewAnalyzer(st *models.Store, cfg AnalyzerConfig) (*Analyzer, error) {
	if cfg.Pipeline == nil || cfg.DataDir == "" || cfg.Route == nil {
		return nil, errors.New("worker: analyzer needs a pipeline, a data directory and a router")
	}
	if err := cfg.Device.Validate(); err != nil {
		return nil, fmt.Errorf("worker: device: %w", err)
	}
	if cfg.SendMaxAttempts <= 0 {
		cfg.SendMaxAttempts = jobs.DefaultMaxAttempts
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "reports"), 0o750); err != nil {
		return nil, fmt.Errorf("worker: reports directory: %w", err)
	}
	return &Analyzer{st: st, cfg: cfg, log: cfg.Logger}, nil
}

// Work implements jobs.Worker.
func (w *Analyzer) Work(ctx context.Context, job *models.Job) error {
	args, err := jobs.DecodeArgs[jobs.AnalyzeArgs](job)
	if err != nil {
		return err
	}
	if args.ModelName != w.cfg.ModelName || args.ModelVersion != w.cfg.ModelVersion {
		return w.foreignModel(ctx, job, args)
	}
	in, err := w.st.InstanceGetByID(ctx, args.InstanceID)
	if errors.Is(err, models.ErrNotFound) {
		return jobs.Cancel(err)
	} else if err != nil {
		return err
	}
	log := w.log.With("job_id", job.ID, "instance_id", in.ID)
	if prev, err := w.st.AnalysisGetBySource(ctx, in.ID, args.ModelName, args.ModelVersion, args.Mode); err == nil {
		// Recorded by an earlier attempt whose completion was lost.
		log.Info("analysis already recorded", "analysis_id", prev.ID)
		return nil
	} else if !errors.Is(err, models.ErrNotFound) {
		return err
	}
	if in.PurgedAt != nil {
		return jobs.Cancel(fmt.Errorf("instance %d: spool file purged", in.ID))
	}
	path := filepath.Join(w.cfg.DataDir, filepath.FromSlash(in.SpoolPath))
	if _, err := os.Stat(path); err != nil {
		// A missing spool file is an operational fault (a shared data
		// directory not mounted, a file removed by hand), not a property of
		// the image: retry, and let the job die visibly if it persists.
		return fmt.Errorf("analyze instance %d: spool file: %w", in.ID, err)
	}
	opts := pipeline.Options{SingleStage: args.Mode == result.ModeSingleStage}
	started := time.Now()
	cp := &capture{}
	res, display, rows, cols := w.analyze(context.WithValue(ctx, captureKey{}, cp), path, opts)
	finished := time.Now()
	if err := ctx.Err(); err != nil {
		return err // cancelled or lease lost: not a result
	}
	if res.Status != result.StatusOK && strings.HasPrefix(res.Error, "analysis failed") {
		// The models failed (not the input): retry.
		return fmt.Errorf("analyze instance %d: %s", in.ID, res.Error)
	}
	res.File = in.SpoolPath
	var objs *report.Objects
	if res.Status == result.StatusOK {
		o, err := w.buildReports(path, res, display, rows, cols, job.CreatedAt)
		var be *buildError
		if errors.As(err, &be) {
			// report.Build is a pure function of its inputs: the same input
			// gives the same refusal and no retry can help. The job is
			// cancelled and the instance marked failed with the reason; an
			// operator retries it (jobs.Client.Retry) after a fix.
			return jobs.Cancel(fmt.Errorf("analyze instance %d: %w", in.ID, err))
		}
		if err != nil {
			return fmt.Errorf("analyze instance %d: %w", in.ID, err)
		}
		objs = o
	}
	var globals []result.Landmark
	if res.Status == result.StatusOK {
		globals = cp.globalOfRefined(&res)
	}
	a, err := models.AnalysisFromResult(&res, nil, globals, started, finished)
	if err != nil {
		return jobs.Cancel(err)
	}
	a.InstanceID, a.StudyID = in.ID, in.StudyID
	if a.ModelName == "" {
		a.ModelName, a.ModelVersion, a.Mode = args.ModelName, args.ModelVersion, args.Mode
	}
	study, err := w.st.StudyGetByID(ctx, in.StudyID)
	if err != nil {
		return err
	}
	dests := w.cfg.Route(study.CallingAETitle)
	var sends int
	err = w.st.InTx(ctx, func(tx *models.Store) error {
		if err := tx.AnalysisInsert(ctx, a); err != nil {
			return err
		}
		if a.ReviewRequired {
			if err := tx.ReviewTaskInsert(ctx, &models.ReviewTask{AnalysisID: a.ID, Reason: strings.Join(a.Reasons(), ","),
				Facing: a.Facing, MeasuredParameters: a.MeasuredParameters}); err != nil {
				return err
			}
		}
		state, reason := models.InstanceAnalyzed, ""
		if res.Status != result.StatusOK {
			reason = res.Error
		}
		if err := tx.InstanceSetState(ctx, in.ID, state, reason); err != nil {
			return err
		}
		if objs != nil {
			n, err := w.recordReport(ctx, tx, a, objs, dests)
			if err != nil {
				return err
			}
			sends = n
		}
		return jobs.CompleteTx(ctx, tx.DB().WithContext(ctx), job, time.Time{})
	})
	if err != nil {
		return fmt.Errorf("record analysis of instance %d: %w", in.ID, err)
	}
	log.Info("instance analysed", "analysis_id", a.ID, "status", a.Status, "review_required", a.ReviewRequired,
		"transfers", sends, "took_ms", finished.Sub(started).Milliseconds())
	if objs != nil && len(dests) == 0 {
		log.Warn("no destination configured for the calling AE; reports kept, not sent", "calling_ae", study.CallingAETitle)
	}
	if w.cfg.OnAnalysis != nil {
		w.cfg.OnAnalysis(a, finished.Sub(started))
	}
	if sends > 0 && w.cfg.Notify != nil {
		w.cfg.Notify()
	}
	return nil // completed in the transaction above
}

// ForeignModelWait is how long an analyze job for models this node does
// not run is left to the nodes that run them (a rolling upgrade) before
// this node takes it over with its own models.
const ForeignModelWait = 10 * time.Minute

// foreignModel handles a job enqueued for other models than this node's:
// a node never answers for another version. During a rolling upgrade the
// job waits for a node with those models; after ForeignModelWait (the old
// models are gone) it is replaced by a job for this node's models, in one
// transaction, and completed.
func (w *Analyzer) foreignModel(ctx context.Context, job *models.Job, args jobs.AnalyzeArgs) error {
	if time.Since(job.CreatedAt) < ForeignModelWait {
		return jobs.Snooze(30 * time.Second)
	}
	err := w.st.InTx(ctx, func(tx *models.Store) error {
		_, err := jobs.Insert(ctx, tx.DB(), jobs.InsertParams{Kind: jobs.KindAnalyze,
			Args: jobs.AnalyzeArgs{InstanceID: args.InstanceID, SOPInstanceUID: args.SOPInstanceUID,
				ModelName: w.cfg.ModelName, ModelVersion: w.cfg.ModelVersion, Mode: args.Mode},
			UniqueKey:   jobs.AnalyzeKey(args.SOPInstanceUID, w.cfg.ModelName, w.cfg.ModelVersion, args.Mode),
			MaxAttempts: job.MaxAttempts})
		if err != nil {
			return err
		}
		return jobs.CompleteTx(ctx, tx.DB().WithContext(ctx), job, time.Time{})
	})
	if err != nil {
		return fmt.Errorf("re-enqueue analysis for %s %s: %w", w.cfg.ModelName, w.cfg.ModelVersion, err)
	}
	w.log.Info("analysis re-enqueued for this node's models", "job_id", job.ID, "instance_id", args.InstanceID,
		"from_version", args.ModelVersion, "to_version", w.cfg.ModelVersion)
	if w.cfg.Notify != nil {
		w.cfg.Notify()
	}
	return nil
}

// analyze runs the pipeline and returns the result with the display image
// the overlay is drawn on (nil when the image did not decode).
func (w *Analyzer) analyze(ctx context.Context, path string, opts pipeline.Options) (result.Result, []float32, int, int) {
	start := time.Now()
	im, err := decode.File(path)
	if err != nil {
		// The pipeline words the rejection (not an image, unsupported...).
		return w.cfg.Pipeline.AnalyzeFile(ctx, path, opts), nil, 0, 0
	}
	decodeMS := float64(time.Since(start).Microseconds()) / 1000
	display := im.Display()
	res := w.cfg.Pipeline.AnalyzeImage(ctx, path, im, opts)
	if res.TimingsMS != nil {
		// As `cspine analyze` reports them: decoding counts in the total.
		res.TimingsMS["decode"] = math.Round(decodeMS*100) / 100
		res.TimingsMS["total"] = math.Round((res.TimingsMS["total"]+decodeMS)*100) / 100
	}
	return res, display, im.Rows, im.Cols
}

// buildReports builds the SR and SC and writes them durably to
// DataDir/reports under their SOP Instance UIDs.
func (w *Analyzer) buildReports(path string, res result.Result, display []float32, rows, cols int, at time.Time) (*report.Objects, error) {
	ds, err := dicom.ParseFile(path, nil, dicom.SkipPixelData())
	if err != nil {
		return nil, fmt.Errorf("read source header: %w", err)
	}
	objs, err := report.Build(ds, res, display, rows, cols, report.Options{
		Device: w.cfg.Device, InstitutionName: w.cfg.InstitutionName, ContentTime: at.UTC()})
	if err != nil {
		return nil, &buildError{err}
	}
	dir := filepath.Join(w.cfg.DataDir, "reports")
	for _, f := range []struct {
		uid string
		b   []byte
	}{{objs.SRInstanceUID, objs.SR}, {objs.SCInstanceUID, objs.SC}} {
		if err := writeDurable(filepath.Join(dir, f.uid+".dcm"), f.b); err != nil {
			return nil, err
		}
	}
	return &objs, nil
}

// buildError is a refusal of report.Build (deterministic).
type buildError struct{ err error }

func (e *buildError) Error() string { return "build reports: " + e.err.Error() }
func (e *buildError) Unwrap() error { return e.err }

// recordReport inserts the report, its transfers and their send jobs.
func (w *Analyzer) recordReport(ctx context.Context, tx *models.Store, a *models.Analysis, objs *report.Objects, dests []Destination) (int, error) {
	scUID, scSeries := objs.SCInstanceUID, objs.SCSeriesUID
	rep := &models.Report{AnalysisID: a.ID, Revision: 1, VerificationFlag: models.Unverified,
		SRSOPInstanceUID: objs.SRInstanceUID, SRSeriesInstanceUID: objs.SRSeriesUID,
		SRPath:           "reports/" + objs.SRInstanceUID + ".dcm",
		SCSOPInstanceUID: &scUID, SCSeriesInstanceUID: &scSeries, SCPath: "reports/" + objs.SCInstanceUID + ".dcm"}
	if err := tx.ReportInsert(ctx, rep); err != nil {
		return 0, err
	}
	return EnqueueTransfers(ctx, tx, rep.ID, dests, w.cfg.SendMaxAttempts)
}

// EnqueueTransfers creates one transfer and one send job per destination
// for a report, through tx (so that they commit with whatever caused
// them: a machine report, or an amended report from review).
func EnqueueTransfers(ctx context.Context, tx *models.Store, reportID int64, dests []Destination, maxAttempts int) (int, error) {
	for _, d := range dests {
		tr := &models.Transfer{ReportID: reportID, Destination: d.Name, AETitle: d.AETitle, Host: d.Host, Port: d.Port}
		if err := tx.TransferInsert(ctx, tr); err != nil {
			return 0, err
		}
		ins, err := jobs.Insert(ctx, tx.DB(), jobs.InsertParams{Kind: jobs.KindSend, Args: jobs.SendArgs{TransferID: tr.ID},
			UniqueKey: jobs.SendKey(tr.ID), MaxAttempts: maxAttempts, Priority: 1})
		if err != nil {
			return 0, fmt.Errorf("enqueue send: %w", err)
		}
		if err := tx.TransferSetJob(ctx, tr.ID, ins.Job.ID); err != nil {
			return 0, err
		}
	}
	return len(dests), nil
}

// writeDurable writes b to path through a temporary file, fsyncs it and
// renames it into place (then fsyncs the directory).
func writeDurable(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
