package ops_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/ops"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, err := io.ReadAll(rec.Result().Body)
	require.NoError(t, err)
	return rec.Code, string(b)
}

func TestHandler(t *testing.T) {
	t.Parallel()
	queue := func(context.Context) (map[string]map[models.JobState]int64, error) {
		return map[string]map[models.JobState]int64{"analyze": {models.JobAvailable: 3}}, nil
	}
	m := ops.NewMetrics(queue, nil)
	m.ReceivedInstances.WithLabelValues("stored").Add(2)
	m.ObserveAnalysis(&models.Analysis{Status: "ok", ReviewRequired: true,
		ReviewReasons: []models.ReviewReason{{Reason: "c7_low_confidence"}}}, 150*time.Millisecond)
	m.SendFailures.WithLabelValues("retry").Inc()
	dbDown := errors.New("database down")
	var dbErr error
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "review ui") })
	h := ops.Handler(ops.HandlerOpts{Metrics: m, UI: ui,
		Ready: map[string]ops.Check{"database": func(context.Context) error { return dbErr }}})

	code, body := get(t, h, "/healthz")
	require.Equal(t, 200, code)
	require.Equal(t, "ok\n", body)
	code, _ = get(t, h, "/readyz")
	require.Equal(t, 200, code)
	dbErr = dbDown
	code, body = get(t, h, "/readyz")
	require.Equal(t, 503, code)
	require.Contains(t, body, "database down")

	code, body = get(t, h, "/metrics")
	require.Equal(t, 200, code)
	for _, want := range []string{
		`cspine_received_instances_total{outcome="stored"} 2`,
		`cspine_jobs{kind="analyze",state="available"} 3`,
		`cspine_review_flags_total{reason="c7_low_confidence"} 1`,
		`cspine_send_failures_total{outcome="retry"} 1`,
		`cspine_analysis_duration_seconds_count{status="ok"} 1`,
	} {
		require.True(t, strings.Contains(body, want), "metrics lack %s", want)
	}
	code, body = get(t, h, "/anything")
	require.Equal(t, 200, code)
	require.Equal(t, "review ui", body)
}

func TestHandlerWithoutUI(t *testing.T) {
	t.Parallel()
	h := ops.Handler(ops.HandlerOpts{})
	code, _ := get(t, h, "/")
	require.Equal(t, 404, code)
}
