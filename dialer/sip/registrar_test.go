package sip

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// TestRegistrarDigest: only the right password for the account, answered to a
// nonce of this registrar in its realm, registers; everything else is
// challenged or refused, and leaves no binding.
func TestRegistrarDigest(t *testing.T) {
	r, _ := newTestRegistrar(t, RegistrarConfig{Realm: "callcentre"})
	tests := []struct {
		name  string
		user  string
		pass  string
		auth  func(p *rawPhone, chal *sip.Response) string // Authorization line for the second REGISTER
		want  int
		agent int64 // bound on success
	}{
		{name: "right password", user: "agent1", pass: "secret1", want: 200, agent: 1},
		{name: "second account", user: "agent2", pass: "secret2", want: 200, agent: 2},
		{name: "wrong password", user: "agent1", pass: "guess", want: 403},
		{name: "unknown user", user: "mallory", pass: "secret1", want: 403},
		{name: "lookup fails", user: "broken", pass: "x", want: 500},
		{name: "forged nonce", user: "agent1", pass: "secret1", want: 401, auth: func(p *rawPhone, _ *sip.Response) string {
			return p.authorizationFor(&digest.Challenge{Realm: "callcentre", Nonce: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", Algorithm: "MD5", QOP: []string{"auth"}})
		}},
		{name: "other realm", user: "agent1", pass: "secret1", want: 401, auth: func(p *rawPhone, res *sip.Response) string {
			chal := p.challenge(res)
			chal.Realm = "elsewhere"
			return p.authorizationFor(chal)
		}},
		{name: "no qop (RFC 2069)", user: "agent1", pass: "secret1", want: 200, agent: 1, auth: func(p *rawPhone, res *sip.Response) string {
			chal := p.challenge(res)
			chal.QOP = nil
			return p.authorizationFor(chal)
		}},
		{name: "garbled header", user: "agent1", pass: "secret1", want: 400, auth: func(*rawPhone, *sip.Response) string {
			return `Authorization: Digest username="agent1", realm="callcentre", nonce="x", response`
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newRawPhone(t, r.Addr(), "udp", tc.user, tc.pass)
			res := p.do("REGISTER", p.contact())
			if res.StatusCode != 401 {
				t.Fatalf("first REGISTER: %d, want a 401 challenge", res.StatusCode)
			}
			chal := p.challenge(res)
			if chal.Realm != "callcentre" || chal.Algorithm != "MD5" || !chal.SupportsQOP("auth") || chal.Stale || chal.Nonce == "" {
				t.Fatalf("challenge %+v", chal)
			}
			auth := p.authorization(res)
			if tc.auth != nil {
				auth = tc.auth(p, res)
			}
			res = p.do("REGISTER", p.contact(), auth)
			if res.StatusCode != tc.want {
				t.Fatalf("REGISTER: %d %s, want %d", res.StatusCode, res.Reason, tc.want)
			}
			if tc.want == 401 && res.GetHeader("WWW-Authenticate") == nil {
				t.Error("401 without a new challenge")
			}
			b, ok := r.Lookup(tc.agent)
			if tc.agent == 0 {
				for _, b := range r.Bindings() {
					if b.Source == p.conn.LocalAddr().String() {
						t.Fatalf("refused phone bound: %+v", b)
					}
				}
				return
			}
			if !ok || b.Username != tc.user || b.Source != p.conn.LocalAddr().String() || b.Transport != "udp" {
				t.Fatalf("binding %+v, %v", b, ok)
			}
		})
	}
}

// TestRegistrarStaleNonce: a correct answer to an expired nonce gets a new
// challenge with stale=true, which the phone answers without asking its user.
func TestRegistrarStaleNonce(t *testing.T) {
	r, clock := newTestRegistrar(t, RegistrarConfig{NonceTTL: Duration(time.Minute)})
	p := newRawPhone(t, r.Addr(), "udp", "agent1", "secret1")
	res := p.do("REGISTER", p.contact())
	auth := p.authorization(res)
	clock.advance(2 * time.Minute)
	res = p.do("REGISTER", p.contact(), auth)
	if res.StatusCode != 401 || !p.challenge(res).Stale {
		t.Fatalf("expired nonce: %d %v, want 401 with stale=true", res.StatusCode, res.GetHeader("WWW-Authenticate"))
	}
	if _, ok := r.Lookup(1); ok {
		t.Fatal("bound on a stale nonce")
	}
	// A wrong password is refused even on a stale nonce: stale=true is only
	// for credentials that were right.
	p.pass = "guess"
	if res := p.do("REGISTER", p.contact(), p.authorization(res)); res.StatusCode != 403 {
		t.Fatalf("wrong password on a fresh nonce: %d", res.StatusCode)
	}
	p.pass = "secret1"
	if res := p.register(p.contact()); res.StatusCode != 200 {
		t.Fatalf("after the new challenge: %d", res.StatusCode)
	}
}

// TestRegistrarExpires: the registration's lifetime follows the phone's
// Expires header or contact parameter, within the configured bounds, and the
// binding lapses when it runs out.
func TestRegistrarExpires(t *testing.T) {
	tests := []struct {
		name    string
		headers []string // besides Contact
		param   string   // Contact parameter
		want    int      // status
		expires int      // seconds granted
	}{
		{name: "default", want: 200, expires: 3600},
		{name: "header", headers: []string{"Expires: 120"}, want: 200, expires: 120},
		{name: "contact parameter wins", headers: []string{"Expires: 120"}, param: ";expires=300", want: 200, expires: 300},
		{name: "too long is cut", headers: []string{"Expires: 86400"}, want: 200, expires: 3600},
		{name: "too brief", headers: []string{"Expires: 30"}, want: 423},
		{name: "not a number", headers: []string{"Expires: soon"}, want: 400},
		{name: "bad parameter", param: ";expires=-1", want: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, clock := newTestRegistrar(t, RegistrarConfig{})
			p := newRawPhone(t, r.Addr(), "udp", "agent1", "secret1")
			contact := fmt.Sprintf("Contact: <sip:agent1@127.0.0.1:%d>%s", p.localPort(), tc.param)
			res := p.register(append([]string{contact}, tc.headers...)...)
			if res.StatusCode != tc.want {
				t.Fatalf("REGISTER: %d %s, want %d", res.StatusCode, res.Reason, tc.want)
			}
			if tc.want == 423 {
				if h := res.GetHeader("Min-Expires"); h == nil || h.Value() != "60" {
					t.Errorf("423 with Min-Expires %v, want 60", h)
				}
			}
			if tc.want != 200 {
				if _, ok := r.Lookup(1); ok {
					t.Error("refused REGISTER bound")
				}
				return
			}
			got := contactExpires(t, res)
			uri := fmt.Sprintf("sip:agent1@127.0.0.1:%d", p.localPort())
			if e := got[uri]; e < tc.expires-1 || e > tc.expires {
				t.Errorf("200 lists %v, want %s;expires=%d", got, uri, tc.expires)
			}
			clock.advance(time.Duration(tc.expires-2) * time.Second)
			if _, ok := r.Lookup(1); !ok {
				t.Fatal("binding lapsed early")
			}
			clock.advance(3 * time.Second)
			if _, ok := r.Lookup(1); ok {
				t.Fatal("binding outlived its expiry")
			}
			if n := len(r.Bindings()); n != 0 {
				t.Fatalf("%d bindings after expiry", n)
			}
		})
	}
}

// TestRegistrarUnbind: Expires 0 removes one contact, "Contact: *" all of
// them; a query (no Contact) lists what is bound; requests out of order are
// refused.
func TestRegistrarUnbind(t *testing.T) {
	r, _ := newTestRegistrar(t, RegistrarConfig{})
	p := newRawPhone(t, r.Addr(), "udp", "agent1", "secret1")
	res := p.register("Contact: <sip:agent1@127.0.0.1:5001>", "Contact: <sip:agent1@127.0.0.1:5002>;expires=600", "Expires: 300")
	if res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d", res.StatusCode)
	}
	if got := contactExpires(t, res); len(got) != 2 || got["sip:agent1@127.0.0.1:5001"] != 300 || got["sip:agent1@127.0.0.1:5002"] != 600 {
		t.Fatalf("bound %v", got)
	}
	if b, _ := r.Lookup(1); len(r.Bindings()) != 2 || b.AgentID != 1 {
		t.Fatalf("bindings %+v", r.Bindings())
	}

	steps := []struct {
		name    string
		headers []string
		want    int
		bound   []string
	}{
		{"query", nil, 200, []string{"sip:agent1@127.0.0.1:5001", "sip:agent1@127.0.0.1:5002"}},
		{"one contact", []string{"Contact: <sip:agent1@127.0.0.1:5001>;expires=0"}, 200, []string{"sip:agent1@127.0.0.1:5002"}},
		{"star needs Expires 0", []string{"Contact: *", "Expires: 60"}, 400, []string{"sip:agent1@127.0.0.1:5002"}},
		{"star with another contact", []string{"Contact: *", "Contact: <sip:agent1@127.0.0.1:5003>", "Expires: 0"}, 400, []string{"sip:agent1@127.0.0.1:5002"}},
		{"star", []string{"Contact: *", "Expires: 0"}, 200, nil},
	}
	for _, s := range steps {
		res := p.register(s.headers...)
		if res.StatusCode != s.want {
			t.Fatalf("%s: %d %s, want %d", s.name, res.StatusCode, res.Reason, s.want)
		}
		var bound []string
		for _, b := range r.Bindings() {
			bound = append(bound, b.Contact)
		}
		if strings.Join(bound, " ") != strings.Join(s.bound, " ") {
			t.Fatalf("%s: bound %v, want %v", s.name, bound, s.bound)
		}
		if s.want == 200 && len(contactExpires(t, res)) != len(s.bound) {
			t.Fatalf("%s: 200 lists %v, want %v", s.name, contactExpires(t, res), s.bound)
		}
	}
	if _, ok := r.Lookup(1); ok {
		t.Fatal("Lookup finds an unbound phone")
	}

	// A REGISTER of the same Call-ID with an older CSeq is out of order.
	if res := p.register(p.contact()); res.StatusCode != 200 {
		t.Fatalf("re-register: %d", res.StatusCode)
	}
	p.cseq -= 5
	if res := p.register(p.contact(), "Expires: 0"); res.StatusCode != 500 {
		t.Fatalf("out-of-order REGISTER: %d, want 500", res.StatusCode)
	}
	if _, ok := r.Lookup(1); !ok {
		t.Fatal("an out-of-order REGISTER unbound the phone")
	}
}

// TestRegistrarMaxContacts: a phone that keeps registering new contacts
// replaces its oldest rather than piling them up.
func TestRegistrarMaxContacts(t *testing.T) {
	r, _ := newTestRegistrar(t, RegistrarConfig{MaxContacts: 2})
	p := newRawPhone(t, r.Addr(), "udp", "agent1", "secret1")
	for port := 5001; port <= 5004; port++ {
		if res := p.register(fmt.Sprintf("Contact: <sip:agent1@127.0.0.1:%d>", port), fmt.Sprintf("Expires: %d", 100+port)); res.StatusCode != 200 {
			t.Fatalf("REGISTER %d: %d", port, res.StatusCode)
		}
	}
	got := r.Bindings()
	if len(got) != 2 || got[0].Contact != "sip:agent1@127.0.0.1:5003" || got[1].Contact != "sip:agent1@127.0.0.1:5004" {
		t.Fatalf("bindings %+v, want the two latest", got)
	}
	if b, _ := r.Lookup(1); b.Contact != "sip:agent1@127.0.0.1:5004" {
		t.Fatalf("Lookup %s, want the latest contact", b.Contact)
	}
}

// TestRegistrarTCP: a phone registered over TCP is bound to its connection.
func TestRegistrarTCP(t *testing.T) {
	r, _ := newTestRegistrar(t, RegistrarConfig{})
	p := newRawPhone(t, r.Addr(), "tcp", "agent2", "secret2")
	if res := p.register(p.contact()); res.StatusCode != 200 {
		t.Fatalf("REGISTER over TCP: %d", res.StatusCode)
	}
	b, ok := r.Lookup(2)
	if !ok || b.Transport != "tcp" || b.Source != p.conn.LocalAddr().String() || !strings.HasSuffix(b.Contact, ";transport=tcp") {
		t.Fatalf("binding %+v, %v", b, ok)
	}
}

// TestRegistrarOtherRequests: OPTIONS is answered, other methods are refused
// with 405 or 501, and neither needs authentication.
func TestRegistrarOtherRequests(t *testing.T) {
	r, _ := newTestRegistrar(t, RegistrarConfig{})
	p := newRawPhone(t, r.Addr(), "udp", "agent1", "secret1")
	tests := []struct {
		method string
		want   int
	}{
		{"OPTIONS", 200},
		{"SUBSCRIBE", 405},
		{"MESSAGE", 405},
		{"INVITE", 405}, // phones do not place calls through Turbina
		{"BYE", 481},    // no such call
		{"FROBNICATE", 501},
	}
	for _, tc := range tests {
		res := p.do(tc.method)
		if res.StatusCode != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.method, res.StatusCode, res.Reason, tc.want)
		}
		if tc.method == "OPTIONS" {
			if h := res.GetHeader("Allow"); h == nil || !strings.Contains(h.Value(), "REGISTER") {
				t.Errorf("OPTIONS Allow: %v", h)
			}
		}
	}
}

// TestRegistrarMalformed: garbage and requests missing what a REGISTER needs
// are answered 400 or dropped, and the registrar keeps serving.
func TestRegistrarMalformed(t *testing.T) {
	r, _ := newTestRegistrar(t, RegistrarConfig{})
	p := newRawPhone(t, r.Addr(), "udp", "agent1", "secret1")
	via := func() string {
		return fmt.Sprintf("Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%d", p.localPort(), time.Now().UnixNano())
	}
	tests := []struct {
		name string
		msg  string
		want int // 0: dropped
	}{
		{"noise", "\x00\x01\x02 not sip at all \xff\xfe", 0},
		{"empty lines", "\r\n\r\n\r\n", 0},
		{"bad start line", "REGISTER\r\n\r\n", 0},
		{"no Call-ID", "REGISTER sip:127.0.0.1 SIP/2.0\r\n" + via() + "\r\nFrom: <sip:agent1@127.0.0.1>;tag=1\r\nTo: <sip:agent1@127.0.0.1>\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n", 400},
		{"no CSeq", "REGISTER sip:127.0.0.1 SIP/2.0\r\n" + via() + "\r\nFrom: <sip:agent1@127.0.0.1>;tag=1\r\nTo: <sip:agent1@127.0.0.1>\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n", 400},
		{"no To user", "REGISTER sip:127.0.0.1 SIP/2.0\r\n" + via() + "\r\nFrom: <sip:agent1@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n", 400},
		{"no Via", "REGISTER sip:127.0.0.1 SIP/2.0\r\nFrom: <sip:agent1@127.0.0.1>;tag=1\r\nTo: <sip:agent1@127.0.0.1>\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n", 0},
		{"huge header", "REGISTER sip:127.0.0.1 SIP/2.0\r\n" + via() + "\r\nX-Junk: " + strings.Repeat("A", 60000) + "\r\n\r\n", 0},
		{"lying Content-Length", "REGISTER sip:127.0.0.1 SIP/2.0\r\n" + via() + "\r\nFrom: <sip:agent1@127.0.0.1>;tag=1\r\nTo: <sip:agent1@127.0.0.1>\r\nCall-ID: y\r\nCSeq: 1 REGISTER\r\nContent-Length: 5000\r\n\r\nabc", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p.send(tc.msg)
			res := p.read(300 * time.Millisecond)
			switch {
			case tc.want == 0 && res != nil && res.StatusCode != 400:
				t.Errorf("answered %d, want 400 or nothing", res.StatusCode)
			case tc.want != 0 && (res == nil || res.StatusCode != tc.want):
				t.Errorf("answered %v, want %d", res, tc.want)
			}
		})
	}
	// Authenticated but broken: a non-SIP contact.
	res := p.register("Contact: <tel:+34911234567>")
	if res.StatusCode != 400 {
		t.Errorf("tel: contact: %d, want 400", res.StatusCode)
	}
	// Still serving.
	if res := p.register(p.contact()); res.StatusCode != 200 {
		t.Fatalf("after the garbage: %d", res.StatusCode)
	}
	// A stream of garbage over TCP does not hurt either.
	conn, err := net.Dial("tcp", r.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("GARBAGE garbage\r\n\r\n" + strings.Repeat("\xff", 10000)))
	conn.Close()
	if res := newRawPhone(t, r.Addr(), "udp", "agent2", "secret2").do("OPTIONS"); res.StatusCode != 200 {
		t.Fatalf("OPTIONS after garbage: %d", res.StatusCode)
	}
}

// TestRegistrarConfig checks defaults and refusals.
func TestRegistrarConfig(t *testing.T) {
	creds := testCreds(nil)
	tests := []struct {
		name string
		cfg  RegistrarConfig
	}{
		{"host name", RegistrarConfig{ListenAddr: "localhost:0"}},
		{"no port", RegistrarConfig{ListenAddr: "127.0.0.1"}},
		{"min above max", RegistrarConfig{ListenAddr: "127.0.0.1:0", MinExpires: Duration(time.Hour), MaxExpires: Duration(time.Minute)}},
		{"quote in realm", RegistrarConfig{ListenAddr: "127.0.0.1:0", Realm: `a"b`}},
		{"rtp range", RegistrarConfig{ListenAddr: "127.0.0.1:0", RTPPortMin: 20000, RTPPortMax: 10000}},
		{"short nonce key", RegistrarConfig{ListenAddr: "127.0.0.1:0", NonceKey: []byte("fifteen bytes!!")}},
	}
	for _, tc := range tests {
		if r, err := NewRegistrar(context.Background(), tc.cfg, creds, nil); err == nil {
			r.Close()
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if _, err := NewRegistrar(context.Background(), RegistrarConfig{ListenAddr: "127.0.0.1:0"}, nil, nil); err == nil {
		t.Error("accepted nil credentials")
	}
	r, err := NewRegistrar(context.Background(), RegistrarConfig{ListenAddr: "127.0.0.1:0"}, creds, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Realm() != "turbina" || r.Addr().Port == 0 {
		t.Errorf("realm %q, addr %s", r.Realm(), r.Addr())
	}
	if err := r.Close(); err != nil {
		t.Error(err)
	}
	if err := r.Close(); err != nil {
		t.Error("second Close:", err)
	}
	if _, err := r.CallAgent(context.Background(), 1, AgentCallOptions{}); err != ErrRegistrarClosed {
		t.Errorf("CallAgent after Close: %v", err)
	}
}

// TestNonces: a nonce is fresh until its TTL, stale after, and only ours (or
// those of a registrar with our key) verify.
func TestNonces(t *testing.T) {
	key := []byte("the key the nodes of one cluster share")
	n, err := newNonces(time.Minute, key)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newNonces(time.Minute, nil)
	sibling, _ := newNonces(time.Minute, key)
	t0 := time.Unix(1_800_000_000, 0)
	nonce := n.issue(t0)
	tests := []struct {
		name  string
		nonce string
		at    time.Time
		want  nonceState
	}{
		{"fresh", nonce, t0.Add(59 * time.Second), nonceFresh},
		{"stale", nonce, t0.Add(61 * time.Second), nonceStale},
		{"another registrar's", other.issue(t0), t0, nonceInvalid},
		{"a registrar's with the same key", sibling.issue(t0), t0, nonceFresh},
		{"tampered", nonce[:len(nonce)-2] + "AA", t0, nonceInvalid},
		{"not base64", "!!!", t0, nonceInvalid},
		{"empty", "", t0, nonceInvalid},
	}
	for _, tc := range tests {
		if got := n.check(tc.nonce, tc.at); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if n.issue(t0) == nonce {
		t.Error("two nonces alike")
	}
}
