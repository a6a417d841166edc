package models

import (
	"context"
	"fmt"
	"time"

	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/store"
)

// ReviewState is the state of a review task.
type ReviewState string

// Review states.
const (
	ReviewPending   ReviewState = "pending"
	ReviewVerified  ReviewState = "verified"  // approved as is
	ReviewCorrected ReviewState = "corrected" // approved with human landmarks
	ReviewRejected  ReviewState = "rejected"  // not measurable; Reason says why
)

// ReviewTask is a request for a human to check one analysis. The human
// result (parameters here, landmarks in ReviewLandmarks) is kept beside the
// machine one (the Analysis and its Landmarks), which is never changed:
// corrections are future training data.
type ReviewTask struct {
	ID              int64 `gorm:"primaryKey"`
	AnalysisID      int64
	State           ReviewState
	Reason          string // why it was rejected, or why it was opened
	AssignedUserID  *int64
	DecidedByUserID *int64
	DecidedAt       *time.Time
	Comment         string
	Facing          string
	MeasuredParameters
	// Version increases on every change (optimistic locking).
	Version   int
	CreatedAt time.Time
	UpdatedAt time.Time

	Landmarks []ReviewLandmark `gorm:"foreignKey:ReviewTaskID"`
}

// TableName implements gorm's Tabler.
func (ReviewTask) TableName() string { return "review_tasks" }

// ReviewLandmark is a landmark position set by a reviewer.
type ReviewLandmark struct {
	ID           int64 `gorm:"primaryKey"`
	ReviewTaskID int64
	Name         string
	X            float64
	Y            float64
}

// TableName implements gorm's Tabler.
func (ReviewLandmark) TableName() string { return "review_landmarks" }

// ReviewTaskInsert opens a pending review task for an analysis. An analysis
// has at most one pending task (ErrAlreadyExists).
func (s *Store) ReviewTaskInsert(ctx context.Context, t *ReviewTask) error {
	t.ID = 0
	t.State = ReviewPending
	t.Version = 1
	t.Landmarks = nil
	return wrap("insert review task", s.q(ctx).Create(t).Error)
}

// ReviewTaskGetByID returns a task with its human landmarks.
func (s *Store) ReviewTaskGetByID(ctx context.Context, id int64) (*ReviewTask, error) {
	var t ReviewTask
	if err := s.q(ctx).Preload("Landmarks").Take(&t, id).Error; err != nil {
		return nil, wrap("get review task", err)
	}
	sortReviewLandmarks(t.Landmarks)
	return &t, nil
}

// ReviewTaskListParams filter ReviewTaskList.
type ReviewTaskListParams struct {
	State         ReviewState // empty: any
	Limit, Offset int
}

// ReviewTaskList returns tasks, pending first, then newest first.
func (s *Store) ReviewTaskList(ctx context.Context, p ReviewTaskListParams) ([]ReviewTask, error) {
	q := s.q(ctx).Model(&ReviewTask{})
	if p.State != "" {
		q = q.Where("state = ?", p.State)
	}
	limit := p.Limit
	if limit <= 0 {
		limit = 50
	}
	var out []ReviewTask
	err := q.Order("CASE WHEN state = 'pending' THEN 0 ELSE 1 END, created_at DESC, id DESC").
		Limit(limit).Offset(p.Offset).Find(&out).Error
	return out, wrap("list review tasks", err)
}

// ReviewTaskAssign assigns a pending task to a reviewer (nil: unassign)
// if it is still at the expected version; ErrConflict otherwise.
func (s *Store) ReviewTaskAssign(ctx context.Context, id int64, version int, userID *int64) (*ReviewTask, error) {
	res := s.q(ctx).Model(&ReviewTask{}).Where("id = ? AND state = ? AND version = ?", id, ReviewPending, version).
		Updates(map[string]any{"assigned_user_id": userID, "version": version + 1, "updated_at": store.Now()})
	if res.Error != nil {
		return nil, wrap("assign review task", res.Error)
	}
	if res.RowsAffected == 0 {
		if _, err := s.ReviewTaskGetByID(ctx, id); err != nil {
			return nil, wrap("assign review task", err)
		}
		return nil, wrap("assign review task", ErrConflict)
	}
	return s.ReviewTaskGetByID(ctx, id)
}

// ReviewTaskGetPendingByAnalysis returns an analysis's open task.
func (s *Store) ReviewTaskGetPendingByAnalysis(ctx context.Context, analysisID int64) (*ReviewTask, error) {
	var t ReviewTask
	err := s.q(ctx).Preload("Landmarks").Where("analysis_id = ? AND state = ?", analysisID, ReviewPending).Take(&t).Error
	if err != nil {
		return nil, wrap("get pending review task", err)
	}
	return &t, nil
}

// ReviewTaskGetLatestByAnalysis returns an analysis's newest review task
// (any state) with its human landmarks.
func (s *Store) ReviewTaskGetLatestByAnalysis(ctx context.Context, analysisID int64) (*ReviewTask, error) {
	var t ReviewTask
	err := s.q(ctx).Preload("Landmarks").Where("analysis_id = ?", analysisID).Order("id DESC").Take(&t).Error
	if err != nil {
		return nil, wrap("get latest review task", err)
	}
	sortReviewLandmarks(t.Landmarks)
	return &t, nil
}

// ReviewTaskDecideParams close a pending task.
type ReviewTaskDecideParams struct {
	ID int64
	// Version is the version the reviewer saw; a different current version
	// gives ErrConflict (someone else acted first).
	Version int
	State   ReviewState // verified, corrected or rejected
	UserID  int64
	Reason  string // required for rejected
	Comment string
	// Human result, for corrected (and verified, copying the machine's).
	Facing     string
	Parameters MeasuredParameters
	Landmarks  []result.TruthLandmark
}

// ReviewTaskDecide records a reviewer's decision and the human landmarks
// and parameters, in one transaction, if the task is still pending at the
// expected version.
func (s *Store) ReviewTaskDecide(ctx context.Context, p ReviewTaskDecideParams) (*ReviewTask, error) {
	switch p.State {
	case ReviewVerified, ReviewCorrected:
	case ReviewRejected:
		if p.Reason == "" {
			return nil, fmt.Errorf("decide review task: a rejection needs a reason")
		}
	default:
		return nil, fmt.Errorf("decide review task: %q is not a decision", p.State)
	}
	if p.State == ReviewCorrected && len(p.Landmarks) == 0 {
		return nil, fmt.Errorf("decide review task: a correction needs landmarks")
	}
	seen := map[string]bool{}
	for _, l := range p.Landmarks {
		if result.LandmarkIndex(l.Name) < 0 {
			return nil, fmt.Errorf("decide review task: unknown landmark %q", l.Name)
		}
		if seen[l.Name] {
			return nil, fmt.Errorf("decide review task: landmark %s given twice", l.Name)
		}
		seen[l.Name] = true
		if !finite(l.X) || !finite(l.Y) {
			return nil, fmt.Errorf("decide review task: landmark %s has a non-finite coordinate", l.Name)
		}
	}
	var out *ReviewTask
	err := s.InTx(ctx, func(tx *Store) error {
		now := store.Now()
		uid := p.UserID
		upd := map[string]any{
			"state": p.State, "decided_by_user_id": &uid, "decided_at": now, "comment": p.Comment,
			"facing": p.Facing, "version": p.Version + 1, "updated_at": now,
		}
		if p.Reason != "" {
			upd["reason"] = p.Reason
		}
		mp := p.Parameters
		for col, v := range map[string]*float64{
			"c2c7_cobb_deg": mp.C2C7CobbDeg, "c2_slope_deg": mp.C2SlopeDeg, "c7_slope_deg": mp.C7SlopeDeg,
			"c7_sup_slope_deg": mp.C7SupSlopeDeg, "c2c7_sva_mm": mp.C2C7SVAmm, "seg_c2_c3_deg": mp.SegC2C3Deg,
			"seg_c3_c4_deg": mp.SegC3C4Deg, "seg_c4_c5_deg": mp.SegC4C5Deg, "seg_c5_c6_deg": mp.SegC5C6Deg,
			"seg_c6_c7_deg": mp.SegC6C7Deg,
		} {
			upd[col] = v
		}
		res := tx.q(ctx).Model(&ReviewTask{}).
			Where("id = ? AND state = ? AND version = ?", p.ID, ReviewPending, p.Version).Updates(upd)
		if res.Error != nil {
			return wrap("decide review task", res.Error)
		}
		if res.RowsAffected == 0 {
			if _, err := tx.ReviewTaskGetByID(ctx, p.ID); err != nil {
				return wrap("decide review task", err)
			}
			return wrap("decide review task", ErrConflict)
		}
		if len(p.Landmarks) > 0 {
			rows := make([]ReviewLandmark, 0, len(p.Landmarks))
			for _, l := range p.Landmarks {
				rows = append(rows, ReviewLandmark{ReviewTaskID: p.ID, Name: l.Name, X: l.X, Y: l.Y})
			}
			if err := tx.q(ctx).Create(&rows).Error; err != nil {
				return wrap("decide review task: landmarks", err)
			}
		}
		var err error
		out, err = tx.ReviewTaskGetByID(ctx, p.ID)
		return err
	})
	return out, err
}

func sortReviewLandmarks(ls []ReviewLandmark) {
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && result.LandmarkIndex(ls[j].Name) < result.LandmarkIndex(ls[j-1].Name); j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
}
