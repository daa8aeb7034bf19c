package dialer

import (
	"context"
	"flag"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/sip/carrier"
	"github.com/turbina-dialer/turbina/media"
	"github.com/turbina-dialer/turbina/storage"
)

var (
	connectAgents   = flag.Int("connect.agents", 12, "TestConnectLatencyUnderLoad: agents (about agents / talk time calls a second)")
	connectDuration = flag.Duration("connect.duration", 4*time.Second, "TestConnectLatencyUnderLoad: measured run")
	connectMaxP99   = flag.Duration("connect.max-p99", 0, "TestConnectLatencyUnderLoad: fail when the connect p99 exceeds this (0: report only)")
)

// agentPhone is an agent's nailed-up leg over loopback UDP: the engine's side is a
// media.UDPLeg, the phone's side records when each new customer's first packet
// (marker bit set by the bridge) arrives.
type agentPhone struct {
	mu      sync.Mutex
	markers []time.Time
}

func attachPhone(t *testing.T, e *Engine, agentID int64) *agentPhone {
	t.Helper()
	legConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	phone, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { phone.Close() })
	p := &agentPhone{}
	e.AttachAgentLeg(agentID, media.NewUDPLeg(legConn, phone.LocalAddr().(*net.UDPAddr), media.PCMU), legConn.Close, nil)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, err := phone.Read(buf)
			if err != nil {
				return
			}
			if n >= 12 && buf[1]&0x80 != 0 {
				p.mu.Lock()
				p.markers = append(p.markers, time.Now())
				p.mu.Unlock()
			}
		}
	}()
	return p
}

// TestConnectLatencyUnderLoad measures the connect: from the customer's 200 OK
// (the attempt's answer time) to the customer's first packet at the agent's
// phone, while the engine dials a carrier that answers every call at once and
// talks for about a second. Every run checks that each connected call's audio
// reaches its agent; the latency is a measurement, not a pass mark, unless
// -connect.max-p99 is given (see BENCHMARKS.md):
//
//	go test -run TestConnectLatencyUnderLoad -v ./dialer/ -args -connect.agents=200 -connect.duration=10s -connect.max-p99=20ms
func TestConnectLatencyUnderLoad(t *testing.T) {
	ctx := context.Background()
	c0, err := carrier.Start(ctx, carrier.Config{Seed: 7, Odds: carrier.Odds{Answer: 1},
		RingMin: 10 * time.Millisecond, RingMax: 30 * time.Millisecond, TalkMin: 800 * time.Millisecond, TalkMax: 1200 * time.Millisecond,
		Audio: carrier.AudioTone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c0.Close() })
	// The agents' phones only listen: no silence watch, or it would outlive the test.
	h := newHarnessWith(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: c0.Addr()}}}, Config{AgentSilence: -1})
	n := *connectAgents
	calls := int(float64(n) / 0.8 * connectDuration.Seconds() * 1.5) // more contacts than the run can dial
	c := h.draft(calls, campaigns.PacingProgressive, sipOnlyLadder(1))
	ids := h.agents(c.ID, n, time.Hour) // the carrier hangs up
	phones := map[int64]*agentPhone{}
	for _, id := range ids {
		phones[id] = attachPhone(t, h.engine, id)
	}
	h.setState(c.ID, campaigns.StateRunning)
	start := time.Now()
	time.Sleep(*connectDuration)
	h.setState(c.ID, campaigns.StatePaused)
	elapsed := time.Since(start)
	time.Sleep(2 * time.Second) // calls under way end

	var list []campaigns.Contact
	for off := 0; ; off += 1000 {
		page, total, err := h.store.ListContacts(ctx, c.ID, storage.ContactFilter{Limit: 1000, Offset: off, Status: campaigns.ContactDone})
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, page...)
		if off+1000 >= total {
			break
		}
	}
	var lat []time.Duration
	connected := 0
	for _, ct := range list {
		for _, a := range h.attempts(ct.ID) {
			if a.Outcome != string(OutcomeConnected) || a.AnswerAt == nil || a.ConnectAt == nil {
				continue
			}
			connected++
			p := phones[a.AgentID]
			p.mu.Lock()
			// The first new-customer packet at this agent after the connect.
			i, _ := slices.BinarySearchFunc(p.markers, a.ConnectAt.Add(-time.Millisecond), func(m, t time.Time) int { return m.Compare(t) })
			if i < len(p.markers) {
				lat = append(lat, p.markers[i].Sub(*a.AnswerAt))
			}
			p.mu.Unlock()
		}
	}
	if connected == 0 {
		t.Fatal("no call was connected")
	}
	if len(lat) != connected {
		t.Fatalf("%d calls were connected but only %d reached their agent's phone", connected, len(lat))
	}
	slices.Sort(lat)
	q := func(f float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*f))] }
	st, _ := h.store.CampaignStats(ctx, c.ID)
	t.Logf("%d agents, %d dials in %s = %.1f calls/s; connect latency (200 OK → first customer packet at the agent) over %d calls: p50 %s p99 %s max %s",
		n, st.Dials, elapsed.Round(time.Millisecond), float64(st.Dials)/elapsed.Seconds(), len(lat), q(0.5), q(0.99), q(1))
	if p99 := q(0.99); *connectMaxP99 > 0 && p99 > *connectMaxP99+time.Millisecond { // answer times are stored to the millisecond
		t.Errorf("connect p99 %s, want ≤ %s", p99, *connectMaxP99)
	}
}
