package web

import (
	"math"
	"testing"

	"github.com/turbina-dialer/turbina/dialer"
)

// TestWallboardOccupancy: the wallboard's occupancy is kpi.OccupancyNow over the
// campaign's agents: reserved, on-call and wrap-up agents handle, ready ones wait,
// paused ones and other campaigns' agents count in neither term.
func TestWallboardOccupancy(t *testing.T) {
	agent := func(state dialer.AgentState, campaigns ...int64) dialer.Agent {
		return dialer.Agent{State: state, Campaigns: campaigns}
	}
	for _, tc := range []struct {
		name string
		live []dialer.Agent
		want float64
	}{
		{"nobody signed in", nil, 0},
		{"all ready", []dialer.Agent{agent(dialer.AgentReady, 1), agent(dialer.AgentReady, 1)}, 0},
		{"talk, wrap-up and reserved handle", []dialer.Agent{
			agent(dialer.AgentOnCall, 1), agent(dialer.AgentWrapUp, 1), agent(dialer.AgentReserved, 1), agent(dialer.AgentReady, 1)}, 0.75},
		{"paused agents are not available", []dialer.Agent{
			agent(dialer.AgentOnCall, 1), agent(dialer.AgentPaused, 1), agent(dialer.AgentPaused, 1)}, 1},
		{"another campaign's agents do not count", []dialer.Agent{
			agent(dialer.AgentOnCall, 1), agent(dialer.AgentReady, 1), agent(dialer.AgentOnCall, 2), agent(dialer.AgentOnCall, 2, 1)}, 2.0 / 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := occupancy(tc.live, 1); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("occupancy = %v, want %v", got, tc.want)
			}
		})
	}
}
