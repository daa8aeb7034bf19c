package web

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/sipchannel"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/internal/sipptest"
)

// TestBrowserAgentAnswersTheContactOnWhatsApp: on a call from sipp, the agent's
// page shows the contact's WhatsApp conversation; a message the contact sends
// during the call appears in it through the signed webhook without a reload, and
// the agent's typed reply and the template button reach WhatsApp (the emulator)
// and show in the thread, as does the contact's WhatsApp call.
func TestBrowserAgentAnswersTheContactOnWhatsApp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	emu, client := startWhatsApp(t, log, []emulator.Template{{Name: "lembrete", Language: "pt_BR", Status: "APPROVED", Category: "UTILITY", Body: "Olá {{1}}"}})

	carrier := sipptest.Start(t, "answer-rtp.xml", sipptest.Options{Calls: 1})
	slot := &engineSlot{}
	e := newUIEnv(t, Config{Engine: slot, Templates: NewTemplateCache(client)})
	// The trunk is not what this test is about: a loaded machine that holds
	// sipp's RTP back half a second must not take it down under the call.
	o, err := sip.New(ctx, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}},
		MediaSilence: sip.Duration(10 * time.Second)}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	slot.set(runEngine(t, e, map[campaigns.Channel]channel.Channel{campaigns.ChannelSIP: sipchannel.New(o)},
		func(c *dialer.Config) { c.WhatsApp = client }))
	hooks, err := whatsapp.NewWebhookHandler(whatsapp.WebhookConfig{AppSecret: "secret", VerifyToken: "v"}, slot.get().WhatsAppSink(), log)
	if err != nil {
		t.Fatal(err)
	}
	var forged atomic.Int64
	hookSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		hooks.ServeHTTP(rec, r)
		if rec.Code >= 400 {
			forged.Add(1)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(hookSrv.Close)
	emu.SetCallbackURL(hookSrv.URL)

	const phone = "+5511987650077"
	runningCampaign(t, e, "Conversa", "progressive", []map[string]any{
		{"channel": "sip", "max_attempts": 1, "retry_delay": "1h"},
		{"channel": "whatsapp_template", "max_attempts": 1, "template": "lembrete", "language": "pt_BR", "params": []string{"name"}},
	}, phone)

	p := openBrowser(t, e)
	p.signIn("agent1", "/agent")
	p.waitJS("campaigns listed", `document.querySelectorAll('#campaign-list input[name=campaign]').length === 1`, 5*time.Second)
	p.do("log in to campaigns", chromedp.Click(chromedp.CSS("#agent-login")))
	p.waitJS("audio connected", `document.getElementById('audio-status').dataset.state === 'connected'`, 15*time.Second)
	p.do("ready", chromedp.Click(chromedp.CSS("#ready")))
	p.waitJS("screen-pop", `!document.getElementById('screen-pop').hidden && document.getElementById('state').dataset.state === 'on_call'`, 20*time.Second)
	p.waitJS("WhatsApp on, empty thread", `document.getElementById('wa-status').dataset.state === 'on' && document.querySelectorAll('#wa-thread .msg').length === 0`, 5*time.Second)

	// A reply before the contact wrote is outside the 24-hour window: refused, shown, kept in the box.
	p.do("reply too early", chromedp.SendKeys(chromedp.CSS("#wa-text"), "Olá, Cliente"), chromedp.Click(chromedp.CSS("#wa-send")))
	p.waitJS("window error shown", `!document.getElementById('agent-status').hidden && document.getElementById('agent-status').textContent.length > 0`, 5*time.Second)
	// The policy gate refused it before WhatsApp: its reason, in the page's words.
	if got := eval[string](p, `document.getElementById('agent-status').dataset.reasons + ' | ' + document.getElementById('agent-status').textContent`); got !=
		"outside_service_window | Refused: outside WhatsApp's 24-hour window." {
		t.Errorf("refusal shown as %q", got)
	}
	if v := eval[string](p, `document.getElementById('wa-text').value`); v != "Olá, Cliente" {
		t.Errorf("the refused reply left %q in the box, want it kept", v)
	}

	emu.UserMessage(phone, "Oi! Pode me mandar o boleto por aqui?")
	p.waitJS("the contact's message appears", `[...document.querySelectorAll('#wa-thread .msg')].some((m) => m.dataset.direction === 'in' && m.textContent.includes('boleto'))`, 10*time.Second)
	eval[bool](p, `(document.getElementById('wa-text').value = '', true)`)
	p.do("reply", chromedp.SendKeys(chromedp.CSS("#wa-text"), "Claro, envio agora."), chromedp.Click(chromedp.CSS("#wa-send")))
	p.waitJS("the reply appears", `[...document.querySelectorAll('#wa-thread .msg')].some((m) => m.dataset.direction === 'out' && m.textContent.includes('envio agora'))`, 10*time.Second)
	if v := eval[string](p, `document.getElementById('wa-text').value`); v != "" {
		t.Errorf("the sent reply left %q in the box", v)
	}
	p.do("send the template", chromedp.Click(chromedp.CSS("#wa-template")))
	p.waitJS("three messages", `document.querySelectorAll('#wa-thread .msg').length === 3`, 10*time.Second)
	if last := eval[string](p, `document.querySelector('#wa-thread .msg:last-child').textContent`); !strings.Contains(last, "Template: lembrete") {
		t.Errorf("the template shows as %q", last)
	}
	// The contact also tries a WhatsApp call: it shows in the thread.
	if _, err := emu.PlaceCall(ctx, phone); err != nil {
		t.Fatal(err)
	}
	p.waitJS("the contact's call appears", `[...document.querySelectorAll('#wa-thread .msg')].some((m) => m.dataset.direction === 'in' && m.textContent.includes('The contact called on WhatsApp'))`, 10*time.Second)
	p.shot("conversation")

	var texts, templates int
	for _, r := range emu.Requests() {
		if r.Status != http.StatusOK || r.To != strings.TrimPrefix(phone, "+") && r.To != phone {
			continue
		}
		switch r.Type {
		case "text":
			texts++
			if !strings.Contains(string(r.Body), "Claro, envio agora.") {
				t.Errorf("text sent to WhatsApp: %s", r.Body)
			}
		case "template":
			templates++
		}
	}
	if texts != 1 || templates != 1 {
		t.Errorf("%d texts and %d templates reached WhatsApp, want 1 each", texts, templates)
	}
	if n := forged.Load(); n != 0 {
		t.Errorf("%d of the emulator's webhooks were refused", n)
	}

	// The person asks, in the thread, to hear no more: the number is on the list,
	// the next template is refused, and the page says why in Portuguese.
	emu.UserMessage(phone, "Parar.")
	p.waitJS("the opt-out's confirmation appears", `[...document.querySelectorAll('#wa-thread .msg')].some((m) => m.dataset.direction === 'out' && m.textContent.includes('não receberá'))`, 10*time.Second)
	p.do("switch to Portuguese", chromedp.SetValue(chromedp.CSS("#lang-switch"), "pt-BR"))
	eval[bool](p, `(document.getElementById('lang-switch').dispatchEvent(new Event('change')), true)`)
	p.do("template to an opted-out number", chromedp.Click(chromedp.CSS("#wa-template")))
	p.waitJS("refusal shown", `document.getElementById('agent-status').dataset.reasons === 'do_not_call opted_out'`, 5*time.Second)
	if got := eval[string](p, `document.getElementById('agent-status').textContent`); got != "Recusado: na lista de não ligar, pediu para não ser contatado." {
		t.Errorf("refusal shown as %q", got)
	}
	p.shot("refused")
	blocked, err := e.db.IsDNC(ctx, 0, phone)
	if err != nil || !blocked {
		t.Errorf("opted-out number on the list: %v %v", blocked, err)
	}
}
