package media

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/pion/rtcp"
)

const recvTimeout = 2 * time.Second

// eventually waits up to a second for cond: a bridge counts a packet after writing
// it, so the last counts may land a moment after the packet itself.
func eventually(cond func() bool) {
	for deadline := time.Now().Add(time.Second); !cond() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBridgeBothWays(t *testing.T) {
	agent := newPhone(t, PCMU)
	cust := newPhone(t, PCMU)
	b := startBridge(t, agent.leg, BridgeConfig{Latency: &LatencyHistogram{}})
	call, err := b.Connect(cust.leg)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := range n {
		cust.send(t, 0, i == 0, payload(i, 160, 0))
		got := agent.recv(t, recvTimeout)
		if !bytes.Equal(got.Payload, payload(i, 160, 0)) || got.PayloadType != 0 {
			t.Fatalf("agent packet %d: pt %d payload %x…", i, got.PayloadType, got.Payload[:4])
		}
		agent.send(t, 0, false, payload(i, 160, 100))
		got = cust.recv(t, recvTimeout)
		if !bytes.Equal(got.Payload, payload(i, 160, 100)) {
			t.Fatalf("customer packet %d: payload %x…", i, got.Payload[:4])
		}
	}
	want := DirectionStats{Packets: n, Bytes: n * 160}
	eventually(func() bool {
		st := call.Stats()
		return st.ToAgent == want && st.ToCustomer == want && b.cfg.Latency.Count() == 2*n
	})
	st := call.Stats()
	if st.ToAgent != want || st.ToCustomer != want {
		t.Errorf("stats %+v, want %+v both ways", st, want)
	}
	if b.cfg.Latency.Count() != 2*n {
		t.Errorf("latency observations %d, want %d", b.cfg.Latency.Count(), 2*n)
	}
	if b.Disconnect() != call {
		t.Error("Disconnect did not return the call")
	}
	// With no customer, the agent's packets are counted as idle and go nowhere.
	agent.send(t, 0, false, payload(0, 160, 0))
	cust.expectSilence(t, 100*time.Millisecond)
	if b.Idle() != 1 {
		t.Errorf("idle %d, want 1", b.Idle())
	}
}

// TestBridgeContinuity connects two customers in turn to one nailed-up agent leg:
// the agent must see one stream, with sequence numbers +1 and timestamps +160 per
// packet across the switch.
func TestBridgeContinuity(t *testing.T) {
	agent := newPhone(t, PCMU)
	b := startBridge(t, agent.leg, BridgeConfig{})
	var (
		ssrc    uint32
		lastSeq uint16
		lastTS  uint32
		count   int
	)
	for callNo := range 2 {
		cust := newPhone(t, PCMU)
		cust.ssrc += uint32(callNo) * 7777
		cust.seq = uint16(1000 + callNo*30000)
		cust.ts = uint32(callNo) * 123456789
		if _, err := b.Connect(cust.leg); err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			if i == 10 {
				cust.seq++ // one packet lost in the network: the gap must show
				cust.ts += 160
			}
			cust.send(t, 0, false, payload(i, 160, 0))
			got := agent.recv(t, recvTimeout)
			if count == 0 {
				ssrc = got.SSRC
			} else {
				wantSeq, wantTS := lastSeq+1, lastTS+160
				if callNo == 0 && i == 10 || callNo == 1 && i == 10 {
					wantSeq, wantTS = lastSeq+2, lastTS+320
				}
				if got.SSRC != ssrc || got.SequenceNumber != wantSeq || got.Timestamp != wantTS {
					t.Fatalf("call %d packet %d: ssrc %x seq %d ts %d, want %x %d %d", callNo, i, got.SSRC, got.SequenceNumber, got.Timestamp, ssrc, wantSeq, wantTS)
				}
			}
			if got.Marker != (i == 0) {
				t.Errorf("call %d packet %d: marker %v", callNo, i, got.Marker)
			}
			lastSeq, lastTS = got.SequenceNumber, got.Timestamp
			count++
		}
		cur := b.Current()
		eventually(func() bool { st := cur.Stats().ToAgent; return st.Lost == 1 && st.Packets == 20 })
		if st := cur.Stats().ToAgent; st.Lost != 1 || st.Packets != 20 {
			t.Errorf("call %d: %+v, want 20 packets, 1 lost", callNo, st)
		}
		time.Sleep(30 * time.Millisecond) // wall time between calls must not matter
	}
}

func TestBridgeDTMF(t *testing.T) {
	agentCodec := PCMU
	agentCodec.TelephoneEvent = 96
	agent := newPhone(t, agentCodec)
	cust := newPhone(t, PCMU) // telephone-event on 101
	b := startBridge(t, agent.leg, BridgeConfig{})
	call, err := b.Connect(cust.leg)
	if err != nil {
		t.Fatal(err)
	}
	cust.send(t, 0, false, payload(0, 160, 0))
	agent.recv(t, recvTimeout)
	// RFC 4733 event "5", volume 10, growing duration, end bit on the last.
	for i, ev := range [][]byte{{5, 10, 0, 160}, {5, 10, 1, 64}, {5, 10 | 0x80, 1, 224}} {
		cust.send(t, 101, i == 0, ev)
		got := agent.recv(t, recvTimeout)
		if got.PayloadType != 96 || !bytes.Equal(got.Payload, ev) {
			t.Fatalf("event packet %d at agent: pt %d payload %x", i, got.PayloadType, got.Payload)
		}
	}
	agent.send(t, 96, true, []byte{1, 10 | 0x80, 0, 160})
	if got := cust.recv(t, recvTimeout); got.PayloadType != 101 {
		t.Fatalf("event at customer: pt %d, want 101", got.PayloadType)
	}
	eventually(func() bool { st := call.Stats(); return st.ToAgent.DTMF == 3 && st.ToCustomer.DTMF == 1 })
	if st := call.Stats(); st.ToAgent.DTMF != 3 || st.ToCustomer.DTMF != 1 {
		t.Errorf("DTMF counts %+v", st)
	}
	// Unknown payload types are dropped, not forwarded.
	cust.send(t, 99, false, []byte{1, 2, 3})
	agent.expectSilence(t, 50*time.Millisecond)
	if call.Stats().ToAgent.Dropped != 1 {
		t.Errorf("dropped %d, want 1", call.Stats().ToAgent.Dropped)
	}
}

func TestBridgeTranscodesG711(t *testing.T) {
	agent := newPhone(t, PCMU)
	cust := newPhone(t, PCMA)
	b := startBridge(t, agent.leg, BridgeConfig{})
	if _, err := b.Connect(cust.leg); err != nil {
		t.Fatal(err)
	}
	in := payload(3, 160, 0)
	cust.send(t, 8, false, in)
	got := agent.recv(t, recvTimeout)
	if got.PayloadType != 0 || len(got.Payload) != 160 {
		t.Fatalf("agent got pt %d, %d bytes", got.PayloadType, len(got.Payload))
	}
	for i := range in {
		if got.Payload[i] != alawToULaw[in[i]] {
			t.Fatalf("byte %d: %#02x, want %#02x", i, got.Payload[i], alawToULaw[in[i]])
		}
	}
	agent.send(t, 0, false, in)
	back := cust.recv(t, recvTimeout)
	if back.PayloadType != 8 {
		t.Fatalf("customer got pt %d", back.PayloadType)
	}
	for i := range in {
		if back.Payload[i] != ulawToALaw[in[i]] {
			t.Fatalf("byte %d: %#02x, want %#02x", i, back.Payload[i], ulawToALaw[in[i]])
		}
	}
}

func TestBridgeCustomerHangsUp(t *testing.T) {
	agent := newPhone(t, PCMU)
	cust := newPhone(t, PCMU)
	b := startBridge(t, agent.leg, BridgeConfig{})
	call, err := b.Connect(cust.leg)
	if err != nil {
		t.Fatal(err)
	}
	_ = cust.leg.Close()
	select {
	case <-call.Done():
	case <-time.After(recvTimeout):
		t.Fatal("call did not end when its leg closed")
	}
	if call.Err() == nil || b.Current() != nil {
		t.Errorf("err %v, current %v", call.Err(), b.Current())
	}
	// The agent leg stays up for the next customer.
	next := newPhone(t, PCMU)
	if _, err := b.Connect(next.leg); err != nil {
		t.Fatal(err)
	}
	next.send(t, 0, false, payload(1, 160, 0))
	agent.recv(t, recvTimeout)
}

func TestUDPLegDropsMalformed(t *testing.T) {
	p := newPhone(t, PCMU)
	junk := [][]byte{
		{}, {0x80}, make([]byte, 11), // too short
		{0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},                           // version 0
		{0x8F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},                           // 15 CSRCs missing
		{0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0, 9},         // extension overruns
		{0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 200},                // padding overruns
		{0x80, 200, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // RTCP SR
	}
	for _, j := range junk {
		if _, err := p.conn.WriteToUDP(j, p.leg.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	p.send(t, 0, false, payload(1, 160, 0))
	buf := make([]byte, 1500)
	_ = p.leg.SetReadDeadline(time.Now().Add(recvTimeout))
	n, err := p.leg.ReadRTP(buf)
	if err != nil || n != 172 {
		t.Fatalf("ReadRTP = %d, %v; want the one valid packet", n, err)
	}
	if got := p.leg.Malformed(); got != uint64(len(junk)-1) { // the empty datagram may not arrive
		if got != uint64(len(junk)) {
			t.Errorf("malformed %d, want %d", got, len(junk))
		}
	}
}

func TestUDPLegLatches(t *testing.T) {
	legConn := listenUDP(t)
	leg := NewUDPLeg(legConn, nil, PCMU)
	t.Cleanup(func() { _ = leg.Close() })
	if err := leg.WriteRTP(make([]byte, 12)); err != ErrNoRemote {
		t.Fatalf("write before latching: %v", err)
	}
	peer := &phone{conn: listenUDP(t), leg: leg, ssrc: 1}
	peer.send(t, 0, false, payload(0, 160, 0))
	buf := make([]byte, 1500)
	if _, err := leg.ReadRTP(buf); err != nil {
		t.Fatal(err)
	}
	if err := leg.WriteRTP(buf[:172]); err != nil {
		t.Fatal(err)
	}
	peer.recv(t, recvTimeout)
}

func TestRTCPReports(t *testing.T) {
	peerRTCP := listenUDP(t)
	legRTCP := listenUDP(t)
	cust := newPhone(t, PCMU, WithRTCP(legRTCP, peerRTCP.LocalAddr().(*net.UDPAddr), 100*time.Millisecond))
	agent := newPhone(t, PCMU)
	b := startBridge(t, agent.leg, BridgeConfig{})
	if _, err := b.Connect(cust.leg); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if i == 5 {
			cust.seq++ // one lost
		}
		cust.send(t, 0, false, payload(i, 160, 0))
		agent.recv(t, recvTimeout)
	}
	lastSeq := cust.seq - 1

	// The periodic report: a receiver report about the customer's stream.
	rr := readReport(t, peerRTCP, cust.ssrc)
	if rr.LastSequenceNumber&0xFFFF != uint32(lastSeq) || rr.TotalLost != 1 {
		t.Errorf("report %+v, want last seq %d and 1 lost", rr, lastSeq)
	}

	// A sender report from the peer is answered at once, echoing its NTP time.
	sr := &rtcp.SenderReport{SSRC: cust.ssrc, NTPTime: 0x0102030405060708}
	raw, _ := sr.Marshal()
	if _, err := peerRTCP.WriteToUDP(raw, legRTCP.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(recvTimeout)
	for time.Now().Before(deadline) {
		if r := readReport(t, peerRTCP, cust.ssrc); r.LastSenderReport == 0x03040506 {
			return
		}
	}
	t.Error("sender report not answered with its LSR")
}

// readReport reads compound RTCP packets until one carries a reception report
// about ssrc.
func readReport(t *testing.T, conn *net.UDPConn, ssrc uint32) rtcp.ReceptionReport {
	t.Helper()
	buf := make([]byte, 1500)
	_ = conn.SetReadDeadline(time.Now().Add(recvTimeout))
	for {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no RTCP report: %v", err)
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			t.Fatalf("bad RTCP: %v", err)
		}
		for _, p := range pkts {
			var reports []rtcp.ReceptionReport
			switch p := p.(type) {
			case *rtcp.ReceiverReport:
				reports = p.Reports
			case *rtcp.SenderReport:
				reports = p.Reports
			}
			for _, r := range reports {
				if r.SSRC == ssrc {
					return r
				}
			}
		}
	}
}

func TestOutStreamClockScaling(t *testing.T) {
	o := newOutStream(8000, 20*time.Millisecond)
	_, ts0, first := o.next(1, 10, 48000, 48000)
	_, ts1, _ := o.next(1, 11, 48000+960, 48000)
	if !first || ts1-ts0 != 160 {
		t.Errorf("48 kHz → 8 kHz: step %d, want 160", ts1-ts0)
	}
	// Reordered packet from before the base does not break the mapping.
	_, tsOld, _ := o.next(1, 9, 48000-960, 48000)
	if ts0-tsOld != 160 {
		t.Errorf("late packet step %d, want 160", ts0-tsOld)
	}
}

// TestBridgeEndsWhenTheAgentFallsSilent: an agent leg that keeps sending keeps
// the bridge up past the allowance; once it stops, Run ends with ErrAgentSilent
// within the allowance, disconnecting the customer.
func TestBridgeEndsWhenTheAgentFallsSilent(t *testing.T) {
	const silence = 200 * time.Millisecond
	agent := newPhone(t, PCMU)
	cust := newPhone(t, PCMU)
	b := NewBridge(agent.leg, BridgeConfig{AgentSilence: silence})
	done := make(chan error, 1)
	go func() { done <- b.Run(context.Background()) }()
	call, err := b.Connect(cust.leg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 { // 800 ms of audio, four allowances
		agent.send(t, 0, i == 0, payload(i, 160, 0))
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("the bridge ended while the agent was sending: %v", err)
	default:
	}
	stopped := time.Now()
	select {
	case err := <-done:
		if !errors.Is(err, ErrAgentSilent) {
			t.Fatalf("Run: %v, want ErrAgentSilent", err)
		}
		if waited := time.Since(stopped); waited > silence+time.Second { // generous: a loaded machine is slow, not wrong
			t.Errorf("noticed %s after the agent stopped, allowance %s", waited, silence)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the bridge did not notice the silent agent")
	}
	if b.Current() != nil || call.Stats().ToCustomer.Packets == 0 {
		t.Errorf("after the end: current %v, forwarded %+v", b.Current(), call.Stats())
	}
}

// TestBridgeSilenceWatchesEveryAgentLeg: an agent session with two legs is not
// silent while it sends on either, even when the connected customer's leg is the
// quiet one; once both are quiet, Run ends with ErrAgentSilent.
func TestBridgeSilenceWatchesEveryAgentLeg(t *testing.T) {
	// Generous, so that a test goroutine a loaded machine leaves unscheduled for a
	// few hundred milliseconds does not look like a silent agent.
	const silence = 600 * time.Millisecond
	agentPCMU, agentOpus := newPhone(t, PCMU), newPhone(t, Opus)
	cust := newPhone(t, PCMU)
	b := NewBridgePaths([]Leg{agentPCMU.leg, agentOpus.leg}, BridgeConfig{AgentSilence: silence})
	done := make(chan error, 1)
	go func() { done <- b.Run(context.Background()) }()
	if _, err := b.Connect(cust.leg); err != nil {
		t.Fatal(err)
	}
	for i := range 120 { // 2.4 s on the Opus leg only, four allowances
		agentOpus.send(t, Opus.PayloadType, i == 0, payload(i, 40, 0))
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("the bridge ended while the agent was sending on its other leg: %v", err)
	default:
	}
	if b.Idle() == 0 {
		t.Error("the Opus leg's packets were not counted idle")
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrAgentSilent) {
			t.Fatalf("Run: %v, want ErrAgentSilent", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the bridge did not notice the silent agent")
	}
}

// TestBridgeFollowsCustomerLeg: a SIP customer's new offer and answer in the
// middle of the call change its leg's codec, address and hold state; the bridge
// connected to it follows without a new Connect: PCMA is transcoded both ways,
// RTP goes to the new port, and nothing goes to a customer on hold.
func TestBridgeFollowsCustomerLeg(t *testing.T) {
	agent := newPhone(t, PCMU)
	cust := newPhone(t, PCMU)
	b := startBridge(t, agent.leg, BridgeConfig{})
	if _, err := b.Connect(cust.leg); err != nil {
		t.Fatal(err)
	}
	in := payload(1, 160, 0)
	cust.send(t, 0, false, in)
	if got := agent.recv(t, recvTimeout); got.PayloadType != 0 || got.Payload[0] != in[0] {
		t.Fatalf("before the change the agent got pt %d", got.PayloadType)
	}

	cust.leg.SetCodec(PCMA)
	moved := listenUDP(t)
	cust.leg.SetRemote(moved.LocalAddr().(*net.UDPAddr))

	cust.send(t, 8, false, in)
	got := agent.recv(t, recvTimeout)
	if got.PayloadType != 0 || got.Payload[0] != alawToULaw[in[0]] {
		t.Fatalf("agent got pt %d byte %#02x, want PCMU %#02x", got.PayloadType, got.Payload[0], alawToULaw[in[0]])
	}
	agent.send(t, 0, false, in)
	at := &phone{conn: moved, leg: cust.leg}
	back := at.recv(t, recvTimeout)
	if back.PayloadType != 8 || back.Payload[0] != ulawToALaw[in[0]] {
		t.Fatalf("customer's new port got pt %d byte %#02x, want PCMA %#02x", back.PayloadType, back.Payload[0], ulawToALaw[in[0]])
	}
	cust.expectSilence(t, 50*time.Millisecond) // the old port hears nothing more

	cust.leg.SetMuted(true)
	agent.send(t, 0, false, in)
	at.expectSilence(t, 100*time.Millisecond)
	cust.leg.SetMuted(false)
	agent.send(t, 0, false, in)
	if back := at.recv(t, recvTimeout); back.PayloadType != 8 {
		t.Fatalf("after the resume the customer got pt %d", back.PayloadType)
	}
}
