package whatsapp_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
)

// collectUpdates reads a call's updates until the channel closes.
func collectUpdates(t *testing.T, call *whatsapp.Call) []whatsapp.CallUpdate {
	t.Helper()
	ctx := testCtx(t, 10*time.Second)
	var out []whatsapp.CallUpdate
	for {
		select {
		case u, ok := <-call.Updates():
			if !ok {
				return out
			}
			out = append(out, u)
		case <-ctx.Done():
			t.Fatalf("call did not end; updates so far %+v", out)
		}
	}
}

// waitPhase reads updates until phase is reached.
func waitPhase(t *testing.T, call *whatsapp.Call, phase whatsapp.CallPhase) {
	t.Helper()
	ctx := testCtx(t, 10*time.Second)
	for {
		select {
		case u, ok := <-call.Updates():
			if !ok {
				t.Fatalf("call ended before %s: %+v", phase, call.State())
			}
			if u.Err != nil {
				t.Fatal(u.Err)
			}
			if u.Phase == phase {
				return
			}
		case <-ctx.Done():
			t.Fatalf("no %s: %+v", phase, call.State())
		}
	}
}

// rtpCounter reads a call's RTP and checks sequence continuity.
type rtpCounter struct {
	packets, gaps, outOfOrder int
	done                      chan struct{}
}

func countRTP(call *whatsapp.Call) *rtpCounter {
	c := &rtpCounter{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		var last uint16
		for {
			p, err := call.ReadRTP(context.Background())
			if err != nil {
				return
			}
			if c.packets > 0 {
				switch d := p.SequenceNumber - last; {
				case d == 0 || d >= 0x8000:
					c.outOfOrder++
				default:
					c.gaps += int(d) - 1
				}
			}
			last = p.SequenceNumber
			c.packets++
		}
	}()
	return c
}

// sendRTP writes n Opus frames with consecutive sequence numbers.
func sendRTP(t *testing.T, call *whatsapp.Call, n int, every time.Duration) {
	t.Helper()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := range n {
		<-tick.C
		p := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(65500 + i), Timestamp: uint32(i * 960)}, Payload: emulator.OpusSilence}
		if err := call.WriteRTP(p); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
}

func waitMedia(t *testing.T, call *whatsapp.Call) {
	t.Helper()
	select {
	case <-call.MediaConnected():
	case <-testCtx(t, 10*time.Second).Done():
		t.Fatalf("ICE/DTLS did not connect; state %s", call.PeerConnection().ConnectionState())
	}
}

// waitUserEnded waits until the emulated user's side of the call has ended: a local
// hang-up ends the Call before its terminate request reaches Meta.
func waitUserEnded(t *testing.T, env *testEnv, callID string) emulator.CallStats {
	t.Helper()
	for range 500 {
		if st, ok := env.emu.CallStats(callID); ok && st.Ended {
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
	st, _ := env.emu.CallStats(callID)
	t.Fatalf("user side never ended: %+v", st)
	return st
}

func TestCallConnectAudioBothWaysThenHangup(t *testing.T) {
	env := newEnv(t, nil)
	const number = "5511988887777"
	env.emu.Script(number, emulator.Behaviour{Call: emulator.CallAccept, AnswerAfter: 100 * time.Millisecond})
	ctx := testCtx(t, 20*time.Second)
	call, err := env.client.Dial(ctx, "call-1", "+"+number, whatsapp.DialOptions{RingTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if id := call.ID(); len(id) < 7 || id[:6] != "wacid." {
		t.Fatalf("call id %q", id)
	}
	waitPhase(t, call, whatsapp.PhaseAccepted)
	waitMedia(t, call)
	recv := countRTP(call)
	const sent = 60 // spans the 16-bit sequence wrap
	sendRTP(t, call, sent, 10*time.Millisecond)

	// Let the last packets and at least 20 of the user's land.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := env.emu.CallStats(call.ID())
		if st.PacketsReceived >= sent && time.Now().After(deadline.Add(-4500*time.Millisecond)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	<-call.Done()
	<-recv.done
	st := waitUserEnded(t, env, call.ID())
	if !st.Connected || st.PacketsReceived != sent || st.SeqGaps != 0 || st.OutOfOrder != 0 {
		t.Fatalf("user side: %+v", st)
	}
	if !st.Ended || st.EndedBy != "business" {
		t.Fatalf("user side not ended by business: %+v", st)
	}
	if recv.packets < 10 || recv.gaps != 0 || recv.outOfOrder != 0 {
		t.Fatalf("business side received %d packets, %d gaps, %d out of order (user sent %d)", recv.packets, recv.gaps, recv.outOfOrder, st.PacketsSent)
	}
	s := call.State()
	if s.Phase != whatsapp.PhaseEnded || s.Outcome != whatsapp.OutcomeAnswered {
		t.Fatalf("state = %+v", s)
	}
	if n := env.emu.Accepted("call-1"); n != 1 {
		t.Fatalf("connect accepted %d times", n)
	}
	if env.client.ActiveCalls() != 0 {
		t.Fatal("call still registered")
	}
	if err := call.WriteRTP(&rtp.Packet{}); !errors.Is(err, whatsapp.ErrCallEnded) {
		t.Fatalf("write after end: %v", err)
	}
}

func TestCallOutcomes(t *testing.T) {
	tests := []struct {
		name        string
		behaviour   emulator.Behaviour
		ringTimeout time.Duration
		wantPhases  []whatsapp.CallPhase
		wantOutcome whatsapp.CallOutcome
		wantEndedBy string
	}{
		{
			name:        "rejected",
			behaviour:   emulator.Behaviour{Call: emulator.CallReject, AnswerAfter: 50 * time.Millisecond},
			wantPhases:  []whatsapp.CallPhase{whatsapp.PhaseRinging, whatsapp.PhaseRejected, whatsapp.PhaseEnded},
			wantOutcome: whatsapp.OutcomeRejected, wantEndedBy: "rejected",
		},
		{
			name:        "no answer, business ring timeout",
			behaviour:   emulator.Behaviour{Call: emulator.CallNoAnswer},
			ringTimeout: 300 * time.Millisecond,
			wantPhases:  []whatsapp.CallPhase{whatsapp.PhaseRinging, whatsapp.PhaseEnded},
			wantOutcome: whatsapp.OutcomeNoAnswer, wantEndedBy: "business",
		},
		{
			name:        "no answer, Meta terminates",
			behaviour:   emulator.Behaviour{Call: emulator.CallNoAnswer, RingTimeout: 200 * time.Millisecond},
			wantPhases:  []whatsapp.CallPhase{whatsapp.PhaseRinging, whatsapp.PhaseEnded},
			wantOutcome: whatsapp.OutcomeNoAnswer, wantEndedBy: "timeout",
		},
		{
			name:        "user hangs up",
			behaviour:   emulator.Behaviour{Call: emulator.CallAccept, AnswerAfter: 20 * time.Millisecond, HangupAfter: 150 * time.Millisecond},
			wantPhases:  []whatsapp.CallPhase{whatsapp.PhaseRinging, whatsapp.PhaseAccepted, whatsapp.PhaseEnded},
			wantOutcome: whatsapp.OutcomeAnswered, wantEndedBy: "user",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := newEnv(t, nil)
			number := "551198888100" + string(rune('0'+i))
			env.emu.Script(number, tt.behaviour)
			call, err := env.client.Dial(testCtx(t, 10*time.Second), "outcome-"+tt.name, number, whatsapp.DialOptions{RingTimeout: tt.ringTimeout})
			if err != nil {
				t.Fatal(err)
			}
			var phases []whatsapp.CallPhase
			for _, u := range collectUpdates(t, call) {
				phases = append(phases, u.Phase)
			}
			if len(phases) != len(tt.wantPhases) {
				t.Fatalf("phases %v, want %v", phases, tt.wantPhases)
			}
			for i := range phases {
				if phases[i] != tt.wantPhases[i] {
					t.Fatalf("phases %v, want %v", phases, tt.wantPhases)
				}
			}
			if got := call.State().Outcome; got != tt.wantOutcome {
				t.Fatalf("outcome %q, want %q", got, tt.wantOutcome)
			}
			st := waitUserEnded(t, env, call.ID())
			if st.EndedBy != tt.wantEndedBy {
				t.Fatalf("user side %+v, want ended by %s", st, tt.wantEndedBy)
			}
		})
	}
}

func TestCallErrors(t *testing.T) {
	tests := []struct {
		code int
		want whatsapp.Kind
	}{
		{138006, whatsapp.KindNoPermission},
		{131026, whatsapp.KindNotOnWhatsApp},
	}
	for _, tt := range tests {
		env := newEnv(t, nil)
		env.emu.Script("5511900000500", emulator.Behaviour{ErrorCode: tt.code})
		_, err := env.client.Dial(testCtx(t, 10*time.Second), "err-call", "5511900000500", whatsapp.DialOptions{})
		if whatsapp.ErrorKind(err) != tt.want {
			t.Fatalf("code %d: err %v, kind %s, want %s", tt.code, err, whatsapp.ErrorKind(err), tt.want)
		}
		if n := len(env.requestsWithKey("err-call")); n != 1 {
			t.Fatalf("code %d: %d requests", tt.code, n)
		}
		if env.client.ActiveCalls() != 0 {
			t.Fatal("failed call still registered")
		}
	}
}

func TestCallPermissionFlow(t *testing.T) {
	env := newEnv(t, nil)
	const number = "5511900000600"
	env.emu.Script(number, emulator.Behaviour{RequirePermission: true, Permission: emulator.PermissionGrant, PermissionAfter: 30 * time.Millisecond,
		PermissionExpiry: time.Hour, Call: emulator.CallAccept, AnswerAfter: 20 * time.Millisecond, HangupAfter: 50 * time.Millisecond})
	ctx := testCtx(t, 20*time.Second)
	perm := whatsapp.Permission{}
	if _, err := env.client.Dial(ctx, "perm-call-1", number, whatsapp.DialOptions{}); whatsapp.ErrorKind(err) != whatsapp.KindNoPermission {
		t.Fatalf("first dial: %v", err)
	}
	perm = perm.Revoked()
	// An interactive request is a service message: refused until the user wrote.
	if _, err := env.client.RequestCallPermission(ctx, "perm-req-0", number, "May we call you?"); whatsapp.ErrorKind(err) != whatsapp.KindOutsideWindow {
		t.Fatalf("permission request outside the window: %v, want %s", err, whatsapp.KindOutsideWindow)
	}
	env.emu.UserMessage(number, "Oi, podem me ligar?")
	res, err := env.client.RequestCallPermission(ctx, "perm-req-1", number, "May we call you about your order?")
	if err != nil {
		t.Fatal(err)
	}
	perm = perm.Requested(time.Now(), res.MessageID)
	if perm.Current(time.Now()) != whatsapp.PermissionRequested {
		t.Fatalf("permission %+v", perm)
	}
	evs := env.waitEvents(t, func(evs []whatsapp.Event) bool {
		for _, e := range evs {
			if e.Type == whatsapp.EventPermissionReply {
				return true
			}
		}
		return false
	})
	for _, e := range evs {
		if e.Type == whatsapp.EventPermissionReply {
			if e.Permission.ContextID != res.MessageID || !e.Permission.Granted || e.Permission.Expires.IsZero() {
				t.Fatalf("reply %+v", e.Permission)
			}
			perm = perm.Apply(*e.Permission, e.Time)
		}
	}
	if !perm.CanCall(time.Now()) || perm.CanCall(time.Now().Add(2*time.Hour)) {
		t.Fatalf("permission %+v", perm)
	}
	call, err := env.client.Dial(ctx, "perm-call-2", number, whatsapp.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	collectUpdates(t, call)
	if call.State().Outcome != whatsapp.OutcomeAnswered {
		t.Fatalf("state %+v", call.State())
	}
}

func TestDuplicatedAndReorderedCallWebhooksGiveOneOutcome(t *testing.T) {
	env := newEnv(t, nil)
	const number = "5511900000700"
	env.emu.Script(number, emulator.Behaviour{Call: emulator.CallAccept, AnswerAfter: 50 * time.Millisecond, HangupAfter: 100 * time.Millisecond,
		DuplicateWebhooks: true, ReorderWebhooks: true})
	call, err := env.client.Dial(testCtx(t, 10*time.Second), "dup-1", number, whatsapp.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ups := collectUpdates(t, call)
	ended := 0
	for _, u := range ups {
		if u.Phase == whatsapp.PhaseEnded {
			ended++
		}
		if u.Phase == whatsapp.PhaseRinging {
			t.Fatalf("RINGING after ACCEPTED was applied: %+v", ups)
		}
	}
	if ended != 1 || call.State().Outcome != whatsapp.OutcomeAnswered {
		t.Fatalf("updates %+v state %+v", ups, call.State())
	}
	// Every call webhook was delivered twice, but the sink got each event once.
	// The ACCEPTED status was held back until after the terminate.
	evs := env.waitEvents(t, func(evs []whatsapp.Event) bool {
		n := 0
		for _, e := range evs {
			if e.CallID() == call.ID() {
				n++
			}
		}
		return n >= 4
	})
	keys := map[string]int{}
	var callEvents []whatsapp.Event
	for _, e := range evs {
		if e.CallID() == call.ID() {
			keys[e.Key]++
			callEvents = append(callEvents, e)
		}
	}
	for k, n := range keys {
		if n != 1 {
			t.Fatalf("event %s delivered %d times", k, n)
		}
	}
	if len(callEvents) != 4 { // connect, RINGING, ACCEPTED, terminate
		t.Fatalf("call events %+v", callEvents)
	}
	// The engine's view: the sink's events, replayed through the tracker, any order.
	for range 3 {
		tr := whatsapp.NewCallTracker()
		all := append(append([]whatsapp.Event(nil), callEvents...), callEvents...)
		got := tr.Apply(all)[call.ID()]
		endings := 0
		for _, x := range got {
			if x.To == whatsapp.PhaseEnded {
				endings++
				if x.Outcome != whatsapp.OutcomeAnswered {
					t.Fatalf("outcome %s", x.Outcome)
				}
			}
		}
		if endings != 1 {
			t.Fatalf("transitions %+v", got)
		}
		callEvents[0], callEvents[len(callEvents)-1] = callEvents[len(callEvents)-1], callEvents[0]
	}
}

func TestAcceptUserInitiatedCall(t *testing.T) {
	env := newEnv(t, nil)
	const number = "5511900000800"
	ctx := testCtx(t, 20*time.Second)
	callID, err := env.emu.PlaceCall(ctx, number)
	if err != nil {
		t.Fatal(err)
	}
	var offer whatsapp.Event
	env.waitEvents(t, func(evs []whatsapp.Event) bool {
		for _, e := range evs {
			if e.Type == whatsapp.EventCallConnect && e.CallID() == callID && e.Call.SDPType == "offer" {
				offer = e
				return true
			}
		}
		return false
	})
	if offer.Call.Direction != "USER_INITIATED" || offer.Call.From != number {
		t.Fatalf("offer %+v", offer.Call)
	}
	call, err := env.client.Accept(ctx, "in-1", offer)
	if err != nil {
		t.Fatal(err)
	}
	waitPhase(t, call, whatsapp.PhaseAccepted)
	waitMedia(t, call)
	recv := countRTP(call)
	sendRTP(t, call, 20, 10*time.Millisecond)
	time.Sleep(150 * time.Millisecond)
	if err := env.emu.HangupCall(callID); err != nil {
		t.Fatal(err)
	}
	<-call.Done()
	<-recv.done
	st, _ := env.emu.CallStats(callID)
	if st.PacketsReceived != 20 || st.SeqGaps != 0 || recv.packets == 0 || recv.gaps != 0 {
		t.Fatalf("user %+v, business received %d (gaps %d)", st, recv.packets, recv.gaps)
	}
	if call.State().Outcome != whatsapp.OutcomeAnswered {
		t.Fatalf("state %+v", call.State())
	}
	var actions, keys []string
	for _, r := range env.emu.Requests() {
		if r.CallID == callID {
			actions, keys = append(actions, r.Action), append(keys, r.Key)
		}
	}
	// biz_opaque_callback_data is a documented parameter of accept only, and Meta
	// echoes it in the terminate webhook.
	if len(actions) != 2 || actions[0] != "pre_accept" || actions[1] != "accept" || keys[0] != "" || keys[1] != "in-1" {
		t.Fatalf("actions %v, keys %q", actions, keys)
	}
	env.waitEvents(t, func(evs []whatsapp.Event) bool {
		return slices.ContainsFunc(evs, func(e whatsapp.Event) bool {
			return e.Type == whatsapp.EventCallTerminate && e.CallID() == callID && e.Call.BizOpaque == "in-1"
		})
	})
}
