package web

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserAgentSeesAnIncomingWhatsAppCall: a person calls the business on
// WhatsApp (the trunk is cut) and the ready agent's page pops the call up as
// an incoming WhatsApp call, in English and in Portuguese, not as a call the
// campaign placed.
func TestBrowserAgentSeesAnIncomingWhatsAppCall(t *testing.T) {
	t.Parallel()
	requireOpus(t)
	e, emu := newInboundScene(t, newUIEnv, time.Minute)
	// The list's one contact is dialled on the cut trunk and done with; the
	// caller is a stranger, taken by this campaign, the default inbound queue.
	c := runningCampaign(t, e, "Fila", "progressive", []map[string]any{{"channel": "sip", "max_attempts": 1}}, "+5511987650790")
	if c.ID != "1" {
		t.Fatalf("the campaign is %s, the engine's inbound queue 1", c.ID)
	}
	p := openBrowser(t, e)
	p.signIn("agent1", "/agent")
	p.waitJS("campaigns listed", `document.querySelectorAll('#campaign-list input[name=campaign]').length === 1`, 5*time.Second)
	p.do("log in to campaigns", chromedp.Click(chromedp.CSS("#agent-login")))
	p.waitJS("audio connected", `document.getElementById('audio-status').dataset.state === 'connected'`, 15*time.Second)
	p.do("ready", chromedp.Click(chromedp.CSS("#ready")))
	p.waitJS("ready", `document.getElementById('state').dataset.state === 'ready'`, 5*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := emu.PlaceCall(ctx, "+5511987650791"); err != nil {
		t.Fatal(err)
	}
	p.waitJS("screen-pop", `!document.getElementById('screen-pop').hidden && document.getElementById('state').dataset.state === 'on_call'`, 20*time.Second)
	if got := eval[string](p, `document.getElementById('call-channel').dataset.direction + ' | ' + document.getElementById('call-channel').textContent`); got != "inbound | Incoming WhatsApp call" {
		t.Errorf("the screen-pop's call shows as %q", got)
	}
	p.do("switch to Portuguese", chromedp.SetValue(chromedp.CSS("#lang-switch"), "pt-BR"))
	eval[bool](p, `(document.getElementById('lang-switch').dispatchEvent(new Event('change')), true)`)
	p.waitJS("the pop in Portuguese", `document.getElementById('call-channel').textContent === 'Chamada recebida pelo WhatsApp'`, 5*time.Second)
	if got := eval[string](p, `document.getElementById('contact-phone').textContent`); got != "(11) 98765-0791" {
		t.Errorf("the screen-pop's contact is %q, want the caller's number, (11) 98765-0791", got)
	}
	p.shot("inbound-whatsapp-pop")
}
