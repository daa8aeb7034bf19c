package web

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/turbina-dialer/turbina/storage"
)

// TestAgentSeesOnlyAssignedCampaigns: an agent reads a campaign, its contacts and
// each contact only while assigned to it.
func TestAgentSeesOnlyAssignedCampaigns(t *testing.T) {
	e := newEnv(t, Config{})
	agent, agentUser := e.tokens[storage.RoleAgent], e.users[storage.RoleAgent]
	sup := e.tokens[storage.RoleSupervisor]
	mine := e.createCampaign(t, "Mine")
	other := e.createCampaign(t, "Other")
	e.importCSV(t, mine.ID, "phone\n+5511987650001\n")
	e.importCSV(t, other.ID, "phone\n+5511987650002\n")
	mineContact := e.contacts(t, mine.ID, "").Contacts[0]
	otherContact := e.contacts(t, other.ID, "").Contacts[0]

	refused := func(t *testing.T, c campaignView, contact contactView) {
		t.Helper()
		wantError(t, e.get(t, "/api/v1/campaigns/"+c.ID, agent), 403, "forbidden")
		wantError(t, e.get(t, "/api/v1/campaigns/"+c.ID+"/contacts", agent), 403, "forbidden")
		wantError(t, e.get(t, "/api/v1/contacts/"+contact.ID, agent), 403, "forbidden")
	}
	listed := func(t *testing.T) []string {
		t.Helper()
		l := decode[struct{ Campaigns []campaignView }](t, e.get(t, "/api/v1/campaigns", agent), http.StatusOK)
		ids := []string{}
		for _, c := range l.Campaigns {
			ids = append(ids, c.ID)
		}
		return ids
	}

	refused(t, mine, mineContact)
	refused(t, other, otherContact)
	if ids := listed(t); len(ids) != 0 {
		t.Errorf("unassigned agent lists %v", ids)
	}

	agents := decode[struct{ Agents []storage.User }](t, e.send(t, "POST", "/api/v1/campaigns/"+mine.ID+"/agents", sup,
		map[string]any{"user_id": fmt.Sprint(agentUser.ID)}), http.StatusOK)
	if len(agents.Agents) != 1 || agents.Agents[0].ID != agentUser.ID {
		t.Fatalf("agents = %+v", agents.Agents)
	}
	if got := decode[campaignView](t, e.get(t, "/api/v1/campaigns/"+mine.ID, agent), http.StatusOK); got.Name != "Mine" {
		t.Errorf("assigned campaign = %+v", got)
	}
	if l := decode[contactList](t, e.get(t, "/api/v1/campaigns/"+mine.ID+"/contacts", agent), http.StatusOK); l.Total != 1 {
		t.Errorf("assigned contacts = %+v", l)
	}
	if got := decode[contactView](t, e.get(t, "/api/v1/contacts/"+mineContact.ID, agent), http.StatusOK); got.Phone != "+5511987650001" {
		t.Errorf("contact = %+v", got)
	}
	if ids := listed(t); len(ids) != 1 || ids[0] != mine.ID {
		t.Errorf("assigned agent lists %v, want [%s]", ids, mine.ID)
	}
	refused(t, other, otherContact)
	// Assigning twice changes nothing.
	again := decode[struct{ Agents []storage.User }](t, e.send(t, "POST", "/api/v1/campaigns/"+mine.ID+"/agents", sup,
		map[string]any{"user_id": agentUser.ID}), http.StatusOK)
	if len(again.Agents) != 1 {
		t.Errorf("agents after a second assignment = %+v", again.Agents)
	}
	if l := decode[struct{ Agents []storage.User }](t, e.get(t, "/api/v1/campaigns/"+mine.ID+"/agents", sup), http.StatusOK); len(l.Agents) != 1 {
		t.Errorf("listed agents = %+v", l.Agents)
	}

	// Unassigned, the agent is refused again.
	path := fmt.Sprintf("/api/v1/campaigns/%s/agents/%d", mine.ID, agentUser.ID)
	if r := e.do(t, request{method: "DELETE", path: path, token: sup}); r.status != http.StatusNoContent {
		t.Fatalf("%v: want 204", r)
	}
	refused(t, mine, mineContact)
	wantError(t, e.do(t, request{method: "DELETE", path: path, token: sup}), 404, "not_found")
}

func TestAssignAgentErrors(t *testing.T) {
	e := newEnv(t, Config{})
	sup := e.tokens[storage.RoleSupervisor]
	c := e.createCampaign(t, "Agents")
	path := "/api/v1/campaigns/" + c.ID + "/agents"
	tests := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"not an agent", path, fmt.Sprintf(`{"user_id":%d}`, e.users[storage.RoleSales].ID), 422, "validation_failed"},
		{"no such user", path, `{"user_id":"999999"}`, 422, "validation_failed"},
		{"bad id", path, `{"user_id":"abc"}`, 400, "bad_request"},
		{"unknown field", path, `{"user":"1"}`, 400, "bad_request"},
		{"unknown campaign", "/api/v1/campaigns/999999/agents", fmt.Sprintf(`{"user_id":%d}`, e.users[storage.RoleAgent].ID), 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, e.send(t, "POST", tt.path, sup, tt.body), tt.status, tt.code)
		})
	}
	wantError(t, e.get(t, "/api/v1/campaigns/999999/agents", sup), 404, "not_found")
	wantError(t, e.do(t, request{method: "DELETE", path: "/api/v1/campaigns/" + c.ID + "/agents/abc", token: sup}), 404, "not_found")
}
