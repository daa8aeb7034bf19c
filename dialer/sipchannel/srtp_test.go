package sipchannel_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/sipchannel"
	"github.com/turbina-dialer/turbina/internal/baresiptest"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/media"
)

// TestSRTPTrunkAttempt: on a trunk that requires SRTP the engine's attempt is
// what it is on any trunk. Against baresip enforcing SRTP (mediaenc=srtp-mand)
// the answered attempt's media leg reads and writes plain PCMU, heard both
// ways; against a carrier answering plain RTP (sipp) the attempt ends a
// trunk_fault saying why.
func TestSRTPTrunkAttempt(t *testing.T) {
	ctx := context.Background()
	dial := func(t *testing.T, addr string) (channel.Attempt, func() []channel.AttemptEvent) {
		t.Helper()
		o, err := sip.New(ctx, sip.Config{Trunks: []sip.TrunkConfig{{Name: "secure", Address: addr, SRTP: sip.SRTPRequire}},
			InviteTimeout: sip.Duration(3 * time.Second), SuspectAfter: sip.Duration(time.Second), KeepaliveInterval: sip.Duration(time.Hour)},
			slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Close() })
		l, err := sipchannel.New(o).Place(ctx, channel.PlaceRequest{AttemptID: 1, To: "34600000001", CallerID: "+551130000000", RingTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return l, func() []channel.AttemptEvent { return events(t, l) }
	}

	t.Run("baresip srtp-mand", func(t *testing.T) {
		phone := baresiptest.StartCarrier(t, baresiptest.CarrierOptions{User: "34600000001", MediaEnc: "srtp-mand", DumpAudio: true})
		phone.WaitUntil(t, 10*time.Second, "start", func() bool { return strings.Contains(phone.Output(), "baresip is ready") })
		l, _ := dial(t, phone.SIPAddr())
		var leg media.Leg
		for leg == nil {
			select {
			case ev := <-l.Events():
				if ev.Kind == channel.AttemptEnded {
					t.Fatalf("attempt ended unanswered: %+v", ev)
				}
				if ev.Kind == channel.AttemptAnswered {
					var err error
					if leg, err = l.(interface{ MediaLeg() (media.Leg, error) }).MediaLeg(); err != nil {
						t.Fatal(err)
					}
				}
			case <-time.After(10 * time.Second):
				t.Fatal("not answered within 10 s")
			}
		}
		buf := make([]byte, 1500)
		p := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 0x7017b1}, Payload: make([]byte, 160)}
		pcm := make([]int16, 160)
		loud := 0
		_ = leg.SetReadDeadline(time.Now().Add(10 * time.Second))
		for i := range 100 {
			for j := range pcm {
				pcm[j] = 12000 // a loud square wave: +12000 for 2.5 ms, -12000 for 2.5 ms
				if j%40 >= 20 {
					pcm[j] = -12000
				}
			}
			media.EncodeULaw(p.Payload, pcm)
			p.SequenceNumber, p.Timestamp = uint16(i), uint32(i*160)
			out, _ := p.Marshal()
			if err := leg.WriteRTP(out); err != nil {
				t.Fatal(err)
			}
			n, err := leg.ReadRTP(buf)
			if err != nil {
				t.Fatalf("packet %d from the carrier: %v", i, err)
			}
			var in rtp.Packet
			if in.Unmarshal(buf[:n]) == nil && in.PayloadType == 0 {
				peak := 0
				for _, v := range pcm[:media.DecodeULaw(pcm, in.Payload)] {
					peak = max(peak, int(v), -int(v))
				}
				if peak > 2000 {
					loud++
				}
			}
		}
		if loud < 80 {
			t.Errorf("%d of 100 packets from the carrier carried its tone", loud)
		}
		if err := l.Hangup(ctx); err != nil {
			t.Fatal(err)
		}
		phone.RTPStats(t, 10*time.Second) // printed once baresip's call has ended and its dump is written
		if heard, frames := phone.HeardLoud(t); heard < 50 {
			t.Errorf("baresip heard our tone in %d of %d frames", heard, frames)
		}
	})

	t.Run("plain answer", func(t *testing.T) {
		sipp := sipptest.Start(t, "answer.xml", sipptest.Options{})
		_, wait := dial(t, sipp.Addr)
		evs := wait()
		end := evs[len(evs)-1]
		if end.Kind != channel.AttemptEnded || end.Outcome != campaigns.OutcomeTrunkFault || end.SIPStatus != 200 ||
			!strings.Contains(end.Detail, "srtp required") {
			t.Errorf("end %+v, want trunk_fault 200 saying srtp required", end)
		}
		sipp.Wait(t, 15*time.Second)
	})
}
