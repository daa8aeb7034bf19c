package web

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/sipchannel"
	"github.com/turbina-dialer/turbina/internal/phonetest"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/storage"
)

// presenceEnv is a server and engine whose SIP calls go to a sipp carrier
// playing scenario, with a running progressive campaign that has no contacts
// yet, agent1 assigned to it; configure, when given, changes the engine's
// configuration (runEngine).
func presenceEnv(t *testing.T, scenario string, calls int, configure ...func(*dialer.Config)) (*apiEnv, *engineSlot, campaignView) {
	t.Helper()
	carrier := sipptest.Start(t, scenario, sipptest.Options{Calls: calls})
	t.Cleanup(func() { carrier.Wait(t, 10*time.Second) })
	slot := &engineSlot{}
	e := newUIEnv(t, Config{Engine: slot})
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	o, err := sip.New(context.Background(), sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	slot.set(runEngine(t, e, map[campaigns.Channel]channel.Channel{campaigns.ChannelSIP: sipchannel.New(o)}, configure...))
	c := decode[campaignView](t, e.send(t, "POST", "/api/v1/campaigns", e.tokens[storage.RoleSales], map[string]any{
		"name": "Presence", "default_country": "BR", "caller_id": "+551130000000",
		"ladder":         []map[string]any{{"channel": "sip", "max_attempts": 1, "retry_delay": "1h"}},
		"calling_window": map[string]string{"start": "00:00", "end": "23:59"},
		"schedule":       map[string]string{"timezone": "UTC"},
		"holidays":       map[string]any{"national": false},
	}), http.StatusCreated)
	decode[any](t, e.send(t, "PATCH", "/api/v1/campaigns/"+c.ID+"/pacing", e.tokens[storage.RoleSupervisor], map[string]any{"mode": "progressive"}), http.StatusOK)
	e.assign(t, c.ID, e.users[storage.RoleAgent].ID)
	decode[any](t, e.action(t, c.ID, "start", storage.RoleSupervisor), http.StatusOK)
	return e, slot, c
}

func (e *apiEnv) assign(t *testing.T, campaignID string, userID int64) {
	t.Helper()
	decode[any](t, e.send(t, "POST", "/api/v1/campaigns/"+campaignID+"/agents", e.tokens[storage.RoleSupervisor],
		map[string]any{"user_id": userID}), http.StatusOK)
}

// agentTab signs p in as agent1, logs it in to its campaigns with its audio up
// and makes it ready. Its func closes the tab, as the agent closing it does.
func agentTab(t *testing.T, p *page, slot *engineSlot, agentID int64) func() {
	t.Helper()
	p.signIn("agent1", "/agent")
	p.waitJS("campaigns listed", `document.querySelectorAll('#campaign-list input[name=campaign]').length === 1`, 5*time.Second)
	p.do("log in to campaigns", chromedp.Click(chromedp.CSS("#agent-login")))
	p.waitJS("audio connected", `document.getElementById('audio-status').dataset.state === 'connected'`, 15*time.Second)
	for a, _ := slot.Agents().Get(agentID); !a.Audio || !a.Page; a, _ = slot.Agents().Get(agentID) {
		time.Sleep(20 * time.Millisecond)
	}
	p.do("ready", chromedp.Click(chromedp.CSS("#ready")))
	p.waitJS("ready", `document.getElementById('state').dataset.state === 'ready'`, 5*time.Second)
	return func() {
		t.Helper()
		// The tab goes with its page: Chromium answers no more on it.
		ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, func(ctx context.Context, _ *chromedp.Target) (chromedp.Void, error) {
			_, err := chromedp.Call(ctx, cdppage.Close, cdp.Empty{})
			return chromedp.Void{}, err
		}); err != nil {
			t.Logf("close the tab: %v", err)
		}
	}
}

// waitPaused waits up to 5 s from since for the agent to be paused with reason,
// measured on the engine's own stamp of the change.
func waitPaused(t *testing.T, slot *engineSlot, agentID int64, reason string, since time.Time) {
	t.Helper()
	var a dialer.Agent
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if a, _ = slot.Agents().Get(agentID); a.State == dialer.AgentPaused && a.Reason == reason {
			break
		}
	}
	if a.State != dialer.AgentPaused || a.Reason != reason {
		t.Fatalf("agent %+v, want paused (%s)", a, reason)
	}
	if took := a.Since.Sub(since); took > 5*time.Second {
		t.Errorf("paused (%s) %s after the loss, want within 5 s", reason, took)
	}
}

// TestBrowserAgentClosingTheTabWhileReadyIsPaused: a Chromium agent closes its tab
// while ready. It is paused (connection_lost) within 5 s, the supervisor's agent
// list says why, and the customer answered next goes to the other ready agent,
// never to the one who left.
func TestBrowserAgentClosingTheTabWhileReadyIsPaused(t *testing.T) {
	e, slot, c := presenceEnv(t, "answer.xml", 1)
	agentID := e.users[storage.RoleAgent].ID
	closeTab := agentTab(t, openBrowser(t, e), slot, agentID)

	closed := time.Now()
	closeTab()
	waitPaused(t, slot, agentID, dialer.ReasonConnectionLost, closed)
	// Asked to be ready again, the engine says what is missing.
	// (Through the API: the page is gone.)
	ready := e.send(t, "POST", "/api/v1/agent/ready", e.tokens[storage.RoleAgent], map[string]any{})
	if body := wantError(t, ready, http.StatusConflict, dialer.ReasonConnectionLost); body.Message == "" {
		t.Error("the refusal says nothing of what is missing")
	}

	// The supervisor sees why the agent is paused.
	p := openBrowser(t, e)
	p.signIn("supervisor1", "/supervisor")
	p.waitJS("agent row says connection lost", `[...document.querySelectorAll('#agents tbody tr .badge')].some((b) =>
		b.dataset.state === 'paused' && b.textContent.includes('connection lost'))`, 10*time.Second)
	p.shot("supervisor-connection-lost")

	// Another agent, an API client with no audio to lose, is ready; a customer
	// answers: it goes to that agent.
	other, tok := e.createUser(t, "agent2", storage.RoleAgent)
	e.assign(t, c.ID, other.ID)
	decode[any](t, e.send(t, "POST", "/api/v1/agent/login", tok, map[string]any{}), http.StatusOK)
	decode[any](t, e.send(t, "POST", "/api/v1/agent/ready", tok, map[string]any{}), http.StatusOK)
	e.importCSV(t, c.ID, "phone,name,timezone\n+5511987650031,Cliente,UTC\n")
	var got dialer.Agent
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got, _ = slot.Agents().Get(other.ID); got.State == dialer.AgentOnCall {
			break
		}
		if a, _ := slot.Agents().Get(agentID); a.State != dialer.AgentPaused {
			t.Fatalf("the agent who left is %s", a.State)
		}
	}
	if got.State != dialer.AgentOnCall {
		t.Fatalf("the ready agent never got the call: %+v", got)
	}
	decode[any](t, e.send(t, "POST", "/api/v1/agent/hangup", tok, map[string]any{}), http.StatusOK)
	// The hang-up is sent; the agent is in wrap-up once the run hears the call
	// ended, a moment later on a loaded machine.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if got, _ = slot.Agents().Get(other.ID); got.State == dialer.AgentWrapUp {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent who hung up is %s, not in wrap-up", got.State)
		}
	}
	decode[any](t, e.send(t, "POST", "/api/v1/agent/disposition", tok, map[string]any{"code": "sale"}), http.StatusOK)
	id, _ := strconv.ParseInt(e.contacts(t, c.ID, "").Contacts[0].ID, 10, 64)
	attempts, err := e.db.ListAttempts(context.Background(), id)
	if err != nil || len(attempts) != 1 || attempts[0].AgentID != other.ID {
		t.Fatalf("attempts %+v (%v), want one, put through to agent %d", attempts, err, other.ID)
	}
	if a, _ := slot.Agents().Get(agentID); a.State != dialer.AgentPaused || a.Reason != dialer.ReasonConnectionLost {
		t.Errorf("the agent who left ends %s (%s)", a.State, a.Reason)
	}
}

// TestBrowserAgentClosingTheTabOnACallLeavesNoCustomerInSilence: a Chromium
// agent talking to a sipp customer closes its tab. Once the page had its
// chance to come back (dialer.Config.AgentReturn, as a reload would), the
// customer hears the safe-harbour message and is hung up; the attempt is abandoned (hung up
// by agent_lost) and counts so in the campaign's figures, which the pacer and
// the compliance report use; the agent is not ready again.
func TestBrowserAgentClosingTheTabOnACallLeavesNoCustomerInSilence(t *testing.T) {
	// A page that never comes back need not be waited for the product's 8 s.
	const agentReturn = 2 * time.Second
	e, slot, c := presenceEnv(t, "answer-rtp.xml", 1, func(c *dialer.Config) { c.AgentReturn = agentReturn })
	agentID := e.users[storage.RoleAgent].ID
	p := openBrowser(t, e)
	closeTab := agentTab(t, p, slot, agentID)
	e.importCSV(t, c.ID, "phone,name,timezone\n+5511987650032,Cliente,UTC\n")
	p.waitJS("on the call", `document.getElementById('state').dataset.state === 'on_call'`, 20*time.Second)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if st, _ := slot.AgentAudio().Stats(agentID); st.ToAgent.Packets >= 25 && st.ToCustomer.Packets >= 25 {
			break
		}
	}

	closed := time.Now()
	closeTab()
	id, _ := strconv.ParseInt(e.contacts(t, c.ID, "").Contacts[0].ID, 10, 64)
	var a storage.Attempt
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		as, err := e.db.ListAttempts(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if a = as[0]; a.State == "ended" && a.SafeHarbour != "" {
			break
		}
	}
	if a.Outcome != string(campaigns.OutcomeAbandoned) || a.HangupBy != "agent_lost" || a.SafeHarbour != storage.SafeHarbourBuiltin || a.AgentID != agentID {
		t.Fatalf("attempt %+v, want abandoned, hung up by agent_lost, with the built-in safe-harbour message", a)
	}
	if a.EndAt == nil || a.EndAt.Sub(closed) > 20*time.Second {
		t.Errorf("the customer was hung up at %v, the tab closed at %v", a.EndAt, closed)
	} else if a.EndAt.Sub(closed) < agentReturn {
		t.Errorf("the customer was hung up %v after the tab closed, before the page's %v to come back", a.EndAt.Sub(closed), agentReturn)
	}
	cid, _ := strconv.ParseInt(c.ID, 10, 64)
	st, err := e.db.CampaignStats(context.Background(), cid)
	if err != nil {
		t.Fatal(err)
	}
	if st.Abandoned != 1 {
		t.Errorf("campaign stats %+v, want the call counted abandoned", st)
	}
	// The agent is left in wrap-up (its page may come back to close the call);
	// it is not ready, and cannot be made so without its page and audio.
	ag, _ := slot.Agents().Get(agentID)
	if ag.State != dialer.AgentWrapUp || ag.Page || ag.Audio {
		t.Errorf("agent after the loss %+v, want in wrap-up without page or audio", ag)
	}
	decode[any](t, e.send(t, "POST", "/api/v1/agent/disposition", e.tokens[storage.RoleAgent], map[string]any{"code": "sale"}), http.StatusOK)
	if ag, _ := slot.Agents().Get(agentID); ag.State != dialer.AgentPaused || ag.Reason != dialer.ReasonConnectionLost {
		t.Errorf("agent after the disposition %s (%s), want paused (connection_lost)", ag.State, ag.Reason)
	}
}

// TestUnregisteredPhoneKeepsTheAgentOutOfCalls: an agent logs in with a SIP phone
// that is not registered. The login answers 409 phone_unavailable and the agent
// stays logged in but paused (no_audio), never ready without audio: Ready is
// refused saying the phone is missing. Once the phone (baresip) registers, the
// same login nails it up and the agent may go ready.
func TestUnregisteredPhoneKeepsTheAgentOutOfCalls(t *testing.T) {
	slot := &engineSlot{}
	e := newEnv(t, Config{Engine: slot})
	agentID := e.users[storage.RoleAgent].ID
	reg := phonetest.Registrar(t, sip.RegistrarConfig{}, map[string]int64{"agent1": agentID})
	slot.set(runEngine(t, e, nil, func(c *dialer.Config) { c.Registrar = reg }))
	c := e.createCampaign(t, "Phones")
	e.assign(t, c.ID, agentID)
	tok := e.tokens[storage.RoleAgent]

	wantError(t, e.send(t, "POST", "/api/v1/agent/login", tok, map[string]any{"audio": "phone"}), http.StatusConflict, "phone_unavailable")
	a := decode[dialer.Agent](t, e.get(t, "/api/v1/agent", tok), http.StatusOK)
	if a.State != dialer.AgentPaused || a.Reason != dialer.ReasonNoAudio || a.Audio || a.Media != dialer.MediaPhone {
		t.Fatalf("agent after the refused phone %+v, want paused (no_audio) without audio", a)
	}
	refused := wantError(t, e.send(t, "POST", "/api/v1/agent/ready", tok, map[string]any{}), http.StatusConflict, dialer.ReasonNoAudio)
	if !strings.Contains(refused.Message, "SIP phone") {
		t.Errorf("ready refused with %q, want it to name the phone", refused.Message)
	}
	if a, _ := slot.Agents().Get(agentID); a.State != dialer.AgentPaused {
		t.Fatalf("agent %+v after the refused ready", a)
	}
	wantError(t, e.send(t, "POST", "/api/v1/agent/login", tok, map[string]any{"audio": "bluetooth"}), http.StatusUnprocessableEntity, "validation_failed")

	// The phone registers: logging in again connects it and the agent may go ready.
	phonetest.Start(t, reg, "agent1", agentID)
	decode[any](t, e.send(t, "POST", "/api/v1/agent/login", tok, map[string]any{"audio": "phone"}), http.StatusOK)
	if a := decode[dialer.Agent](t, e.send(t, "POST", "/api/v1/agent/ready", tok, map[string]any{}), http.StatusOK); a.State != dialer.AgentReady || !a.Audio {
		t.Errorf("agent with its phone connected %+v, want ready with audio", a)
	}
}
