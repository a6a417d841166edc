package models

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cspine/cspine/store"
)

// ActorSystem is the actor of events the node causes by itself.
const ActorSystem = "system"

// AuditEvent records who did what to which entity, with the entity before
// and after as JSON. Rows are only ever inserted.
type AuditEvent struct {
	ID          int64 `gorm:"primaryKey"`
	OccurredAt  time.Time
	Actor       string // username, or ActorSystem
	ActorUserID *int64
	Action      string // e.g. "case.view", "review.correct", "transfer.retry"
	EntityType  string // e.g. "analysis", "review_task", "transfer"
	EntityID    string
	BeforeJSON  *string `gorm:"column:before_json"`
	AfterJSON   *string `gorm:"column:after_json"`
	RemoteAddr  string
	RequestID   string
}

// TableName implements gorm's Tabler.
func (AuditEvent) TableName() string { return "audit_events" }

// AuditEventInsertParams describe an audit event; Before and After are
// marshalled to JSON (nil: none).
type AuditEventInsertParams struct {
	Actor       string
	ActorUserID *int64
	Action      string
	EntityType  string
	EntityID    string
	Before      any
	After       any
	RemoteAddr  string
	RequestID   string
}

// AuditEventInsert appends an audit event. Call it in the transaction of
// the change it records.
func (s *Store) AuditEventInsert(ctx context.Context, p AuditEventInsertParams) (*AuditEvent, error) {
	if p.Actor == "" || p.Action == "" || p.EntityType == "" {
		return nil, fmt.Errorf("insert audit event: actor, action and entity type are required")
	}
	e := &AuditEvent{
		OccurredAt: store.Now(), Actor: p.Actor, ActorUserID: p.ActorUserID, Action: p.Action,
		EntityType: p.EntityType, EntityID: p.EntityID, RemoteAddr: p.RemoteAddr, RequestID: p.RequestID,
	}
	for _, x := range []struct {
		v   any
		dst **string
	}{{p.Before, &e.BeforeJSON}, {p.After, &e.AfterJSON}} {
		if x.v == nil {
			continue
		}
		b, err := json.Marshal(x.v)
		if err != nil {
			return nil, fmt.Errorf("insert audit event: marshal: %w", err)
		}
		str := string(b)
		*x.dst = &str
	}
	return e, wrap("insert audit event", s.q(ctx).Create(e).Error)
}

// AuditEventListByEntity returns an entity's events, oldest first.
func (s *Store) AuditEventListByEntity(ctx context.Context, entityType, entityID string) ([]AuditEvent, error) {
	var out []AuditEvent
	err := s.q(ctx).Where("entity_type = ? AND entity_id = ?", entityType, entityID).Order("occurred_at, id").Find(&out).Error
	return out, wrap("list audit events", err)
}
