package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/storage"
)

// TestBrowserSupervisorMovesAnAgentAndTakesATrunkOut: from the wallboard, a
// supervisor moves a ready agent from a preview campaign to a progressive one (the
// engine dials for the agent within a second, and the agent no longer belongs to
// the first campaign), then takes the SIP trunk out of service and puts it back
// (the originator's trunk follows within a second); both land in the audit log.
func TestBrowserSupervisorMovesAnAgentAndTakesATrunkOut(t *testing.T) {
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	// A trunk nobody answers: this test never calls through it, it only switches it.
	o, err := sip.New(context.Background(), sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: "127.0.0.1:9"}}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	ch := &holdChannel{}
	slot := &engineSlot{}
	e := newUIEnv(t, Config{Engine: slot, TrunkControl: o, TrunkStatus: func() any { return o.Trunks() }})
	slot.set(runEngine(t, e, map[campaigns.Channel]channel.Channel{campaigns.ChannelSIP: ch}))
	ladder := []map[string]any{{"channel": "sip", "max_attempts": 1, "retry_delay": "1h"}}
	from := runningCampaign(t, e, "Cobrança", "preview", ladder, "+5511987650101")
	to := runningCampaign(t, e, "Vendas", "progressive", ladder, "+5511987650102")
	agentID := e.users[storage.RoleAgent].ID
	if r := e.do(t, request{method: "DELETE", path: fmt.Sprintf("/api/v1/campaigns/%s/agents/%d", to.ID, agentID), token: e.tokens[storage.RoleSupervisor]}); r.status != http.StatusNoContent {
		t.Fatalf("unassign: %d %s", r.status, r.body)
	}
	agent := e.tokens[storage.RoleAgent]
	decode[any](t, e.send(t, "POST", "/api/v1/agent/login", agent, map[string]any{}), http.StatusOK)
	decode[any](t, e.send(t, "POST", "/api/v1/agent/ready", agent, map[string]any{}), http.StatusOK)

	p := openBrowser(t, e)
	p.signIn("supervisor1", "/supervisor")
	p.waitJS("agent row", `document.querySelector('#agents tbody tr .badge')?.dataset.state === 'ready'`, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	if _, ok := ch.firstPlaced(); ok {
		t.Fatal("the engine dialled for an agent of a preview campaign")
	}

	// Move the agent to the progressive campaign.
	p.do("choose the campaign", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`(() => { const s = document.querySelector('#agents tbody tr select.move'); s.value = '%s'; s.dispatchEvent(new Event('change', {bubbles: true})); })()`, to.ID)))
	clicked := time.Now()
	p.do("move", chromedp.Click(chromedp.CSS("#agents tbody tr select.move + button")))
	ch.waitFirstDial(t, clicked, "Move")
	// The move is an assignment to the new campaign, then the end of the old one.
	for a, _ := slot.get().Agents().Get(agentID); len(a.Campaigns) != 1 || fmt.Sprint(a.Campaigns[0]) != to.ID; a, _ = slot.get().Agents().Get(agentID) {
		if time.Since(clicked) > time.Second {
			t.Fatalf("a second after Move the agent works campaigns %v, want only %s", a.Campaigns, to.ID)
		}
		time.Sleep(10 * time.Millisecond)
	}
	assigned, err := e.db.AgentCampaigns(context.Background(), agentID)
	if err != nil || len(assigned) != 1 || fmt.Sprint(assigned[0]) != to.ID {
		t.Errorf("stored assignment %v %v, want only %s (moved from %s)", assigned, err, to.ID, from.ID)
	}
	p.waitJS("assignment shown", `document.querySelector('#agents tbody tr .assigned').textContent === 'Vendas'`, 3*time.Second)

	// Take the trunk out of service, then put it back.
	for _, step := range []struct {
		button string
		out    bool
		next   string
	}{{"Take out of service", true, "Put back in service"}, {"Put back in service", false, "Take out of service"}} {
		p.waitJS("trunk button "+step.button, fmt.Sprintf(`document.querySelector('#trunks tbody button')?.textContent === %q`, step.button), 5*time.Second)
		clicked := time.Now()
		p.do(step.button, chromedp.Click(chromedp.CSS("#trunks tbody button")))
		if step.out {
			// Taking a trunk out is asked once more; the trunk stays in until confirmed.
			p.waitJS("confirmation", `document.getElementById('confirm-trunk').open`, 3*time.Second)
			if o.Trunks()[0].OutOfService {
				t.Fatal("the trunk went out of service before the confirmation")
			}
			p.do("confirm", chromedp.Click(chromedp.CSS("#confirm-takeout")))
		}
		for o.Trunks()[0].OutOfService != step.out {
			if time.Since(clicked) > time.Second {
				t.Fatalf("%s: the trunk's out_of_service is still %v a second later", step.button, !step.out)
			}
			time.Sleep(10 * time.Millisecond)
		}
		p.waitJS("trunk button becomes "+step.next, fmt.Sprintf(`document.querySelector('#trunks tbody button')?.textContent === %q`, step.next), 3*time.Second)
		if step.out {
			p.shot("trunk-out")
		}
	}
	p.waitJS("audit entries", `['put User agent1 on campaign Vendas', 'took User agent1 off campaign Cobrança', 'took trunk carrier out of service', 'put trunk carrier back in service'].every((a) => [...document.querySelectorAll('#audit li')].some((li) => li.textContent.includes('User supervisor1 (Supervisor) ' + a)))`, 3*time.Second)
}
