package sip

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func offerSDP(conn, port, fmts string, maps []string, dir string) []byte {
	b := "v=0\r\no=peer 1 2 IN IP4 " + conn + "\r\ns=-\r\nc=IN IP4 " + conn + "\r\nt=0 0\r\nm=audio " + port + " RTP/AVP " + fmts + "\r\n"
	for _, m := range maps {
		b += "a=rtpmap:" + m + "\r\n"
	}
	if dir != "" {
		b += "a=" + dir + "\r\n"
	}
	return []byte(b)
}

// TestOfferAnswer: answers to offers inside a call are a subset of the offer
// (RFC 3264 §6.1) in the direction that answers its own (§6.1, §8.4), and the
// o= version moves only when the description does (§8).
func TestOfferAnswer(t *testing.T) {
	pcma := []string{"8 PCMA/8000", "101 telephone-event/8000"}
	tests := []struct {
		name    string
		offer   []byte
		wantErr error
		m       string    // the answer's m= line
		dir     Direction // the answer's direction
		peer    Direction // the peer's, as applied to the media
		remote  string    // "" : the address is kept (old hold)
	}{
		{"pcma only", offerSDP("127.0.0.2", "4000", "8 101", pcma, ""), nil, "m=audio 20000 RTP/AVP 8 101", DirSendRecv, DirSendRecv, "127.0.0.2:4000"},
		{"pcma first", offerSDP("127.0.0.2", "4000", "8 0", nil, "sendrecv"), nil, "m=audio 20000 RTP/AVP 8\r", DirSendRecv, DirSendRecv, "127.0.0.2:4000"},
		{"hold", offerSDP("127.0.0.2", "4000", "0", nil, "sendonly"), nil, "m=audio 20000 RTP/AVP 0\r", DirRecvOnly, DirSendOnly, "127.0.0.2:4000"},
		{"recvonly", offerSDP("127.0.0.2", "4000", "0", nil, "recvonly"), nil, "m=audio 20000 RTP/AVP 0\r", DirSendOnly, DirRecvOnly, "127.0.0.2:4000"},
		{"inactive", offerSDP("127.0.0.2", "4000", "0", nil, "inactive"), nil, "m=audio 20000 RTP/AVP 0\r", DirInactive, DirInactive, "127.0.0.2:4000"},
		{"old hold", offerSDP("0.0.0.0", "4000", "0", nil, ""), nil, "m=audio 20000 RTP/AVP 0\r", DirRecvOnly, DirSendOnly, ""},
		{"g729 only", offerSDP("127.0.0.2", "4000", "18", []string{"18 G729/8000"}, ""), ErrNoCommonCodec, "", "", "", ""},
		{"no audio", []byte("v=0\r\nm=video 4000 RTP/AVP 96\r\n"), ErrNoAudio, "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newOfferAnswer(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 20000}, []Codec{CodecPCMU, CodecPCMA})
			first := n.offer(false)
			ans, body, err := n.answer(tt.offer)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("answer: %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(string(n.current()), "RTP/AVP 0 8 101") {
					t.Errorf("a refused offer changed our description:\n%s", n.current())
				}
				return
			}
			if !strings.Contains(string(body), tt.m) || !strings.Contains(string(body), "a="+string(tt.dir)+"\r\n") {
				t.Errorf("answer\n%s\nwant %q and a=%s", body, tt.m, tt.dir)
			}
			if ans.Direction != tt.peer || (tt.remote == "") != (ans.Remote == nil) || (ans.Remote != nil && ans.Remote.String() != tt.remote) {
				t.Errorf("applied %+v, want peer %s remote %q", ans, tt.peer, tt.remote)
			}
			if v := originVersion(t, body); v != originVersion(t, first)+1 {
				t.Errorf("answer version %d, want one above the offer's %d", v, originVersion(t, first))
			}
			again, _, _ := n.answer(tt.offer)
			if v := originVersion(t, n.current()); v != originVersion(t, body) {
				t.Errorf("the same offer again moved the version to %d (%s)", v, again.Codec.Name)
			}
		})
	}
}

func originVersion(t *testing.T, body []byte) int {
	t.Helper()
	for _, l := range strings.Split(string(body), "\r\n") {
		if f := strings.Fields(l); strings.HasPrefix(l, "o=") && len(f) >= 3 {
			v, err := strconv.Atoi(f[2])
			if err != nil {
				t.Fatalf("o= line %q: %v", l, err)
			}
			return v
		}
	}
	t.Fatalf("no o= line in %s", body)
	return 0
}

// TestOfferlessReinviteAnswerInAck: our offer to a re-INVITE without SDP waits
// for the ACK's answer; an ACK with nothing awaited changes nothing.
func TestOfferlessReinviteAnswerInAck(t *testing.T) {
	n := newOfferAnswer(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 20000}, []Codec{CodecPCMU, CodecPCMA})
	if _, waited, _ := n.answered(offerSDP("127.0.0.2", "4000", "8", nil, "")); waited {
		t.Fatal("an ACK's SDP taken with no offer of ours waiting")
	}
	if o := n.offer(true); !strings.Contains(string(o), "RTP/AVP 0 8 101") {
		t.Fatalf("offer %s", o)
	}
	ans, waited, err := n.answered(offerSDP("127.0.0.2", "4000", "8 101", []string{"8 PCMA/8000", "101 telephone-event/8000"}, ""))
	if !waited || err != nil || ans.Codec != CodecPCMA || ans.TelephoneEvent != 101 || ans.Remote.Port != 4000 {
		t.Fatalf("answered %+v %v %v", ans, waited, err)
	}
	if _, waited, _ := n.answered(nil); waited {
		t.Error("the answer was taken twice")
	}
}

// TestUASTimer: a Session-Expires from the peer below Min-SE is refused (422);
// otherwise its interval is taken with the refresher it names (default: the
// peer, RFC 4028 §9).
func TestUASTimer(t *testing.T) {
	tests := []struct {
		header   string
		tooSmall bool
		timed    bool
		refresh  bool
		echo     string
	}{
		{"", false, false, false, ""},
		{"60", true, true, false, ""},
		{"120", false, true, false, "120;refresher=uac"},
		{"120;refresher=uas", false, true, true, "120;refresher=uas"},
		{"120 ; Refresher=UAC", false, true, false, "120;refresher=uac"},
		{"soon", false, false, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			req := sip.NewRequest(sip.INVITE, sip.Uri{Host: "127.0.0.1"})
			if tt.header != "" {
				req.AppendHeader(sip.NewHeader("Session-Expires", tt.header))
			}
			st, hs, tooSmall, timed := uasTimer(req, 90*time.Second)
			if tooSmall != tt.tooSmall || timed != tt.timed || st.refresh != tt.refresh {
				t.Fatalf("uasTimer = %+v tooSmall=%v timed=%v", st, tooSmall, timed)
			}
			if tt.echo != "" && (len(hs) == 0 || hs[0].Value() != tt.echo) {
				t.Errorf("headers %v, want Session-Expires: %s", hs, tt.echo)
			}
		})
	}
}

// TestDialogConfig: the new keys' defaults, and bad values named in the error.
func TestDialogConfig(t *testing.T) {
	base := func() Config { return Config{Trunks: []TrunkConfig{{Name: "t", Address: "127.0.0.1:5060"}}} }
	c := base()
	c.applyDefaults()
	if err := c.validate(); err != nil || c.RTPTimeout.Std() != 30*time.Second || c.SessionExpires.Std() != 30*time.Minute ||
		c.MinSE.Std() != 90*time.Second || c.SessionRefresh != RefreshInvite {
		t.Fatalf("defaults %v %v %v %q: %v", c.RTPTimeout.Std(), c.SessionExpires.Std(), c.MinSE.Std(), c.SessionRefresh, err)
	}
	for _, tt := range []struct {
		set  func(*Config)
		want string
	}{
		{func(c *Config) { c.RTPTimeout = Duration(time.Millisecond) }, "rtp_timeout"},
		{func(c *Config) { c.SessionExpires, c.MinSE = Duration(60*time.Second), Duration(90*time.Second) }, "session_expires"},
		{func(c *Config) { c.SessionRefresh = "options" }, "session_refresh"},
	} {
		c := base()
		tt.set(&c)
		c.applyDefaults()
		if err := c.validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("validate: %v, want an error naming %s", err, tt.want)
		}
	}
}
