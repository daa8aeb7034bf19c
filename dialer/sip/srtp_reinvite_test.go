package sip

import (
	"crypto/rand"
	"encoding/base64"
	"strconv"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/turbina-dialer/turbina/internal/sipptest"
)

// TestSRTPReoffer: sipp plays a carrier whose SBC re-anchors an SRTP call,
// moving its RTP to a new port with a new key: by a re-INVITE
// (srtp-reinvite.xml); by the ACK of an offerless re-INVITE, after a plain
// RTP/AVP offer that a trunk requiring SRTP refuses with 488
// (srtp-reinvite-nosdp.xml); or in the 200 to our session-refresh re-INVITE
// (srtp-session-refresh.xml). sipp checks that our answers and offers are
// RTP/SAVP with one a=crypto line of the agreed tag and suite; here our key
// must be unchanged, and the media must follow: at the new port the test's own
// socket decrypts our RTP with our key, and what it sends with the carrier's
// new key reaches the bridge while what it sends with the old key is dropped.
func TestSRTPReoffer(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		scenario string
		tune     func(*Config)
	}{
		{"srtp-reinvite.xml", nil},
		{"srtp-reinvite-nosdp.xml", nil},
		{"srtp-session-refresh.xml", func(cfg *Config) {
			cfg.SessionExpires, cfg.MinSE = Duration(2*time.Second), Duration(2*time.Second)
			cfg.SessionRefresh = RefreshInvite
		}},
	} {
		scenario := tt.scenario
		t.Run(scenario, func(t *testing.T) {
			t.Parallel()
			first, moved := newRTPSink(t), newRTPSink(t)
			key1, key2 := randomKey(t), randomKey(t)
			sipp := sipptest.Start(t, scenario, sipptest.Options{Vars: map[string]string{
				"port1": strconv.Itoa(first.port()), "key1": base64.StdEncoding.EncodeToString(key1),
				"port2": strconv.Itoa(moved.port()), "key2": base64.StdEncoding.EncodeToString(key2),
			}})
			tc := udpTrunk("carrier", sipp.Addr, 0)
			tc.SRTP = SRTPRequire
			cfg := testConfig(tc)
			cfg.MediaSilence = Duration(time.Hour) // sipp answers no OPTIONS
			if tt.tune != nil {
				tt.tune(&cfg)
			}
			o := newTestOriginator(t, cfg)
			c := answeredCall(t, o, "+34600000009")
			m := c.Media()
			ours := m.localCrypto()
			if ours == nil || ours.Suite != SuiteAES128SHA1_80 {
				t.Fatalf("answered with crypto %v, want %s", ours, SuiteAES128SHA1_80)
			}
			bridge, _ := m.Detach()
			deadline := time.Now().Add(10 * time.Second)
			// After Detach the state names the relay; the carrier's address is behind it.
			for m.carrierAddr() == nil || m.carrierAddr().Port != moved.port() {
				if time.Now().After(deadline) {
					t.Fatalf("RTP never moved to port %d: %v", moved.port(), m.carrierAddr())
				}
				time.Sleep(5 * time.Millisecond)
			}
			if now := m.localCrypto(); now == nil || now.String() != ours.String() {
				t.Errorf("our key changed with the carrier's re-offer: %v, was %v", now, ours)
			}

			// Ours: plain from the bridge, SRTP with our key at the new port.
			dec, err := srtp.CreateContext(ours.Keys[0].KeySalt[:srtpKeyLen], ours.Keys[0].KeySalt[srtpKeyLen:], srtp.ProtectionProfileAes128CmHmacSha1_80)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 1500)
			decrypted := 0
			for i := range 20 {
				p := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 0x5EC, SequenceNumber: uint16(i), Timestamp: uint32(i * 160)}, Payload: make([]byte, 160)}
				pkt, _ := p.Marshal()
				if _, err := bridge.WriteToUDP(pkt, m.RemoteAddr()); err != nil {
					t.Fatal(err)
				}
				_ = moved.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, _, err := moved.conn.ReadFromUDP(buf)
				if err != nil {
					t.Fatalf("after %d packets at the new port: %v", decrypted, err)
				}
				var h rtp.Header
				if _, err := dec.DecryptRTP(nil, buf[:n], &h); err != nil {
					t.Errorf("a packet at the new port does not decrypt with our key: %v", err)
					continue
				}
				decrypted++
			}
			if decrypted < 20 {
				t.Errorf("%d of 20 packets decrypted with our key at the new port", decrypted)
			}

			// Theirs: the old key is dropped, the new one reaches the bridge.
			send := func(key []byte, ssrc uint32, n int) {
				t.Helper()
				enc, err := srtp.CreateContext(key[:srtpKeyLen], key[srtpKeyLen:], srtp.ProtectionProfileAes128CmHmacSha1_80)
				if err != nil {
					t.Fatal(err)
				}
				for i := range n {
					p := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: ssrc, SequenceNumber: uint16(i), Timestamp: uint32(i * 160)}, Payload: make([]byte, 160)}
					pkt, _ := p.Marshal()
					out, err := enc.EncryptRTP(nil, pkt, nil)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := moved.conn.WriteToUDP(out, m.LocalAddr()); err != nil {
						t.Fatal(err)
					}
				}
			}
			send(key1, 0x01D, 5)
			send(key2, 0x2E3, 5)
			heard := 0
			_ = bridge.SetReadDeadline(time.Now().Add(5 * time.Second))
			for heard < 5 {
				n, _, err := bridge.ReadFromUDP(buf)
				if err != nil {
					t.Fatalf("the bridge got %d of 5 packets sent with the carrier's new key: %v", heard, err)
				}
				var p rtp.Packet
				if err := p.Unmarshal(buf[:n]); err != nil {
					continue
				}
				switch p.SSRC {
				case 0x01D:
					t.Fatal("a packet with the carrier's old key reached the bridge")
				case 0x2E3:
					heard++
				}
			}
			if m.SRTP() != SuiteAES128SHA1_80 {
				t.Errorf("suite %q after the re-offers", m.SRTP())
			}
			hangupAndWait(t, c, sipp)
		})
	}
}

func randomKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, srtpKeyLen+srtpSaltLen)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}
