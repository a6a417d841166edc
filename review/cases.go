package review

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/pipeline/geometry"
	"github.com/cspine/cspine/pipeline/result"
)

// caseData is everything stored about one analysis.
type caseData struct {
	analysis *models.Analysis
	instance *models.Instance
	series   *models.Series
	study    *models.Study
	task     *models.ReviewTask // latest review task; nil when none
	reports  []models.Report    // oldest first
}

// loadCase loads an analysis and what belongs to it. full also loads the
// review task and reports.
func (s *server) loadCase(ctx context.Context, id int64, full bool) (*caseData, error) {
	return loadCaseFrom(ctx, models.NewStore(s.deps.DB), id, full)
}

func loadCaseFrom(ctx context.Context, st *models.Store, id int64, full bool) (*caseData, error) {
	a, err := st.AnalysisGetByID(ctx, id)
	if errors.Is(err, models.ErrNotFound) {
		return nil, errNotFound(fmt.Sprintf("analysis %d", id))
	}
	if err != nil {
		return nil, err
	}
	cd := &caseData{analysis: a}
	if cd.instance, err = st.InstanceGetByID(ctx, a.InstanceID); err != nil {
		return nil, fmt.Errorf("load case %d: %w", id, err)
	}
	if !full {
		return cd, nil
	}
	if cd.study, err = st.StudyGetByID(ctx, a.StudyID); err != nil {
		return nil, fmt.Errorf("load case %d: %w", id, err)
	}
	if cd.series, err = st.SeriesGetByID(ctx, cd.instance.SeriesID); err != nil {
		return nil, fmt.Errorf("load case %d: %w", id, err)
	}
	if cd.task, err = latestTask(ctx, st, id); err != nil {
		return nil, err
	}
	if cd.reports, err = st.ReportListByAnalysis(ctx, id); err != nil {
		return nil, err
	}
	return cd, nil
}

// latestTask returns the newest review task of an analysis, or nil.
func latestTask(ctx context.Context, st *models.Store, analysisID int64) (*models.ReviewTask, error) {
	t, err := st.ReviewTaskGetLatestByAnalysis(ctx, analysisID)
	if errors.Is(err, models.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("latest review task of analysis %d: %w", analysisID, err)
	}
	return t, nil
}

// machineLandmarks returns the machine's final landmarks in channel order
// (the refined stage where there is one) and the global-stage positions of
// the landmarks that were refined.
func machineLandmarks(a *models.Analysis) (final []models.Landmark, globalOfRefined []models.Landmark) {
	byName := map[string]map[string]models.Landmark{}
	for _, l := range a.Landmarks {
		if byName[l.Name] == nil {
			byName[l.Name] = map[string]models.Landmark{}
		}
		byName[l.Name][l.Stage] = l
	}
	for _, name := range result.LandmarkNames {
		st := byName[name]
		if st == nil {
			continue
		}
		if r, ok := st[result.StageRefined]; ok {
			final = append(final, r)
			if g, ok := st[result.StageGlobal]; ok {
				globalOfRefined = append(globalOfRefined, g)
			}
		} else if g, ok := st[result.StageGlobal]; ok {
			final = append(final, g)
		}
	}
	return final, globalOfRefined
}

// JSON shapes of the API (see openapi.json).

type pointJSON struct {
	Name       string   `json:"name"`
	X          float64  `json:"x"`
	Y          float64  `json:"y"`
	Confidence *float64 `json:"confidence,omitempty"`
	Stage      string   `json:"stage,omitempty"`
}

type reasonJSON struct {
	Key     string `json:"key"`
	Meaning string `json:"meaning"`
}

type parametersJSON struct {
	C2C7CobbDeg   *float64           `json:"c2c7_cobb_deg"`
	C2SlopeDeg    *float64           `json:"c2_slope_deg"`
	C7SlopeDeg    *float64           `json:"c7_slope_deg"`
	C7SupSlopeDeg *float64           `json:"c7_sup_slope_deg"`
	C2C7SVAmm     *float64           `json:"c2c7_sva_mm"`
	SegmentalDeg  map[string]float64 `json:"segmental_deg"`
}

func paramsOut(m models.MeasuredParameters) parametersJSON {
	p := parametersJSON{C2C7CobbDeg: m.C2C7CobbDeg, C2SlopeDeg: m.C2SlopeDeg, C7SlopeDeg: m.C7SlopeDeg,
		C7SupSlopeDeg: m.C7SupSlopeDeg, C2C7SVAmm: m.C2C7SVAmm, SegmentalDeg: map[string]float64{}}
	for i, v := range []*float64{m.SegC2C3Deg, m.SegC3C4Deg, m.SegC4C5Deg, m.SegC5C6Deg, m.SegC6C7Deg} {
		if v != nil {
			p.SegmentalDeg[result.SegmentNames[i]] = *v
		}
	}
	return p
}

func reasonsOut(keys []string) []reasonJSON {
	out := make([]reasonJSON, 0, len(keys))
	for _, k := range keys {
		m := result.ReasonMeanings[k]
		if m == "" {
			m = k
		}
		out = append(out, reasonJSON{Key: k, Meaning: m})
	}
	return out
}

type worklistItem struct {
	AnalysisID     int64        `json:"analysis_id"`
	StudyID        int64        `json:"study_id"`
	CreatedAt      time.Time    `json:"created_at"`
	StudyDate      string       `json:"study_date"`
	Modality       string       `json:"modality"`
	ReviewRequired bool         `json:"review_required"`
	Reasons        []reasonJSON `json:"reasons"`
	Status         string       `json:"status"`
	C7Confidence   *float64     `json:"c7_confidence"`
	C7Obscuration  string       `json:"c7_obscuration"`
	C2C7CobbDeg    *float64     `json:"c2c7_cobb_deg"`
	ModelVersion   string       `json:"model_version"`
}

type worklistJSON struct {
	Items         []worklistItem    `json:"items"`
	Total         int64             `json:"total"`
	Page          int               `json:"page"`
	PerPage       int               `json:"per_page"`
	ReasonCounts  map[string]int64  `json:"reason_counts"`
	StatusCounts  map[string]int64  `json:"status_counts"`
	ReasonMeaning map[string]string `json:"reason_meanings"`
}

// worklistFilter is the parsed query of GET /api/v1/worklist.
type worklistFilter struct {
	reason, status, modality string
	flagged                  *bool
	from, to                 time.Time
	page, perPage            int
	sort                     string
}

var reviewStates = []string{string(models.ReviewPending), string(models.ReviewVerified), string(models.ReviewCorrected), string(models.ReviewRejected)}

func parseWorklistFilter(r *http.Request) (worklistFilter, error) {
	q := r.URL.Query()
	f := worklistFilter{page: 1, perPage: 25, sort: "flagged"}
	for k := range q {
		switch k {
		case "reason", "status", "modality", "flagged", "from", "to", "page", "per_page", "sort":
		default:
			return f, errBadRequest("unknown query parameter %q", k)
		}
	}
	if v := q.Get("reason"); v != "" {
		if _, ok := result.ReasonMeanings[v]; !ok {
			return f, errBadRequest("unknown review reason %q", v)
		}
		f.reason = v
	}
	if v := q.Get("status"); v != "" {
		ok := false
		for _, s := range reviewStates {
			ok = ok || s == v
		}
		if !ok {
			return f, errBadRequest("status must be one of %s", strings.Join(reviewStates, ", "))
		}
		f.status = v
	}
	if v := q.Get("modality"); v != "" {
		if len(v) > 16 || strings.ContainsAny(v, `\%_`) {
			return f, errBadRequest("bad modality %q", v)
		}
		f.modality = strings.ToUpper(v)
	}
	if v := q.Get("flagged"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return f, errBadRequest("flagged must be true or false")
		}
		f.flagged = &b
	}
	for _, d := range []struct {
		key string
		dst *time.Time
		add int
	}{{"from", &f.from, 0}, {"to", &f.to, 1}} {
		if v := q.Get(d.key); v != "" {
			t, err := time.Parse("2006-01-02", v)
			if err != nil {
				return f, errBadRequest("%s must be a date YYYY-MM-DD", d.key)
			}
			*d.dst = t.AddDate(0, 0, d.add)
		}
	}
	for _, n := range []struct {
		key      string
		dst      *int
		min, max int
	}{{"page", &f.page, 1, 1 << 20}, {"per_page", &f.perPage, 1, 200}} {
		if v := q.Get(n.key); v != "" {
			i, err := strconv.Atoi(v)
			if err != nil || i < n.min || i > n.max {
				return f, errBadRequest("%s must be an integer from %d to %d", n.key, n.min, n.max)
			}
			*n.dst = i
		}
	}
	if v := q.Get("sort"); v != "" {
		if v != "flagged" && v != "newest" && v != "oldest" {
			return f, errBadRequest("sort must be flagged, newest or oldest")
		}
		f.sort = v
	}
	return f, nil
}

// worklistQuery is the filtered join of analyses with their instance's
// series, the study and the latest review task.
func (s *server) worklistQuery(ctx context.Context, f worklistFilter, withReason bool) *gorm.DB {
	db := s.deps.DB.WithContext(ctx)
	q := db.Table("analyses AS a").
		Joins("JOIN instances i ON i.id = a.instance_id").
		Joins("JOIN series se ON se.id = i.series_id").
		Joins("JOIN studies st ON st.id = a.study_id").
		// The latest review task of each analysis, by one aggregate over
		// review_tasks (no correlated subquery per analysis).
		Joins("LEFT JOIN (SELECT analysis_id, MAX(id) AS id FROM review_tasks GROUP BY analysis_id) lt ON lt.analysis_id = a.id").
		Joins("LEFT JOIN review_tasks rt ON rt.id = lt.id").
		Where("a.status = ?", models.AnalysisOK)
	if f.flagged != nil {
		q = q.Where("a.review_required = ?", *f.flagged)
	}
	if withReason && f.reason != "" {
		q = q.Where("a.id IN (SELECT rr.analysis_id FROM review_reasons rr WHERE rr.reason = ?)", f.reason)
	}
	if f.status != "" {
		q = q.Where("COALESCE(rt.state, 'pending') = ?", f.status)
	}
	if f.modality != "" {
		q = q.Where("se.modality = ?", f.modality)
	}
	if !f.from.IsZero() {
		q = q.Where("a.created_at >= ?", f.from.UTC())
	}
	if !f.to.IsZero() {
		q = q.Where("a.created_at < ?", f.to.UTC())
	}
	return q
}

func (s *server) handleWorklist(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	f, err := parseWorklistFilter(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var total int64
	if err := s.worklistQuery(ctx, f, true).Count(&total).Error; err != nil {
		return fmt.Errorf("worklist: count: %w", err)
	}
	order := "a.review_required DESC, a.created_at DESC, a.id DESC"
	switch f.sort {
	case "newest":
		order = "a.created_at DESC, a.id DESC"
	case "oldest":
		order = "a.created_at ASC, a.id ASC"
	}
	var rows []struct {
		ID             int64
		StudyID        int64
		CreatedAt      time.Time
		StudyDate      string
		Modality       string
		ReviewRequired bool
		State          string
		C7Confidence   *float64 `gorm:"column:c7_confidence"`
		C7Obscuration  string   `gorm:"column:c7_obscuration"`
		C2C7CobbDeg    *float64 `gorm:"column:c2c7_cobb_deg"`
		ModelVersion   string
	}
	err = s.worklistQuery(ctx, f, true).
		Select("a.id, a.study_id, a.created_at, st.study_date, se.modality, a.review_required, COALESCE(rt.state, 'pending') AS state, " +
			"a.c7_confidence, a.c7_obscuration, a.c2c7_cobb_deg, a.model_version").
		Order(order).Limit(f.perPage).Offset((f.page - 1) * f.perPage).Scan(&rows).Error
	if err != nil {
		return fmt.Errorf("worklist: %w", err)
	}
	ids := make([]int64, 0, len(rows))
	for _, row := range rows {
		ids = append(ids, row.ID)
	}
	reasons := map[int64][]string{}
	if len(ids) > 0 {
		var rr []models.ReviewReason
		if err := s.deps.DB.WithContext(ctx).Where("analysis_id IN ?", ids).Order("reason").Find(&rr).Error; err != nil {
			return fmt.Errorf("worklist: reasons: %w", err)
		}
		for _, x := range rr {
			reasons[x.AnalysisID] = append(reasons[x.AnalysisID], x.Reason)
		}
	}
	out := worklistJSON{Items: make([]worklistItem, 0, len(rows)), Total: total, Page: f.page, PerPage: f.perPage,
		ReasonCounts: map[string]int64{}, StatusCounts: map[string]int64{}, ReasonMeaning: result.ReasonMeanings}
	for _, row := range rows {
		out.Items = append(out.Items, worklistItem{
			AnalysisID: row.ID, StudyID: row.StudyID, CreatedAt: row.CreatedAt.UTC(), StudyDate: row.StudyDate,
			Modality: row.Modality, ReviewRequired: row.ReviewRequired, Reasons: reasonsOut(reasons[row.ID]),
			Status: row.State, C7Confidence: row.C7Confidence, C7Obscuration: row.C7Obscuration,
			C2C7CobbDeg: row.C2C7CobbDeg, ModelVersion: row.ModelVersion,
		})
	}
	// Counts per reason under the other filters (so the reason chips show
	// what choosing each would give), and per status under all filters but
	// the status.
	var rc []struct {
		Reason string
		N      int64
	}
	sub := s.worklistQuery(ctx, f, false).Select("a.id")
	if err := s.deps.DB.WithContext(ctx).Table("review_reasons").Select("reason, COUNT(*) AS n").
		Where("analysis_id IN (?)", sub).Group("reason").Scan(&rc).Error; err != nil {
		return fmt.Errorf("worklist: reason counts: %w", err)
	}
	for _, x := range rc {
		out.ReasonCounts[x.Reason] = x.N
	}
	fs := f
	fs.status = ""
	var sc []struct {
		State string
		N     int64
	}
	if err := s.worklistQuery(ctx, fs, true).Select("COALESCE(rt.state, 'pending') AS state, COUNT(*) AS n").
		Group("COALESCE(rt.state, 'pending')").Scan(&sc).Error; err != nil {
		return fmt.Errorf("worklist: status counts: %w", err)
	}
	for _, x := range sc {
		out.StatusCounts[x.State] = x.N
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// caseJSON is the case view.
type caseJSON struct {
	Analysis  analysisJSON  `json:"analysis"`
	Study     studyJSON     `json:"study"`
	Image     imageJSON     `json:"image"`
	Landmarks []pointJSON   `json:"landmarks"`
	C7Stages  *c7StagesJSON `json:"c7_stages,omitempty"`
	Review    reviewJSON    `json:"review"`
	Reports   []reportJSON  `json:"reports"`
}

type analysisJSON struct {
	ID             int64          `json:"id"`
	CreatedAt      time.Time      `json:"created_at"`
	Model          result.Model   `json:"model"`
	Facing         string         `json:"facing"`
	SpacingSource  string         `json:"spacing_source"`
	PixelSpacingMM []float64      `json:"pixel_spacing_mm,omitempty"`
	Parameters     parametersJSON `json:"parameters"`
	C7Confidence   *float64       `json:"c7_confidence"`
	C7Obscuration  string         `json:"c7_obscuration"`
	ReviewRequired bool           `json:"review_required"`
	Reasons        []reasonJSON   `json:"reasons"`
}

type studyJSON struct {
	ID               int64  `json:"id"`
	PatientName      string `json:"patient_name"`
	PatientID        string `json:"patient_id"`
	StudyDate        string `json:"study_date"`
	AccessionNumber  string `json:"accession_number"`
	StudyDescription string `json:"study_description"`
	Modality         string `json:"modality"`
	SeriesNumber     *int   `json:"series_number,omitempty"`
	ViewPosition     string `json:"view_position"`
}

type imageJSON struct {
	Rows          int     `json:"rows"`
	Columns       int     `json:"columns"`
	WindowCenter  float64 `json:"window_center"`
	WindowWidth   float64 `json:"window_width"`
	DefaultWindow string  `json:"default_window"`
	Available     bool    `json:"available"`
	Problem       string  `json:"problem,omitempty"`
}

type c7StagesJSON struct {
	// Disagree is true when the review reasons include
	// c7_stage_disagreement.
	Disagree bool               `json:"disagree"`
	Global   []pointJSON        `json:"global"`
	Refined  []pointJSON        `json:"refined"`
	DistPx   map[string]float64 `json:"distance_px"`
}

type reviewJSON struct {
	TaskID     int64           `json:"task_id,omitempty"`
	State      string          `json:"state"`
	Version    int             `json:"version"`
	Reason     string          `json:"reason,omitempty"`
	Comment    string          `json:"comment,omitempty"`
	DecidedBy  string          `json:"decided_by,omitempty"`
	DecidedAt  *time.Time      `json:"decided_at,omitempty"`
	Landmarks  []pointJSON     `json:"landmarks,omitempty"`
	Parameters *parametersJSON `json:"parameters,omitempty"`
	Facing     string          `json:"facing,omitempty"`
}

func (s *server) caseOut(ctx context.Context, cd *caseData) (caseJSON, error) {
	a := cd.analysis
	out := caseJSON{
		Analysis: analysisJSON{
			ID: a.ID, CreatedAt: a.CreatedAt.UTC(), Model: result.Model{Name: a.ModelName, Version: a.ModelVersion, Mode: a.Mode},
			Facing: a.Facing, SpacingSource: a.SpacingSource, Parameters: paramsOut(a.MeasuredParameters),
			C7Confidence: a.C7Confidence, C7Obscuration: a.C7Obscuration, ReviewRequired: a.ReviewRequired, Reasons: reasonsOut(a.Reasons()),
		},
		Study: studyJSON{ID: cd.study.ID, PatientName: cd.study.PatientName, PatientID: cd.study.PatientID, StudyDate: cd.study.StudyDate,
			AccessionNumber: cd.study.AccessionNumber, StudyDescription: cd.study.StudyDescription, Modality: cd.series.Modality,
			SeriesNumber: cd.series.SeriesNumber, ViewPosition: cd.instance.ViewPosition},
	}
	if a.PixelSpacingRowMM != nil && a.PixelSpacingColMM != nil {
		out.Analysis.PixelSpacingMM = []float64{*a.PixelSpacingRowMM, *a.PixelSpacingColMM}
	}
	ci, err := s.loadImage(cd.instance)
	var ae *apiError
	switch {
	case err == nil:
		out.Image = imageJSON{Rows: ci.im.Rows, Columns: ci.im.Cols, WindowCenter: ci.def.Center, WindowWidth: ci.def.Width, Available: true,
			DefaultWindow: "window"}
		if ci.lut != nil {
			out.Image.DefaultWindow = "voi_lut"
		}
	case errors.As(err, &ae):
		out.Image = imageJSON{Rows: cd.instance.ImageRows, Columns: cd.instance.ImageColumns, Problem: ae.msg}
	default:
		out.Image = imageJSON{Rows: cd.instance.ImageRows, Columns: cd.instance.ImageColumns, Problem: "the source image cannot be decoded"}
		s.log.Warn("review: source image", "analysis_id", a.ID, "err", err)
	}
	final, global := machineLandmarks(a)
	for _, l := range final {
		conf := l.Confidence
		out.Landmarks = append(out.Landmarks, pointJSON{Name: l.Name, X: l.X, Y: l.Y, Confidence: &conf, Stage: l.Stage})
	}
	if len(global) > 0 {
		st := &c7StagesJSON{DistPx: map[string]float64{}}
		for _, r := range a.Reasons() {
			st.Disagree = st.Disagree || r == result.ReasonC7StageDisagreement
		}
		for _, g := range global {
			for _, f := range final {
				if f.Name == g.Name {
					gc, fc := g.Confidence, f.Confidence
					st.Global = append(st.Global, pointJSON{Name: g.Name, X: g.X, Y: g.Y, Confidence: &gc, Stage: g.Stage})
					st.Refined = append(st.Refined, pointJSON{Name: f.Name, X: f.X, Y: f.Y, Confidence: &fc, Stage: f.Stage})
					st.DistPx[g.Name] = round(math.Hypot(g.X-f.X, g.Y-f.Y), 0.01)
				}
			}
		}
		out.C7Stages = st
	}
	out.Review = reviewJSON{State: string(models.ReviewPending)}
	if t := cd.task; t != nil {
		out.Review = reviewJSON{TaskID: t.ID, State: string(t.State), Version: t.Version, Reason: t.Reason, Comment: t.Comment,
			DecidedAt: t.DecidedAt, Facing: t.Facing}
		if t.DecidedByUserID != nil {
			if u, err := s.store.UserGetByID(ctx, *t.DecidedByUserID); err == nil {
				out.Review.DecidedBy = u.Username
			}
		}
		for _, l := range t.Landmarks {
			out.Review.Landmarks = append(out.Review.Landmarks, pointJSON{Name: l.Name, X: l.X, Y: l.Y})
		}
		if t.State == models.ReviewVerified || t.State == models.ReviewCorrected {
			p := paramsOut(t.MeasuredParameters)
			out.Review.Parameters = &p
		}
	}
	reps, err := s.reportsOut(ctx, cd.reports)
	if err != nil {
		return out, err
	}
	out.Reports = reps
	return out, nil
}

func (s *server) handleCase(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	cd, err := s.loadCase(ctx, id, true)
	if err != nil {
		return err
	}
	out, err := s.caseOut(ctx, cd)
	if err != nil {
		return err
	}
	// Every view of a case is audited.
	if err := s.audit(ctx, s.store, r, c, "case.view", "analysis", id, nil, nil); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) handleLandmarks(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	cd, err := s.loadCase(ctx, id, true)
	if err != nil {
		return err
	}
	if err := s.audit(ctx, s.store, r, c, "case.landmarks", "analysis", id, nil, nil); err != nil {
		return err
	}
	var machine []pointJSON
	for _, l := range cd.analysis.Landmarks {
		conf := l.Confidence
		machine = append(machine, pointJSON{Name: l.Name, X: l.X, Y: l.Y, Confidence: &conf, Stage: l.Stage})
	}
	var human []pointJSON
	if cd.task != nil {
		for _, l := range cd.task.Landmarks {
			human = append(human, pointJSON{Name: l.Name, X: l.X, Y: l.Y})
		}
	}
	if human == nil {
		human = []pointJSON{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"analysis_id": id, "machine": machine, "human": human})
	return nil
}

func (s *server) handleStudy(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	st, err := s.store.StudyGetByID(ctx, id)
	if errors.Is(err, models.ErrNotFound) {
		return errNotFound(fmt.Sprintf("study %d", id))
	}
	if err != nil {
		return err
	}
	var as []models.Analysis
	if err := s.deps.DB.WithContext(ctx).Where("study_id = ?", id).Order("id").Find(&as).Error; err != nil {
		return fmt.Errorf("study analyses: %w", err)
	}
	type an struct {
		ID             int64     `json:"id"`
		InstanceID     int64     `json:"instance_id"`
		Status         string    `json:"status"`
		Error          string    `json:"error,omitempty"`
		ReviewRequired bool      `json:"review_required"`
		CreatedAt      time.Time `json:"created_at"`
	}
	out := struct {
		ID               int64  `json:"id"`
		StudyDate        string `json:"study_date"`
		StudyDescription string `json:"study_description"`
		Modalities       string `json:"modalities"`
		State            string `json:"state"`
		StateReason      string `json:"state_reason,omitempty"`
		InstanceCount    int    `json:"instance_count"`
		Analyses         []an   `json:"analyses"`
	}{ID: st.ID, StudyDate: st.StudyDate, StudyDescription: st.StudyDescription, Modalities: st.Modalities,
		State: string(st.State), StateReason: st.StateReason, InstanceCount: st.InstanceCount, Analyses: []an{}}
	for _, a := range as {
		out.Analyses = append(out.Analyses, an{ID: a.ID, InstanceID: a.InstanceID, Status: a.Status, Error: a.Error,
			ReviewRequired: a.ReviewRequired, CreatedAt: a.CreatedAt.UTC()})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// landmarkInput is a landmark sent by the page. Pointers tell a missing
// coordinate from zero.
type landmarkInput struct {
	Name string   `json:"name"`
	X    *float64 `json:"x"`
	Y    *float64 `json:"y"`
}

// checkLandmarks validates landmarks against the image: known names, no
// duplicates, finite coordinates inside the image. all requires all 23.
func checkLandmarks(in []landmarkInput, rows, cols int, all bool) ([]result.TruthLandmark, error) {
	if len(in) == 0 {
		return nil, errBadRequest("landmarks are required")
	}
	seen := map[string]bool{}
	out := make([]result.TruthLandmark, 0, len(in))
	for i, l := range in {
		if result.LandmarkIndex(l.Name) < 0 {
			return nil, errBadRequest("landmark %d: unknown name %q", i, l.Name)
		}
		if seen[l.Name] {
			return nil, errBadRequest("landmark %s appears twice", l.Name)
		}
		seen[l.Name] = true
		if l.X == nil || l.Y == nil {
			return nil, errBadRequest("landmark %s: x and y are required", l.Name)
		}
		x, y := *l.X, *l.Y
		if math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) {
			return nil, errBadRequest("landmark %s: coordinates must be finite", l.Name)
		}
		if rows > 0 && cols > 0 && (x < 0 || y < 0 || x > float64(cols-1) || y > float64(rows-1)) {
			return nil, &apiError{status: http.StatusUnprocessableEntity, code: "outside_image",
				msg: fmt.Sprintf("landmark %s at (%.2f, %.2f) is outside the %d×%d image", l.Name, x, y, cols, rows)}
		}
		out = append(out, result.TruthLandmark{Name: l.Name, X: x, Y: y})
	}
	if all && len(out) != result.NumLandmarks {
		return nil, errBadRequest("all %d landmarks are required, got %d", result.NumLandmarks, len(out))
	}
	sort.SliceStable(out, func(i, j int) bool { return result.LandmarkIndex(out[i].Name) < result.LandmarkIndex(out[j].Name) })
	return out, nil
}

// imageSize returns the source image's size: from the instance row, else
// from the decoded image.
func (s *server) imageSize(in *models.Instance) (rows, cols int, err error) {
	if in.ImageRows > 0 && in.ImageColumns > 0 {
		return in.ImageRows, in.ImageColumns, nil
	}
	ci, err := s.loadImage(in)
	if err != nil {
		return 0, 0, err
	}
	return ci.im.Rows, ci.im.Cols, nil
}

// measurement is a recomputation of the parameters from landmarks with the
// pipeline's geometry.
type measurement struct {
	Facing     string         `json:"facing"`
	Parameters parametersJSON `json:"parameters"`
	// Implausible lists the anatomical plausibility problems, if any.
	Implausible []string `json:"implausible"`

	params result.Parameters
	mp     models.MeasuredParameters
}

func spacingOf(a *models.Analysis) geometry.Spacing {
	if a.PixelSpacingRowMM == nil || a.PixelSpacingColMM == nil {
		return geometry.Spacing{}
	}
	return geometry.Spacing{RowMM: *a.PixelSpacingRowMM, ColMM: *a.PixelSpacingColMM}
}

// measure computes the parameters of 23 landmarks (channel order) exactly
// as the pipeline does: facing from the landmarks (equal weights),
// geometry.Measure, geometry.Check, and the pipeline's rounding.
func measure(lms []result.TruthLandmark, sp geometry.Spacing, lim geometry.Limits) measurement {
	var lm [geometry.NumLandmarks]geometry.Point
	for _, l := range lms {
		lm[result.LandmarkIndex(l.Name)] = geometry.Point{X: l.X, Y: l.Y}
	}
	facing, agreement := geometry.DetermineFacing(&lm, nil)
	p := geometry.Measure(&lm, facing, sp)
	m := measurement{Facing: facing.String(), Implausible: geometry.Check(&lm, facing, agreement, p, sp, lim)}
	if m.Implausible == nil {
		m.Implausible = []string{}
	}
	m.params = result.Parameters{
		C2C7CobbDeg: round(p.CobbDeg, 0.001), C2SlopeDeg: round(p.C2SlopeDeg, 0.001),
		C7SlopeDeg: round(p.C7SlopeDeg, 0.001), C7SupSlopeDeg: round(p.C7SupSlopeDeg, 0.001),
		SegmentalDeg: map[string]float64{},
	}
	if p.SVAmm != nil {
		v := round(*p.SVAmm, 0.01)
		m.params.C2C7SVAmm = &v
	}
	for i, name := range result.SegmentNames {
		m.params.SegmentalDeg[name] = round(p.SegmentalDeg[i], 0.001)
	}
	m.mp = models.ParametersFromResult(&m.params)
	m.Parameters = paramsOut(m.mp)
	return m
}

// round rounds v to a multiple of step as the pipeline does for its output.
func round(v, step float64) float64 {
	r := math.Round(v/step) * step
	digits := int(math.Max(0, -math.Floor(math.Log10(step))))
	p := math.Pow(10, float64(digits))
	return math.Round(r*p) / p
}

type measureRequest struct {
	Landmarks []landmarkInput `json:"landmarks"`
}

// handleMeasure recomputes the parameters for landmarks the reviewer moved:
// the request's landmarks replace the machine's final ones of the same
// name. Nothing is stored.
func (s *server) handleMeasure(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var req measureRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	cd, err := s.loadCase(r.Context(), id, false)
	if err != nil {
		return err
	}
	rows, cols, err := s.imageSize(cd.instance)
	if err != nil {
		return err
	}
	moved, err := checkLandmarks(req.Landmarks, rows, cols, false)
	if err != nil {
		return err
	}
	lms, err := mergeLandmarks(cd.analysis, moved)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, measure(lms, spacingOf(cd.analysis), *s.cfg.Limits))
	return nil
}

// mergeLandmarks returns the machine's final landmarks with the given ones
// replacing those of the same name; all 23 must result.
func mergeLandmarks(a *models.Analysis, moved []result.TruthLandmark) ([]result.TruthLandmark, error) {
	final, _ := machineLandmarks(a)
	by := map[string]result.TruthLandmark{}
	for _, l := range final {
		by[l.Name] = result.TruthLandmark{Name: l.Name, X: l.X, Y: l.Y}
	}
	for _, l := range moved {
		by[l.Name] = l
	}
	out := make([]result.TruthLandmark, 0, result.NumLandmarks)
	for _, n := range result.LandmarkNames {
		l, ok := by[n]
		if !ok {
			return nil, errConflict("analysis %d lacks landmark %s; send all %d", a.ID, n, result.NumLandmarks)
		}
		out = append(out, l)
	}
	return out, nil
}
