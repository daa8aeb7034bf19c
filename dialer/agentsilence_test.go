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
