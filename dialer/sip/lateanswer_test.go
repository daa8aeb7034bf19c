package sip

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestLateAnswerToTrunkDownCall plays a carrier, by hand on a UDP socket, that
// says nothing to an INVITE nor to the probes its silence starts, and answers
// 200 OK once the call has ended trunk_down: the Originator ACKs and BYEs that
// 200 (RFC 3261 15: an answer to a call we gave up must not be left up) and
// never reports the call answered.
func TestLateAnswerToTrunkDownCall(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	cfg := testConfig(udpTrunk("carrier", pc.LocalAddr().String(), 0))
	// The burst, not a timeout, ends the call.
	cfg.InviteTimeout, cfg.RingTimeout = Duration(3*time.Second), Duration(10*time.Second)
	o := newTestOriginator(t, cfg)
	events := newEventLog()
	c, err := o.Dial(context.Background(), DialRequest{To: "+34650000001", OnEvent: events.on})
	if err != nil {
		t.Fatal(err)
	}
	r := waitResult(t, c, 5*time.Second)
	if r.Outcome != OutcomeTrunkDown || r.Status != 0 {
		t.Fatalf("silent carrier: %s %d %q, want trunk_down with no status", r.Outcome, r.Status, r.Reason)
	}

	// next reads the next request of method (skipping probes and retransmissions).
	next := func(method sip.RequestMethod) (*sip.Request, net.Addr) {
		t.Helper()
		buf := make([]byte, 8192)
		deadline := time.Now().Add(5 * time.Second)
		for {
			_ = pc.SetReadDeadline(deadline)
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				t.Fatalf("no %s: %v", method, err)
			}
			msg, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
			if err != nil {
				continue
			}
			if req, ok := msg.(*sip.Request); ok && req.Method == method {
				return req, from
			}
		}
	}
	inv, from := next(sip.INVITE)
	if inv.CallID().Value() != r.CallID {
		t.Fatalf("INVITE Call-ID %s, call %s", inv.CallID().Value(), r.CallID)
	}
	res := sip.NewResponseFromRequest(inv, 200, "OK", nil)
	res.To().Params.Add("tag", "late1")
	host, port, _ := net.SplitHostPort(pc.LocalAddr().String())
	p, _ := strconv.Atoi(port)
	res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: host, Port: p}})
	if _, err := pc.WriteTo([]byte(res.String()), from); err != nil {
		t.Fatal(err)
	}
	ack, _ := next(sip.ACK)
	bye, byeFrom := next(sip.BYE)
	for _, req := range []*sip.Request{ack, bye} {
		if req.CallID().Value() != r.CallID {
			t.Errorf("%s for Call-ID %s, want %s", req.Method, req.CallID().Value(), r.CallID)
		}
		if tag, _ := req.To().Params.Get("tag"); tag != "late1" {
			t.Errorf("%s To tag %q, want the 200's", req.Method, tag)
		}
	}
	_, _ = pc.WriteTo([]byte(sip.NewResponseFromRequest(bye, 200, "OK", nil).String()), byeFrom)
	if got := countKind(events.kinds(), EventAnswered); got != 0 || c.Answered() || c.Result().Outcome != OutcomeTrunkDown {
		t.Errorf("late answer reported: %d answered events, Answered %v, outcome %s", got, c.Answered(), c.Result().Outcome)
	}
}
