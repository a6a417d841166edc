package jobs_test

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/jobs"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/store/storetest"
)

// TestHelperCrashingWorker is not a test: TestSIGKILLedWorker runs the test
// binary again with it, as a node whose worker claims a job and hangs.
func TestHelperCrashingWorker(t *testing.T) {
	dsn := os.Getenv("CSPINE_CRASH_HELPER_DSN")
	if dsn == "" {
		t.Skip("helper process only")
	}
	ctx := context.Background()
	db, err := store.Open(ctx, dsn, nil)
	require.NoError(t, err)
	p, err := jobs.NewPool(db.Gorm, jobs.PoolConfig{
		Workers: map[string]jobs.Worker{jobs.KindAnalyze: jobs.WorkFunc(func(ctx context.Context, j *models.Job) error {
			select {} // hang until killed
		})},
		PollInterval: 10 * time.Millisecond, Lease: 500 * time.Millisecond, Logger: quietLogger,
	})
	require.NoError(t, err)
	require.NoError(t, p.Start(ctx))
	select {}
}

// TestSIGKILLedWorker: a node process is killed with SIGKILL while it holds
// a job (renewing its lease); another node takes the job once the lease has
// expired and completes it, exactly once.
func TestSIGKILLedWorker(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			var dsn string
			if dialect == store.Postgres {
				dsn, _ = storetest.CreatePostgresDB(t)
			} else {
				dsn = storetest.SQLiteDSN(t)
			}
			db := storetest.Open(t, dsn, nil)
			ctx := context.Background()
			client := jobs.NewClient(db.Gorm, jobs.ClientConfig{})
			r, err := client.Insert(ctx, jobs.InsertParams{Kind: jobs.KindAnalyze, UniqueKey: "crash-me"})
			require.NoError(t, err)

			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCrashingWorker$", "-test.count=1")
			cmd.Env = append(os.Environ(), "CSPINE_CRASH_HELPER_DSN="+dsn)
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

			// Wait until the helper holds the job and has renewed its lease.
			var held *models.Job
			require.Eventually(t, func() bool {
				held, err = client.Get(ctx, r.Job.ID)
				return err == nil && held.State == models.JobRunning && held.LeaseExpiresAt != nil &&
					held.LeaseExpiresAt.Sub(*held.AttemptedAt) > 500*time.Millisecond
			}, 30*time.Second, 20*time.Millisecond, "helper never claimed and renewed the job")
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			_ = cmd.Wait()

			ran := make(chan int, 2)
			p, err := jobs.NewPool(db.Gorm, jobs.PoolConfig{
				Workers: map[string]jobs.Worker{jobs.KindAnalyze: jobs.WorkFunc(func(ctx context.Context, j *models.Job) error {
					ran <- j.Attempt
					return nil
				})},
				// Its own lease is long, so that a slow machine cannot make
				// it lose the job it re-runs (the killed node's was 500ms).
				PollInterval: 20 * time.Millisecond, Lease: 10 * time.Second, RescueInterval: 50 * time.Millisecond,
				Logger: quietLogger,
			})
			require.NoError(t, err)
			require.NoError(t, p.Start(ctx))
			defer p.Stop(ctx)
			select {
			case attempt := <-ran:
				require.Equal(t, 2, attempt)
			case <-time.After(30 * time.Second):
				t.Fatal("job held by the killed node was never taken again")
			}
			require.Eventually(t, func() bool {
				j, err := client.Get(ctx, r.Job.ID)
				return err == nil && j.State == models.JobCompleted
			}, 10*time.Second, 20*time.Millisecond)
			select {
			case a := <-ran:
				t.Fatalf("job ran again (attempt %d)", a)
			case <-time.After(200 * time.Millisecond):
			}
		})
	}
}
