package storage

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// TestResumedConversationCountsOnce: a SIP call the trunk dropped mid-conversation
// (connected) and the WhatsApp call that took it up (resumed, linked to it) are one
// conversation in the campaign's figures: one dial answered and connected per
// conversation, none abandoned, and the WhatsApp call reaches nobody a second time.
// A resume of a contact that does not exist is refused, naming it.
func TestResumedConversationCountsOnce(t *testing.T) {
	eachBackend(t, testResumedConversationCountsOnce)
}

func testResumedConversationCountsOnce(t *testing.T, be backend) {
	d, _ := be.open(t, Options{})
	ctx := context.Background()
	c := newCampaign(t, d)
	id := importContacts(t, d, c, "+5511987650001")[0]
	sip, err := d.StartAttempt(ctx, id, campaigns.ChannelSIP, 0)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sip.State, sip.Outcome, sip.HangupBy, sip.AnswerAt, sip.ConnectAt, sip.EndAt = "ended", string(campaigns.OutcomeConnected), "trunk", &now, &now, &now
	if err := d.FinishAttempt(ctx, sip, nil); err != nil {
		t.Fatal(err)
	}
	wa, err := d.StartResumeAttempt(ctx, sip, campaigns.ChannelWhatsAppCall, 1)
	if err != nil {
		t.Fatal(err)
	}
	wa.State, wa.Outcome, wa.AnswerAt, wa.ConnectAt, wa.EndAt = "ended", string(campaigns.OutcomeResumed), &now, &now, &now
	if err := d.FinishAttempt(ctx, wa, nil); err != nil {
		t.Fatal(err)
	}
	got, err := d.GetAttempt(ctx, wa.ID)
	if err != nil || got.ResumedFrom != sip.ID || got.ContactID != id || got.CampaignID != c.ID {
		t.Fatalf("resume attempt %+v, %v: want resumed from %d", got, err, sip.ID)
	}
	st, err := d.CampaignStats(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Answered != 1 || st.Connected != 1 || st.Abandoned != 0 || st.AbandonRate != 0 {
		t.Errorf("stats %+v: want one answered and connected conversation, no abandon", st)
	}
	if r := st.Channels["whatsapp_call"].Reached; r != 0 {
		t.Errorf("the resume reached %d on WhatsApp, want 0: the person was reached once, on SIP", r)
	}
	ab, err := d.Abandonment(ctx, c.ID, now.Add(time.Second), time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if ab.Hours24.Answered != 1 || ab.Hours24.Abandoned != 0 {
		t.Errorf("abandonment %+v: want one answered, none abandoned", ab.Hours24)
	}
	gone := Attempt{ID: sip.ID, ContactID: 999999, CampaignID: c.ID}
	if _, err := d.StartResumeAttempt(ctx, gone, campaigns.ChannelWhatsAppCall, 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("resume of a missing contact: %v, want not found", err)
	}
}
