package sip

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/turbina-dialer/turbina/internal/sipptest"
)

// rtpSink is a UDP socket the test owns, named in the carrier's new offer.
type rtpSink struct{ conn *net.UDPConn }

func newRTPSink(t *testing.T) *rtpSink {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rtpSink{conn: c}
}

func (s *rtpSink) port() int { return s.conn.LocalAddr().(*net.UDPAddr).Port }

// next reads the next RTP packet and where it came from; an error after within.
func (s *rtpSink) next(within time.Duration) (rtp.Packet, *net.UDPAddr, error) {
	buf := make([]byte, 1500)
	_ = s.conn.SetReadDeadline(time.Now().Add(within))
	n, from, err := s.conn.ReadFromUDP(buf)
	if err != nil {
		return rtp.Packet{}, nil, err
	}
	var p rtp.Packet
	if err := p.Unmarshal(buf[:n]); err != nil {
		return rtp.Packet{}, from, err
	}
	return p, from, nil
}

// expectRTP waits for packets at the sink from the call's RTP socket, with pt.
func (s *rtpSink) expectRTP(t *testing.T, c *Call, pt uint8) {
	t.Helper()
	local := c.Media().LocalAddr()
	for i := range 5 {
		p, from, err := s.next(3 * time.Second)
		if err != nil {
			t.Fatalf("packet %d at the new address: %v (media %+v)", i, err, c.Media().State())
		}
		if from.Port != local.Port || p.PayloadType != pt {
			t.Fatalf("packet %d at the new address: from %v pt %d, want from %v pt %d", i, from, p.PayloadType, local, pt)
		}
	}
}

// drain empties the sink of what queued.
func (s *rtpSink) drain() {
	for {
		if _, _, err := s.next(time.Millisecond); err != nil {
			return
		}
	}
}

// expectQuiet fails if the sink gets anything within d.
func (s *rtpSink) expectQuiet(t *testing.T, d time.Duration) {
	t.Helper()
	if p, from, err := s.next(d); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("RTP while held: pt %d from %v (err %v)", p.PayloadType, from, err)
	}
}

// dialCarrier starts sipp with scenario, the sink's port as [$rtpport], and
// dials it with silence sent, so the call's RTP shows where it goes.
func dialCarrier(t *testing.T, scenario string, sink *rtpSink, tune func(*Config)) (*Call, *sipptest.Proc) {
	t.Helper()
	var extra []string
	if sink != nil {
		extra = []string{"-set", "rtpport", strconv.Itoa(sink.port())}
	}
	sipp := sipptest.Start(t, scenario, sipptest.Options{Extra: extra})
	cfg := testConfig(udpTrunk("carrier", sipp.Addr, 0))
	cfg.SendSilence = true
	// These carriers send no RTP and answer no OPTIONS: the trunk's health
	// watch, which silence would start, is not what these tests are about.
	cfg.MediaSilence = Duration(time.Hour)
	if tune != nil {
		tune(&cfg)
	}
	o := newTestOriginator(t, cfg)
	c := answeredCall(t, o, "+34600000009")
	return c, sipp
}

func hangupAndWait(t *testing.T, c *Call, sipp *sipptest.Proc) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	r := c.Result()
	if r.Outcome != OutcomeAnswered || r.HangupBy != PartyLocal {
		t.Errorf("result %s by %q (%s), want answered by local", r.Outcome, r.HangupBy, r.Reason)
	}
	// sipp exits 0 only when every answer it checked was right (check_it).
	sipp.Wait(t, 15*time.Second)
	return r
}

// TestMidCallOffers: a carrier's offers inside an answered call (RFC 3264 §8,
// RFC 3311) are answered with what the call can carry and move its RTP: a
// re-INVITE re-anchoring media on a new port, one offering PCMA only, one
// without SDP (our offer in the 200, its answer in the ACK), and an UPDATE;
// the carrier's sipp checks each answer, OPTIONS's and 405's Allow.
func TestMidCallOffers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		scenario string
		pt       uint8 // what Turbina's RTP must carry at the new address
		codec    Codec
	}{
		{"reinvite-port.xml", 0, CodecPCMU},
		{"reinvite-pcma.xml", 8, CodecPCMA},
		{"reinvite-nosdp.xml", 8, CodecPCMA},
		{"update.xml", 8, CodecPCMA},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.scenario, ".xml"), func(t *testing.T) {
			t.Parallel()
			sink := newRTPSink(t)
			c, sipp := dialCarrier(t, tt.scenario, sink, nil)
			sink.expectRTP(t, c, tt.pt)
			st := c.Media().State()
			if st.Codec != tt.codec || st.Remote.Port != sink.port() || st.Held {
				t.Errorf("media state %+v, want %s to port %d", st, tt.codec.Name, sink.port())
			}
			hangupAndWait(t, c, sipp)
		})
	}
}

// TestHold: a re-INVITE with a=sendonly is answered a=recvonly and no RTP goes
// to the carrier while held (RFC 3264 §8.4); a=sendrecv resumes it; inactive
// is answered inactive and holds it again.
func TestHold(t *testing.T) {
	t.Parallel()
	sink := newRTPSink(t)
	c, sipp := dialCarrier(t, "reinvite-hold.xml", sink, nil)
	m := c.Media()
	waitState := func(what string, ok func(MediaState) bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !ok(m.State()) {
			if time.Now().After(deadline) {
				t.Fatalf("media never %s: %+v", what, m.State())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	held := func(st MediaState) bool { return st.Held && st.Remote.Port == sink.port() }
	waitState("held", held)
	sink.drain()
	sink.expectQuiet(t, 300*time.Millisecond)
	if !held(m.State()) {
		t.Fatal("resumed before the quiet was checked")
	}
	waitState("resumed", func(st MediaState) bool { return !st.Held })
	sink.expectRTP(t, c, 0)
	waitState("inactive", held)
	sink.drain()
	sink.expectQuiet(t, 100*time.Millisecond)
	waitState("resumed again", func(st MediaState) bool { return !st.Held })
	sink.expectRTP(t, c, 0)
	hangupAndWait(t, c, sipp)
}

// TestRTPTimeout: a carrier that answers and then sends no RTP has its call
// ended by Turbina with BYE after rtp_timeout, saying why; one that streams
// RTP keeps its call.
func TestRTPTimeout(t *testing.T) {
	t.Parallel()
	short := func(cfg *Config) { cfg.RTPTimeout = Duration(time.Second) }
	t.Run("silent", func(t *testing.T) {
		t.Parallel()
		c, sipp := dialCarrier(t, "answer.xml", nil, short)
		r := waitResult(t, c, 10*time.Second)
		if r.Outcome != OutcomeAnswered || r.HangupBy != PartyTimeout || !strings.Contains(r.Reason, "rtp timeout") {
			t.Errorf("result %s by %q (%s), want answered, ended by timeout for rtp", r.Outcome, r.HangupBy, r.Reason)
		}
		if d := r.EndAt.Sub(r.AnswerAt); d < time.Second {
			t.Errorf("ended %s after the answer, before the timeout", d)
		}
		sipp.Wait(t, 15*time.Second) // it got our BYE
	})
	t.Run("streaming", func(t *testing.T) {
		t.Parallel()
		c, sipp := dialCarrier(t, "answer-rtp.xml", nil, short)
		select {
		case <-c.Done():
			r := c.Result()
			t.Fatalf("a call with RTP ended: %s by %q (%s)", r.Outcome, r.HangupBy, r.Reason)
		case <-time.After(2500 * time.Millisecond):
		}
		hangupAndWait(t, c, sipp)
	})
}

// TestSessionTimers (RFC 4028): as UAC Turbina asks for a session timer and,
// named the refresher, refreshes at half the interval by re-INVITE or UPDATE;
// raises its interval to a 422's Min-SE; as UAS answers a carrier's
// Session-Expires below its Min-SE with 422, takes the next one, and ends the
// call with BYE, saying why, when the carrier does not refresh it.
func TestSessionTimers(t *testing.T) {
	t.Parallel()
	timers := func(refresh string) func(*Config) {
		return func(cfg *Config) {
			cfg.SessionExpires, cfg.MinSE = Duration(2*time.Second), Duration(2*time.Second)
			cfg.SessionRefresh = refresh
		}
	}
	for _, tt := range []struct {
		name, scenario, refresh string
	}{
		{"refresh-by-reinvite", "session-timer-refresh.xml", RefreshInvite},
		{"refresh-by-update", "session-timer-refresh-update.xml", RefreshUpdate},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, sipp := dialCarrier(t, tt.scenario, nil, timers(tt.refresh))
			// The carrier hangs up once it has had both refreshes.
			r := waitResult(t, c, 10*time.Second)
			if r.Outcome != OutcomeAnswered || r.HangupBy != PartyRemote {
				t.Errorf("result %s by %q (%s), want the carrier's BYE after two refreshes", r.Outcome, r.HangupBy, r.Reason)
			}
			sipp.Wait(t, 15*time.Second)
		})
	}
	t.Run("expired", func(t *testing.T) {
		t.Parallel()
		c, sipp := dialCarrier(t, "session-timer-expire.xml", nil, timers(RefreshInvite))
		r := waitResult(t, c, 10*time.Second)
		if r.Outcome != OutcomeAnswered || r.HangupBy != PartyTimeout || !strings.Contains(r.Reason, "session timer expired") {
			t.Errorf("result %s by %q (%s), want ended by timeout, session timer expired", r.Outcome, r.HangupBy, r.Reason)
		}
		sipp.Wait(t, 15*time.Second)
	})
	t.Run("422", func(t *testing.T) {
		t.Parallel()
		sipp := sipptest.Start(t, "session-timer-422.xml", sipptest.Options{Calls: 2})
		cfg := testConfig(udpTrunk("carrier", sipp.Addr, 0))
		cfg.MediaSilence = Duration(time.Hour) // no RTP, no OPTIONS answered: see dialCarrier
		timers(RefreshInvite)(&cfg)
		o := newTestOriginator(t, cfg)
		c := answeredCall(t, o, "+34600000010")
		hangupAndWait(t, c, sipp)
	})
}

// TestAgentCallMidCall: an agent's phone (sipp as UAS) holds and resumes the
// nailed-up call by re-INVITE, answered as a carrier's is, with nothing sent to
// it while held; and a phone that asks for a session timer and then does not
// refresh has its call ended with BYE, saying why.
func TestAgentCallMidCall(t *testing.T) {
	t.Parallel()
	t.Run("hold", func(t *testing.T) {
		t.Parallel()
		r, _ := newTestRegistrar(t, RegistrarConfig{})
		port := sipptest.FreePort(t)
		registerFromPort(t, r, port)
		sink := newRTPSink(t)
		uas := sipptest.Start(t, "reinvite-hold.xml", sipptest.Options{Port: port, Extra: []string{"-set", "rtpport", strconv.Itoa(sink.port())}})
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		call, err := r.CallAgent(ctx, 1, AgentCallOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// The agent's audio, as a bridge sends it, every 20 ms.
		go func() {
			pkt := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 7}, Payload: make([]byte, 160)}
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-call.Done():
					return
				case <-tick.C:
				}
				pkt.SequenceNumber++
				b, _ := pkt.Marshal()
				_ = call.Leg().WriteRTP(b)
			}
		}()
		// Held from ~300 ms after the answer for at least a second: the sink,
		// named only by the hold's offer, hears nothing until the resume.
		first := time.Now()
		if _, _, err := sink.next(5 * time.Second); err != nil {
			t.Fatalf("no RTP at the phone's new address after the resume: %v", err)
		}
		if held := time.Since(first); held < 900*time.Millisecond {
			t.Errorf("RTP reached the held phone %s after the answer; the hold lasts a second from 300 ms", held)
		}
		// Then inactive (quiet again) and resumed once more.
		for {
			if _, _, err := sink.next(200 * time.Millisecond); errors.Is(err, os.ErrDeadlineExceeded) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := sink.next(5 * time.Second); err != nil {
			t.Fatalf("no RTP after the second resume: %v", err)
		}
		if err := call.Hangup(ctx); err != nil {
			t.Fatal(err)
		}
		uas.Wait(t, 15*time.Second) // every answer as the phone expected
	})
	t.Run("session-expired", func(t *testing.T) {
		t.Parallel()
		r, _ := newTestRegistrar(t, RegistrarConfig{MinSE: Duration(2 * time.Second)})
		port := sipptest.FreePort(t)
		registerFromPort(t, r, port)
		uas := sipptest.Start(t, "session-timer-expire.xml", sipptest.Options{Port: port})
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		call, err := r.CallAgent(ctx, 1, AgentCallOptions{})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-call.Done():
		case <-ctx.Done():
			t.Fatal("the unrefreshed call was not ended")
		}
		if err := call.Err(); err == nil || !strings.Contains(err.Error(), "session timer expired") {
			t.Errorf("call ended with %v, want session timer expired", err)
		}
		uas.Wait(t, 15*time.Second) // 422, then 200 with Session-Expires, then our BYE
	})
}

// TestReinviteOKRetransmitted: our 200 to a carrier's re-INVITE over UDP is
// resent until its ACK arrives (RFC 3261 §13.3.1.4, §14.2). The carrier (sipp)
// reads the first 200 and holds its ACK for 2 s, as if the 200 were lost: the
// 200 must come again meanwhile (sipp counts the copies). Once the ACK is in
// nothing is left resending, and the call goes on at the re-INVITE's address.
func TestReinviteOKRetransmitted(t *testing.T) {
	t.Parallel()
	sink := newRTPSink(t)
	c, sipp := dialCarrier(t, "reinvite-retransmit.xml", sink, nil)
	sink.expectRTP(t, c, 0)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.dlg.mu.Lock()
		acked, resending := c.dlg.lastAck, len(c.dlg.unacked)
		c.dlg.mu.Unlock()
		if acked == 1 && resending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("re-INVITE's 200: last ACK for CSeq %d, %d still resent; want CSeq 1 acknowledged, none resent", acked, resending)
		}
		time.Sleep(10 * time.Millisecond)
	}
	hangupAndWait(t, c, sipp)
	// sipp's final screen: the recv of our 200 ("----------> 200", inbound),
	// with how many copies of it came as retransmissions.
	m := regexp.MustCompile(`(?m)^\s*----------> 200\s+(\d+)\s+(\d+)`).FindStringSubmatch(sipp.Output())
	if m == nil {
		t.Fatalf("no recv of our 200 on sipp's screen:\n%s", sipp.Output())
	}
	if n, _ := strconv.Atoi(m[2]); n < 1 {
		t.Errorf("the carrier got our 200 to its re-INVITE %s time(s) and no retransmission while it held the ACK for 2 s", m[1])
	}
}

// TestReinviteGlare (RFC 3261 §14.1, §14.2): the carrier's re-INVITE that
// crosses our pending session refresh gets 491 Request Pending (sipp expects
// exactly that); our refresh, refused 491 in turn, goes again after the
// random wait of the Call-ID's owner, 2.1 to 4 s, measured by sipp from its
// 491 to our new re-INVITE, and is answered; the carrier then hangs up.
func TestReinviteGlare(t *testing.T) {
	t.Parallel()
	msgs := filepath.Join(t.TempDir(), "messages.log")
	sipp := sipptest.Start(t, "reinvite-glare.xml", sipptest.Options{Extra: []string{"-trace_msg", "-message_file", msgs}})
	cfg := testConfig(udpTrunk("carrier", sipp.Addr, 0))
	cfg.MediaSilence = Duration(time.Hour) // no RTP, no OPTIONS answered: see dialCarrier
	cfg.SessionExpires, cfg.MinSE = Duration(2*time.Second), Duration(2*time.Second)
	cfg.SessionRefresh = RefreshInvite
	o := newTestOriginator(t, cfg)
	c, err := o.Dial(context.Background(), DialRequest{To: "+34600000009"})
	if err != nil {
		t.Fatal(err)
	}
	r := waitResult(t, c, 15*time.Second)
	if r.Outcome != OutcomeAnswered || r.HangupBy != PartyRemote {
		t.Errorf("result %s by %q (%s), want the carrier's BYE after the refresh went through", r.Outcome, r.HangupBy, r.Reason)
	}
	sipp.Wait(t, 15*time.Second)
	refused, again := carrierMessageTimes(t, sipptest.ReadMessages(t, msgs))
	// The upper margin is for a loaded machine.
	if waited := again.Sub(refused); waited < 2100*time.Millisecond || waited > 8*time.Second {
		t.Errorf("our re-INVITE went again %s after the carrier's 491, want 2.1 s to 4 s", waited)
	}
}

// carrierMessageTimes finds in sipp's message log when it sent its 491 and
// when our next INVITE reached it.
func carrierMessageTimes(t *testing.T, msgs []sipptest.Message) (refused, again time.Time) {
	t.Helper()
	for _, m := range msgs {
		switch {
		case refused.IsZero() && !m.Received && strings.HasPrefix(m.First, "SIP/2.0 491"):
			refused = m.At
		case !refused.IsZero() && m.Received && strings.HasPrefix(m.First, "INVITE "):
			return refused, m.At
		}
	}
	t.Fatalf("no 491 sent then INVITE received in sipp's message log: %+v", msgs)
	return
}

// TestGlareDelay: RFC 3261 §14.1's waits, at the ends of their ranges.
func TestGlareDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		owner bool
		pick  func(int) int
		want  time.Duration
	}{
		{"owner, least", true, func(int) int { return 0 }, 2100 * time.Millisecond},
		{"owner, most", true, func(k int) int { return k - 1 }, 4 * time.Second},
		{"other, least", false, func(int) int { return 0 }, 0},
		{"other, most", false, func(k int) int { return k - 1 }, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := glareDelay(tt.owner, tt.pick); got != tt.want {
				t.Errorf("glareDelay = %s, want %s", got, tt.want)
			}
		})
	}
}
