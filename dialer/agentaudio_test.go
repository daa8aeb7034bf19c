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
		h.engine.AgentAudio().Attach(id, media.NewUDPLeg(legConn, legConn.LocalAddr().(*net.UDPAddr), media.PCMU),
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
	h.engine.AgentAudio().Attach(1, media.NewUDPLeg(legConn, legConn.LocalAddr().(*net.UDPAddr), media.PCMU),
		func() error { close(late); return legConn.Close() }, nil)
	select {
	case <-late:
	default:
		t.Error("a session attached after the engine stopped was kept")
	}
}
