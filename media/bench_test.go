package media

import (
	"context"
	"encoding/binary"
	"flag"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var (
	capacityCalls = flag.Int("capacity", 20, "TestRelayCapacity: number of concurrent bridged calls")
	capacityDur   = flag.Duration("capacity.duration", 2*time.Second, "TestRelayCapacity: measured duration")
	connects      = flag.Int("connects", 50, "TestConnectLatency: number of customer switches")
)

// nullLeg is a Leg that discards writes, for measuring the forward path alone.
type nullLeg struct{ codec Codec }

func (nullLeg) ReadRTP([]byte) (int, error)     { select {} }
func (nullLeg) WriteRTP([]byte) error           { return nil }
func (nullLeg) SetReadDeadline(time.Time) error { return nil }
func (l nullLeg) Codec() Codec                  { return l.codec }
func (nullLeg) Close() error                    { return nil }

func forwardFixture(t testing.TB, from, to Codec) (*Connection, []byte) {
	t.Helper()
	b := NewBridge(nullLeg{to}, BridgeConfig{Latency: &LatencyHistogram{}})
	c, err := newCall(b, nullLeg{from}, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 160)
	if isName(from, "opus") {
		payload = opusFrame(t)
	}
	pkt := make([]byte, rtpFixedHeader+len(payload))
	putRTPHeader(pkt, false, from.PayloadType, 1, 160, 99)
	copy(pkt[rtpFixedHeader:], payload)
	return c, pkt
}

// opusFrame returns 20 ms of a 440 Hz tone encoded as Opus, or ends the test in a
// build without libopus.
func opusFrame(t testing.TB) []byte {
	t.Helper()
	if !OpusAvailable {
		t.Skip("built without the opus tag")
	}
	enc, err := NewEncoder(Opus)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, PCMRate/50)
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(i)/PCMRate))
	}
	out := make([]byte, maxPacket)
	n, err := enc.Encode(out, pcm)
	if err != nil {
		t.Fatal(err)
	}
	return out[:n]
}

// TestForwardZeroAlloc checks the per-packet path allocates nothing, with and
// without transcoding.
func TestForwardZeroAlloc(t *testing.T) {
	for _, tc := range []struct{ from, to Codec }{{PCMU, PCMU}, {PCMA, PCMU}} {
		c, pkt := forwardFixture(t, tc.from, tc.to)
		out := make([]byte, maxPacket)
		var seq uint16
		allocs := testing.AllocsPerRun(1000, func() {
			seq++
			binary.BigEndian.PutUint16(pkt[2:], seq)
			pkt[1] = tc.from.PayloadType
			c.forward(pkt, out, nil, &c.stats[0], &c.path.toAgent, c.cc, c.path.codec, c.toAgentTx, c.path.leg, nil, true)
		})
		if allocs != 0 {
			t.Errorf("%s → %s: %v allocations per packet", tc.from.Name, tc.to.Name, allocs)
		}
	}
}

// BenchmarkForward measures the bridge's per-packet work without sockets: G.711
// forwarded and table-transcoded, and a WhatsApp customer's Opus forwarded to a
// browser agent's Opus path or transcoded to a PCMU-only agent (decode and, the
// other way, encode: the cost the Opus path saves).
func BenchmarkForward(b *testing.B) {
	for _, tc := range []struct{ from, to Codec }{{PCMU, PCMU}, {PCMA, PCMU}, {Opus, Opus}, {Opus, PCMU}, {PCMU, Opus}} {
		b.Run(tc.from.Name+"-"+tc.to.Name, func(b *testing.B) {
			c, pkt := forwardFixture(b, tc.from, tc.to)
			out := make([]byte, maxPacket)
			b.ReportAllocs()
			var seq uint16
			for b.Loop() {
				seq++
				binary.BigEndian.PutUint16(pkt[2:], seq)
				pkt[1] = tc.from.PayloadType
				c.forward(pkt, out, nil, &c.stats[0], &c.path.toAgent, c.cc, c.path.codec, c.toAgentTx, c.path.leg, nil, true)
			}
			if d := c.stats[0].dropped.Load(); d != 0 {
				b.Fatalf("%d packets dropped", d)
			}
		})
	}
}

// BenchmarkRelay sends packets from a customer phone through a bridge to the
// agent's phone over loopback UDP, one at a time: ns/op is the round trip of one
// packet through two sockets and the relay.
func BenchmarkRelay(b *testing.B) {
	agent := newPhone(b, PCMU)
	cust := newPhone(b, PCMU)
	br := startBridge(b, agent.leg, BridgeConfig{Latency: &LatencyHistogram{}})
	if _, err := br.Connect(cust.leg); err != nil {
		b.Fatal(err)
	}
	pkt := make([]byte, rtpFixedHeader+160)
	buf := make([]byte, 1500)
	to := cust.leg.LocalAddr().AddrPort()
	b.ReportAllocs()
	var seq uint16
	for b.Loop() {
		seq++
		putRTPHeader(pkt, false, 0, seq, uint32(seq)*160, 7)
		if _, err := cust.conn.WriteToUDPAddrPort(pkt, to); err != nil {
			b.Fatal(err)
		}
		if _, err := agent.conn.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(br.cfg.Latency.Quantile(0.99).Microseconds()), "relay-p99-µs")
}

// loadCall is one bridged call of the capacity test, with both phones.
type loadCall struct {
	agentPhone, custPhone   *net.UDPConn
	agentTo, custTo         netip.AddrPort
	recvAtAgent, recvAtCust atomic.Uint64
	gapsAtAgent, gapsAtCust atomic.Uint64
}

// TestRelayCapacity runs -capacity concurrent bridged calls at 50 packets/s each
// way (160-byte PCMU payloads) over loopback UDP for -capacity.duration and
// reports loss, relay-internal and end-to-end latency. By default a small load
// that every run checks; the capacity benchmark is
//
//	go test -run TestRelayCapacity -v ./media/ -args -capacity=1000 -capacity.duration=10s
func TestRelayCapacity(t *testing.T) {
	n := *capacityCalls
	relayLat := &LatencyHistogram{}
	e2eLat := &LatencyHistogram{}
	calls := make([]*loadCall, n)
	for i := range calls {
		agent := newPhone(t, PCMU)
		cust := newPhone(t, PCMU)
		br := startBridge(t, agent.leg, BridgeConfig{Latency: relayLat})
		if _, err := br.Connect(cust.leg); err != nil {
			t.Fatal(err)
		}
		calls[i] = &loadCall{
			agentPhone: agent.conn, custPhone: cust.conn,
			agentTo: agent.leg.LocalAddr().AddrPort(), custTo: cust.leg.LocalAddr().AddrPort(),
		}
	}
	epoch := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	// Receivers: one goroutine per phone, as a phone would be.
	recv := func(conn *net.UDPConn, count, gaps *atomic.Uint64) {
		defer wg.Done()
		buf := make([]byte, 1500)
		var last uint16
		first := true
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			if n < rtpFixedHeader+8 {
				continue
			}
			seq := binary.BigEndian.Uint16(buf[2:])
			if !first && seq != last+1 {
				gaps.Add(1)
			}
			first, last = false, seq
			sent := time.Duration(binary.BigEndian.Uint64(buf[rtpFixedHeader:]))
			e2eLat.Record(time.Since(epoch) - sent)
			count.Add(1)
		}
	}
	for _, c := range calls {
		wg.Add(2)
		go recv(c.agentPhone, &c.recvAtAgent, &c.gapsAtAgent)
		go recv(c.custPhone, &c.recvAtCust, &c.gapsAtCust)
		t.Cleanup(func() { _ = c.agentPhone.Close(); _ = c.custPhone.Close() })
	}
	// Senders: a few goroutines, each ticking every 20 ms over its share of the
	// calls with calls spread across the tick, so the load is smooth, as many
	// independent phones would make it.
	var sent atomic.Uint64
	senders := 4
	var swg sync.WaitGroup
	for s := range senders {
		swg.Add(1)
		go func() {
			defer swg.Done()
			pkt := make([]byte, rtpFixedHeader+160)
			var seq uint16
			mine := calls[s*n/senders : (s+1)*n/senders]
			start := time.Now().Add(time.Duration(s) * 5 * time.Millisecond)
			for tick := 0; ; tick++ {
				for i, c := range mine {
					due := start.Add(time.Duration(tick)*20*time.Millisecond + time.Duration(i)*20*time.Millisecond/time.Duration(len(mine)))
					if d := time.Until(due); d > 200*time.Microsecond {
						time.Sleep(d)
					}
					if ctx.Err() != nil {
						return
					}
					putRTPHeader(pkt, false, 0, seq, uint32(seq)*160, 1)
					binary.BigEndian.PutUint64(pkt[rtpFixedHeader:], uint64(time.Since(epoch)))
					_, err1 := c.custPhone.WriteToUDPAddrPort(pkt, c.custTo)
					binary.BigEndian.PutUint64(pkt[rtpFixedHeader:], uint64(time.Since(epoch)))
					_, err2 := c.agentPhone.WriteToUDPAddrPort(pkt, c.agentTo)
					if err1 != nil || err2 != nil {
						t.Errorf("send: %v %v", err1, err2)
						return
					}
					sent.Add(2)
				}
				seq++
			}
		}()
	}
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	time.Sleep(*capacityDur)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cancel()
	swg.Wait()
	time.Sleep(300 * time.Millisecond) // drain
	var got, gaps uint64
	for _, c := range calls {
		got += c.recvAtAgent.Load() + c.recvAtCust.Load()
		gaps += c.gapsAtAgent.Load() + c.gapsAtCust.Load()
	}
	cpu := time.Duration((ru1.Utime.Nano() + ru1.Stime.Nano()) - (ru0.Utime.Nano() + ru0.Stime.Nano()))
	lost := int64(sent.Load()) - int64(got)
	t.Logf("calls %d on %d CPUs for %v: sent %d packets (%.0f/s), received %d, lost %d (%.4f %%), sequence gaps %d",
		n, runtime.NumCPU(), *capacityDur, sent.Load(), float64(sent.Load())/capacityDur.Seconds(), got, lost,
		100*float64(lost)/float64(max(sent.Load(), 1)), gaps)
	t.Logf("relay receive→forward: p50 %v p99 %v max %v; end-to-end on loopback: p50 %v p99 %v max %v; process CPU %.0f %% of one core",
		relayLat.Quantile(0.5), relayLat.Quantile(0.99), relayLat.Max(), e2eLat.Quantile(0.5), e2eLat.Quantile(0.99), e2eLat.Max(),
		100*cpu.Seconds()/capacityDur.Seconds())
	if lost != 0 || gaps != 0 {
		t.Errorf("lost %d packets, %d sequence gaps; want 0", lost, gaps)
	}
}

// TestConnectLatency switches a nailed-up agent leg between two customers that
// stream at 50 packets/s and measures, per switch, the time from Connect to the
// first packet of the new customer at the agent's phone: raw (includes waiting
// up to 20 ms for the customer's next packet) and added by the relay (from the
// later of Connect and that packet's sending).
func TestConnectLatency(t *testing.T) {
	agent := newPhone(t, PCMU)
	br := startBridge(t, agent.leg, BridgeConfig{})
	epoch := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	custs := make([]*phone, 2)
	for i := range custs {
		custs[i] = newPhone(t, PCMU)
		wg.Add(1)
		go func(p *phone, id byte) {
			defer wg.Done()
			pkt := make([]byte, rtpFixedHeader+160)
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			to := p.leg.LocalAddr().AddrPort()
			for seq := uint16(0); ; seq++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				putRTPHeader(pkt, false, 0, seq, uint32(seq)*160, uint32(id))
				pkt[rtpFixedHeader] = id
				binary.BigEndian.PutUint64(pkt[rtpFixedHeader+1:], uint64(time.Since(epoch)))
				_, _ = p.conn.WriteToUDPAddrPort(pkt, to)
			}
		}(custs[i], byte(i+1))
	}
	raw, added := &LatencyHistogram{}, &LatencyHistogram{}
	buf := make([]byte, 1500)
	for i := range *connects {
		c := custs[i%2]
		id := byte(i%2 + 1)
		time.Sleep(time.Duration(5+rand.IntN(30)) * time.Millisecond)
		t0 := time.Since(epoch)
		if _, err := br.Connect(c.leg); err != nil {
			t.Fatal(err)
		}
		_ = agent.conn.SetReadDeadline(time.Now().Add(recvTimeout))
		for {
			n, err := agent.conn.Read(buf)
			if err != nil {
				t.Fatalf("switch %d: %v", i, err)
			}
			if n > rtpFixedHeader+9 && buf[rtpFixedHeader] == id {
				now := time.Since(epoch)
				sent := time.Duration(binary.BigEndian.Uint64(buf[rtpFixedHeader+1:]))
				raw.Record(now - t0)
				added.Record(now - max(t0, sent))
				break
			}
		}
	}
	t.Logf("connect latency over %d switches: raw p50 %v p99 %v; added by the relay p50 %v p99 %v max %v",
		*connects, raw.Quantile(0.5), raw.Quantile(0.99), added.Quantile(0.5), added.Quantile(0.99), added.Max())
	if p99 := added.Quantile(0.99); p99 > 20*time.Millisecond {
		t.Errorf("connect latency added p99 %v, want ≤ 20 ms", p99)
	}
	if p99 := raw.Quantile(0.99); p99 > 45*time.Millisecond {
		t.Errorf("connect latency raw p99 %v, want ≤ 45 ms (one packet interval plus slack)", p99)
	}
}
