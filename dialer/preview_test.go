package dialer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/internal/storetest"
	"github.com/turbina-dialer/turbina/storage"
)

// waitOffer waits until agent is offered a contact other than those in not.
func (h *harness) waitOffer(agent int64, not ...int64) PreviewOffer {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if o, ok := h.engine.Preview(agent); ok && !slices.Contains(not, o.Contact.ID) {
			return o
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("agent %d was offered no new contact", agent)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) dials(campaignID int64) int {
	h.t.Helper()
	st, err := h.store.CampaignStats(context.Background(), campaignID)
	if err != nil {
		h.t.Fatal(err)
	}
	return st.Dials
}

func TestPreviewAgentSeesTheContactFirstThenDialsOrSkipsIt(t *testing.T) {
	carrier := sipptest.Start(t, "answer.xml", sipptest.Options{Calls: 1})
	h := newHarness(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}})
	ctx := context.Background()
	c := h.campaign(4, campaigns.PacingPreview, sipOnlyLadder(1))
	agents := h.readyAgents(c.ID, 2)

	// Each ready agent is offered a contact of its own, with its screen-pop, and
	// nothing is dialled.
	first := h.waitOffer(agents[0])
	second := h.waitOffer(agents[1])
	if first.Contact.ID == second.Contact.ID {
		t.Fatalf("contact %d offered to both agents", first.Contact.ID)
	}
	if first.CampaignName != "test" || first.Channel != campaigns.ChannelSIP || len(first.Dispositions) == 0 ||
		first.Contact.Phone == "" || !first.ExpiresAt.After(first.OfferedAt) || len(first.SkipReasons) == 0 {
		t.Errorf("offer %+v", first)
	}
	time.Sleep(500 * time.Millisecond)
	if n := h.dials(c.ID); n != 0 {
		t.Fatalf("%d calls placed before any agent chose to dial", n)
	}

	// Bad skips are refused and change nothing.
	for _, s := range []PreviewSkip{{Reason: "bored"}, {Reason: "other"}, {Reason: ""}} {
		if err := h.engine.SkipPreview(ctx, agents[0], first.Contact.ID, s); !errors.Is(err, ErrBadSkipReason) {
			t.Errorf("skip %+v: %v, want ErrBadSkipReason", s, err)
		}
	}
	if err := h.engine.SkipPreview(ctx, agents[0], second.Contact.ID, PreviewSkip{Reason: "not_now"}); !errors.Is(err, ErrNoPreviewOffer) {
		t.Errorf("skip of another agent's contact: %v, want ErrNoPreviewOffer", err)
	}
	if o, _ := h.engine.Preview(agents[0]); o.Contact.ID != first.Contact.ID {
		t.Fatalf("a refused skip moved the offer to contact %d", o.Contact.ID)
	}

	// A skip with a reason: kept in the contact's history, the contact due again
	// later, and the next contact offered at once.
	skipped := time.Now()
	if err := h.engine.SkipPreview(ctx, agents[0], first.Contact.ID, PreviewSkip{Reason: "missing_data", Note: "no name"}); err != nil {
		t.Fatal(err)
	}
	next := h.waitOffer(agents[0], first.Contact.ID)
	if next.Contact.ID == second.Contact.ID {
		t.Errorf("the next contact is the one offered to the other agent")
	}
	skips, err := h.store.ListSkips(ctx, first.Contact.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(skips) != 1 || skips[0].Reason != "missing_data" || skips[0].Note != "no name" || skips[0].AgentID != agents[0] {
		t.Errorf("skips %+v", skips)
	}
	pos, err := h.store.ContactPosition(ctx, first.Contact.ID)
	if err != nil {
		t.Fatal(err)
	}
	if pos.Contact.Status != campaigns.ContactPending || pos.NextAttemptAt.Before(skipped.Add(29*time.Minute)) {
		t.Errorf("skipped contact %s due %s, want pending and due 30 min later", pos.Contact.Status, pos.NextAttemptAt)
	}
	if as := h.attempts(first.Contact.ID); len(as) != 0 {
		t.Errorf("a skip recorded attempts %+v", as)
	}

	// Dialling: the call goes to the agent who chose it.
	if _, err := h.engine.PreviewDial(ctx, agents[1], first.Contact.ID); !errors.Is(err, ErrNoPreviewOffer) {
		t.Errorf("dial of a contact not offered: %v, want ErrNoPreviewOffer", err)
	}
	attemptID, err := h.engine.PreviewDial(ctx, agents[1], second.Contact.ID)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	h.waitOnCall(wctx, agents[1], "the preview call")
	h.waitAttemptsWhere(wctx, second.Contact.ID, fmt.Sprintf("one, put through to agent %d", agents[1]), func(as []storage.Attempt) bool {
		return len(as) == 1 && as[0].ID == attemptID && as[0].AgentID == agents[1]
	})
	// The screen-pop follows the agent's move on to the call.
	for popped := false; !popped; time.Sleep(20 * time.Millisecond) {
		h.mu.Lock()
		popped = slices.ContainsFunc(h.events, func(ev AgentEvent) bool {
			return ev.Kind == EventScreenPop && ev.ScreenPop.AttemptID == attemptID && ev.ScreenPop.Contact.ID == second.Contact.ID
		})
		h.mu.Unlock()
		if wctx.Err() != nil {
			t.Fatal("no screen-pop for the preview call")
		}
	}
	if n := h.dials(c.ID); n != 1 {
		t.Errorf("%d calls placed, want the one the agent dialled", n)
	}
	if err := h.engine.Hangup(ctx, agents[1]); err != nil {
		t.Fatal(err)
	}
	carrier.Wait(t, 10*time.Second)
}

func TestPreviewDialRefusedByThePolicyGateTellsTheAgentWhy(t *testing.T) {
	carrier := sipptest.Start(t, "answer.xml", sipptest.Options{Calls: 1})
	h := newHarness(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}})
	ctx := context.Background()
	c := h.campaign(2, campaigns.PacingPreview, sipOnlyLadder(1))
	agent := h.readyAgents(c.ID, 1)[0]
	o := h.waitOffer(agent)
	if _, err := h.store.AddDNC(ctx, tester, 0, []string{o.Contact.Phone}, "asked"); err != nil {
		t.Fatal(err)
	}
	_, err := h.engine.PreviewDial(ctx, agent, o.Contact.ID)
	var refused *campaigns.RefusedError
	if !errors.As(err, &refused) || !slices.Contains(refused.Decision.Reasons, campaigns.ReasonDoNotCall) || refused.Decision.Allowed {
		t.Fatalf("dial of a do-not-call number: %v, want a refusal for do_not_call", err)
	}
	if a, _ := h.engine.Agents().Get(agent); a.State != AgentReady {
		t.Errorf("agent %s after a refused dial, want ready", a.State)
	}
	// The agent goes on with the next contact; the refused one is called by nobody.
	h.waitOffer(agent, o.Contact.ID)
	if n := h.dials(c.ID); n != 0 {
		t.Errorf("%d calls placed", n)
	}
}

// gateCounter is a Store that counts the policy gate's rulings per contact: each
// ruling reads the contact's facts once.
type gateCounter struct {
	Store
	mu    sync.Mutex
	asked map[int64]int
}

func (s *gateCounter) PolicyFacts(ctx context.Context, contactID int64, number string, at time.Time) (campaigns.Facts, error) {
	s.mu.Lock()
	s.asked[contactID]++
	s.mu.Unlock()
	return s.Store.PolicyFacts(ctx, contactID, number, at)
}

func (s *gateCounter) count(contactID int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked[contactID]
}

func TestPreviewDialAsksTheGateOnce(t *testing.T) {
	for _, tc := range []struct {
		name      string
		dnc       bool // the number is put on the do-not-call list after the offer
		refusals  int
		attempts  int
		wantError bool
	}{
		{name: "allowed", attempts: 1},
		{name: "refused", dnc: true, refusals: 1, wantError: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := &ringChannel{}
			counter := &gateCounter{asked: map[int64]int{}}
			h := newFakeHarnessWrapped(t, ch, Config{RingTimeout: time.Minute}, func(db *storage.DB) Store {
				counter.Store = db
				return counter
			})
			ctx := context.Background()
			c := h.campaign(1, campaigns.PacingPreview, sipOnlyLadder(1))
			agent := h.readyAgents(c.ID, 1)[0]
			o := h.waitOffer(agent)
			if tc.dnc {
				if _, err := h.store.AddDNC(ctx, tester, 0, []string{o.Contact.Phone}, "asked"); err != nil {
					t.Fatal(err)
				}
			}
			before := counter.count(o.Contact.ID)
			if before == 0 {
				t.Fatalf("contact %d was offered without the gate's ruling", o.Contact.ID)
			}
			_, err := h.engine.PreviewDial(ctx, agent, o.Contact.ID)
			if (err != nil) != tc.wantError {
				t.Fatalf("preview dial: %v, want an error: %t", err, tc.wantError)
			}
			if asked := counter.count(o.Contact.ID) - before; asked != 1 {
				t.Errorf("the gate ruled %d times on one preview dial, want once", asked)
			}
			refusals, err := h.store.PolicyRefusals(ctx, o.Contact.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(refusals) != tc.refusals {
				t.Errorf("%d refusals recorded %+v, want %d", len(refusals), refusals, tc.refusals)
			}
			// The attempt is stored before the call is placed, within the dial.
			if as := h.attempts(o.Contact.ID); len(as) != tc.attempts {
				t.Errorf("attempts %+v, want %d", as, tc.attempts)
			}
		})
	}
}

func TestPreviewOfferHeldTooLongGoesBack(t *testing.T) {
	h := newFakeHarness(t, &ringChannel{}, Config{PreviewHold: 300 * time.Millisecond})
	c := h.campaign(1, campaigns.PacingPreview, sipOnlyLadder(1))
	agents := h.readyAgents(c.ID, 1)
	events, stop := h.engine.Subscribe(agents[0])
	t.Cleanup(stop)
	first := h.waitOffer(agents[0])
	deadline := time.After(3 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Kind == EventPreview && ev.Preview == nil {
				if ev.At.Before(first.ExpiresAt) {
					t.Errorf("offer taken back at %s, before it expired at %s", ev.At, first.ExpiresAt)
				}
				// Back in the pool: offered again (to the only agent there is).
				again := h.waitOffer(agents[0])
				if again.Contact.ID != first.Contact.ID || !again.OfferedAt.After(first.OfferedAt) {
					t.Errorf("offer after expiry %+v", again)
				}
				return
			}
		case <-deadline:
			t.Fatal("the offer was never taken back")
		}
	}
}

// newFakeHarness is a harness whose SIP calls go to ch, with quick ticks.
func newFakeHarness(t *testing.T, ch channel.Channel, cfg Config) *harness {
	t.Helper()
	return newFakeHarnessWrapped(t, ch, cfg, func(db *storage.DB) Store { return db })
}

// newFakeHarnessWrapped is newFakeHarness whose engine reaches the database
// through wrap's store.
func newFakeHarnessWrapped(t *testing.T, ch channel.Channel, cfg Config, wrap func(*storage.DB) Store) *harness {
	t.Helper()
	ctx := context.Background()
	store := storetest.Open(t)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg.Tick, cfg.Sync = 20*time.Millisecond, 100*time.Millisecond
	e := New(wrap(store), map[campaigns.Channel]channel.Channel{campaigns.ChannelSIP: ch}, NewAgents(), cfg, log)
	return runEngine(ctx, t, store, e)
}

// ringChannel is a Channel whose calls ring until hung up, counting those in flight.
type ringChannel struct {
	mu       sync.Mutex
	inFlight int
	most     int
	placed   int
}

type ringAttempt struct {
	ch     *ringChannel
	events chan channel.AttemptEvent
	once   sync.Once
}

func (c *ringChannel) Place(ctx context.Context, req channel.PlaceRequest) (channel.Attempt, error) {
	c.mu.Lock()
	c.placed++
	c.inFlight++
	c.most = max(c.most, c.inFlight)
	c.mu.Unlock()
	l := &ringAttempt{ch: c, events: make(chan channel.AttemptEvent, 4)}
	l.events <- channel.AttemptEvent{Kind: channel.AttemptRinging, At: time.Now()}
	return l, nil
}

func (c *ringChannel) counts() (placed, inFlight, most int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.placed, c.inFlight, c.most
}

func (l *ringAttempt) Events() <-chan channel.AttemptEvent { return l.events }

func (l *ringAttempt) Hangup(ctx context.Context) error {
	l.once.Do(func() {
		l.ch.mu.Lock()
		l.ch.inFlight--
		l.ch.mu.Unlock()
		l.events <- channel.AttemptEvent{Kind: channel.AttemptEnded, At: time.Now(), Outcome: campaigns.OutcomeNoAnswer}
		close(l.events)
	})
	return nil
}

func TestProgressiveDialsOneLinePerReadyAgentWithAFakeChannel(t *testing.T) {
	ch := &ringChannel{}
	h := newFakeHarness(t, ch, Config{RingTimeout: time.Minute})
	c := h.campaign(10, campaigns.PacingProgressive, sipOnlyLadder(1))
	h.readyAgents(c.ID, 4)
	// Four ready agents, nothing in flight: exactly four dials, and no more while
	// they ring, however many decisions the pacer makes meanwhile.
	deadline := time.Now().Add(5 * time.Second)
	for placed, _, _ := ch.counts(); placed < 4; placed, _, _ = ch.counts() {
		if time.Now().After(deadline) {
			t.Fatalf("only %d dials for 4 ready agents", placed)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second) // 50 ticks
	if placed, inFlight, most := ch.counts(); placed != 4 || inFlight != 4 || most != 4 {
		t.Errorf("placed %d, in flight %d, at most %d; want exactly 4 for 4 ready agents", placed, inFlight, most)
	}
}

func TestProgressiveDialsOneLinePerReadyAgentWithSipp(t *testing.T) {
	// The carrier rings for 1 s, then answers.
	carrier := sipptest.Start(t, "answer-after-ring.xml", sipptest.Options{Calls: 6})
	h := newHarness(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}})
	ctx := context.Background()
	c := h.campaign(6, campaigns.PacingProgressive, sipOnlyLadder(1))
	agents := h.readyAgents(c.ID, 2)
	h.waitAttempts(c.ID, 2, 5*time.Second)
	time.Sleep(500 * time.Millisecond) // still ringing
	if n := h.dials(c.ID); n != 2 {
		t.Fatalf("%d calls for 2 ready agents while they ring, want 2", n)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, a := range agents {
		h.waitOnCall(wctx, a, "a progressive call")
	}
	time.Sleep(500 * time.Millisecond)
	if n := h.dials(c.ID); n != 2 {
		t.Fatalf("%d calls with both agents talking, want 2", n)
	}
	// One agent free again: exactly one more line.
	if err := h.engine.Hangup(ctx, agents[0]); err != nil {
		t.Fatal(err)
	}
	for a, _ := h.engine.Agents().Get(agents[0]); a.State != AgentWrapUp; a, _ = h.engine.Agents().Get(agents[0]) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := h.engine.Disposition(ctx, agents[0], Close{Code: "sale"}); err != nil {
		t.Fatal(err)
	}
	h.waitAttempts(c.ID, 3, 5*time.Second)
	time.Sleep(500 * time.Millisecond)
	if n := h.dials(c.ID); n != 3 {
		t.Errorf("%d calls after one agent came back, want 3", n)
	}
}
