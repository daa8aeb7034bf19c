package sip

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/internal/testenv"
)

// TestCarrierConnectionReused: sipp as a carrier over TCP (one socket, -t t1)
// opens a connection to Turbina's listener and offers it with alias in its
// Via (RFC 5923), naming a port where nothing listens, as a carrier behind a
// firewall does. Turbina's INVITE to the trunk at that port then goes on the
// carrier's connection, the call is answered and the carrier's BYE comes back
// on it: one TCP connection, which ss shows while the call is up, carried
// both ways. Without reuse the INVITE would be refused at the port. Once the
// carrier's connection has closed, the next call opens one of its own.
func TestCarrierConnectionReused(t *testing.T) {
	t.Parallel()
	sc := offerConnection(t, offer{transport: TransportTCP})
	callOnOffered(t, sc)
	sc.sipp.Wait(t, 15*time.Second)

	// The carrier's connection is gone with its sipp; now the carrier listens
	// at the port. The next call dials it instead of writing to the dead
	// connection.
	listening := sipptest.Start(t, "answer.xml", sipptest.Options{Transport: "t1", Port: sc.aliasPort})
	c := answeredCall(t, sc.o, "+34600000005")
	if err := c.Hangup(context.Background()); err != nil {
		t.Fatal(err)
	}
	listening.Wait(t, 15*time.Second)
}

// TestCarrierTLSConnectionReused: the same carrier connects over TLS (sipp
// behind a relay that speaks TLS to our listener) and offers its connection.
// It carries the call both ways only when the certificate the carrier
// presented is valid for the trunk's host by the trunk's CA (RFC 5923 section
// 6); without a certificate, or with one for another name, the offer is
// declined and the INVITE is refused at the carrier's port.
func TestCarrierTLSConnectionReused(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	cert, err := tls.LoadX509KeyPair(pki.Carrier, pki.Carrier)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		cert       *tls.Certificate
		serverName string // the trunk's tls_server_name
		reused     bool
	}{
		{name: "certificate valid for the trunk", cert: &cert, reused: true},
		{name: "no certificate", reused: false},
		{name: "certificate for another name", cert: &cert, serverName: "other.test", reused: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sc := offerConnection(t, offer{transport: TransportTLS, pki: pki, cert: tt.cert, serverName: tt.serverName, declined: !tt.reused})
			if tt.reused {
				callOnOffered(t, sc)
				sc.sipp.Wait(t, 15*time.Second)
				return
			}
			callRefused(t, sc)
		})
	}
}

// TestConnectionReuseOff: a trunk with connection_reuse false declines the
// carrier's offer (TestCarrierConnectionReused's scene): its INVITE goes to
// the port the carrier named, where nothing listens, and fails there.
func TestConnectionReuseOff(t *testing.T) {
	t.Parallel()
	off := false
	callRefused(t, offerConnection(t, offer{transport: TransportTCP, reuse: &off, declined: true}))
}

// offer is how the carrier of the reuse tests offers its connection.
type offer struct {
	transport string
	// reuse is the trunk's connection_reuse.
	reuse *bool
	// declined: the scene waits for the originator to decline the offer,
	// not to take it.
	declined bool
	// pki, cert and serverName are for tls: the test's CA, the carrier's
	// certificate (nil: none) and the trunk's tls_server_name.
	pki        testPKI
	cert       *tls.Certificate
	serverName string
}

// offerScene is a carrier that offered its connection to an originator.
type offerScene struct {
	o         *Originator
	sipp      *sipptest.Proc
	aliasPort int // the carrier's Via port, where nothing listens
	ourPort   int // our listener the carrier connected to
}

// offerConnection sets the scene of the reuse tests: an originator with a
// trunk to 127.0.0.1 at a port where nothing listens, and sipp as its carrier
// (alias-offer.xml, its calls played by alias-answer.xml), connected to our
// listener, directly or over TLS through tlsClientRelay, and offering the
// connection for requests to that port. It returns once the originator took
// the offer, or declined it.
func offerConnection(t *testing.T, of offer) offerScene {
	t.Helper()
	aliasPort := sipptest.FreePort(t)
	tc := TrunkConfig{Name: "carrier", Address: "127.0.0.1:" + strconv.Itoa(aliasPort), Transport: of.transport,
		CallerID: "+34910000001", KeepaliveInterval: keepaliveOff(), ConnectionReuse: of.reuse}
	cfg := testConfig()
	if of.transport == TransportTLS {
		tc.TLSRootCAFile, tc.TLSServerName = of.pki.CAFile, of.serverName
		cfg.TLSCertFile, cfg.TLSKeyFile = of.pki.OursCert, of.pki.OursKey
	}
	cfg.Trunks = []TrunkConfig{tc}
	cfg.RingTimeout = Duration(5 * time.Second)
	logs := &testenv.Output{}
	o, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = o.Close()
		if t.Failed() {
			t.Logf("originator:\n%s", sipptest.Tail(logs.String(), 6000))
		}
	})
	sc := offerScene{o: o, aliasPort: aliasPort}
	var target, via string
	if of.transport == TransportTLS {
		pem, err := os.ReadFile(of.pki.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(pem)
		target, via = tlsClientRelay(t, o.TLSAddr().String(), of.cert, roots), "TLS"
	} else {
		target, via = o.TCPAddr().String(), "TCP"
	}
	sc.ourPort = o.streamPort(of.transport)
	sc.sipp = sipptest.Start(t, "alias-offer.xml", sipptest.Options{Transport: "t1", OutOfCall: "alias-answer.xml",
		ContactTransport: of.transport, Extra: []string{target},
		Vars: map[string]string{"alias_port": strconv.Itoa(aliasPort), "via_transport": via}})
	want := "sip connection from carrier reused"
	if of.declined {
		want = "sip connection offered for reuse by no trunk's carrier"
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			// Without the offer taken, the calls show what follows.
			t.Errorf("the originator did not log %q within 10s", want)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return sc
}

// callOnOffered places a call on the offered connection: answered, the only
// connection at our listener and none to the carrier's port while it is up,
// then hung up by the carrier.
func callOnOffered(t *testing.T, sc offerScene) {
	t.Helper()
	c := answeredCall(t, sc.o, "+34600000004")
	if conns := establishedTCP(t, sc.ourPort); len(conns) != 1 {
		t.Errorf("connections at our listener :%d during the call: %q, want the carrier's one", sc.ourPort, conns)
	}
	if conns := connectionsAt(t, sc.aliasPort); len(conns) != 0 {
		t.Errorf("TCP connections to the alias port %d: %q, want none", sc.aliasPort, conns)
	}
	r := waitResult(t, c, 10*time.Second)
	if r.Outcome != OutcomeAnswered || r.HangupBy != PartyRemote || r.Reason != "remote hangup" {
		t.Errorf("result %s %q %q, want answered, hung up by the carrier", r.Outcome, r.HangupBy, r.Reason)
	}
}

// callRefused places a call that goes to the carrier's port, not on its
// connection: refused there, a trunk fault.
func callRefused(t *testing.T, sc offerScene) {
	t.Helper()
	c, err := sc.o.Dial(context.Background(), DialRequest{To: "+34600000004"})
	if err != nil {
		t.Fatal(err)
	}
	r := waitResult(t, c, 10*time.Second)
	if r.Outcome != OutcomeTrunkFault || !strings.Contains(r.Reason, "127.0.0.1:"+strconv.Itoa(sc.aliasPort)) || !strings.Contains(r.Reason, "refused") {
		t.Errorf("result %s %q, want a trunk fault: connection to port %d refused", r.Outcome, r.Reason, sc.aliasPort)
	}
}

// keepaliveOff is a trunk's keepalive_interval "off".
func keepaliveOff() *Keepalive {
	k := Keepalive(0)
	return &k
}

// establishedTCP lists the ends of established TCP connections whose local
// port is port, as ss prints them.
func establishedTCP(t *testing.T, port int) []string {
	t.Helper()
	return ss(t, "( sport = :"+strconv.Itoa(port)+" )")
}

// connectionsAt lists the TCP connections in any state with port at either end.
func connectionsAt(t *testing.T, port int) []string {
	t.Helper()
	return ss(t, "( sport = :"+strconv.Itoa(port)+" or dport = :"+strconv.Itoa(port)+" )", "state", "all")
}

// ss lists the TCP sockets matching filter, one line each.
func ss(t *testing.T, filter string, state ...string) []string {
	t.Helper()
	if len(state) == 0 {
		state = []string{"state", "established"}
	}
	args := append([]string{"-Htn"}, state...)
	out, err := exec.Command("ss", append(args, filter)...).Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	var conns []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			conns = append(conns, l)
		}
	}
	return conns
}
