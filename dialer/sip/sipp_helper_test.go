package sip

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/internal/testenv"
)

// sippProc is one sipp process playing a carrier (UAS).
type sippProc struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error
	Port int
	Addr string
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type sippOpts struct {
	transport string // sipp -t value, default u1
	calls     int    // -m, default 1
	port      int    // 0: a free port
	// contact is the host:port and transport sipp puts in its Contact,
	// when something (a TLS relay) stands in front of it.
	contactPort      int
	contactTransport string
	extra            []string
}

// freePort returns a port free for both UDP and TCP on 127.0.0.1.
func freePort(t testing.TB) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// portBusy reports whether something is bound to port (so sipp is up).
func portBusy(port int, tcp bool) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if tcp {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return true
		}
		l.Close()
		return false
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return true
	}
	pc.Close()
	return false
}

// startSipp runs sipp with a scenario from testdata/sipp as a UAS on
// 127.0.0.1 and waits until it listens. It is killed at cleanup.
func startSipp(t testing.TB, scenario string, o sippOpts) *sippProc {
	t.Helper()
	bin := testenv.RequireTool(t, "sipp", "sip-tester")
	if o.transport == "" {
		o.transport = "u1"
	}
	if o.calls == 0 {
		o.calls = 1
	}
	if o.port == 0 {
		o.port = freePort(t)
	}
	sf, err := filepath.Abs(filepath.Join("testdata", "sipp", scenario))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeToneWAV(t, filepath.Join(dir, "tone.wav"))
	args := []string{
		"-sf", sf, "-i", "127.0.0.1", "-p", strconv.Itoa(o.port), "-t", o.transport,
		"-m", strconv.Itoa(o.calls), "-timeout", "40s", "-nostdin",
		"-mi", "127.0.0.1", "-mp", strconv.Itoa(freePort(t)),
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
	}
	if o.contactPort == 0 {
		o.contactPort = o.port
	}
	if o.contactTransport == "" {
		o.contactTransport = map[byte]string{'u': "udp", 't': "tcp"}[o.transport[0]]
	}
	args = append(args, "-key", "contact_port", strconv.Itoa(o.contactPort), "-key", "contact_transport", o.contactTransport)
	args = append(args, o.extra...)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TERM=dumb")
	p := &sippProc{cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{}), Port: o.port,
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(o.port))}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start sipp: %v", err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	deadline := time.Now().Add(5 * time.Second)
	for !portBusy(o.port, o.transport[0] == 't') {
		select {
		case <-p.done:
			t.Fatalf("sipp %s exited at start: %v\n%s", scenario, p.err, p.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sipp %s did not bind port %d", scenario, o.port)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p
}

// wait waits for sipp to finish its calls and fails the test unless every
// call followed the scenario (exit status 0).
func (p *sippProc) wait(t testing.TB) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("sipp did not finish\n%s", p.out)
	}
	if p.err != nil {
		errs, _ := os.ReadFile(filepath.Join(p.cmd.Dir, "errors.log"))
		t.Fatalf("sipp failed: %v\n%s\n%s", p.err, tail(p.out.String(), 3000), errs)
	}
}

// stop kills sipp and waits for it.
func (p *sippProc) stop() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// writeToneWAV writes one second of a 400 Hz µ-law tone, 8 kHz mono, for
// sipp's rtp_stream.
func writeToneWAV(t testing.TB, path string) {
	t.Helper()
	const n = 8000
	data := make([]byte, n)
	for i := range data {
		// A square-ish wave is enough: sipp streams bytes, we count packets.
		if (i/10)%2 == 0 {
			data[i] = 0x20
		} else {
			data[i] = 0xA0
		}
	}
	var b bytes.Buffer
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, uint32(4+26+8+n))
	b.WriteString("WAVEfmt ")
	_ = binary.Write(&b, binary.LittleEndian, uint32(18))
	_ = binary.Write(&b, binary.LittleEndian, uint16(7)) // WAVE_FORMAT_MULAW
	_ = binary.Write(&b, binary.LittleEndian, uint16(1))
	_ = binary.Write(&b, binary.LittleEndian, uint32(8000))
	_ = binary.Write(&b, binary.LittleEndian, uint32(8000))
	_ = binary.Write(&b, binary.LittleEndian, uint16(1))
	_ = binary.Write(&b, binary.LittleEndian, uint16(8))
	_ = binary.Write(&b, binary.LittleEndian, uint16(0))
	b.WriteString("data")
	_ = binary.Write(&b, binary.LittleEndian, uint32(n))
	b.Write(data)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tlsRelay terminates TLS on a free port and relays each connection to a
// TCP address. The Debian sipp is built without TLS, so TLS tests put this
// in front of sipp -t t1: our side still speaks real TLS to the "carrier".
func tlsRelay(t testing.TB, backend string) (addr string, caFile string) {
	t.Helper()
	dir := t.TempDir()
	cert, caPEM := selfSignedCert(t)
	caFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, err := net.Dial("tcp", backend)
				if err != nil {
					return
				}
				defer b.Close()
				go func() { _, _ = io.Copy(b, c); b.Close() }()
				_, _ = io.Copy(c, b)
			}()
		}
	}()
	return l.Addr().String(), caFile
}

func selfSignedCert(t testing.TB) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "carrier.test"},
		DNSNames:              []string{"carrier.test"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert, certPEM
}

// testConfig is a Config with short timers for tests.
func testConfig(trunks ...TrunkConfig) Config {
	return Config{
		Trunks:        trunks,
		RingTimeout:   Duration(time.Second),
		InviteTimeout: Duration(700 * time.Millisecond),
		FaultsToOpen:  2,
		FaultWindow:   Duration(10 * time.Second),
		ProbeInterval: Duration(200 * time.Millisecond),
	}
}

func newTestOriginator(t testing.TB, cfg Config) *Originator {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: testLogLevel()}))
	o, err := New(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close() })
	return o
}

func testLogLevel() slog.Level {
	if os.Getenv("SIP_TEST_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// waitEvent waits for an event of kind on ch.
func waitEvent(t testing.TB, ch <-chan Event, kind EventKind, within time.Duration) Event {
	t.Helper()
	timer := time.After(within)
	for {
		select {
		case ev := <-ch:
			if ev.Kind == kind {
				return ev
			}
			if ev.Kind == EventEnded {
				t.Fatalf("call ended while waiting for %s", kind)
			}
		case <-timer:
			t.Fatalf("no %s event within %s", kind, within)
		}
	}
}

// eventLog collects a call's events: on a channel to wait on, and in a
// list to check afterwards.
type eventLog struct {
	ch   chan Event
	mu   sync.Mutex
	seen []EventKind
}

func (l *eventLog) on(ev Event) {
	l.mu.Lock()
	l.seen = append(l.seen, ev.Kind)
	l.mu.Unlock()
	select {
	case l.ch <- ev:
	default:
	}
}

func (l *eventLog) kinds() []EventKind {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]EventKind(nil), l.seen...)
}

// waitAnswered waits for the call's answered event, reporting its result if it ends instead.
func waitAnswered(t testing.TB, c *Call, ch <-chan Event) {
	t.Helper()
	timer := time.After(5 * time.Second)
	for {
		select {
		case ev := <-ch:
			switch ev.Kind {
			case EventAnswered:
				return
			case EventEnded:
				r := c.Result()
				t.Fatalf("call ended unanswered: %s %d %s", r.Outcome, r.Status, r.Reason)
			}
		case <-timer:
			t.Fatalf("not answered within 5s: %+v", c.Result())
		}
	}
}

func eventChan() (chan Event, func(Event)) {
	l := newEventLog()
	return l.ch, l.on
}

func newEventLog() *eventLog { return &eventLog{ch: make(chan Event, 64)} }

func waitResult(t testing.TB, c *Call, within time.Duration) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	r, err := c.Wait(ctx)
	if err != nil {
		t.Fatalf("call did not end: %v (so far %+v)", err, r)
	}
	return r
}
