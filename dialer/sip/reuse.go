package sip

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"strconv"

	"github.com/emiago/sipgo/sip"

	"github.com/turbina-dialer/turbina/dialer/sip/internal/sipstack"
)

// Connection reuse (RFC 5923), the carrier's way round: a carrier that opens a
// connection to our listener and puts alias in its Via offers it for our
// requests to its sent-by, so that it need not accept connections (a carrier
// behind NAT or a firewall cannot) and one connection carries both ways.
//
// sipgo keeps a stream transport's connections in a pool keyed by address: an
// accepted connection under its remote and local addresses, which for a
// carrier are an ephemeral port, never the port its Via names; and a request
// looks up its destination there before dialing. So adopting a connection is
// one more key in the pool: the connection's source IP (as Kamailio and
// OpenSIPS alias, so a peer can only speak for its own address) with the
// Via's port. sipgo forgets the connection's own keys when it closes, not
// ours: before each request the key is dropped when its connection is gone
// (pruneAlias), and the request dials a new one.
//
// Only a connection from a trunk's carrier is adopted, for a trunk with
// connection_reuse on: over TCP one from an address of the trunk, over TLS
// one whose client certificate is valid for the trunk's host (RFC 5923
// section 6), checked against the trunk's roots as the carrier's server
// certificate is. sipgo reads a connection on the stack that accepted it, and
// a TLS trunk has a stack of its own (newStack): so the TLS listener hands
// each connection, once its handshake has shown the certificate, to the stack
// of the trunk it certifies for (tlsDispatch), where that trunk's requests,
// and the responses to them, find it.

// reuse reports whether the trunk takes part in connection reuse.
func (tc TrunkConfig) reuse() bool {
	return tc.Transport != TransportUDP && (tc.ConnectionReuse == nil || *tc.ConnectionReuse)
}

// adoptConnection is the transport-layer hook of stack s: a request that
// arrived with alias in its top Via on a connection from a trunk's carrier
// makes the connection the one for requests to the Via's port at the
// connection's source IP.
func (o *Originator) adoptConnection(s *sipstack.Stack, msg sip.Message) {
	req, ok := msg.(*sip.Request)
	if !ok {
		return
	}
	network := sip.NetworkToLower(req.Transport())
	if network != TransportTCP && network != TransportTLS {
		return
	}
	via := req.Via()
	if via == nil || via.Params == nil || !via.Params.Has("alias") {
		return
	}
	src := req.Source()
	host, _, err := net.SplitHostPort(src)
	ip := net.ParseIP(host)
	if err != nil || ip == nil {
		return
	}
	port := via.Port
	if port == 0 {
		port = defaultPort(network)
	}
	alias := net.JoinHostPort(ip.String(), strconv.Itoa(port))
	pool := s.UA.TransportLayer().Pool(network)
	if pool == nil {
		return
	}
	conn := pool.Get(src)
	if conn == nil {
		return // closed already
	}
	defer conn.Ref(-1) // Get took a reference for a request; none is sent here
	if alias == src {
		return // the carrier's connection comes from the port it names: sipgo finds it already
	}
	t := o.adoptingTrunk(s, network, ip, conn)
	if t == nil {
		o.log.Debug("sip connection offered for reuse by no trunk's carrier", "transport", network, "from", src, "alias", alias)
		return
	}
	if cur := pool.Get(alias); cur != nil {
		cur.Ref(-1)
		if cur == conn {
			return // adopted by an earlier request
		}
	}
	pool.Add(alias, conn)
	o.log.Info("sip connection from carrier reused", "trunk", t.cfg.Name, "transport", network, "from", src, "for", alias)
}

// adoptingTrunk is the trunk on stack s whose carrier conn, from ip, comes
// from, with connection reuse on; nil when none.
func (o *Originator) adoptingTrunk(s *sipstack.Stack, network string, ip net.IP, conn sip.Connection) *trunk {
	for _, t := range o.trunks {
		if t.stack != s || t.cfg.Transport != network || !t.cfg.reuse() {
			continue
		}
		if network == TransportTCP && t.hasIP(ip) {
			return t
		}
		if network == TransportTLS && t.certifies(peerCertificates(conn)) {
			return t
		}
	}
	return nil
}

// certifiedTrunk is the first tls trunk with connection reuse for whose
// carrier certs are valid; nil when none.
func (o *Originator) certifiedTrunk(certs []*x509.Certificate) *trunk {
	for _, t := range o.trunks {
		if t.cfg.Transport == TransportTLS && t.cfg.reuse() && t.certifies(certs) {
			return t
		}
	}
	return nil
}

// hasIP reports whether ip is the trunk's address, or one of those its name
// resolved to.
func (t *trunk) hasIP(ip net.IP) bool {
	if ip.Equal(net.ParseIP(t.host)) {
		return true
	}
	r := t.resolved
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.addrs {
		if h, _, err := net.SplitHostPort(a); err == nil && ip.Equal(net.ParseIP(h)) {
			return true
		}
	}
	return false
}

// certifies reports whether certs (a TLS peer's chain, leaf first) are valid
// for the trunk's host by the trunk's roots, as its server certificate is
// checked when we connect. Any extended key usage is accepted: carriers'
// certificates are server certificates, and not all say clientAuth.
func (t *trunk) certifies(certs []*x509.Certificate) bool {
	if t.tlsConf == nil || len(certs) == 0 {
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots: t.tlsConf.RootCAs, Intermediates: inter, DNSName: t.tlsConf.ServerName,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err == nil
}

// peerCertificates is the chain the TLS peer of conn presented; nil for a
// connection that is not TLS or had none.
func peerCertificates(conn sip.Connection) []*x509.Certificate {
	tc, ok := conn.(*sip.TCPConnection)
	if !ok {
		return nil
	}
	tlsConn, ok := tc.Conn.(*tls.Conn)
	if !ok {
		return nil
	}
	return tlsConn.ConnectionState().PeerCertificates
}

// pruneAlias drops pool's entry for addr when it is a connection adopted for
// addr that has closed since: sipgo removes the keys it made when the
// connection's reader ends, not the alias, and would write to the dead
// connection. Connections sipgo dialed to addr itself are sipgo's to manage.
func pruneAlias(pool *sip.ConnectionPool, addr string) {
	if pool == nil {
		return
	}
	conn := pool.Get(addr)
	if conn == nil {
		return
	}
	defer conn.Ref(-1)
	rc, ok := conn.(interface{ RemoteAddr() net.Addr })
	if !ok {
		return
	}
	remote := rc.RemoteAddr().String()
	if remote == addr {
		return
	}
	if live := pool.Get(remote); live != nil {
		live.Ref(-1)
		if live == conn {
			return
		}
	}
	pool.Delete(addr)
}
