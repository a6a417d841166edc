package models

import "time"

// JobState is the life-cycle state of a durable job (package jobs).
type JobState string

// Job states.
const (
	// JobAvailable: waiting to run at or after RunAt (new, or retrying).
	JobAvailable JobState = "available"
	// JobRunning: claimed by a worker holding a lease until LeaseExpiresAt.
	JobRunning JobState = "running"
	// JobCompleted: done.
	JobCompleted JobState = "completed"
	// JobCancelled: given up on purpose (bad input, or cancelled by an operator).
	JobCancelled JobState = "cancelled"
	// JobDead: failed MaxAttempts times; waits for a manual retry.
	JobDead JobState = "dead"
)

// Job is a durable unit of work, stored so that it survives crashes and can
// be shared by several nodes. See package jobs for the queue.
type Job struct {
	ID       int64 `gorm:"primaryKey"`
	Kind     string
	Args     string // JSON
	State    JobState
	Priority int // lower runs first
	// Attempt counts claims; MaxAttempts failures make the job dead.
	Attempt     int
	MaxAttempts int
	RunAt       time.Time
	// UniqueKey is an idempotency key, unique for ever when set.
	UniqueKey      *string
	LockedBy       string
	LeaseExpiresAt *time.Time
	LastError      string
	Errors         string // JSON array of {attempt, at, error}
	CreatedAt      time.Time
	UpdatedAt      time.Time
	AttemptedAt    *time.Time
	FinalizedAt    *time.Time
}

// TableName implements gorm's Tabler.
func (Job) TableName() string { return "jobs" }
