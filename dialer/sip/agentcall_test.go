package sip

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/turbina-dialer/turbina/internal/baresiptest"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/media"
)

// TestCallAgentBaresip: a real phone (baresip) registers with digest auth,
// is called, auto-answers, and audio flows both ways on the nailed-up leg;
// then each side hangs up in turn, and the phone unregisters when it quits.
func TestCallAgentBaresip(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			r, _ := newTestRegistrar(t, RegistrarConfig{})
			phone := baresiptest.Start(t, baresiptest.Options{Registrar: r.Addr().String(), Transport: transport,
				User: "agent1", Password: "secret1", DumpAudio: true})
			b := waitRegistered(t, r, 1, phone, 10*time.Second)
			if b.Transport != transport || b.Username != "agent1" || !strings.Contains(b.UserAgent, "baresip") {
				t.Fatalf("binding %+v, want agent1's baresip over %s", b, transport)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			call, err := r.CallAgent(ctx, 1, AgentCallOptions{})
			if err != nil {
				t.Fatal(err)
			}
			leg := call.Leg()
			if c := leg.Codec(); c.Name != "PCMU" || c.PayloadType != 0 || c.ClockRate != 8000 {
				t.Fatalf("codec %+v, want PCMU (baresip's first choice)", c)
			}

			// The phone's microphone (a sine) reaches the leg.
			heard, loud := readTone(t, leg, 50)
			if loud < heard*3/4 {
				t.Errorf("%d of %d packets from the phone carry sound, want most (a sine)", loud, heard)
			}
			// Turbina's audio reaches the phone: 2 s of a square tone.
			sendTone(t, leg, 100)
			if err := call.Hangup(ctx); err != nil {
				t.Fatal(err)
			}
			if err := call.Err(); err != nil {
				t.Errorf("local hangup ended with %v", err)
			}
			if _, received := phone.RTPStats(t, 3*time.Second); received < 95 {
				t.Errorf("baresip received %d packets of our 100", received)
			}
			if loud, frames := phone.HeardLoud(t); loud < 90 {
				t.Errorf("baresip decoded %d loud frames of %d, want ≥ 90 of our tone", loud, frames)
			}
			if _, err := leg.ReadRTP(make([]byte, 1500)); err == nil {
				t.Error("the leg still reads after the hang-up")
			}

			// Called again, the phone hangs up itself.
			call, err = r.CallAgent(ctx, 1, AgentCallOptions{})
			if err != nil {
				t.Fatal(err)
			}
			readTone(t, call.Leg(), 5)
			phone.Command(t, "hangup")
			select {
			case <-call.Done():
			case <-ctx.Done():
				t.Fatal("the phone's BYE did not end the call")
			}
			if err := call.Err(); err == nil || !strings.Contains(err.Error(), "hung up") {
				t.Errorf("call ended with %v, want the phone's hang-up", err)
			}

			// Quitting, baresip unregisters (Expires: 0).
			phone.Command(t, "quit")
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if _, ok := r.Lookup(1); !ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("baresip's binding outlived its unregistration")
				}
			}
		})
	}
}

// waitRegistered waits until the registrar holds a binding for agentID, and
// returns it.
func waitRegistered(t testing.TB, r *Registrar, agentID int64, p *baresiptest.Phone, within time.Duration) (b Binding) {
	t.Helper()
	p.WaitUntil(t, within, "register", func() (ok bool) { b, ok = r.Lookup(agentID); return ok })
	return b
}

// readTone reads n packets of the leg's codec and counts those with sound.
func readTone(t *testing.T, leg media.Leg, n int) (heard, loud int) {
	t.Helper()
	buf := make([]byte, 1500)
	_ = leg.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer leg.SetReadDeadline(time.Time{})
	for heard < n {
		size, err := leg.ReadRTP(buf)
		if err != nil {
			t.Fatalf("after %d packets from the phone: %v", heard, err)
		}
		var p rtp.Packet
		if err := p.Unmarshal(buf[:size]); err != nil {
			t.Fatal(err)
		}
		if p.PayloadType != leg.Codec().PayloadType {
			continue
		}
		heard++
		if !silentG711(p.Payload) {
			loud++
		}
	}
	return heard, loud
}

// sendTone sends n 20 ms packets of a loud square wave, paced in real time.
func sendTone(t *testing.T, leg media.Leg, n int) {
	t.Helper()
	codec := leg.Codec()
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: codec.PayloadType, SSRC: 0x7017b1}, Payload: make([]byte, 160)}
	for i := range p.Payload {
		p.Payload[i] = squareSample(i, codec.Name)
	}
	for i := range n {
		p.SequenceNumber, p.Timestamp, p.Marker = uint16(i), uint32(i*160), i == 0
		pkt, _ := p.Marshal()
		if err := leg.WriteRTP(pkt); err != nil {
			t.Fatalf("write packet %d: %v", i, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// silentG711 reports whether a G.711 payload is (near) silence in either law.
func silentG711(b []byte) bool {
	for _, v := range b {
		switch v &^ 0x80 {
		case 0x7F, 0x7E, 0x7D, 0x7C, 0x55, 0x54, 0x57, 0x56:
		default:
			return false
		}
	}
	return true
}

// squareSample is sample i of a loud 400 Hz square wave in codec's law.
func squareSample(i int, codec string) byte {
	hi, lo := byte(0x20), byte(0xA0) // µ-law
	if codec == "PCMA" {
		hi, lo = 0x2A, 0xAA
	}
	if (i/10)%2 == 0 {
		return hi
	}
	return lo
}

// registerFromPort registers agent1 from a UDP socket on port and frees the
// port again, so that a sipp UAS started there plays the phone.
func registerFromPort(t *testing.T, r *Registrar, port int) {
	t.Helper()
	p := newRawPhoneFrom(t, r.Addr(), port, "agent1", "secret1")
	if res := p.register(p.contact(), "Expires: 120"); res.StatusCode != 200 {
		t.Fatalf("register: %d %s", res.StatusCode, res.Reason)
	}
	p.conn.Close()
}

// TestCallAgentFailures: phones that are busy, ring out, never answer at all
// or are not registered give errors that say so, quickly.
func TestCallAgentFailures(t *testing.T) {
	tests := []struct {
		name     string
		scenario string // sipp UAS playing the phone; "" for nobody there
		register bool
		want     error
		within   time.Duration
	}{
		{"busy", "busy.xml", true, ErrPhoneBusy, 3 * time.Second},
		{"declined", "decline.xml", true, ErrPhoneBusy, 3 * time.Second},
		{"rings out", "noanswer.xml", true, ErrPhoneNoAnswer, 4 * time.Second},
		{"silent", "", true, ErrPhoneUnreachable, 3 * time.Second},
		{"not registered", "", false, ErrNotRegistered, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, _ := newTestRegistrar(t, RegistrarConfig{InviteTimeout: Duration(time.Second), AnswerTimeout: Duration(1500 * time.Millisecond)})
			port := sipptest.FreePort(t)
			if tc.register {
				registerFromPort(t, r, port)
			}
			var uas *sipptest.Proc
			if tc.scenario != "" {
				uas = sipptest.Start(t, tc.scenario, sipptest.Options{Port: port})
			}
			start := time.Now()
			call, err := r.CallAgent(context.Background(), 1, AgentCallOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("CallAgent: %v (call %v), want %v", err, call, tc.want)
			}
			if took := time.Since(start); took > tc.within {
				t.Errorf("failed after %s, want within %s", took, tc.within)
			}
			if uas != nil {
				uas.Wait(t, 10*time.Second) // CANCEL and ACK as the scenario expects
			}
		})
	}
}

// TestCallAgentRemoteBye: a phone (sipp) answers and hangs up; the call ends
// with Done, and the leg is closed.
func TestCallAgentRemoteBye(t *testing.T) {
	r, _ := newTestRegistrar(t, RegistrarConfig{})
	port := sipptest.FreePort(t)
	registerFromPort(t, r, port)
	uas := sipptest.Start(t, "remote-bye.xml", sipptest.Options{Port: port})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call, err := r.CallAgent(ctx, 1, AgentCallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-call.Done():
	case <-ctx.Done():
		t.Fatal("the phone's BYE did not end the call")
	}
	if err := call.Err(); err == nil {
		t.Error("remote hang-up ended with no reason")
	}
	uas.Wait(t, 5*time.Second)
	if err := call.Hangup(ctx); err != nil {
		t.Errorf("hangup after the end: %v", err)
	}
}

// TestCallAgentCancelledContext: cancelling the caller's context while the
// phone rings cancels the INVITE.
func TestCallAgentCancelledContext(t *testing.T) {
	r, _ := newTestRegistrar(t, RegistrarConfig{})
	port := sipptest.FreePort(t)
	registerFromPort(t, r, port)
	uas := sipptest.Start(t, "noanswer.xml", sipptest.Options{Port: port})
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	if _, err := r.CallAgent(ctx, 1, AgentCallOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("CallAgent: %v, want the context's deadline", err)
	}
	uas.Wait(t, 10*time.Second)
}
