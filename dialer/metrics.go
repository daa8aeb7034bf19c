package dialer

import "github.com/prometheus/client_golang/prometheus"

// metrics are the engine's Prometheus series.
type metrics struct {
	// unrecorded counts ended attempts whose outcome the database has refused and
	// that wait to be written again: above zero, the database is busy or full.
	unrecorded prometheus.Gauge
	// writeFailures counts attempt outcomes the database refused, retries included.
	writeFailures prometheus.Counter
	// inDoubtReported counts WhatsApp messages reported in doubt to supervisors.
	inDoubtReported prometheus.Counter
	// draining is 1 once the engine drains before it stops (Engine.Drain).
	draining prometheus.Gauge
}

func newMetrics() metrics {
	return metrics{
		unrecorded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "turbina_engine_unrecorded_outcomes",
			Help: "Ended attempts whose outcome the database refused (busy, disk full) and that wait to be written again.",
		}),
		writeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "turbina_engine_outcome_write_failures_total",
			Help: "Attempt outcomes the database refused to write, retries included.",
		}),
		inDoubtReported: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "turbina_outbox_in_doubt_reported_total",
			Help: "WhatsApp messages a crash left in doubt that no status webhook settled in time, reported to supervisors.",
		}),
		draining: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "turbina_draining",
			Help: "1 while this node drains before it stops: no new dials, the calls under way end.",
		}),
	}
}

// Collectors are the engine's metrics, for a Prometheus registry.
func (e *Engine) Collectors() []prometheus.Collector {
	return []prometheus.Collector{e.metrics.unrecorded, e.metrics.writeFailures, e.metrics.inDoubtReported, e.metrics.draining}
}
