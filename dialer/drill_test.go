package dialer

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/sipchannel"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/internal/netlab"
	"github.com/turbina-dialer/turbina/internal/phonetest"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/media"
	"github.com/turbina-dialer/turbina/storage"
)

// Link-cut drills through the whole engine (issue 14's proof): sipp is the
// carrier in a network namespace behind a router, netlab's Cut drops everything
// between it and Turbina both ways with no ICMP, and the engine runs as served:
// the real Originator on its default health settings behind sipchannel, the
// WhatsApp rungs on wachannel against the Cloud API emulator, a real SQLite
// file. Every bound is measured from the system's own records (the attempts'
// timestamps, the trunk's status); the cut's instant is taken just before the
// routes go in.

// drillHarness is the engine dialling a carrier behind a cuttable link.
type drillHarness struct {
	*waHarness
	lab     *netlab.Lab
	carrier *sipptest.Proc
}

// newDrillHarness starts sipp playing scenario in the carrier's namespace and the
// engine, configured by cfg, dialling it.
func newDrillHarness(t testing.TB, scenario string, cfg Config) *drillHarness {
	t.Helper()
	return newDrillHarnessTuned(t, scenario, nil, cfg)
}

// newDrillHarnessTuned is newDrillHarness with the originator's defaults changed
// by tune.
func newDrillHarnessTuned(t testing.TB, scenario string, tune func(*sip.Config), cfg Config) *drillHarness {
	t.Helper()
	lab := netlab.New(t)
	carrier := sipptest.Start(t, scenario, sipptest.Options{
		Netns: lab.CarrierNS, Host: lab.CarrierIP, Calls: 100000, Timeout: 5 * time.Minute,
	})
	sipCfg := sip.Config{
		Trunks:     []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr}},
		ListenAddr: net.JoinHostPort(lab.RootIP, "0"),
	}
	if tune != nil {
		tune(&sipCfg)
	}
	h := newWhatsAppHarnessConfig(t, sipCfg, func(o *sip.Originator) channel.Channel { return sipchannel.New(o) }, cfg)
	return &drillHarness{waHarness: h, lab: lab, carrier: carrier}
}

// cut cuts the link and returns when.
func (d *drillHarness) cut() time.Time {
	d.t.Helper()
	at := time.Now()
	d.lab.Cut()
	return at
}

// trunk is the carrier trunk's status.
func (d *drillHarness) trunk() sip.TrunkStatus { return d.sip.Trunks()[0] }

// waitTrunk waits until the trunk's status satisfies ok and returns it.
func (d *drillHarness) waitTrunk(what string, within time.Duration, ok func(sip.TrunkStatus) bool) sip.TrunkStatus {
	d.t.Helper()
	deadline := time.Now().Add(within)
	for st := d.trunk(); ; st = d.trunk() {
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("trunk not %s within %s: %+v\nsipp: %s", what, within, st, sipptest.Tail(d.carrier.Output(), 1500))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitDown waits until the trunk is found down.
func (d *drillHarness) waitDown(within time.Duration) sip.TrunkStatus {
	d.t.Helper()
	return d.waitTrunk("down", within, func(st sip.TrunkStatus) bool { return !st.DownSince.IsZero() })
}

// numbers are n phone numbers from first.
func numbers(first, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("+5511987%06d", first+i)
	}
	return out
}

// drillCampaign creates a campaign (SIP, WhatsApp call, template; one attempt
// each) of the phones, each scripted b on WhatsApp, with the SIP calls' ring
// timeout fixed at ring; it returns the campaign and its contacts.
func (d *drillHarness) drillCampaign(phones []string, b emulator.Behaviour, ring time.Duration) (campaigns.Campaign, []campaigns.Contact) {
	d.t.Helper()
	plans := map[string]string{}
	for _, phone := range phones {
		d.emu.Script(strings.TrimPrefix(phone, "+"), b)
		plans[phone] = "Fibra"
	}
	n := len(phones)
	c := d.campaignWith(plans)
	if _, err := d.store.UpdateCampaign(context.Background(), tester, c.ID, "test", func(c *campaigns.Campaign) error {
		c.Pacing.RingTimeout = campaigns.Duration(ring)
		return c.Validate()
	}); err != nil {
		d.t.Fatal(err)
	}
	list, _, err := d.store.ListContacts(context.Background(), c.ID, storage.ContactFilter{Limit: 1000})
	if err != nil || len(list) != n {
		d.t.Fatalf("contacts %d, %v", len(list), err)
	}
	return c, list
}

// sipAttempts is every SIP attempt of the contacts.
func (d *drillHarness) sipAttempts(list []campaigns.Contact) []storage.Attempt {
	d.t.Helper()
	var out []storage.Attempt
	for _, ct := range list {
		for _, a := range d.attempts(ct.ID) {
			if a.Channel == campaigns.ChannelSIP {
				out = append(out, a)
			}
		}
	}
	return out
}

// waitSIP waits until the contacts' SIP attempts satisfy ok and returns them.
func (d *drillHarness) waitSIP(list []campaigns.Contact, what string, within time.Duration, ok func([]storage.Attempt) bool) []storage.Attempt {
	d.t.Helper()
	deadline := time.Now().Add(within)
	for {
		as := d.sipAttempts(list)
		if ok(as) {
			return as
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("SIP attempts not %s within %s: %+v", what, within, as)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitInFlight waits until n calls are in flight on the trunk, then as long
// again as the carrier takes to ring a call it received: the engine stores a
// call's ringing only at its end, so the trunk's count is the live view.
func (d *drillHarness) waitInFlight(n int, within time.Duration) {
	d.t.Helper()
	d.waitTrunk(fmt.Sprintf("%d calls in flight", n), within, func(st sip.TrunkStatus) bool { return st.InFlight >= n })
	time.Sleep(300 * time.Millisecond)
}

// rangBefore fails for a contact whose SIP attempt had not rung before the cut.
func rangBefore(t *testing.T, as []storage.Attempt, cut time.Time) {
	t.Helper()
	for _, a := range as {
		if a.RingAt == nil || !a.RingAt.Before(cut) {
			t.Errorf("attempt %d was not ringing at the cut: %+v", a.ID, a)
		}
	}
}

// checkDetection checks the trunk's own record of its death: how it was found,
// and down within bound of since.
func checkDetection(t *testing.T, st sip.TrunkStatus, since time.Time, what string, bound time.Duration) {
	t.Helper()
	got := st.DownSince.Sub(since)
	t.Logf("trunk down %s after %s (sign %q, detection %.3fs)", got.Round(time.Millisecond), what, st.Sign, st.LastDetection)
	if got > bound {
		t.Errorf("trunk down %s after %s, want ≤ %s", got, what, bound)
	}
	if st.Sign == "" || st.LastDetection <= 0 || st.LastDetection > bound.Seconds() {
		t.Errorf("trunk status %+v: want the first sign and a detection within %s", st, bound)
	}
}

// checkNoFalseOutcomes fails for SIP attempts that ended at or after the cut as
// if the person had been reached and said no: no_answer or busy.
func checkNoFalseOutcomes(t *testing.T, as []storage.Attempt, cut time.Time) {
	t.Helper()
	for _, a := range as {
		if a.EndAt == nil || a.EndAt.Before(cut) {
			continue
		}
		if a.Outcome == string(campaigns.OutcomeNoAnswer) || a.Outcome == string(campaigns.OutcomeBusy) {
			t.Errorf("attempt %d ended %s after the cut recorded %q: the trunk was dead", a.ID, a.EndAt.Sub(cut), a.Outcome)
		}
	}
}

// TestDrillEngineWhileDialling: the link dies while a campaign dials (the carrier
// answers the odd numbers, rings the even ones): the trunk is down within 1.5 s
// of the first INVITE that got no answer, the first WhatsApp call leaves within
// 2 s of the cut, every contact caught ringing or dialling is called on WhatsApp
// within 5 s, and none is recorded no_answer or busy.
func TestDrillEngineWhileDialling(t *testing.T) {
	d := newDrillHarness(t, "drill-mixed.xml", Config{RingTimeout: 30 * time.Second})
	// One number in five ends in an even digit and rings; the others are
	// answered and talk a second with an agent, who then frees up for the next
	// dial: a steady stream of INVITEs.
	var phones []string
	for i := range 40 {
		last := 2*(i%5) - 1
		if i%5 == 0 {
			last = 0
		}
		phones = append(phones, fmt.Sprintf("+5511987%04d%d", 100+i, last))
	}
	c, list := d.drillCampaign(phones, emulator.Behaviour{Call: emulator.CallReject, AnswerAfter: 100 * time.Millisecond}, 5*time.Second)
	d.agents(c.ID, 6, time.Second)
	d.setState(c.ID, campaigns.StateRunning)
	// Dialling in full: calls answered and through to agents, others ringing,
	// agents freed by calls they ended.
	d.waitSIP(list, "dialling in full", 15*time.Second, func(as []storage.Attempt) bool {
		done := 0
		for _, a := range as {
			if a.ConnectAt != nil && a.State == "ended" {
				done++
			}
		}
		return done >= 2
	})
	cut := d.cut()
	st := d.waitDown(5 * time.Second)
	caught := func(a storage.Attempt) bool {
		return a.CreatedAt.Before(st.DownSince) && (a.EndAt == nil || !a.EndAt.Before(cut)) && a.ConnectAt == nil
	}
	as := d.waitSIP(list, "ended", 10*time.Second, func(as []storage.Attempt) bool {
		return !slices.ContainsFunc(as, func(a storage.Attempt) bool { return caught(a) && a.State != "ended" })
	})
	// The first INVITE sent after the cut that had no answer at all.
	var first time.Time
	for _, a := range as {
		if a.SetupAt != nil && !a.SetupAt.Before(cut) && a.RingAt == nil && (first.IsZero() || a.SetupAt.Before(first)) {
			first = *a.SetupAt
		}
	}
	if first.IsZero() {
		// No dial left between the cut and the detection: keepalives found it.
		checkDetection(t, st, cut, "the cut (no INVITE went out meanwhile)", 2*time.Second)
	} else {
		checkDetection(t, st, first, "the first unanswered INVITE", 1500*time.Millisecond)
	}
	checkNoFalseOutcomes(t, as, cut)
	var caughtContacts []campaigns.Contact
	for _, ct := range list {
		if slices.ContainsFunc(d.attempts(ct.ID), caught) {
			caughtContacts = append(caughtContacts, ct)
		}
	}
	if len(caughtContacts) == 0 {
		t.Fatal("no call was caught by the cut: the drill proved nothing")
	}
	ids := make([]int64, len(caughtContacts))
	for i, ct := range caughtContacts {
		ids[i] = ct.ID
	}
	caughtContacts = d.waitContacts(c.ID, 15*time.Second, func(ct campaigns.Contact) bool {
		return !slices.Contains(ids, ct.ID) || slices.ContainsFunc(d.attempts(ct.ID), func(a storage.Attempt) bool {
			return a.Channel == campaigns.ChannelWhatsAppCall && a.State == "ended"
		})
	})
	caughtContacts = slices.DeleteFunc(caughtContacts, func(ct campaigns.Contact) bool { return !slices.Contains(ids, ct.ID) })
	firstWA := d.checkMovedOn(caughtContacts, cut, campaigns.OutcomeTrunkDown, campaigns.OutcomeTrunkFault, campaigns.OutcomeChannelDown)
	t.Logf("%d contacts caught; first WhatsApp call %s after the cut", len(caughtContacts), firstWA.Round(time.Millisecond))
	if firstWA > 2*time.Second {
		t.Errorf("first WhatsApp call %s after the cut, want ≤ 2 s", firstWA)
	}
}

// TestDrillEngineIdle: nothing is in flight when the link dies; keepalives find
// it within 2 s, and a contact due then goes to WhatsApp without a SIP call.
func TestDrillEngineIdle(t *testing.T) {
	d := newDrillHarness(t, "drill-ring.xml", Config{RingTimeout: 30 * time.Second})
	c, list := d.drillCampaign(numbers(200, 1), emulator.Behaviour{Call: emulator.CallReject, AnswerAfter: 100 * time.Millisecond}, 10*time.Second)
	time.Sleep(1500 * time.Millisecond) // keepalives answered meanwhile: the trunk stays up
	if st := d.trunk(); st.State != sip.CircuitClosed || !st.DownSince.IsZero() {
		t.Fatalf("trunk before the cut: %+v", st)
	}
	cut := d.cut()
	st := d.waitDown(5 * time.Second)
	checkDetection(t, st, cut, "the cut", 2*time.Second)
	if !strings.Contains(st.Sign, "keepalive") {
		t.Errorf("sign %q, want the failed keepalive", st.Sign)
	}
	d.agents(c.ID, 1, time.Hour)
	d.setState(c.ID, campaigns.StateRunning)
	d.waitWhatsAppCalls(c.ID, 10*time.Second)
	for _, a := range d.attempts(list[0].ID) {
		if a.Channel == campaigns.ChannelSIP && a.SetupAt != nil {
			t.Errorf("SIP call %+v placed on a trunk known dead", a)
		}
	}
}

// TestDrillEngineRinging: calls ringing at the cut end trunk_down, never
// no_answer, and each contact is called on WhatsApp within 5 s of the cut.
func TestDrillEngineRinging(t *testing.T) {
	d := newDrillHarness(t, "drill-ring.xml", Config{RingTimeout: 30 * time.Second})
	c, list := d.drillCampaign(numbers(300, 4), emulator.Behaviour{Call: emulator.CallReject, AnswerAfter: 100 * time.Millisecond}, 20*time.Second)
	d.agents(c.ID, len(list), time.Hour)
	d.setState(c.ID, campaigns.StateRunning)
	d.waitInFlight(len(list), 10*time.Second)
	cut := d.cut()
	st := d.waitDown(5 * time.Second)
	checkDetection(t, st, cut, "the cut (every call ringing, none dialling)", 2*time.Second)
	moved := d.waitWhatsAppCalls(c.ID, 15*time.Second)
	d.checkMovedOn(moved, cut, campaigns.OutcomeTrunkDown)
	checkNoFalseOutcomes(t, d.sipAttempts(list), cut)
	rangBefore(t, d.sipAttempts(list), cut)
}

// talker is one agent of the connected-call drill and how to hear it.
type talker struct {
	kind    string // "browser" or "phone"
	agent   int64
	ear     *agentEar // the browser's; nil for the phone
	sipID   int64     // the conversation's SIP attempt
	contact int64
	before  *media.Connection // the SIP call's, on the agent's bridge
}

// waitBridged waits until the agent's bridge carried n packets each way on its
// current connection, other than not, and returns that connection.
func (d *drillHarness) waitBridged(ctx context.Context, who talker, n uint64, not *media.Connection, what string) *media.Connection {
	d.t.Helper()
	for {
		var st media.CallStats
		cur := d.engine.audio.Bridge(who.agent).Current()
		if cur != nil && cur != not {
			st = cur.Stats()
		}
		if st.ToAgent.Packets >= n && st.ToCustomer.Packets >= n {
			return cur
		}
		if ctx.Err() != nil {
			d.t.Fatalf("%s agent %d, %s: bridge carried %d packets to the agent, %d to the customer, want %d each", who.kind, who.agent, what,
				st.ToAgent.Packets, st.ToCustomer.Packets, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDrillEngineConnectedCallsResume: two customers (sipp streaming RTP) talk
// with agents, one on a browser (WebRTC) and one on a SIP phone (baresip); the
// link is cut. Each conversation is back with its agent on WhatsApp within 5 s
// of the cut, audio flows both ways at the agent's leg and at the WhatsApp
// user's, and each counts once: one connected call, no abandon.
func TestDrillEngineConnectedCallsResume(t *testing.T) {
	requireOpus(t)
	d := newDrillHarness(t, "drill-rtp.xml", Config{RingTimeout: 30 * time.Second})
	c, list := d.drillCampaign(numbers(400, 2), emulator.Behaviour{Call: emulator.CallAccept, AnswerAfter: 200 * time.Millisecond}, 20*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	for _, ct := range list {
		if err := d.store.SetWhatsAppPermission(ctx, ct.ID, storage.PermissionGranted, time.Now().Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	ids := d.agents(c.ID, 2, time.Hour) // on the call until the test hangs up
	talkers := []talker{{kind: "browser", agent: ids[0]}, {kind: "phone", agent: ids[1]}}
	talkers[0].ear = d.browserAgent(ctx, ids[0])
	reg := phonetest.Registrar(t, sip.RegistrarConfig{}, map[string]int64{"agent1": ids[1]})
	phonetest.Start(t, reg, "agent1", ids[1])
	if err := d.engine.AgentAudio().NailUpPhone(ctx, ids[1], reg); err != nil {
		t.Fatal(err)
	}
	d.setState(c.ID, campaigns.StateRunning)
	for i := range talkers {
		who := &talkers[i]
		d.waitOnCall(ctx, who.agent, who.kind+" agent's SIP call")
		a, _ := d.engine.Agents().Get(who.agent)
		who.sipID = a.AttemptID
		for _, ct := range list {
			if slices.ContainsFunc(d.attempts(ct.ID), func(x storage.Attempt) bool { return x.ID == a.AttemptID }) {
				who.contact = ct.ID
			}
		}
		who.before = d.waitBridged(ctx, *who, 25, nil, "before the cut") // the customer is talking, and the agent
	}
	cut := d.cut()
	st := d.waitDown(5 * time.Second)
	t.Logf("trunk down %s after the cut (sign %q)", st.DownSince.Sub(cut).Round(time.Millisecond), st.Sign)
	for _, who := range talkers {
		// Back with the agent: the call back is connected, on the conversation's
		// screen-pop, and the WhatsApp user and the agent hear each other.
		var wa storage.Attempt
		for {
			as := d.attempts(who.contact)
			if i := slices.IndexFunc(as, func(a storage.Attempt) bool {
				return a.Channel == campaigns.ChannelWhatsAppCall && a.ConnectAt != nil
			}); i >= 0 {
				wa = as[i]
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s agent: the conversation was not resumed: attempts %+v", who.kind, as)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if back := wa.ConnectAt.Sub(cut); back > 5*time.Second {
			t.Errorf("%s agent: back with the agent %s after the cut, want ≤ 5 s", who.kind, back)
		}
		t.Logf("%s agent: WhatsApp call %s after the cut, back with the agent %s after it", who.kind,
			wa.CreatedAt.Sub(cut).Round(time.Millisecond), wa.ConnectAt.Sub(cut).Round(time.Millisecond))
		if a, _ := d.engine.Agents().Get(who.agent); a.State != AgentOnCall || a.AttemptID != who.sipID {
			t.Errorf("%s agent after the resume: %s on attempt %d, want on_call on %d", who.kind, a.State, a.AttemptID, who.sipID)
		}
		stats := d.waitBridged(ctx, who, 25, who.before, "after the resume").Stats()
		t.Logf("%s agent after the resume: %d packets to the agent, %d to the WhatsApp user", who.kind, stats.ToAgent.Packets, stats.ToCustomer.Packets)
		for cs, _ := d.emu.CallStats(wa.ExternalID); cs.PacketsReceived < 25 || cs.PacketsSent < 25; cs, _ = d.emu.CallStats(wa.ExternalID) {
			if ctx.Err() != nil {
				t.Fatalf("%s agent: the WhatsApp user sent %d and got %d packets", who.kind, cs.PacketsSent, cs.PacketsReceived)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if who.ear != nil {
			for who.ear.path(webrtc.MimeTypeOpus).opusSilence < 25 {
				if ctx.Err() != nil {
					t.Fatalf("browser agent heard %+v of the WhatsApp user", who.ear.path(webrtc.MimeTypeOpus))
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	for _, who := range talkers {
		if err := d.engine.Hangup(ctx, who.agent); err != nil {
			t.Fatal(err)
		}
	}
	for _, who := range talkers {
		as := d.waitEndedAttempts(ctx, who.contact, 2, func(as []storage.Attempt) bool { return as[0].Disposition != "" })
		sipA, wa := as[0], as[1]
		if sipA.ID != who.sipID || sipA.Outcome != string(campaigns.OutcomeConnected) || sipA.HangupBy != channel.HangupByTrunk || sipA.AgentID != who.agent {
			t.Errorf("%s agent: SIP attempt %+v, want connected, hung up by the trunk, the agent's", who.kind, sipA)
		}
		if wa.Outcome != string(campaigns.OutcomeResumed) || wa.ResumedFrom != sipA.ID || wa.AgentID != who.agent {
			t.Errorf("%s agent: WhatsApp attempt %+v, want resumed from %d with agent %d", who.kind, wa, sipA.ID, who.agent)
		}
	}
	calls := map[string]int{}
	for _, cs := range d.emu.Calls() {
		calls[cs.To]++
	}
	for _, ct := range list {
		if n := calls[strings.TrimPrefix(ct.Phone, "+")]; n != 1 {
			t.Errorf("%s: %d WhatsApp calls, want the one call back", ct.Phone, n)
		}
	}
	stats, err := d.store.CampaignStats(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Connected != len(talkers) || stats.Abandoned != 0 {
		t.Errorf("stats: %d connected, %d abandoned; want each conversation once, no abandon", stats.Connected, stats.Abandoned)
	}
}

// TestDrillEngineFlapping: the link goes down for 2 s and up for 2 s, three
// times; the trunk, recovering on one answered probe here, takes calls in each
// up, and each cut catches calls ringing and calls talking with agents (a new
// campaign of six each time: a cut sends every contact due to WhatsApp). No
// contact gets two WhatsApp calls for its one SIP attempt nor a template twice
// (counted by the emulator, as Meta would bill them), and no attempt is
// recorded twice.
func TestDrillEngineFlapping(t *testing.T) {
	d := newDrillHarnessTuned(t, "drill-mixed.xml", func(c *sip.Config) {
		c.RecoverAfter, c.ProbeInterval = 1, sip.Duration(250*time.Millisecond)
	}, Config{RingTimeout: 30 * time.Second})
	var list []campaigns.Contact
	var ids []int64
	for k := range 3 {
		d.waitTrunk("up", 2*time.Second, func(st sip.TrunkStatus) bool { return st.State == sip.CircuitClosed })
		up := time.Now()
		c, some := d.drillCampaign(numbers(500+10*k, 6), emulator.Behaviour{Call: emulator.CallReject, AnswerAfter: 100 * time.Millisecond}, 5*time.Second)
		for _, ct := range some {
			// Connected calls the cut drops are called back.
			if err := d.store.SetWhatsAppPermission(context.Background(), ct.ID, storage.PermissionGranted, time.Now().Add(24*time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		d.agents(c.ID, len(some), 3*time.Second)
		d.setState(c.ID, campaigns.StateRunning)
		list, ids = append(list, some...), append(ids, c.ID)
		time.Sleep(time.Until(up.Add(2 * time.Second)))
		d.lab.Cut()
		time.Sleep(2 * time.Second)
		d.lab.Restore()
	}
	for _, id := range ids {
		d.waitContacts(id, 40*time.Second, func(ct campaigns.Contact) bool { return ct.Status == campaigns.ContactDone })
	}

	calls, templates := map[string]int{}, map[string]int{}
	for _, cs := range d.emu.Calls() {
		calls[cs.To]++
	}
	results := map[string]int{} // Meta's ids of the calls and messages it accepted
	for _, r := range d.emu.Requests() {
		if r.Status == 200 && r.ResultID != "" {
			results[r.ResultID]++
		}
		if r.Type == "template" && r.Status == 200 {
			templates[r.To]++
		}
	}
	recorded := map[string]int{}
	outcomes := map[string]int{}
	caught := 0
	for _, ct := range list {
		as := d.attempts(ct.ID)
		by := map[campaigns.Channel]int{}
		for _, a := range as {
			if slices.Contains(campaigns.UnplacedOutcomes(), campaigns.Outcome(a.Outcome)) {
				continue // recorded as never sent: the trunk was down or ramping up
			}
			by[a.Channel]++
			if a.ExternalID != "" {
				recorded[a.ExternalID]++
			}
			outcomes[string(a.Channel)+" "+a.Outcome]++
			if a.Outcome == string(campaigns.OutcomeTrunkDown) {
				caught++
			}
		}
		num := strings.TrimPrefix(ct.Phone, "+")
		if by[campaigns.ChannelSIP] > 1 || by[campaigns.ChannelWhatsAppCall] > 1 || by[campaigns.ChannelWhatsAppTemplate] > 1 {
			t.Errorf("%s: attempts by channel %v, want one at most on each (one each on the ladder)", ct.Phone, by)
		}
		if calls[num] > max(1, by[campaigns.ChannelSIP]) || calls[num] != by[campaigns.ChannelWhatsAppCall] {
			t.Errorf("%s: %d WhatsApp calls at the emulator for %d SIP and %d WhatsApp call attempts", ct.Phone, calls[num], by[campaigns.ChannelSIP], by[campaigns.ChannelWhatsAppCall])
		}
		if templates[num] > 1 || templates[num] != by[campaigns.ChannelWhatsAppTemplate] {
			t.Errorf("%s: %d templates at the emulator for %d template attempts", ct.Phone, templates[num], by[campaigns.ChannelWhatsAppTemplate])
		}
	}
	for id, n := range results {
		if recorded[id] != 1 || n != 1 {
			t.Errorf("%s: accepted %d times by the emulator, recorded on %d attempts; want once each", id, n, recorded[id])
		}
	}
	for id, n := range recorded {
		if results[id] == 0 {
			t.Errorf("%s recorded on %d attempts, never accepted by the emulator", id, n)
		}
	}
	if caught == 0 {
		t.Error("no call was caught by a cut: the drill proved nothing")
	}
	if len(results) == 0 {
		t.Error("the emulator accepted nothing")
	}
	t.Logf("%d contacts, %d SIP calls caught by a cut, %d WhatsApp calls, %d templates; attempts %v", len(list), caught, len(d.emu.Calls()), len(templates), outcomes)
}

// BenchmarkTrunkCutResume measures, over 20 cuts of the link under a
// conversation between a customer (sipp streaming RTP) and a browser agent, the
// time from the cut to the trunk found down, to the WhatsApp call back placed,
// and to the conversation back with its agent; for BENCHMARKS.md. It takes
// about two minutes, whatever b.N:
//
//	go test -run '^$' -bench TrunkCutResume -benchtime 1x ./dialer/
func BenchmarkTrunkCutResume(b *testing.B) {
	requireOpus(b)
	const cuts = 20
	d := newDrillHarnessTuned(b, "drill-rtp.xml", func(c *sip.Config) { c.RecoverAfter = 1 }, Config{RingTimeout: 30 * time.Second})
	c, list := d.drillCampaign(numbers(600, cuts), emulator.Behaviour{Call: emulator.CallAccept, AnswerAfter: 200 * time.Millisecond}, 20*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for _, ct := range list {
		if err := d.store.SetWhatsAppPermission(ctx, ct.ID, storage.PermissionGranted, time.Now().Add(24*time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	agent := d.readyAgents(c.ID, 1)[0]
	d.browserAgent(ctx, agent)
	var detected, placed, resumed []time.Duration
	for b.Loop() {
		d.setState(c.ID, campaigns.StateRunning)
		for i := range cuts {
			d.waitOnCall(ctx, agent, fmt.Sprintf("call %d", i))
			a, _ := d.engine.Agents().Get(agent)
			who := talker{kind: "browser", agent: agent, sipID: a.AttemptID}
			for _, ct := range list {
				if slices.ContainsFunc(d.attempts(ct.ID), func(x storage.Attempt) bool { return x.ID == a.AttemptID }) {
					who.contact = ct.ID
				}
			}
			who.before = d.waitBridged(ctx, who, 25, nil, "before the cut")
			cut := d.cut()
			var wa storage.Attempt
			for wa.ConnectAt == nil {
				for _, x := range d.attempts(who.contact) {
					if x.Channel == campaigns.ChannelWhatsAppCall && x.ResumedFrom == who.sipID {
						wa = x
					}
				}
				if ctx.Err() != nil {
					b.Fatalf("cut %d: the conversation was not resumed: %+v", i, d.attempts(who.contact))
				}
				time.Sleep(10 * time.Millisecond)
			}
			d.waitBridged(ctx, who, 25, who.before, "after the resume")
			st := d.waitDown(time.Second)
			detected = append(detected, st.DownSince.Sub(cut))
			placed = append(placed, wa.CreatedAt.Sub(cut))
			resumed = append(resumed, wa.ConnectAt.Sub(cut))
			// Back up before the agent is free: a contact due while the trunk is
			// down goes to WhatsApp.
			d.lab.Restore()
			d.waitTrunk("up", 10*time.Second, func(st sip.TrunkStatus) bool { return st.State == sip.CircuitClosed })
			if err := d.engine.Hangup(ctx, agent); err != nil {
				b.Fatal(err)
			}
			for a, _ := d.engine.Agents().Get(agent); a.State != AgentWrapUp; a, _ = d.engine.Agents().Get(agent) {
				if ctx.Err() != nil {
					b.Fatalf("cut %d: agent %s, not in wrap-up", i, a.State)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := d.engine.Disposition(ctx, agent, Close{Code: "sale"}); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, s := range []struct {
		name, unit string
		v          []time.Duration
	}{
		{"cut → trunk down", "down", detected},
		{"cut → WhatsApp call placed", "whatsapp", placed},
		{"cut → resumed with its agent", "resumed", resumed},
	} {
		slices.Sort(s.v)
		p := func(q float64) time.Duration { return s.v[min(len(s.v)-1, int(q*float64(len(s.v))))] }
		b.Logf("%s over %d cuts: p50 %s p95 %s max %s", s.name, len(s.v),
			p(0.5).Round(time.Millisecond), p(0.95).Round(time.Millisecond), s.v[len(s.v)-1].Round(time.Millisecond))
		b.ReportMetric(p(0.5).Seconds(), s.unit+"-p50-s")
		b.ReportMetric(p(0.95).Seconds(), s.unit+"-p95-s")
		b.ReportMetric(s.v[len(s.v)-1].Seconds(), s.unit+"-max-s")
	}
}

// TestDrillEngineConnectedWithoutAgentAudio: a customer talks with an agent who
// has no audio leg (an API client, the demo's simulated agents); the link is
// cut. The trunk's death ends the call, hung up by the trunk, as it does a
// bridged one: the SIP channel took the call's socket at the answer, and the
// engine drains it, so the trunk's health watch sees the media stop.
func TestDrillEngineConnectedWithoutAgentAudio(t *testing.T) {
	d := newDrillHarness(t, "drill-rtp.xml", Config{RingTimeout: 30 * time.Second})
	c, list := d.drillCampaign(numbers(700, 1), emulator.Behaviour{Call: emulator.CallReject, AnswerAfter: 100 * time.Millisecond}, 10*time.Second)
	// No call back: this drill is about the SIP call's end.
	if err := d.store.SetWhatsAppPermission(context.Background(), list[0].ID, storage.PermissionDenied, time.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	d.agents(c.ID, 1, time.Minute)
	d.setState(c.ID, campaigns.StateRunning)
	d.waitSIP(list, "connected", 10*time.Second, func(as []storage.Attempt) bool { return len(as) == 1 && as[0].ConnectAt != nil })
	time.Sleep(500 * time.Millisecond) // the customer talks a while
	cut := d.cut()
	st := d.waitDown(5 * time.Second)
	as := d.waitSIP(list, "ended", 10*time.Second, func(as []storage.Attempt) bool { return as[0].State == "ended" })
	a := as[0]
	t.Logf("trunk down %s after the cut (sign %q), call ended %s after it, hung up by %q", st.DownSince.Sub(cut).Round(time.Millisecond), st.Sign,
		a.EndAt.Sub(cut).Round(time.Millisecond), a.HangupBy)
	if a.Outcome != string(campaigns.OutcomeConnected) || a.HangupBy != channel.HangupByTrunk {
		t.Errorf("SIP attempt %+v: want connected, hung up by the trunk", a)
	}
	if got := a.EndAt.Sub(cut); got > 3*time.Second {
		t.Errorf("the call ended %s after the cut, want ≤ 3 s", got)
	}
}
