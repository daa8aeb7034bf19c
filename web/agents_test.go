package web

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
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

// TestAgentCallbacksAreTheAgentsOwn: GET /api/v1/agent/callbacks lists the
// callbacks the agent's own dispositions set, soonest first, with the number in
// its national form; a callback another agent set is not in it, a contact
// without a callback neither, and the notes written with a disposition are
// kept with the attempt. Only agents may ask.
func TestAgentCallbacksAreTheAgentsOwn(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	c := e.createCampaign(t, "Callbacks")
	e.importCSV(t, c.ID, "phone,name\n+5511960000082,Ana\n+5511960000083,Bia\n+5511960000084,Caio\n+5511960000085,Davi\n")
	agent := e.users[storage.RoleAgent].ID
	other := storage.User{Username: "agent2", Role: storage.RoleAgent}
	if err := e.db.CreateUser(ctx, storage.Actor{Username: "test"}, &other); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	dispose := func(contactID string, by int64, code, notes string, at time.Time) storage.Attempt {
		t.Helper()
		id, _ := strconv.ParseInt(contactID, 10, 64)
		a, err := e.db.StartAttempt(ctx, id, campaigns.ChannelSIP, 0)
		if err != nil {
			t.Fatal(err)
		}
		a.State, a.Outcome, a.AgentID = "ended", string(campaigns.OutcomeConnected), by
		if err := e.db.UpdateAttempt(ctx, a); err != nil {
			t.Fatal(err)
		}
		var cb *storage.Callback
		if !at.IsZero() {
			cb = &storage.Callback{At: at}
		}
		if err := e.db.Dispose(ctx, a.ID, code, notes, cb); err != nil {
			t.Fatal(err)
		}
		return a
	}
	list := e.contacts(t, c.ID, "").Contacts
	byPhone := map[string]string{}
	for _, ct := range list {
		byPhone[ct.Phone] = ct.ID
	}
	later := dispose(byPhone["+5511960000082"], agent, "callback", "", now.Add(2*time.Hour))
	dispose(byPhone["+5511960000083"], agent, "callback", "", now.Add(time.Hour))
	dispose(byPhone["+5511960000084"], other.ID, "callback", "", now.Add(30*time.Minute))
	sale := dispose(byPhone["+5511960000085"], agent, "sale", "Quer o plano anual; ligar para a filha", time.Time{})

	type callbackView struct {
		ContactID    string    `json:"contact_id"`
		Name         string    `json:"name"`
		Phone        string    `json:"phone"`
		PhoneDisplay string    `json:"phone_display"`
		CampaignName string    `json:"campaign_name"`
		At           time.Time `json:"at"`
	}
	got := decode[struct{ Callbacks []callbackView }](t, e.get(t, "/api/v1/agent/callbacks", e.tokens[storage.RoleAgent]), http.StatusOK).Callbacks
	if len(got) != 2 || got[0].Name != "Bia" || got[1].Name != "Ana" || got[1].ContactID != strconv.FormatInt(later.ContactID, 10) {
		t.Fatalf("agent's callbacks %+v, want Bia then Ana", got)
	}
	if got[0].PhoneDisplay != "(11) 96000-0083" || got[0].Phone != "+5511960000083" || got[0].CampaignName != "Callbacks" ||
		got[0].At.Sub(now.Add(time.Hour)).Abs() > time.Second {
		t.Errorf("first callback %+v", got[0])
	}
	wantError(t, e.get(t, "/api/v1/agent/callbacks", e.tokens[storage.RoleSupervisor]), http.StatusForbidden, "forbidden")
	wantError(t, e.send(t, "POST", "/api/v1/agent/disposition", e.tokens[storage.RoleAgent], map[string]any{"code": "sale", "notes": strings.Repeat("é", 2001)}),
		http.StatusUnprocessableEntity, "notes_too_long")
	stored, err := e.db.GetAttempt(ctx, sale.ID)
	if err != nil || stored.Notes != "Quer o plano anual; ligar para a filha" || stored.Disposition != "sale" {
		t.Errorf("attempt with notes %+v (%v)", stored, err)
	}
}
