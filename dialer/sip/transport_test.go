package sip

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/turbina-dialer/turbina/internal/baresiptest"
	"github.com/turbina-dialer/turbina/internal/sipptest"
)

// testPKI is a CA made for one test and two certificates it signed for
// 127.0.0.1, one for each side of a TLS trunk, as PEM files.
type testPKI struct {
	CAFile string
	// OursCert and OursKey are Turbina's listener's (tls_cert_file, tls_key_file).
	OursCert, OursKey string
	// Carrier holds the carrier's certificate and key in one file (baresip's sip_certificate).
	Carrier string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "turbina test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, blk := range blocks {
			b = append(b, pem.EncodeToMemory(blk)...)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	leaf := func(serial int64, name string) (cert, key *pem.Block) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			DNSNames: []string{name}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kDER, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return &pem.Block{Type: "CERTIFICATE", Bytes: der}, &pem.Block{Type: "EC PRIVATE KEY", Bytes: kDER}
	}
	p := testPKI{CAFile: write("ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: caDER})}
	oc, ok := leaf(2, "turbina.test")
	p.OursCert, p.OursKey = write("turbina.pem", oc), write("turbina.key", ok)
	cc, ck := leaf(3, "carrier.test")
	p.Carrier = write("carrier.pem", cc, ck)
	return p
}

// TestCarrierByeOnNewConnection: baresip as the carrier answers a call over
// TCP or TLS; its end of our connection is then reset, as a carrier's idle
// timer does, and it hangs up. Its BYE can only arrive on a new connection
// to our Contact: the call ends, hung up by the carrier. With the
// connection's ephemeral port in Contact there is nothing there to connect
// to, and the call would stay up with its agent for good. Over TLS the
// carrier's BYE comes through our TLS listener (there is no TCP one), and the
// audio is SRTP (mediaenc=srtp-mand), its keys in the TLS-carried SDP.
func TestCarrierByeOnNewConnection(t *testing.T) {
	for _, transport := range []string{TransportTCP, TransportTLS} {
		t.Run(transport, func(t *testing.T) {
			pki := newTestPKI(t)
			opts := baresiptest.CarrierOptions{User: "34600000001"}
			if transport == TransportTLS {
				opts.TLSCertFile, opts.MediaEnc = pki.Carrier, "srtp-mand"
			}
			carrier := baresiptest.StartCarrier(t, opts)
			tc := TrunkConfig{Name: "carrier", Address: carrier.SIPAddr(), Transport: transport, CallerID: "+34910000001"}
			if transport == TransportTLS {
				tc.Address, tc.TLSRootCAFile, tc.SRTP = carrier.TLSAddr(), pki.CAFile, SRTPRequire
			}
			cfg := testConfig(tc)
			cfg.TLSCertFile, cfg.TLSKeyFile = pki.OursCert, pki.OursKey
			c := answeredCall(t, baresipOriginator(t, carrier, cfg), "34600000001")
			if transport == TransportTLS && c.Media().SRTP() == "" {
				t.Errorf("TLS call answered with plain RTP")
			}
			// Once baresip has our ACK: a reset would drop one it had not read.
			carrier.WaitUntil(t, 5*time.Second, "call established", func() bool { return strings.Contains(carrier.Output(), "Call established") })
			carrier.DropConnections(t)
			carrier.Command(t, "hangup")
			r := waitResult(t, c, 15*time.Second)
			if r.Outcome != OutcomeAnswered || r.HangupBy != PartyRemote || r.Reason != "remote hangup" {
				t.Errorf("result %s %q %q, want answered, hung up by the carrier", r.Outcome, r.HangupBy, r.Reason)
			}
		})
	}
}

// TestDigestURIAndContactOverTCP: sipp over TCP challenges the INVITE and
// checks the credentials' uri against the Request-URI it received
// (";transport=tcp" included), the digest itself, and that Via offers the
// connection (alias) with the port Contact names. A failed check is a 403
// whose reason says which.
func TestDigestURIAndContactOverTCP(t *testing.T) {
	t.Parallel()
	sipp := sipptest.Start(t, "auth-uri.xml", sipptest.Options{Transport: "t1"})
	tc := TrunkConfig{Name: "carrier", Address: sipp.Addr, Transport: TransportTCP, CallerID: "+34910000001",
		Username: "alice", Password: "secret"}
	o := newTestOriginator(t, testConfig(tc))
	c := answeredCall(t, o, "+34600000003")
	if err := c.Hangup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := c.Result(); r.Outcome != OutcomeAnswered || r.HangupBy != PartyLocal {
		t.Errorf("result %+v", r)
	}
	sipp.Wait(t, 15*time.Second)
	if got := o.TCPAddr(); got == nil || o.TLSAddr() != nil {
		t.Errorf("listeners tcp %v tls %v, want only tcp", got, o.TLSAddr())
	}
}

// TestStreamListenConfig: the listening addresses and the TLS listener's
// certificate are checked, each error naming its field; a TCP listener takes
// the UDP port when it can (one address for all).
func TestStreamListenConfig(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	tcp := TrunkConfig{Name: "a", Address: "127.0.0.1:5060", Transport: TransportTCP}
	tlsTrunk := TrunkConfig{Name: "b", Address: "127.0.0.1:5061", Transport: TransportTLS}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // "" : New succeeds
	}{
		{name: "tls trunk without certificate", cfg: Config{Trunks: []TrunkConfig{tlsTrunk}}, wantErr: "tls_cert_file and tls_key_file: required"},
		{name: "certificate without key", cfg: Config{Trunks: []TrunkConfig{tcp}, TLSCertFile: pki.OursCert}, wantErr: "set both or neither"},
		{name: "listen_tcp not an address", cfg: Config{Trunks: []TrunkConfig{tcp}, ListenTCP: "localhost"}, wantErr: "listen_tcp \"localhost\""},
		{name: "listen_tls host not an IP", cfg: Config{Trunks: []TrunkConfig{tcp}, ListenTLS: "example.net:5061"}, wantErr: "listen_tls \"example.net:5061\": host must be an IP address"},
		{name: "unreadable certificate", cfg: Config{Trunks: []TrunkConfig{tlsTrunk}, TLSCertFile: "/nonexistent.pem", TLSKeyFile: pki.OursKey}, wantErr: "sip tls_cert_file /nonexistent.pem"},
		{name: "tcp and tls", cfg: Config{Trunks: []TrunkConfig{tcp, tlsTrunk}, TLSCertFile: pki.OursCert, TLSKeyFile: pki.OursKey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.KeepaliveInterval = Duration(time.Hour)
			o, err := New(context.Background(), cfg, nil)
			if tt.wantErr != "" {
				if err == nil {
					_ = o.Close()
					t.Fatalf("accepted, want error containing %q", tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %q, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = o.Close() })
			if o.TCPAddr() == nil || o.TLSAddr() == nil {
				t.Fatalf("listeners tcp %v tls %v", o.TCPAddr(), o.TLSAddr())
			}
			// The TLS listener presents the configured certificate: a client
			// trusting only the test's CA verifies it for 127.0.0.1.
			pem, err := os.ReadFile(pki.CAFile)
			if err != nil {
				t.Fatal(err)
			}
			roots := x509.NewCertPool()
			roots.AppendCertsFromPEM(pem)
			conn, err := tls.Dial("tcp", o.TLSAddr().String(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
			if err != nil {
				t.Fatalf("TLS listener: %v", err)
			}
			_ = conn.Close()
			for _, tr := range []string{TransportTCP, TransportTLS} {
				var ua = o.trunks[0].dialogUA
				if o.trunks[1].cfg.Transport == tr {
					ua = o.trunks[1].dialogUA
				}
				ct := ua.ContactHDR.Address
				if ct.Port != o.streamPort(tr) || ct.UriParams.GetOr("transport", "") != tr {
					t.Errorf("%s trunk's Contact %s, want port %d;transport=%s", tr, ct.String(), o.streamPort(tr), tr)
				}
			}
		})
	}
}

// TestCarrierByeOnOurConnection: a carrier that keeps our connection (sipp
// over TCP, and over TLS behind a TLS terminator, sends everything on the
// connection it was given) hangs up on it: the BYE is taken there, answered,
// and the call ends hung up by the carrier; no connection of its own needed.
func TestCarrierByeOnOurConnection(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{TransportTCP, TransportTLS} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			opts := sipptest.Options{Transport: "t1", Port: sipptest.FreePort(t)}
			tc := TrunkConfig{Name: "carrier", Transport: transport, CallerID: "+34910000001"}
			cfg := testConfig()
			if transport == TransportTLS {
				relay, ca := tlsRelay(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port)))
				tc.Address, tc.TLSRootCAFile = relay, ca
				// sipp's Contact names the relay, as a carrier's names itself.
				_, p, _ := net.SplitHostPort(relay)
				opts.ContactPort, _ = strconv.Atoi(p)
				opts.ContactTransport = "tls"
				pki := newTestPKI(t)
				cfg.TLSCertFile, cfg.TLSKeyFile = pki.OursCert, pki.OursKey
			}
			sipp := sipptest.Start(t, "remote-bye.xml", opts)
			if tc.Address == "" {
				tc.Address = sipp.Addr
			}
			cfg.Trunks = []TrunkConfig{tc}
			cfg.RingTimeout = Duration(5 * time.Second)
			o := newTestOriginator(t, cfg)
			c, err := o.Dial(context.Background(), DialRequest{To: "+34600000004"})
			if err != nil {
				t.Fatal(err)
			}
			r := waitResult(t, c, 10*time.Second)
			if r.Outcome != OutcomeAnswered || r.HangupBy != PartyRemote || r.Reason != "remote hangup" {
				t.Errorf("result %s %q %q, want answered, hung up by the carrier", r.Outcome, r.HangupBy, r.Reason)
			}
			sipp.Wait(t, 15*time.Second)
		})
	}
}

// TestSignRequestURI: credentials sipgo signed for the Request-URI without
// its parameters are signed again for the Request-URI as sent, in
// Authorization and Proxy-Authorization alike, with and without qop, keeping
// the challenge's nonce, cnonce and count; the digest checks out by the
// registrar's own computation (RFC 2617). Credentials already right are left
// as they are.
func TestSignRequestURI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, header, qop, target string
		resigned                  bool
	}{
		{name: "401 with qop", header: "Authorization", qop: "auth", target: "sip:+3460@127.0.0.1:5070;transport=tcp", resigned: true},
		{name: "407 with qop", header: "Proxy-Authorization", qop: "auth", target: "sip:+3460@127.0.0.1:5070;transport=tls", resigned: true},
		{name: "407 without qop", header: "Proxy-Authorization", target: "sip:+3460@127.0.0.1:5070;transport=tcp", resigned: true},
		{name: "already the Request-URI", header: "Authorization", qop: "auth", target: "sip:+3460@127.0.0.1:5070"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ruri sip.Uri
			if err := sip.ParseUri(tt.target, &ruri); err != nil {
				t.Fatal(err)
			}
			req := sip.NewRequest(sip.INVITE, ruri)
			chal := &digest.Challenge{Realm: "carrier", Nonce: "abc", Opaque: "op"}
			if tt.qop != "" {
				chal.QOP = []string{tt.qop}
			}
			// As sipgo signs: the Request-URI without its parameters.
			cred, err := digest.Digest(chal, digest.Options{Method: "INVITE", URI: ruri.Addr(), Username: "alice", Password: "secret", Cnonce: "c0ffee", Count: 1})
			if err != nil {
				t.Fatal(err)
			}
			req.AppendHeader(sip.NewHeader(tt.header, cred.String()))
			if err := signRequestURI(req, "secret"); err != nil {
				t.Fatal(err)
			}
			got, err := digest.ParseCredentials(req.GetHeader(tt.header).Value())
			if err != nil {
				t.Fatal(err)
			}
			if !tt.resigned {
				if got.URI != cred.URI || got.Response != cred.Response {
					t.Errorf("credentials changed: %+v, were %+v", got, cred)
				}
				return
			}
			if got.URI != req.Recipient.String() || got.URI != tt.target {
				t.Errorf("uri %q, want the Request-URI %q", got.URI, tt.target)
			}
			if got.Nonce != "abc" || got.Opaque != "op" || got.QOP != tt.qop || (tt.qop != "" && (got.Cnonce != "c0ffee" || got.Nc != 1)) {
				t.Errorf("challenge not kept: %+v", got)
			}
			if want := digestResponse(got, "INVITE", md5Hex("alice", "carrier", "secret")); !digestMatches(want, got.Response) {
				t.Errorf("response %s, want %s", got.Response, want)
			}
		})
	}
}
