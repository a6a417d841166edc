package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/user"
	"sort"
	"strconv"
	"text/tabwriter"

	"github.com/cspine/cspine/assembly"
	"github.com/cspine/cspine/config"
	"github.com/cspine/cspine/jobs"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/pipeline/stages"
	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/worker"
)

func init() {
	register(command{
		name:    "queue",
		summary: "operate the node's durable work: status, manual retry of transfers, forced study assembly",
		usage: `Usage: cspine queue [--config FILE] [--database DSN] [--data-dir DIR] ACTION [ARG...]

Actions:
  status                      jobs per kind and state, transfers per status
  retry-transfer ID...        manual retry of failed or dead transfers (attempts reset, sent now)
  retry-dead                  manual retry of every dead transfer and every dead or cancelled analysis
  complete-study STUDY_UID    assemble a study now instead of waiting for its quiet time

The database is the one cspine serve uses (same configuration file,
environment and --database flag). A running node picks the work up at its
next poll.`,
		run: runQueue,
	})
}

func runQueue(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := commands["queue"]
	fs := newFlagSet(c, stderr)
	var f serveFlags
	fs.StringVar(&f.config, "config", "", "YAML configuration file")
	fs.StringVar(&f.database, "database", "", "database DSN (database.dsn)")
	fs.StringVar(&f.dataDir, "data-dir", "", "data directory (data_dir)")
	fs.StringVar(&f.models, "models", "", "model directory (pipeline.model_dir), for complete-study")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: no action (status, retry-transfer, retry-dead, complete-study)", errUsage)
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	cfg, err := loadServeConfig(&f, set, nil)
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, cfg.DSN(), &store.Options{Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	defer db.Close()
	st := models.NewStore(db.Gorm)
	jc := jobs.NewClient(db.Gorm, jobs.ClientConfig{})
	action, rest := fs.Arg(0), fs.Args()[1:]
	switch action {
	case "status":
		return queueStatus(ctx, st, jc, stdout)
	case "retry-transfer":
		if len(rest) == 0 {
			return fmt.Errorf("%w: retry-transfer needs transfer ids", errUsage)
		}
		for _, a := range rest {
			id, err := strconv.ParseInt(a, 10, 64)
			if err != nil {
				return fmt.Errorf("%w: transfer id %q", errUsage, a)
			}
			if err := worker.RetryTransfer(ctx, st, jc, id); err != nil {
				return err
			}
			audit(ctx, st, "transfer.retry", "transfer", strconv.FormatInt(id, 10), stderr)
			fmt.Fprintf(stdout, "transfer %d: retrying\n", id)
		}
		return nil
	case "retry-dead":
		return retryDead(ctx, st, jc, stdout)
	case "complete-study":
		if len(rest) != 1 {
			return fmt.Errorf("%w: complete-study needs one Study Instance UID", errUsage)
		}
		return completeStudy(ctx, cfg, st, rest[0], stdout)
	default:
		return fmt.Errorf("%w: unknown action %q", errUsage, action)
	}
}

func queueStatus(ctx context.Context, st *models.Store, jc *jobs.Client, w io.Writer) error {
	counts, err := jc.Counts(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tAVAILABLE\tRUNNING\tCOMPLETED\tCANCELLED\tDEAD")
	kinds := make([]string, 0, len(counts))
	for k := range counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		c := counts[k]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\n", k, c[models.JobAvailable], c[models.JobRunning], c[models.JobCompleted],
			c[models.JobCancelled], c[models.JobDead])
	}
	var rows []struct {
		Status string
		N      int64
	}
	if err := st.DB().WithContext(ctx).Model(&models.Transfer{}).Select("status, COUNT(*) AS n").Group("status").Order("status").Scan(&rows).Error; err != nil {
		return fmt.Errorf("count transfers: %w", err)
	}
	fmt.Fprintln(tw, "\nTRANSFERS\tCOUNT")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\n", r.Status, r.N)
	}
	return tw.Flush()
}

func retryDead(ctx context.Context, st *models.Store, jc *jobs.Client, w io.Writer) error {
	trs, err := st.TransferListByStatus(ctx, models.TransferDead, 10000)
	if err != nil {
		return err
	}
	for _, tr := range trs {
		if err := worker.RetryTransfer(ctx, st, jc, tr.ID); err != nil {
			return err
		}
		audit(ctx, st, "transfer.retry", "transfer", strconv.FormatInt(tr.ID, 10), w)
	}
	n := 0
	for _, state := range []models.JobState{models.JobDead, models.JobCancelled} {
		js, err := jc.List(ctx, jobs.ListParams{State: state, Kind: jobs.KindAnalyze, Limit: 10000})
		if err != nil {
			return err
		}
		for _, j := range js {
			args, err := jobs.DecodeArgs[jobs.AnalyzeArgs](&j)
			if err != nil {
				continue
			}
			if err := st.InstanceSetState(ctx, args.InstanceID, models.InstanceSelected, "manual retry"); err != nil && !errors.Is(err, models.ErrNotFound) {
				return err
			}
			if _, err := jc.Retry(ctx, j.ID); err != nil {
				return err
			}
			audit(ctx, st, "analysis.retry", "instance", strconv.FormatInt(args.InstanceID, 10), w)
			n++
		}
	}
	fmt.Fprintf(w, "retrying %d transfers and %d analyses\n", len(trs), n)
	return nil
}

func completeStudy(ctx context.Context, cfg *config.Config, st *models.Store, uid string, w io.Writer) error {
	dir, err := modelDir(cfg)
	if err != nil {
		return err
	}
	m, err := stages.ReadManifest(dir)
	if err != nil {
		return err
	}
	mode := result.ModeHierarchical
	if cfg.Pipeline.SingleStage {
		mode = result.ModeSingleStage
	}
	a, err := assembly.New(st, assembly.Config{Model: assembly.Model{Name: m.Name, Version: m.Version, Mode: mode},
		Policy: assembly.Policy{IncludeFlexionExtension: cfg.Pipeline.Views.IncludeFlexionExtension,
			IncludeOblique: cfg.Pipeline.Views.IncludeOblique}, MaxAttempts: cfg.Jobs.MaxAttempts,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	ok, err := a.Force(ctx, uid)
	if err != nil {
		return err
	}
	if !ok {
		fmt.Fprintln(w, "study was not receiving: nothing to assemble")
		return nil
	}
	audit(ctx, st, "study.complete", "study", uid, w)
	fmt.Fprintln(w, "study assembled")
	return nil
}

// audit records an operator's action from the command line; the actor is
// the operating-system user running cspine.
func audit(ctx context.Context, st *models.Store, action, entityType, entityID string, w io.Writer) {
	actor := "cli"
	if u, err := user.Current(); err == nil {
		actor = "cli:" + u.Username
	}
	if _, err := st.AuditEventInsert(ctx, models.AuditEventInsertParams{Actor: actor, Action: action,
		EntityType: entityType, EntityID: entityID}); err != nil {
		fmt.Fprintf(w, "warning: audit event not recorded: %v\n", err)
	}
}
