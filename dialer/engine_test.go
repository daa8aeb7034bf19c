package dialer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/sipchannel"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/storage"
)

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// harness is an engine over a real SQLite file, dialling real sipp carriers.
type harness struct {
	mu     sync.Mutex
	events []AgentEvent // every agent's screen-pops and call ends, in order
	t      testing.TB
	store  *storage.DB
	engine *Engine
	cancel context.CancelFunc
	done   chan struct{}
}

func newHarness(t *testing.T, sipCfg sip.Config) *harness {
	t.Helper()
	return newHarnessWith(t, sipCfg, Config{})
}

// newHarnessWith is newHarness with engine settings beyond the tests' short timers; a
// RingTimeout left 0 is the tests' 3 s.
func newHarnessWith(t *testing.T, sipCfg sip.Config, cfg Config) *harness {
	t.Helper()
	return newHarnessOn(t, filepath.Join(t.TempDir(), "turbina.db"), storage.Options{}, sipCfg, cfg)
}

// newHarnessOn is newHarnessWith on the database file at path, opened with opts.
func newHarnessOn(t *testing.T, path string, opts storage.Options, sipCfg sip.Config, cfg Config) *harness {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return newHarnessLogging(t, path, opts, sipCfg, cfg, log)
}

// newHarnessLogging is newHarnessOn with the engine logging to log.
func newHarnessLogging(t *testing.T, path string, opts storage.Options, sipCfg sip.Config, cfg Config, log *slog.Logger) *harness {
	t.Helper()
	ctx := context.Background()
	store, err := storage.Open(ctx, path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	o, err := sip.New(ctx, sipCfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	cfg.Tick, cfg.Sync = 50*time.Millisecond, 100*time.Millisecond
	if cfg.RingTimeout == 0 {
		cfg.RingTimeout = 3 * time.Second
	}
	e := New(store, map[campaigns.Channel]channel.Channel{campaigns.ChannelSIP: sipchannel.New(o)}, NewAgents(), cfg, log)
	return runEngine(ctx, t, store, e)
}

// runEngine runs e until the test ends, and returns once it has joined: the
// test's own writes (an attempt it makes up) are not then taken for what a
// stopped run left.
func runEngine(ctx context.Context, t testing.TB, store *storage.DB, e *Engine) *harness {
	t.Helper()
	runCtx, cancel := context.WithCancel(ctx)
	h := &harness{t: t, store: store, engine: e, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		if err := e.Run(runCtx); err != nil {
			t.Errorf("engine: %v", err)
		}
	}()
	t.Cleanup(h.stop)
	select {
	case <-e.joined:
	case <-h.done:
		t.Fatal("the engine stopped before it joined")
	case <-time.After(20 * time.Second):
		t.Fatal("the engine did not join in 20 s")
	}
	return h
}

func (h *harness) stop() {
	h.cancel()
	<-h.done
}

var tester = storage.Actor{Username: "test"}

// campaign creates a running campaign with n contacts.
func (h *harness) campaign(n int, mode campaigns.PacingMode, ladder []campaigns.Rung) campaigns.Campaign {
	h.t.Helper()
	c := h.draft(n, mode, ladder)
	h.setState(c.ID, campaigns.StateRunning)
	return c
}

// draft creates a draft campaign with n contacts.
func (h *harness) draft(n int, mode campaigns.PacingMode, ladder []campaigns.Rung) campaigns.Campaign {
	h.t.Helper()
	ctx := context.Background()
	c := campaigns.Campaign{Name: "test", CallerID: "+551130000000", Ladder: ladder}
	c.ApplyDefaults()
	c.Pacing.Mode = mode
	// Whatever the hour the tests run at, the window is open.
	c.Window = campaigns.Window{Start: 0, End: 24*60 - 1}
	if err := c.Validate(); err != nil {
		h.t.Fatal(err)
	}
	if err := h.store.CreateCampaign(ctx, tester, &c); err != nil {
		h.t.Fatal(err)
	}
	b, err := h.store.BeginImport(ctx, tester, c.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	for i := range n {
		if _, err := b.Add(ctx, campaigns.Contact{Phone: fmt.Sprintf("+55119876500%02d", i), Timezone: "UTC", Line: i + 2}); err != nil {
			h.t.Fatal(err)
		}
	}
	if _, err := b.Finish(ctx, nil); err != nil {
		h.t.Fatal(err)
	}
	return c
}

func (h *harness) setState(id int64, st campaigns.State) {
	h.t.Helper()
	if _, err := h.store.UpdateCampaign(context.Background(), tester, id, "test", func(c *campaigns.Campaign) error {
		c.State = st
		return nil
	}); err != nil {
		h.t.Fatal(err)
	}
	h.engine.CampaignChanged()
}

// run sets campaign id running and waits until the engine runs it: an inbound
// call or webhook before would find no running campaign.
func (h *harness) run(id int64) {
	h.t.Helper()
	h.setState(id, campaigns.StateRunning)
	deadline := time.Now().Add(20 * time.Second)
	for !slices.Contains(h.engine.Cluster().Campaigns, id) {
		if time.Now().After(deadline) {
			h.t.Fatalf("the engine does not run campaign %d 20 s after it was set running", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// agents logs in n agents to a campaign and plays them: each talks for talk, then
// hangs up and dispositions the call as a sale.
func (h *harness) agents(campaignID int64, n int, talk time.Duration) []int64 {
	h.t.Helper()
	return h.agentsClosing(campaignID, n, talk, func(Agent) Close { return Close{Code: "sale"} })
}

// agentsClosing is agents with the disposition chosen by closeCall.
func (h *harness) agentsClosing(campaignID int64, n int, talk time.Duration, closeCall func(Agent) Close) []int64 {
	h.t.Helper()
	ids := h.readyAgents(campaignID, n)
	pool := h.engine.Agents()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for _, a := range pool.List() {
				switch {
				case a.State == AgentOnCall && time.Since(a.Since) >= talk:
					h.engine.Hangup(ctx, a.ID)
				case a.State == AgentWrapUp && slices.Contains(ids, a.ID):
					err := h.engine.Disposition(ctx, a.ID, closeCall(a))
					// The wrap-up may have ended by its timeout meanwhile (a test that
					// moves the engine's clock on by hours): nothing left to close.
					if now, _ := pool.Get(a.ID); errors.Is(err, ErrNoCall) && (now.State != AgentWrapUp || now.AttemptID != a.AttemptID) {
						err = nil
					}
					if err != nil && ctx.Err() == nil {
						h.t.Errorf("disposition: %v", err)
					}
				}
			}
		}
	}()
	h.t.Cleanup(func() { cancel(); wg.Wait() })
	return ids
}

// readyAgents logs in n agents to a campaign, ready for calls, and records their
// events; the test plays them.
func (h *harness) readyAgents(campaignID int64, n int) []int64 {
	h.t.Helper()
	pool := h.engine.Agents()
	now := time.Now()
	var ids []int64
	for i := range n {
		u := storage.User{Username: fmt.Sprintf("agent%d-%d", campaignID, i), Role: storage.RoleAgent}
		if err := h.store.CreateUser(context.Background(), tester, &u); err != nil {
			h.t.Fatal(err)
		}
		ids = append(ids, u.ID)
		events, stop := h.engine.Subscribe(u.ID)
		h.t.Cleanup(stop)
		go func() {
			for ev := range events {
				if ev.Kind != EventState {
					h.mu.Lock()
					h.events = append(h.events, ev)
					h.mu.Unlock()
				}
			}
		}()
		pool.Login(u.ID, u.Username, []int64{campaignID}, now)
		if _, err := pool.Ready(u.ID, now); err != nil {
			h.t.Fatal(err)
		}
	}
	return ids
}

// waitOnCall waits until agent is on a call; call names it when ctx ends first.
func (h *harness) waitOnCall(ctx context.Context, agent int64, call string) {
	h.t.Helper()
	for a, _ := h.engine.Agents().Get(agent); a.State != AgentOnCall; a, _ = h.engine.Agents().Get(agent) {
		if ctx.Err() != nil {
			h.t.Fatalf("%s never reached the agent", call)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitContacts waits until every contact of the campaign satisfies ok.
func (h *harness) waitContacts(campaignID int64, within time.Duration, ok func(campaigns.Contact) bool) []campaigns.Contact {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		list, _, err := h.store.ListContacts(context.Background(), campaignID, storage.ContactFilter{Limit: 1000})
		if err != nil {
			h.t.Fatal(err)
		}
		all := true
		for _, c := range list {
			all = all && ok(c)
		}
		if all {
			return list
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("contacts not settled within %s: %+v", within, list)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitAttemptsWhere waits until the contact's attempts satisfy ok, which want
// describes. The agent learns of a call before the run records it, so a test that
// saw the agent move reads the attempts through this.
func (h *harness) waitAttemptsWhere(ctx context.Context, contactID int64, want string, ok func([]storage.Attempt) bool) []storage.Attempt {
	h.t.Helper()
	for {
		as := h.attempts(contactID)
		if ok(as) {
			return as
		}
		if ctx.Err() != nil {
			h.t.Fatalf("attempts %+v, want %s", as, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) attempts(contactID int64) []storage.Attempt {
	h.t.Helper()
	a, err := h.store.ListAttempts(context.Background(), contactID)
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

func sipOnlyLadder(attempts int) []campaigns.Rung {
	return []campaigns.Rung{{Channel: campaigns.ChannelSIP, MaxAttempts: attempts, RetryDelay: campaigns.Duration(time.Hour)}}
}

func TestEngineConnectsAnsweredCallsToAgents(t *testing.T) {
	const contacts = 6
	carrier := sipptest.Start(t, "answer.xml", sipptest.Options{Calls: contacts})
	h := newHarness(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}})
	c := h.campaign(contacts, campaigns.PacingProgressive, sipOnlyLadder(1))
	h.agents(c.ID, 2, 200*time.Millisecond)

	list := h.waitContacts(c.ID, 20*time.Second, func(ct campaigns.Contact) bool { return ct.Status == campaigns.ContactDone })
	for _, ct := range list {
		as := h.attempts(ct.ID)
		if len(as) != 1 {
			t.Fatalf("contact %s: %d attempts, want 1", ct.Phone, len(as))
		}
		a := as[0]
		if a.Outcome != string(campaigns.OutcomeConnected) || a.SIPStatus != 200 || a.Trunk != "carrier" || a.AgentID == 0 ||
			a.HangupBy != "agent" || a.SetupAt == nil || a.AnswerAt == nil || a.ConnectAt == nil || a.EndAt == nil {
			t.Errorf("contact %s attempt: %+v", ct.Phone, a)
		}
		if a.ConnectAt != nil && a.AnswerAt != nil && a.ConnectAt.Sub(*a.AnswerAt) > 2*time.Second {
			t.Errorf("contact %s waited %s for an agent", ct.Phone, a.ConnectAt.Sub(*a.AnswerAt))
		}
	}
	// Every call, BYE included, followed the carrier's scenario.
	carrier.Wait(t, 10*time.Second)
	// Dispositions land once wrap-up ends.
	deadline := time.Now().Add(5 * time.Second)
	for _, ct := range list {
		for h.attempts(ct.ID)[0].Disposition != "sale" {
			if time.Now().After(deadline) {
				t.Fatalf("contact %s: no disposition stored", ct.Phone)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	st, err := h.store.CampaignStats(context.Background(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Dials != contacts || st.Connected != contacts || st.Abandoned != 0 || st.Channels["sip"].Reached != contacts {
		t.Errorf("stats %+v", st)
	}
	// Each agent saw who it was talking to as the call connected, then its end.
	h.mu.Lock()
	defer h.mu.Unlock()
	popped, ended := map[string]bool{}, 0
	for _, ev := range h.events {
		switch ev.Kind {
		case EventScreenPop:
			p := ev.ScreenPop
			if p.Channel != campaigns.ChannelSIP || p.Direction != storage.DirectionOutbound || p.CampaignName != "test" || len(p.History) != 1 || len(p.Dispositions) == 0 {
				t.Errorf("screen-pop %+v", p)
			}
			// The history shows this call answered: its progress is written
			// before the agent is told.
			if len(p.History) == 1 && (p.History[0].ID != p.AttemptID || p.History[0].AnswerAt == nil || p.History[0].State == "dialing" || p.History[0].State == "ringing") {
				t.Errorf("screen-pop's history %+v, want attempt %d answered", p.History[0], p.AttemptID)
			}
			popped[p.Contact.Phone] = true
		case EventCallEnded:
			ended++
		}
	}
	if len(popped) != contacts || ended != contacts {
		t.Errorf("%d screen-pops for distinct contacts and %d call ends, want %d each", len(popped), ended, contacts)
	}
}

// deadTrunk is a SIP config with one trunk nothing listens on: INVITEs go
// unanswered for 300 ms, and two such faults open its circuit, which stays open.
func deadTrunk(t *testing.T) sip.Config {
	t.Helper()
	return sip.Config{
		Trunks:        []sip.TrunkConfig{{Name: "dead", Address: fmt.Sprintf("127.0.0.1:%d", sipptest.FreePort(t))}},
		InviteTimeout: sip.Duration(300 * time.Millisecond),
		FaultsToOpen:  2,
		FaultWindow:   sip.Duration(10 * time.Second),
		ProbeInterval: sip.Duration(time.Hour),
	}
}

func TestEngineSendsContactsToTheNextRungWhenEveryTrunkIsDown(t *testing.T) {
	h := newHarness(t, deadTrunk(t))
	ladder := []campaigns.Rung{
		{Channel: campaigns.ChannelSIP, MaxAttempts: 3, RetryDelay: campaigns.Duration(time.Hour)},
		{Channel: campaigns.ChannelWhatsAppCall, MaxAttempts: 1},
	}
	c := h.campaign(8, campaigns.PacingProgressive, ladder)
	h.agents(c.ID, 2, time.Second)

	// Two calls fault and open the circuit; every other contact then leaves the SIP
	// rung without an attempt reaching the network. A faulted call moves on at once
	// too, not after the rung's retry delay. With no WhatsApp channel here the next
	// rung is skipped, and every contact is exhausted.
	var list []campaigns.Contact
	deadline := time.Now().Add(15 * time.Second)
	for settled := false; !settled; {
		if time.Now().After(deadline) {
			t.Fatalf("contacts not settled: %+v", list)
		}
		time.Sleep(50 * time.Millisecond)
		var err error
		if list, _, err = h.store.ListContacts(context.Background(), c.ID, storage.ContactFilter{}); err != nil {
			t.Fatal(err)
		}
		settled = true
		for _, ct := range list {
			if ct.Status != campaigns.ContactExhausted {
				settled = false
			}
		}
	}
	moved, faulted := 0, 0
	for _, ct := range list {
		as := h.attempts(ct.ID)
		if len(as) != 2 || as[0].Channel != campaigns.ChannelSIP || as[1].Channel != campaigns.ChannelWhatsAppCall ||
			as[1].Outcome != string(campaigns.OutcomeNoChannel) {
			t.Errorf("contact %s attempts %+v", ct.Phone, as)
			continue
		}
		switch campaigns.Outcome(as[0].Outcome) {
		case campaigns.OutcomeChannelDown:
			moved++
		case campaigns.OutcomeTrunkFault:
			faulted++
		default:
			t.Errorf("contact %s: SIP attempt %s, want channel_down or trunk_fault", ct.Phone, as[0].Outcome)
		}
		if gap := as[1].CreatedAt.Sub(*as[0].EndAt); gap > time.Second {
			t.Errorf("contact %s reached the next rung %s after the SIP attempt ended %s, want ≤ 1 s", ct.Phone, gap, as[0].Outcome)
		}
	}
	if moved < 5 || faulted < 2 {
		t.Errorf("%d contacts moved on after the circuit opened (want ≥ 5), %d faulted before (want ≥ 2)", moved, faulted)
	}
	st, err := h.store.CampaignStats(context.Background(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if pending := st.Contacts[string(campaigns.ContactPending)]; len(st.ContactsByRung) != min(pending, 1) || pending > 0 && st.ContactsByRung[0] != pending {
		t.Errorf("contacts by rung %v with %d pending on the SIP rung", st.ContactsByRung, pending)
	}
}

func TestEnginePauseStopsNewDialsAtOnce(t *testing.T) {
	carrier := sipptest.Start(t, "answer.xml", sipptest.Options{Calls: 40})
	h := newHarness(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}})
	c := h.campaign(40, campaigns.PacingProgressive, sipOnlyLadder(1))
	h.agents(c.ID, 2, 150*time.Millisecond)
	h.waitAttempts(c.ID, 3, 10*time.Second)

	h.setState(c.ID, campaigns.StatePaused)
	pausedAt := time.Now()
	time.Sleep(time.Second)
	list, _, err := h.store.ListContacts(context.Background(), c.ID, storage.ContactFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	late := 0
	for _, ct := range list {
		for _, a := range h.attempts(ct.ID) {
			// The engine learns of the pause within one sync; nothing starts after that.
			if a.CreatedAt.After(pausedAt.Add(200 * time.Millisecond)) {
				late++
			}
		}
	}
	if late > 0 {
		t.Errorf("%d attempts started after the pause", late)
	}
	// Calls in progress finish: nobody is left in progress.
	h.waitContacts(c.ID, 5*time.Second, func(ct campaigns.Contact) bool { return ct.Status != campaigns.ContactInProgress })
}

// waitAttempts waits until at least n contacts of the campaign have been tried.
func (h *harness) waitAttempts(campaignID int64, n int, within time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, err := h.store.CampaignStats(context.Background(), campaignID)
		if err != nil {
			h.t.Fatal(err)
		}
		if st.Dials >= n {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("only %d attempts within %s", st.Dials, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEngineRetriesBusyContactsUpToMaxAttempts(t *testing.T) {
	carrier := sipptest.Start(t, "busy.xml", sipptest.Options{Calls: 6})
	h := newHarness(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}})
	ladder := []campaigns.Rung{{Channel: campaigns.ChannelSIP, MaxAttempts: 2, RetryDelay: campaigns.Duration(300 * time.Millisecond)}}
	c := h.campaign(3, campaigns.PacingProgressive, ladder)
	h.agents(c.ID, 3, time.Second)

	list := h.waitContacts(c.ID, 15*time.Second, func(ct campaigns.Contact) bool { return ct.Status == campaigns.ContactExhausted })
	for _, ct := range list {
		as := h.attempts(ct.ID)
		if len(as) != 2 {
			t.Fatalf("contact %s: %d attempts, want 2", ct.Phone, len(as))
		}
		for _, a := range as {
			if a.Outcome != string(campaigns.OutcomeBusy) || a.SIPStatus != 486 {
				t.Errorf("contact %s attempt %+v, want busy 486", ct.Phone, a)
			}
		}
		if gap := as[1].CreatedAt.Sub(*as[0].EndAt); gap < 300*time.Millisecond {
			t.Errorf("contact %s retried %s after a busy, want the rung's 300 ms delay", ct.Phone, gap)
		}
	}
	carrier.Wait(t, 10*time.Second)
}

func TestEngineChecksDoNotCallAndCallingWindowBeforeDialling(t *testing.T) {
	carrier := sipptest.Start(t, "answer.xml", sipptest.Options{Calls: 1})
	h := newHarness(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}})
	ctx := context.Background()

	// A campaign whose window is closed now, in the contacts' time zone.
	now := time.Now().UTC()
	closedFrom := campaigns.ClockTime((now.Hour()*60 + now.Minute() + 120) % (24 * 60))
	closed := h.draft(2, campaigns.PacingProgressive, sipOnlyLadder(1))
	if _, err := h.store.UpdateCampaign(ctx, tester, closed.ID, "test", func(c *campaigns.Campaign) error {
		c.Window = campaigns.Window{Start: closedFrom, End: (closedFrom + 60) % (24 * 60)}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// An open campaign one of whose contacts went on the do-not-call list after import.
	open := h.draft(2, campaigns.PacingProgressive, sipOnlyLadder(1))
	openContacts, _, _ := h.store.ListContacts(ctx, open.ID, storage.ContactFilter{})
	if _, err := h.store.AddDNC(ctx, tester, open.ID, []string{openContacts[0].Phone}, "asked"); err != nil {
		t.Fatal(err)
	}
	h.setState(closed.ID, campaigns.StateRunning)
	h.setState(open.ID, campaigns.StateRunning)
	h.agents(closed.ID, 1, 100*time.Millisecond)
	h.agents(open.ID, 1, 100*time.Millisecond)

	h.waitContacts(open.ID, 10*time.Second, func(ct campaigns.Contact) bool {
		return ct.Status == campaigns.ContactDoNotCall || ct.Status == campaigns.ContactDone
	})
	if as := h.attempts(openContacts[0].ID); len(as) != 0 {
		t.Errorf("do-not-call contact was dialled: %+v", as)
	}
	carrier.Wait(t, 10*time.Second)

	// The closed campaign's contacts are deferred to the window's next opening.
	deadline := time.Now().Add(5 * time.Second)
	for {
		due, err := h.store.DueContacts(ctx, closed.ID, []int{0}, time.Now(), 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(due) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("contacts still due in a closed window: %+v", due)
		}
		time.Sleep(20 * time.Millisecond)
	}
	list, _, _ := h.store.ListContacts(ctx, closed.ID, storage.ContactFilter{})
	for _, ct := range list {
		pos, err := h.store.ContactPosition(ctx, ct.ID)
		if err != nil {
			t.Fatal(err)
		}
		local := pos.NextAttemptAt.UTC()
		if got := local.Hour()*60 + local.Minute(); got != int(closedFrom) || !pos.NextAttemptAt.After(now) {
			t.Errorf("contact %s deferred to %s, want the next %s UTC", ct.Phone, pos.NextAttemptAt, closedFrom)
		}
		if as := h.attempts(ct.ID); len(as) != 0 {
			t.Errorf("contact outside its window was dialled: %+v", as)
		}
	}
}

func TestEngineCallsBackAtTheTimeTheAgentChose(t *testing.T) {
	carrier := sipptest.Start(t, "answer.xml", sipptest.Options{Calls: 2})
	h := newHarness(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}})
	c := h.campaign(1, campaigns.PacingProgressive, sipOnlyLadder(1))
	var callbackAt time.Time
	var mu sync.Mutex
	closes := 0
	ids := h.agentsClosing(c.ID, 2, 100*time.Millisecond, func(a Agent) Close {
		mu.Lock()
		defer mu.Unlock()
		if closes++; closes == 1 {
			callbackAt = time.Now().Add(time.Second)
			return Close{Code: "callback", CallbackAt: callbackAt, SameAgent: true}
		}
		return Close{Code: "sale"}
	})
	list := h.waitContacts(c.ID, 15*time.Second, func(ct campaigns.Contact) bool {
		return ct.Status == campaigns.ContactDone && len(h.attempts(ct.ID)) == 2 && h.attempts(ct.ID)[1].Disposition == "sale"
	})
	as := h.attempts(list[0].ID)
	if as[0].Disposition != "callback" || as[0].Outcome != string(campaigns.OutcomeConnected) || as[1].Outcome != string(campaigns.OutcomeConnected) {
		t.Fatalf("attempts %+v", as)
	}
	mu.Lock()
	at := callbackAt
	mu.Unlock()
	if as[1].CreatedAt.Before(at.Truncate(time.Millisecond)) {
		t.Errorf("called back at %s, before the agreed %s", as[1].CreatedAt, at)
	}
	// The other agent had been idle longer, yet the callback went to the one who asked.
	if as[1].AgentID != as[0].AgentID || !slices.Contains(ids, as[0].AgentID) {
		t.Errorf("callback taken by agent %d, first call by %d", as[1].AgentID, as[0].AgentID)
	}
	carrier.Wait(t, 10*time.Second)
}

// TestTrunkOutageDoesNotUseUpASIPOnlyList: with every trunk down and no rung after
// the SIP one, contacts wait for the trunk instead of being exhausted, and the
// outage leaves at most one refused attempt per contact behind.
func TestTrunkOutageDoesNotUseUpASIPOnlyList(t *testing.T) {
	t.Parallel()
	h := newHarness(t, deadTrunk(t))
	const contacts = 20
	c := h.campaign(contacts, campaigns.PacingProgressive, sipOnlyLadder(3))
	h.agents(c.ID, 4, time.Second)
	time.Sleep(4 * time.Second) // the circuit opens within the first second
	list, _, err := h.store.ListContacts(context.Background(), c.ID, storage.ContactFilter{Limit: contacts})
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, ct := range list {
		if ct.Status != campaigns.ContactPending && ct.Status != campaigns.ContactInProgress {
			t.Errorf("contact %s is %s during the outage, want it waiting", ct.Phone, ct.Status)
		}
		n := 0
		for _, a := range h.attempts(ct.ID) {
			if a.Outcome == string(campaigns.OutcomeChannelDown) {
				n++
			}
		}
		if n > 1 {
			t.Errorf("contact %s: %d refused attempts in 4 s", ct.Phone, n)
		}
		refused += n
	}
	t.Logf("%d contacts waiting, %d refused attempts recorded", len(list), refused)
}
