// Package modelstest builds rows for tests of packages that use models:
// a received instance, a measured analysis, a reviewer account. Every
// factory fills realistic defaults, takes an options struct for what the
// test cares about, and fails the test on error.
package modelstest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/pipeline/result"
)

var seq atomic.Int64

// UID returns a fresh UID under the UUID-derived root 2.25.
func UID() string { return fmt.Sprintf("2.25.%d%06d", time.Now().UnixNano(), seq.Add(1)) }

// InstanceOpts tune Instance. Empty fields get fresh UIDs and defaults.
type InstanceOpts struct {
	StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID string
	Modality                                            string // default "CR"
	ViewPosition                                        string // default "LL"
	CallingAETitle                                      string // default "PACS"
	ReceivedAt                                          time.Time
}

// Instance records a received lateral CR instance.
func Instance(t testing.TB, s *models.Store, o *InstanceOpts) *models.Instance {
	t.Helper()
	if o == nil {
		o = &InstanceOpts{}
	}
	or := func(v, def string) string {
		if v != "" {
			return v
		}
		return def
	}
	sop := or(o.SOPInstanceUID, UID())
	in, err := s.InstanceRecord(context.Background(), models.InstanceRecordParams{
		Study:  models.Study{StudyInstanceUID: or(o.StudyInstanceUID, UID()), AccessionNumber: "ACC1", PatientID: "PHANTOM1", StudyDate: "20260101"},
		Series: models.Series{SeriesInstanceUID: or(o.SeriesInstanceUID, UID()), Modality: or(o.Modality, "CR"), BodyPartExamined: "CSPINE"},
		Instance: models.Instance{
			SOPInstanceUID: sop, SOPClassUID: "1.2.840.10008.5.1.4.1.1.1", TransferSyntaxUID: "1.2.840.10008.1.2.1",
			ViewPosition: or(o.ViewPosition, "LL"), ImageRows: 2048, ImageColumns: 1664,
			SpoolPath: "spool/" + sop + ".dcm", SHA256: fmt.Sprintf("%064x", seq.Add(1)), SizeBytes: 6815744,
			CallingAETitle: or(o.CallingAETitle, "PACS"), CalledAETitle: "CSPINE", ReceivedAt: o.ReceivedAt,
		},
	})
	if err != nil {
		t.Fatalf("modelstest: record instance: %v", err)
	}
	return in
}

// AnalysisOpts tune Analysis.
type AnalysisOpts struct {
	// Reasons for review; none means not flagged.
	Reasons []string
	// ModelVersion (default "1.0.0").
	ModelVersion string
}

// Result returns a plausible hierarchical pipeline result for an instance:
// 23 refined landmarks of a lordotic spine facing left, with the given
// review reasons.
func Result(sop string, reasons []string, modelVersion string) *result.Result {
	if modelVersion == "" {
		modelVersion = "1.0.0"
	}
	sva := 15.5
	r := &result.Result{
		File: sop + ".dcm", SOPInstanceUID: sop, Status: result.StatusOK, Facing: result.FacingLeft,
		Parameters: &result.Parameters{
			C2C7CobbDeg: 12.3, C2SlopeDeg: 14.1, C7SlopeDeg: 26.4, C7SupSlopeDeg: 22, C2C7SVAmm: &sva,
			SegmentalDeg: map[string]float64{"C2-C3": 2, "C3-C4": 2.5, "C4-C5": 2.6, "C5-C6": 2.4, "C6-C7": 2.8},
		},
		C7:             &result.C7{Confidence: 0.9, Obscuration: result.ObscurationNone},
		Review:         &result.Review{Required: len(reasons) > 0, Reasons: reasons},
		PixelSpacingMM: []float64{0.139, 0.139}, SpacingSource: result.SpacingPixelSpacing,
		Model:     &result.Model{Name: "cspine-phantom", Version: modelVersion, Mode: result.ModeHierarchical},
		TimingsMS: map[string]float64{"total": 60},
	}
	for i, name := range result.LandmarkNames {
		r.Landmarks = append(r.Landmarks, result.Landmark{
			Name: name, X: 800 + 3*float64(i), Y: 500 + 40*float64(i), Confidence: 0.9, Stage: result.StageRefined,
		})
	}
	return r
}

// Analysis stores an analysis of in (and, when flagged, a pending review
// task).
func Analysis(t testing.TB, s *models.Store, in *models.Instance, o *AnalysisOpts) (*models.Analysis, *models.ReviewTask) {
	t.Helper()
	if o == nil {
		o = &AnalysisOpts{}
	}
	now := time.Now()
	a, err := models.AnalysisFromResult(Result(in.SOPInstanceUID, o.Reasons, o.ModelVersion), nil, nil, now, now)
	if err != nil {
		t.Fatalf("modelstest: %v", err)
	}
	a.InstanceID, a.StudyID = in.ID, in.StudyID
	var task *models.ReviewTask
	err = s.InTx(context.Background(), func(tx *models.Store) error {
		if err := tx.AnalysisInsert(context.Background(), a); err != nil {
			return err
		}
		if !a.ReviewRequired {
			return nil
		}
		task = &models.ReviewTask{AnalysisID: a.ID, Reason: o.Reasons[0]}
		return tx.ReviewTaskInsert(context.Background(), task)
	})
	if err != nil {
		t.Fatalf("modelstest: insert analysis: %v", err)
	}
	return a, task
}

// User creates an account with a placeholder hash (tests that log in
// store a real hash themselves).
func User(t testing.TB, s *models.Store, username, role string) *models.User {
	t.Helper()
	u := &models.User{Username: username, PasswordHash: "$2a$10$placeholder", Role: role}
	if err := s.UserInsert(context.Background(), u); err != nil {
		t.Fatalf("modelstest: insert user: %v", err)
	}
	return u
}
