package dialer

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// TestAgentsAssignAndUnassign: a supervisor's move changes which campaigns'
// calls a logged-in agent can be reserved for, and tells both campaigns' runs;
// an agent not logged in is not logged in by it.
func TestAgentsAssignAndUnassign(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	p := NewAgents()
	var told []int64
	p.onChange = func(ids []int64) { told = append(told, ids...) }

	if _, err := p.Assign(7, 1); !errors.Is(err, ErrAgentNotLoggedIn) {
		t.Fatalf("assign before login: %v, want ErrAgentNotLoggedIn", err)
	}
	if _, ok := p.Get(7); ok {
		t.Fatal("an assignment logged the agent in")
	}
	p.Login(7, "Bia", []int64{1}, now)
	if _, err := p.Ready(7, now); err != nil {
		t.Fatal(err)
	}
	told = nil
	a, err := p.Assign(7, 2)
	if err != nil || !slices.Equal(a.Campaigns, []int64{1, 2}) {
		t.Fatalf("after assign: %+v %v", a, err)
	}
	if a, _ := p.Assign(7, 2); !slices.Equal(a.Campaigns, []int64{1, 2}) {
		t.Fatalf("assigning twice: %v", a.Campaigns)
	}
	if a, err := p.Unassign(7, 1); err != nil || !slices.Equal(a.Campaigns, []int64{2}) {
		t.Fatalf("after unassign: %+v %v", a, err)
	}
	if !slices.Contains(told, 1) || !slices.Contains(told, 2) {
		t.Errorf("runs told %v, want both campaigns", told)
	}
	if _, ok := p.reserve(1, 100, campaigns.ChannelSIP, 0, now); ok {
		t.Error("reserved for the campaign the agent left")
	}
	if got, ok := p.reserve(2, 101, campaigns.ChannelSIP, 0, now); !ok || got.ID != 7 {
		t.Errorf("not reserved for the campaign the agent joined: %+v %v", got, ok)
	}
}
