package dialer

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/media"
)

// TestAgentLegLostWhenItFallsSilent: an agent's phone that stops sending (its
// network gone, no BYE) is detached once the allowance passes, so the agent is
// shown without audio instead of taking customers into silence.
func TestAgentLegLostWhenItFallsSilent(t *testing.T) {
	h := newHarnessWith(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "unused", Address: fmt.Sprintf("127.0.0.1:%d", sipptest.FreePort(t))}}}, Config{AgentSilence: 300 * time.Millisecond})
	pool := h.engine.Agents()
	pool.Login(1, "Bia", []int64{1}, time.Now())
	legConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	phone, err := net.DialUDP("udp4", nil, legConn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { phone.Close() })
	ended := make(chan struct{})
	h.engine.AttachAgentLeg(1, media.NewUDPLeg(legConn, phone.LocalAddr().(*net.UDPAddr), media.PCMU),
		func() error { close(ended); return legConn.Close() }, nil)
	pkt := make([]byte, 12+160)
	pkt[0] = 0x80
	for i := range 50 { // a second of audio: three allowances
		pkt[3] = byte(i)
		if _, err := phone.Write(pkt); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if a, _ := pool.Get(1); !a.Audio {
		t.Fatal("the agent lost its audio while the phone was sending")
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the silent phone's leg was not ended")
	}
	for deadline := time.Now().Add(time.Second); ; time.Sleep(10 * time.Millisecond) {
		if a, _ := pool.Get(1); !a.Audio {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent still shows audio after its phone fell silent")
		}
	}
}

// TestEngineStopEndsAgentSessions: when the engine stops (the server shuts down),
// every agent's nailed-up session is ended and its bridge has finished by the time
// Run returns, so nothing of it outlives the engine.
func TestEngineStopEndsAgentSessions(t *testing.T) {
	h := newHarnessWith(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "unused", Address: fmt.Sprintf("127.0.0.1:%d", sipptest.FreePort(t))}}}, Config{})
	pool := h.engine.Agents()
	ended := make([]chan struct{}, 3)
	for i := range ended {
		id := int64(i + 1)
		pool.Login(id, fmt.Sprintf("agent %d", id), []int64{1}, time.Now())
		legConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		ended[i] = make(chan struct{})
		h.engine.AttachAgentLeg(id, media.NewUDPLeg(legConn, legConn.LocalAddr().(*net.UDPAddr), media.PCMU),
			func() error { close(ended[i]); return legConn.Close() }, nil)
	}
	h.stop()
	for i, ch := range ended {
		select {
		case <-ch:
		default:
			t.Errorf("agent %d's session still up after the engine stopped", i+1)
		}
		if a, _ := pool.Get(int64(i + 1)); a.Audio {
			t.Errorf("agent %d still shows audio", i+1)
		}
	}
	// A session offered once the engine has stopped is ended at once.
	late := make(chan struct{})
	legConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	h.engine.AttachAgentLeg(1, media.NewUDPLeg(legConn, legConn.LocalAddr().(*net.UDPAddr), media.PCMU),
		func() error { close(late); return legConn.Close() }, nil)
	select {
	case <-late:
	default:
		t.Error("a session attached after the engine stopped was kept")
	}
}
