package jobs_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cspine/cspine/jobs"
	"github.com/cspine/cspine/store/storetest"
)

// BenchmarkInsert measures enqueueing one job with an idempotency key.
func BenchmarkInsert(b *testing.B) {
	for _, dialect := range storetest.Dialects {
		b.Run(dialect, func(b *testing.B) {
			db := storetest.New(b, dialect, nil)
			c := jobs.NewClient(db.Gorm, jobs.ClientConfig{})
			ctx := context.Background()
			i := 0
			for b.Loop() {
				i++
				if _, err := c.Insert(ctx, jobs.InsertParams{Kind: jobs.KindAnalyze, UniqueKey: fmt.Sprint(i), Args: jobs.AnalyzeArgs{InstanceID: int64(i)}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkClaimComplete measures the queue overhead of one job: claim a
// batch of 10, complete each (per job).
func BenchmarkClaimComplete(b *testing.B) {
	for _, dialect := range storetest.Dialects {
		b.Run(dialect, func(b *testing.B) {
			db := storetest.New(b, dialect, nil)
			c := jobs.NewClient(db.Gorm, jobs.ClientConfig{})
			ctx := context.Background()
			for range b.N {
				if _, err := c.Insert(ctx, jobs.InsertParams{Kind: jobs.KindSend}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			done := 0
			for done < b.N {
				got, err := c.Claim(ctx, "bench", []string{jobs.KindSend}, 10, time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				if len(got) == 0 {
					b.Fatalf("queue empty after %d of %d", done, b.N)
				}
				for _, j := range got {
					if err := c.Complete(ctx, j); err != nil {
						b.Fatal(err)
					}
				}
				done += len(got)
			}
		})
	}
}
