package sip

import (
	"context"
	"log/slog"
	"net"
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
	o, sipp, aliasPort := offeredConnection(t, nil)
	events, onEvent := eventChan()
	c, err := o.Dial(context.Background(), DialRequest{To: "+34600000004", OnEvent: onEvent})
	if err != nil {
		t.Fatal(err)
	}
	waitAnswered(t, c, events)
	_, ourPort, _ := net.SplitHostPort(o.TCPAddr().String())
	if conns := establishedTCP(t, sipp.Port); len(conns) != 1 || !strings.Contains(conns[0], ":"+ourPort) {
		t.Errorf("TCP connections of the carrier's port %d during the call: %q, want one, to our listener :%s", sipp.Port, conns, ourPort)
	}
	if conns := connectionsAt(t, aliasPort); len(conns) != 0 {
		t.Errorf("TCP connections to the alias port %d: %q, want none", aliasPort, conns)
	}
	r := waitResult(t, c, 10*time.Second)
	if r.Outcome != OutcomeAnswered || r.HangupBy != PartyRemote || r.Reason != "remote hangup" {
		t.Errorf("result %s %q %q, want answered, hung up by the carrier", r.Outcome, r.HangupBy, r.Reason)
	}
	sipp.Wait(t, 15*time.Second)

	// The carrier's connection is gone with its sipp; now the carrier listens
	// at the port. The next call dials it instead of writing to the dead
	// connection.
	listening := sipptest.Start(t, "answer.xml", sipptest.Options{Transport: "t1", Port: aliasPort})
	c = answeredCall(t, o, "+34600000005")
	if err := c.Hangup(context.Background()); err != nil {
		t.Fatal(err)
	}
	listening.Wait(t, 15*time.Second)
}

// TestConnectionReuseOff: a trunk with connection_reuse false declines the
// carrier's offer (TestCarrierConnectionReused's scene): its INVITE goes to
// the port the carrier named, where nothing listens, and fails there.
func TestConnectionReuseOff(t *testing.T) {
	t.Parallel()
	off := false
	o, _, aliasPort := offeredConnection(t, &off)
	c, err := o.Dial(context.Background(), DialRequest{To: "+34600000004"})
	if err != nil {
		t.Fatal(err)
	}
	r := waitResult(t, c, 10*time.Second)
	if r.Outcome != OutcomeTrunkFault || !strings.Contains(r.Reason, "127.0.0.1:"+strconv.Itoa(aliasPort)) || !strings.Contains(r.Reason, "refused") {
		t.Errorf("result %s %q, want a trunk fault: connection to port %d refused", r.Outcome, r.Reason, aliasPort)
	}
}

// offeredConnection is the scene of the reuse tests: an originator with a TCP
// trunk to 127.0.0.1 at a port where nothing listens (connection_reuse as
// reuse says), and sipp as its carrier (alias-offer.xml, its calls played by
// alias-answer.xml), connected to our listener and offering the connection
// for requests to that port. It returns once the originator took the offer,
// or with reuse off, declined it.
func offeredConnection(t *testing.T, reuse *bool) (o *Originator, sipp *sipptest.Proc, aliasPort int) {
	t.Helper()
	aliasPort = sipptest.FreePort(t)
	tc := TrunkConfig{Name: "carrier", Address: "127.0.0.1:" + strconv.Itoa(aliasPort), Transport: TransportTCP,
		CallerID: "+34910000001", KeepaliveInterval: keepaliveOff(), ConnectionReuse: reuse}
	cfg := testConfig(tc)
	cfg.RingTimeout = Duration(5 * time.Second)
	logs := &testenv.Output{}
	o, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close() })
	sipp = sipptest.Start(t, "alias-offer.xml", sipptest.Options{Transport: "t1", OutOfCall: "alias-answer.xml",
		Vars: map[string]string{"alias_port": strconv.Itoa(aliasPort)}, Extra: []string{o.TCPAddr().String()}})
	want := "sip connection from carrier reused"
	if reuse != nil && !*reuse {
		want = "sip connection offered for reuse by no trunk's carrier"
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			// On without the offer taken: the calls show what follows.
			t.Errorf("the originator did not log %q within 10s", want)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return o, sipp, aliasPort
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
