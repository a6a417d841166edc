package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
)

// Defaults.
const (
	DefaultPriority    = 2
	DefaultMaxAttempts = 10
)

// InsertParams describe a job to enqueue.
type InsertParams struct {
	Kind string
	// Args is marshalled to JSON.
	Args any
	// UniqueKey, when set, makes the insert idempotent for ever.
	UniqueKey string
	// Priority: lower runs first (default 2).
	Priority int
	// MaxAttempts before the job is dead (default 10).
	MaxAttempts int
	// RunAt: not before (default now).
	RunAt time.Time
}

// InsertResult is the job stored for an InsertParams.
type InsertResult struct {
	Job *models.Job
	// Inserted is false when a job with the same unique key existed; Job is
	// then that job, in whatever state it is.
	Inserted bool
}

// Insert enqueues a job through db, which may be a transaction: the job
// then commits or rolls back with the rows that caused it.
func Insert(ctx context.Context, db *gorm.DB, p InsertParams) (*InsertResult, error) {
	return insertAt(ctx, db, p, store.Now())
}

func insertAt(ctx context.Context, db *gorm.DB, p InsertParams, now time.Time) (*InsertResult, error) {
	if p.Kind == "" {
		return nil, fmt.Errorf("insert job: kind is required")
	}
	args, err := json.Marshal(p.Args)
	if err != nil {
		return nil, fmt.Errorf("insert %s job: marshal args: %w", p.Kind, err)
	}
	if p.Args == nil {
		args = []byte("{}")
	}
	j := &models.Job{
		Kind: p.Kind, Args: string(args), State: models.JobAvailable,
		Priority: p.Priority, MaxAttempts: p.MaxAttempts, RunAt: now, Errors: "[]",
		CreatedAt: now, UpdatedAt: now,
	}
	if j.Priority == 0 {
		j.Priority = DefaultPriority
	}
	if j.MaxAttempts <= 0 {
		j.MaxAttempts = DefaultMaxAttempts
	}
	if !p.RunAt.IsZero() {
		j.RunAt = store.Normalize(p.RunAt)
	}
	db = db.WithContext(ctx)
	if p.UniqueKey == "" {
		if err := db.Create(j).Error; err != nil {
			return nil, fmt.Errorf("insert %s job: %w", p.Kind, err)
		}
		if err := notify(db, p.Kind); err != nil {
			return nil, fmt.Errorf("insert %s job: %w", p.Kind, err)
		}
		return &InsertResult{Job: j, Inserted: true}, nil
	}
	key := p.UniqueKey
	j.UniqueKey = &key
	res := db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "unique_key"}}, DoNothing: true}).Create(j)
	if res.Error != nil {
		return nil, fmt.Errorf("insert %s job: %w", p.Kind, res.Error)
	}
	if res.RowsAffected == 1 {
		if err := notify(db, p.Kind); err != nil {
			return nil, fmt.Errorf("insert %s job: %w", p.Kind, err)
		}
		return &InsertResult{Job: j, Inserted: true}, nil
	}
	var existing models.Job
	if err := db.Where("unique_key = ?", key).Take(&existing).Error; err != nil {
		return nil, fmt.Errorf("insert %s job: load existing %q: %w", p.Kind, key, err)
	}
	return &InsertResult{Job: &existing, Inserted: false}, nil
}

// DecodeArgs unmarshals a job's arguments. Bad arguments cannot get better
// by retrying, so the error is a Cancel.
func DecodeArgs[T any](j *models.Job) (T, error) {
	var v T
	if err := json.Unmarshal([]byte(j.Args), &v); err != nil {
		return v, Cancel(fmt.Errorf("decode %s job %d args: %w", j.Kind, j.ID, err))
	}
	return v, nil
}

// Backoff gives the delay before retry number attempt (1 = after the
// first failure).
type Backoff func(attempt int) time.Duration

// ExponentialBackoff returns base·2^(attempt−1), capped at maxDelay, with
// up to ±jitter (a fraction, 0..1) of random spread so that failed jobs do
// not retry in lockstep.
func ExponentialBackoff(base, maxDelay time.Duration, jitter float64) Backoff {
	return func(attempt int) time.Duration {
		if attempt < 1 {
			attempt = 1
		}
		d := float64(base) * math.Pow(2, float64(attempt-1))
		if d > float64(maxDelay) || math.IsInf(d, 0) {
			d = float64(maxDelay)
		}
		if jitter > 0 {
			d += d * jitter * (2*rand.Float64() - 1)
		}
		return time.Duration(d)
	}
}

// ClientConfig configures a Client. Zero values mean defaults.
type ClientConfig struct {
	// Backoff between attempts (default: 10s doubling to 1h, ±10%).
	Backoff Backoff
	// Now is the clock (default store.Now); tests set it.
	Now func() time.Time
	// MaxErrors is how many past attempt errors a job keeps (default 20).
	MaxErrors int
}

// Client claims, finishes and administers jobs.
type Client struct {
	db      *gorm.DB
	dialect string
	backoff Backoff
	now     func() time.Time
	maxErrs int
}

// NewClient returns a Client over db (a pool, not a transaction).
func NewClient(db *gorm.DB, cfg ClientConfig) *Client {
	c := &Client{db: db, dialect: db.Dialector.Name(), backoff: cfg.Backoff, now: cfg.Now, maxErrs: cfg.MaxErrors}
	if c.backoff == nil {
		c.backoff = ExponentialBackoff(10*time.Second, time.Hour, 0.1)
	}
	if c.now == nil {
		c.now = store.Now
	}
	if c.maxErrs <= 0 {
		c.maxErrs = 20
	}
	return c
}

func (c *Client) clock() time.Time { return store.Normalize(c.now()) }

// Insert enqueues a job outside any transaction of the caller.
func (c *Client) Insert(ctx context.Context, p InsertParams) (*InsertResult, error) {
	return insertAt(ctx, c.db, p, c.clock())
}

// Claim takes up to n available jobs of the given kinds whose time has
// come, for worker, with a lease until now+lease. Each claim counts an
// attempt.
func (c *Client) Claim(ctx context.Context, worker string, kinds []string, n int, lease time.Duration) ([]*models.Job, error) {
	if n <= 0 || len(kinds) == 0 {
		return nil, nil
	}
	if worker == "" {
		return nil, fmt.Errorf("claim jobs: worker id is required")
	}
	now := c.clock()
	lockClause := ""
	if c.dialect == store.Postgres {
		lockClause = " FOR UPDATE SKIP LOCKED"
	}
	q := `UPDATE jobs SET state = ?, attempt = attempt + 1, locked_by = ?, lease_expires_at = ?,
	             attempted_at = ?, updated_at = ?
	      WHERE id IN (SELECT id FROM jobs
	                   WHERE state = ? AND run_at <= ? AND kind IN ?
	                   ORDER BY priority, run_at, id LIMIT ?` + lockClause + `)
	      RETURNING *`
	var out []*models.Job
	err := c.db.WithContext(ctx).Raw(q, models.JobRunning, worker, now.Add(lease), now, now,
		models.JobAvailable, now, kinds, n).Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("claim jobs: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Priority != b.Priority {
			return a.Priority < b.Priority
		}
		if !a.RunAt.Equal(b.RunAt) {
			return a.RunAt.Before(b.RunAt)
		}
		return a.ID < b.ID
	})
	return out, nil
}

// ExtendLease keeps a running job's lease until now+lease; ErrLeaseLost
// when the job is no longer this worker's.
func (c *Client) ExtendLease(ctx context.Context, j *models.Job, lease time.Duration) error {
	now := c.clock()
	until := now.Add(lease)
	res := c.fenced(ctx, j).Updates(map[string]any{"lease_expires_at": until, "updated_at": now})
	if res.Error != nil {
		return fmt.Errorf("extend lease of job %d: %w", j.ID, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("extend lease of job %d: %w", j.ID, ErrLeaseLost)
	}
	j.LeaseExpiresAt = &until
	return nil
}

// fenced selects the job only while this claim still holds it.
func (c *Client) fenced(ctx context.Context, j *models.Job) *gorm.DB {
	return c.db.WithContext(ctx).Model(&models.Job{}).
		Where("id = ? AND state = ? AND locked_by = ? AND attempt = ?", j.ID, models.JobRunning, j.LockedBy, j.Attempt)
}

// Complete marks a claimed job completed.
func (c *Client) Complete(ctx context.Context, j *models.Job) error {
	return CompleteTx(ctx, c.db, j, c.clock())
}

// CompleteTx marks a claimed job completed through db, which may be the
// worker's transaction, so that the job's effects and its completion
// commit together. now may be zero (store.Now).
func CompleteTx(ctx context.Context, db *gorm.DB, j *models.Job, now time.Time) error {
	if now.IsZero() {
		now = store.Now()
	}
	res := db.WithContext(ctx).Model(&models.Job{}).
		Where("id = ? AND state = ? AND locked_by = ? AND attempt = ?", j.ID, models.JobRunning, j.LockedBy, j.Attempt).
		Updates(map[string]any{
			"state": models.JobCompleted, "finalized_at": now, "updated_at": now,
			"locked_by": "", "lease_expires_at": nil,
		})
	if res.Error != nil {
		return fmt.Errorf("complete job %d: %w", j.ID, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("complete job %d: %w", j.ID, ErrLeaseLost)
	}
	j.State = models.JobCompleted
	return nil
}

// Outcome is what Fail did with a job.
type Outcome string

// Outcomes of Fail.
const (
	OutcomeRetry     Outcome = "retry"
	OutcomeSnoozed   Outcome = "snoozed"
	OutcomeCancelled Outcome = "cancelled"
	OutcomeDead      Outcome = "dead"
)

type attemptError struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
}

// Fail records that a claimed job's attempt ended with err and decides
// what follows (see the package comment). It returns the outcome and,
// when the job will run again, when.
func (c *Client) Fail(ctx context.Context, j *models.Job, workErr error) (Outcome, time.Time, error) {
	now := c.clock()
	var (
		cancel *cancelError
		snooze *snoozeError
		retry  *retryError
	)
	upd := map[string]any{"updated_at": now, "locked_by": "", "lease_expires_at": nil}
	var outcome Outcome
	var runAt time.Time
	switch {
	case errors.As(workErr, &snooze):
		outcome, runAt = OutcomeSnoozed, now.Add(snooze.d)
		upd["state"], upd["run_at"] = models.JobAvailable, runAt
		upd["attempt"] = gorm.Expr("attempt - 1")
	case errors.As(workErr, &cancel):
		outcome = OutcomeCancelled
		upd["state"], upd["finalized_at"] = models.JobCancelled, now
	case j.Attempt >= j.MaxAttempts:
		outcome = OutcomeDead
		upd["state"], upd["finalized_at"] = models.JobDead, now
	default:
		delay := c.backoff(j.Attempt)
		if errors.As(workErr, &retry) && retry.after >= 0 {
			delay = retry.after
		}
		outcome, runAt = OutcomeRetry, now.Add(delay)
		upd["state"], upd["run_at"] = models.JobAvailable, runAt
	}
	if outcome != OutcomeSnoozed {
		msg := "unknown error"
		if workErr != nil {
			msg = workErr.Error()
		}
		hist, err := c.appendError(j.Errors, attemptError{Attempt: j.Attempt, At: now, Error: msg})
		if err != nil {
			return "", time.Time{}, fmt.Errorf("fail job %d: %w", j.ID, err)
		}
		upd["last_error"], upd["errors"] = msg, hist
	}
	res := c.fenced(ctx, j).Updates(upd)
	if res.Error != nil {
		return "", time.Time{}, fmt.Errorf("fail job %d: %w", j.ID, res.Error)
	}
	if res.RowsAffected == 0 {
		return "", time.Time{}, fmt.Errorf("fail job %d: %w", j.ID, ErrLeaseLost)
	}
	return outcome, runAt, nil
}

// release gives a claimed job back without counting the attempt (the node
// is shutting down).
func (c *Client) release(ctx context.Context, j *models.Job) error {
	_, _, err := c.Fail(ctx, j, Snooze(0))
	return err
}

func (c *Client) appendError(histJSON string, e attemptError) (string, error) {
	var hist []attemptError
	if histJSON != "" {
		if err := json.Unmarshal([]byte(histJSON), &hist); err != nil {
			hist = nil // a damaged history is replaced, not fatal
		}
	}
	hist = append(hist, e)
	if len(hist) > c.maxErrs {
		hist = hist[len(hist)-c.maxErrs:]
	}
	b, err := json.Marshal(hist)
	return string(b), err
}

// RescueExpired takes back running jobs whose lease has expired (their
// worker crashed, hung or lost the database): each becomes available again
// at once, or dead when its attempts are used up. It returns how many jobs
// it rescued.
func (c *Client) RescueExpired(ctx context.Context) (int, error) {
	now := c.clock()
	var expired []*models.Job
	err := c.db.WithContext(ctx).Where("state = ? AND lease_expires_at < ?", models.JobRunning, now).
		Order("id").Limit(1000).Find(&expired).Error
	if err != nil {
		return 0, fmt.Errorf("rescue expired jobs: %w", err)
	}
	n := 0
	for _, j := range expired {
		lostBy := j.LockedBy
		// At once, not after a backoff: the worker, not the job, failed.
		// A job that kills its worker each time still ends dead after
		// MaxAttempts claims.
		_, _, err := c.Fail(ctx, j, RetryAfter(fmt.Errorf("lease expired: worker %s stopped renewing it", lostBy), 0))
		switch {
		case errors.Is(err, ErrLeaseLost): // renewed or rescued meanwhile
		case err != nil:
			return n, fmt.Errorf("rescue expired jobs: %w", err)
		default:
			n++
		}
	}
	return n, nil
}

// PurgeFinished deletes completed and cancelled jobs finalized before
// before, at most limit of them (oldest first), and returns how many it
// deleted. Dead jobs stay until someone retries or cancels them: they are
// the operator's to-do list. A purged job's idempotency key is freed;
// instances are not analysed twice because ingest recognises a re-sent
// instance by its SOP Instance UID.
func (c *Client) PurgeFinished(ctx context.Context, before time.Time, limit int) (int64, error) {
	if limit <= 0 {
		limit = 1000
	}
	ids := c.db.Model(&models.Job{}).Select("id").
		Where("state IN ? AND finalized_at < ?", []models.JobState{models.JobCompleted, models.JobCancelled}, store.Normalize(before)).
		Order("finalized_at").Limit(limit)
	res := c.db.WithContext(ctx).Where("id IN (?)", ids).Delete(&models.Job{})
	if res.Error != nil {
		return 0, fmt.Errorf("purge finished jobs: %w", res.Error)
	}
	return res.RowsAffected, nil
}

// Get returns a job.
func (c *Client) Get(ctx context.Context, id int64) (*models.Job, error) {
	var j models.Job
	err := c.db.WithContext(ctx).Take(&j, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("get job %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get job %d: %w", id, err)
	}
	return &j, nil
}

// ListParams filter List. Zero values mean any.
type ListParams struct {
	State models.JobState
	Kind  string
	Limit int
}

// List returns jobs, newest first.
func (c *Client) List(ctx context.Context, p ListParams) ([]models.Job, error) {
	q := c.db.WithContext(ctx).Order("id DESC")
	if p.State != "" {
		q = q.Where("state = ?", p.State)
	}
	if p.Kind != "" {
		q = q.Where("kind = ?", p.Kind)
	}
	if p.Limit <= 0 {
		p.Limit = 100
	}
	var out []models.Job
	if err := q.Limit(p.Limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return out, nil
}

// Counts returns the number of jobs per kind and state (queue depth).
func (c *Client) Counts(ctx context.Context) (map[string]map[models.JobState]int64, error) {
	var rows []struct {
		Kind  string
		State models.JobState
		N     int64
	}
	err := c.db.WithContext(ctx).Model(&models.Job{}).Select("kind, state, COUNT(*) AS n").
		Group("kind, state").Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	out := map[string]map[models.JobState]int64{}
	for _, r := range rows {
		if out[r.Kind] == nil {
			out[r.Kind] = map[models.JobState]int64{}
		}
		out[r.Kind][r.State] = r.N
	}
	return out, nil
}

// Retry makes a dead, cancelled or waiting job run now with a fresh
// attempt budget (an operator's manual retry). Its error history is kept.
func (c *Client) Retry(ctx context.Context, id int64) (*models.Job, error) {
	now := c.clock()
	res := c.db.WithContext(ctx).Model(&models.Job{}).
		Where("id = ? AND state IN ?", id, []models.JobState{models.JobDead, models.JobCancelled, models.JobAvailable}).
		Updates(map[string]any{"state": models.JobAvailable, "attempt": 0, "run_at": now, "finalized_at": nil, "updated_at": now})
	if res.Error != nil {
		return nil, fmt.Errorf("retry job %d: %w", id, res.Error)
	}
	j, err := c.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("retry job: %w", err)
	}
	if res.RowsAffected == 0 {
		return j, fmt.Errorf("retry job %d (%s): %w", id, j.State, ErrWrongState)
	}
	if err := notify(c.db.WithContext(ctx), j.Kind); err != nil {
		return j, fmt.Errorf("retry job %d: %w", id, err)
	}
	return j, nil
}

// CancelJob cancels a job that has not finished. A running job's worker
// loses its lease: its result is not recorded (its context is cancelled at
// its next lease renewal).
func (c *Client) CancelJob(ctx context.Context, id int64) (*models.Job, error) {
	now := c.clock()
	res := c.db.WithContext(ctx).Model(&models.Job{}).
		Where("id = ? AND state IN ?", id, []models.JobState{models.JobAvailable, models.JobRunning}).
		Updates(map[string]any{
			"state": models.JobCancelled, "finalized_at": now, "updated_at": now,
			"locked_by": "", "lease_expires_at": nil, "last_error": "cancelled by operator",
		})
	if res.Error != nil {
		return nil, fmt.Errorf("cancel job %d: %w", id, res.Error)
	}
	j, err := c.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("cancel job: %w", err)
	}
	if res.RowsAffected == 0 {
		return j, fmt.Errorf("cancel job %d (%s): %w", id, j.State, ErrWrongState)
	}
	return j, nil
}
