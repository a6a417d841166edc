package review_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/review"
	"github.com/cspine/cspine/review/reviewtest"
	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/store/storetest"
)

// bulkAnalyses stores n studies with one analysis each (every third one
// flagged with a pending review task), without images: enough for the
// worklist, which never opens the source.
func bulkAnalyses(tb testing.TB, db *gorm.DB, n int) {
	tb.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	for start := 0; start < n; start += 500 {
		end := min(start+500, n)
		var studies []models.Study
		for i := start; i < end; i++ {
			studies = append(studies, models.Study{StudyInstanceUID: fmt.Sprintf("2.25.9%d", i), StudyDate: "20260101", Source: models.SourcePush,
				State: models.StudyComplete, FirstInstanceAt: now, LastInstanceAt: now, Modalities: "DX"})
		}
		require.NoError(tb, db.Create(&studies).Error)
		var series []models.Series
		for i, st := range studies {
			series = append(series, models.Series{StudyID: st.ID, SeriesInstanceUID: fmt.Sprintf("2.25.8%d", start+i), Modality: []string{"CR", "DX"}[i%2]})
		}
		require.NoError(tb, db.Create(&series).Error)
		var ins []models.Instance
		for i, se := range series {
			ins = append(ins, models.Instance{StudyID: se.StudyID, SeriesID: se.ID, SOPInstanceUID: fmt.Sprintf("2.25.7%d", start+i),
				SOPClassUID: "1.2.840.10008.5.1.4.1.1.1.1", SHA256: strings.Repeat("0", 64), State: models.InstanceAnalyzed, ReceivedAt: now, SpoolPath: "x"})
		}
		require.NoError(tb, db.Create(&ins).Error)
		var as []models.Analysis
		for i, in := range ins {
			c, cobb := 0.9, float64(i%30)
			a := models.Analysis{InstanceID: in.ID, StudyID: in.StudyID, ModelName: "m", ModelVersion: "1", Mode: result.ModeHierarchical,
				Revision: 1, Status: models.AnalysisOK, C7Confidence: &c, ResultJSON: "{}", TimingsJSON: "{}",
				StartedAt: now, FinishedAt: now, CreatedAt: now.Add(time.Duration(start+i) * time.Second)}
			a.C2C7CobbDeg = &cobb
			if (start+i)%3 == 0 {
				a.ReviewRequired = true
				a.ReviewReasons = []models.ReviewReason{{Reason: result.ReasonC7LowConfidence}}
			}
			as = append(as, a)
		}
		require.NoError(tb, db.Create(&as).Error)
		var tasks []models.ReviewTask
		for _, a := range as {
			if a.ReviewRequired {
				tasks = append(tasks, models.ReviewTask{AnalysisID: a.ID, State: models.ReviewPending, Version: 1})
			}
		}
		require.NoError(tb, db.Create(&tasks).Error)
	}
}

// BenchmarkWorklist measures one worklist page (flagged first, 25 rows,
// counts per reason and status) over HTTP with 5000 analyses.
func BenchmarkWorklist(b *testing.B) {
	for _, d := range storetest.Dialects {
		b.Run(d, func(b *testing.B) {
			db := storetest.New(b, d, nil)
			benchWorklist(b, db)
		})
	}
}

func benchWorklist(b *testing.B, db *store.DB) {
	bulkAnalyses(b, db.Gorm, 5000)
	if db.Dialect == store.Postgres {
		require.NoError(b, db.Gorm.Exec("ANALYZE").Error) // as autovacuum would
	}
	ctx := context.Background()
	_, err := review.CreateUser(ctx, models.NewStore(db.Gorm), "bench", "", models.RoleReviewer, password)
	require.NoError(b, err)
	h, err := review.New(review.Deps{DB: db.Gorm, DataDir: b.TempDir(), Device: reviewtest.Device, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(b, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	res, err := hc.Post(srv.URL+"/api/v1/login", "application/json", strings.NewReader(`{"username":"bench","password":"`+password+`"}`))
	require.NoError(b, err)
	res.Body.Close()
	require.Equal(b, 200, res.StatusCode)
	for _, q := range []string{"", "?reason=c7_low_confidence&status=pending&modality=DX&page=20"} {
		name := "default"
		if q != "" {
			name = "filtered_page20"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				res, err := hc.Get(srv.URL + "/api/v1/worklist" + q)
				if err != nil || res.StatusCode != 200 {
					b.Fatalf("worklist: %v %v", err, res.Status)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		})
	}
}
