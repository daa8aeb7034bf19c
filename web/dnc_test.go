package web

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/turbina-dialer/turbina/storage"
)

type dncResult struct {
	Added    int `json:"added"`
	Rejected []struct {
		Phone  string `json:"phone"`
		Line   int    `json:"line"`
		Reason string `json:"reason"`
	} `json:"rejected"`
}

type dncList struct {
	Entries []struct {
		ID         string `json:"id"`
		Phone      string `json:"phone"`
		CampaignID string `json:"campaign_id"`
		Reason     string `json:"reason"`
	} `json:"entries"`
	Total int `json:"total"`
}

func (l dncList) phones() []string {
	out := []string{}
	for _, e := range l.Entries {
		out = append(out, e.Phone)
	}
	return out
}

func TestDoNotCall(t *testing.T) {
	e := newEnv(t, Config{})
	sales, sup := e.tokens[storage.RoleSales], e.tokens[storage.RoleSupervisor]
	a := e.createCampaign(t, "A")
	b := e.createCampaign(t, "B")

	// The global list, by JSON; national numbers are read as Brazilian.
	res := decode[dncResult](t, e.send(t, "POST", "/api/v1/dnc", sales,
		`{"phones":["+5511987650001","(11) 98765-0002","not a number"],"reason":"asked"}`), http.StatusOK)
	if res.Added != 2 || len(res.Rejected) != 1 || res.Rejected[0].Phone != "not a number" || res.Rejected[0].Reason != "invalid_number" {
		t.Errorf("global add = %+v", res)
	}
	// Adding again adds nothing new.
	if again := decode[dncResult](t, e.send(t, "POST", "/api/v1/dnc", sales, `{"phones":["+5511987650001"]}`), http.StatusOK); again.Added != 0 {
		t.Errorf("second add = %+v, want 0 added", again)
	}
	// Campaign lists: campaign_id as a string or as a number.
	decode[dncResult](t, e.send(t, "POST", "/api/v1/dnc", sup, `{"phones":["+5511987650003"],"campaign_id":"`+a.ID+`"}`), http.StatusOK)
	decode[dncResult](t, e.send(t, "POST", "/api/v1/dnc", sup, `{"phones":["+5511987650004"],"campaign_id":`+b.ID+`}`), http.StatusOK)

	// Imports reject what a list covers: the global list everywhere, a campaign's
	// list only in that campaign.
	file := "phone,name\n+5511987650001,G1\n+5511987650002,G2\n+5511987650003,A\n+5511987650004,B\n+5511987650005,ok\n"
	repA := e.importCSV(t, a.ID, file)
	if want := []string{"2:do_not_call", "3:do_not_call", "4:do_not_call"}; repA.Imported != 2 || !slices.Equal(repA.rejections(), want) {
		t.Errorf("import into A = %+v %v, want 2 imported and %v", repA, repA.rejections(), want)
	}
	repB := e.importCSV(t, b.ID, file)
	if want := []string{"2:do_not_call", "3:do_not_call", "5:do_not_call"}; repB.Imported != 2 || !slices.Equal(repB.rejections(), want) {
		t.Errorf("import into B = %+v %v, want 2 imported and %v", repB, repB.rejections(), want)
	}

	// Listing, newest first, per list.
	global := decode[dncList](t, e.get(t, "/api/v1/dnc", sales), http.StatusOK)
	if global.Total != 2 || !slices.Equal(global.phones(), []string{"+5511987650002", "+5511987650001"}) ||
		global.Entries[0].Reason != "asked" || global.Entries[0].CampaignID != "" {
		t.Errorf("global list = %+v", global)
	}
	listA := decode[dncList](t, e.get(t, "/api/v1/dnc?campaign_id="+a.ID, sales), http.StatusOK)
	if listA.Total != 1 || listA.Entries[0].Phone != "+5511987650003" || listA.Entries[0].CampaignID != a.ID {
		t.Errorf("list of A = %+v", listA)
	}
	if page := decode[dncList](t, e.get(t, "/api/v1/dnc?limit=1&offset=1", sales), http.StatusOK); page.Total != 2 ||
		!slices.Equal(page.phones(), []string{"+5511987650001"}) {
		t.Errorf("page = %+v", page)
	}

	// A number put on a list marks the campaign's pending contacts.
	decode[dncResult](t, e.send(t, "POST", "/api/v1/dnc", sales, `{"phones":["+5511987650005"],"campaign_id":"`+a.ID+`"}`), http.StatusOK)
	if l := e.contacts(t, a.ID, "?status=do_not_call"); !slices.Equal(l.phones(), []string{"+5511987650005"}) {
		t.Errorf("A's do_not_call contacts = %v", l.phones())
	}
	if l := e.contacts(t, b.ID, "?status=do_not_call"); l.Total != 0 {
		t.Errorf("B's do_not_call contacts = %v, want none", l.phones())
	}

	// Taking numbers off: then they import again.
	for _, path := range []string{"/api/v1/dnc/+5511987650001", "/api/v1/dnc/11987650003?campaign_id=" + a.ID} {
		if r := e.do(t, request{method: "DELETE", path: path, token: sup}); r.status != http.StatusNoContent {
			t.Fatalf("%v: want 204", r)
		}
		wantError(t, e.do(t, request{method: "DELETE", path: path, token: sup}), 404, "not_found")
	}
	if rep := e.importCSV(t, a.ID, file); rep.Imported != 2 || !slices.Equal(rep.rejections(), []string{"3:do_not_call", "5:already_in_campaign", "6:do_not_call"}) {
		t.Errorf("import after removal = %+v %v", rep, rep.rejections())
	}
}

func TestDoNotCallCSV(t *testing.T) {
	e := newEnv(t, Config{MaxImportBytes: 1 << 10})
	sales := e.tokens[storage.RoleSales]
	c := e.createCampaign(t, "CSV")

	file := "Telefone;Motivo\n11987650011;pediu\n+5511987650012;\nbad;x\n11987650011;again\n"
	r := e.do(t, request{method: "POST", path: "/api/v1/dnc?campaign_id=" + c.ID + "&reason=opt-out", token: sales,
		body: strings.NewReader(file), contentType: "text/csv"})
	res := decode[dncResult](t, r, http.StatusOK)
	// Repeats within the file are not problems; numbers that are not are, by line.
	if res.Added != 2 || len(res.Rejected) != 1 || res.Rejected[0].Line != 4 || res.Rejected[0].Reason != "invalid_number" {
		t.Errorf("CSV add = %+v", res)
	}
	list := decode[dncList](t, e.get(t, "/api/v1/dnc?campaign_id="+c.ID, sales), http.StatusOK)
	if list.Total != 2 || list.Entries[0].Reason != "opt-out" {
		t.Errorf("list = %+v", list)
	}
	if rep := e.importCSV(t, c.ID, "phone\n+5511987650011\n+5511987650012\n+5511987650013\n"); rep.Imported != 1 ||
		!slices.Equal(rep.rejections(), []string{"2:do_not_call", "3:do_not_call"}) {
		t.Errorf("import = %+v %v", rep, rep.rejections())
	}

	// The global list takes a country for national numbers.
	us := decode[dncResult](t, e.do(t, request{method: "POST", path: "/api/v1/dnc?country=us", token: sales,
		body: strings.NewReader("phone\n(650) 253-0000\n"), contentType: "text/csv"}), http.StatusOK)
	if us.Added != 1 {
		t.Errorf("US add = %+v", us)
	}
	if g := decode[dncList](t, e.get(t, "/api/v1/dnc", sales), http.StatusOK); !slices.Equal(g.phones(), []string{"+16502530000"}) {
		t.Errorf("global list = %v", g.phones())
	}
}

func TestDoNotCallErrors(t *testing.T) {
	e := newEnv(t, Config{MaxBodyBytes: 1 << 10, MaxImportBytes: 1 << 10})
	sales, sup := e.tokens[storage.RoleSales], e.tokens[storage.RoleSupervisor]
	c := e.createCampaign(t, "Errors")
	bigJSON := `{"phones":["` + strings.Repeat("1", 2<<10) + `"]}`
	bigCSV := "phone\n" + strings.Repeat("+5511987650001\n", 200)

	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		chunked     bool
		status      int
		code        string
	}{
		{"no phones", "POST", "/api/v1/dnc", "application/json", `{"phones":[]}`, false, 422, "validation_failed"},
		{"unknown campaign", "POST", "/api/v1/dnc", "application/json", `{"phones":["+5511987650001"],"campaign_id":"999999"}`, false, 422, "validation_failed"},
		{"campaign id not an id", "POST", "/api/v1/dnc", "application/json", `{"phones":["+5511987650001"],"campaign_id":"abc"}`, false, 400, "bad_request"},
		{"unknown field", "POST", "/api/v1/dnc", "application/json", `{"phone":["+5511987650001"]}`, false, 400, "bad_request"},
		{"malformed JSON", "POST", "/api/v1/dnc", "application/json", `{"phones":`, false, 400, "bad_request"},
		{"JSON too large", "POST", "/api/v1/dnc", "application/json", bigJSON, false, 413, "body_too_large"},
		{"JSON too large, chunked", "POST", "/api/v1/dnc", "application/json", bigJSON, true, 413, "body_too_large"},
		{"CSV too large", "POST", "/api/v1/dnc", "text/csv", bigCSV, false, 413, "body_too_large"},
		{"CSV too large, chunked", "POST", "/api/v1/dnc", "text/csv", bigCSV, true, 413, "body_too_large"},
		{"CSV without phone column", "POST", "/api/v1/dnc", "text/csv", "name\nAna\n", false, 422, "invalid_file"},
		{"not CSV or JSON", "POST", "/api/v1/dnc", "application/xml", "<phones/>", false, 415, "unsupported_media_type"},
		{"CSV for unknown campaign", "POST", "/api/v1/dnc?campaign_id=999999", "text/csv", "phone\n+5511987650001\n", false, 422, "validation_failed"},
		{"CSV bad campaign_id", "POST", "/api/v1/dnc?campaign_id=x", "text/csv", "phone\n+5511987650001\n", false, 400, "bad_request"},
		{"CSV unknown country", "POST", "/api/v1/dnc?country=XX", "text/csv", "phone\n+5511987650001\n", false, 400, "bad_request"},
		{"JSON unknown country", "POST", "/api/v1/dnc?country=XX", "application/json", `{"phones":["+5511987650001"]}`, false, 400, "bad_request"},
		{"list bad campaign_id", "GET", "/api/v1/dnc?campaign_id=-1", "", "", false, 400, "bad_request"},
		{"list bad limit", "GET", "/api/v1/dnc?limit=ten", "", "", false, 400, "bad_request"},
		{"list bad offset", "GET", "/api/v1/dnc?offset=-1", "", "", false, 400, "bad_request"},
		{"list unknown campaign", "GET", "/api/v1/dnc?campaign_id=999999", "", "", false, 422, "validation_failed"},
		{"remove not a number", "DELETE", "/api/v1/dnc/hello", "", "", false, 404, "not_found"},
		{"remove not listed", "DELETE", "/api/v1/dnc/+5511987650099", "", "", false, 404, "not_found"},
		{"remove from campaign's list, only global", "DELETE", "/api/v1/dnc/+5511987650077?campaign_id=" + c.ID, "", "", false, 404, "not_found"},
	}
	// One number on the global list, so that removing it from a campaign's list
	// is a 404 for the right reason.
	decode[dncResult](t, e.send(t, "POST", "/api/v1/dnc", sales, `{"phones":["+5511987650077"]}`), http.StatusOK)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body *strings.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			rq := request{method: tt.method, path: tt.path, token: sup, contentType: tt.contentType, chunked: tt.chunked}
			if body != nil {
				rq.body = body
			}
			wantError(t, e.do(t, rq), tt.status, tt.code)
		})
	}
	if g := decode[dncList](t, e.get(t, "/api/v1/dnc", sales), http.StatusOK); g.Total != 1 {
		t.Errorf("global list after refused calls = %v", g.phones())
	}
	if l := decode[dncList](t, e.get(t, "/api/v1/dnc?campaign_id="+c.ID, sales), http.StatusOK); l.Total != 0 {
		t.Errorf("campaign list after refused calls = %v", l.phones())
	}
}

// TestDoNotCallSearchAndRemovalReason: the list is searched by part of a number,
// however it is typed, and a removal's reason is kept in the audit log.
func TestDoNotCallSearchAndRemovalReason(t *testing.T) {
	e := newEnv(t, Config{})
	sales, sup := e.tokens[storage.RoleSales], e.tokens[storage.RoleSupervisor]
	decode[dncResult](t, e.send(t, "POST", "/api/v1/dnc", sales, map[string]any{
		"phones": []string{"+5511987650001", "+5511987650002", "+5521912340003"}, "reason": "pediu"}), http.StatusOK)
	tests := []struct {
		search string
		want   []string
	}{
		{"", []string{"+5521912340003", "+5511987650002", "+5511987650001"}},
		{"98765-0002", []string{"+5511987650002"}},
		{"(21)", []string{"+5521912340003"}},
		{"0000000", []string{}},
	}
	for _, tt := range tests {
		l := decode[dncList](t, e.get(t, "/api/v1/dnc?search="+url.QueryEscape(tt.search), sales), http.StatusOK)
		if !slices.Equal(l.phones(), tt.want) || l.Total != len(tt.want) {
			t.Errorf("search %q = %v (total %d), want %v", tt.search, l.phones(), l.Total, tt.want)
		}
	}
	r := e.do(t, request{method: "DELETE", path: "/api/v1/dnc/" + url.PathEscape("+5511987650002") + "?reason=" + url.QueryEscape("cliente pediu para voltar"), token: sup})
	if r.status != http.StatusNoContent {
		t.Fatalf("%v: want 204", r)
	}
	audit := decode[auditList](t, e.get(t, "/api/v1/audit?object_type=dnc", testAdminToken), http.StatusOK)
	if en := audit.Entries[0]; en.Action != "dnc.remove" || field(t, en.Before, "phone") != `"+5511987650002"` || field(t, en.After, "reason") != `"cliente pediu para voltar"` {
		t.Errorf("dnc.remove audit = %+v", en)
	}
}
