package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/store/storetest"
)

// BenchmarkServe pushes 200 single-image phantom studies (1000×1200,
// 16-bit) with DCMTK storescu to `cspine serve` and waits until every SR
// and SC has been acknowledged by a storescp destination. It reports
//
//	studies/min      200 / (last delivery − first instance received)
//	p50_s, p95_s     per study: delivery acknowledged − study complete
//	                 (complete = quiet time after its last instance, 1 s here)
//
// on each database. Run: go test ./e2e -run '^$' -bench Serve -benchtime 1x
// (CSPINE_BENCH_FULLSIZE=1: phantoms of 1000–3000 pixels a side instead;
// CSPINE_BENCH_ANALYZE_WORKERS=N: jobs.analyze_workers, default 1).
func BenchmarkServe(b *testing.B) {
	dir := b.TempDir()
	size := "1000x1200"
	if os.Getenv("CSPINE_BENCH_FULLSIZE") != "" {
		size = "" // the phantom's own sizes, 1000–3000 pixels a side
	}
	base := laterals(phantomsSized(b, filepath.Join(dir, "ph"), 16, 13, 0, size))
	require.NotEmpty(b, base)
	files := studies(b, base, 200, filepath.Join(dir, "studies"))
	for _, dialect := range []string{store.Postgres, store.SQLite} {
		b.Run(dialect, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				benchServe(b, dialect, files, filepath.Join(dir, fmt.Sprintf("%s-%d", dialect, i)))
			}
		})
	}
}

func benchServe(b *testing.B, dialect string, files []string, dir string) {
	b.StopTimer()
	db := newBenchDatabase(b, dialect)
	scp := storescp(b, "PACS", filepath.Join(dir, "pacs"), 0)
	workers, _ := strconv.Atoi(os.Getenv("CSPINE_BENCH_ANALYZE_WORKERS"))
	n := startNode(b, nodeOpts{DSN: db.DSN, DataDir: filepath.Join(dir, "data"), AnalyzeWorkers: workers,
		Destinations: []string{fmt.Sprintf("PACS@127.0.0.1:%d", scp.Port)}})
	b.StartTimer()
	storescu(b, "PACS", n.DICOMPort, files...)
	waitFor(b, 20*time.Minute, "every report delivered", func() bool {
		return db.count(b, &models.Transfer{}, "status = ?", models.TransferSent) == int64(len(files))
	})
	b.StopTimer()
	var rows []struct {
		CompletedAt time.Time
		SentAt      time.Time
	}
	require.NoError(b, db.DB.Gorm.Table("transfers").
		Select("studies.completed_at AS completed_at, transfers.sent_at AS sent_at").
		Joins("JOIN reports ON reports.id = transfers.report_id").
		Joins("JOIN analyses ON analyses.id = reports.analysis_id").
		Joins("JOIN studies ON studies.id = analyses.study_id").Scan(&rows).Error)
	require.Len(b, rows, len(files))
	var firstIn models.Instance
	require.NoError(b, db.DB.Gorm.Order("received_at, id").First(&firstIn).Error)
	first, last := firstIn.ReceivedAt, time.Time{}
	lat := make([]float64, len(rows))
	for i, r := range rows {
		lat[i] = r.SentAt.Sub(r.CompletedAt).Seconds()
		if r.SentAt.After(last) {
			last = r.SentAt
		}
	}
	sort.Float64s(lat)
	b.ReportMetric(float64(len(files))/last.Sub(first).Minutes(), "studies/min")
	b.ReportMetric(lat[len(lat)/2], "p50_s")
	b.ReportMetric(lat[len(lat)*95/100], "p95_s")
	n.stop()
}

func newBenchDatabase(b *testing.B, dialect string) *database {
	b.Helper()
	var dsn string
	if dialect == store.Postgres {
		dsn, _ = storetest.CreatePostgresDB(b)
	} else {
		dsn = "sqlite:" + filepath.Join(b.TempDir(), "cspine.db")
	}
	db := storetest.Open(b, dsn, nil)
	return &database{DSN: dsn, Dialect: dialect, DB: db, St: models.NewStore(db.Gorm)}
}
