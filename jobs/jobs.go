// Package jobs is cspine's durable job queue, kept in the database so that
// work survives crashes and restarts and is shared by every node on one
// PostgreSQL.
//
// Life of a job (models.Job):
//
//	Insert ──► available ──claim──► running ──► completed
//	              ▲  ▲                 │ │ └──► cancelled   (worker returned Cancel(err))
//	   Retry(id)  │  └── error, backoff┘ │
//	  (manual) ───┤      lease expired ──┘ (worker crashed or hung)
//	              └────────────── dead ◄── MaxAttempts failures
//
// The rules:
//
//   - Enqueue in the same transaction as the rows that cause the work: pass
//     the transaction's *gorm.DB to Insert.
//   - A unique key makes a job idempotent for ever: inserting the same key
//     again returns the existing job (AnalyzeKey: one analysis per source
//     instance and model version).
//   - On PostgreSQL an insert also NOTIFYs (inside its transaction, so on
//     commit) and every pool LISTENs: any node starts new work at once. On
//     SQLite pools poll; code that enqueues in the same process may call
//     Pool.Notify after its commit.
//   - Claiming takes the oldest, highest-priority available jobs with
//     FOR UPDATE SKIP LOCKED on PostgreSQL, so concurrent nodes never take
//     the same job; on SQLite (one writer, one connection) the claim is a
//     single atomic UPDATE.
//   - A claim holds a lease; the pool extends it while the job runs. When a
//     worker dies, its lease expires and the job is taken again (counting an
//     attempt). Finishing is fenced by worker id and attempt, so a worker
//     that lost its lease cannot overwrite the new owner's result.
//   - Workers steer retries with errors: Cancel(err) gives up for good,
//     Snooze(d) runs again later without counting an attempt, RetryAfter(err,
//     d) picks the delay; any other error (or a panic) retries with
//     exponential backoff until MaxAttempts, then the job is dead until an
//     operator calls Client.Retry.
package jobs

import (
	"errors"
	"fmt"
	"time"
)

// Kinds of cspine jobs.
const (
	KindAnalyze = "analyze" // measure one selected instance (AnalyzeArgs)
	KindSend    = "send"    // deliver one report to one destination (SendArgs)
	KindPull    = "pull"    // query and retrieve recent studies from a PACS (PullArgs)
)

// AnalyzeArgs are the arguments of an analyze job.
type AnalyzeArgs struct {
	InstanceID     int64  `json:"instance_id"`
	SOPInstanceUID string `json:"sop_instance_uid"`
	ModelName      string `json:"model_name"`
	ModelVersion   string `json:"model_version"`
	Mode           string `json:"mode"`
}

// SendArgs are the arguments of a send job.
type SendArgs struct {
	TransferID int64 `json:"transfer_id"`
}

// PullArgs are the arguments of a pull job.
type PullArgs struct {
	// Since is the start of the StudyDate/Time window to query.
	Since time.Time `json:"since"`
	// Peer names the configured PACS to query.
	Peer string `json:"peer"`
}

// AnalyzeKey is the idempotency key of an analyze job: the same source
// instance and model version (and mode) are analysed at most once.
func AnalyzeKey(sopInstanceUID, modelName, modelVersion, mode string) string {
	return fmt.Sprintf("analyze:%s:%s:%s:%s", sopInstanceUID, modelName, modelVersion, mode)
}

// SendKey is the idempotency key of a send job: one per transfer (report
// and destination). A failed delivery is retried by the same job.
func SendKey(transferID int64) string { return fmt.Sprintf("send:%d", transferID) }

// PullKey is the idempotency key of one scheduled pull: several nodes firing
// the same schedule tick enqueue it once.
func PullKey(peer string, tick time.Time) string {
	return fmt.Sprintf("pull:%s:%s", peer, tick.UTC().Format(time.RFC3339))
}

// Sentinel errors.
var (
	// ErrLeaseLost: the job is no longer held by this worker (its lease
	// expired and another worker took it, or an operator cancelled it).
	ErrLeaseLost = errors.New("job lease lost")
	// ErrNotFound: no such job.
	ErrNotFound = errors.New("job not found")
	// ErrWrongState: the operation does not apply to the job's state.
	ErrWrongState = errors.New("job is in the wrong state")
)

// cancelError asks for the job to be cancelled for good.
type cancelError struct{ err error }

func (e *cancelError) Error() string { return "cancel job: " + e.err.Error() }
func (e *cancelError) Unwrap() error { return e.err }

// Cancel wraps err so that the job is cancelled without further attempts
// (bad input that no retry can fix).
func Cancel(err error) error {
	if err == nil {
		err = errors.New("cancelled by worker")
	}
	return &cancelError{err}
}

// snoozeError asks for the job to run again later.
type snoozeError struct{ d time.Duration }

func (e *snoozeError) Error() string { return fmt.Sprintf("snooze job for %s", e.d) }

// Snooze makes the job run again after d without counting the attempt
// (waiting for something, not failing).
func Snooze(d time.Duration) error {
	if d < 0 {
		d = 0
	}
	return &snoozeError{d}
}

// retryError is a failure with an explicit retry delay.
type retryError struct {
	err   error
	after time.Duration
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// Retry marks err as transient: the job is retried with the normal
// backoff (as for any error; this documents intent).
func Retry(err error) error { return &retryError{err: err, after: -1} }

// RetryAfter is a transient failure retried after d (a peer said when),
// still counting the attempt.
func RetryAfter(err error, d time.Duration) error {
	if d < 0 {
		d = 0
	}
	return &retryError{err: err, after: d}
}
