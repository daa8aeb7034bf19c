package web

import (
	"net/http"
	"testing"

	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/storage"
)

func TestAgentSession(t *testing.T) {
	e := newEnv(t, Config{})
	mine := e.createCampaign(t, "Mine")
	other := e.createCampaign(t, "Other")
	agent := e.tokens[storage.RoleAgent]
	sup := e.tokens[storage.RoleSupervisor]
	decode[any](t, e.send(t, "POST", "/api/v1/campaigns/"+mine.ID+"/agents", sup,
		map[string]any{"user_id": e.users[storage.RoleAgent].ID}), http.StatusOK)

	type agentView struct {
		State       string
		Reason      string
		CampaignIDs []string `json:"campaign_ids"`
	}
	state := func(r apiResponse) agentView { t.Helper(); return decode[agentView](t, r, http.StatusOK) }

	if got := state(e.get(t, "/api/v1/agent", agent)); got.State != string(dialer.AgentLoggedOut) {
		t.Errorf("before login: %+v", got)
	}
	wantError(t, e.send(t, "POST", "/api/v1/agent/ready", agent, map[string]any{}), http.StatusConflict, "conflict")
	wantError(t, e.send(t, "POST", "/api/v1/agent/login", agent, map[string]any{"campaign_ids": []string{other.ID}}),
		http.StatusForbidden, "forbidden")
	got := state(e.send(t, "POST", "/api/v1/agent/login", agent, map[string]any{}))
	if got.State != string(dialer.AgentPaused) || len(got.CampaignIDs) != 1 || got.CampaignIDs[0] != mine.ID {
		t.Errorf("after login: %+v", got)
	}
	if got := state(e.send(t, "POST", "/api/v1/agent/ready", agent, map[string]any{})); got.State != string(dialer.AgentReady) {
		t.Errorf("after ready: %+v", got)
	}
	wantError(t, e.send(t, "POST", "/api/v1/agent/pause", agent, map[string]any{}), http.StatusUnprocessableEntity, "validation_failed")
	if got := state(e.send(t, "POST", "/api/v1/agent/pause", agent, map[string]any{"reason": "lunch"})); got.State != string(dialer.AgentPaused) || got.Reason != "lunch" {
		t.Errorf("after pause: %+v", got)
	}
	// No call to hang up or to disposition.
	wantError(t, e.send(t, "POST", "/api/v1/agent/hangup", agent, map[string]any{}), http.StatusConflict, "conflict")
	wantError(t, e.send(t, "POST", "/api/v1/agent/disposition", agent, map[string]any{"code": "sale"}), http.StatusConflict, "conflict")

	list := decode[struct{ Agents []agentView }](t, e.get(t, "/api/v1/agents", sup), http.StatusOK)
	if len(list.Agents) != 1 || list.Agents[0].State != string(dialer.AgentPaused) {
		t.Errorf("supervisor's view: %+v", list)
	}
	if got := state(e.send(t, "POST", "/api/v1/agent/logout", agent, map[string]any{})); got.State != string(dialer.AgentLoggedOut) {
		t.Errorf("after logout: %+v", got)
	}
	if list := decode[struct{ Agents []agentView }](t, e.get(t, "/api/v1/agents", sup), http.StatusOK); len(list.Agents) != 0 {
		t.Errorf("logged-out agent still listed: %+v", list)
	}
}
