package web

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/storage"
)

// onCall signs agent1 in on p, makes it ready with its audio up and imports one
// contact whose call sipp answers; it returns once the page shows the call.
func onCall(t *testing.T, p *page, e *apiEnv, slot *engineSlot, c campaignView, phone string) int64 {
	t.Helper()
	agentID := e.users[storage.RoleAgent].ID
	agentTab(t, p, slot, agentID)
	e.importCSV(t, c.ID, "phone,name,timezone,plan\n"+phone+",Maria Souza,UTC,Gold\n")
	p.waitJS("the call on the page", `document.getElementById('state').dataset.state === 'on_call' && !document.getElementById('screen-pop').hidden`, 20*time.Second)
	return agentID
}

// reload reloads p as the agent pressing F5 does.
func (p *page) reload() {
	p.t.Helper()
	p.do("reload", chromedp.Reload())
}

// TestBrowserAgentReloadMidCallKeepsTheCall: a Chromium agent talking to a sipp
// customer reloads the page. The page comes back with everything: the state and
// its timer counted from the server's change (not the reload), the screen-pop
// with the contact's history, the hang-up button, and the audio: the browser
// hears the customer again on its new session. The customer was never given
// up (the attempt ends connected, hung up by the agent). Reloaded again in
// wrap-up, the disposition box is filled and the disposition saves; the agent
// is ready again.
func TestBrowserAgentReloadMidCallKeepsTheCall(t *testing.T) {
	e, slot, c := presenceEnv(t, "answer-rtp.xml", 1)
	p := openBrowser(t, e)
	p.watchPeerConnections()
	agentID := onCall(t, p, e, slot, c, "+5511960000082")
	a, _ := slot.Agents().Get(agentID)
	// The timer must show the time since the call began, so let it grow first.
	for time.Since(a.Since) < 3*time.Second {
		time.Sleep(100 * time.Millisecond)
	}

	p.reload()
	p.waitJS("the call after the reload", `document.getElementById('state').dataset.state === 'on_call' &&
		!document.getElementById('screen-pop').hidden && !document.getElementById('hangup').hidden &&
		!document.getElementById('hangup').disabled && document.querySelectorAll('#history tbody tr').length === 1`, 15*time.Second)
	if got := p.text("#contact-name"); got != "Maria Souza" {
		t.Errorf("contact after the reload %q", got)
	}
	// The timer counts from the server's state change: at least the 3 s before
	// the reload.
	secs := eval[int](p, `(() => { const [m, s] = document.getElementById('state-time').textContent.split(':').map(Number); return m * 60 + s; })()`)
	if secs < 3 {
		t.Errorf("state timer after the reload shows %d s, want it counted from the call's start (≥ 3 s)", secs)
	}
	p.waitJS("audio after the reload", `document.getElementById('audio-status').dataset.state === 'connected'`, 15*time.Second)
	p.wantHeard("sipp after the reload", "audio/PCMU", "audio/opus")
	if a, _ := slot.Agents().Get(agentID); a.State != dialer.AgentOnCall {
		t.Fatalf("agent after the reload %+v, want still on the call", a)
	}
	p.shot("reloaded-on-call")

	p.do("hang up", chromedp.Click(chromedp.CSS("#hangup")))
	p.waitJS("wrap-up", `document.getElementById('state').dataset.state === 'wrap_up' && !document.getElementById('dispo').hidden`, 10*time.Second)
	p.reload()
	p.waitJS("disposition box after the reload", `document.getElementById('state').dataset.state === 'wrap_up' &&
		!document.getElementById('dispo').hidden && document.querySelectorAll('#dispo-codes input').length > 0 &&
		!document.getElementById('screen-pop').hidden`, 15*time.Second)
	p.shot("reloaded-wrap-up")
	p.do("choose sale", chromedp.Click(chromedp.CSS("#code-sale")))
	p.do("save disposition", chromedp.Click(chromedp.CSS("#dispo-submit")))
	// Ready again by itself once its audio is back; or paused with Ready to press.
	p.waitJS("ready after the disposition", `document.getElementById('dispo').hidden && (document.getElementById('state').dataset.state === 'ready' ||
		(document.getElementById('state').dataset.state === 'paused' && !document.getElementById('ready').disabled))`, 10*time.Second)

	id, _ := strconv.ParseInt(e.contacts(t, c.ID, "").Contacts[0].ID, 10, 64)
	attempts, err := e.db.ListAttempts(context.Background(), id)
	if err != nil || len(attempts) != 1 {
		t.Fatalf("attempts %+v (%v)", attempts, err)
	}
	if at := attempts[0]; at.Outcome != string(campaigns.OutcomeConnected) || at.HangupBy != "agent" || at.SafeHarbour != "" || at.Disposition != "sale" {
		t.Errorf("attempt %+v, want connected, hung up by the agent, without the safe-harbour message, disposition sale", at)
	}
}
