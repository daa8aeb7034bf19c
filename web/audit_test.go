package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/turbina-dialer/turbina/storage"
)

type auditView struct {
	ID         string          `json:"id"`
	UserID     string          `json:"user_id"`
	Username   string          `json:"username"`
	Action     string          `json:"action"`
	ObjectType string          `json:"object_type"`
	ObjectID   string          `json:"object_id"`
	Before     json.RawMessage `json:"before"`
	After      json.RawMessage `json:"after"`
}

type auditList struct {
	Entries []auditView `json:"entries"`
	Total   int         `json:"total"`
}

func (l auditList) actions() []string {
	out := []string{}
	for _, e := range l.Entries {
		out = append(out, e.Action)
	}
	return out
}

// field reads one value of an audit snapshot by JSON path, as JSON text.
func field(t *testing.T, raw json.RawMessage, path ...string) string {
	t.Helper()
	var v any
	if len(raw) == 0 {
		return ""
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("audit snapshot %s: %v", raw, err)
	}
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[p]
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestAuditLog(t *testing.T) {
	e := newEnv(t, Config{})
	sales, sup := e.tokens[storage.RoleSales], e.tokens[storage.RoleSupervisor]
	salesUser, supUser := e.users[storage.RoleSales], e.users[storage.RoleSupervisor]

	c := e.createCampaign(t, "Audit")
	decode[campaignView](t, e.send(t, "PATCH", "/api/v1/campaigns/"+c.ID, sales, map[string]string{"name": "Audited"}), http.StatusOK)
	decode[pacingView](t, e.send(t, "PATCH", "/api/v1/campaigns/"+c.ID+"/pacing", sup, map[string]any{"max_ratio": 2}), http.StatusOK)
	decode[campaignView](t, e.action(t, c.ID, "start", storage.RoleSupervisor), http.StatusOK)
	rep := e.importCSV(t, c.ID, "phone\n+5511987650001\n+5511987650002\nbad\n")
	decode[dncResult](t, e.send(t, "POST", "/api/v1/dnc", sales, `{"phones":["+5511987650009"],"campaign_id":"`+c.ID+`"}`), http.StatusOK)
	decode[dncResult](t, e.send(t, "POST", "/api/v1/dnc", sup, `{"phones":["+5511987650008"],"reason":"law"}`), http.StatusOK)
	if r := e.do(t, request{method: "DELETE", path: "/api/v1/dnc/+5511987650008", token: sup}); r.status != http.StatusNoContent {
		t.Fatalf("%v", r)
	}
	// Refused changes leave no trace.
	wantError(t, e.action(t, c.ID, "start", storage.RoleSupervisor), 409, "conflict")
	wantError(t, e.send(t, "PATCH", "/api/v1/campaigns/"+c.ID+"/pacing", sup, map[string]any{"max_ratio": 99}), 422, "validation_failed")

	camp := decode[auditList](t, e.get(t, "/api/v1/audit?object_type=campaign&object_id="+c.ID, sup), http.StatusOK)
	wantActions := []string{"contacts.import", "campaign.start", "campaign.pacing", "campaign.update", "campaign.create"}
	if !slices.Equal(camp.actions(), wantActions) || camp.Total != len(wantActions) {
		t.Fatalf("campaign audit = %v (total %d), want %v", camp.actions(), camp.Total, wantActions)
	}
	who := []string{"sales1", "supervisor1", "supervisor1", "sales1", "sales1"}
	for i, en := range camp.Entries {
		wantID := salesUser.ID
		if who[i] == "supervisor1" {
			wantID = supUser.ID
		}
		if en.Username != who[i] || en.UserID != fmt.Sprint(wantID) || en.ObjectType != "campaign" || en.ObjectID != c.ID {
			t.Errorf("entry %d = %+v, want by %s", i, en, who[i])
		}
	}
	checks := []struct {
		entry        int
		path         []string
		before, want string
	}{
		{0, []string{"imported"}, "", "2"},
		{0, []string{"rejected"}, "", "1"},
		{0, []string{"import_id"}, "", `"` + rep.ImportID + `"`},
		{1, []string{"state"}, `"draft"`, `"running"`},
		{2, []string{"pacing", "max_ratio"}, "3", "2"},
		{3, []string{"name"}, `"Audit"`, `"Audited"`},
		{4, []string{"name"}, "", `"Audit"`},
	}
	for _, ck := range checks {
		en := camp.Entries[ck.entry]
		if got := field(t, en.Before, ck.path...); got != ck.before && !(ck.before == "" && (got == "" || got == "null")) {
			t.Errorf("%s before %v = %s, want %s", en.Action, ck.path, got, ck.before)
		}
		if got := field(t, en.After, ck.path...); got != ck.want {
			t.Errorf("%s after %v = %s, want %s", en.Action, ck.path, got, ck.want)
		}
	}

	dnc := decode[auditList](t, e.get(t, "/api/v1/audit?object_type=dnc", testAdminToken), http.StatusOK)
	if want := []string{"dnc.remove", "dnc.add", "dnc.add"}; !slices.Equal(dnc.actions(), want) {
		t.Fatalf("dnc audit = %v, want %v", dnc.actions(), want)
	}
	if en := dnc.Entries[0]; en.ObjectID != "global" || en.Username != "supervisor1" || field(t, en.Before, "phone") != `"+5511987650008"` {
		t.Errorf("dnc.remove = %+v", en)
	}
	if en := dnc.Entries[1]; en.ObjectID != "global" || field(t, en.After, "phones") != `["+5511987650008"]` || field(t, en.After, "reason") != `"law"` {
		t.Errorf("global dnc.add = %+v", en)
	}
	if en := dnc.Entries[2]; en.ObjectID != c.ID || en.Username != "sales1" || field(t, en.After, "phones") != `["+5511987650009"]` {
		t.Errorf("campaign dnc.add = %+v", en)
	}

	// By user, paged.
	bySup := decode[auditList](t, e.get(t, fmt.Sprintf("/api/v1/audit?user_id=%d", supUser.ID), sup), http.StatusOK)
	if want := []string{"dnc.remove", "dnc.add", "campaign.start", "campaign.pacing"}; !slices.Equal(bySup.actions(), want) {
		t.Errorf("supervisor's changes = %v, want %v", bySup.actions(), want)
	}
	page := decode[auditList](t, e.get(t, fmt.Sprintf("/api/v1/audit?user_id=%d&limit=1&offset=1", supUser.ID), sup), http.StatusOK)
	if !slices.Equal(page.actions(), []string{"dnc.add"}) || page.Total != 4 {
		t.Errorf("page = %v total %d", page.actions(), page.Total)
	}
	// Users and tokens made at setup are there too.
	users := decode[auditList](t, e.get(t, "/api/v1/audit?object_type=user&limit=1000", sup), http.StatusOK)
	if n := users.Total; n != 8 { // the admin and three users, each with a token
		t.Errorf("user entries = %d %v, want 8", n, users.actions())
	}
	if none := decode[auditList](t, e.get(t, "/api/v1/audit?object_type=nothing", sup), http.StatusOK); none.Entries == nil || len(none.Entries) != 0 {
		t.Errorf("empty audit = %+v, want entries []", none)
	}

	for _, q := range []string{"?user_id=x", "?user_id=0", "?limit=x", "?offset=-3"} {
		wantError(t, e.get(t, "/api/v1/audit"+q, sup), 400, "bad_request")
	}
}
