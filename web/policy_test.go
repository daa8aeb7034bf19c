package web

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/storage"
)

// recordingChannel records which contacts were dialled; every call goes
// unanswered at once.
type recordingChannel struct {
	mu     sync.Mutex
	dialed map[int64]int
}

type endedAttempt struct{ events chan channel.AttemptEvent }

func (l *endedAttempt) Events() <-chan channel.AttemptEvent { return l.events }
func (l *endedAttempt) Hangup(context.Context) error        { return nil }

func (c *recordingChannel) Place(ctx context.Context, req channel.PlaceRequest) (channel.Attempt, error) {
	c.mu.Lock()
	c.dialed[req.Contact.ID]++
	c.mu.Unlock()
	l := &endedAttempt{events: make(chan channel.AttemptEvent, 1)}
	l.events <- channel.AttemptEvent{Kind: channel.AttemptEnded, At: time.Now(), Outcome: campaigns.OutcomeNoAnswer}
	close(l.events)
	return l, nil
}

func (c *recordingChannel) times(id int64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dialed[id]
}

// policyView is the policy endpoint's answer.
type policyView struct {
	Allowed       bool       `json:"allowed"`
	Reasons       []string   `json:"reasons"`
	NextAllowedAt *time.Time `json:"next_allowed_at"`
	Zones         []string   `json:"zones"`
}

func (e *apiEnv) policy(t *testing.T, contactID, action string, at time.Time) policyView {
	t.Helper()
	q := url.Values{"action": {action}, "at": {at.Format(time.RFC3339)}}
	return decode[policyView](t, e.get(t, "/api/v1/contacts/"+contactID+"/policy?"+q.Encode(), e.tokens[storage.RoleSupervisor]), http.StatusOK)
}

// TestPolicyEndpointAgreesWithTheEngine sets up contacts at random (time zones,
// calls to their numbers in another campaign, abandons, do-not-call) and random
// instants on the engine's clock; the endpoint's answer for each contact at the
// instant must be what the engine does at it: dialled if and only if allowed.
func TestPolicyEndpointAgreesWithTheEngine(t *testing.T) {
	ch := &recordingChannel{dialed: map[int64]int{}}
	var clock atomic.Int64
	now := func() time.Time { return time.UnixMilli(clock.Load()).UTC() }
	slot := &engineSlot{}
	e := newEnv(t, Config{Engine: slot})
	slot.set(runEngine(t, e, map[campaigns.Channel]channel.Channel{campaigns.ChannelSIP: ch}, func(c *dialer.Config) { c.Now = now }))
	ctx := context.Background()
	// A second handle on the same file writes the other campaign's history with a
	// clock of its own.
	var seedAt atomic.Int64
	seed, err := storage.Open(ctx, e.dbPath, storage.Options{Now: func() time.Time { return time.UnixMilli(seedAt.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seed.Close() })
	other := campaigns.Campaign{Name: "other", CallerID: "+551130000000"}
	other.ApplyDefaults()
	if err := seed.CreateCampaign(ctx, storage.Actor{Username: "seed"}, &other); err != nil {
		t.Fatal(err)
	}

	rng := rand.New(rand.NewPCG(13, 7))
	zones := []string{"America/Sao_Paulo", "America/Manaus", "America/Noronha", "America/New_York", "Europe/Lisbon", "Asia/Tokyo", "UTC"}
	monday := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	const rounds, perRound = 3, 14
	var views []campaignView
	for r := range rounds {
		c := decode[campaignView](t, e.send(t, "POST", "/api/v1/campaigns", e.tokens[storage.RoleSales], map[string]any{
			"name": fmt.Sprintf("round %d", r), "default_country": "BR", "caller_id": "+551130000000",
			"ladder":         []map[string]any{{"channel": "sip", "max_attempts": 1, "retry_delay": "1h"}},
			"calling_window": map[string]string{"start": "09:00", "end": "21:00"},
			"schedule":       map[string]string{"timezone": "America/Sao_Paulo"},
		}), http.StatusCreated)
		decode[any](t, e.send(t, "PATCH", "/api/v1/campaigns/"+c.ID+"/pacing", e.tokens[storage.RoleSupervisor], map[string]any{"mode": "progressive"}), http.StatusOK)
		decode[any](t, e.send(t, "POST", "/api/v1/campaigns/"+c.ID+"/agents", e.tokens[storage.RoleSupervisor],
			map[string]any{"user_id": e.users[storage.RoleAgent].ID}), http.StatusOK)
		views = append(views, c)
	}
	agent := e.tokens[storage.RoleAgent]
	decode[any](t, e.send(t, "POST", "/api/v1/agent/login", agent, map[string]any{}), http.StatusOK)
	decode[any](t, e.send(t, "POST", "/api/v1/agent/ready", agent, map[string]any{}), http.StatusOK)

	allowed, refused := 0, 0
	for r, c := range views {
		at := monday.Add(time.Duration(rng.IntN(7*24*60)) * time.Minute)
		var csv strings.Builder
		csv.WriteString("phone,name,timezone\n")
		for i := range perRound {
			fmt.Fprintf(&csv, "+55119870%02d%03d,Cliente,%s\n", r, i, zones[rng.IntN(len(zones))])
		}
		e.importCSV(t, c.ID, csv.String())
		list := e.contacts(t, c.ID, "?limit=100")
		// The numbers' history in the other campaign.
		b, err := seed.BeginImport(ctx, storage.Actor{Username: "seed"}, other.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, ct := range list.Contacts {
			if _, err := b.Add(ctx, campaigns.Contact{Phone: ct.Phone, Timezone: "UTC"}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := b.Finish(ctx, nil); err != nil {
			t.Fatal(err)
		}
		seeded, _, err := seed.ListContacts(ctx, other.ID, storage.ContactFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, ct := range list.Contacts {
			var otherID int64
			for _, s := range seeded {
				if s.Phone == ct.Phone {
					otherID = s.ID
				}
			}
			calls := []time.Time{}
			for n := rng.IntN(5); n > 0; n-- {
				calls = append(calls, at.Add(-time.Duration(rng.Int64N(int64(7*24*time.Hour)))))
			}
			if rng.IntN(4) == 0 {
				calls = append(calls, at.Add(-time.Duration(rng.Int64N(int64(96*time.Hour)))))
			}
			for i, when := range calls {
				seedAt.Store(when.UnixMilli())
				a, err := seed.StartAttempt(ctx, otherID, campaigns.ChannelSIP, 0)
				if err != nil {
					t.Fatal(err)
				}
				a.State, a.Outcome = "ended", string(campaigns.OutcomeBusy)
				if i == len(calls)-1 && rng.IntN(2) == 0 {
					a.Outcome, a.AnswerAt = string(campaigns.OutcomeAbandoned), &when
				}
				if err := seed.FinishAttempt(ctx, a, backToPending); err != nil {
					t.Fatal(err)
				}
			}
			if rng.IntN(10) == 0 {
				if _, err := seed.AddDNC(ctx, storage.Actor{Username: "seed"}, 0, []string{ct.Phone}, "test"); err != nil {
					t.Fatal(err)
				}
			}
		}

		clock.Store(at.UnixMilli())
		want := map[string]policyView{}
		for _, ct := range list.Contacts {
			want[ct.ID] = e.policy(t, ct.ID, "sip_call", at)
		}
		decode[any](t, e.action(t, c.ID, "start", storage.RoleSupervisor), http.StatusOK)
		// Settled: every contact dialled, or no longer due at the instant.
		deadline := time.Now().Add(15 * time.Second)
		for {
			due, err := e.db.DueContacts(ctx, policyID(t, c.ID), []int{0}, at, 100)
			if err != nil {
				t.Fatal(err)
			}
			inProgress := e.contacts(t, c.ID, "?status=in_progress").Total
			if len(due) == 0 && inProgress == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d at %s: %d contacts still due, %d in progress", r, at, len(due), inProgress)
			}
			time.Sleep(50 * time.Millisecond)
		}
		decode[any](t, e.action(t, c.ID, "finish", storage.RoleSupervisor), http.StatusOK)
		for _, ct := range list.Contacts {
			p := want[ct.ID]
			dialled := ch.times(policyID(t, ct.ID))
			if p.Allowed != (dialled == 1) {
				t.Errorf("round %d at %s: contact %s (%v): endpoint says allowed=%v %v, engine dialled it %d times",
					r, at.Format(time.RFC3339), ct.Phone, p.Zones, p.Allowed, p.Reasons, dialled)
			}
			if p.Allowed {
				allowed++
				continue
			}
			refused++
			// A refused contact waits for the next allowed instant the endpoint gave.
			if p.NextAllowedAt != nil {
				pos, err := e.db.ContactPosition(ctx, policyID(t, ct.ID))
				if err != nil || !pos.NextAttemptAt.Equal(*p.NextAllowedAt) {
					t.Errorf("contact %s deferred to %v (%v), endpoint says %v", ct.Phone, pos.NextAttemptAt, err, p.NextAllowedAt)
				}
			}
		}
	}
	t.Logf("%d allowed, %d refused", allowed, refused)
	if allowed < 5 || refused < 5 {
		t.Fatalf("%d allowed and %d refused: the random cases test too little", allowed, refused)
	}
}

func policyID(t *testing.T, s string) int64 {
	t.Helper()
	var id int64
	if _, err := fmt.Sscan(s, &id); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestContactPolicyAPI: bad parameters are named, only supervisors and admins may
// ask, and a refused action answers with its reasons beside the error.
func TestContactPolicyAPI(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.createCampaign(t, "policy")
	e.importCSV(t, c.ID, "phone,name\n+5511987650001,Ana\n")
	ct := e.contacts(t, c.ID, "").Contacts[0]
	path := "/api/v1/contacts/" + ct.ID + "/policy"
	for _, tc := range []struct {
		query, field string
	}{{"?action=fax", "action"}, {"?action=whatsapp_permission_request", "action"}, {"?at=tomorrow", "at"}, {"?action=sip_call&at=2026-12-07", "at"}} {
		body := wantError(t, e.get(t, path+tc.query, e.tokens[storage.RoleSupervisor]), http.StatusBadRequest, "bad_request")
		if !strings.HasPrefix(body.Message, tc.field+":") {
			t.Errorf("%s: message %q does not name %s", tc.query, body.Message, tc.field)
		}
	}
	for _, role := range []storage.Role{storage.RoleAgent, storage.RoleSales} {
		wantError(t, e.get(t, path, e.tokens[role]), http.StatusForbidden, "forbidden")
	}
	p := decode[policyView](t, e.get(t, path, e.tokens[storage.RoleAdmin]), http.StatusOK)
	if p.Reasons == nil || p.Zones == nil || (p.Allowed && p.NextAllowedAt != nil) {
		t.Errorf("policy %+v", p)
	}
	// The number on the list: every action refused for good, and a text sent by
	// the API answers 409 with the reasons.
	decode[any](t, e.send(t, "POST", "/api/v1/dnc", e.tokens[storage.RoleSupervisor], map[string]any{"phones": []string{ct.Phone}}), http.StatusOK)
	for _, action := range []string{"sip_call", "whatsapp_call", "whatsapp_template", "whatsapp_text"} {
		p := e.policy(t, ct.ID, action, time.Now())
		if p.Allowed || !slices.Contains(p.Reasons, "do_not_call") || p.NextAllowedAt != nil {
			t.Errorf("%s on a do-not-call number: %+v", action, p)
		}
	}
}

// TestRefusedMessageAnswersWithReasons: the bug an outsider found, a template sent
// through the API to a do-not-call contact, is refused with 409 and its reasons.
func TestRefusedMessageAnswersWithReasons(t *testing.T) {
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	emu, client := startWhatsApp(t, log, nil)
	slot := &engineSlot{}
	e := newEnv(t, Config{Engine: slot})
	slot.set(runEngine(t, e, nil, func(c *dialer.Config) { c.WhatsApp = client }))
	c := e.createCampaign(t, "dnc")
	e.importCSV(t, c.ID, "phone,name\n+5511987650001,Ana\n")
	ct := e.contacts(t, c.ID, "").Contacts[0]
	decode[any](t, e.send(t, "POST", "/api/v1/dnc", e.tokens[storage.RoleSupervisor], map[string]any{"phones": []string{ct.Phone}}), http.StatusOK)
	r := e.send(t, "POST", "/api/v1/contacts/"+ct.ID+"/messages", e.tokens[storage.RoleSupervisor], map[string]any{"template": true})
	if r.status != http.StatusConflict {
		t.Fatalf("%v: want 409", r)
	}
	var body struct {
		Error         apiErrorBody `json:"error"`
		Reasons       []string     `json:"reasons"`
		NextAllowedAt *time.Time   `json:"next_allowed_at"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Error.Code != "policy_refused" || !slices.Contains(body.Reasons, "do_not_call") || body.NextAllowedAt != nil {
		t.Fatalf("%v", r)
	}
	if n := len(emu.Requests()); n != 0 {
		t.Errorf("%d requests reached WhatsApp", n)
	}
}

// backToPending puts the contact back where it was, pending, after a seeded attempt.
func backToPending(c campaigns.Contact, pos campaigns.Position) (campaigns.Position, error) {
	pos.Status = campaigns.ContactPending
	return pos, nil
}
