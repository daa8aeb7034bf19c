package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/storage"
)

func TestCreateCampaign(t *testing.T) {
	e := newEnv(t, Config{})
	sales := e.tokens[storage.RoleSales]

	// The fixed call: name, default_country and caller_id; everything else defaults.
	r := e.send(t, "POST", "/api/v1/campaigns", sales,
		`{"name":"Black Friday","default_country":"br","caller_id":"(11) 3000-0000"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("%v: want 201", r)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	var id string
	if err := json.Unmarshal(raw["id"], &id); err != nil || !regexp.MustCompile(`^[1-9][0-9]*$`).MatchString(id) {
		t.Fatalf("id = %s, want a numeric string", raw["id"])
	}
	c := decode[campaignView](t, r, http.StatusCreated)
	if c.Name != "Black Friday" || c.DefaultCountry != "BR" || c.CallerID != "+551130000000" || c.State != "draft" {
		t.Errorf("created = %+v", c)
	}
	if c.Pacing != (pacingView{Mode: "predictive", TargetAbandon: 0.03, MaxRatio: 3, RingTimeout: "0s", MinRingTimeout: "0s"}) {
		t.Errorf("default pacing = %+v", c.Pacing)
	}
	if c.Window.Start != "09:00" || c.Window.End != "21:00" || c.Schedule.Timezone != "America/Sao_Paulo" {
		t.Errorf("default window/schedule = %+v %+v", c.Window, c.Schedule)
	}
	var channels []string
	for _, rung := range c.Ladder {
		channels = append(channels, rung.Channel)
	}
	if !slices.Equal(channels, []string{"sip", "whatsapp_call", "whatsapp_template"}) {
		t.Errorf("default ladder = %v", channels)
	}

	// GET returns what POST did.
	got := decode[campaignView](t, e.get(t, "/api/v1/campaigns/"+id, sales), http.StatusOK)
	if got.ID != id || got.Name != c.Name || got.CallerID != c.CallerID {
		t.Errorf("get = %+v, want %+v", got, c)
	}

	// Pacing given on create is kept, the ring settings as duration text (as
	// admin: sales may not set pacing).
	r = e.send(t, "POST", "/api/v1/campaigns", testAdminToken,
		`{"name":"Ring","caller_id":"+551130000000","pacing":{"mode":"progressive","ring_timeout":"20s","min_ring_timeout":18}}`)
	c = decode[campaignView](t, r, http.StatusCreated)
	want := pacingView{Mode: "progressive", TargetAbandon: 0.03, MaxRatio: 3, RingTimeout: "20s", MinRingTimeout: "18s"}
	if c.Pacing != want {
		t.Errorf("created pacing = %+v, want %+v", c.Pacing, want)
	}
	if got := decode[campaignView](t, e.get(t, "/api/v1/campaigns/"+c.ID, sales), http.StatusOK); got.Pacing != want {
		t.Errorf("GET pacing = %+v, want %+v", got.Pacing, want)
	}
}

func TestCampaignRequestErrors(t *testing.T) {
	e := newEnv(t, Config{MaxBodyBytes: 4 << 10})
	sales := e.tokens[storage.RoleSales]
	c := e.createCampaign(t, "Errors")
	big := `{"name":"` + strings.Repeat("x", 8<<10) + `","caller_id":"+551130000000"}`

	tests := []struct {
		name        string
		method      string
		path        string
		body        string
		contentType string
		chunked     bool
		status      int
		code        string
		fields      []string // for 422: the fields named
	}{
		{"malformed JSON", "POST", "/api/v1/campaigns", `{"name":`, "application/json", false, 400, "bad_request", nil},
		{"not an object", "POST", "/api/v1/campaigns", `["name"]`, "application/json", false, 400, "bad_request", nil},
		{"unknown field", "POST", "/api/v1/campaigns", `{"name":"x","caller_id":"+551130000000","nmae":"y"}`, "application/json", false, 400, "bad_request", nil},
		{"unknown nested field", "PATCH", "/api/v1/campaigns/" + c.ID, `{"pacing":{"ratio":2}}`, "application/json", false, 400, "bad_request", nil},
		{"state is not a setting", "PATCH", "/api/v1/campaigns/" + c.ID, `{"state":"running"}`, "application/json", false, 400, "bad_request", nil},
		{"two values", "POST", "/api/v1/campaigns", `{"name":"x","caller_id":"+551130000000"} {}`, "application/json", false, 400, "bad_request", nil},
		{"trailing bracket", "POST", "/api/v1/campaigns", `{"name":"x","caller_id":"+551130000000"}]`, "application/json", false, 400, "bad_request", nil},
		{"too large after the value", "POST", "/api/v1/campaigns", `{"name":"x","caller_id":"+551130000000"}` + strings.Repeat(" ", 8<<10), "application/json", true, 413, "body_too_large", nil},
		{"empty body", "POST", "/api/v1/campaigns", ``, "application/json", false, 400, "bad_request", nil},
		{"bad time of day", "POST", "/api/v1/campaigns", `{"name":"x","caller_id":"+551130000000","calling_window":{"start":"9am"}}`, "application/json", false, 400, "bad_request", nil},
		{"not JSON content", "POST", "/api/v1/campaigns", `{"name":"x","caller_id":"+551130000000"}`, "text/plain", false, 415, "unsupported_media_type", nil},
		{"too large, length known", "POST", "/api/v1/campaigns", big, "application/json", false, 413, "body_too_large", nil},
		{"too large, chunked", "POST", "/api/v1/campaigns", big, "application/json", true, 413, "body_too_large", nil},
		{"too large patch", "PATCH", "/api/v1/campaigns/" + c.ID, big, "application/json", true, 413, "body_too_large", nil},
		{"validation", "POST", "/api/v1/campaigns", `{"name":" ","default_country":"ZZ","caller_id":"12"}`, "application/json", false, 422, "validation_failed",
			[]string{"caller_id", "default_country", "name"}},
		{"missing caller_id", "POST", "/api/v1/campaigns", `{"name":"x"}`, "application/json", false, 422, "validation_failed", []string{"caller_id"}},
		{"bad ladder and pacing", "POST", "/api/v1/campaigns", `{"name":"x","caller_id":"+551130000000","ladder":[{"channel":"fax","max_attempts":0}],"pacing":{"mode":"turbo","target_abandon":0.5,"max_ratio":0.5,"ring_timeout":"3s","min_ring_timeout":"90s"}}`,
			"application/json", false, 422, "validation_failed",
			[]string{"ladder[0].channel", "ladder[0].max_attempts", "pacing.max_ratio", "pacing.min_ring_timeout", "pacing.mode", "pacing.ring_timeout", "pacing.target_abandon"}},
		{"bad schedule", "POST", "/api/v1/campaigns", `{"name":"x","caller_id":"+551130000000","schedule":{"timezone":"Mars/Olympus"},"calling_window":{"start":"10:00","end":"10:00"}}`,
			"application/json", false, 422, "validation_failed", []string{"calling_window", "schedule.timezone"}},
		{"patch validation", "PATCH", "/api/v1/campaigns/" + c.ID, `{"name":""}`, "application/json", false, 422, "validation_failed", []string{"name"}},
		{"unknown campaign", "PATCH", "/api/v1/campaigns/999999", `{"name":"y"}`, "application/json", false, 404, "not_found", nil},
		{"non-numeric id", "PATCH", "/api/v1/campaigns/abc", `{"name":"y"}`, "application/json", false, 404, "not_found", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// As admin: sales may not set pacing at all, and these are the errors every
			// allowed caller gets.
			r := e.do(t, request{method: tt.method, path: tt.path, token: testAdminToken, body: strings.NewReader(tt.body),
				contentType: tt.contentType, chunked: tt.chunked})
			got := wantError(t, r, tt.status, tt.code)
			if tt.fields != nil {
				names := slices.Sorted(func(yield func(string) bool) {
					for k := range got.Fields {
						if !yield(k) {
							return
						}
					}
				})
				if !slices.Equal(names, tt.fields) {
					t.Errorf("fields = %v, want %v", got.Fields, tt.fields)
				}
			}
		})
	}
	// Nothing was created or changed by the failed calls.
	list := decode[struct{ Campaigns []campaignView }](t, e.get(t, "/api/v1/campaigns", sales), http.StatusOK)
	if len(list.Campaigns) != 1 || list.Campaigns[0].Name != "Errors" {
		t.Errorf("campaigns after failed calls = %+v", list.Campaigns)
	}
}

func TestCampaignUpdateAndList(t *testing.T) {
	e := newEnv(t, Config{})
	sales, admin := e.tokens[storage.RoleSales], testAdminToken
	a := e.createCampaign(t, "A")
	b := e.createCampaign(t, "B")

	// Fields left out keep their value.
	got := decode[campaignView](t, e.send(t, "PATCH", "/api/v1/campaigns/"+a.ID, sales,
		map[string]any{"name": "A2", "calling_window": map[string]string{"end": "20:30"}}), http.StatusOK)
	if got.Name != "A2" || got.Window.Start != "09:00" || got.Window.End != "20:30" || got.CallerID != a.CallerID || len(got.Ladder) != 3 {
		t.Errorf("patched = %+v", got)
	}
	// An admin may change pacing through the campaign; sales may not (TestRolePolicy).
	got = decode[campaignView](t, e.send(t, "PATCH", "/api/v1/campaigns/"+a.ID, admin,
		map[string]any{"pacing": map[string]any{"mode": "progressive", "ring_timeout": "25s"}}), http.StatusOK)
	if got.Pacing.Mode != "progressive" || got.Pacing.MaxRatio != 3 || got.Pacing.RingTimeout != "25s" || got.Pacing.MinRingTimeout != "0s" {
		t.Errorf("pacing after patch = %+v", got.Pacing)
	}
	if again := decode[campaignView](t, e.get(t, "/api/v1/campaigns/"+a.ID, sales), http.StatusOK); again.Name != "A2" || again.Pacing.Mode != "progressive" || again.Pacing.RingTimeout != "25s" {
		t.Errorf("stored = %+v", again)
	}

	decode[campaignView](t, e.action(t, b.ID, "start", storage.RoleSupervisor), http.StatusOK)
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{"A2", "B"}},
		{"?state=draft", []string{"A2"}},
		{"?state=running", []string{"B"}},
		{"?state=finished", []string{}},
	}
	for _, tt := range tests {
		t.Run("list"+tt.query, func(t *testing.T) {
			list := decode[struct{ Campaigns []campaignView }](t, e.get(t, "/api/v1/campaigns"+tt.query, sales), http.StatusOK)
			names := []string{}
			for _, c := range list.Campaigns {
				names = append(names, c.Name)
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("names = %v, want %v", names, tt.want)
			}
		})
	}
}

func TestCampaignLifecycle(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.createCampaign(t, "Lifecycle")
	const (
		sales = storage.RoleSales
		sup   = storage.RoleSupervisor
	)
	steps := []struct {
		action string
		role   storage.Role
		status int
		state  string // after a 200
	}{
		{"pause", sup, 409, ""},  // a draft is not running
		{"resume", sup, 409, ""}, // nor paused
		{"start", sup, 200, "running"},
		{"start", sup, 409, ""},
		{"resume", sup, 409, ""},
		{"pause", sup, 200, "paused"},
		{"pause", sup, 409, ""},
		{"resume", sup, 200, "running"},
		{"pause", storage.RoleAdmin, 200, "paused"},
		{"finish", storage.RoleAdmin, 200, "finished"},
		{"start", sup, 409, ""},
		{"resume", sup, 409, ""},
		{"finish", sup, 409, ""},
	}
	for i, st := range steps {
		r := e.action(t, c.ID, st.action, st.role)
		if st.status != http.StatusOK {
			wantError(t, r, st.status, "conflict")
			continue
		}
		got := decode[campaignView](t, r, http.StatusOK)
		if got.State != st.state || got.ID != c.ID || got.Name != c.Name {
			t.Fatalf("step %d %s: campaign = %+v, want state %s", i, st.action, got, st.state)
		}
		if stored := decode[campaignView](t, e.get(t, "/api/v1/campaigns/"+c.ID, e.tokens[sales]), http.StatusOK); stored.State != st.state {
			t.Fatalf("step %d: stored state %s, want %s", i, stored.State, st.state)
		}
	}
	// A finished campaign takes no more changes.
	wantError(t, e.send(t, "PATCH", "/api/v1/campaigns/"+c.ID, e.tokens[sales], map[string]string{"name": "late"}), 409, "conflict")
	wantError(t, e.send(t, "PATCH", "/api/v1/campaigns/"+c.ID+"/pacing", e.tokens[sup], map[string]any{"max_ratio": 2}), 409, "conflict")
	wantError(t, e.upload(t, "/api/v1/campaigns/"+c.ID+"/contacts", e.tokens[sales], "phone\n+5511987654321\n"), 409, "conflict")

	for _, action := range []string{"start", "pause", "resume", "finish"} {
		wantError(t, e.action(t, "999999", action, storage.RoleAdmin), 404, "not_found")
		wantError(t, e.action(t, "x1", action, storage.RoleAdmin), 404, "not_found")
	}
}

func TestStartNeedsCompleteLadder(t *testing.T) {
	e := newEnv(t, Config{})
	// The default ladder's template rung has no template yet: fine for a draft,
	// not for dialling.
	c := decode[campaignView](t, e.send(t, "POST", "/api/v1/campaigns", e.tokens[storage.RoleSales],
		map[string]string{"name": "Draft", "caller_id": "+551130000000"}), http.StatusCreated)
	got := wantError(t, e.action(t, c.ID, "start", storage.RoleSupervisor), 422, "validation_failed")
	if got.Fields["ladder[2].template"] == "" || got.Fields["ladder[2].language"] == "" {
		t.Errorf("fields = %v, want ladder[2].template and .language", got.Fields)
	}
	if stored := decode[campaignView](t, e.get(t, "/api/v1/campaigns/"+c.ID, testAdminToken), http.StatusOK); stored.State != "draft" {
		t.Errorf("state after refused start = %s", stored.State)
	}
	decode[campaignView](t, e.send(t, "PATCH", "/api/v1/campaigns/"+c.ID, e.tokens[storage.RoleSales],
		map[string]any{"ladder": startableLadder}), http.StatusOK)
	if got := decode[campaignView](t, e.action(t, c.ID, "start", storage.RoleSupervisor), http.StatusOK); got.State != "running" {
		t.Errorf("state = %s, want running", got.State)
	}
}

// recordAttempt stores an ended busy SIP attempt on a contact, as the engine would.
func (e *apiEnv) recordAttempt(t *testing.T, contactID string) int64 {
	t.Helper()
	ctx := context.Background()
	a, err := e.db.StartAttempt(ctx, mustID(t, contactID), campaigns.ChannelSIP, 0)
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now()
	a.State, a.Outcome, a.EndAt = "ended", string(campaigns.OutcomeBusy), &end
	if err := e.db.UpdateAttempt(ctx, a); err != nil {
		t.Fatal(err)
	}
	return a.ID
}

// TestDeleteCampaign: DELETE archives. The campaign leaves the lists and takes no
// more changes, but its contacts and attempts stay readable for reports.
func TestDeleteCampaign(t *testing.T) {
	e := newEnv(t, Config{})
	sup := e.tokens[storage.RoleSupervisor]
	c := e.createCampaign(t, "Doomed")
	e.importCSV(t, c.ID, "phone\n+5511987654321\n")
	contact := e.contacts(t, c.ID, "").Contacts[0]
	attemptID := e.recordAttempt(t, contact.ID)

	decode[campaignView](t, e.action(t, c.ID, "start", storage.RoleSupervisor), http.StatusOK)
	wantError(t, e.do(t, request{method: "DELETE", path: "/api/v1/campaigns/" + c.ID, token: sup}), 409, "conflict")
	decode[campaignView](t, e.action(t, c.ID, "pause", storage.RoleSupervisor), http.StatusOK)
	wantError(t, e.do(t, request{method: "DELETE", path: "/api/v1/campaigns/" + c.ID, token: sup}), 409, "conflict")
	decode[campaignView](t, e.action(t, c.ID, "finish", storage.RoleSupervisor), http.StatusOK)

	r := e.do(t, request{method: "DELETE", path: "/api/v1/campaigns/" + c.ID, token: sup})
	if r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("%v: want 204 without body", r)
	}
	// Out of the lists, also the engine's (which reads the same list).
	list := decode[struct{ Campaigns []campaignView }](t, e.get(t, "/api/v1/campaigns", sup), http.StatusOK)
	if len(list.Campaigns) != 0 {
		t.Errorf("archived campaign still listed: %+v", list.Campaigns)
	}
	// Readable by id, with its contacts and attempts.
	got := decode[map[string]any](t, e.get(t, "/api/v1/campaigns/"+c.ID, sup), http.StatusOK)
	if got["archived_at"] == nil || got["state"] != "finished" {
		t.Errorf("archived campaign = %v, want archived_at and state finished", got)
	}
	decode[contactView](t, e.get(t, "/api/v1/contacts/"+contact.ID, sup), http.StatusOK)
	attempts := decode[struct {
		Attempts []struct {
			ID string `json:"id"`
		} `json:"attempts"`
	}](t, e.get(t, "/api/v1/contacts/"+contact.ID+"/attempts", sup), http.StatusOK)
	if len(attempts.Attempts) != 1 || attempts.Attempts[0].ID != fmt.Sprint(attemptID) {
		t.Errorf("attempts after archive = %+v, want attempt %d", attempts.Attempts, attemptID)
	}
	// Closed to changes, and not archived twice.
	wantError(t, e.send(t, "PATCH", "/api/v1/campaigns/"+c.ID, testAdminToken, map[string]string{"name": "late"}), 409, "conflict")
	wantError(t, e.action(t, c.ID, "start", storage.RoleAdmin), 409, "conflict")
	wantError(t, e.do(t, request{method: "DELETE", path: "/api/v1/campaigns/" + c.ID, token: sup}), 409, "conflict")
	wantError(t, e.do(t, request{method: "DELETE", path: "/api/v1/campaigns/999999", token: sup}), 404, "not_found")

	// A draft is archived at once, and then cannot be started or filled.
	d := e.createCampaign(t, "Draft")
	if r := e.do(t, request{method: "DELETE", path: "/api/v1/campaigns/" + d.ID, token: testAdminToken}); r.status != http.StatusNoContent {
		t.Fatalf("%v: want 204", r)
	}
	wantError(t, e.action(t, d.ID, "start", storage.RoleSupervisor), 409, "conflict")
	wantError(t, e.upload(t, "/api/v1/campaigns/"+d.ID+"/contacts", e.tokens[storage.RoleSales], "phone\n+5511987654322\n"), 409, "conflict")
}

func TestPacing(t *testing.T) {
	e := newEnv(t, Config{})
	sup := e.tokens[storage.RoleSupervisor]
	c := e.createCampaign(t, "Pacing")
	decode[campaignView](t, e.action(t, c.ID, "start", storage.RoleSupervisor), http.StatusOK)
	path := "/api/v1/campaigns/" + c.ID + "/pacing"

	if got := decode[pacingView](t, e.get(t, path, e.tokens[storage.RoleSales]), http.StatusOK); got != c.Pacing {
		t.Errorf("GET pacing = %+v, want %+v", got, c.Pacing)
	}
	// Any subset; the answer is every setting now in force, also while running.
	steps := []struct {
		body string
		want pacingView
	}{
		{`{"mode":"predictive","target_abandon":0.02,"max_ratio":2.5}`, pacingView{"predictive", 0.02, 2.5, 0, "0s", "0s"}},
		{`{"max_ratio":4}`, pacingView{"predictive", 0.02, 4, 0, "0s", "0s"}},
		{`{"min_ring_timeout":"20s"}`, pacingView{"predictive", 0.02, 4, 0, "0s", "20s"}},
		{`{"ring_timeout":"30s"}`, pacingView{"predictive", 0.02, 4, 0, "30s", "20s"}},
		// A number is seconds, as everywhere a duration is read.
		{`{"ring_timeout":45,"min_ring_timeout":0}`, pacingView{"predictive", 0.02, 4, 0, "45s", "0s"}},
		{`{"mode":"progressive","max_in_flight":30}`, pacingView{"progressive", 0.02, 4, 30, "45s", "0s"}},
		{`{"ring_timeout":"0s"}`, pacingView{"progressive", 0.02, 4, 30, "0s", "0s"}},
		{`{}`, pacingView{"progressive", 0.02, 4, 30, "0s", "0s"}},
	}
	for _, st := range steps {
		r := e.send(t, "PATCH", path, sup, st.body)
		var raw map[string]any
		if err := json.Unmarshal(r.body, &raw); err != nil {
			t.Fatal(err)
		}
		if len(raw) != 6 {
			t.Errorf("%v: want the six pacing settings", r)
		}
		if got := decode[pacingView](t, r, http.StatusOK); got != st.want {
			t.Errorf("PATCH %s = %+v, want %+v", st.body, got, st.want)
		}
		if got := decode[pacingView](t, e.get(t, path, sup), http.StatusOK); got != st.want {
			t.Errorf("GET after PATCH %s = %+v, want %+v", st.body, got, st.want)
		}
	}

	errs := []struct {
		body   string
		status int
		code   string
		field  string
	}{
		{`{"target_abandon":0.5}`, 422, "validation_failed", "pacing.target_abandon"},
		{`{"max_ratio":0}`, 422, "validation_failed", "pacing.max_ratio"},
		{`{"mode":"turbo"}`, 422, "validation_failed", "pacing.mode"},
		{`{"max_in_flight":-1}`, 422, "validation_failed", "pacing.max_in_flight"},
		{`{"ring_timeout":"4s"}`, 422, "validation_failed", "pacing.ring_timeout"},
		{`{"ring_timeout":"121s"}`, 422, "validation_failed", "pacing.ring_timeout"},
		{`{"min_ring_timeout":"1s"}`, 422, "validation_failed", "pacing.min_ring_timeout"},
		{`{"min_ring_timeout":"2m"}`, 422, "validation_failed", "pacing.min_ring_timeout"},
		{`{"ring_timeout":"soon"}`, 400, "bad_request", ""},
		{`{"ratio":2}`, 400, "bad_request", ""},
		{`{"max_ratio":"2"}`, 400, "bad_request", ""},
	}
	for _, tt := range errs {
		got := wantError(t, e.send(t, "PATCH", path, sup, tt.body), tt.status, tt.code)
		if tt.field != "" && got.Fields[tt.field] == "" {
			t.Errorf("PATCH %s: fields = %v, want %s", tt.body, got.Fields, tt.field)
		}
	}
	if got := decode[pacingView](t, e.get(t, path, sup), http.StatusOK); got != steps[len(steps)-1].want {
		t.Errorf("pacing after refused changes = %+v", got)
	}
	wantError(t, e.send(t, "PATCH", "/api/v1/campaigns/999999/pacing", sup, `{}`), 404, "not_found")
	wantError(t, e.get(t, "/api/v1/campaigns/999999/pacing", sup), 404, "not_found")
}

// TestCampaignScript: a campaign's script is kept as sent and read back; one
// over the limit is refused beside its field.
func TestCampaignScript(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.createCampaign(t, "Script")
	const script = "Olá {{name}}, aqui é da Turbina. <b>Plano</b>: {{plano}}"
	got := decode[struct{ Script string }](t, e.send(t, "PATCH", "/api/v1/campaigns/"+c.ID, e.tokens[storage.RoleSales], map[string]any{"script": script}), http.StatusOK)
	if got.Script != script {
		t.Errorf("script after the update %q", got.Script)
	}
	if got := decode[struct{ Script string }](t, e.get(t, "/api/v1/campaigns/"+c.ID, e.tokens[storage.RoleSales]), http.StatusOK); got.Script != script {
		t.Errorf("script read back %q", got.Script)
	}
	refused := wantError(t, e.send(t, "PATCH", "/api/v1/campaigns/"+c.ID, e.tokens[storage.RoleSales], map[string]any{"script": strings.Repeat("a", campaigns.MaxScript+1)}),
		http.StatusUnprocessableEntity, "validation_failed")
	if !strings.Contains(refused.Message, "script") {
		t.Errorf("refusal %q does not name the script", refused.Message)
	}
}
