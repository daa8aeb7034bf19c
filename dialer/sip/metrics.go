package sip

import "github.com/prometheus/client_golang/prometheus"

// metrics are one Originator's Prometheus collectors; nothing is registered
// globally, the caller decides where they go (see Originator.Collectors).
type metrics struct {
	state    *prometheus.GaugeVec
	calls    *prometheus.CounterVec
	inFlight *prometheus.GaugeVec
	setup    prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "turbina_sip_trunk_circuit_state",
			Help: "Trunk circuit state: 0 closed, 1 open, 2 half-open.",
		}, []string{"trunk"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "turbina_sip_calls_total",
			Help: "Finished calls by last trunk and outcome.",
		}, []string{"trunk", "outcome"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "turbina_sip_calls_in_flight",
			Help: "Calls holding a channel on the trunk.",
		}, []string{"trunk"}),
		setup: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "turbina_sip_setup_seconds",
			Help:    "INVITE sent to ACK sent for answered calls.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 10),
		}),
	}
}

func (m *metrics) setState(trunk string, s CircuitState) {
	m.state.WithLabelValues(trunk).Set(float64(s))
}

// Collectors returns the Originator's Prometheus collectors for the caller to
// register: trunk circuit state, calls by outcome, calls in flight and setup time.
func (o *Originator) Collectors() []prometheus.Collector {
	return []prometheus.Collector{o.metrics.state, o.metrics.calls, o.metrics.inFlight, o.metrics.setup}
}
