// Package schedule runs the node's periodic work with
// github.com/robfig/cron/v3:
//
//   - pull: enqueue a pull job (Puller: C-FIND recent CR/DX studies on a
//     configured PACS that the node has not received, C-MOVE them to us);
//     the job's key is the schedule tick, so several nodes firing the same
//     tick enqueue it once;
//   - retry sweep: take back jobs whose lease expired and report the dead
//     ones (the job queue's backoff does the retrying itself);
//   - retention: delete spool files of studies done for longer than the
//     retention period and record the purge;
//   - daily summary: one log line with the day's counts (no PHI).
package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/cspine/cspine/jobs"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
)

// Config configures a Scheduler. Empty specifications disable a task.
type Config struct {
	Pull, RetrySweep, Retention, DailySummary string
	// PullPeer names the peer pull jobs query (PullConfig.Peers).
	PullPeer string
	// Lookback of each pull (default 24h).
	Lookback time.Duration
	// SpoolDays: spool files of finished studies older than this are
	// deleted (0 keeps them).
	SpoolDays int
	// JobDays: completed and cancelled jobs finalized longer ago than this
	// are deleted (0 keeps them).
	JobDays  int
	DataDir  string
	Location *time.Location
	Logger   *slog.Logger
	// Notify wakes the job pool after a pull job is enqueued.
	Notify func()
}

// Scheduler runs the periodic tasks.
type Scheduler struct {
	st   *models.Store
	jc   *jobs.Client
	cfg  Config
	cron *cron.Cron
	log  *slog.Logger
}

// New parses the schedules and returns a stopped Scheduler.
func New(st *models.Store, jc *jobs.Client, cfg Config) (*Scheduler, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.Lookback <= 0 {
		cfg.Lookback = 24 * time.Hour
	}
	s := &Scheduler{st: st, jc: jc, cfg: cfg, log: cfg.Logger,
		cron: cron.New(cron.WithLocation(cfg.Location), cron.WithChain(cron.Recover(cronLogger{cfg.Logger})))}
	tasks := []struct {
		name, spec string
		run        func(ctx context.Context, now time.Time) error
	}{
		{"pull", cfg.Pull, s.EnqueuePull},
		{"retry_sweep", cfg.RetrySweep, func(ctx context.Context, _ time.Time) error { return s.Sweep(ctx) }},
		{"retention", cfg.Retention, s.retention},
		{"daily_summary", cfg.DailySummary, func(ctx context.Context, now time.Time) error { return s.Summary(ctx, now) }},
	}
	for _, t := range tasks {
		if t.spec == "" || (t.name == "pull" && cfg.PullPeer == "") {
			continue
		}
		run := t.run
		name := t.name
		if _, err := s.cron.AddFunc(t.spec, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			if err := run(ctx, time.Now()); err != nil {
				s.log.Warn("scheduled task failed", "task", name, "err", err)
			}
		}); err != nil {
			return nil, fmt.Errorf("schedule %s %q: %w", t.name, t.spec, err)
		}
	}
	return s, nil
}

// Start starts the schedules.
func (s *Scheduler) Start() { s.cron.Start() }

// Stop stops the schedules and waits (until ctx ends) for running tasks.
func (s *Scheduler) Stop(ctx context.Context) {
	done := s.cron.Stop()
	select {
	case <-done.Done():
	case <-ctx.Done():
	}
}

// EnqueuePull enqueues the pull job of the tick at now (idempotent per
// peer and tick across nodes).
func (s *Scheduler) EnqueuePull(ctx context.Context, now time.Time) error {
	tick := now.Truncate(time.Minute)
	res, err := s.jc.Insert(ctx, jobs.InsertParams{Kind: jobs.KindPull,
		Args:      jobs.PullArgs{Peer: s.cfg.PullPeer, Since: tick.Add(-s.cfg.Lookback)},
		UniqueKey: jobs.PullKey(s.cfg.PullPeer, tick), MaxAttempts: 3})
	if err != nil {
		return fmt.Errorf("enqueue pull: %w", err)
	}
	if res.Inserted && s.cfg.Notify != nil {
		s.cfg.Notify()
	}
	return nil
}

// Sweep takes back jobs whose workers died, brings transfers and
// instances in line with jobs that ended for good without a worker to
// record it (a job whose last lease expired is dead without its handler
// having run), and reports dead jobs.
func (s *Scheduler) Sweep(ctx context.Context) error {
	n, err := s.jc.RescueExpired(ctx)
	if err != nil {
		return fmt.Errorf("retry sweep: %w", err)
	}
	if err := s.reconcile(ctx); err != nil {
		return fmt.Errorf("retry sweep: %w", err)
	}
	counts, err := s.jc.Counts(ctx)
	if err != nil {
		return fmt.Errorf("retry sweep: %w", err)
	}
	dead := int64(0)
	for _, st := range counts {
		dead += st[models.JobDead]
	}
	if n > 0 || dead > 0 {
		s.log.Info("retry sweep", "rescued", n, "dead_jobs", dead)
	}
	return nil
}

// reconcile marks dead the transfers whose send job is dead or cancelled,
// and failed the selected instances whose analyze job is.
func (s *Scheduler) reconcile(ctx context.Context) error {
	db := s.st.DB().WithContext(ctx)
	ended := []models.JobState{models.JobDead, models.JobCancelled}
	now := store.Now()
	res := db.Model(&models.Transfer{}).
		Where("status IN ? AND job_id IN (?)",
			[]models.TransferStatus{models.TransferPending, models.TransferSending, models.TransferFailed},
			db.Model(&models.Job{}).Select("id").Where("kind = ? AND state IN ?", jobs.KindSend, ended)).
		Updates(map[string]any{"status": models.TransferDead, "next_attempt_at": nil, "updated_at": now})
	if res.Error != nil {
		return fmt.Errorf("reconcile transfers: %w", res.Error)
	}
	var selected []models.Instance
	if err := db.Where("state = ?", models.InstanceSelected).Order("id").Limit(1000).Find(&selected).Error; err != nil {
		return fmt.Errorf("reconcile instances: %w", err)
	}
	fixed := 0
	for _, in := range selected {
		var j models.Job
		err := db.Where("kind = ? AND state IN ? AND args LIKE ?", jobs.KindAnalyze, ended,
			fmt.Sprintf(`{"instance_id":%d,%%`, in.ID)).Order("id DESC").Take(&j).Error
		if err != nil {
			continue // none ended: still to run (or not found)
		}
		// Only when no other analyze job of the instance is still alive.
		var alive int64
		if err := db.Model(&models.Job{}).Where("kind = ? AND state IN ? AND args LIKE ?", jobs.KindAnalyze,
			[]models.JobState{models.JobAvailable, models.JobRunning, models.JobCompleted},
			fmt.Sprintf(`{"instance_id":%d,%%`, in.ID)).Count(&alive).Error; err != nil || alive > 0 {
			continue
		}
		reason := j.LastError
		if reason == "" {
			reason = "analysis job " + string(j.State)
		}
		if err := s.st.InstanceSetState(ctx, in.ID, models.InstanceFailed, reason); err != nil {
			return fmt.Errorf("reconcile instance %d: %w", in.ID, err)
		}
		fixed++
	}
	if res.RowsAffected > 0 || fixed > 0 {
		s.log.Info("retry sweep reconciled", "transfers_dead", res.RowsAffected, "instances_failed", fixed)
	}
	return nil
}

// retention is the retention task: the spool purge, then the job purge.
func (s *Scheduler) retention(ctx context.Context, now time.Time) error {
	_, err := s.Purge(ctx, now)
	_, jerr := s.PurgeJobs(ctx, now)
	return errors.Join(err, jerr)
}

// PurgeJobs deletes completed and cancelled jobs finalized before now
// minus the job retention period and returns how many it deleted.
func (s *Scheduler) PurgeJobs(ctx context.Context, now time.Time) (int64, error) {
	if s.cfg.JobDays <= 0 {
		return 0, nil
	}
	cutoff := now.Add(-time.Duration(s.cfg.JobDays) * 24 * time.Hour)
	var total int64
	for {
		n, err := s.jc.PurgeFinished(ctx, cutoff, 1000)
		if err != nil {
			return total, fmt.Errorf("purge jobs: %w", err)
		}
		total += n
		if n < 1000 {
			break
		}
	}
	if total > 0 {
		s.log.Info("jobs purged", "jobs", total, "retention_days", s.cfg.JobDays)
	}
	return total, nil
}

// Purge deletes the spool files of instances received before now minus
// the retention period, in studies no longer receiving and not waiting
// for their analysis. It returns how many it purged.
func (s *Scheduler) Purge(ctx context.Context, now time.Time) (int, error) {
	if s.cfg.SpoolDays <= 0 {
		return 0, nil
	}
	cutoff := now.Add(-time.Duration(s.cfg.SpoolDays) * 24 * time.Hour)
	n := 0
	for {
		ins, err := s.st.InstanceListPurgeable(ctx, cutoff, 500)
		if err != nil {
			return n, fmt.Errorf("purge: %w", err)
		}
		done := 0
		for _, in := range ins {
			if in.State == models.InstanceSelected || in.State == models.InstanceReceived {
				continue // its analysis has not run yet
			}
			p := filepath.Join(s.cfg.DataDir, filepath.FromSlash(in.SpoolPath))
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return n, fmt.Errorf("purge instance %d: %w", in.ID, err)
			}
			if err := s.st.InstanceMarkPurged(ctx, in.ID); err != nil {
				return n, fmt.Errorf("purge instance %d: %w", in.ID, err)
			}
			n++
			done++
		}
		if len(ins) < 500 || done == 0 {
			break
		}
	}
	if n > 0 {
		s.log.Info("spool purged", "instances", n, "retention_days", s.cfg.SpoolDays)
	}
	return n, nil
}

// Summary logs the counts of the 24 hours before now.
func (s *Scheduler) Summary(ctx context.Context, now time.Time) error {
	since := store.Normalize(now.Add(-24 * time.Hour))
	db := s.st.DB().WithContext(ctx)
	count := func(model any, where string, args ...any) (int64, error) {
		var n int64
		err := db.Model(model).Where(where, args...).Count(&n).Error
		return n, err
	}
	var errs []error
	c := func(model any, where string, args ...any) int64 {
		n, err := count(model, where, args...)
		errs = append(errs, err)
		return n
	}
	attrs := []any{
		"studies", c(&models.Study{}, "created_at >= ?", since),
		"studies_no_measurable_image", c(&models.Study{}, "created_at >= ? AND state = ?", since, models.StudyNoMeasurableImage),
		"instances", c(&models.Instance{}, "received_at >= ?", since),
		"analyses_ok", c(&models.Analysis{}, "created_at >= ? AND status = ?", since, models.AnalysisOK),
		"analyses_rejected", c(&models.Analysis{}, "created_at >= ? AND status <> ?", since, models.AnalysisOK),
		"review_flagged", c(&models.Analysis{}, "created_at >= ? AND review_required", since),
		"transfers_sent", c(&models.Transfer{}, "sent_at >= ?", since),
		"transfers_waiting", c(&models.Transfer{}, "status IN ?", []models.TransferStatus{models.TransferPending, models.TransferSending, models.TransferFailed}),
		"transfers_dead", c(&models.Transfer{}, "status = ?", models.TransferDead),
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("daily summary: %w", err)
	}
	s.log.Info("daily summary", attrs...)
	return nil
}

type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.l.Debug("cron: "+msg, kv...) }
func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error("cron: "+msg, append(kv, "err", err)...)
}
