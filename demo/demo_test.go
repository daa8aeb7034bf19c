package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/internal/storetest"
	"github.com/turbina-dialer/turbina/storage"
)

func TestSpanSet(t *testing.T) {
	for _, tc := range []struct {
		in       string
		min, max time.Duration
		err      bool
	}{
		{in: "1s-2s", min: time.Second, max: 2 * time.Second},
		{in: "500ms", min: 500 * time.Millisecond, max: 500 * time.Millisecond},
		{in: " 1s - 3s ", min: time.Second, max: 3 * time.Second},
		{in: "2s-1s", err: true},
		{in: "soon", err: true},
		{in: "1s-later", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			s := Span{Min: 7, Max: 7}
			err := s.Set(tc.in)
			if tc.err {
				if err == nil {
					t.Fatalf("Set(%q) = nil, want an error", tc.in)
				}
				if s.Min != 7 || s.Max != 7 {
					t.Errorf("a refused value changed the span to %v", s)
				}
				return
			}
			if err != nil || s.Min != tc.min || s.Max != tc.max {
				t.Fatalf("Set(%q) = %v, %v; want %v-%v", tc.in, s, err, tc.min, tc.max)
			}
			var back Span
			if err := back.Set(s.String()); err != nil || back != s {
				t.Errorf("String %q does not read back: %v, %v", s.String(), back, err)
			}
		})
	}
}

func TestCheckLoopbackTrunk(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:5060", true},
		{"[::1]:5060", true},
		{"localhost:5080", true},
		{"192.0.2.10:5060", false},
		{"carrier.example:5060", false},
		{"127.0.0.1", false},
		{"127.0.0.1:0", false},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			if err := CheckLoopbackTrunk(tc.addr); (err == nil) != tc.ok {
				t.Errorf("CheckLoopbackTrunk(%q) = %v, want ok=%v", tc.addr, err, tc.ok)
			}
		})
	}
}

// TestSeedLoadsTheSampleAndKeepsThePreviousRun seeds a real SQLite file twice: the
// first run loads the sample campaign with its 300 contacts, users of every role
// and the simulated agents; once that campaign has run, the second seeds a fresh
// one and keeps the first, finished, under a dated name.
func TestSeedLoadsTheSampleAndKeepsThePreviousRun(t *testing.T) {
	ctx := context.Background()
	store := storetest.Open(t)
	now := time.Date(2026, 9, 7, 12, 0, 0, 0, time.UTC) // a national holiday in Brazil
	first, err := Seed(ctx, store, 3, SampleContacts, false, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.SimAgents) != 3 || len(first.Logins) != len(Roles()) {
		t.Fatalf("seeded %d simulated agents and %d logins", len(first.SimAgents), len(first.Logins))
	}
	for _, role := range Roles() {
		if l := first.Logins[role]; l.Token == "" || l.Password == "" || l.Username != "demo-"+string(role) {
			t.Errorf("login for %s: %+v", role, l)
		}
	}
	if c := first.Campaign; c.Name != CampaignName || len(c.Ladder) != 3 || c.Ladder[2].Template != templateName {
		t.Errorf("campaign: %q with ladder %+v", c.Name, c.Ladder)
	}
	// The demo dials whatever the day: 7 September is no holiday to it.
	if h := first.Campaign.Holidays.National; h == nil || *h {
		t.Errorf("national holidays %v, want them off", h)
	}
	contacts, err := AllContacts(ctx, store, first.Campaign.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(contacts) != 300 {
		t.Errorf("%d contacts, want the sample's 300", len(contacts))
	}
	agents, err := store.CampaignAgents(ctx, first.Campaign.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(agents) != 4 { // demo-agent and three simulated ones
		t.Errorf("%d agents assigned, want 4", len(agents))
	}

	if _, err := store.UpdateCampaign(ctx, storage.Actor{Username: "test"}, first.Campaign.ID, "campaign.start", func(c *campaigns.Campaign) error {
		c.State = campaigns.StateRunning
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	second, err := Seed(ctx, store, 3, SyntheticContacts(5), true, now)
	if err != nil {
		t.Fatal(err)
	}
	if second.Campaign.ID == first.Campaign.ID || len(second.Campaign.Ladder) != 1 {
		t.Fatalf("second run's campaign %d (ladder %d rungs), first %d", second.Campaign.ID, len(second.Campaign.Ladder), first.Campaign.ID)
	}
	if second.Logins[storage.RoleAdmin].Token == first.Logins[storage.RoleAdmin].Token {
		t.Error("the second run kept the first run's token")
	}
	old, err := store.GetCampaign(ctx, first.Campaign.ID)
	if err != nil {
		t.Fatal(err)
	}
	if old.State != campaigns.StateFinished || !strings.HasPrefix(old.Name, CampaignName+" (") {
		t.Errorf("previous campaign: %q in state %s, want it finished under a dated name", old.Name, old.State)
	}
	contacts, err = AllContacts(ctx, store, second.Campaign.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(contacts) != 5 {
		t.Errorf("%d synthetic contacts, want 5", len(contacts))
	}
}

// TestWorldControls starts the simulated carrier on loopback and uses the demo's
// cut-the-trunk control against it.
func TestWorldControls(t *testing.T) {
	ctx := context.Background()
	w, err := StartWorld(ctx, WorldOptions{NoWhatsApp: true, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	if w.WhatsApp() != nil {
		t.Error("NoWhatsApp world has a WhatsApp account")
	}
	if trunks := w.SIP().Trunks; len(trunks) != 1 || !strings.HasPrefix(trunks[0].Address, "127.0.0.1:") {
		t.Fatalf("SIP trunks %+v, want the simulated carrier on loopback", trunks)
	}
	srv := httptest.NewServer(w.Controls())
	t.Cleanup(srv.Close)
	post := func(body string, want int) map[string]any {
		t.Helper()
		resp, err := http.Post(srv.URL+"/demo/cut-trunk", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("POST %s: %d, want %d", body, resp.StatusCode, want)
		}
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return out
	}
	if _, cut := w.FirstCut(); cut {
		t.Fatal("cut before anyone cut it")
	}
	post(`{}`, http.StatusBadRequest)
	post(`not json`, http.StatusBadRequest)
	if st := post(`{"cut":true}`, http.StatusOK); st["cut"] != true {
		t.Errorf("after a cut: %v", st)
	}
	if _, cut := w.FirstCut(); !cut {
		t.Error("FirstCut does not see the cut")
	}
	if st := post(`{"cut":false}`, http.StatusOK); st["cut"] != false || len(st["events"].([]any)) != 2 {
		t.Errorf("after the restore: %v", st)
	}
	resp, err := http.Get(srv.URL + "/demo/nothing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown control: %d", resp.StatusCode)
	}
}

// TestWorldFollowRestoresTheCarrier: Follow cuts the carrier at its time and
// brings it back when the run ends.
func TestWorldFollowRestoresTheCarrier(t *testing.T) {
	w, err := StartWorld(context.Background(), WorldOptions{NoWhatsApp: true, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Follow(ctx, time.Now().Add(50*time.Millisecond)) }()
	deadline := time.Now().Add(5 * time.Second)
	for !w.carrier.IsCut() {
		if time.Now().After(deadline) {
			t.Fatal("the carrier was not cut")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if w.carrier.IsCut() {
		t.Error("the carrier is still cut after the run")
	}
}

func TestReportShape(t *testing.T) {
	cutAt := 10.0
	for _, tc := range []struct {
		name      string
		rep       Report
		wantTable []string
		wantJSON  []string
	}{
		{"without a cut", Report{DurationS: 30, Agents: 8, Occupancy: 0.5},
			[]string{"Turbina demo: 30 s, 8 simulated agents\n", "occupancy       50% (agents' talk and wrap-up time / logged-in time)", "whatsapp_template"},
			[]string{`"duration_s":30`, `"occupancy":0.5`, `"tma_s":`, `"tme_s":`, `"carrier":`}},
		{"with a cut", Report{DurationS: 30, TrunkCutAtS: &cutAt, AfterCut: map[string]storage.ChannelStats{"sip": {Attempts: 2}}},
			[]string{"carrier cut at 10 s", "attempts after cut"},
			[]string{`"trunk_cut_at_s":10`, `"after_cut":{"sip":{"attempts":2`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var table, js bytes.Buffer
			if err := tc.rep.WriteTable(&table); err != nil {
				t.Fatal(err)
			}
			if err := tc.rep.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.wantTable {
				if !strings.Contains(table.String(), s) {
					t.Errorf("table lacks %q:\n%s", s, table.String())
				}
			}
			for _, s := range tc.wantJSON {
				if !strings.Contains(js.String(), s) {
					t.Errorf("JSON lacks %s: %s", s, js.String())
				}
			}
			if tc.rep.AfterCut == nil && strings.Contains(js.String(), "after_cut") {
				t.Errorf("JSON without a cut names after_cut: %s", js.String())
			}
		})
	}
}
