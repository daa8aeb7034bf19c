package amd

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/turbina-dialer/turbina/media"
)

// sendPCMU sends pcm as 20 ms PCMU packets from conn to to, as fast as the socket
// takes them (the detector counts samples, not wall time), until done or a write
// fails because the test is over.
func sendPCMU(conn *net.UDPConn, to *net.UDPAddr, pcm []int16) {
	payload := make([]byte, 160)
	for i, seq := 0, uint16(0); i+160 <= len(pcm); i, seq = i+160, seq+1 {
		media.EncodeULaw(payload, pcm[i:i+160])
		b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(i), SSRC: 9}, Payload: payload}).Marshal()
		if _, err := conn.WriteToUDP(b, to); err != nil {
			return
		}
		time.Sleep(time.Millisecond) // keep the receive buffer from overflowing
	}
}

func TestScreenDecidesFromCustomerAudio(t *testing.T) {
	tests := []struct {
		name string
		pcm  []int16
		want Decision
	}{
		{"short greeting then silence", synth(-300, 400, -1500), Human},
		{"voicemail greeting", synth(-200, 900, -150, 900, -150, 900, -150, 900, -150, 900, -150, 900), Machine},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			customer, carrier := udpPair(t)
			leg := media.NewUDPLeg(customer, carrier.LocalAddr().(*net.UDPAddr), media.PCMU)
			d, err := New(DefaultParams())
			if err != nil {
				t.Fatal(err)
			}
			go sendPCMU(carrier, customer.LocalAddr().(*net.UDPAddr), tc.pcm)
			res, err := Screen(context.Background(), leg, d, time.Now().Add(10*time.Second))
			if err != nil || res.Decision != tc.want {
				t.Fatalf("Screen = %+v, %v; want %s", res, err, tc.want)
			}
		})
	}
	t.Run("deadline first", func(t *testing.T) {
		customer, carrier := udpPair(t)
		leg := media.NewUDPLeg(customer, carrier.LocalAddr().(*net.UDPAddr), media.PCMU)
		d, _ := New(DefaultParams())
		start := time.Now()
		res, err := Screen(context.Background(), leg, d, start.Add(200*time.Millisecond))
		if err != nil || res.Decision != NotSure {
			t.Fatalf("silent line before the deadline: %+v, %v", res, err)
		}
		// The leg reads normally again afterwards.
		go sendPCMU(carrier, customer.LocalAddr().(*net.UDPAddr), synth(100))
		leg.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := leg.ReadRTP(make([]byte, 1500)); err != nil {
			t.Fatalf("leg after Screen: %v", err)
		}
	})
}

func udpPair(t *testing.T) (a, b *net.UDPConn) {
	t.Helper()
	for _, c := range []**net.UDPConn{&a, &b} {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		*c = conn
	}
	return a, b
}
