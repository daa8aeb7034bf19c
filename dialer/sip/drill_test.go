package sip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/internal/netlab"
	"github.com/turbina-dialer/turbina/internal/sipptest"
)

// Link-cut drills (issue 14): sipp is the carrier in a network namespace behind
// a router, and netlab's Cut drops everything between them, both ways, with no
// ICMP. The Originator keeps its default health settings. Times come from the
// Originator's own records (Result, TrunkStatus); the cut's instant is taken
// just before the routes go in.

// drill is one carrier behind a cuttable link and an Originator dialling it.
type drill struct {
	lab     *netlab.Lab
	sipp    *sipptest.Proc
	o       *Originator
	changes chan TrunkStatus
}

func newDrill(t testing.TB, scenario string, tune func(*Config)) *drill {
	t.Helper()
	lab := netlab.New(t)
	sipp := sipptest.Start(t, scenario, sipptest.Options{
		Netns: lab.CarrierNS, Host: lab.CarrierIP, Calls: 100000, Timeout: 5 * time.Minute,
	})
	d := &drill{lab: lab, sipp: sipp, changes: make(chan TrunkStatus, 64)}
	cfg := Config{
		Trunks:     []TrunkConfig{{Name: "carrier", Address: sipp.Addr}},
		ListenAddr: net.JoinHostPort(lab.RootIP, "0"),
		OnTrunkChange: func(st TrunkStatus) {
			select {
			case d.changes <- st:
			default:
			}
		},
	}
	if tune != nil {
		tune(&cfg)
	}
	d.o = newTestOriginator(t, cfg)
	return d
}

// waitState waits for the trunk to reach state, through OnTrunkChange.
func (d *drill) waitState(t testing.TB, state CircuitState, within time.Duration) TrunkStatus {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case st := <-d.changes:
			if st.State == state {
				return st
			}
		case <-timer.C:
			t.Fatalf("trunk not %s within %s: %+v\nsipp: %s", state, within, d.o.Trunks()[0], sipptest.Tail(d.sipp.Output(), 1500))
		}
	}
}

// noChange fails if the trunk changes state within d.
func (d *drill) noChange(t testing.TB, within time.Duration) {
	t.Helper()
	select {
	case st := <-d.changes:
		t.Fatalf("trunk changed while the link is up: %+v", st)
	case <-time.After(within):
	}
}

func (d *drill) cut(t testing.TB) time.Time {
	t.Helper()
	at := time.Now()
	d.lab.Cut()
	return at
}

// dial places a call whose events are logged.
func (d *drill) dial(t testing.TB, to string) (*Call, *eventLog) {
	t.Helper()
	log := newEventLog()
	c, err := d.o.Dial(context.Background(), DialRequest{To: to, OnEvent: log.on})
	if err != nil {
		t.Fatalf("dial %s: %v", to, err)
	}
	return c, log
}

// waitEvent waits for a call's event of kind.
func waitEvent(t testing.TB, c *Call, log *eventLog, kind EventKind, within time.Duration) {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case ev := <-log.ch:
			if ev.Kind == kind {
				return
			}
			if ev.Kind == EventEnded {
				t.Fatalf("call ended before %s: %+v", kind, c.Result())
			}
		case <-timer.C:
			t.Fatalf("no %s within %s: %+v", kind, within, c.Result())
		}
	}
}

// dialUntilDown places a call every 100 ms (at most 80) and cuts the link
// after the first ten: it returns the calls, when the link was cut and the
// trunk's status once down.
func (d *drill) dialUntilDown(t testing.TB) ([]*Call, time.Time, TrunkStatus) {
	t.Helper()
	var calls []*Call
	var cutAt time.Time
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := range 80 {
		if i == 10 {
			cutAt = d.cut(t)
		}
		c, err := d.o.Dial(context.Background(), DialRequest{To: fmt.Sprintf("+3460000%04d", i)})
		if errors.Is(err, ErrNoTrunk) {
			break
		}
		switch {
		case errors.Is(err, ErrTrunksBusy):
			// A trunk just back ramps its admission: calls stuck at the cut fill it.
		case err != nil:
			t.Fatalf("dial %d: %v", i, err)
		default:
			calls = append(calls, c)
		}
		<-tick.C
	}
	st := d.waitState(t, CircuitOpen, 5*time.Second)
	for _, c := range calls {
		waitResult(t, c, 10*time.Second)
	}
	return calls, cutAt, st
}

// firstUnanswered is when the first INVITE that got no response at all was sent.
func firstUnanswered(t testing.TB, calls []*Call) time.Time {
	t.Helper()
	var first time.Time
	for _, c := range calls {
		r := c.Result()
		if r.Status == 0 && r.RingAt.IsZero() && (first.IsZero() || r.InviteAt.Before(first)) {
			first = r.InviteAt
		}
	}
	if first.IsZero() {
		t.Fatal("no INVITE went unanswered")
	}
	return first
}

// TestDrillWhileDialling: the link dies under a stream of dials; the trunk is
// down within 1.5 s of the first INVITE that got no answer, and every call
// caught ends trunk_down, none busy after the cut nor no_answer.
func TestDrillWhileDialling(t *testing.T) {
	d := newDrill(t, "drill-busy.xml", nil)
	calls, cutAt, st := d.dialUntilDown(t)
	first := firstUnanswered(t, calls)
	detected := st.DownSince.Sub(first)
	t.Logf("cut %s, first unanswered INVITE +%s, down +%s (sign %q, detection %.3fs)",
		cutAt.Format("15:04:05.000"), first.Sub(cutAt), st.DownSince.Sub(cutAt), st.Sign, st.LastDetection)
	if detected > 1500*time.Millisecond {
		t.Errorf("down %s after the first unanswered INVITE, want ≤ 1.5s", detected)
	}
	if st.LastDetection <= 0 || st.Sign == "" {
		t.Errorf("status does not say how the death was found: %+v", st)
	}
	for _, c := range calls {
		r := c.Result()
		switch {
		case r.InviteAt.Before(cutAt) && r.Outcome == OutcomeBusy:
		case r.Outcome == OutcomeTrunkDown && r.Status == 0:
		default:
			t.Errorf("call at +%s: %s %d %q", r.InviteAt.Sub(cutAt), r.Outcome, r.Status, r.Reason)
		}
	}
}

// TestDrillIdle: nothing is dialled; keepalives find the dead link within 2 s.
func TestDrillIdle(t *testing.T) {
	d := newDrill(t, "drill-busy.xml", nil)
	d.noChange(t, 1500*time.Millisecond) // keepalives answered: the trunk stays up
	cutAt := d.cut(t)
	st := d.waitState(t, CircuitOpen, 5*time.Second)
	t.Logf("down +%s after the cut (sign %q, detection %.3fs)", st.DownSince.Sub(cutAt), st.Sign, st.LastDetection)
	if got := st.DownSince.Sub(cutAt); got > 2*time.Second {
		t.Errorf("idle trunk found down %s after the cut, want ≤ 2s", got)
	}
	if !strings.Contains(st.Sign, "keepalive") {
		t.Errorf("sign %q, want the failed keepalive", st.Sign)
	}
}

// TestDrillRinging: calls ringing at the cut end trunk_down with a CANCEL sent,
// within 2 s of the cut (no new INVITE shows the death: keepalives do).
func TestDrillRinging(t *testing.T) {
	d := newDrill(t, "drill-ring.xml", nil)
	var calls []*Call
	for i := range 4 {
		c, log := d.dial(t, fmt.Sprintf("+3461000%04d", i))
		waitEvent(t, c, log, EventRinging, 5*time.Second)
		calls = append(calls, c)
	}
	cutAt := d.cut(t)
	st := d.waitState(t, CircuitOpen, 5*time.Second)
	for i, c := range calls {
		r := waitResult(t, c, 5*time.Second)
		if r.Outcome != OutcomeTrunkDown || !strings.Contains(r.Reason, "CANCEL sent") {
			t.Errorf("ringing call %d: %s %q, want trunk_down with a CANCEL", i, r.Outcome, r.Reason)
		}
		if got := r.EndAt.Sub(cutAt); got > 2*time.Second {
			t.Errorf("ringing call %d ended %s after the cut, want ≤ 2s", i, got)
		}
		if r.EndAt.Before(st.DownSince) {
			t.Errorf("ringing call %d ended before the trunk was found down", i)
		}
	}
}

// TestDrillAnswered: answered calls with RTP flowing end, hung up by the
// trunk, within 2 s of the cut; an answered call's outcome stays answered.
// With keepalives rare, the media stopping on every call is what finds it.
func TestDrillAnswered(t *testing.T) {
	for _, tc := range []struct {
		name string
		tune func(*Config)
		sign string
	}{
		{"defaults", nil, ""},
		{"media sign", func(c *Config) { c.KeepaliveInterval = Duration(time.Minute) }, "no RTP"},
	} {
		t.Run(tc.name, func(t *testing.T) { drillAnswered(t, tc.tune, tc.sign) })
	}
}

func drillAnswered(t *testing.T, tune func(*Config), wantSign string) {
	d := newDrill(t, "drill-rtp.xml", tune)
	var calls []*Call
	for i := range 2 {
		c, log := d.dial(t, fmt.Sprintf("+3462000%04d", i))
		waitEvent(t, c, log, EventAnswered, 5*time.Second)
		calls = append(calls, c)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, c := range calls {
		for c.Media().PacketsReceived() < 10 {
			if time.Now().After(deadline) {
				t.Fatalf("no RTP from the carrier: %d packets", c.Media().PacketsReceived())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	cutAt := d.cut(t)
	st := d.waitState(t, CircuitOpen, 5*time.Second)
	t.Logf("down +%s after the cut (sign %q)", st.DownSince.Sub(cutAt), st.Sign)
	if !strings.Contains(st.Sign, wantSign) {
		t.Errorf("sign %q, want %q", st.Sign, wantSign)
	}
	for i, c := range calls {
		r := waitResult(t, c, 5*time.Second)
		if r.Outcome != OutcomeAnswered || r.HangupBy != PartyTrunk {
			t.Errorf("answered call %d: %s by %q (%s), want answered, hung up by the trunk", i, r.Outcome, r.HangupBy, r.Reason)
		}
		if got := r.EndAt.Sub(cutAt); got > 2*time.Second {
			t.Errorf("answered call %d ended %s after the cut, want ≤ 2s", i, got)
		}
	}
}

// TestDrillRecovery: after the link is back, the trunk closes only after
// RecoverAfter answered probes, and then takes one call in flight, two a
// second later.
func TestDrillRecovery(t *testing.T) {
	d := newDrill(t, "drill-ring.xml", nil)
	d.noChange(t, time.Second)
	d.cut(t)
	d.waitState(t, CircuitOpen, 5*time.Second)
	time.Sleep(1500 * time.Millisecond) // some recovery probes fail meanwhile
	restoredAt := time.Now()
	d.lab.Restore()
	st := d.waitState(t, CircuitClosed, 10*time.Second)
	// RecoverAfter (3) answered probes, at least ProbeInterval apart, the first
	// answered after the restore.
	least := 2*d.o.cfg.ProbeInterval.Std() - 50*time.Millisecond
	if got := st.LastChangeAt.Sub(restoredAt); got < least {
		t.Errorf("closed %s after the restore, want ≥ %s (three answered probes)", got, least)
	}
	if !st.DownSince.IsZero() {
		t.Errorf("recovered trunk still down since %s", st.DownSince)
	}
	first, _ := d.dial(t, "+34630000001")
	if _, err := d.o.Dial(context.Background(), DialRequest{To: "+34630000002"}); !errors.Is(err, ErrTrunksBusy) {
		t.Fatalf("second call right after recovery: %v, want ErrTrunksBusy (ramp at 1)", err)
	}
	time.Sleep(time.Until(st.LastChangeAt.Add(rampStep + 100*time.Millisecond)))
	second, _ := d.dial(t, "+34630000003")
	if _, err := d.o.Dial(context.Background(), DialRequest{To: "+34630000004"}); !errors.Is(err, ErrTrunksBusy) {
		t.Fatalf("third call a second after recovery: %v, want ErrTrunksBusy (ramp at 2)", err)
	}
	for _, c := range []*Call{first, second} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = c.Hangup(ctx)
		cancel()
	}
}

// TestDrillFlapping: the link goes down for 2 s and up for 2 s, three times,
// while calls are placed and answered: every call ends exactly once, nothing
// is reported of it after its end, and no call ended trunk_down was answered.
func TestDrillFlapping(t *testing.T) {
	d := newDrill(t, "drill-rtp.xml", nil)
	type placed struct {
		c   *Call
		log *eventLog
	}
	var (
		mu    sync.Mutex
		calls []placed
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(150 * time.Millisecond)
		defer tick.Stop()
		for i := range 120 {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			log := newEventLog()
			c, err := d.o.Dial(context.Background(), DialRequest{To: fmt.Sprintf("+3464000%04d", i), OnEvent: log.on})
			if err != nil {
				continue // ErrNoTrunk while down, ErrTrunksBusy while ramping
			}
			mu.Lock()
			calls = append(calls, placed{c, log})
			mu.Unlock()
			// Talk a little, then hang up: a call must not outlive the drill.
			go func() {
				select {
				case <-c.Done():
				case <-time.After(700 * time.Millisecond):
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					_ = c.Hangup(ctx)
					cancel()
				}
			}()
		}
	}()
	for range 3 {
		time.Sleep(2 * time.Second)
		d.lab.Cut()
		time.Sleep(2 * time.Second)
		d.lab.Restore()
	}
	time.Sleep(time.Second)
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(calls) < 5 {
		t.Fatalf("only %d calls placed", len(calls))
	}
	downs := 0
	for i, p := range calls {
		r := waitResult(t, p.c, 10*time.Second)
		time.Sleep(10 * time.Millisecond) // let a late event, if any, land
		kinds := p.log.kinds()
		if n := countKind(kinds, EventEnded); n != 1 || kinds[len(kinds)-1] != EventEnded {
			t.Errorf("call %d: events %v, want one ended, last", i, kinds)
		}
		answered := countKind(kinds, EventAnswered)
		switch r.Outcome {
		case OutcomeTrunkDown:
			downs++
			if answered != 0 {
				t.Errorf("call %d ended trunk_down but was reported answered: %v", i, kinds)
			}
		case OutcomeAnswered:
			if answered != 1 {
				t.Errorf("call %d answered, events %v", i, kinds)
			}
		}
	}
	if downs == 0 {
		t.Error("no call was caught by a cut: the drill proved nothing")
	}
	t.Logf("%d calls, %d ended trunk_down", len(calls), downs)
}

func countKind(kinds []EventKind, k EventKind) int {
	n := 0
	for _, x := range kinds {
		if x == k {
			n++
		}
	}
	return n
}

// BenchmarkTrunkDetection measures detection over 20 cuts while dialling and
// 20 idle, for BENCHMARKS.md; it takes about two minutes, whatever b.N:
//
//	go test -run '^$' -bench TrunkDetection -benchtime 1x ./dialer/sip/
func BenchmarkTrunkDetection(b *testing.B) {
	const cuts = 20
	var dialling, idle []time.Duration
	d := newDrill(b, "drill-busy.xml", func(c *Config) { c.RecoverAfter = 1 })
	for b.Loop() {
		for range cuts {
			calls, _, st := d.dialUntilDown(b)
			dialling = append(dialling, st.DownSince.Sub(firstUnanswered(b, calls)))
			d.lab.Restore()
			d.waitState(b, CircuitClosed, 10*time.Second)
			time.Sleep(1100 * time.Millisecond) // past the ramp's first step
		}
		for i := range cuts {
			time.Sleep(time.Duration(700+i*37%500) * time.Millisecond) // cut at varied phases of the keepalive
			cutAt := d.cut(b)
			st := d.waitState(b, CircuitOpen, 5*time.Second)
			idle = append(idle, st.DownSince.Sub(cutAt))
			d.lab.Restore()
			d.waitState(b, CircuitClosed, 10*time.Second)
		}
	}
	for _, s := range []struct {
		name, unit string
		v          []time.Duration
	}{{"dialling (first unanswered INVITE → down)", "dialling", dialling}, {"idle (cut → down)", "idle", idle}} {
		slices.Sort(s.v)
		p := func(q float64) time.Duration { return s.v[min(len(s.v)-1, int(q*float64(len(s.v))))] }
		b.Logf("%s over %d cuts: p50 %s p95 %s max %s", s.name, len(s.v),
			p(0.5).Round(time.Millisecond), p(0.95).Round(time.Millisecond), s.v[len(s.v)-1].Round(time.Millisecond))
		b.ReportMetric(p(0.5).Seconds(), s.unit+"-p50-s")
		b.ReportMetric(p(0.95).Seconds(), s.unit+"-p95-s")
		b.ReportMetric(s.v[len(s.v)-1].Seconds(), s.unit+"-max-s")
	}
}

// TestDrillAnsweredDetached: a call whose RTP socket a bridge took (Detach) is
// judged by what the bridge reports with NoteReceived: reported and silenced
// by the cut, it ends hung up by the trunk; never reported, its media is
// unknown and the call is left alone.
func TestDrillAnsweredDetached(t *testing.T) {
	for _, tc := range []struct {
		name   string
		report bool
	}{{"reported", true}, {"not reported", false}} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDrill(t, "drill-rtp.xml", nil)
			c, log := d.dial(t, "+34660000001")
			waitEvent(t, c, log, EventAnswered, 5*time.Second)
			conn, _ := c.Media().Detach()
			read := make(chan int, 1)
			go func() { // the bridge: reads until the call closes the socket
				buf := make([]byte, 1500)
				n := 0
				for {
					if _, _, err := conn.ReadFromUDP(buf); err != nil {
						read <- n
						return
					}
					n++
					if tc.report {
						c.Media().NoteReceived(time.Now())
					}
				}
			}()
			time.Sleep(500 * time.Millisecond)
			cutAt := d.cut(t)
			d.waitState(t, CircuitOpen, 5*time.Second)
			if !tc.report {
				select {
				case <-c.Done():
					t.Fatalf("a call whose media nobody reported was ended: %+v", c.Result())
				case <-time.After(time.Second):
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = c.Hangup(ctx)
				return
			}
			r := waitResult(t, c, 5*time.Second)
			if r.Outcome != OutcomeAnswered || r.HangupBy != PartyTrunk {
				t.Errorf("bridged call: %s by %q (%s), want answered, hung up by the trunk", r.Outcome, r.HangupBy, r.Reason)
			}
			if got := r.EndAt.Sub(cutAt); got > 2*time.Second {
				t.Errorf("bridged call ended %s after the cut, want ≤ 2s", got)
			}
			if n := <-read; n < 10 {
				t.Errorf("the bridge read %d packets before the cut", n)
			}
		})
	}
}

// TestDrillFaultsOpenFirst: the dials caught by the cut time out before the
// probe burst is over, so their faults open the circuit first; the burst still
// finds the trunk dead, marks it down and ends the answered call whose media
// stopped, as when the burst is first. (Before, a circuit that faults opened
// was never marked down: its answered calls went on, silent, until someone
// hung up, and its ringing calls rang out as no_answer.)
func TestDrillFaultsOpenFirst(t *testing.T) {
	d := newDrill(t, "drill-rtp.xml", func(c *Config) {
		c.InviteTimeout = Duration(300 * time.Millisecond) // the fault comes at 300 ms...
		c.SuspectAfter = Duration(100 * time.Millisecond)
		c.FaultsToOpen = 1
		c.ProbeBurstCount = 3 // ...the burst's verdict at 100 + 2×200 + 500 ms at the earliest
		c.ProbeBurstSpacing = Duration(200 * time.Millisecond)
		c.ProbeTimeout = Duration(500 * time.Millisecond)
		c.KeepaliveInterval = Duration(time.Minute)
		c.MediaSilence = Duration(time.Second)
	})
	answered, log := d.dial(t, "+34663000001")
	waitEvent(t, answered, log, EventAnswered, 5*time.Second)
	for deadline := time.Now().Add(5 * time.Second); answered.Media().PacketsReceived() < 10; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no RTP from the carrier: %d packets", answered.Media().PacketsReceived())
		}
	}
	cutAt := d.cut(t)
	dialled, _ := d.dial(t, "+34663000002")
	var opened, down TrunkStatus
	timeout := time.After(5 * time.Second)
	for down.DownSince.IsZero() {
		select {
		case st := <-d.changes:
			if st.State == CircuitOpen && opened.LastChangeAt.IsZero() {
				opened = st
			}
			if !st.DownSince.IsZero() {
				down = st
			}
		case <-timeout:
			t.Fatalf("trunk not marked down within 5 s of the cut: %+v", d.o.Trunks()[0])
		}
	}
	if !opened.DownSince.IsZero() || opened.LastChangeAt.IsZero() {
		t.Fatalf("the circuit did not open on faults before the burst's verdict (%+v): the drill tests nothing", opened)
	}
	t.Logf("faults opened the circuit +%s after the cut; marked down +%s (sign %q)",
		opened.LastChangeAt.Sub(cutAt), down.DownSince.Sub(cutAt), down.Sign)
	if r := waitResult(t, dialled, 5*time.Second); r.Outcome != OutcomeTrunkFault && r.Outcome != OutcomeTrunkDown {
		t.Errorf("call dialled into the cut: %s (%s), want trunk_fault or trunk_down", r.Outcome, r.Reason)
	}
	r := waitResult(t, answered, 5*time.Second)
	if r.Outcome != OutcomeAnswered || r.HangupBy != PartyTrunk {
		t.Errorf("answered call: %s by %q (%s), want answered, hung up by the trunk", r.Outcome, r.HangupBy, r.Reason)
	}
	if got := r.EndAt.Sub(cutAt); got > 3*time.Second {
		t.Errorf("answered call ended %s after the cut, want ≤ 3s", got)
	}
}

// TestDrillHangupIntoTheCut: an answered call we hang up just after the link
// died ends when we hung up, and is over as soon as the trunk is found down,
// not when its unanswerable BYE gives up (byeTimeout). Before, such a call
// (an agent's hang-up in the second after a cut) looked like a conversation
// that went on byeTimeout past the cut.
func TestDrillHangupIntoTheCut(t *testing.T) {
	d := newDrill(t, "drill-rtp.xml", nil)
	c, log := d.dial(t, "+34664000001")
	waitEvent(t, c, log, EventAnswered, 5*time.Second)
	cutAt := d.cut(t)
	hungUpAt := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*byeTimeout)
	defer cancel()
	if err := c.Hangup(ctx); err != nil {
		t.Fatalf("hangup: %v", err)
	}
	doneAt := time.Now()
	st := d.waitState(t, CircuitOpen, 5*time.Second)
	r := c.Result()
	t.Logf("down +%s after the cut; call over +%s after the hang-up, %s", st.DownSince.Sub(cutAt), doneAt.Sub(hungUpAt), r.Reason)
	if r.Outcome != OutcomeAnswered || r.HangupBy != PartyLocal {
		t.Errorf("call: %s by %q (%s), want answered, hung up by us", r.Outcome, r.HangupBy, r.Reason)
	}
	if got := r.EndAt.Sub(hungUpAt); got < 0 || got > 200*time.Millisecond {
		t.Errorf("call's end recorded %s after the hang-up, want when we hung up (≤ 200ms)", got)
	}
	if got := doneAt.Sub(hungUpAt); got >= byeTimeout {
		t.Errorf("call over %s after the hang-up, want before the BYE's timeout (%s), once the trunk is down", got, byeTimeout)
	}
	if doneAt.Before(st.DownSince) && doneAt.Sub(hungUpAt) > time.Second {
		t.Errorf("call over at %s, before the trunk was down (%s), yet not at once", doneAt, st.DownSince)
	}
}
