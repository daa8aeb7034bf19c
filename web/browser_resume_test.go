package web

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/wachannel"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/storage"
)

// dropChannel is a SIP channel whose calls are answered at once and last until
// hung up or dropped as a dead trunk drops them.
type dropChannel struct{ legs chan *dropLeg }

type dropLeg struct {
	events chan channel.AttemptEvent
	once   sync.Once
}

func (c *dropChannel) Place(ctx context.Context, req channel.PlaceRequest) (channel.Attempt, error) {
	l := &dropLeg{events: make(chan channel.AttemptEvent, 4)}
	l.events <- channel.AttemptEvent{Kind: channel.AttemptAnswered, At: time.Now()}
	select {
	case c.legs <- l:
	default:
	}
	return l, nil
}

func (l *dropLeg) Events() <-chan channel.AttemptEvent { return l.events }

func (l *dropLeg) Hangup(context.Context) error {
	l.end("local")
	return nil
}

func (l *dropLeg) end(by string) {
	l.once.Do(func() {
		l.events <- channel.AttemptEvent{Kind: channel.AttemptEnded, At: time.Now(), HangupBy: by}
		close(l.events)
	})
}

// TestBrowserAgentKeepsTheCallWhenTheLineDrops: the agent's SIP call drops (its
// trunk died); the page says the line dropped and the person is being called back
// on WhatsApp, keeps the screen-pop, then says they are back, on WhatsApp, whose
// Opus audio the browser hears; in Portuguese too.
func TestBrowserAgentKeepsTheCallWhenTheLineDrops(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	waMedia, err := whatsapp.NewMedia(whatsapp.MediaConfig{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	emu, client := startWhatsApp(t, log, nil, whatsapp.WithMedia(waMedia), whatsapp.WithLogger(log))
	trunk := &dropChannel{legs: make(chan *dropLeg, 4)}
	slot := &engineSlot{}
	e := newUIEnv(t, Config{Engine: slot})
	slot.set(runEngine(t, e, map[campaigns.Channel]channel.Channel{
		campaigns.ChannelSIP:          trunk,
		campaigns.ChannelWhatsAppCall: wachannel.NewCalls(client, e.db, "Podemos ligar?"),
	}, func(c *dialer.Config) { c.WhatsApp = client }))
	hooks, err := whatsapp.NewWebhookHandler(whatsapp.WebhookConfig{AppSecret: "secret", VerifyToken: "v"}, slot.get().WhatsAppSink(), log)
	if err != nil {
		t.Fatal(err)
	}
	hookSrv := httptest.NewServer(hooks)
	t.Cleanup(hookSrv.Close)
	emu.SetCallbackURL(hookSrv.URL)
	const phone = "+5511987650088"
	// The person picks up after a while: long enough for the page to show the call back.
	emu.Script(strings.TrimPrefix(phone, "+"), emulator.Behaviour{Call: emulator.CallAccept, AnswerAfter: 1500 * time.Millisecond})
	// A SIP-only ladder: the call back needs the WhatsApp channel, not a rung.
	runningCampaign(t, e, "Queda", "progressive", []map[string]any{{"channel": "sip", "max_attempts": 1, "retry_delay": "1h"}}, phone)

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
	if !eval[bool](p, `document.getElementById('call-notice').hidden`) {
		t.Errorf("a notice shows on a call whose line is up")
	}
	var leg *dropLeg
	select {
	case leg = <-trunk.legs:
	case <-time.After(5 * time.Second):
		t.Fatal("no SIP call placed")
	}

	leg.end("trunk")
	p.waitJS("told the line dropped", `document.getElementById('call-notice').dataset.notice === 'resuming' && !document.getElementById('call-notice').hidden`, 5*time.Second)
	if got := p.text("#call-notice"); got != "The line dropped, calling back on WhatsApp…" {
		t.Errorf("notice %q", got)
	}
	if got := p.text("#contact-phone"); got != campaigns.DisplayPhone(phone) || eval[bool](p, `document.getElementById('screen-pop').hidden`) {
		t.Errorf("screen-pop not kept: phone %q", got)
	}
	p.shot("resuming")
	p.waitJS("back on WhatsApp", `document.getElementById('call-notice').dataset.notice === 'resumed'`, 10*time.Second)
	if got := p.text("#call-notice"); got != "Back on WhatsApp." {
		t.Errorf("notice %q", got)
	}
	if got := p.text("#call-channel"); got != "WhatsApp call" {
		t.Errorf("channel shown %q, want the WhatsApp call", got)
	}
	if st := eval[string](p, `document.getElementById('state').dataset.state`); st != "on_call" {
		t.Errorf("agent %s, want still on the call", st)
	}
	p.wantHeard("the WhatsApp user", "audio/opus", "audio/PCMU")
	p.shot("resumed")
	p.do("switch to Portuguese", chromedp.SetValue(chromedp.CSS("#lang-switch"), "pt-BR"))
	eval[bool](p, `(document.getElementById('lang-switch').dispatchEvent(new Event('change')), true)`)
	p.waitJS("notice in Portuguese", `document.getElementById('call-notice').textContent === 'De volta pelo WhatsApp.'`, 5*time.Second)
	p.do("hang up", chromedp.Click(chromedp.CSS("#hangup")))
	p.waitJS("disposition form", `!document.getElementById('dispo').hidden`, 10*time.Second)
}
