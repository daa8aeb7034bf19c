package web

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/turbina-dialer/turbina/dialer"
)

// Prometheus may scrape any node, and every node. Each node's /metrics is whole
// on its own: its HTTP server, its engine, its SIP stack, the agents it serves.
// A campaign's live figures are known to the node that runs it only, and only
// that node exports them (the holder of the campaign's live lease; see
// runsHere), so sum() over the nodes counts each campaign once. The figures read
// from the database (turbina_campaigns) are the same on every node: max()
// over the nodes, not sum().

var (
	campaignRingingDesc = prometheus.NewDesc("turbina_campaign_calls_ringing",
		"Calls placed and not yet answered, by campaign; exported by the node that runs the campaign only.", []string{"campaign"}, nil)
	campaignWaitingDesc = prometheus.NewDesc("turbina_campaign_persons_waiting",
		"Persons who answered and wait for an agent, by campaign; exported by the node that runs the campaign only.", []string{"campaign"}, nil)
	campaignLongestWaitDesc = prometheus.NewDesc("turbina_campaign_longest_wait_seconds",
		"How long the person waiting longest for an agent has waited (0 when nobody waits), by campaign; exported by the node that runs the campaign only.",
		[]string{"campaign"}, nil)
	agentsDesc = prometheus.NewDesc("turbina_agents",
		"Agents signed in to this node's engine, by state: each agent is served by one node.", []string{"state"}, nil)
	phonesDesc = prometheus.NewDesc("turbina_agent_phones_registered",
		"Agents whose SIP phone has a live registration, to any node (read from the database: the same on every node).", nil, nil)
)

// liveCollector exports at scrape time the figures only this node's engine
// knows.
type liveCollector struct{ s *Server }

func (c liveCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{campaignRingingDesc, campaignWaitingDesc, campaignLongestWaitDesc, agentsDesc, phonesDesc} {
		ch <- d
	}
}

func (c liveCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.s.cfg.Engine
	if e == nil {
		return
	}
	counts := map[dialer.AgentState]int{dialer.AgentReady: 0, dialer.AgentPaused: 0, dialer.AgentReserved: 0,
		dialer.AgentOnCall: 0, dialer.AgentWrapUp: 0}
	for _, a := range e.Agents().List() {
		counts[a.State]++
	}
	for st, n := range counts {
		ch <- prometheus.MustNewConstMetric(agentsDesc, prometheus.GaugeValue, float64(n), string(st))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if phones, err := c.s.store.LivePhoneBindings(ctx, time.Now()); err != nil {
		ch <- prometheus.NewInvalidMetric(phonesDesc, err)
	} else {
		agents := map[int64]bool{}
		for _, p := range phones {
			agents[p.AgentID] = true
		}
		ch <- prometheus.MustNewConstMetric(phonesDesc, prometheus.GaugeValue, float64(len(agents)))
	}
	mine, err := c.s.runsHere(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(campaignRingingDesc, err)
		return
	}
	type figures struct {
		ringing, waiting int
		oldest           time.Time
	}
	byCampaign := map[int64]*figures{}
	var order []int64
	for _, v := range e.PacerViews() {
		if !mine(v.CampaignID) {
			continue
		}
		f, ok := byCampaign[v.CampaignID]
		if !ok {
			f = &figures{}
			byCampaign[v.CampaignID], order = f, append(order, v.CampaignID)
		}
		f.ringing += v.Ringing
		f.waiting += v.Waiting
		if v.Waiting > 0 && (f.oldest.IsZero() || v.WaitingSince.Before(f.oldest)) {
			f.oldest = v.WaitingSince
		}
	}
	now := c.s.ui.now()
	for _, id := range order {
		f, label := byCampaign[id], idString(id)
		longest := 0.0
		if !f.oldest.IsZero() {
			longest = max(now.Sub(f.oldest).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(campaignRingingDesc, prometheus.GaugeValue, float64(f.ringing), label)
		ch <- prometheus.MustNewConstMetric(campaignWaitingDesc, prometheus.GaugeValue, float64(f.waiting), label)
		ch <- prometheus.MustNewConstMetric(campaignLongestWaitDesc, prometheus.GaugeValue, longest, label)
	}
}
