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
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

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
	relay(t, l, func() (net.Conn, error) { return net.Dial("tcp", backend) })
	return l.Addr().String(), caFile
}

// tlsClientRelay listens for TCP on a free port and relays each connection
// over TLS to target, verified by roots, presenting cert when not nil: sipp
// -t t1 behind it is a carrier that connects to us over TLS.
func tlsClientRelay(t testing.TB, target string, cert *tls.Certificate, roots *x509.CertPool) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	relay(t, l, func() (net.Conn, error) { return tls.Dial("tcp", target, conf) })
	return l.Addr().String()
}

// relay copies each connection l accepts to one dial opens, both ways,
// until either closes; l is closed at the test's cleanup.
func relay(t testing.TB, l net.Listener, dial func() (net.Conn, error)) {
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, err := dial()
				if err != nil {
					return
				}
				defer b.Close()
				go func() { _, _ = io.Copy(b, c); b.Close() }()
				_, _ = io.Copy(c, b)
			}()
		}
	}()
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

// testConfig is a Config with short timers for tests. Keepalives are rare and
// one answered probe closes a trunk: options.xml counts every OPTIONS as one of
// its calls (-m), so these tests script each probe. The drills (drill_test.go)
// keep the defaults, against scenarios that answer OPTIONS beside their calls.
func testConfig(trunks ...TrunkConfig) Config {
	return Config{
		Trunks:            trunks,
		RingTimeout:       Duration(time.Second),
		InviteTimeout:     Duration(700 * time.Millisecond),
		FaultsToOpen:      2,
		FaultWindow:       Duration(10 * time.Second),
		ProbeInterval:     Duration(200 * time.Millisecond),
		RecoverAfter:      1,
		KeepaliveInterval: Duration(time.Hour),
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

// answeredCall dials to and waits until the call is answered.
func answeredCall(t testing.TB, o *Originator, to string) *Call {
	t.Helper()
	events, onEvent := eventChan()
	c, err := o.Dial(context.Background(), DialRequest{To: to, OnEvent: onEvent})
	if err != nil {
		t.Fatal(err)
	}
	waitAnswered(t, c, events)
	return c
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
