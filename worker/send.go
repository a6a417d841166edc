package worker

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cspine/cspine/dicomnode"
	"github.com/cspine/cspine/dicomnode/association"
	"github.com/cspine/cspine/dicomnode/services"
	"github.com/cspine/cspine/jobs"
	"github.com/cspine/cspine/models"
)

// SenderConfig configures the send job handler.
type SenderConfig struct {
	// DataDir: report paths are relative to it.
	DataDir string
	// CallingAETitle is our AE title.
	CallingAETitle string
	// TLS is used for the destinations named in TLSDestinations.
	TLS             *tls.Config
	TLSDestinations map[string]bool
	Timeouts        association.Timeouts
	// OnSent is called after a report reached a destination, with the time
	// since the analysis was recorded (metrics).
	OnSent func(tr *models.Transfer, sinceReport time.Duration)
	Logger *slog.Logger
}

// Sender is the jobs.Worker of send jobs.
type Sender struct {
	st  *models.Store
	cfg SenderConfig
	log *slog.Logger
}

// NewSender returns the send job handler.
func NewSender(st *models.Store, cfg SenderConfig) (*Sender, error) {
	if cfg.DataDir == "" || cfg.CallingAETitle == "" {
		return nil, errors.New("worker: sender needs a data directory and our AE title")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Sender{st: st, cfg: cfg, log: cfg.Logger}, nil
}

// StatusError is a failure status answered by the destination.
type StatusError struct {
	SOPInstanceUID string
	Status         uint16
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("destination answered C-STORE of %s with status 0x%04X", e.SOPInstanceUID, e.Status)
}

// Work implements jobs.Worker.
func (s *Sender) Work(ctx context.Context, job *models.Job) error {
	args, err := jobs.DecodeArgs[jobs.SendArgs](job)
	if err != nil {
		return err
	}
	tr, err := s.st.TransferGetByID(ctx, args.TransferID)
	if errors.Is(err, models.ErrNotFound) {
		return jobs.Cancel(err)
	} else if err != nil {
		return err
	}
	if tr.Status == models.TransferSent {
		return nil // delivered by an attempt whose completion was lost
	}
	rep, err := s.st.ReportGetByID(ctx, tr.ReportID)
	if err != nil {
		if errors.Is(err, models.ErrNotFound) {
			return jobs.Cancel(err)
		}
		return err
	}
	if err := s.st.TransferMarkSending(ctx, tr.ID); err != nil {
		return err
	}
	files := []string{filepath.Join(s.cfg.DataDir, filepath.FromSlash(rep.SRPath))}
	if rep.SCPath != "" {
		files = append(files, filepath.Join(s.cfg.DataDir, filepath.FromSlash(rep.SCPath)))
	}
	if err := s.deliver(ctx, tr, files); err != nil {
		return fmt.Errorf("send report %d to %s: %w", rep.ID, tr.Destination, err)
	}
	err = s.st.InTx(ctx, func(tx *models.Store) error {
		if err := tx.TransferMarkSent(ctx, tr.ID); err != nil {
			return err
		}
		return jobs.CompleteTx(ctx, tx.DB().WithContext(ctx), job, time.Time{})
	})
	if err != nil {
		return fmt.Errorf("record transfer %d sent: %w", tr.ID, err)
	}
	s.log.Info("report delivered", "transfer_id", tr.ID, "report_id", rep.ID, "destination", tr.Destination,
		"attempt", tr.Attempts+1)
	if s.cfg.OnSent != nil {
		s.cfg.OnSent(tr, time.Since(rep.CreatedAt))
	}
	return nil
}

// deliver sends the files over one association.
func (s *Sender) deliver(ctx context.Context, tr *models.Transfer, files []string) error {
	pairs := map[string][]string{}
	type obj struct {
		path, class, uid string
	}
	var objs []obj
	for _, p := range files {
		m, err := readMeta(p)
		if err != nil {
			return jobs.Cancel(fmt.Errorf("report file: %w", err))
		}
		pairs[m.MediaStorageSOPClassUID] = append(pairs[m.MediaStorageSOPClassUID], m.TransferSyntaxUID)
		objs = append(objs, obj{p, m.MediaStorageSOPClassUID, m.MediaStorageSOPInstanceUID})
	}
	opts := dicomnode.DialOpts{CallingAETitle: s.cfg.CallingAETitle, CalledAETitle: tr.AETitle,
		Contexts: dicomnode.StorageContexts(pairs), Timeouts: s.cfg.Timeouts, Logger: s.log}
	if s.isTLS(tr) {
		opts.TLS = s.cfg.TLS
	}
	c, err := dicomnode.Dial(ctx, net.JoinHostPort(tr.Host, strconv.Itoa(tr.Port)), opts)
	if err != nil {
		return err
	}
	released := false
	defer func() {
		if !released {
			c.A.Abort()
		}
	}()
	for _, o := range objs {
		st, err := c.StoreFile(ctx, o.path)
		if err != nil {
			return fmt.Errorf("C-STORE %s: %w", o.uid, err)
		}
		if st.IsFailure() {
			return &StatusError{SOPInstanceUID: o.uid, Status: uint16(st)}
		}
	}
	if err := c.Release(ctx); err != nil {
		// Both objects were acknowledged: the delivery stands.
		s.log.Warn("release after delivery failed", "transfer_id", tr.ID, "err", err)
	}
	released = true
	return nil
}

func (s *Sender) isTLS(tr *models.Transfer) bool {
	return s.cfg.TLS != nil && s.cfg.TLSDestinations[tr.Destination]
}

func readMeta(path string) (services.FileMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return services.FileMeta{}, err
	}
	defer f.Close()
	m, _, err := services.ReadFileMeta(bufio.NewReader(f))
	return m, err
}

// RetryTransfer is the manual retry of a failed or dead transfer: it
// resets its attempts and makes its send job run now (a new send job when
// the old one is gone).
func RetryTransfer(ctx context.Context, st *models.Store, jc *jobs.Client, transferID int64) error {
	tr, err := st.TransferGetByID(ctx, transferID)
	if err != nil {
		return fmt.Errorf("retry transfer: %w", err)
	}
	if err := st.TransferReset(ctx, transferID); err != nil {
		return fmt.Errorf("retry transfer %d: %w", transferID, err)
	}
	if tr.JobID != nil {
		if _, err := jc.Retry(ctx, *tr.JobID); err == nil || !errors.Is(err, jobs.ErrNotFound) {
			if err != nil {
				return fmt.Errorf("retry transfer %d: %w", transferID, err)
			}
			return nil
		}
	}
	ins, err := jc.Insert(ctx, jobs.InsertParams{Kind: jobs.KindSend, Args: jobs.SendArgs{TransferID: tr.ID},
		UniqueKey: fmt.Sprintf("%s:retry:%d", jobs.SendKey(tr.ID), time.Now().UnixNano()), Priority: 1})
	if err != nil {
		return fmt.Errorf("retry transfer %d: %w", transferID, err)
	}
	return st.TransferSetJob(ctx, tr.ID, ins.Job.ID)
}

// Finisher keeps the database's view of transfers and instances in step
// with job outcomes: give its OnFinish to jobs.PoolConfig.OnFinish.
type Finisher struct {
	St   *models.Store
	Jobs *jobs.Client
	// Next is called afterwards (metrics); may be nil.
	Next func(job *models.Job, outcome jobs.Outcome, err error, took time.Duration)
	Log  *slog.Logger
}

// OnFinish records a failed delivery on its transfer (failed with the
// next attempt time, or dead) and an analysis given up on its instance.
func (f *Finisher) OnFinish(job *models.Job, outcome jobs.Outcome, err error, took time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	log := f.Log
	if log == nil {
		log = slog.Default()
	}
	switch job.Kind {
	case jobs.KindSend:
		if outcome != jobs.OutcomeRetry && outcome != jobs.OutcomeDead && outcome != jobs.OutcomeCancelled {
			break
		}
		args, aerr := jobs.DecodeArgs[jobs.SendArgs](job)
		if aerr != nil {
			break
		}
		var next *time.Time
		if outcome == jobs.OutcomeRetry {
			if j, gerr := f.Jobs.Get(ctx, job.ID); gerr == nil {
				next = &j.RunAt
			}
		}
		var code *int
		var se *StatusError
		if errors.As(err, &se) {
			c := int(se.Status)
			code = &c
		}
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if uerr := f.St.TransferMarkFailed(ctx, args.TransferID, msg, code, next); uerr != nil {
			log.Warn("record failed transfer", "transfer_id", args.TransferID, "err", uerr)
		}
	case jobs.KindAnalyze:
		if outcome != jobs.OutcomeDead && outcome != jobs.OutcomeCancelled {
			break
		}
		args, aerr := jobs.DecodeArgs[jobs.AnalyzeArgs](job)
		if aerr != nil {
			break
		}
		msg := "analysis failed"
		if err != nil {
			msg = err.Error()
		}
		if uerr := f.St.InstanceSetState(ctx, args.InstanceID, models.InstanceFailed, msg); uerr != nil {
			log.Warn("record failed analysis", "instance_id", args.InstanceID, "err", uerr)
		}
	}
	if f.Next != nil {
		f.Next(job, outcome, err, took)
	}
}
