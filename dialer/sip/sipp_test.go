package sip

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/internal/sipptest"
)

func udpTrunk(name, addr string, prio int) TrunkConfig {
	return TrunkConfig{Name: name, Address: addr, Transport: TransportUDP, CallerID: "+34910000001", Priority: prio}
}

// TestOutcomes dials one call per carrier behaviour and checks the outcome,
// the SIP status, who hung up, and (through sipp's exit status) that the
// carrier saw exactly the messages it expected: CANCEL, digest, BYE.
func TestOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		scenario  string // "" : nothing listens (silent trunk)
		trunk     func(TrunkConfig) TrunkConfig
		hangup    bool // hang up locally once answered
		outcome   Outcome
		status    int
		hangupBy  Party
		wantEvent EventKind
	}{
		{name: "answer/local-bye", scenario: "answer.xml", hangup: true, outcome: OutcomeAnswered, status: 200, hangupBy: PartyLocal, wantEvent: EventAnswered},
		{name: "remote-bye", scenario: "remote-bye.xml", outcome: OutcomeAnswered, status: 200, hangupBy: PartyRemote, wantEvent: EventAnswered},
		{name: "busy", scenario: "busy.xml", outcome: OutcomeBusy, status: 486},
		{name: "not-found", scenario: "notfound.xml", outcome: OutcomeInvalidNumber, status: 404},
		{name: "decline", scenario: "decline.xml", outcome: OutcomeRejected, status: 603},
		{name: "unavailable", scenario: "unavailable.xml", outcome: OutcomeTrunkFault, status: 503},
		{name: "no-answer/cancel", scenario: "noanswer.xml", outcome: OutcomeNoAnswer, status: 487, wantEvent: EventRinging},
		{name: "no-common-codec", scenario: "answer-g729.xml", outcome: OutcomeMediaFailed, status: 200, hangupBy: PartyLocal},
		{name: "silent", scenario: "", outcome: OutcomeTrunkFault, status: 0},
		{name: "digest-401", scenario: "auth401.xml", hangup: true, outcome: OutcomeAnswered, status: 200, hangupBy: PartyLocal,
			trunk: func(tc TrunkConfig) TrunkConfig { tc.Username, tc.Password = "alice", "secret"; return tc }},
		{name: "digest-407", scenario: "auth407.xml", hangup: true, outcome: OutcomeAnswered, status: 200, hangupBy: PartyLocal,
			trunk: func(tc TrunkConfig) TrunkConfig { tc.Username, tc.Password = "alice", "secret"; return tc }},
		{name: "digest-wrong-password", scenario: "auth401.xml", outcome: OutcomeTrunkFault, status: 403,
			trunk: func(tc TrunkConfig) TrunkConfig { tc.Username, tc.Password = "alice", "wrong"; return tc }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var sipp *sipptest.Proc
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sipptest.FreePort(t)))
			if tt.scenario != "" {
				sipp = sipptest.Start(t, tt.scenario, sipptest.Options{})
				addr = sipp.Addr
			}
			tc := udpTrunk("carrier", addr, 0)
			if tt.trunk != nil {
				tc = tt.trunk(tc)
			}
			o := newTestOriginator(t, testConfig(tc))
			elog := newEventLog()
			events := elog.ch
			c, err := o.Dial(context.Background(), DialRequest{To: "+34600000001", AttemptID: "att-1", OnEvent: elog.on})
			if err != nil {
				t.Fatal(err)
			}
			if tt.hangup {
				waitAnswered(t, c, events)
				if err := c.Hangup(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			r := waitResult(t, c, 10*time.Second)
			if r.Outcome != tt.outcome || r.Status != tt.status || r.HangupBy != tt.hangupBy {
				t.Errorf("result = %s %d hangup_by=%q (%s), want %s %d %q", r.Outcome, r.Status, r.HangupBy, r.Reason, tt.outcome, tt.status, tt.hangupBy)
			}
			if r.Trunk != "carrier" || r.InviteAt.IsZero() || r.EndAt.Before(r.InviteAt) {
				t.Errorf("bad record: %+v", r)
			}
			if r.Outcome == OutcomeAnswered && (r.AnswerAt.IsZero() || r.SetupDuration() <= 0) {
				t.Errorf("answered without timings: %+v", r)
			}
			kinds := elog.kinds()
			if tt.wantEvent != "" && !slices.Contains(kinds, tt.wantEvent) {
				t.Errorf("events %v lack %s", kinds, tt.wantEvent)
			}
			if len(kinds) == 0 || kinds[len(kinds)-1] != EventEnded {
				t.Errorf("events %v do not end with %s", kinds, EventEnded)
			}
			if sipp != nil {
				sipp.Wait(t, 15*time.Second)
			}
		})
	}
}

// TestRTP checks that an answered call receives the carrier's RTP, learns the
// codec and address from its SDP, and sends silence back.
func TestRTP(t *testing.T) {
	t.Parallel()
	sipp := sipptest.Start(t, "answer-rtp.xml", sipptest.Options{})
	cfg := testConfig(udpTrunk("carrier", sipp.Addr, 0))
	cfg.SendSilence = true
	o := newTestOriginator(t, cfg)
	c := answeredCall(t, o, "+34600000002")
	m := c.Media()
	if m.Codec() != CodecPCMU || m.TelephoneEvent() != 101 || m.RemoteAddr() == nil || !m.RemoteAddr().IP.IsLoopback() {
		t.Errorf("media = %+v %d %v", m.Codec(), m.TelephoneEvent(), m.RemoteAddr())
	}
	deadline := time.Now().Add(3 * time.Second)
	for m.PacketsReceived() < 10 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if m.PacketsReceived() < 10 || m.PacketsSent() == 0 {
		t.Errorf("rtp received=%d sent=%d, want ≥10 and >0", m.PacketsReceived(), m.PacketsSent())
	}
	// Handed over to a bridge, the socket delivers the carrier's RTP to its new
	// reader, starting right after the last packet Media read: none is lost.
	conn, last := m.Detach()
	if len(last) < 12 || last[0]>>6 != 2 {
		t.Fatalf("Detach returned %x as the last packet read, want RTP", last)
	}
	if _, again := m.Detach(); again != nil {
		t.Error("a second Detach returned the last packet again")
	}
	if err := conn.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	for i := range 5 {
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil || n < 12 || buf[0]>>6 != 2 || !from.IP.Equal(m.RemoteAddr().IP) {
			t.Fatalf("read %d after Detach: %d bytes from %v, %v", i, n, from, err)
		}
		if i == 0 {
			if got, want := binary.BigEndian.Uint16(buf[2:]), binary.BigEndian.Uint16(last[2:])+1; got != want {
				t.Errorf("first packet after Detach has sequence %d, want %d (the one after Media's last)", got, want)
			}
		}
	}
	counted := m.PacketsReceived()
	time.Sleep(100 * time.Millisecond)
	if m.PacketsReceived() != counted {
		t.Error("Media still reads the socket after Detach")
	}
	if err := c.Hangup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := c.Result(); r.Outcome != OutcomeAnswered || r.HangupBy != PartyLocal {
		t.Errorf("result %+v", r)
	}
	sipp.Wait(t, 15*time.Second)
}

// TestStreamTransports places a call over TCP to sipp, and over TLS through a
// TLS terminator in front of sipp (Debian's sipp has no TLS), checking the
// carrier's certificate against a CA file.
func TestStreamTransports(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{TransportTCP, TransportTLS} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			opts := sipptest.Options{Transport: "t1", Port: sipptest.FreePort(t)}
			tc := TrunkConfig{Name: "carrier", Transport: transport, CallerID: "+34910000001"}
			if transport == TransportTLS {
				tc.Address, tc.TLSRootCAFile = tlsRelay(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port)))
				_, p, _ := net.SplitHostPort(tc.Address)
				opts.ContactPort, _ = strconv.Atoi(p)
				opts.ContactTransport = "tls"
			}
			sipp := sipptest.Start(t, "answer.xml", opts)
			if tc.Address == "" {
				tc.Address = sipp.Addr
			}
			cfg := testConfig(tc)
			if transport == TransportTLS {
				pki := newTestPKI(t)
				cfg.TLSCertFile, cfg.TLSKeyFile = pki.OursCert, pki.OursKey
			}
			o := newTestOriginator(t, cfg)
			c := answeredCall(t, o, "+34600000003")
			if err := c.Hangup(context.Background()); err != nil {
				t.Fatal(err)
			}
			if r := c.Result(); r.Outcome != OutcomeAnswered || r.HangupBy != PartyLocal {
				t.Errorf("result %+v", r)
			}
			sipp.Wait(t, 15*time.Second)
		})
	}
}

// TestChannelLimit: with MaxChannels=2 and two calls up, a third Dial is
// refused at once with ErrTrunksBusy; after one hangs up it is accepted.
func TestChannelLimit(t *testing.T) {
	t.Parallel()
	sipp := sipptest.Start(t, "answer.xml", sipptest.Options{Calls: 3})
	tc := udpTrunk("carrier", sipp.Addr, 0)
	tc.MaxChannels = 2
	o := newTestOriginator(t, testConfig(tc))
	var calls []*Call
	for i := range 2 {
		c := answeredCall(t, o, "+3460000001"+strconv.Itoa(i))
		calls = append(calls, c)
	}
	if _, err := o.Dial(context.Background(), DialRequest{To: "+34600000019"}); !errors.Is(err, ErrTrunksBusy) {
		t.Fatalf("third Dial: err = %v, want ErrTrunksBusy", err)
	}
	if got := o.Trunks()[0].InFlight; got != 2 {
		t.Errorf("in flight = %d, want 2", got)
	}
	if err := calls[0].Hangup(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := answeredCall(t, o, "+34600000019")
	calls = append(calls, c)
	for _, c := range calls[1:] {
		_ = c.Hangup(context.Background())
	}
	for _, c := range calls {
		if r := waitResult(t, c, 5*time.Second); r.Outcome != OutcomeAnswered {
			t.Errorf("outcome %s (%s)", r.Outcome, r.Reason)
		}
	}
	sipp.Wait(t, 15*time.Second)
}

// TestCPSLimit: with MaxCPS=10, N Dials cannot all return before (N-1)/10 s,
// and the INVITEs leave in order. (The exact limit is unit-tested on the
// pacer with a fake clock, and measured at the carrier by TestCPSAtCarrier.)
func TestCPSLimit(t *testing.T) {
	t.Parallel()
	const n = 5
	sipp := sipptest.Start(t, "busy.xml", sipptest.Options{Calls: n})
	tc := udpTrunk("carrier", sipp.Addr, 0)
	tc.MaxCPS = 10
	o := newTestOriginator(t, testConfig(tc))
	start := time.Now()
	var calls []*Call
	for i := range n {
		c, err := o.Dial(context.Background(), DialRequest{To: "+3460000002" + strconv.Itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		calls = append(calls, c)
	}
	if el := time.Since(start); el < (n-1)*100*time.Millisecond {
		t.Errorf("%d Dials at 10 cps took %s, want ≥ %s", n, el, (n-1)*100*time.Millisecond)
	}
	// A Dial whose ctx ends while waiting for its slot gives up with ctx's error.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := o.Dial(ctx, DialRequest{To: "+34600000029"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial with short ctx: %v, want DeadlineExceeded", err)
	}
	var prev time.Time
	for _, c := range calls {
		r := waitResult(t, c, 5*time.Second)
		if r.Outcome != OutcomeBusy {
			t.Errorf("outcome %s", r.Outcome)
		}
		if r.InviteAt.Before(prev) {
			t.Errorf("INVITEs out of order")
		}
		prev = r.InviteAt
	}
	sipp.Wait(t, 15*time.Second)
}

// TestFailover walks the product's promise: trunk A answers, then starts
// returning 503 and calls move to B within the same Dial; A's circuit opens;
// then B goes silent too and Dial reports ErrNoTrunk at once; then A answers
// OPTIONS again and its circuit closes.
func TestFailover(t *testing.T) {
	t.Parallel()
	a := sipptest.Start(t, "answer.xml", sipptest.Options{Calls: 1})
	b := sipptest.Start(t, "answer.xml", sipptest.Options{Calls: 3})
	cfg := testConfig(udpTrunk("a", a.Addr, 1), udpTrunk("b", b.Addr, 2))
	cfg.ProbeInterval = Duration(time.Second) // let the 503 sipp leave before probes
	o := newTestOriginator(t, cfg)

	dialAnswerHangup := func(wantTrunk string, wantAttempts int) {
		t.Helper()
		c := answeredCall(t, o, "+34600000031")
		_ = c.Hangup(context.Background())
		r := c.Result()
		if r.Outcome != OutcomeAnswered || r.Trunk != wantTrunk || len(r.Attempts) != wantAttempts {
			t.Fatalf("result %s on %s after %d attempts (%+v), want answered on %s after %d", r.Outcome, r.Trunk, len(r.Attempts), r.Attempts, wantTrunk, wantAttempts)
		}
	}
	dialAnswerHangup("a", 1)
	a.Wait(t, 15*time.Second)

	// A now refuses with 503: two calls fail over to B without being lost.
	a503 := sipptest.Start(t, "unavailable.xml", sipptest.Options{Calls: 2, Port: a.Port})
	dialAnswerHangup("b", 2)
	dialAnswerHangup("b", 2)
	if st := o.Trunks()[0]; st.Name != "a" || st.State != CircuitOpen {
		t.Fatalf("trunk a = %+v, want open", st)
	}
	a503.Wait(t, 15*time.Second)
	dialAnswerHangup("b", 1) // A is skipped while open
	b.Wait(t, 15*time.Second)

	// Both silent: B's faults, or the probe burst its silent INVITE starts,
	// open its circuit; the next Dial says ErrNoTrunk at once. A call still
	// waiting when the burst fails ends trunk_down; one whose INVITE timed out
	// first, trunk_fault.
	for range 2 {
		c, err := o.Dial(context.Background(), DialRequest{To: "+34600000032"})
		if errors.Is(err, ErrNoTrunk) {
			break // the burst found B dead before the second dial
		}
		if err != nil {
			t.Fatal(err)
		}
		if r := waitResult(t, c, 5*time.Second); r.Outcome != OutcomeTrunkFault && r.Outcome != OutcomeTrunkDown {
			t.Fatalf("outcome on silent trunk: %s", r.Outcome)
		}
	}
	opened := time.Now()
	_, err := o.Dial(context.Background(), DialRequest{To: "+34600000033"})
	if !errors.Is(err, ErrNoTrunk) || time.Since(opened) > time.Second {
		t.Fatalf("Dial with every circuit open: %v after %s, want ErrNoTrunk within 1s", err, time.Since(opened))
	}

	// A is back: it answers OPTIONS and its circuit closes.
	back := sipptest.Start(t, "options.xml", sipptest.Options{Calls: 1, Port: a.Port})
	deadline := time.Now().Add(5 * time.Second)
	for o.Trunks()[0].State != CircuitClosed {
		if time.Now().After(deadline) {
			t.Fatalf("trunk a did not close: %+v", o.Trunks()[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
	back.Wait(t, 15*time.Second)
}

// TestMalformedInput sends garbage, a 200 OK for an unknown call and a BYE
// for an unknown dialog to the SIP port: nothing crashes, the BYE gets 481,
// and the stack still answers OPTIONS.
func TestMalformedInput(t *testing.T) {
	t.Parallel()
	o := newTestOriginator(t, testConfig(udpTrunk("carrier", "127.0.0.1:9", 0)))
	conn, err := net.Dial("udp", o.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	send := func(msg string) {
		t.Helper()
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(prefix string) {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("waiting for %q: %v", prefix, err)
			}
			if len(buf[:n]) >= len(prefix) && string(buf[:len(prefix)]) == prefix {
				return
			}
		}
	}
	for _, garbage := range []string{
		"\x00\x01\x02\xff garbage",
		"INVITE\r\n\r\n",
		"SIP/2.0 999\r\nVia: nonsense\r\n\r\n",
		"BYE sip:x SIP/2.0\r\nContent-Length: 99999\r\n\r\nshort",
		"\r\n\r\n",
	} {
		send(garbage)
	}
	send("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bKnope\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\n" +
		"Call-ID: unknown-call\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 0\r\n\r\n")
	send("BYE sip:turbina@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bKbye1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\n" +
		"Call-ID: unknown-call\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
	expect("SIP/2.0 481")
	send("OPTIONS sip:turbina@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bKopt1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\n" +
		"Call-ID: opt-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
	expect("SIP/2.0 200")
}

// TestNoTrunkWhenAllOpen: Dial refuses at once, without I/O, when every circuit is open.
func TestNoTrunkWhenAllOpen(t *testing.T) {
	t.Parallel()
	cfg := testConfig(udpTrunk("a", "127.0.0.1:9", 0))
	cfg.ProbeInterval = Duration(time.Hour)
	o := newTestOriginator(t, cfg)
	for range cfg.FaultsToOpen {
		o.trunks[0].circuit.fault(time.Now(), errors.New("test"))
	}
	start := time.Now()
	if _, err := o.Dial(context.Background(), DialRequest{To: "+34600000041"}); !errors.Is(err, ErrNoTrunk) {
		t.Fatalf("err = %v, want ErrNoTrunk", err)
	}
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Errorf("ErrNoTrunk took %s", el)
	}
}
