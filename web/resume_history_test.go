package web

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/storage"
)

// TestContactAttemptsLinkAResumedConversation: a contact's history, as the API
// lists it, shows the SIP call the trunk dropped (connected, hung up by the trunk)
// and the WhatsApp call that took it up, naming it in resumed_from; an agent not on
// the contact's campaign may not read it.
func TestContactAttemptsLinkAResumedConversation(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	c := e.createCampaign(t, "Resume")
	e.importCSV(t, c.ID, "phone\n+5511987650001\n")
	contact := e.contacts(t, c.ID, "").Contacts[0]
	id, err := strconv.ParseInt(contact.ID, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	sip, err := e.db.StartAttempt(ctx, id, campaigns.ChannelSIP, 0)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sip.State, sip.Outcome, sip.HangupBy, sip.ConnectAt, sip.EndAt = "ended", string(campaigns.OutcomeConnected), "trunk", &now, &now
	if err := e.db.FinishAttempt(ctx, sip, nil); err != nil {
		t.Fatal(err)
	}
	wa, err := e.db.StartResumeAttempt(ctx, sip, campaigns.ChannelWhatsAppCall, 1)
	if err != nil {
		t.Fatal(err)
	}
	wa.State, wa.Outcome, wa.EndAt = "ended", string(campaigns.OutcomeResumed), &now
	if err := e.db.FinishAttempt(ctx, wa, nil); err != nil {
		t.Fatal(err)
	}

	path := "/api/v1/contacts/" + contact.ID + "/attempts"
	wantError(t, e.get(t, path, e.tokens[storage.RoleAgent]), http.StatusForbidden, "forbidden")
	wantError(t, e.get(t, "/api/v1/contacts/999999/attempts", e.tokens[storage.RoleSales]), http.StatusNotFound, "not_found")
	got := decode[struct {
		Attempts []struct {
			ID          string `json:"id"`
			Channel     string `json:"channel"`
			Outcome     string `json:"outcome"`
			HangupBy    string `json:"hangup_by"`
			ResumedFrom string `json:"resumed_from"`
		} `json:"attempts"`
	}](t, e.get(t, path, e.tokens[storage.RoleSupervisor]), http.StatusOK)
	if len(got.Attempts) != 2 {
		t.Fatalf("attempts %+v", got.Attempts)
	}
	first, second := got.Attempts[0], got.Attempts[1]
	if first.Channel != "sip" || first.Outcome != "connected" || first.HangupBy != "trunk" || first.ResumedFrom != "" {
		t.Errorf("SIP attempt %+v", first)
	}
	if second.Channel != "whatsapp_call" || second.Outcome != "resumed" || second.ResumedFrom != first.ID {
		t.Errorf("WhatsApp attempt %+v: want resumed from %s", second, first.ID)
	}
}
