package sip

import (
	"encoding/json"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/internal/sipptest"
)

// TestAddressesBehindNAT listens on any address and places a real call to a
// sipp carrier (nat-answer.xml) that fails unless Via sent-by and Contact
// carry the advertised address and Via has rport, and the SDP c= the media
// address; it streams RTP to that c=, which must arrive, and hangs up with a
// BYE whose Via names an address nobody listens on, whose 200 reaches it only
// because rport is honoured. The external addresses are other loopback
// addresses, which reach the socket on any address as a 1:1 NAT would.
func TestAddressesBehindNAT(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		listen string // host; the port is a free one
		cfg    func(c *Config)
		via    string // advertised host, in Via and Contact
		media  string // in SDP c=
	}{
		{name: "any/external", listen: "0.0.0.0", via: "127.0.0.5", media: "127.0.0.6", cfg: func(c *Config) {
			c.ExternalAddr, c.RTPExternalAddr = "127.0.0.5", "127.0.0.6"
		}},
		{name: "any/external-only", listen: "0.0.0.0", via: "127.0.0.5", media: "127.0.0.5", cfg: func(c *Config) {
			c.ExternalAddr = "127.0.0.5"
		}},
		{name: "any/per-trunk", listen: "0.0.0.0", via: "127.0.0.7", media: "127.0.0.8", cfg: func(c *Config) {
			c.ExternalAddr, c.RTPExternalAddr = "127.0.0.5", "127.0.0.6"
			c.Trunks[0].ExternalAddr, c.Trunks[0].RTPExternalAddr = "127.0.0.7", "127.0.0.8"
		}},
		{name: "any/routed", listen: "0.0.0.0", via: "127.0.0.1", media: "127.0.0.1"},
		{name: "ipv6-any/external", listen: "::", via: "127.0.0.5", media: "127.0.0.6", cfg: func(c *Config) {
			c.ExternalAddr, c.RTPExternalAddr = "127.0.0.5", "127.0.0.6"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			port := sipptest.FreePort(t)
			hostPort := regexp.QuoteMeta(net.JoinHostPort(tt.via, strconv.Itoa(port)))
			sipp := sipptest.Start(t, "nat-answer.xml", sipptest.Options{Vars: map[string]string{
				"via": hostPort, "contact": hostPort, "media": regexp.QuoteMeta(tt.media),
			}})
			cfg := testConfig(udpTrunk("carrier", sipp.Addr, 0))
			cfg.ListenAddr = net.JoinHostPort(tt.listen, strconv.Itoa(port))
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			o := newTestOriginator(t, cfg)
			c := answeredCall(t, o, "+34600000003")
			r := waitResult(t, c, 10*time.Second)
			if r.Outcome != OutcomeAnswered || r.HangupBy != PartyRemote {
				t.Errorf("result = %s by %q (%s), want answered, hung up by the carrier", r.Outcome, r.HangupBy, r.Reason)
			}
			if n := c.Media().PacketsReceived(); n < 10 {
				t.Errorf("%d RTP packets received at the advertised media address, want the carrier's stream", n)
			}
			sipp.Wait(t, 10*time.Second)
		})
	}
}

// TestAddressConfig: external addresses and per-trunk keepalives read from
// JSON as documented, and bad ones are refused with the field's name.
func TestAddressConfig(t *testing.T) {
	var cfg Config
	in := `{"listen_addr":"0.0.0.0:5060","external_addr":"203.0.113.7:5080","rtp_external_addr":"203.0.113.8",
		"trunks":[{"name":"a","address":"192.0.2.10","keepalive_interval":"off"},
		          {"name":"b","address":"192.0.2.11","external_addr":"[2001:db8::1]","keepalive_interval":"2s"},
		          {"name":"c","address":"192.0.2.12","external_addr":"sip.example.org","rtp_external_addr":"198.51.100.1"},
		          {"name":"d","address":"192.0.2.13"}]}`
	if err := json.Unmarshal([]byte(in), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	if k := cfg.Trunks[0].KeepaliveInterval; k == nil || *k != KeepaliveOff {
		t.Errorf("trunk a keepalive_interval = %v, want off", k)
	}
	if k := cfg.Trunks[1].KeepaliveInterval; k == nil || Duration(*k).Std() != 2*time.Second {
		t.Errorf("trunk b keepalive_interval = %v, want 2s", k)
	}
	if cfg.Trunks[3].KeepaliveInterval != nil {
		t.Errorf("trunk d keepalive_interval = %v, want the default", *cfg.Trunks[3].KeepaliveInterval)
	}
	out, err := json.Marshal(cfg.Trunks[0])
	if err != nil || !strings.Contains(string(out), `"keepalive_interval":"off"`) {
		t.Errorf("trunk a written back as %s (%v)", out, err)
	}

	trunk := func(mod func(*TrunkConfig)) []TrunkConfig {
		tc := TrunkConfig{Name: "a", Address: "192.0.2.10:5060"}
		if mod != nil {
			mod(&tc)
		}
		return []TrunkConfig{tc}
	}
	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"external port", Config{ExternalAddr: "203.0.113.7:99999", Trunks: trunk(nil)}, "external_addr"},
		{"external garbage", Config{ExternalAddr: "203.0.113.7:x", Trunks: trunk(nil)}, "external_addr"},
		{"external name without media address", Config{ExternalAddr: "sip.example.org", Trunks: trunk(nil)}, "rtp_external_addr"},
		{"media address a name", Config{RTPExternalAddr: "media.example.org", Trunks: trunk(nil)}, "rtp_external_addr"},
		{"media address any", Config{RTPExternalAddr: "0.0.0.0", Trunks: trunk(nil)}, "rtp_external_addr"},
		{"trunk external", Config{Trunks: trunk(func(tc *TrunkConfig) { tc.ExternalAddr = "[::1" })}, `trunk "a": external_addr`},
		{"trunk external name, global media address is not its", Config{RTPExternalAddr: "203.0.113.8",
			Trunks: trunk(func(tc *TrunkConfig) { tc.ExternalAddr = "sip.example.org" })}, `trunk "a": external_addr`},
		{"trunk negative keepalive", Config{Trunks: trunk(func(tc *TrunkConfig) { k := Keepalive(-1); tc.KeepaliveInterval = &k })}, "keepalive_interval"},
		{"connection reuse on udp", Config{Trunks: trunk(func(tc *TrunkConfig) { off := false; tc.ConnectionReuse = &off })}, `trunk "a": connection_reuse: only for transport tcp or tls`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			c.applyDefaults()
			err := c.validate()
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %v, want one naming %s", err, tt.field)
			}
		})
	}
	var k Keepalive
	if err := json.Unmarshal([]byte(`"never"`), &k); err == nil || !strings.Contains(err.Error(), "keepalive_interval") {
		t.Errorf("keepalive_interval \"never\": %v, want an error naming the field", err)
	}
}

// TestTrunkKeepaliveOff: a trunk whose keepalive_interval is off sends its
// carrier no OPTIONS while it is up, beside a trunk whose own interval makes
// it send them often (both carriers answer OPTIONS, so neither is suspected).
func TestTrunkKeepaliveOff(t *testing.T) {
	t.Parallel()
	quiet := newUDPRecorder(t, sipptest.Start(t, "options.xml", sipptest.Options{Calls: 100}).Addr)
	chatty := newUDPRecorder(t, sipptest.Start(t, "options.xml", sipptest.Options{Calls: 100}).Addr)
	q, c := udpTrunk("quiet", quiet.addr(), 0), udpTrunk("chatty", chatty.addr(), 1)
	q.KeepaliveInterval, c.KeepaliveInterval = KeepaliveEvery(0), KeepaliveEvery(100*time.Millisecond)
	cfg := testConfig(q, c)
	cfg.KeepaliveInterval = Duration(50 * time.Millisecond) // the default the quiet trunk turns off
	o := newTestOriginator(t, cfg)
	deadline := time.Now().Add(10 * time.Second)
	for chatty.requests("OPTIONS") < 5 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := chatty.requests("OPTIONS"); n < 5 {
		t.Fatalf("the trunk with keepalives sent %d OPTIONS in 10 s, want them every 100ms", n)
	}
	if n := quiet.requests("OPTIONS"); n != 0 {
		t.Errorf("the trunk with keepalive_interval off sent %d OPTIONS", n)
	}
	for _, s := range o.Trunks() {
		if s.State != CircuitClosed {
			t.Errorf("trunk %s is %s, want closed", s.Name, s.State)
		}
	}
}
