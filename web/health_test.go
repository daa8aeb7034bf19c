package web

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/storage"
)

func TestHealthAndReadiness(t *testing.T) {
	e := newEnv(t, Config{Version: "1.2.3"})
	h := decode[map[string]string](t, e.get(t, "/healthz", ""), http.StatusOK)
	if h["status"] != "ok" || h["version"] != "1.2.3" {
		t.Errorf("healthz = %v", h)
	}
	// It names the node and the campaigns it runs (none: its engine is not running).
	if r := decode[map[string]any](t, e.get(t, "/readyz", ""), http.StatusOK); r["status"] != "ready" || r["node"] == "" || r["campaigns"] == nil {
		t.Errorf("readyz = %v", r)
	}
	// Without its database the server is alive but not ready.
	e.db.Close()
	wantError(t, e.get(t, "/readyz", ""), http.StatusServiceUnavailable, "not_ready")
	decode[map[string]string](t, e.get(t, "/healthz", ""), http.StatusOK)
}

// metricValue reads one sample from Prometheus text, or -1 when it is absent.
func metricValue(t *testing.T, text []byte, name string, labels string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name+"{"+labels+"}") + ` (\S+)$`)
	m := re.FindSubmatch(text)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatalf("%s{%s}: %v", name, labels, err)
	}
	return v
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, Config{})
	scrape := func(t *testing.T) []byte {
		t.Helper()
		r := e.get(t, "/metrics", "")
		if r.status != http.StatusOK || !bytes.HasPrefix([]byte(r.header.Get("Content-Type")), []byte("text/plain")) {
			t.Fatalf("%v: want 200 text/plain", r)
		}
		return r.body
	}
	before := scrape(t)
	if !bytes.Contains(before, []byte("# TYPE turbina_http_requests_total counter")) {
		t.Fatalf("metrics lack turbina_http_requests_total:\n%s", before)
	}
	healthz := metricValue(t, before, "turbina_http_requests_total", `code="200",route="/healthz"`)
	if healthz < 0 {
		healthz = 0
	}
	for range 3 {
		e.get(t, "/healthz", "")
	}
	e.createCampaign(t, "Counted")
	e.createCampaign(t, "Counted too")
	wantError(t, e.get(t, "/api/v1/campaigns/999999", testAdminToken), 404, "not_found")
	e.importCSV(t, e.createCampaign(t, "Imported").ID, "phone\n+5511987650001\nbad\n")

	after := scrape(t)
	tests := []struct {
		name, labels string
		want         float64
	}{
		{"turbina_http_requests_total", `code="200",route="/healthz"`, healthz + 3},
		{"turbina_http_requests_total", `code="201",route="/api/v1/campaigns"`, 3},
		{"turbina_http_requests_total", `code="404",route="/api/v1/campaigns/{id}"`, 1},
		{"turbina_http_requests_total", `code="200",route="/api/v1/campaigns/{id}/contacts"`, 1},
		{"turbina_import_rows_total", `result="imported"`, 1},
		{"turbina_import_rows_total", `result="rejected"`, 1},
		{"turbina_campaigns", `state="draft"`, 3},
		{"turbina_campaigns", `state="running"`, 0},
	}
	for _, tt := range tests {
		if got := metricValue(t, after, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s{%s} = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	if !bytes.Contains(after, []byte(`turbina_http_request_duration_seconds_bucket{route="/healthz"`)) {
		t.Error("no latency histogram for /healthz")
	}
}

func TestOpenAPIServed(t *testing.T) {
	e := newEnv(t, Config{})
	for _, role := range allTestRoles {
		r := e.get(t, "/api/v1/openapi.json", e.tokens[role])
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" || !bytes.Equal(r.body, openAPIDocument) {
			t.Fatalf("%s: %d %s, want the embedded document", role, r.status, r.header.Get("Content-Type"))
		}
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil || doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q (%v)", doc.OpenAPI, err)
	}
	wantError(t, e.get(t, "/api/v1/openapi.json", ""), 401, "unauthorized")
}

func TestUnknownRoutes(t *testing.T) {
	e := newEnv(t, Config{})
	tests := []struct{ method, path, token string }{
		{"GET", "/api/v1/nothing", testAdminToken},
		{"GET", "/api/v2/campaigns", testAdminToken},
		{"GET", "/nothing", ""},
		{"PUT", "/api/v1/campaigns", testAdminToken},
		{"POST", "/api/v1/campaigns/1/restart", testAdminToken},
		{"GET", "/api/v1/campaigns/abc", testAdminToken},
		{"GET", "/api/v1/campaigns/0", testAdminToken},
		{"GET", "/api/v1/campaigns/-1", testAdminToken},
		{"GET", "/api/v1/campaigns/999999", testAdminToken},
		{"GET", "/api/v1/campaigns/99999999999999999999", testAdminToken},
		{"GET", "/api/v1/campaigns/999999/stats", testAdminToken},
		{"GET", "/api/v1/contacts/1.5", testAdminToken},
		{"GET", "/api/v1/imports/0", testAdminToken},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			wantError(t, e.do(t, request{method: tt.method, path: tt.path, token: tt.token}), 404, "not_found")
		})
	}
}

func TestCampaignStats(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.createCampaign(t, "Stats")
	e.importCSV(t, c.ID, "phone\n+5511987650001\n+5511987650002\n")
	path := "/api/v1/campaigns/" + c.ID + "/stats"

	// The fixed shape, before any call.
	r := e.get(t, path, e.tokens[storage.RoleSupervisor])
	var raw map[string]any
	if err := json.Unmarshal(r.body, &raw); err != nil || r.status != http.StatusOK {
		t.Fatalf("%v: %v", r, err)
	}
	for _, k := range []string{"dials", "answered", "connected", "abandoned", "abandon_rate", "channels"} {
		if _, ok := raw[k].(float64); !ok && k != "channels" {
			t.Errorf("stats[%q] = %v, want a number", k, raw[k])
		}
	}
	channels, _ := raw["channels"].(map[string]any)
	for _, ch := range []string{"sip", "whatsapp_call", "whatsapp_template"} {
		m, _ := channels[ch].(map[string]any)
		if m["attempts"] != float64(0) || m["reached"] != float64(0) {
			t.Errorf("channels[%q] = %v, want attempts and reached at 0", ch, channels[ch])
		}
	}

	// Attempts as the engine stores them, written straight into the database file.
	db, err := sql.Open("sqlite3", "file:"+e.dbPath+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	contact := e.contacts(t, c.ID, "").Contacts[0].ID
	outcomes := map[string][]string{
		"sip":               {"connected", "connected", "abandoned", "no_answer", "busy", "channel_down"},
		"whatsapp_call":     {"connected", "rejected"},
		"whatsapp_template": {"delivered", "failed"},
	}
	now := time.Now().UnixMilli()
	for _, ch := range slices.Sorted(func(yield func(string) bool) {
		for k := range outcomes {
			if !yield(k) {
				return
			}
		}
	}) {
		for _, o := range outcomes[ch] {
			if _, err := db.ExecContext(context.Background(), `INSERT INTO attempts(contact_id, campaign_id, channel, rung, state, outcome, created_at)
				VALUES (?,?,?,0,'done',?,?)`, contact, c.ID, ch, o, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := decode[storage.CampaignStats](t, e.get(t, path, e.tokens[storage.RoleSales]), http.StatusOK)
	if got.Dials != 7 || got.Answered != 4 || got.Connected != 3 || got.Abandoned != 1 || got.AbandonRate != 0.25 {
		t.Errorf("stats = %+v, want 7 dials, 4 answered, 3 connected, 1 abandoned, rate 0.25", got)
	}
	wantChannels := map[string]storage.ChannelStats{"sip": {Attempts: 5, Reached: 3}, "whatsapp_call": {Attempts: 2, Reached: 1}, "whatsapp_template": {Attempts: 2, Reached: 1}}
	for ch, want := range wantChannels {
		if got.Channels[ch] != want {
			t.Errorf("channels[%s] = %+v, want %+v", ch, got.Channels[ch], want)
		}
	}
	if got.Contacts["pending"] != 2 {
		t.Errorf("contacts by status = %v", got.Contacts)
	}
}
