package dialer

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/storage"
)

// TestInboundDrillTrunkCutCustomersCallIn is the drill, scaled to what a
// loaded 2-core machine runs in well under a minute (30 callers, 4 agents): the trunk is dead, the
// campaign works its list over WhatsApp with its agents, and customers (some
// known, some not) call the business on WhatsApp in a burst. Every call is
// answered and either put through to an agent or, past the longest wait, given
// the apology and a call back; none is lost. The wallboard's queue counts them
// all, with the longest wait; and no outbound call is placed to a person while
// their own call is open.
func TestInboundDrillTrunkCutCustomersCallIn(t *testing.T) {
	requireOpus(t)
	const (
		agents  = 4
		callers = 30
		known   = 6 // callers who are contacts of the campaign, their journeys over
		list    = 6 // contacts the campaign dials meanwhile
		maxWait = 4 * time.Second
		talk    = 1500 * time.Millisecond
	)
	h := newInboundHarness(t, maxWait)
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	contacts := map[string]string{}
	var callerNumbers []string
	for i := range callers {
		n := fmt.Sprintf("+55119876506%02d", i)
		callerNumbers = append(callerNumbers, n)
		if i < known {
			contacts[n] = "Fibra"
		}
	}
	for i := range list {
		n := fmt.Sprintf("+55119876507%02d", i)
		contacts[n] = "Rádio"
		h.emu.Script(strings.TrimPrefix(n, "+"), emulator.Behaviour{Call: emulator.CallAccept, AnswerAfter: 300 * time.Millisecond})
	}
	c := h.campaignWith(contacts)
	if c.ID != 1 {
		t.Fatalf("the queue campaign is %d, the engine's inbound campaign 1", c.ID)
	}
	all, _, err := h.store.ListContacts(ctx, c.ID, storage.ContactFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range all {
		if strings.HasPrefix(ct.Phone, "+55119876506") {
			h.finishContact(ctx, ct.ID)
		}
	}
	h.agents(c.ID, agents, talk)
	h.setState(c.ID, campaigns.StateRunning)
	// The campaign is dialling (over WhatsApp: the trunk is dead) when the calls come.
	h.waitAttempt(ctx, c.ID, "+5511987650700", "the campaign's first WhatsApp call", func(a storage.Attempt) bool {
		return a.Channel == campaigns.ChannelWhatsAppCall && a.Direction == storage.DirectionOutbound
	})
	var wg sync.WaitGroup
	callIDs := make([]string, callers)
	for i, n := range callerNumbers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := h.emu.PlaceCall(ctx, n)
			if err != nil {
				t.Errorf("caller %s: %v", n, err)
			}
			callIDs[i] = id
		}()
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()

	// Every caller's call ends answered and put through, or missed and called back.
	var answered, missed int
	var longest time.Duration
	for _, n := range callerNumbers {
		_, as := h.waitAttempt(ctx, c.ID, n, "caller "+n+"'s call settled", func(a storage.Attempt) bool {
			return a.Direction == storage.DirectionInbound && a.State == "ended"
		})
		var in storage.Attempt
		for _, a := range as {
			if a.Direction == storage.DirectionInbound {
				in = a
				break
			}
		}
		switch {
		case in.Outcome == string(campaigns.OutcomeConnected) && in.AgentID != 0 && in.ConnectAt != nil:
			answered++
			longest = max(longest, in.ConnectAt.Sub(*in.AnswerAt))
		case in.Outcome == string(campaigns.OutcomeInboundMissed) && in.AgentID == 0:
			missed++
			var d struct {
				WaitedMS int64 `json:"waited_ms"`
			}
			if err := json.Unmarshal(in.Detail, &d); err != nil {
				t.Errorf("caller %s: missed attempt's detail %s: %v", n, in.Detail, err)
			}
			waited := time.Duration(d.WaitedMS) * time.Millisecond
			// Left the queue for the apology at the longest wait, not before (how
			// soon after is the loaded machine's to say: no bound is asserted).
			if waited < maxWait || waited > in.EndAt.Sub(*in.AnswerAt) {
				t.Errorf("caller %s left the queue after %s, longest wait %s, call ended after %s", n, waited, maxWait, in.EndAt.Sub(*in.AnswerAt))
			}
			longest = max(longest, waited)
		default:
			t.Errorf("caller %s: inbound attempt %+v", n, in)
		}
		// No call of ours while theirs was open.
		for _, a := range as {
			if a.Direction == storage.DirectionOutbound && !a.CreatedAt.Before(in.CreatedAt) && in.EndAt != nil && a.CreatedAt.Before(*in.EndAt) {
				t.Errorf("caller %s was called (attempt %d) while on their own call (attempt %d)", n, a.ID, in.ID)
			}
		}
	}
	for i, id := range callIDs {
		if st, ok := h.emu.CallStats(id); !ok || !st.Accepted {
			t.Errorf("caller %s's call %s was not answered: %+v", callerNumbers[i], id, st)
		}
	}
	// Four agents talking 1.5 s each serve at most about a dozen callers within
	// the longest wait: the burst leaves some to the apology, whatever the load.
	if answered+missed != callers || answered < agents || missed == 0 {
		t.Fatalf("%d answered and %d missed of %d calls", answered, missed, callers)
	}
	qs, err := h.engine.InboundQueues(ctx, time.UTC)
	if err != nil || len(qs) != 1 {
		t.Fatalf("queues %+v, %v", qs, err)
	}
	// The known callers connected earlier were put through again, as their own
	// contacts; the queue counts every inbound call.
	q := qs[0]
	if q.Answered != answered || q.Abandoned != missed || q.Waiting != 0 ||
		q.LongestWaitSeconds < longest.Seconds()-0.001 || q.LongestWaitSeconds > longest.Seconds()+0.001 {
		t.Errorf("wallboard queue %+v; want %d answered, %d abandoned, longest wait %s", q, answered, missed, longest)
	}
	t.Logf("drill: %d calls, %d answered, %d missed, longest wait %s", callers, answered, missed, longest)
}
