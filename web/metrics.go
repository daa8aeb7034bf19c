package web

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/turbina-dialer/turbina/storage"
)

// metrics are the HTTP layer's Prometheus collectors, in a registry of its own so
// that two servers in one process (as in tests) never share state.
type metrics struct {
	registry   *prometheus.Registry
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	importRows *prometheus.CounterVec
	busy       *prometheus.CounterVec
	relays     *prometheus.CounterVec
}

func newMetrics(store storage.Store) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "turbina_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "turbina_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"route"}),
		importRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "turbina_import_rows_total", Help: "Contact import rows by result (imported, rejected).",
		}, []string{"result"}),
		busy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "turbina_http_busy_total",
			Help: "Requests without credentials turned away at once (503 too_busy) because their cap was full, by class (anonymous, webhook).",
		}, []string{"class"}),
		relays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "turbina_agent_relays_total",
			Help: "Agents' requests and event streams this node relayed to the node that runs the agent's campaign, by result: relayed, or node_unavailable (answered 503).",
		}, []string{"result"}),
	}
	m.registry.MustRegister(m.requests, m.duration, m.importRows, m.busy, m.relays,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		campaignStateCollector{store: store}, quarantineCollector{store: store})
	return m
}

func (m *metrics) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		m.requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
		m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush lets streamed responses through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// campaignStateCollector reports how many campaigns are in each state at scrape time.
type campaignStateCollector struct{ store storage.Store }

var campaignsDesc = prometheus.NewDesc("turbina_campaigns", "Campaigns by state.", []string{"state"}, nil)

func (c campaignStateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- campaignsDesc }

func (c campaignStateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	list, err := c.store.ListCampaigns(ctx, nil)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(campaignsDesc, err)
		return
	}
	counts := map[string]int{"draft": 0, "running": 0, "paused": 0, "finished": 0}
	for _, cp := range list {
		counts[string(cp.State)]++
	}
	for st, n := range counts {
		ch <- prometheus.MustNewConstMetric(campaignsDesc, prometheus.GaugeValue, float64(n), st)
	}
}
