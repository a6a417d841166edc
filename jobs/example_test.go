package jobs_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cspine/cspine/jobs"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
)

// A received instance and the job that will analyse it are committed in
// one transaction; a pool then runs the job. Enqueueing the same source and
// model version again is a no-op.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "cspine-example")
	defer os.RemoveAll(dir)
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "cspine.db"), &store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer db.Close()
	if err := db.MigrateUp(ctx); err != nil {
		panic(err)
	}
	s := models.NewStore(db.Gorm)

	enqueue := func(tx *models.Store, in *models.Instance) (*jobs.InsertResult, error) {
		return jobs.Insert(ctx, tx.DB(), jobs.InsertParams{
			Kind:      jobs.KindAnalyze,
			Args:      jobs.AnalyzeArgs{InstanceID: in.ID, SOPInstanceUID: in.SOPInstanceUID, ModelName: "cspine", ModelVersion: "1.0.0", Mode: "hierarchical"},
			UniqueKey: jobs.AnalyzeKey(in.SOPInstanceUID, "cspine", "1.0.0", "hierarchical"),
		})
	}
	err = s.InTx(ctx, func(tx *models.Store) error {
		in, err := tx.InstanceRecord(ctx, models.InstanceRecordParams{
			Study:  models.Study{StudyInstanceUID: "1.2.3"},
			Series: models.Series{SeriesInstanceUID: "1.2.3.4", Modality: "CR"},
			Instance: models.Instance{SOPInstanceUID: "1.2.3.4.5", SOPClassUID: "1.2.840.10008.5.1.4.1.1.1",
				TransferSyntaxUID: "1.2.840.10008.1.2.1", SpoolPath: "spool/1.2.3.4.5.dcm",
				SHA256: fmt.Sprintf("%064d", 0), SizeBytes: 1024},
		})
		if err != nil {
			return err
		}
		r, err := enqueue(tx, in)
		fmt.Println("first enqueue inserted:", r.Inserted)
		if err != nil {
			return err
		}
		r, err = enqueue(tx, in)
		fmt.Println("second enqueue inserted:", r.Inserted)
		return err
	})
	if err != nil {
		panic(err)
	}

	done := make(chan struct{})
	pool, err := jobs.NewPool(db.Gorm, jobs.PoolConfig{
		Workers: map[string]jobs.Worker{jobs.KindAnalyze: jobs.WorkFunc(func(ctx context.Context, j *models.Job) error {
			args, err := jobs.DecodeArgs[jobs.AnalyzeArgs](j)
			if err != nil {
				return err
			}
			fmt.Printf("analysing %s with %s %s (attempt %d)\n", args.SOPInstanceUID, args.ModelName, args.ModelVersion, j.Attempt)
			close(done)
			return nil
		})},
		PollInterval: 10 * time.Millisecond,
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	if err := pool.Start(ctx); err != nil {
		panic(err)
	}
	<-done
	pool.Stop(ctx)
	counts, _ := pool.Client().Counts(ctx)
	fmt.Println("completed analyze jobs:", counts[jobs.KindAnalyze][models.JobCompleted])
	// Output:
	// first enqueue inserted: true
	// second enqueue inserted: false
	// analysing 1.2.3.4.5 with cspine 1.0.0 (attempt 1)
	// completed analyze jobs: 1
}
