package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
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
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/storage"
)

// dialsOf counts the attempts of a campaign: the calls the engine placed.
func dialsOf(t *testing.T, e *apiEnv, campaignID string) int {
	t.Helper()
	id, err := strconv.ParseInt(campaignID, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.db.CampaignStats(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st.Dials
}

// agentReady signs the agent in on its page, logs it in to its campaigns and
// makes it ready once its browser audio is up.
func (p *page) agentReady(e *apiEnv, agents *dialer.Agents) {
	p.t.Helper()
	p.signIn("agent1", "/agent")
	p.waitJS("campaigns listed", `document.querySelectorAll('#campaign-list input[name=campaign]').length === 1`, 5*time.Second)
	p.do("log in to campaigns", chromedp.Click(chromedp.CSS("#agent-login")))
	p.waitJS("audio connected", `document.getElementById('audio-status').dataset.state === 'connected'`, 15*time.Second)
	agentID := e.users[storage.RoleAgent].ID
	for a, _ := agents.Get(agentID); !a.Audio; a, _ = agents.Get(agentID) {
		time.Sleep(20 * time.Millisecond)
	}
	p.do("ready", chromedp.Click(chromedp.CSS("#ready")))
}

func TestBrowserPreviewAgentSeesTheContactCallsOrSkipsIt(t *testing.T) {
	t.Parallel()
	carrier := sipptest.Start(t, "answer-rtp.xml", sipptest.Options{Calls: 1})
	slot := &engineSlot{}
	e := newUIEnv(t, Config{Engine: slot})
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	o, err := sip.New(context.Background(), sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	slot.set(runEngine(t, e, map[campaigns.Channel]channel.Channel{campaigns.ChannelSIP: sipchannel.New(o)}))
	c := runningCampaign(t, e, "Preview", "preview", []map[string]any{{"channel": "sip", "max_attempts": 1, "retry_delay": "1h"}},
		"+5511987650001", "+5511987650002", "+5511987650003")

	p := openBrowser(t, e)
	p.agentReady(e, slot.get().Agents())

	// The next contact shows before any call: its screen-pop, Call and Skip.
	p.waitJS("preview shown", `!document.getElementById('preview').hidden && document.getElementById('contact-phone').textContent !== ''`, 10*time.Second)
	first := p.text("#contact-phone")
	firstID := eval[string](p, `document.getElementById('preview').dataset.contact`)
	time.Sleep(700 * time.Millisecond)
	if n := dialsOf(t, e, c.ID); n != 0 {
		t.Fatalf("%d calls placed before the agent pressed Call", n)
	}
	if got := p.text("#preview-dial"); got != "Call" {
		t.Errorf("dial button %q", got)
	}
	p.shot("preview")

	// Skip with a reason and a note, from the keyboard: the next contact shows.
	p.do("choose reason", chromedp.SetValue(chromedp.CSS("#skip-reason"), "missing_data"))
	p.do("type note", chromedp.SendKeys(chromedp.CSS("#skip-note"), "sem nome"))
	p.do("skip", chromedp.Focus(chromedp.CSS("#preview-skip")), chromedp.KeyEvent("\r"))
	p.waitJS("next contact", fmt.Sprintf(`!document.getElementById('preview').hidden && document.getElementById('preview').dataset.contact !== %q`, firstID), 5*time.Second)
	second := p.text("#contact-phone")
	if second == first {
		t.Fatalf("the skipped contact %s is shown again", first)
	}
	cid, _ := strconv.ParseInt(firstID, 10, 64)
	skips, err := e.db.ListSkips(context.Background(), cid)
	if err != nil {
		t.Fatal(err)
	}
	if len(skips) != 1 || skips[0].Reason != "missing_data" || skips[0].Note != "sem nome" || skips[0].AgentID != e.users[storage.RoleAgent].ID {
		t.Errorf("skips of %s: %+v", first, skips)
	}
	if n := dialsOf(t, e, c.ID); n != 0 {
		t.Fatalf("%d calls placed after a skip", n)
	}

	// Call: the call connects to this agent, with the screen-pop.
	p.do("call", chromedp.Click(chromedp.CSS("#preview-dial")))
	// On the call, or told why not.
	agentID := e.users[storage.RoleAgent].ID
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		page := eval[string](p, `document.getElementById('state').dataset.state + '|' + document.getElementById('preview').hidden + '|' +
			document.getElementById('agent-status').className + '|' + document.getElementById('agent-status').textContent`)
		if strings.HasPrefix(page, "on_call|true|") {
			break
		}
		if time.Now().After(deadline) {
			a, _ := slot.get().Agents().Get(agentID)
			p.shot("not-on-call")
			if as, err := e.db.ListAttempts(context.Background(), 2); err == nil {
				for _, at := range as {
					t.Logf("attempt %+v detail %s", at, at.Detail)
				}
			}
			t.Fatalf("not on the call after Call: page %q, engine agent %+v, %d calls placed", page, a, dialsOf(t, e, c.ID))
		}
	}
	if got := p.text("#contact-phone"); got != second {
		t.Errorf("on a call with %s, want %s", got, second)
	}
	p.shot("preview-call")
	list := e.contacts(t, c.ID, "")
	for _, ct := range list.Contacts {
		id, _ := strconv.ParseInt(ct.ID, 10, 64)
		as, err := e.db.ListAttempts(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case campaigns.DisplayPhone(ct.Phone) == second && (len(as) != 1 || as[0].AgentID != e.users[storage.RoleAgent].ID):
			t.Errorf("attempts of the dialled contact: %+v", as)
		case campaigns.DisplayPhone(ct.Phone) != second && len(as) != 0:
			t.Errorf("contact %s was called: %+v", ct.Phone, as)
		}
	}
	p.do("hang up", chromedp.Click(chromedp.CSS("#hangup")))
	p.waitJS("disposition form", `!document.getElementById('dispo').hidden`, 10*time.Second)
	carrier.Wait(t, 10*time.Second)
}

func TestBrowserPreviewInPortuguese(t *testing.T) {
	t.Parallel()
	slot := &engineSlot{}
	e := newUIEnv(t, Config{Engine: slot})
	ch := &holdChannel{}
	slot.set(runEngine(t, e, map[campaigns.Channel]channel.Channel{campaigns.ChannelSIP: ch}))
	runningCampaign(t, e, "Prévia", "preview", []map[string]any{{"channel": "sip", "max_attempts": 1, "retry_delay": "1h"}}, "+5511987650001")
	p := openBrowser(t, e)
	p.agentReady(e, slot.get().Agents())
	p.waitJS("preview shown", `!document.getElementById('preview').hidden`, 10*time.Second)
	p.do("switch language", chromedp.SetValue(chromedp.CSS("#lang-switch"), "pt-BR"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('lang-switch').dispatchEvent(new Event('change'))`))
	for sel, want := range map[string]string{"#preview-dial": "Ligar", "#preview-skip": "Pular"} {
		if got := p.text(sel); got != want {
			t.Errorf("%s reads %q, want %q", sel, got, want)
		}
	}
	if got := eval[string](p, `document.querySelector('#skip-reason option[value=not_now]').textContent`); got != "Agora não" {
		t.Errorf("skip reason in Portuguese %q", got)
	}
	p.shot("preview-pt-BR")

	// The number goes on the do-not-call list: Ligar is refused, with the reason
	// in the agent's language, and nothing is dialled.
	const phone = "+5511987650001"
	if got := p.text("#contact-phone"); got != "(11) 98765-0001" {
		t.Errorf("the contact's number reads %q, want (11) 98765-0001", got)
	}
	decode[any](t, e.send(t, "POST", "/api/v1/dnc", e.tokens[storage.RoleSupervisor], map[string]any{"phones": []string{phone}}), http.StatusOK)
	p.do("call", chromedp.Click(chromedp.CSS("#preview-dial")))
	p.waitJS("refusal shown", `document.getElementById('agent-status').dataset.code === 'policy_refused' && !document.getElementById('agent-status').hidden`, 5*time.Second)
	if got := p.text("#agent-status"); !strings.Contains(got, "na lista de não ligar") {
		t.Errorf("refusal reads %q, want the do-not-call reason in Portuguese", got)
	}
	p.shot("preview-refused")
	if n := len(ch.placedTimes()); n != 0 {
		t.Errorf("%d calls placed to a do-not-call number", n)
	}
}

func TestBrowserProgressiveDialsOneLinePerReadyAgent(t *testing.T) {
	t.Parallel()
	ch := &holdChannel{}
	slot := &engineSlot{}
	e := newUIEnv(t, Config{Engine: slot})
	slot.set(runEngine(t, e, map[campaigns.Channel]channel.Channel{campaigns.ChannelSIP: ch}))
	c := runningCampaign(t, e, "Progressive", "progressive", []map[string]any{{"channel": "sip", "max_attempts": 1, "retry_delay": "1h"}},
		"+5511987650001", "+5511987650002", "+5511987650003", "+5511987650004", "+5511987650005")
	// A second agent, through the API.
	other, tok := e.createUser(t, "agent2", storage.RoleAgent)
	decode[any](t, e.send(t, "POST", "/api/v1/campaigns/"+c.ID+"/agents", e.tokens[storage.RoleSupervisor],
		map[string]any{"user_id": other.ID}), http.StatusOK)
	decode[any](t, e.send(t, "POST", "/api/v1/agent/login", tok, map[string]any{}), http.StatusOK)
	decode[any](t, e.send(t, "POST", "/api/v1/agent/ready", tok, map[string]any{}), http.StatusOK)
	// One ready agent: one line.
	for deadline := time.Now().Add(3 * time.Second); len(ch.placedTimes()) < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no call for the ready agent")
		}
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(ch.placedTimes()); n != 1 {
		t.Fatalf("%d calls for one ready agent", n)
	}
	// The browser agent is ready too: exactly two calls in flight.
	p := openBrowser(t, e)
	p.agentReady(e, slot.get().Agents())
	p.waitJS("ready", `document.getElementById('state').dataset.state === 'ready'`, 5*time.Second)
	for deadline := time.Now().Add(3 * time.Second); len(ch.placedTimes()) < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no call for the second ready agent")
		}
	}
	time.Sleep(time.Second)
	if n := len(ch.placedTimes()); n != 2 {
		t.Errorf("%d calls in flight for two ready agents, want 2", n)
	}
	if n := dialsOf(t, e, c.ID); n != 2 {
		t.Errorf("%d attempts stored for two ready agents, want 2", n)
	}
}
