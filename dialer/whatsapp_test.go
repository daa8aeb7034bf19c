package dialer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/sipchannel"
	"github.com/turbina-dialer/turbina/dialer/wachannel"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/internal/testenv"
	"github.com/turbina-dialer/turbina/internal/watest"
	"github.com/turbina-dialer/turbina/internal/webrtctest"
	"github.com/turbina-dialer/turbina/media"
	"github.com/turbina-dialer/turbina/storage"
)

const (
	waToken  = watest.Token
	waSecret = watest.Secret
)

// waHarness is an engine whose SIP trunk is dead (nothing listens) and whose
// WhatsApp rungs talk to the Cloud API emulator, webhooks included.
type waHarness struct {
	*harness
	emu *emulator.Emulator
	sip *sip.Originator
}

func newWhatsAppHarness(t *testing.T) *waHarness {
	t.Helper()
	return newWhatsAppHarnessTrunk(t, fmt.Sprintf("127.0.0.1:%d", sipptest.FreePort(t)))
}

// newWhatsAppHarnessTrunk is newWhatsAppHarness with the SIP trunk at trunk.
func newWhatsAppHarnessTrunk(t *testing.T, trunk string) *waHarness {
	t.Helper()
	return newWhatsAppHarnessSIP(t, trunk, func(o *sip.Originator) channel.Channel { return sipchannel.New(o) })
}

// newWhatsAppHarnessSIP is newWhatsAppHarnessTrunk with the sip rung's channel
// made by sipChannel from the originator of the trunk at trunk.
func newWhatsAppHarnessSIP(t *testing.T, trunk string, sipChannel func(*sip.Originator) channel.Channel) *waHarness {
	t.Helper()
	return newWhatsAppHarnessConfig(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "trunk", Address: trunk}},
		InviteTimeout: sip.Duration(300 * time.Millisecond), FaultsToOpen: 1, ProbeInterval: sip.Duration(time.Hour)},
		sipChannel, Config{RingTimeout: 5 * time.Second})
}

// newWhatsAppHarnessConfig is the harness with its originator configured by
// sipCfg and the engine by cfg (its Tick and Sync the tests' short ones).
func newWhatsAppHarnessConfig(t testing.TB, sipCfg sip.Config, sipChannel func(*sip.Originator) channel.Channel, cfg Config) *waHarness {
	t.Helper()
	return newWhatsAppHarnessOn(t, filepath.Join(t.TempDir(), "turbina.db"), sipCfg, sipChannel, cfg)
}

// newWhatsAppHarnessOn is newWhatsAppHarnessConfig on the database at path, which
// may hold what a stopped process left.
func newWhatsAppHarnessOn(t testing.TB, path string, sipCfg sip.Config, sipChannel func(*sip.Originator) channel.Channel, cfg Config) *waHarness {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	waMedia, err := whatsapp.NewMedia(whatsapp.MediaConfig{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	emu, client := watest.Start(t, log, whatsapp.WithMedia(waMedia))
	store, err := storage.Open(ctx, path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	o, err := sip.New(ctx, sipCfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	peers, err := media.NewAgentPeers(media.ICEConfig{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	channels := map[campaigns.Channel]channel.Channel{
		campaigns.ChannelSIP:              sipChannel(o),
		campaigns.ChannelWhatsAppCall:     wachannel.NewCalls(client, store, "Podemos ligar?"),
		campaigns.ChannelWhatsAppTemplate: wachannel.NewTemplates(client, store),
	}
	cfg.Tick, cfg.Sync, cfg.AgentPeers, cfg.WhatsApp = 50*time.Millisecond, 100*time.Millisecond, peers, client
	e := New(store, channels, NewAgents(), cfg, log)
	hooks, err := whatsapp.NewWebhookHandler(whatsapp.WebhookConfig{AppSecret: waSecret, VerifyToken: "v"}, e.WhatsAppSink(), log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hooks)
	t.Cleanup(srv.Close)
	emu.SetCallbackURL(srv.URL)
	return &waHarness{harness: runEngine(ctx, t, store, e), emu: emu, sip: o}
}

// agentEar is what a browser agent heard, over both its paths and per path.
type agentEar struct {
	heard atomic.Uint64 // packets on every path
	mu    sync.Mutex
	by    map[string]*pathHeard // by MIME type of the browser's track
	// browser is the agent's pion browser: closing its connection is the agent
	// vanishing (a closed tab, a lost network).
	browser *webrtctest.Browser
}

// pathHeard counts the packets heard on one path.
type pathHeard struct {
	packets     int
	opusSilence int // payloads byte for byte the emulated WhatsApp user's frame
	pcmuFrames  int // 160-byte payloads: 20 ms of G.711
}

// path returns a copy of the counts for mime's track.
func (e *agentEar) path(mime string) pathHeard {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.by[mime]; p != nil {
		return *p
	}
	return pathHeard{}
}

// browserAgent nails up a pion browser, offering a PCMU and an Opus path like the
// agent page, as the agent's audio, talking and listening until ctx ends.
func (h *waHarness) browserAgent(ctx context.Context, agent int64) *agentEar {
	h.t.Helper()
	browser := webrtctest.NewBrowser(h.t)
	ear := &agentEar{by: map[string]*pathHeard{}, browser: browser}
	browser.Heard = func(mime string, p *rtp.Packet) {
		ear.mu.Lock()
		defer ear.mu.Unlock()
		ph := ear.by[mime]
		if ph == nil {
			ph = &pathHeard{}
			ear.by[mime] = ph
		}
		ph.packets++
		if bytes.Equal(p.Payload, emulator.OpusSilence) {
			ph.opusSilence++
		}
		if len(p.Payload) == 160 {
			ph.pcmuFrames++
		}
	}
	answer, err := h.engine.AgentAudio().Offer(ctx, agent, browser.Offer(h.t))
	if err != nil {
		h.t.Fatal(err)
	}
	browser.Accept(h.t, answer)
	var gaps atomic.Uint64
	go browser.Talk(ctx, nil)
	go browser.Listen(ctx, &ear.heard, &gaps)
	for a, _ := h.engine.Agents().Get(agent); !a.Audio; a, _ = h.engine.Agents().Get(agent) {
		if ctx.Err() != nil {
			h.t.Fatal("agent audio never came up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return ear
}

// waitAudioBothWays waits until the browser agent heard 25 packets of the
// WhatsApp user on callID and the user 25 of the agent.
func (h *waHarness) waitAudioBothWays(ctx context.Context, ear *agentEar, callID string) {
	h.t.Helper()
	for ear.heard.Load() < 25 {
		if ctx.Err() != nil {
			h.t.Fatalf("agent heard %d packets of the WhatsApp user", ear.heard.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for st, _ := h.emu.CallStats(callID); st.PacketsReceived < 25; st, _ = h.emu.CallStats(callID) {
		if ctx.Err() != nil {
			h.t.Fatalf("WhatsApp user got %d packets of the agent", st.PacketsReceived)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waLadder() []campaigns.Rung {
	return []campaigns.Rung{
		{Channel: campaigns.ChannelSIP, MaxAttempts: 1},
		{Channel: campaigns.ChannelWhatsAppCall, MaxAttempts: 1},
		{Channel: campaigns.ChannelWhatsAppTemplate, MaxAttempts: 1, Template: "lembrete", Language: "pt_BR", Params: []string{"name", "plano"}},
	}
}

// campaignWith creates a draft campaign with contacts given as phone → plan.
func (h *waHarness) campaignWith(contacts map[string]string) campaigns.Campaign {
	h.t.Helper()
	ctx := context.Background()
	c := campaigns.Campaign{Name: "wa", CallerID: "+551130000000", Ladder: waLadder()}
	c.ApplyDefaults()
	c.Pacing.Mode = campaigns.PacingProgressive
	c.Window = campaigns.Window{Start: 0, End: 24*60 - 1}
	if err := h.store.CreateCampaign(ctx, tester, &c); err != nil {
		h.t.Fatal(err)
	}
	b, _ := h.store.BeginImport(ctx, tester, c.ID)
	line := 2
	for phone, plan := range contacts {
		if _, err := b.Add(ctx, campaigns.Contact{Phone: phone, Name: "Ana", Timezone: "UTC", Line: line,
			Attributes: map[string]string{"plano": plan}}); err != nil {
			h.t.Fatal(err)
		}
		line++
	}
	if _, err := b.Finish(ctx, nil); err != nil {
		h.t.Fatal(err)
	}
	return c
}

func requireOpus(t testing.TB) {
	t.Helper()
	if media.OpusAvailable {
		return
	}
	if testenv.InCI() {
		t.Fatal("built without the opus tag: make test builds with it")
	}
	t.Skip("built without the opus tag (make test builds with it)")
}

// TestTrunkDownWhatsAppCallReachesAgent is the product's promise: the trunk is
// dead, so the contact is called on WhatsApp, picks up, and talks to a browser
// agent, Opus end to end (the browser's Opus path).
func TestTrunkDownWhatsAppCallReachesAgent(t *testing.T) {
	requireOpus(t)
	h := newWhatsAppHarness(t)
	const phone = "+5511987650001"
	h.emu.Script(strings.TrimPrefix(phone, "+"), emulator.Behaviour{Call: emulator.CallAccept, AnswerAfter: 200 * time.Millisecond})
	c := h.campaignWith(map[string]string{phone: "Fibra"})
	agent := h.agents(c.ID, 1, time.Hour)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	heard := h.browserAgent(ctx, agent)
	h.setState(c.ID, campaigns.StateRunning)
	h.waitOnCall(ctx, agent, "the WhatsApp call")
	var callID string
	for callID == "" {
		for _, cs := range h.emu.Calls() {
			callID = cs.CallID
		}
		if ctx.Err() != nil {
			t.Fatal("no WhatsApp call reached the emulator")
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.waitAudioBothWays(ctx, heard, callID)
	if err := h.engine.Hangup(ctx, agent); err != nil {
		t.Fatal(err)
	}
	list := h.waitContacts(c.ID, 10*time.Second, func(ct campaigns.Contact) bool { return ct.Status == campaigns.ContactDone })
	as := h.attempts(list[0].ID)
	// The first INVITE times out (a trunk fault) and opens the circuit: either way
	// the contact leaves the SIP rung at once.
	if len(as) != 2 || as[0].Channel != campaigns.ChannelSIP || as[1].Channel != campaigns.ChannelWhatsAppCall ||
		as[1].Outcome != string(campaigns.OutcomeConnected) || as[1].ExternalID != callID {
		t.Fatalf("attempts %+v", as)
	}
	for st, _ := h.emu.CallStats(callID); !st.Ended; st, _ = h.emu.CallStats(callID) {
		if ctx.Err() != nil {
			t.Fatal("the agent's hang-up did not terminate the WhatsApp call")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st, _ := h.emu.CallStats(callID); st.SeqGaps != 0 {
		t.Errorf("%d sequence gaps at the WhatsApp user", st.SeqGaps)
	}
}

// TestRejectedWhatsAppCallSendsTheTemplate: the user declines the WhatsApp call, so
// the reminder template goes out, once, with the contact's columns as parameters,
// and its delivery is recorded.
func TestRejectedWhatsAppCallSendsTheTemplate(t *testing.T) {
	h := newWhatsAppHarness(t)
	const phone = "+5511987650002"
	h.emu.Script(strings.TrimPrefix(phone, "+"), emulator.Behaviour{Call: emulator.CallReject, AnswerAfter: 100 * time.Millisecond})
	c := h.campaignWith(map[string]string{phone: "Fibra 500"})
	h.agents(c.ID, 1, time.Hour)
	h.setState(c.ID, campaigns.StateRunning)
	list := h.waitContacts(c.ID, 20*time.Second, func(ct campaigns.Contact) bool {
		as := h.attempts(ct.ID)
		return ct.Status == campaigns.ContactDone && len(as) == 3 && as[2].Outcome == "read"
	})
	as := h.attempts(list[0].ID)
	if as[1].Outcome != string(campaigns.OutcomeRejected) || as[2].Channel != campaigns.ChannelWhatsAppTemplate || as[2].ExternalID == "" {
		t.Fatalf("attempts %+v", as)
	}
	var sends []emulator.Request
	for _, r := range h.emu.Requests() {
		if r.Type == "template" && r.Status == 200 {
			sends = append(sends, r)
		}
	}
	if len(sends) != 1 {
		t.Fatalf("%d template sends, want 1", len(sends))
	}
	var body struct {
		Template struct {
			Name       string
			Components []struct {
				Parameters []struct{ Text string }
			}
		}
	}
	if err := json.Unmarshal(sends[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	params := body.Template.Components[0].Parameters
	if body.Template.Name != "lembrete" || len(params) != 2 || params[0].Text != "Ana" || params[1].Text != "Fibra 500" {
		t.Errorf("template sent: %s", sends[0].Body)
	}
	msgs, err := h.store.ListWAMessages(context.Background(), list[0].ID)
	if err != nil || len(msgs) != 1 || msgs[0].Type != "template" {
		t.Errorf("conversation %+v, %v", msgs, err)
	}
}

// TestNoPermissionRequestsItAndCallsWhenGranted: WhatsApp refuses the call (no
// permission), a permission request goes out, the ladder goes on to the template;
// when the user grants permission the contact is called on WhatsApp.
func TestNoPermissionRequestsItAndCallsWhenGranted(t *testing.T) {
	t.Parallel()
	h := newWhatsAppHarness(t)
	const phone = "+5511987650003"
	h.emu.Script(strings.TrimPrefix(phone, "+"), emulator.Behaviour{RequirePermission: true, Permission: emulator.PermissionGrant,
		PermissionAfter: 1500 * time.Millisecond, Call: emulator.CallReject, AnswerAfter: 100 * time.Millisecond})
	c := h.campaignWith(map[string]string{phone: "Móvel"})
	// The contact wrote earlier today: the customer service window is open, so the
	// request can be the interactive message.
	h.emu.UserMessage(phone, "Vocês podem me ligar?")
	h.agents(c.ID, 1, time.Hour)
	h.setState(c.ID, campaigns.StateRunning)
	list := h.waitContacts(c.ID, 25*time.Second, func(ct campaigns.Contact) bool {
		as := h.attempts(ct.ID)
		return len(as) >= 4 && as[len(as)-1].State == "ended"
	})
	as := h.attempts(list[0].ID)
	if as[1].Outcome != string(campaigns.OutcomeNoPermission) || as[2].Channel != campaigns.ChannelWhatsAppTemplate ||
		as[3].Channel != campaigns.ChannelWhatsAppCall || as[3].Outcome != string(campaigns.OutcomeRejected) {
		t.Fatalf("attempts %+v", as)
	}
	state, _, err := h.store.WhatsAppPermission(context.Background(), list[0].ID)
	if err != nil || state != storage.PermissionGranted {
		t.Errorf("permission %q, %v", state, err)
	}
	requests := 0
	for _, r := range h.emu.Requests() {
		if r.Type == "interactive" && r.Status == 200 {
			requests++
		}
	}
	if requests != 1 {
		t.Errorf("%d permission requests, want 1", requests)
	}
}

// TestPermissionRequestByTemplate: a campaign that asks for call permission with a
// template (allowed outside the 24 h window) sends it when WhatsApp refuses the
// call, and calls once the user grants permission.
func TestPermissionRequestByTemplate(t *testing.T) {
	h := newWhatsAppHarness(t)
	const phone = "+5511987650004"
	h.emu.Script(strings.TrimPrefix(phone, "+"), emulator.Behaviour{RequirePermission: true, Permission: emulator.PermissionGrant,
		PermissionAfter: 500 * time.Millisecond, Call: emulator.CallReject, AnswerAfter: 100 * time.Millisecond})
	c := h.campaignWith(map[string]string{phone: "Móvel"})
	if _, err := h.store.UpdateCampaign(context.Background(), tester, c.ID, "test", func(c *campaigns.Campaign) error {
		c.CallPermission = campaigns.CallPermission{Template: "pedido_ligacao", Language: "pt_BR"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.agents(c.ID, 1, time.Hour)
	h.setState(c.ID, campaigns.StateRunning)
	list := h.waitContacts(c.ID, 25*time.Second, func(ct campaigns.Contact) bool {
		as := h.attempts(ct.ID)
		return len(as) >= 4 && as[len(as)-1].State == "ended"
	})
	as := h.attempts(list[0].ID)
	if as[1].Outcome != string(campaigns.OutcomeNoPermission) || as[3].Channel != campaigns.ChannelWhatsAppCall || as[3].Outcome != string(campaigns.OutcomeRejected) {
		t.Fatalf("attempts %+v", as)
	}
	var permissionTemplates, interactive int
	for _, r := range h.emu.Requests() {
		switch {
		case r.Type == "template" && r.Status == 200 && strings.Contains(string(r.Body), "pedido_ligacao"):
			permissionTemplates++
		case r.Type == "interactive":
			interactive++
		}
	}
	if permissionTemplates != 1 || interactive != 0 {
		t.Errorf("%d permission templates and %d interactive requests, want 1 and 0", permissionTemplates, interactive)
	}
}

// TestUserInitiatedCallIsKeptOnTheContact: a contact who calls the business on
// WhatsApp shows in the contact's conversation, once, with the call's ID.
func TestUserInitiatedCallIsKeptOnTheContact(t *testing.T) {
	requireOpus(t)
	h := newWhatsAppHarness(t)
	ctx := context.Background()
	c := h.campaignWith(map[string]string{"+5511987650071": "Fibra"})
	list, _, err := h.store.ListContacts(ctx, c.ID, storage.ContactFilter{Limit: 1})
	if err != nil || len(list) != 1 {
		t.Fatalf("contacts %v %v", list, err)
	}
	callID, err := h.emu.PlaceCall(ctx, "+5511987650071")
	if err != nil {
		t.Fatal(err)
	}
	var msgs []storage.WAMessage
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if msgs, err = h.store.ListWAMessages(ctx, list[0].ID); err != nil {
			t.Fatal(err)
		}
		if len(msgs) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(msgs) != 1 || msgs[0].Type != "call" || msgs[0].Direction != "in" || msgs[0].WAID != callID || msgs[0].Phone != "+5511987650071" {
		t.Fatalf("conversation %+v, want the contact's call %s", msgs, callID)
	}
}

// TestContactWithACallbackCallsInAndReachesAnAgent: a contact an agent promised
// to call back calls the business on WhatsApp first; the call is answered and
// bridged to the ready agent with audio both ways, recorded as the contact's
// connected WhatsApp call attempt, and the callback is closed. A number no
// campaign knows, with no inbound queue configured, is left unanswered (a missed
// call).
func TestContactWithACallbackCallsInAndReachesAnAgent(t *testing.T) {
	requireOpus(t)
	h := newWhatsAppHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	const promised, stranger = "+5511987650081", "+5511987650082"
	c := h.campaignWith(map[string]string{promised: "Fibra"})
	// The promised contact was reached earlier and an agent asked to call back tomorrow.
	list, _, err := h.store.ListContacts(ctx, c.ID, storage.ContactFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var promisedID int64
	for _, ct := range list {
		promisedID = ct.ID
		a, err := h.store.StartAttempt(ctx, ct.ID, campaigns.ChannelSIP, 0)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		a.State, a.Outcome, a.AnswerAt, a.EndAt = "ended", string(campaigns.OutcomeConnected), &now, &now
		connected := func(c campaigns.Contact, pos campaigns.Position) (campaigns.Position, error) {
			return campaigns.Apply(campaigns.DefaultLadder(), c, pos, campaigns.OutcomeEvent(campaigns.OutcomeConnected), now)
		}
		if err := h.store.FinishAttempt(ctx, a, connected); err != nil {
			t.Fatal(err)
		}
		if ct.Phone == promised {
			if err := h.store.Dispose(ctx, a.ID, "callback", "", &storage.Callback{At: now.Add(24 * time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	agent := h.agents(c.ID, 1, time.Hour)[0]
	heard := h.browserAgent(ctx, agent)
	h.run(c.ID)

	// The stranger's call is not answered: no campaign knows the number.
	strangerCall, err := h.emu.PlaceCall(ctx, stranger)
	if err != nil {
		t.Fatal(err)
	}
	callID, err := h.emu.PlaceCall(ctx, promised)
	if err != nil {
		t.Fatal(err)
	}
	h.waitOnCall(ctx, agent, "the contact's WhatsApp call")
	h.waitAudioBothWays(ctx, heard, callID)
	if err := h.engine.Hangup(ctx, agent); err != nil {
		t.Fatal(err)
	}
	h.waitContacts(c.ID, 10*time.Second, func(ct campaigns.Contact) bool { return ct.ID != promisedID || ct.Status == campaigns.ContactDone })
	as := h.attempts(promisedID)
	if len(as) != 2 || as[1].Channel != campaigns.ChannelWhatsAppCall || as[1].Outcome != string(campaigns.OutcomeConnected) ||
		as[1].AgentID != agent || as[1].ExternalID != callID {
		t.Fatalf("attempts of the contact who called in: %+v", as)
	}
	if dc, open, err := h.store.CallbackByWhatsApp(ctx, promised); err != nil || open {
		t.Errorf("callback still open after the contact was reached: %+v %v", dc, err)
	}
	if st, _ := h.emu.CallStats(strangerCall); st.Accepted {
		t.Error("the call of a number no campaign knows was answered")
	}
}

// TestNoPermissionOutsideTheWindowGoesOnToTheTemplate: with no message from the
// contact in the last 24 h, WhatsApp refuses the interactive permission request
// (a service message); the contact is not stuck on it: the ladder goes on to the
// template rung.
func TestNoPermissionOutsideTheWindowGoesOnToTheTemplate(t *testing.T) {
	h := newWhatsAppHarness(t)
	const phone = "+5511987650004"
	h.emu.Script(strings.TrimPrefix(phone, "+"), emulator.Behaviour{RequirePermission: true, Permission: emulator.PermissionGrant})
	c := h.campaignWith(map[string]string{phone: "Móvel"})
	h.agents(c.ID, 1, time.Hour)
	h.setState(c.ID, campaigns.StateRunning)
	list := h.waitContacts(c.ID, 25*time.Second, func(ct campaigns.Contact) bool { return ct.Status == campaigns.ContactDone })
	as := h.attempts(list[0].ID)
	if len(as) != 3 || as[1].Outcome != string(campaigns.OutcomeNoPermission) || as[2].Channel != campaigns.ChannelWhatsAppTemplate {
		t.Fatalf("attempts %+v", as)
	}
	refused, sent := 0, 0
	for _, r := range h.emu.Requests() {
		if r.Type == "interactive" {
			if r.Status == 200 {
				sent++
			} else {
				refused++
			}
		}
	}
	if sent != 0 || refused != 1 {
		t.Errorf("interactive permission requests: %d sent, %d refused; want 0 and 1", sent, refused)
	}
}

// TestWhatsAppOpusReachesTheBrowserAgentUntranscoded: one browser agent, whose
// session carries a PCMU and an Opus path, takes a SIP call and then a WhatsApp
// call. The SIP customer arrives as PCMU on the PCMU path; the WhatsApp user's
// Opus frames arrive byte for byte on the Opus path (transcoded, they would be
// PCMU on the other path, or re-encoded Opus), and the agent's audio reaches the
// WhatsApp user.
func TestWhatsAppOpusReachesTheBrowserAgentUntranscoded(t *testing.T) {
	t.Parallel()
	requireOpus(t)
	carrier := sipptest.Start(t, "answer-rtp.xml", sipptest.Options{Calls: 1})
	// sipp plays answer-rtp.xml, which knows no OPTIONS: no keepalives.
	h := newWhatsAppHarnessConfig(t, sip.Config{
		Trunks:        []sip.TrunkConfig{{Name: "trunk", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}},
		InviteTimeout: sip.Duration(2 * time.Second), FaultsToOpen: 1, ProbeInterval: sip.Duration(time.Hour)},
		func(o *sip.Originator) channel.Channel { return sipchannel.New(o) }, Config{RingTimeout: 5 * time.Second})
	// Both contacts are called on SIP first: the carrier answers one call only,
	// so the other goes on to WhatsApp, where the user accepts. The INVITE that
	// sipp, gone, leaves unanswered is given up after 2 s: a shorter wait gave up
	// on the first INVITE too when a loaded machine slowed sipp.
	const sipPhone, waPhone = "+5511987650091", "+5511987650092"
	for _, p := range []string{sipPhone, waPhone} {
		h.emu.Script(strings.TrimPrefix(p, "+"), emulator.Behaviour{Call: emulator.CallAccept, AnswerAfter: 100 * time.Millisecond})
	}
	c := h.campaignWith(map[string]string{sipPhone: "Fibra", waPhone: "Rádio"})
	agent := h.agents(c.ID, 1, time.Hour)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ear := h.browserAgent(ctx, agent)
	paths := audioPaths(ctx, t, h.engine, agent)
	h.setState(c.ID, campaigns.StateRunning)

	// The SIP call: PCMU on the PCMU path, nothing on the Opus path.
	h.waitOnCall(ctx, agent, "the SIP call")
	paths.want(ctx, t, 0, "the SIP call")
	for ear.path(webrtc.MimeTypePCMU).pcmuFrames < 25 {
		if ctx.Err() != nil {
			t.Fatalf("agent heard %+v of the SIP customer on the PCMU path", ear.path(webrtc.MimeTypePCMU))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p := ear.path(webrtc.MimeTypeOpus); p.packets != 0 {
		t.Errorf("the SIP call reached the agent's Opus path: %+v", p)
	}
	if st, ok := h.engine.AgentAudio().Stats(agent); !ok || st.ToCustomer.Packets == 0 {
		t.Errorf("the SIP customer got no audio of the agent: %+v", st)
	}
	if err := h.engine.Hangup(ctx, agent); err != nil {
		t.Fatal(err)
	}
	carrier.Wait(t, 10*time.Second)
	pcmuAfterSIP := ear.path(webrtc.MimeTypePCMU).packets

	// The WhatsApp call: Opus, untouched, on the Opus path; nothing on the PCMU path.
	h.waitOnCall(ctx, agent, "the WhatsApp call")
	paths.want(ctx, t, 1, "the WhatsApp call")
	var callID string
	for callID == "" {
		for _, cs := range h.emu.Calls() {
			if cs.Accepted {
				callID = cs.CallID
			}
		}
		if ctx.Err() != nil {
			t.Fatal("no WhatsApp call was accepted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for ear.path(webrtc.MimeTypeOpus).opusSilence < 25 {
		if ctx.Err() != nil {
			t.Fatalf("agent heard %+v of the WhatsApp user on the Opus path", ear.path(webrtc.MimeTypeOpus))
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.waitAudioBothWays(ctx, ear, callID)
	if p := ear.path(webrtc.MimeTypeOpus); p.opusSilence != p.packets {
		t.Errorf("%d of %d packets on the Opus path are not the user's frames byte for byte", p.packets-p.opusSilence, p.packets)
	}
	if p := ear.path(webrtc.MimeTypePCMU); p.packets != pcmuAfterSIP {
		t.Errorf("the WhatsApp call reached the agent's PCMU path: %d packets", p.packets-pcmuAfterSIP)
	}
	if err := h.engine.Hangup(ctx, agent); err != nil {
		t.Fatal(err)
	}
	list := h.waitContacts(c.ID, 10*time.Second, func(ct campaigns.Contact) bool { return ct.Status == campaigns.ContactDone })
	for _, ct := range list {
		as := h.attempts(ct.ID)
		last := as[len(as)-1]
		if last.Outcome != string(campaigns.OutcomeConnected) {
			t.Errorf("contact %s: attempts %+v", ct.Phone, as)
		}
	}
}

// pathEvents collects the audio_path events an agent's session is sent: the path the
// browser must move its microphone to for each call.
type pathEvents struct {
	mu   sync.Mutex
	seen []AgentEvent
}

// audioPaths subscribes to the agent's events until ctx ends and keeps the audio_path ones.
func audioPaths(ctx context.Context, t *testing.T, e *Engine, agent int64) *pathEvents {
	t.Helper()
	events, stop := e.Subscribe(agent)
	t.Cleanup(stop)
	p := &pathEvents{}
	go func() {
		for {
			select {
			case ev := <-events:
				if ev.Kind == EventAudioPath {
					p.mu.Lock()
					p.seen = append(p.seen, ev)
					p.mu.Unlock()
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return p
}

// want waits for the newest audio_path event to name path; what names the call.
func (p *pathEvents) want(ctx context.Context, t *testing.T, path int, what string) {
	t.Helper()
	for {
		p.mu.Lock()
		seen := slices.Clone(p.seen)
		p.mu.Unlock()
		if n := len(seen); n > 0 && seen[n-1].AudioPath == path && seen[n-1].AttemptID != 0 {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%s: audio_path events %+v, want the newest on path %d", what, seen, path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLapsedPermissionIsAskedAgain: a temporary grant that lapsed does not stop the
// WhatsApp call rung for good: the call is tried, WhatsApp refuses it for want of
// permission, and a new request goes out (the only way to ask again).
func TestLapsedPermissionIsAskedAgain(t *testing.T) {
	h := newWhatsAppHarness(t)
	const phone = "+5511987650004"
	h.emu.Script(strings.TrimPrefix(phone, "+"), emulator.Behaviour{RequirePermission: true})
	c := h.campaignWith(map[string]string{phone: "Móvel"})
	h.emu.UserMessage(phone, "Pode me ligar")
	list, _, err := h.store.ListContacts(context.Background(), c.ID, storage.ContactFilter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("contacts %v %v", list, err)
	}
	if err := h.store.SetWhatsAppPermission(context.Background(), list[0].ID, storage.PermissionGranted, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	h.agents(c.ID, 1, time.Hour)
	h.setState(c.ID, campaigns.StateRunning)
	h.waitContacts(c.ID, 25*time.Second, func(ct campaigns.Contact) bool {
		as := h.attempts(ct.ID)
		return len(as) >= 2 && as[1].State == "ended"
	})
	as := h.attempts(list[0].ID)
	if as[1].Channel != campaigns.ChannelWhatsAppCall || as[1].Outcome != string(campaigns.OutcomeNoPermission) {
		t.Fatalf("attempts %+v: want the WhatsApp call tried and refused for permission", as)
	}
	requests := 0
	for _, r := range h.emu.Requests() {
		if r.Type == "interactive" && r.Status == 200 {
			requests++
		}
	}
	if requests != 1 {
		t.Errorf("%d permission requests, want 1", requests)
	}
}
