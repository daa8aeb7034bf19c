package sipchannel_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/sip/carrier"
	"github.com/turbina-dialer/turbina/dialer/sipchannel"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/media"
)

// events reads an attempt's events until it closes, hanging up once it is answered.
func events(t *testing.T, l channel.Attempt) []channel.AttemptEvent {
	t.Helper()
	var out []channel.AttemptEvent
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-l.Events():
			if !ok {
				return out
			}
			out = append(out, ev)
			if ev.Kind == channel.AttemptAnswered {
				mc, ok := l.(interface{ MediaLeg() (media.Leg, error) })
				if !ok {
					t.Fatal("an answered SIP attempt carries no media")
				}
				if _, err := mc.MediaLeg(); err != nil {
					t.Errorf("media leg: %v", err)
				}
				if err := l.Hangup(context.Background()); err != nil {
					t.Errorf("hangup: %v", err)
				}
			}
		case <-timeout:
			t.Fatalf("attempt still open after 10 s; events so far %+v", out)
		}
	}
}

func TestSIPLegReportsTheCall(t *testing.T) {
	ctx := context.Background()
	car, err := carrier.Start(ctx, carrier.Config{Seed: 1, RingMin: 50 * time.Millisecond, RingMax: 100 * time.Millisecond,
		TalkMin: time.Minute, TalkMax: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { car.Close() })
	o, err := sip.New(ctx, sip.Config{Trunks: []sip.TrunkConfig{{Name: "sim", Address: car.Addr()}}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	ch := sipchannel.New(o)

	tests := []struct {
		name      string
		behaviour carrier.Behaviour
		kinds     []channel.AttemptEventKind
		outcome   campaigns.Outcome // of the end; "" for an answered call
		status    int
	}{
		{"answered, hung up by us", carrier.Answer, []channel.AttemptEventKind{channel.AttemptRinging, channel.AttemptAnswered, channel.AttemptEnded}, "", 200},
		{"busy", carrier.Busy, []channel.AttemptEventKind{channel.AttemptRinging, channel.AttemptEnded}, campaigns.OutcomeBusy, 486},
		{"no such number", carrier.Invalid, []channel.AttemptEventKind{channel.AttemptEnded}, campaigns.OutcomeInvalidNumber, 404},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			to := "+55119876500" + string(rune('1'+i))
			car.Script(to, tt.behaviour)
			l, err := ch.Place(ctx, channel.PlaceRequest{AttemptID: int64(i + 1), To: to, CallerID: "+551130000000", RingTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			evs := events(t, l)
			var kinds []channel.AttemptEventKind
			for _, ev := range evs {
				kinds = append(kinds, ev.Kind)
			}
			if !slices.Equal(kinds, tt.kinds) {
				t.Fatalf("events %+v, want kinds %v", evs, tt.kinds)
			}
			end := evs[len(evs)-1]
			if end.Outcome != tt.outcome || end.SIPStatus != tt.status || end.Trunk != "sim" || end.SetupAt.IsZero() {
				t.Errorf("end %+v, want outcome %q, status %d on trunk sim", end, tt.outcome, tt.status)
			}
			if tt.outcome == "" && end.HangupBy != "local" {
				t.Errorf("answered call hung up by %q, want local", end.HangupBy)
			}
		})
	}
}

// TestChannelUpFollowsTheTrunks: the channel is up while a trunk takes calls; a
// cut link opens the last trunk's circuit and the channel reports down, as does
// a trunk a supervisor took out of service.
func TestChannelUpFollowsTheTrunks(t *testing.T) {
	ctx := context.Background()
	newChannel := func(t *testing.T) (*sipchannel.Channel, *sip.Originator, *carrier.Carrier) {
		t.Helper()
		car, err := carrier.Start(ctx, carrier.Config{Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { car.Close() })
		o, err := sip.New(ctx, sip.Config{Trunks: []sip.TrunkConfig{{Name: "sim", Address: car.Addr()}},
			InviteTimeout: sip.Duration(200 * time.Millisecond), FaultsToOpen: 1, ProbeInterval: sip.Duration(time.Hour)},
			slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Close() })
		return sipchannel.New(o), o, car
	}
	var _ channel.Health = (*sipchannel.Channel)(nil)

	t.Run("the link cut", func(t *testing.T) {
		ch, _, car := newChannel(t)
		if !ch.Up() {
			t.Fatal("a fresh trunk: channel down")
		}
		car.Cut(true)
		l, err := ch.Place(ctx, channel.PlaceRequest{AttemptID: 1, To: "+5511987650001", CallerID: "+551130000000", RingTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		evs := events(t, l)
		if end := evs[len(evs)-1]; end.Outcome != campaigns.OutcomeTrunkFault {
			t.Fatalf("unanswered INVITE ended %+v, want trunk_fault", end)
		}
		if ch.Up() {
			t.Error("every trunk's circuit open: channel still up")
		}
		if _, err := ch.Place(ctx, channel.PlaceRequest{AttemptID: 2, To: "+5511987650002", RingTimeout: time.Second}); !errors.Is(err, channel.ErrChannelDown) {
			t.Errorf("place on a down channel: %v, want ErrChannelDown", err)
		}
	})
	t.Run("out of service", func(t *testing.T) {
		ch, o, _ := newChannel(t)
		if err := o.SetTrunkOutOfService("sim", true); err != nil {
			t.Fatal(err)
		}
		if ch.Up() {
			t.Error("the only trunk out of service: channel still up")
		}
	})
}

// TestCarrierRefusalLeavesContactsPending: a carrier whose credit is gone (402,
// sipp playing it) ends the attempt trunk_fault, which the journey table keeps
// pending on a SIP-only ladder, where the person's refusal (rejected, what 402
// was read as) would exhaust it; the trunk is held with its alarm raised, so the
// next contact's attempt is channel_down, free, and that contact waits too.
func TestCarrierRefusalLeavesContactsPending(t *testing.T) {
	ctx := context.Background()
	a := sipptest.Start(t, "payment-required.xml", sipptest.Options{})
	o, err := sip.New(ctx, sip.Config{Trunks: []sip.TrunkConfig{{Name: "prepaid", Address: a.Addr, CallerID: "+551130000000"}},
		KeepaliveInterval: sip.Duration(time.Hour)}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	ch := sipchannel.New(o)
	ladder := []campaigns.Rung{{Channel: campaigns.ChannelSIP, MaxAttempts: 2, RetryDelay: campaigns.Duration(time.Minute)}}
	inProgress := campaigns.Position{Status: campaigns.ContactInProgress}
	now := time.Now()

	l, err := ch.Place(ctx, channel.PlaceRequest{AttemptID: 1, To: "+5511987650101", RingTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	evs := events(t, l)
	end := evs[len(evs)-1]
	if end.Outcome != campaigns.OutcomeTrunkFault || end.SIPStatus != 402 {
		t.Fatalf("402 ended %+v, want trunk_fault 402", end)
	}
	pos, err := campaigns.Apply(ladder, campaigns.Contact{ID: 1}, inProgress, campaigns.OutcomeEvent(end.Outcome), now)
	if err != nil || pos.Status != campaigns.ContactPending {
		t.Fatalf("contact after a 402: %+v %v, want pending", pos, err)
	}
	st := o.Trunks()[0]
	if st.Alarm != "402 Payment Required" || st.State != sip.CircuitHeld {
		t.Errorf("trunk after a 402: %+v, want held with its alarm", st)
	}
	if ch.Up() {
		t.Error("the only trunk held: channel still up")
	}
	if _, err := ch.Place(ctx, channel.PlaceRequest{AttemptID: 2, To: "+5511987650102", RingTimeout: time.Second}); !errors.Is(err, channel.ErrChannelDown) {
		t.Fatalf("place on a held trunk: %v, want ErrChannelDown", err)
	}
	pos, err = campaigns.Apply(ladder, campaigns.Contact{ID: 2}, inProgress, campaigns.OutcomeEvent(campaigns.OutcomeChannelDown), now)
	if err != nil || pos.Status != campaigns.ContactPending || pos.Attempts != 0 {
		t.Fatalf("contact refused by the held trunk: %+v %v, want pending with its attempts intact", pos, err)
	}
	a.Wait(t, 15*time.Second)
}

// TestBridgeFollowsTheCarriersReoffer: a customer's call is in an agent's
// bridge when the carrier (sipp) re-INVITEs offering PCMA only at a new
// address: the bridge then sends the agent's PCMU audio there as PCMA.
func TestBridgeFollowsTheCarriersReoffer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sink := udp(t)
	sipp := sipptest.Start(t, "reinvite-pcma.xml", sipptest.Options{Extra: []string{"-set", "rtpport", strconv.Itoa(sink.LocalAddr().(*net.UDPAddr).Port)}})
	// sipp answers no OPTIONS and sends no RTP: no keepalives, no health watch.
	o, err := sip.New(ctx, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: sipp.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}},
		MediaSilence: sip.Duration(time.Hour)}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	l, err := sipchannel.New(o).Place(ctx, channel.PlaceRequest{AttemptID: 1, To: "+5511987650001", CallerID: "+551130000000", RingTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for ev := range l.Events() {
		if ev.Kind == channel.AttemptAnswered {
			break
		}
		if ev.Kind == channel.AttemptEnded {
			t.Fatalf("ended unanswered: %+v", ev)
		}
	}
	customer, err := l.(interface{ MediaLeg() (media.Leg, error) }).MediaLeg()
	if err != nil {
		t.Fatal(err)
	}
	phone, agentSock := udp(t), udp(t)
	agent := media.NewUDPLeg(agentSock, phone.LocalAddr().(*net.UDPAddr), media.PCMU)
	t.Cleanup(func() { agent.Close() })
	b := media.NewBridge(agent, media.BridgeConfig{})
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- b.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-ran })
	if _, err := b.Connect(customer); err != nil {
		t.Fatal(err)
	}
	// The agent talks, PCMU every 20 ms, until the carrier hears PCMA at the sink.
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 9}, Payload: bytes.Repeat([]byte{0xFF}, 160)} // µ-law silence
	buf := make([]byte, 1500)
	for {
		pkt.SequenceNumber++
		pkt.Timestamp += 160
		raw, _ := pkt.Marshal()
		if _, err := phone.WriteToUDP(raw, agentSock.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatal(err)
		}
		_ = sink.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if n, _, err := sink.ReadFromUDP(buf); err == nil {
			var got rtp.Packet
			if err := got.Unmarshal(buf[:n]); err != nil || got.PayloadType != 8 || got.Payload[0] != 0xD5 {
				t.Fatalf("the carrier's new address got pt %d byte %#x (%v), want PCMA silence", got.PayloadType, got.Payload[0], err)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no audio at the carrier's new address; customer leg %v", customer.Codec())
		}
	}
	if err := l.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	sipp.Wait(t, 15*time.Second)
}

func udp(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
