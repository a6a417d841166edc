// Package ops is the node's operations surface on its HTTP port: liveness
// (/healthz), readiness (/readyz: the database answers and the DICOM
// listener is up), Prometheus metrics (/metrics, prometheus/client_golang)
// and a mount point at "/" for the review UI.
package ops

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cspine/cspine/models"
)

// Metrics are the node's Prometheus metrics, on their own registry.
type Metrics struct {
	Registry *prometheus.Registry

	// ReceivedInstances counts C-STORE outcomes (stored, duplicate,
	// variant, replayed, rejected, failed; see ingest.Options.OnOutcome).
	ReceivedInstances *prometheus.CounterVec
	// StudiesAssembled counts assembled studies by whether an image was
	// selected.
	StudiesAssembled *prometheus.CounterVec
	// AnalysisSeconds is the pipeline time of each analysis, by status.
	AnalysisSeconds *prometheus.HistogramVec
	// ReviewFlags counts analyses flagged for review, by reason.
	ReviewFlags *prometheus.CounterVec
	// SendFailures counts failed delivery attempts by outcome (retry,
	// dead).
	SendFailures *prometheus.CounterVec
	// ReportsDelivered counts delivered reports.
	ReportsDelivered prometheus.Counter
	// DeliverySeconds is the time from a report's creation to its
	// delivery at a destination.
	DeliverySeconds prometheus.Histogram
	// JobsFinished counts job attempts by kind and outcome.
	JobsFinished *prometheus.CounterVec
}

// QueueCounter returns the number of jobs per kind and state
// (jobs.Client.Counts).
type QueueCounter func(ctx context.Context) (map[string]map[models.JobState]int64, error)

// NewMetrics registers the metrics; queue (may be nil) is asked for the
// queue depth at each scrape.
func NewMetrics(queue QueueCounter, log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.Default()
	}
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		ReceivedInstances: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cspine_received_instances_total",
			Help: "Instances received by C-STORE, by outcome."}, []string{"outcome"}),
		StudiesAssembled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cspine_studies_assembled_total",
			Help: "Studies assembled, by whether an image was selected for measurement."}, []string{"measurable"}),
		AnalysisSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "cspine_analysis_duration_seconds",
			Help:    "Time of one analysis (decode to parameters), by status.",
			Buckets: []float64{.05, .1, .2, .5, 1, 2, 5, 10, 30}}, []string{"status"}),
		ReviewFlags: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cspine_review_flags_total",
			Help: "Analyses flagged for human review, by reason."}, []string{"reason"}),
		SendFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cspine_send_failures_total",
			Help: "Failed report delivery attempts, by what follows (retry, dead)."}, []string{"outcome"}),
		ReportsDelivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "cspine_reports_delivered_total",
			Help: "Reports (SR and SC) delivered to a destination."}),
		DeliverySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cspine_report_delivery_seconds",
			Help:    "Time from a report's creation to its delivery.",
			Buckets: []float64{.1, .25, .5, 1, 2, 5, 10, 30, 60, 300, 3600}}),
		JobsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cspine_jobs_finished_total",
			Help: "Job attempts finished, by kind and outcome."}, []string{"kind", "outcome"}),
	}
	r.MustRegister(m.ReceivedInstances, m.StudiesAssembled, m.AnalysisSeconds, m.ReviewFlags, m.SendFailures,
		m.ReportsDelivered, m.DeliverySeconds, m.JobsFinished,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if queue != nil {
		r.MustRegister(&queueCollector{count: queue, log: log,
			desc: prometheus.NewDesc("cspine_jobs", "Jobs in the durable queue, by kind and state (queue depth).",
				[]string{"kind", "state"}, nil)})
	}
	return m
}

// ObserveAnalysis records one analysis.
func (m *Metrics) ObserveAnalysis(a *models.Analysis, took time.Duration) {
	m.AnalysisSeconds.WithLabelValues(a.Status).Observe(took.Seconds())
	if a.ReviewRequired {
		for _, r := range a.Reasons() {
			m.ReviewFlags.WithLabelValues(r).Inc()
		}
	}
}

type queueCollector struct {
	count QueueCounter
	desc  *prometheus.Desc
	log   *slog.Logger
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.count(ctx)
	if err != nil {
		c.log.Warn("metrics: queue depth unavailable", "err", err)
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for kind, states := range counts {
		for _, st := range []models.JobState{models.JobAvailable, models.JobRunning, models.JobCompleted,
			models.JobCancelled, models.JobDead} {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(states[st]), kind, string(st))
		}
	}
}
