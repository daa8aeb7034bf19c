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
	// leasesHeld is how many campaigns' leases the node holds (its runs);
	// handovers the leases it took that another node held last; leasesLost
	// the runs stopped because their lease was lost; fenced the writes refused
	// by their fence; renewFailures the heartbeat and renewal rounds that failed.
	leasesHeld    prometheus.Gauge
	handovers     prometheus.Counter
	leasesLost    prometheus.Counter
	fenced        prometheus.Counter
	renewFailures prometheus.Counter
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
		leasesHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "turbina_cluster_leases_held",
			Help: "Campaign leases this node holds: the campaigns it runs.",
		}),
		handovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "turbina_cluster_handovers_total",
			Help: "Campaign leases this node took that another node held last (a dead, frozen or departing node's).",
		}),
		leasesLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "turbina_cluster_leases_lost_total",
			Help: "Campaign runs this node stopped at once because their lease was lost (expired and taken, or a write fenced).",
		}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "turbina_cluster_fencing_refusals_total",
			Help: "Writes of this node's runs refused because their lease's epoch was no longer current.",
		}),
		renewFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "turbina_cluster_lease_renew_failures_total",
			Help: "Rounds of heartbeat and lease renewal that failed (the database refused or was unreachable).",
		}),
	}
}

// Collectors are the engine's metrics, for a Prometheus registry.
func (e *Engine) Collectors() []prometheus.Collector {
	m := e.metrics
	return []prometheus.Collector{m.unrecorded, m.writeFailures, m.inDoubtReported, m.draining,
		m.leasesHeld, m.handovers, m.leasesLost, m.fenced, m.renewFailures}
}
