package web

import (
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/dialer/sip"
)

// TestMergeLive: the nodes' live parts merged as the wallboard shows them,
// while a campaign moves between nodes (both publish it for a moment) and
// without: each campaign's pacer and each agent once, from the lease holder's
// part first; callers on hold once, aged since they were published; each
// trunk's death once, down while any node finds it down; node names only when
// several nodes are live.
func TestMergeLive(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	back := t0.Add(time.Minute)
	pacer := func(c int64, ringing int) dialer.PacerView {
		return dialer.PacerView{CampaignID: c, Ringing: ringing}
	}
	a := livePart{node: "a", rawTrunks: []sip.TrunkStatus{{Name: "carrier"}}, Trunks: []sip.TrunkStatus{{Name: "carrier"}},
		Pacers: []dialer.PacerView{pacer(1, 1), pacer(2, 9)},
		Agents: []liveAgent{{ID: 10, State: dialer.AgentReady, Campaigns: []int64{1}}, {ID: 11, State: dialer.AgentPaused, Campaigns: []int64{2}}},
		Queues: []dialer.InboundQueue{{CampaignID: 2, Answered: 4}},
		Failovers: []WallboardFailover{{Trunk: "carrier", DownSince: t0.Add(-time.Minute), RecoveredAt: &back},
			{Trunk: "backup", DownSince: t0}}}
	b := livePart{node: "b", age: 2 * time.Second, Trunks: []sip.TrunkStatus{{Name: "carrier"}},
		Pacers:    []dialer.PacerView{pacer(2, 3), pacer(3, 5)},
		Agents:    []liveAgent{{ID: 11, State: dialer.AgentOnCall, Campaigns: []int64{2}}, {ID: 12, State: dialer.AgentReady, Campaigns: []int64{3}}},
		Queues:    []dialer.InboundQueue{{CampaignID: 2, Answered: 4, Waiting: 1, LongestWaitingSeconds: 5, LongestWaitSeconds: 5}},
		Failovers: []WallboardFailover{{Trunk: "carrier", DownSince: t0}}}

	// Campaign 2 is b's by its lease, though a still publishes it.
	v := mergeLive([]livePart{a, b}, map[int64]string{2: "b", 3: "b"})
	for c, want := range map[int64]int{1: 1, 2: 3, 3: 5} {
		if got := v.views[c]; len(got) != 1 || got[0].Ringing != want {
			t.Errorf("campaign %d's pacer %+v, want the one ringing %d", c, got, want)
		}
	}
	if len(v.agents) != 3 || v.agents[1].ID != 11 || v.agents[1].State != dialer.AgentOnCall || v.agentNode[11] != "b" ||
		v.agentNode[10] != "a" || v.agentNode[12] != "b" {
		t.Errorf("agents %+v on %v: want 10 on a, 11 on b (its campaign's holder), 12 on b", v.agents, v.agentNode)
	}
	if len(v.inbound) != 1 || v.inbound[0].Waiting != 1 || v.inbound[0].LongestWaitingSeconds != 7 || v.inbound[0].Answered != 4 ||
		v.inbound[0].LongestWaitSeconds != 7 {
		t.Errorf("inbound %+v: want b's caller on hold for 5 s and 2 s since, today's 4 answered once", v.inbound)
	}
	if len(v.failovers) != 2 || v.failovers[0].Trunk != "backup" || v.failovers[1].Trunk != "carrier" ||
		v.failovers[1].RecoveredAt != nil || !v.failovers[1].DownSince.Equal(t0) {
		t.Errorf("failovers %+v: want backup, then carrier down on b since t0", v.failovers)
	}
	trunks, ok := v.trunks.([]WallboardTrunk)
	if !ok || len(trunks) != 2 || trunks[0].Node != "a" || trunks[1].Node != "b" {
		t.Errorf("trunks %#v: want carrier on a and on b", v.trunks)
	}

	// No lease: this node's view first.
	if v := mergeLive([]livePart{a, b}, nil); v.views[2][0].Ringing != 9 || v.agentNode[11] != "a" {
		t.Errorf("without leases: campaign 2's pacer %+v, agent 11 on %q; want a's", v.views[2], v.agentNode[11])
	}

	// One node: its own trunks as given, no node names.
	one := mergeLive([]livePart{a}, nil)
	if _, ok := one.trunks.([]sip.TrunkStatus); !ok || len(one.agentNode) != 0 || one.multi {
		t.Errorf("one node: trunks %#v, agents' nodes %v", one.trunks, one.agentNode)
	}
}
