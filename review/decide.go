package review

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/suyashkumar/dicom"

	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/pipeline/decode"
	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/report/dicomio"
	"github.com/cspine/cspine/report/sc"
	"github.com/cspine/cspine/report/sr"
)

type approveRequest struct {
	Version int    `json:"version"`
	Comment string `json:"comment"`
}

type correctRequest struct {
	Version   int             `json:"version"`
	Comment   string          `json:"comment"`
	Landmarks []landmarkInput `json:"landmarks"`
}

type rejectRequest struct {
	Version int    `json:"version"`
	Reason  string `json:"reason"`
	Comment string `json:"comment"`
}

type reopenRequest struct {
	Version int    `json:"version"`
	Reason  string `json:"reason"`
}

// decisionJSON answers a review action.
type decisionJSON struct {
	Review reviewJSON  `json:"review"`
	Report *reportJSON `json:"report,omitempty"`
}

const maxTextLen = 1000

func checkText(field, v string, required bool) error {
	if required && strings.TrimSpace(v) == "" {
		return errBadRequest("%s is required", field)
	}
	if utf8.RuneCountInString(v) > maxTextLen || !utf8.ValidString(v) {
		return errBadRequest("%s must be valid text of at most %d characters", field, maxTextLen)
	}
	return nil
}

func (s *server) handleApprove(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	var req approveRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := checkText("comment", req.Comment, false); err != nil {
		return err
	}
	return s.decide(w, r, c, decision{state: models.ReviewVerified, version: req.Version, comment: req.Comment})
}

func (s *server) handleCorrect(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	var req correctRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := checkText("comment", req.Comment, false); err != nil {
		return err
	}
	return s.decide(w, r, c, decision{state: models.ReviewCorrected, version: req.Version, comment: req.Comment, landmarks: req.Landmarks})
}

func (s *server) handleReject(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	var req rejectRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := checkText("reason", req.Reason, true); err != nil {
		return err
	}
	if err := checkText("comment", req.Comment, false); err != nil {
		return err
	}
	return s.decide(w, r, c, decision{state: models.ReviewRejected, version: req.Version, comment: req.Comment, reason: req.Reason})
}

type decision struct {
	state     models.ReviewState
	version   int
	comment   string
	reason    string
	landmarks []landmarkInput
}

// humanResult is what a reviewer decided, as stored and reported.
type humanResult struct {
	State      string                 `json:"state"`
	Facing     string                 `json:"facing,omitempty"`
	Landmarks  []result.TruthLandmark `json:"landmarks,omitempty"`
	Parameters *parametersJSON        `json:"parameters,omitempty"`
	Reason     string                 `json:"reason,omitempty"`
	Comment    string                 `json:"comment,omitempty"`
	ReportID   int64                  `json:"report_id,omitempty"`
}

func (s *server) decide(w http.ResponseWriter, r *http.Request, c *reqCtx, d decision) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if d.version < 0 {
		return errBadRequest("version must not be negative")
	}
	ctx := r.Context()
	cd, err := s.loadCase(ctx, id, true)
	if err != nil {
		return err
	}
	if err := checkDecidable(cd, d.version); err != nil {
		return err
	}
	now := s.now().UTC()

	// The human result.
	var human []result.TruthLandmark
	var meas measurement
	switch d.state {
	case models.ReviewVerified:
		final, _ := machineLandmarks(cd.analysis)
		if len(final) != result.NumLandmarks {
			return errConflict("analysis %d does not have all %d landmarks; correct it instead", id, result.NumLandmarks)
		}
		for _, l := range final {
			human = append(human, result.TruthLandmark{Name: l.Name, X: l.X, Y: l.Y})
		}
		meas = measurement{Facing: cd.analysis.Facing, mp: cd.analysis.MeasuredParameters}
		if p := cd.analysis.MeasuredParameters.Result(); p != nil {
			meas.params = *p
		} else {
			return errConflict("analysis %d has no parameters to approve; correct or reject it", id)
		}
	case models.ReviewCorrected:
		rows, cols, err := s.imageSize(cd.instance)
		if err != nil {
			return err
		}
		if human, err = checkLandmarks(d.landmarks, rows, cols, true); err != nil {
			return err
		}
		final, _ := machineLandmarks(cd.analysis)
		if sameLandmarks(final, human) {
			return errBadRequest("no landmark was moved; approve the result as is instead")
		}
		meas = measure(human, spacingOf(cd.analysis), *s.cfg.Limits)
	}

	// The amended report, built before the transaction (it reads and
	// renders the source image).
	var am *amendment
	if d.state != models.ReviewRejected {
		am, err = s.buildAmendment(cd, human, meas, d.state == models.ReviewCorrected, c.user, now)
		if err != nil {
			return err
		}
	}

	var before any = s.reviewState(cd)
	var out decisionJSON
	err = s.store.InTx(ctx, func(tx *models.Store) error {
		task, err := latestTask(ctx, tx, id)
		if err != nil {
			return err
		}
		version := d.version
		if task == nil || task.State != models.ReviewPending {
			if task != nil || version != 0 {
				return errConflict("the case changed meanwhile (it is %s); reload it", stateOf(task))
			}
			t := &models.ReviewTask{AnalysisID: id, Reason: strings.Join(cd.analysis.Reasons(), ",")}
			if err := tx.ReviewTaskInsert(ctx, t); err != nil {
				if errors.Is(err, models.ErrAlreadyExists) {
					return errConflict("another reviewer opened this case meanwhile; reload it")
				}
				return err
			}
			task, version = t, t.Version
		}
		decided, err := tx.ReviewTaskDecide(ctx, models.ReviewTaskDecideParams{
			ID: task.ID, Version: version, State: d.state, UserID: c.user.ID, Reason: d.reason, Comment: d.comment,
			Facing: meas.Facing, Parameters: meas.mp, Landmarks: human,
		})
		if errors.Is(err, models.ErrConflict) {
			return errConflict("another reviewer decided this case meanwhile; reload it")
		}
		if err != nil {
			return err
		}
		after := humanResult{State: string(d.state), Facing: meas.Facing, Landmarks: human, Reason: d.reason, Comment: d.comment}
		if d.state != models.ReviewRejected {
			p := paramsOut(meas.mp)
			after.Parameters = &p
		}
		if am != nil {
			rep, err := s.issue(ctx, tx, cd, am, decided)
			if err != nil {
				return err
			}
			after.ReportID = rep.ID
			ro, err := s.reportsOut(ctx, []models.Report{*rep}, tx)
			if err != nil {
				return err
			}
			out.Report = &ro[0]
		}
		if err := s.audit(ctx, tx, r, c, "review."+actionName(d.state), "analysis", id, before, after); err != nil {
			return err
		}
		cd.task = decided
		return nil
	})
	if err != nil {
		if am != nil {
			am.removeFiles(s.deps.DataDir)
		}
		return err
	}
	if am != nil && s.deps.Notify != nil {
		s.deps.Notify()
	}
	s.log.Info("review: decision", "request_id", c.requestID, "user_id", c.user.ID, "analysis_id", id, "state", d.state)
	full, err := s.caseOut(ctx, cd)
	if err != nil {
		return err
	}
	out.Review = full.Review
	writeJSON(w, http.StatusOK, out)
	return nil
}

func actionName(st models.ReviewState) string {
	switch st {
	case models.ReviewVerified:
		return "approve"
	case models.ReviewCorrected:
		return "correct"
	case models.ReviewRejected:
		return "reject"
	}
	return string(st)
}

func stateOf(t *models.ReviewTask) string {
	if t == nil {
		return "not opened"
	}
	return string(t.State)
}

// checkDecidable refuses a decision on a case that is already decided or
// that the reviewer saw at another version.
func checkDecidable(cd *caseData, version int) error {
	if cd.analysis.Status != models.AnalysisOK {
		return errConflict("analysis %d was not measured (%s); there is nothing to review", cd.analysis.ID, cd.analysis.Status)
	}
	switch t := cd.task; {
	case t == nil && version != 0:
		return errConflict("version %d does not match: the case has no review task yet (version 0)", version)
	case t != nil && t.State != models.ReviewPending:
		return errConflict("the case is already %s; an administrator can reopen it", t.State)
	case t != nil && t.Version != version:
		return errConflict("version %d does not match the current version %d; reload the case", version, t.Version)
	}
	return nil
}

// reviewState is the audit "before" of a decision.
func (s *server) reviewState(cd *caseData) any {
	final, _ := machineLandmarks(cd.analysis)
	m := map[string]any{"state": stateOf(cd.task), "machine_parameters": paramsOut(cd.analysis.MeasuredParameters)}
	lm := make([]result.TruthLandmark, 0, len(final))
	for _, l := range final {
		lm = append(lm, result.TruthLandmark{Name: l.Name, X: l.X, Y: l.Y})
	}
	m["machine_landmarks"] = lm
	if cd.task != nil {
		m["task_id"], m["version"] = cd.task.ID, cd.task.Version
	}
	return m
}

func sameLandmarks(machine []models.Landmark, human []result.TruthLandmark) bool {
	if len(machine) != len(human) {
		return false
	}
	by := map[string]models.Landmark{}
	for _, l := range machine {
		by[l.Name] = l
	}
	for _, h := range human {
		m, ok := by[h.Name]
		if !ok || m.X != h.X || m.Y != h.Y {
			return false
		}
	}
	return true
}

func (s *server) handleReopen(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var req reopenRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := checkText("reason", req.Reason, true); err != nil {
		return err
	}
	ctx := r.Context()
	cd, err := s.loadCase(ctx, id, true)
	if err != nil {
		return err
	}
	if cd.task == nil || cd.task.State == models.ReviewPending {
		return errConflict("the case is not decided; there is nothing to reopen")
	}
	if cd.task.Version != req.Version {
		return errConflict("version %d does not match the current version %d; reload the case", req.Version, cd.task.Version)
	}
	before := s.reviewState(cd)
	err = s.store.InTx(ctx, func(tx *models.Store) error {
		cur, err := latestTask(ctx, tx, id)
		if err != nil {
			return err
		}
		if cur.ID != cd.task.ID || cur.Version != req.Version {
			return errConflict("the case changed meanwhile; reload it")
		}
		t := &models.ReviewTask{AnalysisID: id, Reason: "reopened: " + req.Reason}
		if err := tx.ReviewTaskInsert(ctx, t); err != nil {
			if errors.Is(err, models.ErrAlreadyExists) {
				return errConflict("the case is already open")
			}
			return err
		}
		cd.task = t
		return s.audit(ctx, tx, r, c, "review.reopen", "analysis", id, before, map[string]any{"state": "pending", "task_id": t.ID, "reason": req.Reason})
	})
	if err != nil {
		return err
	}
	out, err := s.caseOut(ctx, cd)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, decisionJSON{Review: out.Review})
	return nil
}

// amendment is an amended report ready to be stored.
type amendment struct {
	prev            *models.Report
	revision        int
	srUID, srSeries string
	scUID, scSeries string
	srPath, scPath  string // relative to the data directory
	corrected       bool
}

func (a *amendment) removeFiles(dataDir string) {
	for _, p := range []string{a.srPath, a.scPath} {
		_ = os.Remove(filepath.Join(dataDir, filepath.FromSlash(p)))
	}
}

// observerName turns a display name "Given Family" into DICOM PN
// "Family^Given"; names already in PN form or single words stay.
func observerName(u *models.User) string {
	n := strings.TrimSpace(u.DisplayName)
	if n == "" {
		return u.Username
	}
	if strings.Contains(n, "^") {
		return n
	}
	parts := strings.Fields(n)
	if len(parts) < 2 {
		return n
	}
	return parts[len(parts)-1] + "^" + strings.Join(parts[:len(parts)-1], " ")
}

// buildAmendment writes the amended SR (VERIFIED, Predecessor Documents
// Sequence, Verifying Observer) and the new overlay for a human result.
func (s *server) buildAmendment(cd *caseData, human []result.TruthLandmark, meas measurement, corrected bool, u *models.User, now time.Time) (*amendment, error) {
	if len(cd.reports) == 0 {
		return nil, errConflict("the machine report of analysis %d has not been issued yet, so there is nothing to amend; try again shortly", cd.analysis.ID)
	}
	prev := cd.reports[len(cd.reports)-1]
	path, err := s.sourcePath(cd.instance)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &apiError{status: http.StatusGone, code: "no_source", msg: "the source image file is missing from the spool"}
	}
	if err != nil {
		return nil, fmt.Errorf("read source: %w", err)
	}
	ds, err := dicom.Parse(bytes.NewReader(b), int64(len(b)), nil, dicom.SkipPixelData())
	if err != nil {
		return nil, fmt.Errorf("parse source: %w", err)
	}
	src, err := dicomio.SourceFromDataset(ds)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	im, err := decode.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("decode source: %w", err)
	}
	a := cd.analysis
	res := result.Result{
		SOPInstanceUID: src.SOPInstanceUID, StudyInstanceUID: src.StudyInstanceUID,
		Status: result.StatusOK, Facing: meas.Facing, Parameters: &meas.params,
		Review:        &result.Review{Required: a.ReviewRequired, Reasons: a.Reasons()},
		SpacingSource: a.SpacingSource,
		Model:         &result.Model{Name: a.ModelName, Version: a.ModelVersion, Mode: a.Mode},
	}
	if res.Review.Reasons == nil {
		res.Review.Reasons = []string{}
	}
	if a.PixelSpacingRowMM != nil && a.PixelSpacingColMM != nil {
		res.PixelSpacingMM = []float64{*a.PixelSpacingRowMM, *a.PixelSpacingColMM}
	}
	if a.C7Confidence != nil {
		res.C7 = &result.C7{Confidence: *a.C7Confidence, Obscuration: a.C7Obscuration}
	}
	conf := map[string]float64{}
	stage := map[string]string{}
	final, _ := machineLandmarks(a)
	for _, l := range final {
		conf[l.Name], stage[l.Name] = l.Confidence, l.Stage
	}
	for _, h := range human {
		l := result.Landmark{Name: h.Name, X: h.X, Y: h.Y, Confidence: conf[h.Name], Stage: stage[h.Name]}
		if l.Stage == "" {
			l.Stage = result.StageRefined
		}
		res.Landmarks = append(res.Landmarks, l)
	}
	rev := prev.Revision + 1
	amd := &sr.Amendment{
		Predecessor: sr.Reference{StudyInstanceUID: src.StudyInstanceUID, SeriesInstanceUID: prev.SRSeriesInstanceUID,
			SOPClassUID: sr.ComprehensiveSRStorage, SOPInstanceUID: prev.SRSOPInstanceUID},
		ObserverName: observerName(u), Organization: s.deps.Organization, VerifiedAt: now, Corrected: corrected,
	}
	// models.Report revision 1 is the machine report (SR revision 0).
	srDS, err := sr.Build(src, res, sr.Options{Device: s.deps.Device, InstitutionName: s.deps.InstitutionName,
		ContentTime: now, Revision: rev - 1, Amendment: amd})
	if err != nil {
		return nil, fmt.Errorf("amended SR: %w", err)
	}
	scDS, err := sc.Build(src, res, im.Display(), im.Rows, im.Cols, sc.Options{Device: s.deps.Device,
		InstitutionName: s.deps.InstitutionName, ContentTime: now, Revision: rev - 1,
		Verified: &sc.Verification{ObserverName: amd.ObserverName, Organization: amd.Organization, VerifiedAt: now, Corrected: corrected}})
	if err != nil {
		return nil, fmt.Errorf("amended overlay: %w", err)
	}
	out := &amendment{
		prev: &prev, revision: rev, corrected: corrected,
		srUID: sr.InstanceUID(src, a.ModelVersion, rev-1), srSeries: sr.SeriesInstanceUID(src),
		scUID: sc.InstanceUID(src, a.ModelVersion, rev-1), scSeries: sc.SeriesInstanceUID(src),
	}
	dir := filepath.Join("reports", fmt.Sprintf("analysis-%d", a.ID))
	if err := os.MkdirAll(filepath.Join(s.deps.DataDir, dir), 0o750); err != nil {
		return nil, fmt.Errorf("report directory: %w", err)
	}
	// Stored with forward slashes, relative to the data directory (as the
	// send worker reads them).
	// A random part keeps two reviewers deciding at once (of whom only one
	// commits) from writing, or removing, each other's files.
	tag := newRequestID()
	out.srPath = filepath.ToSlash(filepath.Join(dir, fmt.Sprintf("r%d-%s.sr.dcm", rev, tag)))
	out.scPath = filepath.ToSlash(filepath.Join(dir, fmt.Sprintf("r%d-%s.sc.dcm", rev, tag)))
	if err := dicomio.WriteFile(filepath.Join(s.deps.DataDir, filepath.FromSlash(out.srPath)), srDS); err != nil {
		return nil, fmt.Errorf("write amended SR: %w", err)
	}
	if err := dicomio.WriteFile(filepath.Join(s.deps.DataDir, filepath.FromSlash(out.scPath)), scDS); err != nil {
		out.removeFiles(s.deps.DataDir)
		return nil, fmt.Errorf("write amended overlay: %w", err)
	}
	return out, nil
}

// issue stores the amended report and puts it on the send path, in tx.
func (s *server) issue(ctx context.Context, tx *models.Store, cd *caseData, am *amendment, task *models.ReviewTask) (*models.Report, error) {
	taskID := task.ID
	prevID := am.prev.ID
	scUID, scSeries := am.scUID, am.scSeries
	rep := &models.Report{
		AnalysisID: cd.analysis.ID, ReviewTaskID: &taskID, Revision: am.revision, PredecessorID: &prevID,
		VerificationFlag: models.Verified, SRSOPInstanceUID: am.srUID, SRSeriesInstanceUID: am.srSeries, SRPath: am.srPath,
		SCSOPInstanceUID: &scUID, SCSeriesInstanceUID: &scSeries, SCPath: am.scPath,
	}
	if err := tx.ReportInsert(ctx, rep); err != nil {
		if errors.Is(err, models.ErrAlreadyExists) {
			return nil, errConflict("another report revision was issued meanwhile; reload the case")
		}
		return nil, err
	}
	ts, err := s.deps.Outbox.Enqueue(ctx, tx, rep, am.prev)
	if err != nil {
		return nil, fmt.Errorf("enqueue amended report: %w", err)
	}
	if len(ts) == 0 {
		s.log.Warn("review: amended report has no destination", "analysis_id", cd.analysis.ID, "report_id", rep.ID)
	}
	return rep, nil
}
