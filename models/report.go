package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/cspine/cspine/store"
)

// Verification flags of an SR (0040,A493).
const (
	Unverified = "UNVERIFIED"
	Verified   = "VERIFIED"
)

// Report is one issued pair of result objects for an analysis: the SR
// (TID 1500) and the Secondary Capture overlay. Amended reports (after
// review) carry the next revision and point at their predecessor.
type Report struct {
	ID                  int64 `gorm:"primaryKey"`
	AnalysisID          int64
	ReviewTaskID        *int64
	Revision            int
	PredecessorID       *int64
	VerificationFlag    string
	SRSOPInstanceUID    string  `gorm:"column:sr_sop_instance_uid"`
	SRSeriesInstanceUID string  `gorm:"column:sr_series_instance_uid"`
	SRPath              string  `gorm:"column:sr_path"`
	SCSOPInstanceUID    *string `gorm:"column:sc_sop_instance_uid"`
	SCSeriesInstanceUID *string `gorm:"column:sc_series_instance_uid"`
	SCPath              string  `gorm:"column:sc_path"`
	CreatedAt           time.Time
}

// TableName implements gorm's Tabler.
func (Report) TableName() string { return "reports" }

// ReportInsert stores a report. Revision 0 means "next": 1 for the first
// report of an analysis, else the latest + 1 with PredecessorID set to the
// latest. (AnalysisID, Revision) is unique, so two workers issuing the
// same revision get ErrAlreadyExists, never two reports.
//
// The analyze job must insert its report with Revision 1 explicitly: run
// again after a crash, it then gets ErrAlreadyExists (and reuses the
// stored report, ReportGetLatest) instead of issuing a second one.
// Revision 0 is for amendments after review.
func (s *Store) ReportInsert(ctx context.Context, r *Report) error {
	if r.AnalysisID == 0 || r.SRSOPInstanceUID == "" {
		return fmt.Errorf("insert report: analysis id and SR SOP instance UID are required")
	}
	if r.VerificationFlag == "" {
		r.VerificationFlag = Unverified
	}
	return s.InTx(ctx, func(tx *Store) error {
		if r.Revision == 0 {
			prev, err := tx.ReportGetLatest(ctx, r.AnalysisID)
			switch {
			case err == nil:
				r.Revision = prev.Revision + 1
				r.PredecessorID = &prev.ID
			case isNotFound(err):
				r.Revision = 1
			default:
				return err
			}
		}
		return wrap("insert report", tx.q(ctx).Create(r).Error)
	})
}

// ReportGetByID returns a report.
func (s *Store) ReportGetByID(ctx context.Context, id int64) (*Report, error) {
	var r Report
	return &r, wrap("get report", s.q(ctx).Take(&r, id).Error)
}

// ReportGetLatest returns the highest revision issued for an analysis.
func (s *Store) ReportGetLatest(ctx context.Context, analysisID int64) (*Report, error) {
	var r Report
	err := s.q(ctx).Where("analysis_id = ?", analysisID).Order("revision DESC").Take(&r).Error
	return &r, wrap("get latest report", err)
}

// ReportListByAnalysis returns all revisions, oldest first.
func (s *Store) ReportListByAnalysis(ctx context.Context, analysisID int64) ([]Report, error) {
	var out []Report
	err := s.q(ctx).Where("analysis_id = ?", analysisID).Order("revision").Find(&out).Error
	return out, wrap("list reports", err)
}

// TransferStatus is the delivery state of a report to one destination.
type TransferStatus string

// Transfer statuses.
const (
	TransferPending TransferStatus = "pending" // waiting for its (next) attempt
	TransferSending TransferStatus = "sending" // an attempt is under way
	TransferSent    TransferStatus = "sent"
	TransferFailed  TransferStatus = "failed" // last attempt failed; another is scheduled
	TransferDead    TransferStatus = "dead"   // attempts exhausted; needs a manual retry
)

// Transfer is the delivery of one report (SR and SC) to one destination by
// C-STORE.
type Transfer struct {
	ID             int64 `gorm:"primaryKey"`
	ReportID       int64
	Destination    string // configured destination name
	AETitle        string `gorm:"column:ae_title"`
	Host           string
	Port           int
	Status         TransferStatus
	Attempts       int
	LastError      string
	LastStatusCode *int
	NextAttemptAt  *time.Time
	SentAt         *time.Time
	JobID          *int64
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// TableName implements gorm's Tabler.
func (Transfer) TableName() string { return "transfers" }

// TransferInsert stores a pending transfer; (ReportID, Destination) is
// unique (ErrAlreadyExists).
func (s *Store) TransferInsert(ctx context.Context, t *Transfer) error {
	if t.Status == "" {
		t.Status = TransferPending
	}
	return wrap("insert transfer", s.q(ctx).Create(t).Error)
}

// TransferGetByID returns a transfer.
func (s *Store) TransferGetByID(ctx context.Context, id int64) (*Transfer, error) {
	var t Transfer
	return &t, wrap("get transfer", s.q(ctx).Take(&t, id).Error)
}

// TransferListByReport returns a report's transfers.
func (s *Store) TransferListByReport(ctx context.Context, reportID int64) ([]Transfer, error) {
	var out []Transfer
	err := s.q(ctx).Where("report_id = ?", reportID).Order("id").Find(&out).Error
	return out, wrap("list transfers", err)
}

// TransferListByStatus returns transfers in a status, oldest first.
func (s *Store) TransferListByStatus(ctx context.Context, status TransferStatus, limit int) ([]Transfer, error) {
	var out []Transfer
	err := s.q(ctx).Where("status = ?", status).Order("id").Limit(limit).Find(&out).Error
	return out, wrap("list transfers", err)
}

// TransferSetJob links a transfer to the job that delivers it.
func (s *Store) TransferSetJob(ctx context.Context, id, jobID int64) error {
	return s.transferUpdate(ctx, id, map[string]any{"job_id": jobID})
}

// TransferMarkSending records the start of an attempt.
func (s *Store) TransferMarkSending(ctx context.Context, id int64) error {
	return s.transferUpdate(ctx, id, map[string]any{
		"status": TransferSending, "attempts": gorm.Expr("attempts + 1"), "next_attempt_at": nil,
	})
}

// TransferMarkSent records a delivered report.
func (s *Store) TransferMarkSent(ctx context.Context, id int64) error {
	return s.transferUpdate(ctx, id, map[string]any{
		"status": TransferSent, "sent_at": store.Now(), "last_error": "", "next_attempt_at": nil,
	})
}

// TransferMarkFailed records a failed attempt: failed with the time of the
// next attempt, or dead when none will follow. statusCode is the DIMSE
// status when the peer answered.
func (s *Store) TransferMarkFailed(ctx context.Context, id int64, errMsg string, statusCode *int, nextAttempt *time.Time) error {
	upd := map[string]any{"status": TransferDead, "last_error": errMsg, "last_status_code": statusCode, "next_attempt_at": nil}
	if nextAttempt != nil {
		upd["status"] = TransferFailed
		upd["next_attempt_at"] = store.Normalize(*nextAttempt)
	}
	return s.transferUpdate(ctx, id, upd)
}

// TransferReset makes a dead or failed transfer pending again (manual
// retry); attempts restart from zero.
func (s *Store) TransferReset(ctx context.Context, id int64) error {
	res := s.q(ctx).Model(&Transfer{}).Where("id = ? AND status IN ?", id, []TransferStatus{TransferDead, TransferFailed}).
		Updates(map[string]any{"status": TransferPending, "attempts": 0, "next_attempt_at": nil, "updated_at": store.Now()})
	if res.Error != nil {
		return wrap("reset transfer", res.Error)
	}
	if res.RowsAffected == 0 {
		if _, err := s.TransferGetByID(ctx, id); err != nil {
			return wrap("reset transfer", err)
		}
		return wrap("reset transfer", ErrConflict)
	}
	return nil
}

func (s *Store) transferUpdate(ctx context.Context, id int64, upd map[string]any) error {
	upd["updated_at"] = store.Now()
	res := s.q(ctx).Model(&Transfer{}).Where("id = ?", id).Updates(upd)
	if res.Error == nil && res.RowsAffected == 0 {
		return wrap("update transfer", ErrNotFound)
	}
	return wrap("update transfer", res.Error)
}
