package web

import (
	"context"
	"log/slog"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/sipchannel"
	"github.com/turbina-dialer/turbina/dialer/wachannel"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/internal/netlab"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/storage"
)

// TestBrowserAgentDrillLinkCut is issue 14's drill with a real browser agent:
// the agent (headless Chromium on the agent page) talks with a customer that
// sipp, the carrier behind netlab's cuttable link, answers with RTP; the link is
// cut, both ways, no ICMP. The real originator finds the trunk dead, the
// conversation is called back on WhatsApp and is back with the same agent within
// 5 s of the cut (the records' own times), the browser hears the WhatsApp user's
// Opus and the user hears the browser, and the conversation counts once.
func TestBrowserAgentDrillLinkCut(t *testing.T) {
	lab := netlab.New(t)
	carrier := sipptest.Start(t, "drill-rtp.xml", sipptest.Options{
		Netns: lab.CarrierNS, Host: lab.CarrierIP, Calls: 100000, Timeout: 5 * time.Minute,
	})
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	o, err := sip.New(context.Background(), sip.Config{
		Trunks:     []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr}},
		ListenAddr: net.JoinHostPort(lab.RootIP, "0"),
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	waMedia, err := whatsapp.NewMedia(whatsapp.MediaConfig{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	emu, client := startWhatsApp(t, log, nil, whatsapp.WithMedia(waMedia), whatsapp.WithLogger(log))
	slot := &engineSlot{}
	e := newUIEnv(t, Config{Engine: slot})
	slot.set(runEngine(t, e, map[campaigns.Channel]channel.Channel{
		campaigns.ChannelSIP:          sipchannel.New(o),
		campaigns.ChannelWhatsAppCall: wachannel.NewCalls(client, e.db, "Podemos ligar?"),
	}, func(c *dialer.Config) { c.WhatsApp = client; c.RingTimeout = 30 * time.Second }))
	hooks, err := whatsapp.NewWebhookHandler(whatsapp.WebhookConfig{AppSecret: "secret", VerifyToken: "v"}, slot.get().WhatsAppSink(), log)
	if err != nil {
		t.Fatal(err)
	}
	hookSrv := httptest.NewServer(hooks)
	t.Cleanup(hookSrv.Close)
	emu.SetCallbackURL(hookSrv.URL)
	const phone = "+5511987650091"
	emu.Script(strings.TrimPrefix(phone, "+"), emulator.Behaviour{Call: emulator.CallAccept, AnswerAfter: 200 * time.Millisecond})
	c := runningCampaign(t, e, "Corte", "progressive", []map[string]any{{"channel": "sip", "max_attempts": 1, "retry_delay": "1h"}}, phone)
	campaignID, err := strconv.ParseInt(c.ID, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	list, _, err := e.db.ListContacts(ctx, campaignID, storage.ContactFilter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("contacts %+v, %v", list, err)
	}
	contact := list[0]
	if err := e.db.SetWhatsAppPermission(ctx, contact.ID, storage.PermissionGranted, time.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}

	p := openBrowser(t, e)
	p.watchPeerConnections()
	p.signIn("agent1", "/agent")
	p.waitJS("campaigns listed", `document.querySelectorAll('#campaign-list input[name=campaign]').length === 1`, 5*time.Second)
	p.do("log in to campaigns", chromedp.Click(chromedp.CSS("#agent-login")))
	p.waitJS("audio connected", `document.getElementById('audio-status').dataset.state === 'connected'`, 15*time.Second)
	agentID := e.users[storage.RoleAgent].ID
	for a, _ := slot.get().Agents().Get(agentID); !a.Audio; a, _ = slot.get().Agents().Get(agentID) {
		time.Sleep(20 * time.Millisecond)
	}
	p.do("ready", chromedp.Click(chromedp.CSS("#ready")))
	p.waitJS("screen-pop", `!document.getElementById('screen-pop').hidden && document.getElementById('state').dataset.state === 'on_call'`, 20*time.Second)
	// The customer is talking: sipp's G.711 reaches the browser.
	p.wantHeard("the customer", "audio/PCMU", "audio/opus")

	cut := time.Now()
	lab.Cut()
	p.waitJS("told the line dropped", `document.getElementById('call-notice').dataset.notice === 'resuming' || document.getElementById('call-notice').dataset.notice === 'resumed'`, 5*time.Second)
	p.waitJS("back on WhatsApp", `document.getElementById('call-notice').dataset.notice === 'resumed'`, 10*time.Second)
	if got := p.text("#contact-phone"); got != campaigns.DisplayPhone(phone) {
		t.Errorf("screen-pop not kept: phone %q", got)
	}
	// Audio both ways after the resume: the browser's own statistics for the
	// WhatsApp user's Opus, the emulated user's for the browser's voice.
	var heard map[string]float64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if heard = p.packetsHeard(); heard["audio/opus"] >= 25 {
			break
		}
	}
	if heard["audio/opus"] < 25 {
		t.Errorf("after the resume the browser heard %v, want ≥ 25 Opus packets of the WhatsApp user", heard)
	}
	calls := emu.Calls()
	if len(calls) != 1 {
		t.Fatalf("WhatsApp calls %+v, want the one call back", calls)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, _ := emu.CallStats(calls[0].CallID)
		if st.PacketsReceived >= 25 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the WhatsApp user got %d packets of the browser", st.PacketsReceived)
		}
	}
	p.do("hang up", chromedp.Click(chromedp.CSS("#hangup")))
	p.waitJS("disposition form", `!document.getElementById('dispo').hidden`, 10*time.Second)

	as, err := e.db.ListAttempts(ctx, contact.ID)
	if err != nil || len(as) != 2 {
		t.Fatalf("attempts %+v, %v: want the SIP call and its call back", as, err)
	}
	sipA, wa := as[0], as[1]
	if sipA.Outcome != string(campaigns.OutcomeConnected) || sipA.HangupBy != channel.HangupByTrunk {
		t.Errorf("SIP attempt %+v: want connected, hung up by the trunk", sipA)
	}
	if wa.Channel != campaigns.ChannelWhatsAppCall || wa.ResumedFrom != sipA.ID || wa.AgentID != agentID || wa.ConnectAt == nil {
		t.Fatalf("call back %+v: want resumed from %d with agent %d", wa, sipA.ID, agentID)
	}
	back := wa.ConnectAt.Sub(cut)
	t.Logf("trunk down %s, WhatsApp call %s, back with the agent %s after the cut", o.Trunks()[0].DownSince.Sub(cut).Round(time.Millisecond),
		wa.CreatedAt.Sub(cut).Round(time.Millisecond), back.Round(time.Millisecond))
	if back > 5*time.Second {
		t.Errorf("back with the agent %s after the cut, want ≤ 5 s", back)
	}
	st, err := e.db.CampaignStats(ctx, campaignID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Connected != 1 || st.Abandoned != 0 {
		t.Errorf("stats: %d connected, %d abandoned; want the conversation once, no abandon", st.Connected, st.Abandoned)
	}
}
