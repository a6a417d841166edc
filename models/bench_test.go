package models_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cspine/cspine/jobs"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store/storetest"
)

// BenchmarkInstanceRecordWithJob measures the ingest transaction: record a
// received instance (new study, series, instance) and enqueue its analyze
// job, committed together.
func BenchmarkInstanceRecordWithJob(b *testing.B) {
	for _, dialect := range storetest.Dialects {
		b.Run(dialect, func(b *testing.B) {
			db := storetest.New(b, dialect, nil)
			s := models.NewStore(db.Gorm)
			ctx := context.Background()
			i := 0
			for b.Loop() {
				i++
				sop := fmt.Sprintf("1.2.%d.1.1", i)
				err := s.InTx(ctx, func(tx *models.Store) error {
					in, err := tx.InstanceRecord(ctx, recordParams(fmt.Sprintf("1.2.%d", i), fmt.Sprintf("1.2.%d.1", i), sop, time.Now()))
					if err != nil {
						return err
					}
					_, err = jobs.Insert(ctx, tx.DB(), jobs.InsertParams{Kind: jobs.KindAnalyze, UniqueKey: jobs.AnalyzeKey(sop, "m", "1", "hierarchical"),
						Args: jobs.AnalyzeArgs{InstanceID: in.ID}})
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
