package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
)

// Worker does the work of one kind of job. Work must honour ctx: it is
// cancelled when the job's timeout passes, when its lease is lost, and when
// the pool stops. Work must be idempotent: after a crash a job runs again.
type Worker interface {
	Work(ctx context.Context, job *models.Job) error
}

// WorkFunc adapts a function to Worker.
type WorkFunc func(ctx context.Context, job *models.Job) error

// Work implements Worker.
func (f WorkFunc) Work(ctx context.Context, job *models.Job) error { return f(ctx, job) }

// PoolConfig configures a Pool.
type PoolConfig struct {
	// Workers maps job kinds to their workers; only these kinds are claimed.
	Workers map[string]Worker
	// Concurrency is the number of jobs run at once (default 4).
	Concurrency int
	// ID names this pool in job rows (default host:pid:random).
	ID string
	// PollInterval between claims when idle (default 1s on PostgreSQL,
	// 250ms on SQLite). On PostgreSQL a pool also LISTENs for jobs inserted
	// by any node and claims at once; Notify wakes it too.
	PollInterval time.Duration
	// NoListen turns PostgreSQL LISTEN off (polling only).
	NoListen bool
	// Lease is how long a claim holds a job without renewal (default 1m);
	// the pool renews it every Lease/3 while the job runs.
	Lease time.Duration
	// Timeout caps one attempt (default 30m).
	Timeout time.Duration
	// RescueInterval between sweeps for expired leases (default Lease/2).
	RescueInterval time.Duration
	// ShutdownGrace is how long Stop lets running jobs finish before
	// cancelling them (default 10s); cancelled jobs are released, not
	// counted as failed.
	ShutdownGrace time.Duration
	// Logger (default slog.Default()). Only ids, kinds and errors are logged.
	Logger *slog.Logger
	// Client settings (backoff, clock).
	Client ClientConfig
	// OnFinish, when set, is called after each attempt (metrics, tests).
	OnFinish func(job *models.Job, outcome Outcome, err error, took time.Duration)
}

// OutcomeCompleted is reported to OnFinish for a completed job.
const OutcomeCompleted Outcome = "completed"

// OutcomeReleased is reported to OnFinish for a job given back at shutdown.
const OutcomeReleased Outcome = "released"

func (c *PoolConfig) validate() error {
	var errs []error
	if len(c.Workers) == 0 {
		errs = append(errs, errors.New("no workers registered"))
	}
	for k, w := range c.Workers {
		if k == "" || w == nil {
			errs = append(errs, fmt.Errorf("worker for kind %q is empty", k))
		}
	}
	if c.Concurrency < 0 || c.PollInterval < 0 || c.Lease < 0 || c.Timeout < 0 {
		errs = append(errs, errors.New("negative concurrency, poll interval, lease or timeout"))
	}
	if c.Lease > 0 && c.Lease < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("lease %s is too short (min 100ms)", c.Lease))
	}
	return errors.Join(errs...)
}

func (c PoolConfig) withDefaults(dialect string) PoolConfig {
	if c.Concurrency == 0 {
		c.Concurrency = 4
	}
	if c.ID == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.ID = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second // PostgreSQL: LISTEN brings new jobs at once
		if dialect != store.Postgres {
			c.PollInterval = 250 * time.Millisecond // SQLite: polling is the only signal
		}
	}
	if c.Lease == 0 {
		c.Lease = time.Minute
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Minute
	}
	if c.RescueInterval == 0 {
		c.RescueInterval = c.Lease / 2
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Pool runs jobs from the database with a fixed number of goroutines.
type Pool struct {
	cfg       PoolConfig
	client    *Client
	db        *gorm.DB
	listening sync.WaitGroup
	kinds     []string
	log       *slog.Logger

	notify chan struct{}
	mu     sync.Mutex
	cancel context.CancelFunc // stops claiming
	hard   context.CancelFunc // cancels running jobs
	done   chan struct{}
}

// NewPool checks cfg and returns a stopped pool.
func NewPool(db *gorm.DB, cfg PoolConfig) (*Pool, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("job pool config: %w", err)
	}
	cfg = cfg.withDefaults(db.Dialector.Name())
	p := &Pool{
		cfg:    cfg,
		client: NewClient(db, cfg.Client),
		db:     db,
		log:    cfg.Logger.With("pool", cfg.ID),
		notify: make(chan struct{}, 1),
	}
	for k := range cfg.Workers {
		p.kinds = append(p.kinds, k)
	}
	sort.Strings(p.kinds)
	return p, nil
}

// Client returns the pool's client (for inserts, retries, counts).
func (p *Pool) Client() *Client { return p.client }

// ID returns the worker id written into claimed jobs.
func (p *Pool) ID() string { return p.cfg.ID }

// Notify wakes the pool to claim now (after an insert on this node).
func (p *Pool) Notify() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// Start begins claiming and running jobs until ctx is done or Stop is
// called.
func (p *Pool) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		return errors.New("job pool already started")
	}
	claimCtx, cancel := context.WithCancel(ctx)
	// Running jobs are not cancelled by ctx directly: Stop gives them a grace.
	hardCtx, hard := context.WithCancel(context.WithoutCancel(ctx))
	p.cancel, p.hard = cancel, hard
	p.done = make(chan struct{})
	if !p.cfg.NoListen && p.db.Dialector.Name() == store.Postgres {
		p.listening.Add(1)
		go func() {
			defer p.listening.Done()
			p.listen(claimCtx, p.db)
		}()
	}
	go p.run(claimCtx, hardCtx)
	return nil
}

// Stop stops claiming, waits up to ShutdownGrace (or ctx) for running jobs,
// then cancels them and releases them back to the queue. It returns when
// every goroutine has ended.
func (p *Pool) Stop(ctx context.Context) {
	p.mu.Lock()
	cancel, hard, done := p.cancel, p.hard, p.done
	p.mu.Unlock()
	if done == nil {
		return
	}
	cancel()
	t := time.NewTimer(p.cfg.ShutdownGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		hard()
		<-done
	case <-ctx.Done():
		hard()
		<-done
	}
	hard()
	p.listening.Wait()
}

// Done is closed when the pool has stopped.
func (p *Pool) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

func (p *Pool) run(ctx, hardCtx context.Context) {
	defer close(p.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, p.cfg.Concurrency)
	for range p.cfg.Concurrency {
		slots <- struct{}{}
	}
	ticker := time.NewTicker(p.cfg.PollInterval)
	defer ticker.Stop()
	var lastRescue time.Time
	dbErr := &errorThrottle{log: p.log}
	for {
		if time.Since(lastRescue) >= p.cfg.RescueInterval {
			lastRescue = time.Now()
			if n, err := p.client.RescueExpired(ctx); err != nil && ctx.Err() == nil {
				dbErr.fail("rescue expired jobs", err)
			} else if n > 0 {
				p.log.Info("rescued jobs with expired leases", "count", n)
			}
		}
		free := len(slots)
		if free > 0 && ctx.Err() == nil {
			// A claim is not cancelled half way: a claim committed whose rows
			// never arrived would strand its jobs until their leases expire.
			cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			jobs, err := p.client.Claim(cctx, p.cfg.ID, p.kinds, free, p.cfg.Lease)
			ccancel()
			switch {
			case err != nil && ctx.Err() == nil:
				dbErr.fail("claim jobs", err)
			case err == nil:
				dbErr.ok()
			}
			for _, j := range jobs {
				<-slots
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { slots <- struct{}{} }()
					p.execute(hardCtx, j)
					p.Notify() // a slot is free: look again at once
				}()
			}
			if len(jobs) == free {
				// Maybe more waiting; claim again when a slot frees.
				select {
				case <-ctx.Done():
					return
				case <-p.notify:
				case <-ticker.C:
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-p.notify:
		case <-ticker.C:
		}
	}
}

// execute runs one claimed job with its timeout, lease renewal and panic
// recovery, and records the outcome.
func (p *Pool) execute(hardCtx context.Context, j *models.Job) {
	start := time.Now()
	jobCtx, cancel := context.WithTimeoutCause(hardCtx, p.cfg.Timeout, fmt.Errorf("job timed out after %s", p.cfg.Timeout))
	defer cancel()

	// Renew the lease while the job runs; losing it cancels the job.
	leaseLost := make(chan struct{})
	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		t := time.NewTicker(p.cfg.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-jobCtx.Done():
				return
			case <-t.C:
				err := p.client.ExtendLease(context.WithoutCancel(jobCtx), j, p.cfg.Lease)
				if errors.Is(err, ErrLeaseLost) {
					close(leaseLost)
					cancel()
					return
				}
				if err != nil {
					p.log.Warn("renew job lease", "job_id", j.ID, "kind", j.Kind, "error", err)
				}
			}
		}
	}()

	err := p.call(jobCtx, j)
	cancel()
	<-renewDone
	took := time.Since(start)

	// Record the outcome even while shutting down.
	recCtx, recCancel := context.WithTimeout(context.WithoutCancel(hardCtx), 30*time.Second)
	defer recCancel()
	var outcome Outcome
	select {
	case <-leaseLost:
		p.log.Warn("job lease lost; result discarded", "job_id", j.ID, "kind", j.Kind, "attempt", j.Attempt)
		p.finished(j, "", ErrLeaseLost, took)
		return
	default:
	}
	switch {
	case err == nil:
		if cerr := persist(recCtx, func(ctx context.Context) error { return p.client.Complete(ctx, j) }); cerr != nil {
			if errors.Is(cerr, ErrLeaseLost) && p.completedMeanwhile(recCtx, j) {
				outcome = OutcomeCompleted // the worker completed it in its own transaction
				break
			}
			p.log.Warn("complete job", "job_id", j.ID, "kind", j.Kind, "error", cerr)
			p.finished(j, "", cerr, took)
			return
		}
		outcome = OutcomeCompleted
	case hardCtx.Err() != nil && !isJobFlowError(err):
		// Stopped by shutdown, not failed: give it back untouched.
		if rerr := persist(recCtx, func(ctx context.Context) error { return p.client.release(ctx, j) }); rerr != nil {
			p.log.Warn("release job at shutdown", "job_id", j.ID, "kind", j.Kind, "error", rerr)
		}
		outcome = OutcomeReleased
	default:
		var ferr error
		var runAt time.Time
		ferr = persist(recCtx, func(ctx context.Context) error {
			var e error
			outcome, runAt, e = p.client.Fail(ctx, j, err)
			return e
		})
		if ferr != nil {
			p.log.Warn("record job failure", "job_id", j.ID, "kind", j.Kind, "error", ferr)
			p.finished(j, "", ferr, took)
			return
		}
		lvl := slog.LevelWarn
		if outcome == OutcomeSnoozed {
			lvl = slog.LevelInfo
		}
		p.log.Log(recCtx, lvl, "job attempt did not complete", "job_id", j.ID, "kind", j.Kind,
			"attempt", j.Attempt, "max_attempts", j.MaxAttempts, "outcome", outcome, "next_run_at", runAt, "error", err)
	}
	p.finished(j, outcome, err, took)
}

// persist retries op while the database is unreachable (a restart, a
// dropped connection), so that a finished job's outcome is recorded rather
// than left to lease expiry and a second run. ErrLeaseLost is final.
func persist(ctx context.Context, op func(context.Context) error) error {
	delay := 100 * time.Millisecond
	for {
		err := op(ctx)
		if err == nil || errors.Is(err, ErrLeaseLost) {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func (p *Pool) finished(j *models.Job, o Outcome, err error, took time.Duration) {
	if p.cfg.OnFinish != nil {
		p.cfg.OnFinish(j, o, err, took)
	}
}

func (p *Pool) completedMeanwhile(ctx context.Context, j *models.Job) bool {
	cur, err := p.client.Get(ctx, j.ID)
	return err == nil && cur.State == models.JobCompleted && cur.Attempt == j.Attempt
}

func isJobFlowError(err error) bool {
	var (
		c *cancelError
		s *snoozeError
		r *retryError
	)
	return errors.As(err, &c) || errors.As(err, &s) || errors.As(err, &r)
}

// call runs the worker, turning a panic into an error with its stack.
func (p *Pool) call(ctx context.Context, j *models.Job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("job panicked", "job_id", j.ID, "kind", j.Kind, "panic", fmt.Sprint(r))
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	w := p.cfg.Workers[j.Kind]
	if w == nil {
		return Cancel(fmt.Errorf("no worker for job kind %q", j.Kind))
	}
	return w.Work(ctx, j)
}

// errorThrottle logs a failing database once, then at most every 30s, and
// logs its recovery: a database restart must not flood the log.
type errorThrottle struct {
	log     *slog.Logger
	failing bool
	since   time.Time
	last    time.Time
	count   int
}

func (e *errorThrottle) fail(op string, err error) {
	now := time.Now()
	e.count++
	if !e.failing {
		e.failing, e.since, e.last = true, now, now
		e.log.Warn(op+" failed; retrying", "error", err)
		return
	}
	if now.Sub(e.last) >= 30*time.Second {
		e.last = now
		e.log.Warn(op+" still failing", "error", err, "since", e.since, "failures", e.count)
	}
}

func (e *errorThrottle) ok() {
	if e.failing {
		e.log.Info("job queue database reachable again", "down_for", time.Since(e.since).Round(time.Millisecond), "failures", e.count)
		e.failing, e.count = false, 0
	}
}
