package sip

import "github.com/prometheus/client_golang/prometheus"

// metrics are one Originator's Prometheus collectors; nothing is registered
// globally, the caller decides where they go (see Originator.Collectors).
type metrics struct {
	state    *prometheus.GaugeVec
	calls    *prometheus.CounterVec
	inFlight *prometheus.GaugeVec
	setup    prometheus.Histogram
	// detection is first sign to trunk marked down; downs counts the deaths.
	detection *prometheus.HistogramVec
	downs     *prometheus.CounterVec
	// alarm is 1 while a trunk's carrier refuses service (TrunkStatus.Alarm).
	alarm *prometheus.GaugeVec
	// registered is 1 while a registering trunk's binding lasts.
	registered *prometheus.GaugeVec
}

func newMetrics() *metrics {
	return &metrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "turbina_sip_trunk_circuit_state",
			Help: "Trunk circuit state: 0 closed, 1 open, 2 half-open, 3 held (the carrier asked for a pause).",
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
		detection: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "turbina_sip_trunk_detection_seconds",
			Help:    "From the first sign of a trunk's death (unanswered INVITE, transport error, media stopped, failed keepalive) to the trunk marked down.",
			Buckets: []float64{0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 5, 10},
		}, []string{"trunk"}),
		downs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "turbina_sip_trunk_down_total",
			Help: "Times a trunk was marked down by a failed probe burst.",
		}, []string{"trunk"}),
		alarm: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "turbina_sip_trunk_alarm",
			Help: "1 while the trunk's carrier refuses service (402, 403, credentials refused, server errors) and no call has gone through since.",
		}, []string{"trunk"}),
		registered: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "turbina_sip_trunk_registered",
			Help: "1 while the trunk's outbound registration is accepted, 0 while it fails; only trunks with register set.",
		}, []string{"trunk"}),
	}
}

func (m *metrics) setState(trunk string, s CircuitState) {
	m.state.WithLabelValues(trunk).Set(float64(s))
}

// Collectors returns the Originator's Prometheus collectors for the caller to
// register: trunk circuit state, calls by outcome, calls in flight, setup time,
// trunk death detection time, trunk-down events, trunk alarms and registration.
func (o *Originator) Collectors() []prometheus.Collector {
	return []prometheus.Collector{o.metrics.state, o.metrics.calls, o.metrics.inFlight, o.metrics.setup,
		o.metrics.detection, o.metrics.downs, o.metrics.alarm, o.metrics.registered}
}
