package dialer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/sip/carrier"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/storage"
)

// dyingTrunk is a sip rung's channel whose calls ring until its trunk dies (die),
// then end trunk_down, as dialer/sip reports a call its dead trunk caught; from
// then on it is down and takes no call. It stands in for the SIP package's
// detection of a dead trunk, which is not this test's subject.
type dyingTrunk struct {
	dead    chan struct{}
	once    sync.Once
	ringing atomic.Int32
}

func newDyingTrunk() *dyingTrunk { return &dyingTrunk{dead: make(chan struct{})} }

func (d *dyingTrunk) die() { d.once.Do(func() { close(d.dead) }) }

// Up reports whether the trunk is alive.
func (d *dyingTrunk) Up() bool {
	select {
	case <-d.dead:
		return false
	default:
		return true
	}
}

// Place rings the call until the trunk dies, the ring timeout passes or the run
// hangs up.
func (d *dyingTrunk) Place(ctx context.Context, req channel.PlaceRequest) (channel.Attempt, error) {
	if !d.Up() {
		return nil, fmt.Errorf("%w: every trunk's circuit open", channel.ErrChannelDown)
	}
	l := &dyingAttempt{events: make(chan channel.AttemptEvent, 4), hungUp: make(chan struct{})}
	go func() {
		defer close(l.events)
		setup := time.Now()
		l.events <- channel.AttemptEvent{Kind: channel.AttemptSetup, At: setup, Trunk: "dying"}
		rang := time.Now()
		l.events <- channel.AttemptEvent{Kind: channel.AttemptRinging, At: rang, Trunk: "dying", SIPStatus: 180}
		d.ringing.Add(1)
		end := channel.AttemptEvent{Kind: channel.AttemptEnded, Trunk: "dying", SetupAt: setup, RingAt: rang}
		select {
		case <-d.dead:
			end.Outcome, end.Detail = campaigns.OutcomeTrunkDown, "trunk down"
		case <-time.After(req.RingTimeout):
			end.Outcome, end.SIPStatus = campaigns.OutcomeNoAnswer, 487
		case <-l.hungUp:
			end.Outcome = campaigns.OutcomeInterrupted
		case <-ctx.Done():
			end.Outcome = campaigns.OutcomeInterrupted
		}
		end.At = time.Now()
		l.events <- end
	}()
	return l, nil
}

type dyingAttempt struct {
	events chan channel.AttemptEvent
	hungUp chan struct{}
	once   sync.Once
}

func (l *dyingAttempt) Events() <-chan channel.AttemptEvent { return l.events }

func (l *dyingAttempt) Hangup(context.Context) error {
	l.once.Do(func() { close(l.hungUp) })
	return nil
}

// waitWhatsAppCalls waits until every contact of the campaign has a WhatsApp call
// attempt that ended, and returns the contacts.
func (h *waHarness) waitWhatsAppCalls(campaignID int64, within time.Duration) []campaigns.Contact {
	h.t.Helper()
	return h.waitContacts(campaignID, within, func(ct campaigns.Contact) bool {
		return slices.ContainsFunc(h.attempts(ct.ID), func(a storage.Attempt) bool {
			return a.Channel == campaigns.ChannelWhatsAppCall && a.State == "ended"
		})
	})
}

// checkMovedOn checks that each contact's SIP attempt ended with one of the honest
// outcomes of a dead trunk (never no_answer or busy), and that its WhatsApp call
// was placed through the Cloud API within 5 s of the cut (the bound); it
// returns the time from the cut to the first WhatsApp call.
func (h *waHarness) checkMovedOn(list []campaigns.Contact, cut time.Time, honest ...campaigns.Outcome) time.Duration {
	h.t.Helper()
	first := time.Duration(1<<63 - 1)
	for _, ct := range list {
		as := h.attempts(ct.ID)
		if len(as) < 2 || as[0].Channel != campaigns.ChannelSIP || as[1].Channel != campaigns.ChannelWhatsAppCall {
			h.t.Errorf("%s: attempts %+v, want SIP then the WhatsApp call", ct.Phone, as)
			continue
		}
		if !slices.Contains(honest, campaigns.Outcome(as[0].Outcome)) {
			h.t.Errorf("%s: SIP attempt recorded %q, want one of %v", ct.Phone, as[0].Outcome, honest)
		}
		after := as[1].CreatedAt.Sub(cut)
		first = min(first, after)
		if after > 5*time.Second {
			h.t.Errorf("%s: WhatsApp call %s after the cut, want ≤ 5 s", ct.Phone, after)
		}
		placed := slices.ContainsFunc(h.emu.Requests(), func(r emulator.Request) bool {
			return r.Action == "connect" && r.To == strings.TrimPrefix(ct.Phone, "+") && r.Status == 200
		})
		if !placed {
			h.t.Errorf("%s: no call reached the Cloud API", ct.Phone)
		}
		h.t.Logf("%s: SIP %s, WhatsApp call %s after the cut (%s)", ct.Phone, as[0].Outcome, after.Round(time.Millisecond), as[1].Outcome)
	}
	return first
}

// TestRingingCallsCaughtByADeadTrunkGoToWhatsAppAtOnce: calls ringing when the
// trunk dies end trunk_down (never no_answer), their contacts are called on
// WhatsApp at once through the gate, not after the SIP rung's retry delay, and the
// pacer forecasts the WhatsApp call from that moment.
func TestRingingCallsCaughtByADeadTrunkGoToWhatsAppAtOnce(t *testing.T) {
	trunk := newDyingTrunk()
	h := newWhatsAppHarnessSIP(t, fmt.Sprintf("127.0.0.1:%d", sipptest.FreePort(t)), func(*sip.Originator) channel.Channel { return trunk })
	contacts := map[string]string{}
	for i := range 3 {
		phone := fmt.Sprintf("+55119876520%02d", i)
		h.emu.Script(strings.TrimPrefix(phone, "+"), emulator.Behaviour{Call: emulator.CallReject, AnswerAfter: 100 * time.Millisecond})
		contacts[phone] = "Fibra"
	}
	c := h.campaignWith(contacts)
	// The SIP rung would be tried again in an hour: only the trunk's death sends
	// the contacts on before that.
	if _, err := h.store.UpdateCampaign(context.Background(), tester, c.ID, "test", func(c *campaigns.Campaign) error {
		c.Ladder[0].MaxAttempts, c.Ladder[0].RetryDelay = 3, campaigns.Duration(time.Hour)
		return c.Validate()
	}); err != nil {
		t.Fatal(err)
	}
	h.agents(c.ID, len(contacts), time.Hour)
	h.setState(c.ID, campaigns.StateRunning)
	views := h.waitPacerViews(c.ID, 5*time.Second, func(v []PacerView) bool { return len(v) == 2 })
	if !views[0].Forecast || views[0].Down || views[1].Forecast {
		t.Errorf("trunk alive: views %+v, want the forecast on SIP", views)
	}
	for deadline := time.Now().Add(10 * time.Second); trunk.ringing.Load() < int32(len(contacts)); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls ringing, want %d", trunk.ringing.Load(), len(contacts))
		}
	}
	cut := time.Now()
	trunk.die()
	views = h.waitPacerViews(c.ID, 5*time.Second, func(v []PacerView) bool { return len(v) == 2 && v[0].Down })
	if views[0].Channel != campaigns.ChannelSIP || views[0].Forecast || !views[1].Forecast || views[1].Down {
		t.Errorf("trunk dead: views %+v, want SIP down and the forecast on the WhatsApp call", views)
	}
	list := h.waitWhatsAppCalls(c.ID, 15*time.Second)
	h.checkMovedOn(list, cut, campaigns.OutcomeTrunkDown)
	for _, ct := range list {
		if a := h.attempts(ct.ID)[0]; a.RingAt == nil {
			t.Errorf("%s: the trunk_down call rang, but no ring time was recorded (the number's limits count it)", ct.Phone)
		}
	}
}

// TestCutTrunkSendsContactsToWhatsApp: the link to a real (simulated) carrier is
// cut, packets dropped both ways, while the campaign dials: the INVITEs go
// unanswered, and every contact is called on WhatsApp at once, none recorded
// no_answer. Until the SIP package detects a dead trunk itself, the dials caught
// wait out the INVITE timeout (trunk_fault) and open the circuit (channel_down
// after); with its detection they end trunk_down sooner.
func TestCutTrunkSendsContactsToWhatsApp(t *testing.T) {
	car, err := carrier.Start(context.Background(), carrier.Config{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { car.Close() })
	h := newWhatsAppHarnessTrunk(t, car.Addr())
	contacts := map[string]string{}
	for i := range 4 {
		phone := fmt.Sprintf("+55119876521%02d", i)
		car.Script(phone, carrier.Answer)
		h.emu.Script(strings.TrimPrefix(phone, "+"), emulator.Behaviour{Call: emulator.CallReject, AnswerAfter: 100 * time.Millisecond})
		contacts[phone] = "Fibra"
	}
	c := h.campaignWith(contacts)
	h.agents(c.ID, 2, time.Hour)
	cut := time.Now()
	car.Cut(true)
	h.setState(c.ID, campaigns.StateRunning)
	list := h.waitWhatsAppCalls(c.ID, 20*time.Second)
	first := h.checkMovedOn(list, cut, campaigns.OutcomeTrunkFault, campaigns.OutcomeTrunkDown, campaigns.OutcomeChannelDown)
	// The bound while dialling: the first WhatsApp call within 2 s of the cut.
	if first > 2*time.Second {
		t.Errorf("first WhatsApp call %s after the cut, want ≤ 2 s", first)
	}
	if st := car.Stats(); st.Invites != 0 || st.Dropped == 0 {
		t.Errorf("carrier %+v: want every INVITE dropped by the cut", st)
	}
}
