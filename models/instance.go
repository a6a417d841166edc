package models

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/cspine/cspine/store"
)

// InstanceState is what the node did with a received instance.
type InstanceState string

// Instance states.
const (
	InstanceReceived InstanceState = "received" // safe in the spool, study not yet assembled
	InstanceSelected InstanceState = "selected" // chosen for measurement; an analyze job exists
	InstanceSkipped  InstanceState = "skipped"  // not measured (StateReason: AP view, flexion, ...)
	InstanceAnalyzed InstanceState = "analyzed" // an analysis row exists
	InstanceFailed   InstanceState = "failed"   // analysis failed for good (job dead or cancelled)
)

// Instance is one received SOP instance, stored in the spool.
type Instance struct {
	ID                 int64 `gorm:"primaryKey"`
	StudyID            int64
	SeriesID           int64
	SOPInstanceUID     string `gorm:"column:sop_instance_uid"`
	SOPClassUID        string `gorm:"column:sop_class_uid"`
	TransferSyntaxUID  string `gorm:"column:transfer_syntax_uid"`
	InstanceNumber     *int
	ViewPosition       string
	PatientOrientation string
	ImageLaterality    string
	ImageRows          int
	ImageColumns       int
	// SpoolPath is the file, relative to the data directory.
	SpoolPath      string
	SHA256         string `gorm:"column:sha256"`
	SizeBytes      int64
	CallingAETitle string `gorm:"column:calling_ae_title"`
	CalledAETitle  string `gorm:"column:called_ae_title"`
	PeerAddress    string
	State          InstanceState
	StateReason    string
	ReceivedAt     time.Time
	PurgedAt       *time.Time
	UpdatedAt      time.Time
}

// TableName implements gorm's Tabler.
func (Instance) TableName() string { return "instances" }

// InstanceRecordParams describe a received instance and its study and
// series attributes.
type InstanceRecordParams struct {
	Instance Instance // StudyID, SeriesID, State are filled in
	Study    Study    // StudyInstanceUID required; patient/study attributes
	Series   Series   // SeriesInstanceUID required
	// Source is SourcePush or SourcePull (default push).
	Source string
}

// InstanceRecord stores a received instance: it creates its study and
// series when new, inserts the instance, and counts it on the study
// (LastInstanceAt restarts the quiet time; a completed study goes back to
// receiving so that late images are assembled again). A SOP Instance UID
// seen before gives ErrAlreadyExists and the stored instance, so a
// re-sent image is recognised and never stored twice. Call it inside
// InTx together with whatever else the arrival causes.
func (s *Store) InstanceRecord(ctx context.Context, p InstanceRecordParams) (*Instance, error) {
	if p.Study.StudyInstanceUID == "" || p.Series.SeriesInstanceUID == "" || p.Instance.SOPInstanceUID == "" {
		return nil, fmt.Errorf("record instance: study, series and SOP instance UIDs are required")
	}
	var out *Instance
	err := s.InTx(ctx, func(tx *Store) error {
		db := tx.q(ctx)
		if prev, err := tx.InstanceGetBySOPUID(ctx, p.Instance.SOPInstanceUID); err == nil {
			out = prev
			return fmt.Errorf("record instance %s: %w", p.Instance.SOPInstanceUID, ErrAlreadyExists)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		now := store.Now()
		at := store.Normalize(p.Instance.ReceivedAt)
		if p.Instance.ReceivedAt.IsZero() {
			at = now
		}
		st := p.Study
		st.ID = 0
		st.State = StudyReceiving
		st.Source = cmpOr(p.Source, SourcePush)
		st.FirstInstanceAt, st.LastInstanceAt = at, at
		if err := insertIgnore(db, &st, "study_instance_uid", "study_instance_uid = ?", st.StudyInstanceUID); err != nil {
			return wrap("record instance: study", err)
		}
		// Lock the study row (PostgreSQL) so that concurrent arrivals for
		// one study update its counters and modalities one after another.
		if db.Dialector.Name() == store.Postgres {
			if err := db.Clauses(clause.Locking{Strength: "UPDATE"}).Take(&st, st.ID).Error; err != nil {
				return wrap("record instance: lock study", err)
			}
		}
		se := p.Series
		se.ID = 0
		se.StudyID = st.ID
		if err := insertIgnore(db, &se, "series_instance_uid", "series_instance_uid = ?", se.SeriesInstanceUID); err != nil {
			return wrap("record instance: series", err)
		}
		if se.StudyID != st.ID {
			return fmt.Errorf("record instance: series %s: %w", se.SeriesInstanceUID, ErrSeriesOfOtherStudy)
		}
		in := p.Instance
		in.ID = 0
		in.StudyID, in.SeriesID = st.ID, se.ID
		in.State = InstanceReceived
		in.ReceivedAt = at
		if err := db.Create(&in).Error; err != nil {
			return wrap("record instance", err)
		}
		upd := map[string]any{
			"instance_count":   gorm.Expr("instance_count + 1"),
			"last_instance_at": gorm.Expr("CASE WHEN last_instance_at < ? THEN ? ELSE last_instance_at END", at, at),
			"state":            StudyReceiving,
			"state_reason":     "",
			"completed_at":     nil,
			"updated_at":       now,
			"modalities":       mergeModalities(st.Modalities, se.Modality),
		}
		if err := db.Model(&Study{}).Where("id = ?", st.ID).Updates(upd).Error; err != nil {
			return wrap("record instance: update study", err)
		}
		out = &in
		return nil
	})
	return out, err
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// mergeModalities adds m to a backslash-separated set, keeping order.
func mergeModalities(set, m string) string {
	if m == "" {
		return set
	}
	parts := strings.Split(set, `\`)
	for _, p := range parts {
		if p == m {
			return set
		}
	}
	if set == "" {
		return m
	}
	return set + `\` + m
}

// InstanceGetBySOPUID returns the instance with a SOP Instance UID.
func (s *Store) InstanceGetBySOPUID(ctx context.Context, uid string) (*Instance, error) {
	var in Instance
	err := s.q(ctx).Where("sop_instance_uid = ?", uid).Take(&in).Error
	return &in, wrap("get instance by uid", err)
}

// InstanceGetByID returns an instance by row id.
func (s *Store) InstanceGetByID(ctx context.Context, id int64) (*Instance, error) {
	var in Instance
	err := s.q(ctx).Take(&in, id).Error
	return &in, wrap("get instance", err)
}

// InstanceListByStudy returns a study's instances in arrival order.
func (s *Store) InstanceListByStudy(ctx context.Context, studyID int64) ([]Instance, error) {
	var out []Instance
	err := s.q(ctx).Where("study_id = ?", studyID).Order("received_at, id").Find(&out).Error
	return out, wrap("list instances", err)
}

// InstanceSetState sets an instance's state and reason.
func (s *Store) InstanceSetState(ctx context.Context, id int64, state InstanceState, reason string) error {
	res := s.q(ctx).Model(&Instance{}).Where("id = ?", id).
		Updates(map[string]any{"state": state, "state_reason": reason, "updated_at": store.Now()})
	if res.Error == nil && res.RowsAffected == 0 {
		return wrap("set instance state", ErrNotFound)
	}
	return wrap("set instance state", res.Error)
}

// InstanceListPurgeable returns unpurged instances received before cutoff
// whose study is no longer receiving (spool retention).
func (s *Store) InstanceListPurgeable(ctx context.Context, cutoff time.Time, limit int) ([]Instance, error) {
	var out []Instance
	err := s.q(ctx).
		Where("purged_at IS NULL AND received_at < ?", store.Normalize(cutoff)).
		Where("study_id IN (?)", s.q(ctx).Model(&Study{}).Select("id").Where("state <> ?", StudyReceiving)).
		Order("received_at, id").Limit(limit).Find(&out).Error
	return out, wrap("list purgeable instances", err)
}

// InstanceMarkPurged records that an instance's spool file was removed.
func (s *Store) InstanceMarkPurged(ctx context.Context, id int64) error {
	now := store.Now()
	res := s.q(ctx).Model(&Instance{}).Where("id = ?", id).
		Updates(map[string]any{"purged_at": now, "updated_at": now})
	if res.Error == nil && res.RowsAffected == 0 {
		return wrap("mark instance purged", ErrNotFound)
	}
	return wrap("mark instance purged", res.Error)
}

// ErrSeriesOfOtherStudy: an instance names a series that is recorded
// under another study; nothing is recorded for it.
var ErrSeriesOfOtherStudy = errors.New("series belongs to another study")

// SeriesStudyUID returns the Study Instance UID of the study a series is
// recorded under (ErrNotFound: no such series).
func (s *Store) SeriesStudyUID(ctx context.Context, seriesUID string) (string, error) {
	var uids []string
	err := s.q(ctx).Table("series").Joins("JOIN studies ON studies.id = series.study_id").
		Where("series.series_instance_uid = ?", seriesUID).Limit(1).Pluck("studies.study_instance_uid", &uids).Error
	if err == nil && len(uids) == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return "", wrap("get study of series", err)
	}
	return uids[0], nil
}

// IsDataError reports whether err is the database refusing the values it
// was given (a data exception or a constraint other than a unique key)
// rather than failing to work (down, disconnected, overloaded, a missing
// table): trying the same values again will not help.
func IsDataError(err error) bool {
	if errors.Is(err, gorm.ErrCheckConstraintViolated) || errors.Is(err, gorm.ErrForeignKeyViolated) {
		return true
	}
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		c := pg.SQLState()
		// 22: data exception (invalid byte sequence, value too long, out of
		// range...); 23: integrity constraint, but 23505 (unique key) is a
		// race with another writer, which a new try resolves.
		return strings.HasPrefix(c, "22") || (strings.HasPrefix(c, "23") && c != "23505")
	}
	var lite interface{ Code() int }
	if errors.As(err, &lite) {
		switch c := lite.Code(); c & 0xff {
		case 19: // SQLITE_CONSTRAINT, but SQLITE_CONSTRAINT_PRIMARYKEY and _UNIQUE
			return c != 1555 && c != 2067
		case 18, 20: // SQLITE_TOOBIG, SQLITE_MISMATCH
			return true
		}
	}
	return false
}

// InstanceRecordBatch records several received instances in one
// transaction, to the same effect as calling InstanceRecord for each in
// order, with fewer statements: one query for the instances already known,
// one insert of the new ones, and per study and series what InstanceRecord
// does once per instance. res[i] is the new instance, or the stored one
// with errs[i] wrapping ErrAlreadyExists (also for a UID repeated within
// the batch); errs[i] may also name a problem of that instance alone (its
// series belongs to another study: ErrSeriesOfOtherStudy), which records
// nothing for it. err is
// a database failure: nothing of the batch is recorded.
func (s *Store) InstanceRecordBatch(ctx context.Context, ps []InstanceRecordParams) (res []*Instance, errs []error, err error) {
	res, errs = make([]*Instance, len(ps)), make([]error, len(ps))
	err = s.InTx(ctx, func(tx *Store) error {
		clear(res)
		clear(errs)
		db := tx.q(ctx)
		byUID := map[string]*Instance{}
		var uids []string
		for i, p := range ps {
			if p.Study.StudyInstanceUID == "" || p.Series.SeriesInstanceUID == "" || p.Instance.SOPInstanceUID == "" {
				errs[i] = fmt.Errorf("record instance: study, series and SOP instance UIDs are required")
				continue
			}
			uids = append(uids, p.Instance.SOPInstanceUID)
		}
		for len(uids) > 0 {
			chunk := uids[:min(len(uids), 500)]
			uids = uids[len(chunk):]
			var known []*Instance
			if err := db.Where("sop_instance_uid IN ?", chunk).Find(&known).Error; err != nil {
				return wrap("record instances", err)
			}
			for _, in := range known {
				byUID[in.SOPInstanceUID] = in
			}
		}
		now := store.Now()
		studies := map[string]*Study{}
		series := map[string]*Series{}
		type studyUpdate struct {
			n    int
			last time.Time
			mods string
		}
		updates := map[int64]*studyUpdate{}
		var order []int64
		var news []*Instance
		var newAt []int
		for i, p := range ps {
			if errs[i] != nil {
				continue
			}
			if prev := byUID[p.Instance.SOPInstanceUID]; prev != nil {
				res[i] = prev
				errs[i] = fmt.Errorf("record instance %s: %w", p.Instance.SOPInstanceUID, ErrAlreadyExists)
				continue
			}
			at := store.Normalize(p.Instance.ReceivedAt)
			if p.Instance.ReceivedAt.IsZero() {
				at = now
			}
			st := studies[p.Study.StudyInstanceUID]
			if st == nil {
				row := p.Study
				row.ID = 0
				row.State = StudyReceiving
				row.Source = cmpOr(p.Source, SourcePush)
				row.FirstInstanceAt, row.LastInstanceAt = at, at
				if err := insertIgnore(db, &row, "study_instance_uid", "study_instance_uid = ?", row.StudyInstanceUID); err != nil {
					return wrap("record instance: study", err)
				}
				if db.Dialector.Name() == store.Postgres {
					if err := db.Clauses(clause.Locking{Strength: "UPDATE"}).Take(&row, row.ID).Error; err != nil {
						return wrap("record instance: lock study", err)
					}
				}
				st = &row
				studies[row.StudyInstanceUID] = st
			}
			se := series[p.Series.SeriesInstanceUID]
			if se == nil {
				row := p.Series
				row.ID = 0
				row.StudyID = st.ID
				if err := insertIgnore(db, &row, "series_instance_uid", "series_instance_uid = ?", row.SeriesInstanceUID); err != nil {
					return wrap("record instance: series", err)
				}
				se = &row
				series[row.SeriesInstanceUID] = se
			}
			if se.StudyID != st.ID {
				errs[i] = fmt.Errorf("record instance: series %s: %w", se.SeriesInstanceUID, ErrSeriesOfOtherStudy)
				continue
			}
			in := p.Instance
			in.ID = 0
			in.StudyID, in.SeriesID = st.ID, se.ID
			in.State = InstanceReceived
			in.ReceivedAt = at
			news = append(news, &in)
			newAt = append(newAt, i)
			byUID[in.SOPInstanceUID] = &in
			u := updates[st.ID]
			if u == nil {
				u = &studyUpdate{last: at, mods: st.Modalities}
				updates[st.ID] = u
				order = append(order, st.ID)
			}
			u.n++
			if at.After(u.last) {
				u.last = at
			}
			u.mods = mergeModalities(u.mods, se.Modality)
		}
		if len(news) > 0 {
			if err := db.CreateInBatches(news, 200).Error; err != nil {
				return wrap("record instances", err)
			}
		}
		for _, id := range order {
			u := updates[id]
			upd := map[string]any{
				"instance_count":   gorm.Expr("instance_count + ?", u.n),
				"last_instance_at": gorm.Expr("CASE WHEN last_instance_at < ? THEN ? ELSE last_instance_at END", u.last, u.last),
				"state":            StudyReceiving,
				"state_reason":     "",
				"completed_at":     nil,
				"updated_at":       now,
				"modalities":       u.mods,
			}
			if err := db.Model(&Study{}).Where("id = ?", id).Updates(upd).Error; err != nil {
				return wrap("record instance: update study", err)
			}
		}
		for k, i := range newAt {
			res[i] = news[k]
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return res, errs, nil
}
