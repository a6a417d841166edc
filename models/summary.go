package models

import (
	"context"
	"time"

	"github.com/cspine/cspine/store"
)

// Summary counts what the node did in a period (the daily summary, the
// status page).
type Summary struct {
	Since, Until time.Time

	InstancesReceived int64
	StudiesCompleted  int64
	StudiesNoImage    int64 // completed with no measurable image
	Analyses          int64
	AnalysesRejected  int64 // the pipeline would not measure the image
	AnalysesFlagged   int64 // review required
	ReviewsDecided    int64
	ReportsIssued     int64
	TransfersSent     int64
	// Current backlog, whatever the period.
	TransfersDead  int64
	ReviewsPending int64
	ReasonsFlagged map[string]int64 // review reasons of the period's analyses
}

// SummaryGet counts the period [since, until).
func (s *Store) SummaryGet(ctx context.Context, since, until time.Time) (*Summary, error) {
	since, until = store.Normalize(since), store.Normalize(until)
	sum := &Summary{Since: since, Until: until, ReasonsFlagged: map[string]int64{}}
	count := func(dst *int64, model any, where string, args ...any) error {
		return s.q(ctx).Model(model).Where(where, args...).Count(dst).Error
	}
	steps := []struct {
		dst   *int64
		model any
		where string
		args  []any
	}{
		{&sum.InstancesReceived, &Instance{}, "received_at >= ? AND received_at < ?", []any{since, until}},
		{&sum.StudiesCompleted, &Study{}, "completed_at >= ? AND completed_at < ?", []any{since, until}},
		{&sum.StudiesNoImage, &Study{}, "completed_at >= ? AND completed_at < ? AND state = ?", []any{since, until, StudyNoMeasurableImage}},
		{&sum.Analyses, &Analysis{}, "created_at >= ? AND created_at < ?", []any{since, until}},
		{&sum.AnalysesRejected, &Analysis{}, "created_at >= ? AND created_at < ? AND status = ?", []any{since, until, AnalysisRejected}},
		{&sum.AnalysesFlagged, &Analysis{}, "created_at >= ? AND created_at < ? AND review_required = ?", []any{since, until, true}},
		{&sum.ReviewsDecided, &ReviewTask{}, "decided_at >= ? AND decided_at < ?", []any{since, until}},
		{&sum.ReportsIssued, &Report{}, "created_at >= ? AND created_at < ?", []any{since, until}},
		{&sum.TransfersSent, &Transfer{}, "sent_at >= ? AND sent_at < ?", []any{since, until}},
		{&sum.TransfersDead, &Transfer{}, "status = ?", []any{TransferDead}},
		{&sum.ReviewsPending, &ReviewTask{}, "state = ?", []any{ReviewPending}},
	}
	for _, st := range steps {
		if err := count(st.dst, st.model, st.where, st.args...); err != nil {
			return nil, wrap("summary", err)
		}
	}
	var rows []struct {
		Reason string
		N      int64
	}
	err := s.q(ctx).Model(&ReviewReason{}).Select("reason, COUNT(*) AS n").
		Where("analysis_id IN (?)", s.q(ctx).Model(&Analysis{}).Select("id").Where("created_at >= ? AND created_at < ?", since, until)).
		Group("reason").Scan(&rows).Error
	if err != nil {
		return nil, wrap("summary: reasons", err)
	}
	for _, r := range rows {
		sum.ReasonsFlagged[r.Reason] = r.N
	}
	return sum, nil
}
