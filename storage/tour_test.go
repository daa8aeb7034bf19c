package storage

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// TestRepositoriesRoundTrip: what the other packages' tests exercise on SQLite
// only (agents, users, attempts by the far end's id, WhatsApp permission and
// messages, the safe-harbour audio, lists and counts), written and read back
// on each engine, so that every query runs on both.
func TestRepositoriesRoundTrip(t *testing.T) { eachBackend(t, testRepositoriesRoundTrip) }

func testRepositoriesRoundTrip(t *testing.T, be backend) {
	d, _ := be.open(t, Options{})
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	c := newCampaign(t, d)

	// Users and agents.
	agent := User{Username: "Bia", Role: RoleAgent}
	must(d.CreateUser(ctx, tester, &agent))
	if u, err := d.GetUser(ctx, agent.ID); err != nil || u.Username != "Bia" || u.Disabled {
		t.Errorf("GetUser: %+v, %v", u, err)
	}
	if _, err := d.GetUser(ctx, agent.ID+100); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetUser of no one: %v", err)
	}
	must(d.AssignAgent(ctx, tester, c.ID, agent.ID))
	must(d.AssignAgent(ctx, tester, c.ID, agent.ID)) // twice is once
	if ids, err := d.AgentCampaigns(ctx, agent.ID); err != nil || !slices.Equal(ids, []int64{c.ID}) {
		t.Errorf("AgentCampaigns: %v, %v", ids, err)
	}
	if us, err := d.CampaignAgents(ctx, c.ID); err != nil || len(us) != 1 || us[0].ID != agent.ID {
		t.Errorf("CampaignAgents: %+v, %v", us, err)
	}
	must(d.UnassignAgent(ctx, tester, c.ID, agent.ID))
	if ids, err := d.AgentCampaigns(ctx, agent.ID); err != nil || len(ids) != 0 {
		t.Errorf("AgentCampaigns after unassign: %v, %v", ids, err)
	}
	if us, err := d.ListUsers(ctx); err != nil || len(us) != 1 {
		t.Errorf("ListUsers: %+v, %v", us, err)
	}
	tok := Token{UserID: agent.ID, Name: "t", Prefix: "tb_x"}
	must(d.CreateToken(ctx, tester, &tok, "secret-hash"))
	if got, err := d.TokenByHash(ctx, "secret-hash"); err != nil || got.ID != tok.ID {
		t.Errorf("TokenByHash: %+v, %v", got, err)
	}

	// Contacts: their attribute columns, a phone prefix, WhatsApp numbers.
	b, err := d.BeginImport(ctx, tester, c.ID)
	must(err)
	for i, ct := range []campaigns.Contact{
		{Phone: "+5511987650001", WhatsApp: "+5511987650101", Attributes: map[string]string{"plan": "gold", "city": "SP"}},
		{Phone: "+5521987650002", Attributes: map[string]string{"plan": "basic"}},
	} {
		ct.Line = i + 2
		if r, err := b.Add(ctx, ct); err != nil || r != "" {
			t.Fatalf("add: %q, %v", r, err)
		}
	}
	_, err = b.Finish(ctx, nil)
	must(err)
	if cols, err := d.CampaignColumns(ctx, c.ID); err != nil || !slices.Equal(cols, []string{"city", "plan"}) {
		t.Errorf("CampaignColumns: %v, %v", cols, err)
	}
	list, total, err := d.ListContacts(ctx, c.ID, ContactFilter{Phone: "5511"})
	if err != nil || total != 1 || list[0].Phone != "+5511987650001" {
		t.Fatalf("contacts by phone prefix: %+v (%d), %v", list, total, err)
	}
	ct := list[0]
	if cs, err := d.ContactsByWhatsApp(ctx, "+5511987650101"); err != nil || len(cs) != 1 || cs[0].ID != ct.ID {
		t.Errorf("ContactsByWhatsApp: %+v, %v", cs, err)
	}

	// WhatsApp permission and messages.
	until := time.UnixMilli(d.now().Add(time.Hour).UnixMilli()).UTC()
	must(d.SetWhatsAppPermission(ctx, ct.ID, PermissionGranted, until))
	if st, u, err := d.WhatsAppPermission(ctx, ct.ID); err != nil || st != PermissionGranted || !u.Equal(until) {
		t.Errorf("WhatsAppPermission: %s %v, %v", st, u, err)
	}
	reply := PermissionReply{State: PermissionDenied, At: until}
	if written, err := d.SetWhatsAppPermissionReply(ctx, ct.ID, reply); err != nil || !written {
		t.Errorf("SetWhatsAppPermissionReply: written %v, %v", written, err)
	}
	if got, err := d.WhatsAppPermissionReply(ctx, ct.ID); err != nil || got.State != PermissionDenied || !got.At.Equal(until) {
		t.Errorf("WhatsAppPermissionReply: %+v, %v", got, err)
	}
	msg := WAMessage{ContactID: ct.ID, Direction: "in", WAID: "wamid.in1", Phone: "+5511987650101", Type: "text", Body: "oi", At: until}
	must(d.SaveWAMessage(ctx, msg))
	must(d.SaveWAMessage(ctx, msg)) // a resent webhook: kept once
	if ms, err := d.ListWAMessages(ctx, ct.ID); err != nil || len(ms) != 1 || ms[0].Body != "oi" {
		t.Errorf("ListWAMessages: %+v, %v", ms, err)
	}

	// Attempts: by the far end's id, their outcome swapped only from what was seen.
	a, err := d.StartAttempt(ctx, ct.ID, campaigns.ChannelWhatsAppCall, 0)
	must(err)
	if open, err := d.OpenAttempts(ctx); err != nil || len(open) != 1 || open[0].ID != a.ID {
		t.Errorf("OpenAttempts: %+v, %v", open, err)
	}
	a.ExternalID, a.State = "wacid.1", "ringing"
	must(d.UpdateAttempt(ctx, a))
	if got, err := d.AttemptByExternalID(ctx, "wacid.1"); err != nil || got.ID != a.ID || got.State != "ringing" {
		t.Errorf("AttemptByExternalID: %+v, %v", got, err)
	}
	must(d.SetAttemptOutcome(ctx, a.ID, string(campaigns.OutcomeNoAnswer)))
	if ok, err := d.SwapAttemptOutcome(ctx, a.ID, []string{string(campaigns.OutcomeBusy)}, string(campaigns.OutcomeConnected), nil); err != nil || ok {
		t.Errorf("swap from an outcome it does not have: %v, %v", ok, err)
	}
	if ok, err := d.SwapAttemptOutcome(ctx, a.ID, []string{"", string(campaigns.OutcomeNoAnswer)}, string(campaigns.OutcomeConnected), nil); err != nil || !ok {
		t.Errorf("swap: %v, %v", ok, err)
	}
	if n, err := d.AttemptOrdinal(ctx, a); err != nil || n != 0 {
		t.Errorf("AttemptOrdinal: %d, %v", n, err)
	}
	if _, ok, err := d.CallbackByWhatsApp(ctx, "+5511987650101"); err != nil || ok {
		t.Errorf("CallbackByWhatsApp without a callback: %v, %v", ok, err)
	}
	if f, err := d.FailoverCounts(ctx, time.Time{}); err != nil || f.Caught != 0 {
		t.Errorf("FailoverCounts: %+v, %v", f, err)
	}

	// Opt-outs and do-not-call lists.
	if _, err := d.OptOut(ctx, tester, []string{"+5521987650002"}, "api"); err != nil {
		t.Fatal(err)
	}
	if out, err := d.OptedOut(ctx, "+5521987650002"); err != nil || !out {
		t.Errorf("OptedOut: %v, %v", out, err)
	}
	if l, n, err := d.ListDNC(ctx, 0, "", 10, 0); err != nil || n != 1 || l[0].Phone != "+5521987650002" {
		t.Errorf("ListDNC: %+v (%d), %v", l, n, err)
	}

	// The campaign's safe-harbour message.
	wav := []byte("RIFF....WAVEfmt ")
	must(d.SetSafeHarbour(ctx, tester, c.ID, wav, 2*time.Second))
	if sh, err := d.GetSafeHarbour(ctx, c.ID); err != nil || string(sh.WAV) != string(wav) || sh.Length != 2*time.Second {
		t.Errorf("GetSafeHarbour: %+v, %v", sh, err)
	}
	if at, err := d.SafeHarbourStamp(ctx, c.ID); err != nil || at.IsZero() {
		t.Errorf("SafeHarbourStamp: %v, %v", at, err)
	}
	must(d.DeleteSafeHarbour(ctx, tester, c.ID))
	if _, err := d.GetSafeHarbour(ctx, c.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetSafeHarbour after delete: %v", err)
	}

	// The outbox's counts, and imports a crash left running.
	id, _, err := d.Enqueue(ctx, "whatsapp.template", "k1", []byte(`{}`))
	must(err)
	must(d.MarkSent(ctx, id, "wamid.1"))
	if sent, failed, err := d.OutboxHealth(ctx, "whatsapp.", time.Time{}); err != nil || sent != 1 || failed != 0 {
		t.Errorf("OutboxHealth: %d %d, %v", sent, failed, err)
	}
	if counts, err := d.OutboxCounts(ctx); err != nil || counts["whatsapp.template"]["sent"] != 1 {
		t.Errorf("OutboxCounts: %v, %v", counts, err)
	}
	_, err = d.BeginImport(ctx, tester, c.ID)
	must(err)
	if n, err := d.FailInterruptedImports(ctx); err != nil || n != 1 {
		t.Errorf("FailInterruptedImports: %d, %v", n, err)
	}
	must(d.Ping(ctx))
	must(d.IntegrityCheck(ctx))
}
