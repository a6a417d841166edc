package ingest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/dicomnode/dimse"
	"github.com/cspine/cspine/store/storetest"
)

// BenchmarkHandleStore measures what ingest adds to a received instance:
// header parse and hash, fsync and link into the spool, and the study,
// series and instance rows in one transaction (64×64 16-bit images).
func BenchmarkHandleStore(b *testing.B) {
	for _, dialect := range storetest.Dialects {
		b.Run(dialect, func(b *testing.B) {
			db := storetest.New(b, dialect, nil)
			tb := setupB(b, db)
			reqs := make([]*servicesRequest, b.N)
			for i := range reqs {
				reqs[i] = tb.receiveB(b, dicomnodetest.Image{SOPInstanceUID: fmt.Sprintf("1.2.3.%d.%d", i/100, i),
					StudyInstanceUID: fmt.Sprintf("1.2.3.%d", i/100), SeriesInstanceUID: fmt.Sprintf("1.2.3.%d.1", i/100)})
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				st, err := tb.h.HandleStore(context.Background(), reqs[i])
				if err != nil || st != dimse.StatusSuccess {
					b.Fatalf("%v %v", st, err)
				}
			}
		})
	}
}
