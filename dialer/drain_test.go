package dialer

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/storage"
)

// drainScene is a progressive campaign of contacts against a sipp carrier
// playing scenario (which answers and holds each call until we hang up), with
// agents the test plays.
type drainScene struct {
	h       *harness
	carrier *sipptest.Proc
	msgs    string // sipp's message log
	c       campaigns.Campaign
	agents  []int64

	mu   sync.Mutex
	told map[int64][]AgentEventKind // the events each agent got since the calls connected
}

func newDrainScene(t *testing.T, scenario string, contacts, agents int) *drainScene {
	t.Helper()
	msgs := filepath.Join(t.TempDir(), "messages.log")
	carrier := sipptest.Start(t, scenario, sipptest.Options{Calls: contacts, Timeout: 60 * time.Second,
		Extra: []string{"-trace_msg", "-message_file", msgs}})
	h := newHarness(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}})
	s := &drainScene{h: h, carrier: carrier, msgs: msgs}
	s.c = h.campaign(contacts, campaigns.PacingProgressive, sipOnlyLadder(1))
	s.agents = h.readyAgents(s.c.ID, agents)
	s.told = map[int64][]AgentEventKind{}
	for _, a := range s.agents {
		events, stop := h.engine.Subscribe(a)
		t.Cleanup(stop)
		go func() {
			for ev := range events {
				s.mu.Lock()
				s.told[a] = append(s.told[a], ev.Kind)
				s.mu.Unlock()
			}
		}()
	}
	return s
}

// waitOnCalls waits until every agent is on a call.
func (s *drainScene) waitOnCalls() {
	s.h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, a := range s.agents {
		s.h.waitOnCall(ctx, a, "a call")
	}
}

// drain starts the engine's drain with ctx on a goroutine and waits until it
// took effect; the drain's result comes on the returned channel.
func (s *drainScene) drain(ctx context.Context) <-chan error {
	s.h.t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.h.engine.Drain(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for !s.h.engine.Draining() {
		if time.Now().After(deadline) {
			s.h.t.Fatal("the engine does not drain")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return done
}

// waitEvent waits until agent got an event of kind.
func (s *drainScene) waitEvent(agent int64, kind AgentEventKind) {
	s.h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		got := slices.Contains(s.told[agent], kind)
		s.mu.Unlock()
		if got {
			return
		}
		if time.Now().After(deadline) {
			s.h.t.Fatalf("agent %d was not told %s", agent, kind)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// endCall hangs up agent's call and closes it with a disposition, as the agent would.
func (s *drainScene) endCall(agent int64) {
	s.h.t.Helper()
	ctx := context.Background()
	if err := s.h.engine.Hangup(ctx, agent); err != nil {
		s.h.t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for a, _ := s.h.engine.Agents().Get(agent); a.State != AgentWrapUp; a, _ = s.h.engine.Agents().Get(agent) {
		if time.Now().After(deadline) {
			s.h.t.Fatalf("agent %d is %s after hanging up, want wrap_up", agent, a.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.h.engine.Disposition(ctx, agent, Close{Code: "sale"}); err != nil {
		s.h.t.Fatal(err)
	}
}

// attempts are every attempt of the campaign.
func (s *drainScene) attempts() []storage.Attempt {
	s.h.t.Helper()
	list, _, err := s.h.store.ListContacts(context.Background(), s.c.ID, storage.ContactFilter{Limit: 1000})
	if err != nil {
		s.h.t.Fatal(err)
	}
	var out []storage.Attempt
	for _, ct := range list {
		out = append(out, s.h.attempts(ct.ID)...)
	}
	return out
}

// TestDrainLetsConnectedCallsEnd: calls connected when the drain starts go on
// until their agents hang up (the carrier gets no BYE before), no INVITE
// reaches the carrier after the drain started although an agent is free again
// and contacts are due, the agents are told the node drains and, after their
// wrap-up, to reconnect, and Drain returns once the last wrap-up ended; the
// attempts are recorded as they ended: connected, hung up by the agent.
func TestDrainLetsConnectedCallsEnd(t *testing.T) {
	s := newDrainScene(t, "answer.xml", 6, 2)
	s.waitOnCalls()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	drainedAt := time.Now()
	done := s.drain(ctx)
	for _, a := range s.agents {
		s.waitEvent(a, EventDraining)
	}

	first, second := s.agents[0], s.agents[1]
	hungUpAt := time.Now()
	s.endCall(first)
	s.waitEvent(first, EventReconnect)
	// The first agent is ready and contacts are due: only the drain keeps the
	// engine from calling one. It goes on while the second call is up.
	if a, _ := s.h.engine.Agents().Get(second); a.State != AgentOnCall {
		t.Fatalf("the second agent is %s during the drain, want on_call", a.State)
	}
	select {
	case err := <-done:
		t.Fatalf("Drain returned %v with a call up", err)
	default:
	}
	s.endCall(second)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Drain: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Drain did not return after the last call and its wrap-up")
	}

	as := s.attempts()
	if len(as) != 2 {
		t.Fatalf("attempts %+v, want the 2 calls connected before the drain", as)
	}
	for _, a := range as {
		if a.Outcome != string(campaigns.OutcomeConnected) || a.HangupBy != "agent" || a.Disposition != "sale" {
			t.Errorf("attempt %d: outcome %q, hung up by %q, disposition %q; want connected, agent, sale", a.ID, a.Outcome, a.HangupBy, a.Disposition)
		}
	}
	s.h.stop()
	s.carrier.Stop()
	msgs := sipptest.ReadMessages(t, s.msgs)
	invites := sipptest.NewInvites(msgs)
	if len(invites) != 2 {
		t.Errorf("the carrier got %d new INVITEs, want the 2 placed before the drain", len(invites))
	}
	for _, inv := range invites {
		if inv.At.After(drainedAt) {
			t.Errorf("INVITE %s reached the carrier at %s, after the drain started at %s", inv.CallID, inv.At.Format(time.StampMicro), drainedAt.Format(time.StampMicro))
		}
	}
	byes := 0
	for _, m := range msgs {
		if m.Received && strings.HasPrefix(m.First, "BYE ") {
			byes++
			if m.At.Before(hungUpAt) {
				t.Errorf("BYE of %s reached the carrier at %s, before the agents hung up (%s): the drain cut the call", m.CallID, m.At.Format(time.StampMicro), hungUpAt.Format(time.StampMicro))
			}
		}
	}
	if byes != 2 {
		t.Errorf("the carrier got %d BYEs, want one per call, after its agent hung up", byes)
	}
}

// TestDrainTimeoutEndsCallsAsInterrupted: a call still up when the drain's
// context ends is left to the engine's stop, which hangs it up and records
// it interrupted, hung up by us: never as something that did not happen.
func TestDrainTimeoutEndsCallsAsInterrupted(t *testing.T) {
	s := newDrainScene(t, "answer.xml", 1, 1)
	s.waitOnCalls()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := <-s.drain(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain with a call up: %v, want the deadline's error", err)
	}
	if as := s.attempts(); len(as) != 1 || as[0].State != "connected" {
		t.Fatalf("attempts %+v after the drain's timeout, want the call still connected", as)
	}
	s.h.stop()
	as := s.attempts()
	if len(as) != 1 || as[0].Outcome != string(campaigns.OutcomeInterrupted) || as[0].HangupBy != "local" || as[0].ConnectAt == nil {
		t.Fatalf("attempts %+v, want the connected call ended interrupted, hung up by us", as)
	}
}

// TestDrainRingingCallAnsweredReachesAnAgent: a call ringing when the drain
// starts rings on; answered, it is put through to the free agent as any call
// is, and the drain waits for it; nothing else is dialled.
func TestDrainRingingCallAnsweredReachesAnAgent(t *testing.T) {
	s := newDrainScene(t, "answer-after-ring.xml", 3, 1)
	deadline := time.Now().Add(10 * time.Second)
	for !slices.ContainsFunc(s.h.engine.PacerViews(), func(v PacerView) bool { return v.Ringing > 0 }) {
		if time.Now().After(deadline) {
			t.Fatal("no call rings")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	drainedAt := time.Now()
	done := s.drain(ctx)
	s.waitOnCalls() // the carrier answers after its second of ringing
	agent := s.agents[0]
	select {
	case err := <-done:
		t.Fatalf("Drain returned %v with a call up", err)
	default:
	}
	s.endCall(agent)
	if err := <-done; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	as := s.attempts()
	if len(as) != 1 || as[0].Outcome != string(campaigns.OutcomeConnected) || as[0].AgentID != agent || as[0].AnswerAt == nil || !as[0].AnswerAt.After(drainedAt) {
		t.Fatalf("attempts %+v, want the one call, answered after the drain started and connected to agent %d", as, agent)
	}
	s.h.stop()
	s.carrier.Stop()
	if invites := sipptest.NewInvites(sipptest.ReadMessages(t, s.msgs)); len(invites) != 1 {
		t.Errorf("the carrier got %d new INVITEs, want the one ringing when the drain started", len(invites))
	}
}
