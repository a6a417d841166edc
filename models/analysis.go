package models

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"

	"gorm.io/gorm"

	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/store"
)

// Analysis statuses: the pipeline's "ok" and "rejected", and "failed" when
// the node gave up on an instance (recorded so that it is not retried).
const (
	AnalysisOK       = result.StatusOK
	AnalysisRejected = result.StatusRejected
	AnalysisFailed   = "failed"
)

// MeasuredParameters are the clinical parameters as stored, machine or
// human (the same columns appear on analyses and review_tasks). Nil
// means unknown (rejected input, no pixel spacing).
type MeasuredParameters struct {
	C2C7CobbDeg   *float64 `gorm:"column:c2c7_cobb_deg"`
	C2SlopeDeg    *float64 `gorm:"column:c2_slope_deg"`
	C7SlopeDeg    *float64 `gorm:"column:c7_slope_deg"`
	C7SupSlopeDeg *float64 `gorm:"column:c7_sup_slope_deg"`
	C2C7SVAmm     *float64 `gorm:"column:c2c7_sva_mm"`
	SegC2C3Deg    *float64 `gorm:"column:seg_c2_c3_deg"`
	SegC3C4Deg    *float64 `gorm:"column:seg_c3_c4_deg"`
	SegC4C5Deg    *float64 `gorm:"column:seg_c4_c5_deg"`
	SegC5C6Deg    *float64 `gorm:"column:seg_c5_c6_deg"`
	SegC6C7Deg    *float64 `gorm:"column:seg_c6_c7_deg"`
}

func (m *MeasuredParameters) segs() []**float64 {
	return []**float64{&m.SegC2C3Deg, &m.SegC3C4Deg, &m.SegC4C5Deg, &m.SegC5C6Deg, &m.SegC6C7Deg}
}

// ParametersFromResult converts the contract's parameters (nil allowed).
func ParametersFromResult(p *result.Parameters) MeasuredParameters {
	var m MeasuredParameters
	if p == nil {
		return m
	}
	f := func(v float64) *float64 { return &v }
	m.C2C7CobbDeg, m.C2SlopeDeg, m.C7SlopeDeg, m.C7SupSlopeDeg = f(p.C2C7CobbDeg), f(p.C2SlopeDeg), f(p.C7SlopeDeg), f(p.C7SupSlopeDeg)
	if p.C2C7SVAmm != nil {
		m.C2C7SVAmm = f(*p.C2C7SVAmm)
	}
	for i, name := range result.SegmentNames {
		if v, ok := p.SegmentalDeg[name]; ok {
			*m.segs()[i] = f(v)
		}
	}
	return m
}

// Result converts back to the contract's parameters; nil when the angles
// are unknown.
func (m MeasuredParameters) Result() *result.Parameters {
	if m.C2C7CobbDeg == nil || m.C2SlopeDeg == nil || m.C7SlopeDeg == nil || m.C7SupSlopeDeg == nil {
		return nil
	}
	p := &result.Parameters{
		C2C7CobbDeg: *m.C2C7CobbDeg, C2SlopeDeg: *m.C2SlopeDeg, C7SlopeDeg: *m.C7SlopeDeg, C7SupSlopeDeg: *m.C7SupSlopeDeg,
		SegmentalDeg: map[string]float64{},
	}
	if m.C2C7SVAmm != nil {
		v := *m.C2C7SVAmm
		p.C2C7SVAmm = &v
	}
	for i, name := range result.SegmentNames {
		if v := *m.segs()[i]; v != nil {
			p.SegmentalDeg[name] = *v
		}
	}
	return p
}

// Analysis is one run of the measurement pipeline on one source instance.
// (InstanceID, ModelName, ModelVersion, Mode, Revision) is unique: the same
// source and model version are measured once.
type Analysis struct {
	ID           int64 `gorm:"primaryKey"`
	InstanceID   int64
	StudyID      int64
	ModelName    string
	ModelVersion string
	Mode         string
	Revision     int
	Status       string
	Error        string
	Facing       string
	// SpacingSource is the spec's spacing_source key.
	SpacingSource     string
	PixelSpacingRowMM *float64 `gorm:"column:pixel_spacing_row_mm"`
	PixelSpacingColMM *float64 `gorm:"column:pixel_spacing_col_mm"`
	MeasuredParameters
	C7Confidence   *float64 `gorm:"column:c7_confidence"`
	C7Obscuration  string   `gorm:"column:c7_obscuration"`
	ReviewRequired bool
	// ResultJSON is the pipeline's output line, byte for byte.
	ResultJSON  string   `gorm:"column:result_json"`
	TimingsJSON string   `gorm:"column:timings_json"`
	TotalMS     *float64 `gorm:"column:total_ms"`
	StartedAt   time.Time
	FinishedAt  time.Time
	CreatedAt   time.Time

	Landmarks     []Landmark     `gorm:"foreignKey:AnalysisID"`
	ReviewReasons []ReviewReason `gorm:"foreignKey:AnalysisID"`
}

// TableName implements gorm's Tabler.
func (Analysis) TableName() string { return "analyses" }

// Reasons returns the review reason keys, sorted.
func (a *Analysis) Reasons() []string {
	out := make([]string, 0, len(a.ReviewReasons))
	for _, r := range a.ReviewReasons {
		out = append(out, r.Reason)
	}
	sort.Strings(out)
	return out
}

// Landmark is one machine landmark of an analysis. The same name can
// appear for both stages (global and refined C7 kept side by side).
type Landmark struct {
	ID         int64 `gorm:"primaryKey"`
	AnalysisID int64
	Name       string
	Stage      string
	X          float64
	Y          float64
	Confidence float64
}

// TableName implements gorm's Tabler.
func (Landmark) TableName() string { return "landmarks" }

// ReviewReason is one review reason key of an analysis (spec "Review flag").
type ReviewReason struct {
	AnalysisID int64  `gorm:"primaryKey;autoIncrement:false"`
	Reason     string `gorm:"primaryKey"`
}

// TableName implements gorm's Tabler.
func (ReviewReason) TableName() string { return "review_reasons" }

// AnalysisFromResult maps one pipeline result to rows. raw is the exact
// JSON line that was produced (kept for audit and reprocessing); when nil
// the result is marshalled. extraLandmarks adds landmarks of another stage
// (the global C7 beside the refined one). InstanceID and StudyID are left
// to the caller.
func AnalysisFromResult(r *result.Result, raw []byte, extraLandmarks []result.Landmark, startedAt, finishedAt time.Time) (*Analysis, error) {
	if raw == nil {
		var err error
		if raw, err = json.Marshal(r); err != nil {
			return nil, fmt.Errorf("analysis from result: %w", err)
		}
	}
	a := &Analysis{
		Revision:      1,
		Status:        r.Status,
		Error:         r.Error,
		Facing:        r.Facing,
		SpacingSource: r.SpacingSource,
		ResultJSON:    string(raw),
		TimingsJSON:   "{}",
		StartedAt:     store.Normalize(startedAt),
		FinishedAt:    store.Normalize(finishedAt),
	}
	if r.Model != nil {
		a.ModelName, a.ModelVersion, a.Mode = r.Model.Name, r.Model.Version, r.Model.Mode
	}
	if len(r.PixelSpacingMM) == 2 {
		row, col := r.PixelSpacingMM[0], r.PixelSpacingMM[1]
		a.PixelSpacingRowMM, a.PixelSpacingColMM = &row, &col
	}
	a.MeasuredParameters = ParametersFromResult(r.Parameters)
	if r.C7 != nil {
		c := r.C7.Confidence
		a.C7Confidence, a.C7Obscuration = &c, r.C7.Obscuration
	}
	if r.Review != nil {
		a.ReviewRequired = r.Review.Required
		for _, reason := range r.Review.Reasons {
			a.ReviewReasons = append(a.ReviewReasons, ReviewReason{Reason: reason})
		}
	}
	if len(r.TimingsMS) > 0 {
		b, err := json.Marshal(r.TimingsMS) // map keys sorted: deterministic
		if err != nil {
			return nil, fmt.Errorf("analysis from result: timings: %w", err)
		}
		a.TimingsJSON = string(b)
		if t, ok := r.TimingsMS["total"]; ok {
			a.TotalMS = &t
		}
	}
	for _, set := range [][]result.Landmark{r.Landmarks, extraLandmarks} {
		for _, l := range set {
			a.Landmarks = append(a.Landmarks, Landmark{Name: l.Name, Stage: l.Stage, X: l.X, Y: l.Y, Confidence: l.Confidence})
		}
	}
	return a, nil
}

// AnalysisInsert stores an analysis with its landmarks and review reasons
// in one transaction. The same source, model version, mode and revision
// stored before gives ErrAlreadyExists (the job that measures is
// idempotent: see AnalysisGetBySource).
func (s *Store) AnalysisInsert(ctx context.Context, a *Analysis) error {
	if a.InstanceID == 0 || a.StudyID == 0 {
		return fmt.Errorf("insert analysis: instance and study ids are required")
	}
	if a.Revision == 0 {
		a.Revision = 1
	}
	seen := map[[2]string]bool{}
	for _, l := range a.Landmarks {
		if result.LandmarkIndex(l.Name) < 0 {
			return fmt.Errorf("insert analysis: unknown landmark %q", l.Name)
		}
		if l.Stage != result.StageGlobal && l.Stage != result.StageRefined {
			return fmt.Errorf("insert analysis: landmark %s has unknown stage %q", l.Name, l.Stage)
		}
		if !finite(l.X) || !finite(l.Y) || !finite(l.Confidence) {
			return fmt.Errorf("insert analysis: landmark %s has a non-finite value", l.Name)
		}
		k := [2]string{l.Stage, l.Name}
		if seen[k] {
			// gorm would silently skip the duplicate row; refuse instead.
			return fmt.Errorf("insert analysis: landmark %s (%s) given twice", l.Name, l.Stage)
		}
		seen[k] = true
	}
	return s.InTx(ctx, func(tx *Store) error {
		// Create with associations: landmarks and reasons get the new id.
		return wrap("insert analysis", tx.q(ctx).Create(a).Error)
	})
}

// AnalysisGetByID returns an analysis with its landmarks (ordered by
// stage, then contract channel order) and review reasons.
func (s *Store) AnalysisGetByID(ctx context.Context, id int64) (*Analysis, error) {
	var a Analysis
	if err := s.q(ctx).Preload("ReviewReasons").Preload("Landmarks").Take(&a, id).Error; err != nil {
		return nil, wrap("get analysis", err)
	}
	sortLandmarks(a.Landmarks)
	return &a, nil
}

// AnalysisGetBySource returns the revision-1 analysis of an instance by a
// model version and mode: the idempotency check of the analyze job.
func (s *Store) AnalysisGetBySource(ctx context.Context, instanceID int64, modelName, modelVersion, mode string) (*Analysis, error) {
	var a Analysis
	err := s.q(ctx).Preload("ReviewReasons").Preload("Landmarks").
		Where("instance_id = ? AND model_name = ? AND model_version = ? AND mode = ? AND revision = 1",
			instanceID, modelName, modelVersion, mode).Take(&a).Error
	if err != nil {
		return nil, wrap("get analysis by source", err)
	}
	sortLandmarks(a.Landmarks)
	return &a, nil
}

// AnalysisListParams filter AnalysisList. Zero values mean "any".
type AnalysisListParams struct {
	ReviewRequired *bool
	Reason         string      // a review reason key
	ReviewState    ReviewState // has a review task in this state
	Since, Until   time.Time   // created_at range, [Since, Until)
	Modality       string      // a modality of the study's series
	// FlaggedFirst orders analyses needing review before the others.
	FlaggedFirst  bool
	Limit, Offset int
}

// AnalysisList returns analyses newest first (flagged first when asked),
// without landmarks but with review reasons.
func (s *Store) AnalysisList(ctx context.Context, p AnalysisListParams) ([]Analysis, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = 50
	}
	order := "created_at DESC, id DESC"
	if p.FlaggedFirst {
		order = "review_required DESC, " + order
	}
	var out []Analysis
	err := s.analysisFilter(ctx, p).Preload("ReviewReasons").Order(order).Limit(limit).Offset(p.Offset).Find(&out).Error
	return out, wrap("list analyses", err)
}

// AnalysisCount counts the analyses AnalysisList would page through.
func (s *Store) AnalysisCount(ctx context.Context, p AnalysisListParams) (int64, error) {
	var n int64
	err := s.analysisFilter(ctx, p).Count(&n).Error
	return n, wrap("count analyses", err)
}

func (s *Store) analysisFilter(ctx context.Context, p AnalysisListParams) *gorm.DB {
	q := s.q(ctx).Model(&Analysis{})
	if p.ReviewState != "" {
		q = q.Where("id IN (?)", s.q(ctx).Model(&ReviewTask{}).Select("analysis_id").Where("state = ?", p.ReviewState))
	}
	if p.ReviewRequired != nil {
		q = q.Where("review_required = ?", *p.ReviewRequired)
	}
	if p.Reason != "" {
		q = q.Where("id IN (?)", s.q(ctx).Model(&ReviewReason{}).Select("analysis_id").Where("reason = ?", p.Reason))
	}
	if !p.Since.IsZero() {
		q = q.Where("created_at >= ?", store.Normalize(p.Since))
	}
	if !p.Until.IsZero() {
		q = q.Where("created_at < ?", store.Normalize(p.Until))
	}
	if p.Modality != "" {
		q = q.Where("study_id IN (?)", s.q(ctx).Model(&Series{}).Select("study_id").Where("modality = ?", p.Modality))
	}
	return q
}

// ReviewReasonCounts counts analyses per review reason.
func (s *Store) ReviewReasonCounts(ctx context.Context) (map[string]int64, error) {
	var rows []struct {
		Reason string
		N      int64
	}
	err := s.q(ctx).Model(&ReviewReason{}).Select("reason, COUNT(*) AS n").Group("reason").Scan(&rows).Error
	if err != nil {
		return nil, wrap("count review reasons", err)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.Reason] = r.N
	}
	return out, nil
}

// LandmarkListByAnalysis returns an analysis's machine landmarks in
// stage, then contract channel order.
func (s *Store) LandmarkListByAnalysis(ctx context.Context, analysisID int64) ([]Landmark, error) {
	var out []Landmark
	if err := s.q(ctx).Where("analysis_id = ?", analysisID).Find(&out).Error; err != nil {
		return nil, wrap("list landmarks", err)
	}
	sortLandmarks(out)
	return out, nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func sortLandmarks(ls []Landmark) {
	sort.SliceStable(ls, func(i, j int) bool {
		if ls[i].Stage != ls[j].Stage {
			return ls[i].Stage < ls[j].Stage // "global" before "refined"
		}
		return result.LandmarkIndex(ls[i].Name) < result.LandmarkIndex(ls[j].Name)
	})
}
