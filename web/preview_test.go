package web

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/storage"
)

func TestAgentPreviewAPI(t *testing.T) {
	ch := &holdChannel{}
	slot := &engineSlot{}
	e := newUIEnv(t, Config{Engine: slot})
	slot.set(runEngine(t, e, map[campaigns.Channel]channel.Channel{campaigns.ChannelSIP: ch}))
	runningCampaign(t, e, "Preview API", "preview", []map[string]any{{"channel": "sip", "max_attempts": 1, "retry_delay": "1h"}},
		"+5511987650001", "+5511987650002", "+5511987650003")
	agent := e.tokens[storage.RoleAgent]
	type offer struct {
		Contact     contactView
		SkipReasons []string  `json:"skip_reasons"`
		ExpiresAt   time.Time `json:"expires_at"`
	}
	if r := e.get(t, "/api/v1/agent/preview", agent); r.status != http.StatusNoContent {
		t.Fatalf("offer before login: %d %s", r.status, r.body)
	}
	wantError(t, e.get(t, "/api/v1/agent/preview", e.tokens[storage.RoleSupervisor]), http.StatusForbidden, "forbidden")
	decode[any](t, e.send(t, "POST", "/api/v1/agent/login", agent, map[string]any{}), http.StatusOK)
	decode[any](t, e.send(t, "POST", "/api/v1/agent/ready", agent, map[string]any{}), http.StatusOK)
	var o offer
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if r := e.get(t, "/api/v1/agent/preview", agent); r.status == http.StatusOK {
			o = decode[offer](t, r, http.StatusOK)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no offer for the ready agent")
		}
	}
	if o.Contact.ID == "" || !slices.Contains(o.SkipReasons, "not_now") || o.ExpiresAt.IsZero() {
		t.Errorf("offer %+v", o)
	}
	base := "/api/v1/agent/preview/" + o.Contact.ID
	// Bad skips name the field and change nothing.
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"reason": "bored"}, "reason"},
		{map[string]any{}, "reason"},
		{map[string]any{"reason": "other"}, "note"},
	} {
		got := wantError(t, e.send(t, "POST", base+"/skip", agent, tc.body), http.StatusUnprocessableEntity, "validation_failed")
		if !strings.HasPrefix(got.Message, tc.field+":") {
			t.Errorf("skip %v: %q does not name %s", tc.body, got.Message, tc.field)
		}
	}
	wantError(t, e.send(t, "POST", "/api/v1/agent/preview/999999/dial", agent, map[string]any{}), http.StatusConflict, "no_preview_offer")
	wantError(t, e.send(t, "POST", "/api/v1/agent/preview/abc/dial", agent, map[string]any{}), http.StatusNotFound, "not_found")
	if len(ch.placedTimes()) != 0 {
		t.Fatal("a call was placed")
	}
	if r := e.send(t, "POST", base+"/skip", agent, map[string]any{"reason": "not_now"}); r.status != http.StatusNoContent {
		t.Fatalf("skip: %d %s", r.status, r.body)
	}
	wantError(t, e.send(t, "POST", base+"/dial", agent, map[string]any{}), http.StatusConflict, "no_preview_offer")

	// The next contact, put on the do-not-call list: the dial is refused with the reason.
	var next offer
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if r := e.get(t, "/api/v1/agent/preview", agent); r.status == http.StatusOK {
			if next = decode[offer](t, r, http.StatusOK); next.Contact.ID != o.Contact.ID {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no next offer after the skip")
		}
	}
	decode[any](t, e.send(t, "POST", "/api/v1/dnc", e.tokens[storage.RoleSupervisor], map[string]any{"phones": []string{next.Contact.Phone}}), http.StatusOK)
	r := e.send(t, "POST", "/api/v1/agent/preview/"+next.Contact.ID+"/dial", agent, map[string]any{})
	refusal := decode[struct {
		Error struct {
			Code          string
			Reasons       []string
			NextAllowedAt *time.Time `json:"next_allowed_at"`
		}
	}](t, r, http.StatusConflict)
	if refusal.Error.Code != "policy_refused" || !slices.Equal(refusal.Error.Reasons, []string{"do_not_call"}) || refusal.Error.NextAllowedAt != nil {
		t.Errorf("refusal %+v", refusal)
	}

	// The third contact is dialled.
	var third offer
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if r := e.get(t, "/api/v1/agent/preview", agent); r.status == http.StatusOK {
			if third = decode[offer](t, r, http.StatusOK); third.Contact.ID != next.Contact.ID && third.Contact.ID != o.Contact.ID {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no third offer")
		}
	}
	placed := decode[struct {
		AttemptID string `json:"attempt_id"`
	}](t, e.send(t, "POST", "/api/v1/agent/preview/"+third.Contact.ID+"/dial", agent, map[string]any{}), http.StatusOK)
	if placed.AttemptID == "" {
		t.Errorf("dial: %+v", placed)
	}
	// The answer carries the attempt; its call leaves from the run a moment later.
	within(t, 5*time.Second, "the preview call placed", func() bool { return len(ch.placedTimes()) >= 1 })
	if n := len(ch.placedTimes()); n != 1 {
		t.Errorf("%d calls placed for one preview dial", n)
	}
	if a, _ := slot.get().Agents().Get(e.users[storage.RoleAgent].ID); a.State != dialer.AgentReserved {
		t.Errorf("agent %s while its preview call rings, want reserved", a.State)
	}
}
