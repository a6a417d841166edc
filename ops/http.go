package ops

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness check; nil error means ready.
type Check func(ctx context.Context) error

// HandlerOpts configure Handler.
type HandlerOpts struct {
	Metrics *Metrics
	// Ready lists named readiness checks (e.g. "database", "dicom").
	Ready map[string]Check
	// UI is mounted at "/" (the review UI of package review); nil answers
	// 404 there.
	UI http.Handler
}

// Handler returns the HTTP handler of the operations endpoints:
//
//	GET /healthz  200 while the process runs (liveness)
//	GET /readyz   200 when every readiness check passes, else 503; JSON body per check
//	GET /metrics  Prometheus text format
//	/             the UI, when given
func Handler(o HandlerOpts) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		out := map[string]string{}
		code := http.StatusOK
		for name, check := range o.Ready {
			if err := check(ctx); err != nil {
				out[name] = err.Error()
				code = http.StatusServiceUnavailable
			} else {
				out[name] = "ok"
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(out)
	})
	if o.Metrics != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(o.Metrics.Registry, promhttp.HandlerOpts{}))
	}
	if o.UI != nil {
		mux.Handle("/", o.UI)
	}
	return mux
}
