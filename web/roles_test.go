package web

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/turbina-dialer/turbina/storage"
)

// readmeRoles is who may call each operation, as the README's roles say: admin
// everything (but an agent's own session, which only an agent has); supervisors run
// campaigns (start, pause, resume, finish, delete, change, pacing), do-not-call,
// agents, audit, trunks and the wallboard; sales create campaigns, edit drafts and
// upload contacts, no pacing; agents their session and the campaigns they are
// assigned to (the handlers narrow the shared reads to those).
var readmeRoles = map[string]string{
	"GET /api/v1/openapi.json":                       "admin supervisor sales agent",
	"GET /api/v1/me":                                 "admin supervisor sales agent",
	"POST /api/v1/campaigns":                         "admin sales",
	"GET /api/v1/campaigns":                          "admin supervisor sales agent",
	"GET /api/v1/campaigns/{id}":                     "admin supervisor sales agent",
	"PATCH /api/v1/campaigns/{id}":                   "admin supervisor sales",
	"DELETE /api/v1/campaigns/{id}":                  "admin supervisor",
	"POST /api/v1/campaigns/{id}/start":              "admin supervisor",
	"POST /api/v1/campaigns/{id}/pause":              "admin supervisor",
	"POST /api/v1/campaigns/{id}/resume":             "admin supervisor",
	"POST /api/v1/campaigns/{id}/finish":             "admin supervisor",
	"GET /api/v1/campaigns/{id}/pacing":              "admin supervisor sales",
	"PATCH /api/v1/campaigns/{id}/pacing":            "admin supervisor",
	"GET /api/v1/campaigns/{id}/stats":               "admin supervisor sales",
	"POST /api/v1/campaigns/{id}/contacts":           "admin sales",
	"GET /api/v1/campaigns/{id}/contacts":            "admin supervisor sales agent",
	"GET /api/v1/campaigns/{id}/agents":              "admin supervisor",
	"POST /api/v1/campaigns/{id}/agents":             "admin supervisor",
	"DELETE /api/v1/campaigns/{id}/agents/{user_id}": "admin supervisor",
	"GET /api/v1/campaigns/{id}/compliance":          "admin supervisor",
	"GET /api/v1/campaigns/{id}/compliance.csv":      "admin supervisor",
	"PUT /api/v1/campaigns/{id}/safe_harbour":        "admin supervisor sales",
	"GET /api/v1/campaigns/{id}/safe_harbour":        "admin supervisor sales",
	"DELETE /api/v1/campaigns/{id}/safe_harbour":     "admin supervisor sales",
	"GET /api/v1/contacts/{id}":                      "admin supervisor sales agent",
	"GET /api/v1/contacts/{id}/attempts":             "admin supervisor sales agent",
	"GET /api/v1/contacts/{id}/policy":               "admin supervisor",
	"GET /api/v1/contacts/{id}/messages":             "admin supervisor sales agent",
	"POST /api/v1/contacts/{id}/messages":            "admin supervisor agent",
	"GET /api/v1/imports/{id}":                       "admin supervisor sales",
	"GET /api/v1/imports/{id}/rejections":            "admin supervisor sales",
	"POST /api/v1/dnc":                               "admin supervisor sales",
	"GET /api/v1/dnc":                                "admin supervisor sales",
	"DELETE /api/v1/dnc/{phone}":                     "admin supervisor",
	"POST /api/v1/users":                             "admin",
	"GET /api/v1/users":                              "admin",
	"GET /api/v1/users/{id}":                         "admin supervisor sales agent",
	"PATCH /api/v1/users/{id}":                       "admin",
	"POST /api/v1/users/{id}/tokens":                 "admin supervisor sales agent",
	"GET /api/v1/users/{id}/tokens":                  "admin supervisor sales agent",
	"DELETE /api/v1/tokens/{id}":                     "admin supervisor sales agent",
	"GET /api/v1/audit":                              "admin supervisor",
	"GET /api/v1/trunks":                             "admin supervisor",
	"PATCH /api/v1/trunks/{id}":                      "admin supervisor",
	"GET /api/v1/wallboard":                          "admin supervisor",
	"GET /api/v1/wallboard/stream":                   "admin supervisor",
	"GET /api/v1/whatsapp/templates":                 "admin supervisor sales",
	"GET /api/v1/whatsapp/quarantine":                "admin",
	"GET /api/v1/agents":                             "admin supervisor",
	"GET /api/v1/agent":                              "agent",
	"GET /api/v1/agent/events":                       "agent",
	"POST /api/v1/agent/login":                       "agent",
	"POST /api/v1/agent/ready":                       "agent",
	"POST /api/v1/agent/pause":                       "agent",
	"POST /api/v1/agent/logout":                      "agent",
	"POST /api/v1/agent/hangup":                      "agent",
	"POST /api/v1/agent/disposition":                 "agent",
	"GET /api/v1/agent/preview":                      "agent",
	"GET /api/v1/agent/callbacks":                    "agent",
	"POST /api/v1/agent/preview/{id}/dial":           "agent",
	"POST /api/v1/agent/preview/{id}/skip":           "agent",
}

// TestCampaignFieldRoles checks the field-level half of the role table over HTTP,
// on real campaigns in each state: what sales may not set or change is refused
// naming the field or the state, and nothing refused is stored.
func TestCampaignFieldRoles(t *testing.T) {
	e := newEnv(t, Config{})
	sales, sup := e.tokens[storage.RoleSales], e.tokens[storage.RoleSupervisor]
	draft := e.createCampaign(t, "Draft")
	running := e.createCampaign(t, "Running")
	decode[campaignView](t, e.action(t, running.ID, "start", storage.RoleSupervisor), http.StatusOK)
	paused := e.createCampaign(t, "Paused")
	decode[campaignView](t, e.action(t, paused.ID, "start", storage.RoleSupervisor), http.StatusOK)
	decode[campaignView](t, e.action(t, paused.ID, "pause", storage.RoleSupervisor), http.StatusOK)

	newCampaign := func(pacing map[string]any) map[string]any {
		c := map[string]any{"name": "New", "caller_id": "+551130000000", "ladder": startableLadder}
		if pacing != nil {
			c["pacing"] = pacing
		}
		return c
	}
	wideOpen := map[string]any{"calling_window": map[string]string{"start": "00:00", "end": "23:59"}}
	tests := []struct {
		name    string
		token   string
		method  string
		path    string
		body    any
		status  int
		mention []string // words the refusal must contain
	}{
		{"sales creates with pacing beyond the defaults", sales, "POST", "/api/v1/campaigns",
			newCampaign(map[string]any{"max_ratio": 10, "target_abandon": 0.2}), 403, []string{"pacing.max_ratio", "pacing.target_abandon"}},
		{"sales creates with one pacing setting", sales, "POST", "/api/v1/campaigns",
			newCampaign(map[string]any{"mode": "progressive"}), 403, []string{"pacing.mode"}},
		{"sales creates with the default pacing", sales, "POST", "/api/v1/campaigns",
			newCampaign(map[string]any{"mode": "predictive", "max_ratio": 3, "target_abandon": 0.03}), 201, nil},
		{"admin creates with pacing", testAdminToken, "POST", "/api/v1/campaigns",
			newCampaign(map[string]any{"max_ratio": 5}), 201, nil},
		{"sales edits a draft", sales, "PATCH", "/api/v1/campaigns/" + draft.ID, map[string]any{"name": "Draft 2"}, 200, nil},
		{"sales sets a draft's pacing", sales, "PATCH", "/api/v1/campaigns/" + draft.ID,
			map[string]any{"pacing": map[string]any{"max_ratio": 10}}, 403, []string{"pacing.max_ratio"}},
		{"sales opens a running campaign's window", sales, "PATCH", "/api/v1/campaigns/" + running.ID, wideOpen, 403, []string{"running"}},
		{"sales renames a paused campaign", sales, "PATCH", "/api/v1/campaigns/" + paused.ID, map[string]any{"name": "x"}, 403, []string{"paused"}},
		{"sales starts", sales, "POST", "/api/v1/campaigns/" + draft.ID + "/start", nil, 403, []string{"start"}},
		{"sales finishes", sales, "POST", "/api/v1/campaigns/" + running.ID + "/finish", nil, 403, []string{"finish"}},
		{"sales deletes", sales, "DELETE", "/api/v1/campaigns/" + draft.ID, nil, 403, []string{"DELETE"}},
		{"sales drops a running campaign's safe-harbour message", sales, "DELETE", "/api/v1/campaigns/" + running.ID + "/safe_harbour", nil, 403, []string{"running"}},
		{"supervisor changes a running campaign's window", sup, "PATCH", "/api/v1/campaigns/" + running.ID,
			map[string]any{"calling_window": map[string]string{"start": "10:00", "end": "20:00"}}, 200, nil},
		{"supervisor changes pacing through the campaign", sup, "PATCH", "/api/v1/campaigns/" + paused.ID,
			map[string]any{"pacing": map[string]any{"max_ratio": 2}}, 200, nil},
		{"supervisor drops a running campaign's safe-harbour message", sup, "DELETE", "/api/v1/campaigns/" + running.ID + "/safe_harbour", nil, 204, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := decode[struct{ Campaigns []campaignView }](t, e.get(t, "/api/v1/campaigns", testAdminToken), http.StatusOK)
			r := e.send(t, tt.method, tt.path, tt.token, tt.body)
			if tt.status != http.StatusForbidden {
				if r.status != tt.status {
					t.Fatalf("%v: want %d", r, tt.status)
				}
				return
			}
			got := wantError(t, r, http.StatusForbidden, "forbidden")
			for _, word := range tt.mention {
				if !strings.Contains(got.Message, word) {
					t.Errorf("message %q does not name %s", got.Message, word)
				}
			}
			after := decode[struct{ Campaigns []campaignView }](t, e.get(t, "/api/v1/campaigns", testAdminToken), http.StatusOK)
			if fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("a refused call changed the campaigns:\n%+v\nwas\n%+v", after, before)
			}
		})
	}
	got := decode[campaignView](t, e.get(t, "/api/v1/campaigns/"+running.ID, sup), http.StatusOK)
	if got.Window.Start != "10:00" || got.Window.End != "20:00" || got.State != "running" {
		t.Errorf("running campaign after the supervisor's change = %+v", got)
	}
}

// TestAgentReadsOnlyAssignedHistory: the contact reads open to every role that
// TestAgentSeesOnlyAssignedCampaigns does not cover (attempts, messages) give an
// agent its assigned campaigns' contacts and 403 for any other.
func TestAgentReadsOnlyAssignedHistory(t *testing.T) {
	e := newEnv(t, Config{})
	agent := e.tokens[storage.RoleAgent]
	mine, other := e.createCampaign(t, "Mine"), e.createCampaign(t, "Other")
	e.importCSV(t, mine.ID, "phone\n+5511987654321\n")
	e.importCSV(t, other.ID, "phone\n+5511987654322\n")
	decode[map[string]any](t, e.send(t, "POST", "/api/v1/campaigns/"+mine.ID+"/agents", e.tokens[storage.RoleSupervisor],
		map[string]any{"user_id": fmt.Sprint(e.users[storage.RoleAgent].ID)}), http.StatusOK)
	myContact := e.contacts(t, mine.ID, "").Contacts[0].ID
	otherContact := e.contacts(t, other.ID, "").Contacts[0].ID

	for _, tt := range []struct {
		path   string
		status int
	}{
		{"/api/v1/contacts/" + myContact + "/attempts", 200},
		{"/api/v1/contacts/" + myContact + "/messages", 200},
		{"/api/v1/contacts/" + otherContact + "/attempts", 403},
		{"/api/v1/contacts/" + otherContact + "/messages", 403},
	} {
		t.Run(tt.path, func(t *testing.T) {
			r := e.get(t, tt.path, agent)
			if tt.status == http.StatusForbidden {
				wantError(t, r, http.StatusForbidden, "forbidden")
			} else if r.status != tt.status {
				t.Errorf("%v: want %d", r, tt.status)
			}
		})
	}
}
