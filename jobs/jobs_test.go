package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/jobs"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/store/storetest"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)} }
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type bundle struct {
	ctx    context.Context
	db     *store.DB
	clock  *clock
	client *jobs.Client
}

func setup(t *testing.T, db *store.DB) *bundle {
	t.Helper()
	c := newClock()
	return &bundle{
		ctx: context.Background(), db: db, clock: c,
		client: jobs.NewClient(db.Gorm, jobs.ClientConfig{
			Now:     c.Now,
			Backoff: jobs.ExponentialBackoff(10*time.Second, time.Hour, 0),
		}),
	}
}

func TestInsertIdempotentAndTransactional(t *testing.T) {
	t.Parallel()
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		b := setup(t, db)
		key := jobs.AnalyzeKey("1.2.3", "cspine", "1.0.0", "hierarchical")
		args := jobs.AnalyzeArgs{InstanceID: 7, SOPInstanceUID: "1.2.3", ModelName: "cspine", ModelVersion: "1.0.0", Mode: "hierarchical"}
		r1, err := b.client.Insert(b.ctx, jobs.InsertParams{Kind: jobs.KindAnalyze, Args: args, UniqueKey: key})
		require.NoError(t, err)
		require.True(t, r1.Inserted)
		require.Equal(t, models.JobAvailable, r1.Job.State)
		require.Equal(t, jobs.DefaultMaxAttempts, r1.Job.MaxAttempts)

		r2, err := b.client.Insert(b.ctx, jobs.InsertParams{Kind: jobs.KindAnalyze, Args: args, UniqueKey: key})
		require.NoError(t, err)
		require.False(t, r2.Inserted)
		require.Equal(t, r1.Job.ID, r2.Job.ID)

		got, err := jobs.DecodeArgs[jobs.AnalyzeArgs](r2.Job)
		require.NoError(t, err)
		require.Equal(t, args, got)

		// Even after completion the key stays taken: never analysed twice.
		claimed, err := b.client.Claim(b.ctx, "w1", []string{jobs.KindAnalyze}, 10, time.Minute)
		require.NoError(t, err)
		require.Len(t, claimed, 1)
		require.NoError(t, b.client.Complete(b.ctx, claimed[0]))
		r3, err := b.client.Insert(b.ctx, jobs.InsertParams{Kind: jobs.KindAnalyze, Args: args, UniqueKey: key})
		require.NoError(t, err)
		require.False(t, r3.Inserted)
		require.Equal(t, models.JobCompleted, r3.Job.State)

		// Enqueued in a rolled-back transaction: no job.
		s := models.NewStore(db.Gorm)
		boom := errors.New("boom")
		err = s.InTx(b.ctx, func(tx *models.Store) error {
			if _, err := jobs.Insert(b.ctx, tx.DB(), jobs.InsertParams{Kind: jobs.KindSend, Args: jobs.SendArgs{TransferID: 1}, UniqueKey: jobs.SendKey(1)}); err != nil {
				return err
			}
			return boom
		})
		require.ErrorIs(t, err, boom)
		list, err := b.client.List(b.ctx, jobs.ListParams{Kind: jobs.KindSend})
		require.NoError(t, err)
		require.Empty(t, list)
		// Committed: there.
		err = s.InTx(b.ctx, func(tx *models.Store) error {
			_, err := jobs.Insert(b.ctx, tx.DB(), jobs.InsertParams{Kind: jobs.KindSend, Args: jobs.SendArgs{TransferID: 1}, UniqueKey: jobs.SendKey(1)})
			return err
		})
		require.NoError(t, err)
		list, err = b.client.List(b.ctx, jobs.ListParams{Kind: jobs.KindSend})
		require.NoError(t, err)
		require.Len(t, list, 1)

		_, err = b.client.Insert(b.ctx, jobs.InsertParams{})
		require.ErrorContains(t, err, "kind is required")
		bad := &models.Job{ID: 9, Kind: "analyze", Args: "{"}
		_, err = jobs.DecodeArgs[jobs.AnalyzeArgs](bad)
		require.Error(t, err)
	})
}

func TestClaimOrderAndSchedule(t *testing.T) {
	t.Parallel()
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		b := setup(t, db)
		now := b.clock.Now()
		mk := func(prio int, runAt time.Time, kind string) int64 {
			r, err := b.client.Insert(b.ctx, jobs.InsertParams{Kind: kind, Priority: prio, RunAt: runAt})
			require.NoError(t, err)
			return r.Job.ID
		}
		late := mk(1, now.Add(time.Hour), jobs.KindAnalyze)
		low := mk(3, now, jobs.KindAnalyze)
		high := mk(1, now, jobs.KindAnalyze)
		other := mk(1, now, jobs.KindPull)

		got, err := b.client.Claim(b.ctx, "w", []string{jobs.KindAnalyze}, 10, time.Minute)
		require.NoError(t, err)
		require.Len(t, got, 2)
		require.Equal(t, []int64{high, low}, []int64{got[0].ID, got[1].ID})
		for _, j := range got {
			require.Equal(t, models.JobRunning, j.State)
			require.Equal(t, 1, j.Attempt)
			require.Equal(t, "w", j.LockedBy)
			require.Equal(t, now.Add(time.Minute), *j.LeaseExpiresAt)
		}
		none, err := b.client.Claim(b.ctx, "w", []string{jobs.KindAnalyze}, 10, time.Minute)
		require.NoError(t, err)
		require.Empty(t, none)

		b.clock.Add(time.Hour)
		got, err = b.client.Claim(b.ctx, "w", []string{jobs.KindAnalyze, jobs.KindPull}, 10, time.Minute)
		require.NoError(t, err)
		require.Len(t, got, 2)
		require.ElementsMatch(t, []int64{late, other}, []int64{got[0].ID, got[1].ID})

		counts, err := b.client.Counts(b.ctx)
		require.NoError(t, err)
		require.EqualValues(t, 3, counts[jobs.KindAnalyze][models.JobRunning])
	})
}

// TestLeaseExpiry: a worker claims a job and dies (never renews); after the
// lease expires the job is taken again, and the dead worker can no longer
// record a result.
func TestLeaseExpiry(t *testing.T) {
	t.Parallel()
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		b := setup(t, db)
		_, err := b.client.Insert(b.ctx, jobs.InsertParams{Kind: jobs.KindSend, MaxAttempts: 2})
		require.NoError(t, err)
		a, err := b.client.Claim(b.ctx, "crashed", []string{jobs.KindSend}, 1, 30*time.Second)
		require.NoError(t, err)
		require.Len(t, a, 1)

		b.clock.Add(29 * time.Second)
		n, err := b.client.RescueExpired(b.ctx)
		require.NoError(t, err)
		require.Zero(t, n, "lease not yet expired")
		none, err := b.client.Claim(b.ctx, "other", []string{jobs.KindSend}, 1, 30*time.Second)
		require.NoError(t, err)
		require.Empty(t, none)

		b.clock.Add(2 * time.Second)
		n, err = b.client.RescueExpired(b.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		again, err := b.client.Claim(b.ctx, "other", []string{jobs.KindSend}, 1, 30*time.Second)
		require.NoError(t, err)
		require.Len(t, again, 1)
		require.Equal(t, a[0].ID, again[0].ID)
		require.Equal(t, 2, again[0].Attempt)
		require.Contains(t, again[0].LastError, "lease expired")

		// The crashed worker comes back: fenced out.
		require.ErrorIs(t, b.client.Complete(b.ctx, a[0]), jobs.ErrLeaseLost)
		_, _, err = b.client.Fail(b.ctx, a[0], errors.New("late"))
		require.ErrorIs(t, err, jobs.ErrLeaseLost)
		require.ErrorIs(t, b.client.ExtendLease(b.ctx, a[0], time.Minute), jobs.ErrLeaseLost)

		// The new owner renews, then dies too: attempts are used up, dead.
		require.NoError(t, b.client.ExtendLease(b.ctx, again[0], 30*time.Second))
		b.clock.Add(31 * time.Second)
		n, err = b.client.RescueExpired(b.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		j, err := b.client.Get(b.ctx, a[0].ID)
		require.NoError(t, err)
		require.Equal(t, models.JobDead, j.State)
		require.NotNil(t, j.FinalizedAt)
	})
}

func TestBackoffDeadLetterAndManualRetry(t *testing.T) {
	t.Parallel()
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		b := setup(t, db)
		r, err := b.client.Insert(b.ctx, jobs.InsertParams{Kind: jobs.KindSend, MaxAttempts: 3})
		require.NoError(t, err)
		id := r.Job.ID
		claim := func() *models.Job {
			t.Helper()
			got, err := b.client.Claim(b.ctx, "w", []string{jobs.KindSend}, 1, time.Minute)
			require.NoError(t, err)
			require.Len(t, got, 1)
			return got[0]
		}
		// Attempt 1 fails: retry after 10s; attempt 2: after 20s.
		for i, wantDelay := range []time.Duration{10 * time.Second, 20 * time.Second} {
			j := claim()
			require.Equal(t, i+1, j.Attempt)
			out, runAt, err := b.client.Fail(b.ctx, j, fmt.Errorf("association rejected %d", i+1))
			require.NoError(t, err)
			require.Equal(t, jobs.OutcomeRetry, out)
			require.Equal(t, b.clock.Now().Add(wantDelay), runAt)
			b.clock.Add(wantDelay - time.Second)
			none, err := b.client.Claim(b.ctx, "w", []string{jobs.KindSend}, 1, time.Minute)
			require.NoError(t, err)
			require.Empty(t, none, "claimed before its backoff")
			b.clock.Add(time.Second)
		}
		// Attempt 3 fails: dead.
		j := claim()
		require.Equal(t, 3, j.Attempt)
		out, _, err := b.client.Fail(b.ctx, j, errors.New("connection refused"))
		require.NoError(t, err)
		require.Equal(t, jobs.OutcomeDead, out)
		j, err = b.client.Get(b.ctx, id)
		require.NoError(t, err)
		require.Equal(t, models.JobDead, j.State)
		require.Equal(t, "connection refused", j.LastError)
		var hist []struct {
			Attempt int    `json:"attempt"`
			Error   string `json:"error"`
		}
		require.NoError(t, json.Unmarshal([]byte(j.Errors), &hist))
		require.Len(t, hist, 3)
		require.Equal(t, "association rejected 1", hist[0].Error)
		b.clock.Add(24 * time.Hour)
		none, err := b.client.Claim(b.ctx, "w", []string{jobs.KindSend}, 1, time.Minute)
		require.NoError(t, err)
		require.Empty(t, none, "dead jobs are never claimed")

		// Manual retry: runs again with a fresh budget.
		j, err = b.client.Retry(b.ctx, id)
		require.NoError(t, err)
		require.Equal(t, models.JobAvailable, j.State)
		require.Zero(t, j.Attempt)
		j = claim()
		require.Equal(t, 1, j.Attempt)
		_, err = b.client.Retry(b.ctx, id)
		require.ErrorIs(t, err, jobs.ErrWrongState, "a running job cannot be retried")
		require.NoError(t, b.client.Complete(b.ctx, j))
		_, err = b.client.Retry(b.ctx, 999999)
		require.ErrorIs(t, err, jobs.ErrNotFound)
	})
}

func TestFlowErrors(t *testing.T) {
	t.Parallel()
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		b := setup(t, db)
		claimOne := func() *models.Job {
			t.Helper()
			got, err := b.client.Claim(b.ctx, "w", []string{jobs.KindPull}, 1, time.Minute)
			require.NoError(t, err)
			require.Len(t, got, 1)
			return got[0]
		}
		_, err := b.client.Insert(b.ctx, jobs.InsertParams{Kind: jobs.KindPull, MaxAttempts: 5})
		require.NoError(t, err)

		// Snooze: later, attempt not counted.
		j := claimOne()
		out, runAt, err := b.client.Fail(b.ctx, j, jobs.Snooze(5*time.Minute))
		require.NoError(t, err)
		require.Equal(t, jobs.OutcomeSnoozed, out)
		require.Equal(t, b.clock.Now().Add(5*time.Minute), runAt)
		b.clock.Add(5 * time.Minute)
		j = claimOne()
		require.Equal(t, 1, j.Attempt)

		// RetryAfter: the given delay, attempt counted.
		out, runAt, err = b.client.Fail(b.ctx, j, jobs.RetryAfter(errors.New("busy"), 3*time.Second))
		require.NoError(t, err)
		require.Equal(t, jobs.OutcomeRetry, out)
		require.Equal(t, b.clock.Now().Add(3*time.Second), runAt)
		b.clock.Add(3 * time.Second)
		j = claimOne()
		require.Equal(t, 2, j.Attempt)

		// Retry(err): normal backoff (attempt 2: 20s).
		_, runAt, err = b.client.Fail(b.ctx, j, jobs.Retry(errors.New("timeout")))
		require.NoError(t, err)
		require.Equal(t, b.clock.Now().Add(20*time.Second), runAt)
		b.clock.Add(20 * time.Second)
		j = claimOne()

		// Cancel: final, whatever the attempts left.
		out, _, err = b.client.Fail(b.ctx, j, jobs.Cancel(errors.New("not a DICOM file")))
		require.NoError(t, err)
		require.Equal(t, jobs.OutcomeCancelled, out)
		j, err = b.client.Get(b.ctx, j.ID)
		require.NoError(t, err)
		require.Equal(t, models.JobCancelled, j.State)
		require.Contains(t, j.LastError, "not a DICOM file")

		// Operator cancel of a waiting job.
		r, err := b.client.Insert(b.ctx, jobs.InsertParams{Kind: jobs.KindPull})
		require.NoError(t, err)
		c, err := b.client.CancelJob(b.ctx, r.Job.ID)
		require.NoError(t, err)
		require.Equal(t, models.JobCancelled, c.State)
		_, err = b.client.CancelJob(b.ctx, r.Job.ID)
		require.ErrorIs(t, err, jobs.ErrWrongState)
	})
}

func TestBackoffFunction(t *testing.T) {
	t.Parallel()
	bo := jobs.ExponentialBackoff(time.Second, time.Minute, 0)
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{{0, time.Second}, {1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {7, time.Minute}, {10000, time.Minute}} {
		require.Equal(t, tc.want, bo(tc.attempt), "attempt %d", tc.attempt)
	}
	jit := jobs.ExponentialBackoff(time.Second, time.Minute, 0.1)
	for range 100 {
		d := jit(1)
		require.GreaterOrEqual(t, d, 900*time.Millisecond)
		require.LessOrEqual(t, d, 1100*time.Millisecond)
	}
}

// quietLogger keeps expected warnings out of the test output.
var quietLogger = slog.New(slog.DiscardHandler)

// TestPoolsProcessEachJobOnce runs several pools, each on its own
// connection pool as separate nodes would, over 200 jobs: every job is
// processed exactly once.
func TestPoolsProcessEachJobOnce(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			const nNodes, nJobs = 3, 200
			var dsn string
			if dialect == store.Postgres {
				dsn, _ = storetest.CreatePostgresDB(t)
			} else {
				dsn = storetest.SQLiteDSN(t)
			}
			var nodes []*store.DB
			for range nNodes {
				nodes = append(nodes, storetest.Open(t, dsn, nil))
			}
			ctx := context.Background()
			client := jobs.NewClient(nodes[0].Gorm, jobs.ClientConfig{})
			for i := range nJobs {
				_, err := client.Insert(ctx, jobs.InsertParams{Kind: jobs.KindAnalyze, Args: map[string]int{"n": i}, UniqueKey: fmt.Sprintf("k%d", i)})
				require.NoError(t, err)
			}
			var mu sync.Mutex
			seen := map[int64]int{}
			byNode := make([]atomic.Int64, nNodes)
			var done atomic.Int64
			allDone := make(chan struct{})
			var pools []*jobs.Pool
			for n, node := range nodes {
				p, err := jobs.NewPool(node.Gorm, jobs.PoolConfig{
					Workers: map[string]jobs.Worker{jobs.KindAnalyze: jobs.WorkFunc(func(ctx context.Context, j *models.Job) error {
						mu.Lock()
						seen[j.ID]++
						mu.Unlock()
						byNode[n].Add(1)
						time.Sleep(time.Millisecond) // some work, so that claims overlap
						return nil
					})},
					Concurrency:  4,
					PollInterval: 20 * time.Millisecond,
					Logger:       quietLogger,
					OnFinish: func(j *models.Job, o jobs.Outcome, err error, _ time.Duration) {
						if o == jobs.OutcomeCompleted && done.Add(1) == nJobs {
							close(allDone)
						}
					},
				})
				require.NoError(t, err)
				require.NoError(t, p.Start(ctx))
				pools = append(pools, p)
			}
			select {
			case <-allDone:
			case <-time.After(60 * time.Second):
				t.Fatalf("only %d of %d jobs completed", done.Load(), nJobs)
			}
			for _, p := range pools {
				p.Stop(ctx)
			}
			require.Len(t, seen, nJobs)
			for id, n := range seen {
				require.Equal(t, 1, n, "job %d processed %d times", id, n)
			}
			counts, err := client.Counts(ctx)
			require.NoError(t, err)
			require.Equal(t, map[models.JobState]int64{models.JobCompleted: nJobs}, counts[jobs.KindAnalyze])
			if dialect == store.Postgres {
				for n := range byNode {
					require.Positive(t, byNode[n].Load(), "node %d got no work", n)
				}
			}
			t.Logf("jobs per node: %d %d %d", byNode[0].Load(), byNode[1].Load(), byNode[2].Load())
		})
	}
}

// TestPoolCrashRecovery: a job held by a worker that stopped renewing (as
// after SIGKILL) is re-run by a live pool once the lease expires; a panic
// is retried; shutdown releases a running job without counting it.
func TestPoolCrashRecovery(t *testing.T) {
	t.Parallel()
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		client := jobs.NewClient(db.Gorm, jobs.ClientConfig{Backoff: jobs.ExponentialBackoff(10*time.Millisecond, time.Second, 0)})
		r, err := client.Insert(ctx, jobs.InsertParams{Kind: jobs.KindSend})
		require.NoError(t, err)
		// The "crashed" node: claims with a short lease and vanishes.
		held, err := client.Claim(ctx, "dead-node", []string{jobs.KindSend}, 1, 300*time.Millisecond)
		require.NoError(t, err)
		require.Len(t, held, 1)
		_, err = client.Insert(ctx, jobs.InsertParams{Kind: jobs.KindAnalyze})
		require.NoError(t, err)

		var panicked atomic.Bool
		results := make(chan string, 10)
		p, err := jobs.NewPool(db.Gorm, jobs.PoolConfig{
			Workers: map[string]jobs.Worker{
				jobs.KindSend: jobs.WorkFunc(func(ctx context.Context, j *models.Job) error {
					results <- fmt.Sprintf("send %d attempt %d", j.ID, j.Attempt)
					return nil
				}),
				jobs.KindAnalyze: jobs.WorkFunc(func(ctx context.Context, j *models.Job) error {
					if panicked.CompareAndSwap(false, true) {
						panic("model exploded")
					}
					results <- fmt.Sprintf("analyze attempt %d", j.Attempt)
					return nil
				}),
			},
			PollInterval: 20 * time.Millisecond, Lease: 5 * time.Second, RescueInterval: 50 * time.Millisecond,
			Logger: quietLogger, Client: jobs.ClientConfig{Backoff: jobs.ExponentialBackoff(10*time.Millisecond, time.Second, 0)},
		})
		require.NoError(t, err)
		require.NoError(t, p.Start(ctx))
		got := map[string]bool{}
		timeout := time.After(20 * time.Second)
		for len(got) < 2 {
			select {
			case s := <-results:
				got[s] = true
			case <-timeout:
				t.Fatalf("jobs not recovered; got %v", got)
			}
		}
		require.True(t, got[fmt.Sprintf("send %d attempt 2", r.Job.ID)], "%v", got)
		require.True(t, got["analyze attempt 2"], "%v", got)
		j, err := client.Get(ctx, r.Job.ID)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			j, err = client.Get(ctx, r.Job.ID)
			return err == nil && j.State == models.JobCompleted
		}, 5*time.Second, 10*time.Millisecond)
		p.Stop(ctx)

		// Shutdown with a job in progress: released, attempt not counted.
		started := make(chan struct{})
		p2, err := jobs.NewPool(db.Gorm, jobs.PoolConfig{
			Workers: map[string]jobs.Worker{jobs.KindPull: jobs.WorkFunc(func(ctx context.Context, j *models.Job) error {
				close(started)
				<-ctx.Done()
				return ctx.Err()
			})},
			PollInterval: 20 * time.Millisecond, ShutdownGrace: 50 * time.Millisecond, Logger: quietLogger,
		})
		require.NoError(t, err)
		rp, err := client.Insert(ctx, jobs.InsertParams{Kind: jobs.KindPull})
		require.NoError(t, err)
		require.NoError(t, p2.Start(ctx))
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("pull job not started")
		}
		p2.Stop(ctx)
		j, err = client.Get(ctx, rp.Job.ID)
		require.NoError(t, err)
		require.Equal(t, models.JobAvailable, j.State)
		require.Zero(t, j.Attempt)
		require.Empty(t, j.LockedBy)
	})
}

func TestPoolConfigValidation(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t, nil)
	for name, cfg := range map[string]jobs.PoolConfig{
		"no workers":  {},
		"nil worker":  {Workers: map[string]jobs.Worker{"x": nil}},
		"short lease": {Workers: map[string]jobs.Worker{"x": jobs.WorkFunc(nil)}, Lease: time.Millisecond},
		"negative":    {Workers: map[string]jobs.Worker{"x": jobs.WorkFunc(nil)}, Concurrency: -1},
	} {
		_, err := jobs.NewPool(db.Gorm, cfg)
		require.Error(t, err, name)
	}
}

// TestConcurrentClaimersPostgres hammers Claim from 8 goroutines, each on
// its own connection pool, over 200 jobs: no job is handed out twice and
// none is left behind.
func TestConcurrentClaimersPostgres(t *testing.T) {
	t.Parallel()
	dsn, _ := storetest.CreatePostgresDB(t)
	ctx := context.Background()
	first := storetest.Open(t, dsn, nil)
	client := jobs.NewClient(first.Gorm, jobs.ClientConfig{})
	const nJobs, nClaimers = 200, 8
	for range nJobs {
		_, err := client.Insert(ctx, jobs.InsertParams{Kind: jobs.KindAnalyze})
		require.NoError(t, err)
	}
	var (
		mu     sync.Mutex
		counts = map[int64]int{}
		wg     sync.WaitGroup
	)
	start := make(chan struct{})
	for i := range nClaimers {
		c := jobs.NewClient(storetest.Open(t, dsn, nil).Gorm, jobs.ClientConfig{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for {
				got, err := c.Claim(ctx, fmt.Sprintf("claimer-%d", i), []string{jobs.KindAnalyze}, 5, time.Minute)
				if err != nil {
					t.Errorf("claim: %v", err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, j := range got {
					counts[j.ID]++
				}
				mu.Unlock()
				for _, j := range got {
					if err := c.Complete(ctx, j); err != nil {
						t.Errorf("complete: %v", err)
					}
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	require.Len(t, counts, nJobs)
	for id, n := range counts {
		require.Equal(t, 1, n, "job %d claimed %d times", id, n)
	}
}

// TestPoolSurvivesDroppedConnections: while a pool works through 100 jobs,
// every server connection of its database is terminated several times (as
// in a PostgreSQL restart); the pool recovers by itself and every job
// completes.
func TestPoolSurvivesDroppedConnections(t *testing.T) {
	t.Parallel()
	dsn, name := storetest.CreatePostgresDB(t)
	db := storetest.Open(t, dsn, nil)
	admin := storetest.Open(t, storetest.AdminDSN(), &storetest.Opts{NoMigrate: true})
	ctx := context.Background()
	client := jobs.NewClient(db.Gorm, jobs.ClientConfig{})
	const nJobs = 100
	for i := range nJobs {
		_, err := client.Insert(ctx, jobs.InsertParams{Kind: jobs.KindSend, UniqueKey: fmt.Sprint(i)})
		require.NoError(t, err)
	}
	var mu sync.Mutex
	runs := map[int64]int{}
	var completed atomic.Int64
	p, err := jobs.NewPool(db.Gorm, jobs.PoolConfig{
		Workers: map[string]jobs.Worker{jobs.KindSend: jobs.WorkFunc(func(ctx context.Context, j *models.Job) error {
			mu.Lock()
			runs[j.ID]++
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
			return nil
		})},
		Concurrency: 4, PollInterval: 20 * time.Millisecond, Lease: 500 * time.Millisecond,
		RescueInterval: 100 * time.Millisecond, Logger: quietLogger,
		Client: jobs.ClientConfig{Backoff: jobs.ExponentialBackoff(20*time.Millisecond, 200*time.Millisecond, 0)},
		OnFinish: func(_ *models.Job, o jobs.Outcome, _ error, _ time.Duration) {
			if o == jobs.OutcomeCompleted {
				completed.Add(1)
			}
		},
	})
	require.NoError(t, err)
	require.NoError(t, p.Start(ctx))
	defer p.Stop(ctx)
	kills := 0
	for completed.Load() < nJobs/2 && kills < 5 {
		time.Sleep(40 * time.Millisecond)
		var n int
		require.NoError(t, admin.Gorm.Raw(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = ? AND pid <> pg_backend_pid()`, name).Scan(&n).Error)
		if n > 0 {
			kills++
		}
	}
	require.Positive(t, kills, "no connection was terminated")
	require.Eventually(t, func() bool {
		c, err := client.Counts(ctx)
		return err == nil && c[jobs.KindSend][models.JobCompleted] == nJobs
	}, 30*time.Second, 50*time.Millisecond, "not every job completed after the connections were dropped")
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, runs, nJobs)
	again := 0
	for _, n := range runs {
		if n > 1 {
			again++
		}
	}
	t.Logf("%d connection kills; %d of %d jobs ran more than once (at-least-once delivery)", kills, again, nJobs)
}

// TestListenWakesPools: on PostgreSQL a job inserted by another node is
// picked up at once, not at the next poll (an hour here), also after the
// listening connection was killed.
func TestListenWakesPools(t *testing.T) {
	t.Parallel()
	dsn, name := storetest.CreatePostgresDB(t)
	worker := storetest.Open(t, dsn, nil)
	other := storetest.Open(t, dsn, nil) // the inserting node
	admin := storetest.Open(t, storetest.AdminDSN(), &storetest.Opts{NoMigrate: true})
	ctx := context.Background()
	ran := make(chan int64, 4)
	p, err := jobs.NewPool(worker.Gorm, jobs.PoolConfig{
		Workers: map[string]jobs.Worker{jobs.KindAnalyze: jobs.WorkFunc(func(ctx context.Context, j *models.Job) error {
			ran <- j.ID
			return nil
		})},
		PollInterval: time.Hour, RescueInterval: time.Hour, Logger: quietLogger,
	})
	require.NoError(t, err)
	require.NoError(t, p.Start(ctx))
	defer p.Stop(ctx)
	waitListening := func() {
		t.Helper()
		require.Eventually(t, func() bool {
			var n int
			err := admin.Gorm.Raw(`SELECT count(*) FROM pg_stat_activity WHERE datname = ? AND query LIKE 'LISTEN %'`, name).Scan(&n).Error
			return err == nil && n == 1
		}, 10*time.Second, 10*time.Millisecond, "pool never listened")
	}
	insertAndWait := func() time.Duration {
		t.Helper()
		start := time.Now()
		s := models.NewStore(other.Gorm)
		var id int64
		require.NoError(t, s.InTx(ctx, func(tx *models.Store) error {
			r, err := jobs.Insert(ctx, tx.DB(), jobs.InsertParams{Kind: jobs.KindAnalyze})
			if err == nil {
				id = r.Job.ID
			}
			return err
		}))
		select {
		case got := <-ran:
			require.Equal(t, id, got)
		case <-time.After(10 * time.Second):
			t.Fatal("inserted job not picked up without polling")
		}
		return time.Since(start)
	}
	waitListening()
	d1 := insertAndWait()

	// Kill the listening connection: the pool listens again by itself.
	require.NoError(t, admin.Gorm.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ? AND query LIKE 'LISTEN %'`, name).Error)
	time.Sleep(50 * time.Millisecond)
	waitListening()
	d2 := insertAndWait()
	t.Logf("insert-to-start latency through LISTEN/NOTIFY: %s, after reconnect %s", d1, d2)
}
