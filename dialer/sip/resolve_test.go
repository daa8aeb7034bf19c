package sip

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/turbina-dialer/turbina/internal/sipptest"
)

// testDNS is an authoritative DNS server on loopback answering SRV, A and AAAA
// questions from records the test sets, with the TTL the test sets.
type testDNS struct {
	pc net.PacketConn

	mu      sync.Mutex
	srv     map[string][]net.SRV
	a       map[string]net.IP
	ttl     uint32
	queries map[string]int // "SRV _sip._udp.carrier.test." → count
}

func startDNS(t *testing.T) *testDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &testDNS{pc: pc, srv: map[string][]net.SRV{}, a: map[string]net.IP{}, ttl: 300, queries: map[string]int{}}
	t.Cleanup(func() { pc.Close() })
	go d.serve()
	return d
}

func (d *testDNS) addr() string { return d.pc.LocalAddr().String() }

func (d *testDNS) set(f func(d *testDNS)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

func (d *testDNS) count(typ, name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries[typ+" "+name]
}

func (d *testDNS) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if out := d.answer(buf[:n]); out != nil {
			_, _ = d.pc.WriteTo(out, from)
		}
	}
}

func (d *testDNS) answer(in []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(in)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	name := q.Name.String()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.queries[strings.TrimPrefix(q.Type.String(), "Type")+" "+name]++
	srvs, a := d.srv[name], d.a[name]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true}
	if srvs == nil && a == nil {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAnswers()
	hdr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: d.ttl}
	switch q.Type {
	case dnsmessage.TypeSRV:
		for _, s := range srvs {
			_ = b.SRVResource(hdr, dnsmessage.SRVResource{Priority: s.Priority, Weight: s.Weight, Port: s.Port, Target: dnsmessage.MustNewName(s.Target)})
		}
	case dnsmessage.TypeA:
		if ip4 := a.To4(); ip4 != nil {
			_ = b.AResource(hdr, dnsmessage.AResource{A: [4]byte(ip4)})
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

func port(t *testing.T, addr string) uint16 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(n)
}

// dialAnswered places a call that the carrier answers and hangs it up.
func dialAnswered(t *testing.T, o *Originator) Result {
	t.Helper()
	c := answeredCall(t, o, "+5511987654321")
	if err := c.Hangup(context.Background()); err != nil {
		t.Fatal(err)
	}
	return waitResult(t, c, 5*time.Second)
}

// TestSRV points a trunk given as a bare host name at a DNS server on loopback:
// the call goes to the SRV target of the best priority at the port SRV gives,
// and when the record changes the trunk follows it once the TTL has passed.
func TestSRV(t *testing.T) {
	t.Parallel()
	first := sipptest.Start(t, "answer.xml", sipptest.Options{})
	second := sipptest.Start(t, "answer.xml", sipptest.Options{})
	dead := sipptest.FreePort(t)
	dns := startDNS(t)
	dns.set(func(d *testDNS) {
		d.ttl = 1
		d.srv["_sip._udp.carrier.test."] = []net.SRV{
			{Target: "backup.carrier.test.", Port: uint16(dead), Priority: 20, Weight: 100},
			{Target: "sbc1.carrier.test.", Port: port(t, first.Addr), Priority: 10, Weight: 10},
		}
		d.a["sbc1.carrier.test."] = net.IPv4(127, 0, 0, 1)
		d.a["backup.carrier.test."] = net.IPv4(127, 0, 0, 1)
	})
	cfg := testConfig(TrunkConfig{Name: "carrier", Address: "carrier.test", Transport: TransportUDP, CallerID: "+551140001234"})
	cfg.DNSServer = dns.addr()
	o := newTestOriginator(t, cfg)
	tr := o.trunks[0]
	if tr.cfg.Address != "carrier.test" || tr.port != 0 || tr.cfg.Domain != "carrier.test" {
		t.Fatalf("trunk address %q port %d domain %q: want the bare name kept for SRV", tr.cfg.Address, tr.port, tr.cfg.Domain)
	}
	if u := o.trunkURI(tr, "5511987654321"); u.String() != "sip:5511987654321@carrier.test" {
		t.Errorf("Request-URI %s: want the name without a port (RFC 3263 4.2)", u.String())
	}
	if r := dialAnswered(t, o); r.Outcome != OutcomeAnswered {
		t.Fatalf("first call: %+v", r)
	}
	first.Wait(t, 10*time.Second) // the call reached the priority-10 target

	before := dns.count("SRV", "_sip._udp.carrier.test.")
	dns.set(func(d *testDNS) {
		d.srv["_sip._udp.carrier.test."] = []net.SRV{{Target: "sbc2.carrier.test.", Port: port(t, second.Addr), Priority: 10}}
		d.a["sbc2.carrier.test."] = net.IPv4(127, 0, 0, 1)
	})
	want := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port(t, second.Addr))))
	deadline := time.Now().Add(5 * time.Second)
	for tr.destination() != want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := tr.destination(); got != want {
		t.Fatalf("destination %s 5 s after the 1 s record changed, want %s", got, want)
	}
	if dns.count("SRV", "_sip._udp.carrier.test.") <= before {
		t.Errorf("no new SRV query after the TTL")
	}
	if r := dialAnswered(t, o); r.Outcome != OutcomeAnswered {
		t.Fatalf("second call: %+v", r)
	}
	second.Wait(t, 10*time.Second)
}

// TestLookupTrunk resolves names through the DNS server on loopback: SRV by
// transport, then A at the default port when there is no SRV record.
func TestLookupTrunk(t *testing.T) {
	t.Parallel()
	dns := startDNS(t)
	dns.set(func(d *testDNS) {
		d.ttl = 30
		d.srv["_sips._tcp.secure.test."] = []net.SRV{{Target: "tls.secure.test.", Port: 5062, Priority: 1}}
		d.srv["_sip._tcp.tcp.test."] = []net.SRV{{Target: "t.tcp.test.", Port: 5070, Priority: 1}}
		d.a["tls.secure.test."] = net.IPv4(127, 0, 0, 2)
		d.a["t.tcp.test."] = net.IPv4(127, 0, 0, 3)
		d.a["plain.test."] = net.IPv4(127, 0, 0, 4)
	})
	tests := []struct {
		host, transport string
		want            []string
		wantErr         string
	}{
		{host: "secure.test", transport: TransportTLS, want: []string{"127.0.0.2:5062"}},
		{host: "tcp.test", transport: TransportTCP, want: []string{"127.0.0.3:5070"}},
		{host: "plain.test", transport: TransportUDP, want: []string{"127.0.0.4:5060"}},
		{host: "plain.test", transport: TransportTLS, want: []string{"127.0.0.4:5061"}},
		{host: "missing.test", transport: TransportUDP, wantErr: "missing.test: SRV"},
	}
	o := &Originator{dns: newDNSLookup(dns.addr())}
	for _, tt := range tests {
		t.Run(tt.host+"/"+tt.transport, func(t *testing.T) {
			tr := &trunk{cfg: TrunkConfig{Name: "x", Transport: tt.transport}, host: tt.host}
			got, ttl, err := o.lookupTrunk(context.Background(), tr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("lookup = %v, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) || ttl != 30*time.Second {
				t.Fatalf("lookup = %v ttl %s, %v; want %v ttl 30s", got, ttl, err, tt.want)
			}
		})
	}
}

func TestOrderSRV(t *testing.T) {
	t.Parallel()
	recs := []*net.SRV{
		{Target: "c", Priority: 30, Weight: 5},
		{Target: "light", Priority: 10, Weight: 0},
		{Target: "heavy", Priority: 10, Weight: 100},
		{Target: "b", Priority: 20, Weight: 1},
	}
	heavyFirst := 0
	for range 200 {
		got := orderSRV(recs)
		var names []string
		for _, s := range got {
			names = append(names, s.Target)
		}
		if len(names) != 4 || names[2] != "b" || names[3] != "c" || !slices.Contains(names[:2], "heavy") || !slices.Contains(names[:2], "light") {
			t.Fatalf("order %v: want priority 10 (both), then 20, then 30", names)
		}
		if names[0] == "heavy" {
			heavyFirst++
		}
	}
	// Weight 100 against 0: the light record comes first about once in 101 draws.
	if heavyFirst < 170 {
		t.Errorf("heavy record first in %d of 200 orders, want nearly all", heavyFirst)
	}
	if got := orderSRV([]*net.SRV{{Target: ".", Port: 0}}); len(got) != 0 {
		t.Errorf(`"." target: %v, want no service`, got)
	}
}

// TestSRVNextTarget: when the best SRV target does not answer, the trunk's
// requests go to the next one (RFC 3263 4.3), and the records' next lookup
// does not send them back to the silent one.
func TestSRVNextTarget(t *testing.T) {
	t.Parallel()
	backup := sipptest.Start(t, "options.xml", sipptest.Options{Calls: 2})
	dead := sipptest.FreePort(t)
	dns := startDNS(t)
	dns.set(func(d *testDNS) {
		d.ttl = 1
		d.srv["_sip._udp.carrier.test."] = []net.SRV{
			{Target: "sbc1.carrier.test.", Port: uint16(dead), Priority: 10},
			{Target: "sbc2.carrier.test.", Port: port(t, backup.Addr), Priority: 20},
		}
		d.a["sbc1.carrier.test."] = net.IPv4(127, 0, 0, 1)
		d.a["sbc2.carrier.test."] = net.IPv4(127, 0, 0, 1)
	})
	cfg := testConfig(TrunkConfig{Name: "carrier", Address: "carrier.test", Transport: TransportUDP})
	cfg.DNSServer = dns.addr()
	o := newTestOriginator(t, cfg)
	tr := o.trunks[0]
	best := net.JoinHostPort("127.0.0.1", strconv.Itoa(dead))
	next := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port(t, backup.Addr))))
	if got := tr.destination(); got != best {
		t.Fatalf("destination %s, want the priority-10 target %s", got, best)
	}
	if err := o.probe(tr, 300*time.Millisecond); err == nil {
		t.Fatal("OPTIONS to a port nobody listens on was answered")
	}
	if got := tr.destination(); got != next {
		t.Fatalf("destination %s after the silent target, want the priority-20 target %s", got, next)
	}
	if err := o.probe(tr, 2*time.Second); err != nil {
		t.Fatalf("OPTIONS to the next target: %v", err)
	}
	// Past the 1 s TTL the same records are looked up again; the order stays.
	// The lookup's last question is the last target's AAAA.
	before := dns.count("AAAA", "sbc2.carrier.test.")
	deadline := time.Now().Add(5 * time.Second)
	for dns.count("AAAA", "sbc2.carrier.test.") == before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if dns.count("AAAA", "sbc2.carrier.test.") == before {
		t.Fatal("no lookup within 5 s of a 1 s TTL")
	}
	time.Sleep(100 * time.Millisecond) // for the answer to be taken in
	if err := o.probe(tr, 2*time.Second); err != nil || tr.destination() != next {
		t.Fatalf("after the lookup: OPTIONS %v, destination %s; want answered by %s", err, tr.destination(), next)
	}
	backup.Wait(t, 5*time.Second)
}

// TestSystemResolverFindsHostsFile: with the system's DNS server (here one on
// loopback that knows no names), a name that only /etc/hosts knows
// ("localhost") still resolves, at the default port since it has no SRV records.
func TestSystemResolverFindsHostsFile(t *testing.T) {
	t.Parallel()
	dns := startDNS(t)
	o := &Originator{dns: &dnsLookup{server: dns.addr(), system: true}}
	tr := &trunk{cfg: TrunkConfig{Name: "x", Transport: TransportUDP}, host: "localhost"}
	addrs, _, err := o.lookupTrunk(context.Background(), tr)
	if err != nil || !slices.ContainsFunc(addrs, func(a string) bool { return a == "127.0.0.1:5060" || a == "[::1]:5060" }) {
		t.Fatalf("localhost resolved to %v, %v; want loopback at 5060", addrs, err)
	}
	if dns.count("SRV", "_sip._udp.localhost.") != 1 {
		t.Errorf("SRV questions %d, want 1 before falling back to the address", dns.count("SRV", "_sip._udp.localhost."))
	}
	o.dns.system = false
	if addrs, _, err := o.lookupTrunk(context.Background(), tr); err == nil {
		t.Errorf("with a configured dns_server, localhost resolved to %v; want only what that server knows", addrs)
	}
}

// TestSRVUnresolved: a trunk whose name does not resolve sends nothing (its
// name is not left to the system's resolver) and its call ends a trunk fault
// that says so.
func TestSRVUnresolved(t *testing.T) {
	t.Parallel()
	dns := startDNS(t)
	cfg := testConfig(TrunkConfig{Name: "carrier", Address: "late.test", Transport: TransportUDP, CallerID: "+551140001234"})
	cfg.DNSServer = dns.addr()
	o := newTestOriginator(t, cfg)
	c, err := o.Dial(context.Background(), DialRequest{To: "+5511987654321"})
	if err != nil {
		t.Fatal(err)
	}
	r := waitResult(t, c, 5*time.Second)
	if r.Outcome != OutcomeTrunkFault || !strings.Contains(r.Reason, "trunk carrier: late.test not resolved") || r.Status != 0 {
		t.Errorf("result %s %d %q, want trunk_fault saying late.test is not resolved", r.Outcome, r.Status, r.Reason)
	}
	if err := o.probe(o.trunks[0], time.Second); err == nil || !strings.Contains(err.Error(), "not resolved") {
		t.Errorf("probe of an unresolved trunk: %v", err)
	}
	if n := dns.count("SRV", "_sip._udp.late.test."); n == 0 {
		t.Errorf("the DNS server was never asked")
	}
}
