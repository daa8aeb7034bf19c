package sip

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS timings: how long a lookup may take, how long a record is trusted at
// least and at most whatever its TTL says, how soon a failed lookup is tried
// again, and the TTL given to answers of a resolver that tells none.
const (
	dnsTimeout    = 2 * time.Second
	dnsMinTTL     = time.Second
	dnsMaxTTL     = time.Hour
	dnsRetry      = 5 * time.Second
	dnsDefaultTTL = time.Minute
)

func defaultPort(transport string) int {
	if transport == TransportTLS {
		return 5061
	}
	return 5060
}

// addressHost is the host of a trunk address, with or without a port.
func addressHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return strings.Trim(addr, "[]")
}

// srvName reports whether a trunk address is a host name without a port: one
// that is resolved with DNS SRV (RFC 3263 4.2).
func srvName(addr string) bool {
	if addr == "" || net.ParseIP(strings.Trim(addr, "[]")) != nil {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(addr, "."), ".") {
		if label == "" || len(label) > 63 || strings.Trim(label, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
			return false
		}
	}
	return true
}

// srvService is the SRV service and protocol for a transport (RFC 3263 4.2).
func srvService(transport string) string {
	switch transport {
	case TransportTCP:
		return "_sip._tcp."
	case TransportTLS:
		return "_sips._tcp."
	}
	return "_sip._udp."
}

// resolution is where a trunk given by name is sent: the addresses in the
// order RFC 2782 picks them, until expires.
type resolution struct {
	mu      sync.Mutex
	addrs   []string // host:port
	expires time.Time
	err     error // of the last lookup; the last good addresses stay in use
}

// destination is the address the trunk's requests go to now, "" when it has
// none yet.
func (r *resolution) destination() string {
	if r == nil {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.addrs) == 0 {
		return ""
	}
	return r.addrs[0]
}

// skip moves addr, when it is the current destination, to the end of the
// list: it did not answer, and the next target is tried instead.
func (r *resolution) skip(addr string) {
	if r == nil || addr == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.addrs) > 1 && r.addrs[0] == addr {
		r.addrs = append(r.addrs[1:], addr)
	}
}

// unresolved is why a trunk given by name has no address yet (its lookups
// failed), nil when it has one or needs none. Its requests are not sent: left
// to sipgo, the name would be looked up by the system's resolver, not
// dns_server.
func (t *trunk) unresolved() error {
	r := t.resolved
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.addrs) > 0 {
		return nil
	}
	return fmt.Errorf("trunk %s: %s not resolved: %w", t.cfg.Name, t.host, cmp.Or(r.err, errNoRecords))
}

// destination is where requests to t go: "" for a trunk given as host:port,
// whose Request-URI says it.
func (t *trunk) destination() string { return t.resolved.destination() }

// refresh looks the trunk's name up and keeps the result; it returns how long
// until the next lookup.
func (o *Originator) refresh(ctx context.Context, t *trunk) time.Duration {
	addrs, ttl, err := o.lookupTrunk(ctx, t)
	r := t.resolved
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
	if err != nil {
		o.log.Warn("sip trunk: DNS lookup failed", "trunk", t.cfg.Name, "host", t.host, "err", err, "keeping", r.addrs)
		return dnsRetry
	}
	r.expires = o.now().Add(ttl)
	// The same records keep their order, so a target skipped because it did
	// not answer is not taken back at each lookup (and the weighted draw does
	// not move calls between targets every TTL).
	if sameAddrs(addrs, r.addrs) {
		return ttl
	}
	o.log.Info("sip trunk resolved", "trunk", t.cfg.Name, "host", t.host, "addrs", addrs, "ttl", ttl)
	r.addrs = addrs
	return ttl
}

// resolveLoop looks the trunk up again each time its records expire.
func (o *Originator) resolveLoop(t *trunk, next time.Duration) {
	defer o.wg.Done()
	timer := time.NewTimer(next)
	defer timer.Stop()
	for {
		select {
		case <-o.rootCtx.Done():
			return
		case <-timer.C:
		}
		ctx, cancel := context.WithTimeout(o.rootCtx, 2*dnsTimeout)
		timer.Reset(o.refresh(ctx, t))
		cancel()
	}
}

// lookupTrunk resolves a trunk name as RFC 3263 4.2 says: SRV records for the
// transport, in priority and weight order, each target's A and AAAA; without
// SRV records, the name's own A and AAAA at the default port. The TTL is the
// shortest of the records used.
func (o *Originator) lookupTrunk(ctx context.Context, t *trunk) ([]string, time.Duration, error) {
	dns := o.dns
	srvs, ttl, srvErr := dns.srv(ctx, srvService(t.cfg.Transport)+t.host)
	var addrs []string
	for _, s := range orderSRV(srvs) {
		ips, ipTTL, err := dns.ip(ctx, s.Target)
		if err != nil {
			o.log.Debug("sip trunk: SRV target does not resolve", "trunk", t.cfg.Name, "target", s.Target, "err", err)
			continue
		}
		ttl = min(ttl, ipTTL)
		for _, ip := range ips {
			addrs = append(addrs, net.JoinHostPort(ip.String(), strconv.Itoa(int(s.Port))))
		}
	}
	if len(addrs) > 0 {
		return addrs, clampTTL(ttl), nil
	}
	ips, ipTTL, err := dns.ip(ctx, t.host)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: SRV: %v; A/AAAA: %w", t.host, cmp.Or(srvErr, errNoRecords), err)
	}
	port := strconv.Itoa(defaultPort(t.cfg.Transport))
	for _, ip := range ips {
		addrs = append(addrs, net.JoinHostPort(ip.String(), port))
	}
	return addrs, clampTTL(ipTTL), nil
}

func sameAddrs(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

func clampTTL(d time.Duration) time.Duration { return min(max(d, dnsMinTTL), dnsMaxTTL) }

// orderSRV sorts records by priority and, within a priority, by RFC 2782's
// weighted random draw; a single "." target means no service.
func orderSRV(in []*net.SRV) []*net.SRV {
	if len(in) == 1 && (in[0].Target == "." || in[0].Target == "") {
		return nil
	}
	recs := slices.Clone(in)
	slices.SortStableFunc(recs, func(a, b *net.SRV) int { return cmp.Compare(a.Priority, b.Priority) })
	out := make([]*net.SRV, 0, len(recs))
	for len(recs) > 0 {
		end := 1
		for end < len(recs) && recs[end].Priority == recs[0].Priority {
			end++
		}
		group := recs[:end]
		for len(group) > 0 {
			i := weightedPick(group)
			out = append(out, group[i])
			group = slices.Delete(group, i, i+1)
		}
		recs = recs[end:]
	}
	return out
}

// weightedPick draws one record with probability proportional to its weight;
// zero-weight records only have a small chance (RFC 2782).
func weightedPick(group []*net.SRV) int {
	total := 0
	for _, s := range group {
		total += int(s.Weight)
	}
	if total == 0 {
		return 0
	}
	n, err := rand.Int(rand.Reader, big.NewInt(int64(total)+1))
	if err != nil {
		return 0
	}
	pick, sum := int(n.Int64()), 0
	for i, s := range group {
		sum += int(s.Weight)
		if sum >= pick {
			return i
		}
	}
	return len(group) - 1
}

var errNoRecords = errors.New("no records")

// dnsLookup answers SRV and address queries with their TTLs.
type dnsLookup struct {
	server string // host:port; "" uses the system resolver, which tells no TTL
	// system: server is the system's, so names it does not know are looked
	// up in /etc/hosts too.
	system bool
}

// newDNSLookup queries server, or the first nameserver of /etc/resolv.conf.
func newDNSLookup(server string) *dnsLookup {
	if server != "" {
		return &dnsLookup{server: server}
	}
	return &dnsLookup{server: systemNameserver("/etc/resolv.conf"), system: true}
}

func systemNameserver(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) >= 2 && fields[0] == "nameserver" {
			return net.JoinHostPort(fields[1], "53")
		}
	}
	return ""
}

func (d *dnsLookup) srv(ctx context.Context, name string) ([]*net.SRV, time.Duration, error) {
	if d.server == "" {
		_, srvs, err := net.DefaultResolver.LookupSRV(ctx, "", "", name)
		return srvs, dnsDefaultTTL, err
	}
	answers, err := d.query(ctx, name, dnsmessage.TypeSRV)
	if err != nil {
		return nil, 0, err
	}
	var out []*net.SRV
	ttl := dnsMaxTTL
	for _, a := range answers {
		if s, ok := a.Body.(*dnsmessage.SRVResource); ok {
			out = append(out, &net.SRV{Target: s.Target.String(), Port: s.Port, Priority: s.Priority, Weight: s.Weight})
			ttl = min(ttl, time.Duration(a.Header.TTL)*time.Second)
		}
	}
	if len(out) == 0 {
		return nil, 0, errNoRecords
	}
	return out, ttl, nil
}

// ip looks up a name's IPv4 and IPv6 addresses, IPv4 first. A name the DNS
// server does not know may still be in /etc/hosts when the server is the
// system's.
func (d *dnsLookup) ip(ctx context.Context, name string) ([]net.IP, time.Duration, error) {
	if d.server == "" {
		return systemIP(ctx, name)
	}
	var ips []net.IP
	ttl := dnsMaxTTL
	var errs []error
	for _, typ := range []dnsmessage.Type{dnsmessage.TypeA, dnsmessage.TypeAAAA} {
		answers, err := d.query(ctx, name, typ)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, a := range answers {
			switch r := a.Body.(type) {
			case *dnsmessage.AResource:
				ips = append(ips, net.IP(r.A[:]))
			case *dnsmessage.AAAAResource:
				ips = append(ips, net.IP(r.AAAA[:]))
			default:
				continue
			}
			ttl = min(ttl, time.Duration(a.Header.TTL)*time.Second)
		}
	}
	if len(ips) > 0 {
		return ips, ttl, nil
	}
	if d.system {
		if ips, ttl, err := systemIP(ctx, name); err == nil {
			return ips, ttl, nil
		}
	}
	if len(errs) == 0 {
		errs = append(errs, errNoRecords)
	}
	return nil, 0, fmt.Errorf("%s: %w", name, errors.Join(errs...))
}

func systemIP(ctx context.Context, name string) ([]net.IP, time.Duration, error) {
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, name)
	if err != nil {
		return nil, 0, err
	}
	ips := make([]net.IP, 0, len(addrs))
	for _, a := range addrs {
		ips = append(ips, a.IP)
	}
	return ips, dnsDefaultTTL, nil
}

// query asks the server one question over UDP and returns the answer section.
// A lost datagram is asked again once.
func (d *dnsLookup) query(ctx context.Context, name string, typ dnsmessage.Type) ([]dnsmessage.Resource, error) {
	qname, err := dnsmessage.NewName(strings.TrimSuffix(name, ".") + ".")
	if err != nil {
		return nil, fmt.Errorf("dns %s: %w", name, err)
	}
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(dnsmessage.Question{Name: qname, Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		return nil, err
	}
	msg, err := b.Finish()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, dnsTimeout)
	defer cancel()
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "udp", d.server)
	if err != nil {
		return nil, fmt.Errorf("dns %s %s: %w", typ, name, err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	buf := make([]byte, 4096)
	for try := range 2 {
		if _, err := conn.Write(msg); err != nil {
			return nil, fmt.Errorf("dns %s %s: %w", typ, name, err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(time.Until(deadline) / time.Duration(2-try)))
		for {
			n, err := conn.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && try == 0 {
					break
				}
				return nil, fmt.Errorf("dns %s %s via %s: %w", typ, name, d.server, err)
			}
			var m dnsmessage.Message
			if m.Unpack(buf[:n]) != nil || m.ID != id || !m.Response {
				continue // not the answer to this question
			}
			switch m.RCode {
			case dnsmessage.RCodeSuccess:
				return m.Answers, nil
			case dnsmessage.RCodeNameError:
				return nil, fmt.Errorf("dns %s %s: %w", typ, name, errNoRecords)
			}
			return nil, fmt.Errorf("dns %s %s: server answered %s", typ, name, m.RCode)
		}
	}
	return nil, fmt.Errorf("dns %s %s via %s: no answer", typ, name, d.server)
}
