package sip

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/turbina-dialer/turbina/internal/testenv"
	"github.com/turbina-dialer/turbina/storage"
)

// phoneAccount is one phone's SIP account in the test credentials.
type phoneAccount struct {
	password string
	agentID  int64
}

// testCreds are phone accounts by username, kept as HA1 as storage keeps them
// (for whatever realm the registrar asks); a username "broken" fails the lookup.
func testCreds(accounts map[string]phoneAccount) Credentials {
	return CredentialsFunc(func(_ context.Context, username, realm string) (string, int64, bool, error) {
		if username == "broken" {
			return "", 0, false, errors.New("database is down")
		}
		a, ok := accounts[username]
		if !ok {
			return "", 0, false, nil
		}
		return storage.PhoneHA1(username, realm, a.password), a.agentID, true, nil
	})
}

// testClock is a settable clock for a registrar under test.
type testClock struct {
	mu   sync.Mutex
	skew time.Duration
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.skew)
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.skew += d
	c.mu.Unlock()
}

// newTestRegistrar starts a registrar on a free loopback port with the agents
// agent1/secret1 (agent 1) and agent2/secret2 (agent 2), closed at cleanup.
func newTestRegistrar(t *testing.T, cfg RegistrarConfig) (*Registrar, *testClock) {
	t.Helper()
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	clock := &testClock{}
	log := slog.New(slog.NewTextHandler(testenv.LogWriter(t), &slog.HandlerOptions{Level: slog.LevelInfo}))
	r, err := newRegistrar(context.Background(), cfg, testCreds(map[string]phoneAccount{
		"agent1": {"secret1", 1},
		"agent2": {"secret2", 2},
	}), log, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, clock
}

// rawPhone speaks SIP to the registrar from one socket, byte by byte, so tests
// control every header (and can send garbage).
type rawPhone struct {
	t      testing.TB
	conn   net.Conn
	rd     *bufio.Reader // TCP
	tcp    bool
	user   string
	pass   string
	callID string
	cseq   int
	target string // registrar host:port
}

func newRawPhone(t testing.TB, registrar net.Addr, network, user, pass string) *rawPhone {
	t.Helper()
	conn, err := net.Dial(network, registrar.String())
	if err != nil {
		t.Fatal(err)
	}
	return wrapRawPhone(t, conn, registrar, network, user, pass)
}

// newRawPhoneFrom is a UDP rawPhone on a given local port.
func newRawPhoneFrom(t testing.TB, registrar net.Addr, port int, user, pass string) *rawPhone {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}}
	conn, err := d.Dial("udp", registrar.String())
	if err != nil {
		t.Fatal(err)
	}
	return wrapRawPhone(t, conn, registrar, "udp", user, pass)
}

func wrapRawPhone(t testing.TB, conn net.Conn, registrar net.Addr, network, user, pass string) *rawPhone {
	t.Cleanup(func() { conn.Close() })
	p := &rawPhone{t: t, conn: conn, tcp: network == "tcp", user: user, pass: pass,
		callID: fmt.Sprintf("raw-%d@test", time.Now().UnixNano()), target: registrar.String()}
	if p.tcp {
		p.rd = bufio.NewReader(conn)
	}
	return p
}

// localPort is the phone's own port, used in Via and the default Contact.
func (p *rawPhone) localPort() int {
	_, port, _ := net.SplitHostPort(p.conn.LocalAddr().String())
	n, _ := strconv.Atoi(port)
	return n
}

func (p *rawPhone) transport() string {
	if p.tcp {
		return "TCP"
	}
	return "UDP"
}

// send writes raw bytes.
func (p *rawPhone) send(msg string) {
	p.t.Helper()
	if _, err := p.conn.Write([]byte(msg)); err != nil {
		p.t.Fatal(err)
	}
}

// read returns the next final response, or nil if none comes within d.
func (p *rawPhone) read(d time.Duration) *sip.Response {
	p.t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(d))
	for {
		var data []byte
		if p.tcp {
			var head bytes.Buffer
			for {
				line, err := p.rd.ReadString('\n')
				if err != nil {
					return nil
				}
				head.WriteString(line)
				if line == "\r\n" {
					break
				}
			}
			data = head.Bytes()
			m, err := sip.ParseMessage(data)
			if err != nil {
				p.t.Fatalf("parse response: %v\n%s", err, data)
			}
			if cl := m.ContentLength(); cl != nil && *cl > 0 {
				body := make([]byte, int(*cl))
				if _, err := io.ReadFull(p.rd, body); err != nil {
					return nil
				}
				data = append(data, body...)
			}
		} else {
			buf := make([]byte, 65535)
			n, err := p.conn.Read(buf)
			if err != nil {
				return nil
			}
			data = buf[:n]
		}
		m, err := sip.ParseMessage(data)
		if err != nil {
			p.t.Fatalf("parse response: %v\n%s", err, data)
		}
		res, ok := m.(*sip.Response)
		if !ok {
			continue // a request from the registrar: not for these tests
		}
		if res.IsProvisional() {
			continue
		}
		return res
	}
}

// request builds a request with the phone's dialog headers and extra lines.
func (p *rawPhone) request(method string, extra ...string) string {
	p.cseq++
	var b strings.Builder
	fmt.Fprintf(&b, "%s sip:%s SIP/2.0\r\n", method, p.target)
	fmt.Fprintf(&b, "Via: SIP/2.0/%s 127.0.0.1:%d;branch=z9hG4bK%d%d;rport\r\n", p.transport(), p.localPort(), time.Now().UnixNano(), p.cseq)
	b.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: <sip:%s@127.0.0.1>;tag=rawphone\r\n", p.user)
	fmt.Fprintf(&b, "To: <sip:%s@127.0.0.1>\r\n", p.user)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", p.callID)
	fmt.Fprintf(&b, "CSeq: %d %s\r\n", p.cseq, method)
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// do sends a request and returns its final response (failing without one).
func (p *rawPhone) do(method string, extra ...string) *sip.Response {
	p.t.Helper()
	p.send(p.request(method, extra...))
	res := p.read(3 * time.Second)
	if res == nil {
		p.t.Fatalf("%s: no response", method)
	}
	return res
}

// contact is the phone's default Contact header.
func (p *rawPhone) contact() string {
	tr := ""
	if p.tcp {
		tr = ";transport=tcp"
	}
	return fmt.Sprintf("Contact: <sip:%s@127.0.0.1:%d%s>", p.user, p.localPort(), tr)
}

// challenge parses a 401's WWW-Authenticate.
func (p *rawPhone) challenge(res *sip.Response) *digest.Challenge {
	p.t.Helper()
	h := res.GetHeader("WWW-Authenticate")
	if h == nil {
		p.t.Fatalf("%d without WWW-Authenticate", res.StatusCode)
	}
	chal, err := digest.ParseChallenge(h.Value())
	if err != nil {
		p.t.Fatal(err)
	}
	return chal
}

// authorization answers a 401 with the phone's password.
func (p *rawPhone) authorization(res *sip.Response) string {
	p.t.Helper()
	return p.authorizationFor(p.challenge(res))
}

// authorizationFor answers chal with the phone's password (icholy/digest's
// client side, independent of the registrar's own digest code).
func (p *rawPhone) authorizationFor(chal *digest.Challenge) string {
	p.t.Helper()
	cred, err := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: "sip:" + p.target, Username: p.user, Password: p.pass, Count: p.cseq + 1})
	if err != nil {
		p.t.Fatal(err)
	}
	return "Authorization: " + cred.String()
}

// register sends REGISTER with the headers given, answers the challenge, and
// returns the final response.
func (p *rawPhone) register(extra ...string) *sip.Response {
	p.t.Helper()
	res := p.do("REGISTER", extra...)
	if res.StatusCode != 401 {
		return res
	}
	return p.do("REGISTER", append(extra, p.authorization(res))...)
}

// contactExpires maps each Contact of a 200 to its expires parameter.
func contactExpires(t testing.TB, res *sip.Response) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, h := range res.GetHeaders("Contact") {
		ch := h.(*sip.ContactHeader)
		v, _ := ch.Params.Get("expires")
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("contact %s: expires %q", ch.Address.String(), v)
		}
		out[ch.Address.String()] = n
	}
	return out
}
