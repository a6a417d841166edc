package models

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/cspine/cspine/store"
)

// StudyState is the assembly state of a study.
type StudyState string

// Study states.
const (
	// StudyReceiving: instances may still arrive (quiet time not over).
	StudyReceiving StudyState = "receiving"
	// StudyComplete: assembled; the images to measure were chosen.
	StudyComplete StudyState = "complete"
	// StudyNoMeasurableImage: assembled, nothing to measure (StateReason says why).
	StudyNoMeasurableImage StudyState = "no_measurable_image"
)

// Study sources.
const (
	SourcePush = "push" // sent to us by C-STORE
	SourcePull = "pull" // retrieved by our scheduled C-MOVE
)

// Study is a DICOM study (0020,000D) seen by the node.
type Study struct {
	ID               int64  `gorm:"primaryKey"`
	StudyInstanceUID string `gorm:"column:study_instance_uid"`
	AccessionNumber  string
	PatientID        string `gorm:"column:patient_id"`
	PatientName      string
	StudyDate        string // DICOM DA, YYYYMMDD
	StudyDescription string
	// Modalities is a backslash-separated set, as in ModalitiesInStudy.
	Modalities      string
	CallingAETitle  string `gorm:"column:calling_ae_title"`
	Source          string
	State           StudyState
	StateReason     string
	InstanceCount   int
	FirstInstanceAt time.Time
	LastInstanceAt  time.Time
	CompletedAt     *time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// TableName implements gorm's Tabler.
func (Study) TableName() string { return "studies" }

// Series is a DICOM series (0020,000E).
type Series struct {
	ID                int64 `gorm:"primaryKey"`
	StudyID           int64
	SeriesInstanceUID string `gorm:"column:series_instance_uid"`
	Modality          string
	SeriesNumber      *int
	SeriesDescription string
	BodyPartExamined  string
	ProtocolName      string
	CreatedAt         time.Time
}

// TableName implements gorm's Tabler.
func (Series) TableName() string { return "series" }

// StudyGetByUID returns the study with a Study Instance UID.
func (s *Store) StudyGetByUID(ctx context.Context, uid string) (*Study, error) {
	var st Study
	err := s.q(ctx).Where("study_instance_uid = ?", uid).Take(&st).Error
	return &st, wrap("get study by uid", err)
}

// StudyGetByID returns a study by row id.
func (s *Store) StudyGetByID(ctx context.Context, id int64) (*Study, error) {
	var st Study
	err := s.q(ctx).Take(&st, id).Error
	return &st, wrap("get study", err)
}

// StudyListQuiet returns studies still receiving whose last instance
// arrived at or before cutoff (now minus the quiet time), oldest first.
func (s *Store) StudyListQuiet(ctx context.Context, cutoff time.Time, limit int) ([]Study, error) {
	var out []Study
	err := s.q(ctx).Where("state = ? AND last_instance_at <= ?", StudyReceiving, store.Normalize(cutoff)).
		Order("last_instance_at, id").Limit(limit).Find(&out).Error
	return out, wrap("list quiet studies", err)
}

// StudySetState moves a study from one state to another (compare-and-set:
// ErrConflict when it is no longer in from, so that of several nodes only
// one completes a study). Leaving StudyReceiving stamps CompletedAt.
func (s *Store) StudySetState(ctx context.Context, id int64, from, to StudyState, reason string) error {
	upd := map[string]any{"state": to, "state_reason": reason, "updated_at": store.Now()}
	if from == StudyReceiving && to != StudyReceiving {
		upd["completed_at"] = store.Now()
	}
	if to == StudyReceiving {
		upd["completed_at"] = nil
	}
	res := s.q(ctx).Model(&Study{}).Where("id = ? AND state = ?", id, from).Updates(upd)
	if res.Error != nil {
		return wrap("set study state", res.Error)
	}
	if res.RowsAffected == 0 {
		if _, err := s.StudyGetByID(ctx, id); err != nil {
			return wrap("set study state", err)
		}
		return wrap("set study state", ErrConflict)
	}
	return nil
}

// StudyList returns studies newest first.
func (s *Store) StudyList(ctx context.Context, state StudyState, limit, offset int) ([]Study, error) {
	var out []Study
	q := s.q(ctx).Order("created_at DESC, id DESC").Limit(limit).Offset(offset)
	if state != "" {
		q = q.Where("state = ?", state)
	}
	return out, wrap("list studies", q.Find(&out).Error)
}

// SeriesGetByUID returns the series with a Series Instance UID.
func (s *Store) SeriesGetByUID(ctx context.Context, uid string) (*Series, error) {
	var se Series
	err := s.q(ctx).Where("series_instance_uid = ?", uid).Take(&se).Error
	return &se, wrap("get series by uid", err)
}

// SeriesGetByID returns a series by row id.
func (s *Store) SeriesGetByID(ctx context.Context, id int64) (*Series, error) {
	var se Series
	err := s.q(ctx).Take(&se, id).Error
	return &se, wrap("get series", err)
}

// insertIgnore inserts row unless its unique key exists (both dialects
// support ON CONFLICT DO NOTHING), then loads the stored row by where.
func insertIgnore(db *gorm.DB, row any, conflictCol string, where string, arg any) error {
	if err := db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: conflictCol}}, DoNothing: true}).Create(row).Error; err != nil {
		return err
	}
	return db.Where(where, arg).Take(row).Error
}
