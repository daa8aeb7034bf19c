package sipchannel_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/sip/carrier"
	"github.com/turbina-dialer/turbina/dialer/sipchannel"
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
