package review

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/cspine/cspine/jobs"
	"github.com/cspine/cspine/models"
)

// OutboxFunc adapts a function to the Outbox interface (for example the
// node's routing: worker.EnqueueTransfers with the destinations of the
// study's calling AE).
type OutboxFunc func(ctx context.Context, tx *models.Store, rep, prev *models.Report) ([]models.Transfer, error)

// Enqueue implements Outbox.
func (f OutboxFunc) Enqueue(ctx context.Context, tx *models.Store, rep, prev *models.Report) ([]models.Transfer, error) {
	return f(ctx, tx, rep, prev)
}

// SameDestinations is the default Outbox: an amended report goes to every
// destination its predecessor was sent to (the PACS that holds the report it
// replaces), each as a transfer with a send job on the durable queue.
type SameDestinations struct {
	// MaxAttempts of each send job (default jobs.DefaultMaxAttempts).
	MaxAttempts int
}

// Enqueue implements Outbox.
func (o SameDestinations) Enqueue(ctx context.Context, tx *models.Store, rep, prev *models.Report) ([]models.Transfer, error) {
	if prev == nil {
		return nil, nil
	}
	pts, err := tx.TransferListByReport(ctx, prev.ID)
	if err != nil {
		return nil, err
	}
	out := make([]models.Transfer, 0, len(pts))
	for _, p := range pts {
		t := models.Transfer{ReportID: rep.ID, Destination: p.Destination, AETitle: p.AETitle, Host: p.Host, Port: p.Port}
		if err := EnqueueTransfer(ctx, tx, &t, o.MaxAttempts); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// EnqueueTransfer stores a pending transfer and its send job (unique per
// transfer) through tx, and links them.
func EnqueueTransfer(ctx context.Context, tx *models.Store, t *models.Transfer, maxAttempts int) error {
	if err := tx.TransferInsert(ctx, t); err != nil {
		return err
	}
	res, err := jobs.Insert(ctx, tx.DB(), jobs.InsertParams{Kind: jobs.KindSend, Args: jobs.SendArgs{TransferID: t.ID},
		UniqueKey: jobs.SendKey(t.ID), MaxAttempts: maxAttempts})
	if err != nil {
		return fmt.Errorf("enqueue send job for transfer %d: %w", t.ID, err)
	}
	if err := tx.TransferSetJob(ctx, t.ID, res.Job.ID); err != nil {
		return err
	}
	id := res.Job.ID
	t.JobID = &id
	return nil
}

type transferJSON struct {
	ID             int64      `json:"id"`
	ReportID       int64      `json:"report_id"`
	Destination    string     `json:"destination"`
	AETitle        string     `json:"ae_title"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	LastError      string     `json:"last_error,omitempty"`
	LastStatusCode *int       `json:"last_status_code,omitempty"`
	NextAttemptAt  *time.Time `json:"next_attempt_at,omitempty"`
	SentAt         *time.Time `json:"sent_at,omitempty"`
	JobID          *int64     `json:"job_id,omitempty"`
	JobState       string     `json:"job_state,omitempty"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

type reportJSON struct {
	ID               int64          `json:"id"`
	Revision         int            `json:"revision"`
	PredecessorID    *int64         `json:"predecessor_id,omitempty"`
	ReviewTaskID     *int64         `json:"review_task_id,omitempty"`
	VerificationFlag string         `json:"verification_flag"`
	SRSOPInstanceUID string         `json:"sr_sop_instance_uid"`
	SCSOPInstanceUID *string        `json:"sc_sop_instance_uid,omitempty"`
	CreatedAt        time.Time      `json:"created_at"`
	Transfers        []transferJSON `json:"transfers"`
	// SendStatus summarises the transfers: "no_destination", "sent",
	// "failed" (some dead), or "sending" (pending, sending or retrying).
	SendStatus string `json:"send_status"`
}

func (s *server) transferOut(ctx context.Context, st *models.Store, t models.Transfer) transferJSON {
	out := transferJSON{ID: t.ID, ReportID: t.ReportID, Destination: t.Destination, AETitle: t.AETitle, Status: string(t.Status),
		Attempts: t.Attempts, LastError: t.LastError, LastStatusCode: t.LastStatusCode, NextAttemptAt: t.NextAttemptAt,
		SentAt: t.SentAt, JobID: t.JobID, UpdatedAt: t.UpdatedAt.UTC()}
	if t.JobID != nil {
		var j models.Job
		if err := st.DB().WithContext(ctx).Select("id, state").Take(&j, *t.JobID).Error; err == nil {
			out.JobState = string(j.State)
		}
	}
	return out
}

func (s *server) reportsOut(ctx context.Context, reps []models.Report, tx ...*models.Store) ([]reportJSON, error) {
	st := s.store
	if len(tx) > 0 {
		st = tx[0]
	}
	out := make([]reportJSON, 0, len(reps))
	for _, r := range reps {
		ts, err := st.TransferListByReport(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		rj := reportJSON{ID: r.ID, Revision: r.Revision, PredecessorID: r.PredecessorID, ReviewTaskID: r.ReviewTaskID,
			VerificationFlag: r.VerificationFlag, SRSOPInstanceUID: r.SRSOPInstanceUID, SCSOPInstanceUID: r.SCSOPInstanceUID,
			CreatedAt: r.CreatedAt.UTC(), Transfers: make([]transferJSON, 0, len(ts))}
		sent, dead := 0, 0
		for _, t := range ts {
			rj.Transfers = append(rj.Transfers, s.transferOut(ctx, st, t))
			switch t.Status {
			case models.TransferSent:
				sent++
			case models.TransferDead:
				dead++
			}
		}
		switch {
		case len(ts) == 0:
			rj.SendStatus = "no_destination"
		case sent == len(ts):
			rj.SendStatus = "sent"
		case dead > 0:
			rj.SendStatus = "failed"
		default:
			rj.SendStatus = "sending"
		}
		out = append(out, rj)
	}
	return out, nil
}

func (s *server) handleReports(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if _, err := s.loadCase(ctx, id, false); err != nil {
		return err
	}
	reps, err := s.store.ReportListByAnalysis(ctx, id)
	if err != nil {
		return err
	}
	out, err := s.reportsOut(ctx, reps)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"analysis_id": id, "reports": out})
	return nil
}

var transferStatuses = []models.TransferStatus{models.TransferPending, models.TransferSending, models.TransferSent, models.TransferFailed, models.TransferDead}

func (s *server) handleTransfers(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	q := r.URL.Query()
	for k := range q {
		if k != "status" && k != "limit" {
			return errBadRequest("unknown query parameter %q", k)
		}
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return errBadRequest("limit must be an integer from 1 to 1000")
		}
		limit = n
	}
	ctx := r.Context()
	db := s.deps.DB.WithContext(ctx).Order("id DESC").Limit(limit)
	if v := q.Get("status"); v != "" {
		ok := false
		for _, st := range transferStatuses {
			ok = ok || string(st) == v
		}
		if !ok {
			return errBadRequest("unknown transfer status %q", v)
		}
		db = db.Where("status = ?", v)
	}
	var ts []models.Transfer
	if err := db.Find(&ts).Error; err != nil {
		return fmt.Errorf("list transfers: %w", err)
	}
	out := make([]transferJSON, 0, len(ts))
	for _, t := range ts {
		out = append(out, s.transferOut(ctx, s.store, t))
	}
	writeJSON(w, http.StatusOK, map[string]any{"transfers": out})
	return nil
}

// handleTransferRetry makes a failed or dead transfer pending again and
// its send job run now.
func (s *server) handleTransferRetry(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	t, err := s.store.TransferGetByID(ctx, id)
	if errors.Is(err, models.ErrNotFound) {
		return errNotFound(fmt.Sprintf("transfer %d", id))
	}
	if err != nil {
		return err
	}
	before := s.transferOut(ctx, s.store, *t)
	err = s.store.InTx(ctx, func(tx *models.Store) error {
		if err := tx.TransferReset(ctx, id); err != nil {
			if errors.Is(err, models.ErrConflict) {
				return errConflict("transfer %d is %s; only failed or dead transfers can be retried", id, t.Status)
			}
			return err
		}
		if t.JobID == nil {
			nt := *t
			res, err := jobs.Insert(ctx, tx.DB(), jobs.InsertParams{Kind: jobs.KindSend, Args: jobs.SendArgs{TransferID: nt.ID}, UniqueKey: jobs.SendKey(nt.ID)})
			if err != nil {
				return err
			}
			if err := tx.TransferSetJob(ctx, id, res.Job.ID); err != nil {
				return err
			}
			t.JobID = &res.Job.ID
		}
		return s.audit(ctx, tx, r, c, "transfer.retry", "transfer", id, before, map[string]any{"status": models.TransferPending})
	})
	if err != nil {
		return err
	}
	// The job itself: a dead job runs again with a fresh budget; a job
	// still waiting for its backoff runs now.
	if _, err := jobs.NewClient(s.deps.DB, jobs.ClientConfig{}).Retry(ctx, *t.JobID); err != nil && !errors.Is(err, jobs.ErrWrongState) {
		return fmt.Errorf("retry send job %d: %w", *t.JobID, err)
	}
	if s.deps.Notify != nil {
		s.deps.Notify()
	}
	nt, err := s.store.TransferGetByID(ctx, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.transferOut(ctx, s.store, *nt))
	return nil
}

type auditJSON struct {
	ID         int64     `json:"id"`
	OccurredAt time.Time `json:"occurred_at"`
	Actor      string    `json:"actor"`
	Action     string    `json:"action"`
	EntityType string    `json:"entity_type"`
	EntityID   string    `json:"entity_id"`
	Before     *string   `json:"before,omitempty"`
	After      *string   `json:"after,omitempty"`
	RemoteAddr string    `json:"remote_addr"`
	RequestID  string    `json:"request_id"`
}

func (s *server) handleAudit(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	q := r.URL.Query()
	for k := range q {
		if k != "entity_type" && k != "entity_id" && k != "action" && k != "limit" {
			return errBadRequest("unknown query parameter %q", k)
		}
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return errBadRequest("limit must be an integer from 1 to 1000")
		}
		limit = n
	}
	db := s.deps.DB.WithContext(r.Context()).Order("occurred_at DESC, id DESC").Limit(limit)
	for _, k := range []string{"entity_type", "entity_id", "action"} {
		if v := q.Get(k); v != "" {
			db = db.Where(k+" = ?", v)
		}
	}
	var evs []models.AuditEvent
	if err := db.Find(&evs).Error; err != nil {
		return fmt.Errorf("list audit events: %w", err)
	}
	out := make([]auditJSON, 0, len(evs))
	for _, e := range evs {
		out = append(out, auditJSON{ID: e.ID, OccurredAt: e.OccurredAt.UTC(), Actor: e.Actor, Action: e.Action, EntityType: e.EntityType,
			EntityID: e.EntityID, Before: e.BeforeJSON, After: e.AfterJSON, RemoteAddr: e.RemoteAddr, RequestID: e.RequestID})
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": out})
	return nil
}
