package sip

import (
	"context"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/turbina-dialer/turbina/internal/baresiptest"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/media"
)

// TestSRTPCallWithBaresip: baresip as the carrier with mediaenc=srtp-mand takes
// only RTP/SAVP with SDES keys and drops whatever fails SRTP's authentication.
// Through the relay a bridge reads and writes plain PCMU: the carrier's 440 Hz
// tone is heard here, and the tone sent from here is heard by baresip. The
// keys travel in the SIP, over UDP, TCP or TLS alike (TLS as it should be:
// baresip's TLS listener with a certificate from the test's CA, checked).
func TestSRTPCallWithBaresip(t *testing.T) {
	for _, tt := range []struct{ mode, transport string }{
		{SRTPRequire, TransportUDP}, {SRTPOffer, TransportUDP}, {SRTPRequire, TransportTCP}, {SRTPRequire, TransportTLS},
	} {
		t.Run(tt.mode+"/"+tt.transport, func(t *testing.T) {
			// Each call has a baresip of its own, and what it counts (frames heard,
			// packets) is unhurried by another call beside it.
			t.Parallel()
			opts := baresiptest.CarrierOptions{User: "34600000001", MediaEnc: "srtp-mand", DumpAudio: true}
			var pki testPKI
			if tt.transport == TransportTLS {
				pki = newTestPKI(t)
				opts.TLSCertFile = pki.Carrier
			}
			carrier := baresiptest.StartCarrier(t, opts)
			tc := udpTrunk("carrier", carrier.SIPAddr(), 0)
			tc.SRTP, tc.Transport = tt.mode, tt.transport
			if tt.transport == TransportTLS {
				tc.Address, tc.TLSRootCAFile = carrier.TLSAddr(), pki.CAFile
			}
			cfg := testConfig(tc)
			cfg.TLSCertFile, cfg.TLSKeyFile = pki.OursCert, pki.OursKey
			c := answeredCall(t, baresipOriginator(t, carrier, cfg), "34600000001")
			m := c.Media()
			if m.SRTP() == "" {
				t.Fatalf("answered as plain RTP: %+v", c.Result())
			}
			t.Logf("suite %s", m.SRTP())
			conn, _ := m.Detach()
			leg := media.NewUDPLeg(conn, m.RemoteAddr(), media.PCMU)
			// Plain RTP sent to the trunk's port by someone without the keys.
			forge(t, m.LocalAddr(), 5)

			// Our tone goes out through the relay while the carrier's queues on
			// the bridge's socket, read after.
			sendTone(t, leg, 100)
			sine, frames := hearSine(t, leg, 100, 440)
			if sine < frames*8/10 {
				t.Errorf("heard the carrier's 440 Hz tone in %d of %d frames", sine, frames)
			}
			if err := c.Hangup(context.Background()); err != nil {
				t.Fatal(err)
			}
			r := waitResult(t, c, 10*time.Second)
			if r.Outcome != OutcomeAnswered || r.HangupBy != PartyLocal {
				t.Errorf("result %s %q (%s)", r.Outcome, r.HangupBy, r.Reason)
			}
			if _, err := leg.ReadRTP(make([]byte, 1500)); err == nil {
				t.Error("the bridge's socket is still open after the call ended")
			}
			_, received := carrier.RTPStats(t, 10*time.Second)
			if received < 50 {
				t.Errorf("baresip received %d packets", received)
			}
			carrierLoud, carrierFrames := carrier.HeardLoud(t)
			if carrierLoud < 50 {
				t.Errorf("baresip heard our tone in %d of %d frames", carrierLoud, carrierFrames)
			}
		})
	}
}

// hearSine reads n packets of PCMU from leg and counts those that carry a
// sine of about hz: loud, and crossing zero as often as it should. Garbled
// decryption is loud too, but noise crosses zero far more often.
func hearSine(t *testing.T, leg media.Leg, n int, hz float64) (sine, frames int) {
	t.Helper()
	buf := make([]byte, 1500)
	pcm := make([]int16, 1500)
	_ = leg.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer leg.SetReadDeadline(time.Time{})
	want := 2 * hz * 0.020 // zero crossings in 20 ms
	var p rtp.Packet
	for frames < n {
		size, err := leg.ReadRTP(buf)
		if err != nil {
			t.Fatalf("after %d packets from the carrier: %v", frames, err)
		}
		if err := p.Unmarshal(buf[:size]); err != nil || p.PayloadType != 0 {
			continue
		}
		if p.SSRC == forgedSSRC {
			t.Fatal("a plain packet sent to the SRTP trunk's port reached the bridge")
		}
		frames++
		samples := pcm[:media.DecodeULaw(pcm, p.Payload)]
		peak, crossings := 0, 0
		for i, v := range samples {
			peak = max(peak, int(v), -int(v))
			if i > 0 && (v < 0) != (samples[i-1] < 0) {
				crossings++
			}
		}
		if peak > 2000 && math.Abs(float64(crossings)-want) <= want/3 {
			sine++
		}
	}
	return sine, frames
}

// forgedSSRC marks the packets forge sends.
const forgedSSRC = 0xBAD

// forge sends n loud plain PCMU packets to addr from a socket of its own.
func forge(t *testing.T, addr *net.UDPAddr, n int) {
	t.Helper()
	c, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: forgedSSRC}, Payload: make([]byte, 160)}
	for i := range n {
		for j := range p.Payload {
			p.Payload[j] = squareSample(j, "PCMU")
		}
		p.SequenceNumber, p.Timestamp = uint16(i), uint32(i*160)
		pkt, _ := p.Marshal()
		if _, err := c.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSRTPAgainstPlainCarrier: a carrier that answers plain RTP/AVP (sipp's
// answer.xml) is hung up on a trunk that requires SRTP, a trunk fault that
// says why, and carries a plain call on a trunk that only offers it. sipp's
// exit status shows it got the ACK and the BYE.
func TestSRTPAgainstPlainCarrier(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode    string
		outcome Outcome
		reason  string
	}{
		{mode: SRTPRequire, outcome: OutcomeTrunkFault, reason: "srtp required but the answer has no a=crypto (m= line RTP/AVP)"},
		{mode: SRTPOffer, outcome: OutcomeAnswered, reason: "local hangup"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			sipp := sipptest.Start(t, "answer.xml", sipptest.Options{})
			tc := udpTrunk("carrier", sipp.Addr, 0)
			tc.SRTP = tt.mode
			o := newTestOriginator(t, testConfig(tc))
			events, onEvent := eventChan()
			c, err := o.Dial(context.Background(), DialRequest{To: "+34600000001", OnEvent: onEvent})
			if err != nil {
				t.Fatal(err)
			}
			if tt.outcome == OutcomeAnswered {
				waitAnswered(t, c, events)
				if c.Media().SRTP() != "" {
					t.Errorf("a plain answer made an SRTP call: %s", c.Media().SRTP())
				}
				if err := c.Hangup(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			r := waitResult(t, c, 10*time.Second)
			if r.Outcome != tt.outcome || r.Status != 200 || r.HangupBy != PartyLocal || !strings.HasSuffix(r.Reason, tt.reason) {
				t.Errorf("result %s %d %q reason %q, want %s 200 local reason ending %q", r.Outcome, r.Status, r.HangupBy, r.Reason, tt.outcome, tt.reason)
			}
			sipp.Wait(t, 15*time.Second)
		})
	}
}
