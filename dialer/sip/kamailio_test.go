package sip

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/internal/baresiptest"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/internal/testenv"
)

// kamailio is Kamailio running testdata/kamailio.cfg in the foreground.
type kamailio struct {
	addr string
	out  *testenv.Output
}

// kamailioTCP is how Kamailio keeps TCP connections: for lifetime after
// their last message, and with acceptAliases, tcp_accept_aliases (RFC 5923).
type kamailioTCP struct {
	lifetime      time.Duration
	acceptAliases bool
}

// startKamailio runs Kamailio as the carrier's record-routing proxy with
// digest auth in front of carrier (host:port), on a free port of 127.0.0.1
// (UDP and TCP). It is stopped, with the processes it forked, at cleanup.
func startKamailio(t *testing.T, carrier, user, password string, tcp kamailioTCP) *kamailio {
	t.Helper()
	bin := testenv.RequireTool(t, "kamailio", "kamailio")
	tmpl, err := os.ReadFile(filepath.Join("testdata", "kamailio.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	port := sipptest.FreePort(t)
	cfg := strings.NewReplacer("{{port}}", strconv.Itoa(port), "{{carrier}}", carrier, "{{user}}", user,
		"{{password}}", password, "{{tcp_lifetime}}", strconv.Itoa(int(tcp.lifetime/time.Second)),
		"{{accept_aliases}}", map[bool]string{false: "no", true: "yes"}[tcp.acceptAliases]).Replace(string(tmpl))
	dir := t.TempDir()
	file := filepath.Join(dir, "kamailio.cfg")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	k := &kamailio{addr: "127.0.0.1:" + strconv.Itoa(port), out: &testenv.Output{}}
	// -DD -E: in the foreground, logging to stderr; -Y and -P keep its
	// runtime files in the test's directory; little memory.
	cmd := exec.Command(bin, "-DD", "-E", "-f", file, "-Y", dir, "-P", filepath.Join(dir, "kamailio.pid"), "-m", "32", "-M", "8")
	cmd.Stdout, cmd.Stderr = k.out, k.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("kamailio:\n%s", k.out.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(k.out.String(), "turbina-test: kamailio ready") {
		select {
		case <-done:
			t.Fatal("kamailio exited (its output follows)")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("kamailio not ready within 10s (its output follows)")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return k
}

// logged counts the lines Kamailio logged that match re.
// logged waits until Kamailio has logged re n times (its log reaches us after
// the call it tells of may already be answered) and returns the count, which
// is short of n only when 5 s passed first.
func (k *kamailio) logged(re string, n int) int {
	pattern := regexp.MustCompile(re)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := len(pattern.FindAllString(k.out.String(), -1))
		if got >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var byeLine = regexp.MustCompile(`turbina-test: in-dialog BYE from 127\.0\.0\.1:(\d+) over (\w+)`)

// waitBye waits until Kamailio has routed n BYEs by their Route headers from
// the carrier (fromCarrier, over UDP from carrierPort) or from Turbina (from
// any other port, over proto).
func (k *kamailio) waitBye(t *testing.T, fromCarrier bool, carrierPort, proto string, n int) {
	t.Helper()
	count := func() int {
		got := 0
		for _, m := range byeLine.FindAllStringSubmatch(k.out.String(), -1) {
			carrier := m[1] == carrierPort && m[2] == "udp"
			if carrier == fromCarrier && (carrier || m[2] == proto) {
				got++
			}
		}
		return got
	}
	deadline := time.Now().Add(10 * time.Second)
	for count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("kamailio routed %d BYEs from the carrier=%v, want %d", count(), fromCarrier, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestThroughKamailio: Kamailio 5.6 is the carrier's proxy, in front of
// baresip as the carrier. Turbina's INVITE is challenged (407, qop=auth) and
// sent again with digest, Kamailio Record-Routes it to baresip, which answers;
// then the BYE goes through Kamailio in each direction: ours, sent to the
// route set (Kamailio logs it as routed by loose_route; a BYE straight to
// the carrier would not be logged), and the carrier's, which Kamailio routes
// to our Contact. Over TCP Kamailio closes idle connections after a second,
// so the carrier's BYE reaches us on a new connection to our listener.
func TestThroughKamailio(t *testing.T) {
	for _, transport := range []string{TransportUDP, TransportTCP} {
		t.Run(transport, func(t *testing.T) {
			carrier := baresiptest.StartCarrier(t, baresiptest.CarrierOptions{User: "34600000001"})
			proxy := startKamailio(t, carrier.SIPAddr(), "turbina", "s3cret", kamailioTCP{lifetime: time.Second})
			tc := TrunkConfig{Name: "carrier", Address: proxy.addr, Transport: transport, CallerID: "+34910000001",
				Username: "turbina", Password: "s3cret"}
			o := baresipOriginator(t, carrier, testConfig(tc))
			proto := strings.ToLower(transport)
			_, carrierPort, _ := net.SplitHostPort(carrier.SIPAddr())
			for i, by := range []Party{PartyLocal, PartyRemote} {
				c := answeredCall(t, o, "34600000001")
				if n := proxy.logged(`turbina-test: challenge INVITE from 127\.0\.0\.1:\d+ over `+proto, i+1); n != i+1 {
					t.Errorf("call %d: kamailio challenged %d INVITEs over %s, want %d", i+1, n, proto, i+1)
				}
				if n := proxy.logged(`turbina-test: authenticated INVITE from 127\.0\.0\.1:\d+ over `+proto+` as turbina`, i+1); n != i+1 {
					t.Errorf("call %d: kamailio let %d INVITEs through over %s, want %d", i+1, n, proto, i+1)
				}
				carrier.WaitUntil(t, 5*time.Second, "call established", func() bool {
					return strings.Count(carrier.Output(), "Call established") == i+1
				})
				if by == PartyLocal {
					if err := c.Hangup(context.Background()); err != nil {
						t.Fatal(err)
					}
					proxy.waitBye(t, false, carrierPort, proto, 1)
				} else {
					if transport == TransportTCP {
						// Past Kamailio's connection lifetime: the connection
						// of our INVITE is gone.
						time.Sleep(2 * time.Second)
					}
					carrier.Command(t, "hangup")
					proxy.waitBye(t, true, carrierPort, proto, 1)
				}
				r := waitResult(t, c, 15*time.Second)
				if r.Outcome != OutcomeAnswered || r.HangupBy != by {
					t.Errorf("call %d: result %s by %q (%s), want answered, hung up by %s", i+1, r.Outcome, r.HangupBy, r.Reason, by)
				}
			}
		})
	}
}

// TestKamailioTakesOurConnection: Kamailio with tcp_accept_aliases keeps the
// connection of our INVITE (a minute's lifetime) and, our Via offering it with
// alias, routes the carrier's BYE to our Contact on it: no connection is
// opened to our listener. With the trunk's connection_reuse false our Via
// says nothing, and Kamailio opens one to our Contact for the BYE.
func TestKamailioTakesOurConnection(t *testing.T) {
	for _, reuse := range []bool{true, false} {
		t.Run("connection_reuse "+strconv.FormatBool(reuse), func(t *testing.T) {
			carrier := baresiptest.StartCarrier(t, baresiptest.CarrierOptions{User: "34600000001"})
			proxy := startKamailio(t, carrier.SIPAddr(), "turbina", "s3cret", kamailioTCP{lifetime: time.Minute, acceptAliases: true})
			tc := TrunkConfig{Name: "carrier", Address: proxy.addr, Transport: TransportTCP, CallerID: "+34910000001",
				Username: "turbina", Password: "s3cret", ConnectionReuse: &reuse}
			o := baresipOriginator(t, carrier, testConfig(tc))
			_, carrierPort, _ := net.SplitHostPort(carrier.SIPAddr())
			c := answeredCall(t, o, "34600000001")
			carrier.WaitUntil(t, 5*time.Second, "call established", func() bool { return strings.Contains(carrier.Output(), "Call established") })
			carrier.Command(t, "hangup")
			proxy.waitBye(t, true, carrierPort, "tcp", 1)
			if r := waitResult(t, c, 15*time.Second); r.Outcome != OutcomeAnswered || r.HangupBy != PartyRemote {
				t.Errorf("result %s by %q (%s), want answered, hung up by the carrier", r.Outcome, r.HangupBy, r.Reason)
			}
			_, port, _ := net.SplitHostPort(o.TCPAddr().String())
			listenerPort, _ := strconv.Atoi(port)
			// Not TIME-WAIT: an earlier connection of another test may have
			// left one on this port number, and ours stays open.
			accepted := ss(t, "( sport = :"+port+" )", "state", "connected", "exclude", "time-wait")
			if want := map[bool]int{true: 0, false: 1}[reuse]; len(accepted) != want {
				t.Errorf("connections Kamailio opened to our listener :%d: %q, want %d", listenerPort, accepted, want)
			}
		})
	}
}
