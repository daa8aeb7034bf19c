package sip

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/turbina-dialer/turbina/dialer/sip/internal/sipstack"
)

// A trunk over TCP or TLS sends its INVITE on a connection from an ephemeral
// port, but a carrier closes idle connections (and an SBC in front of it may
// be a different box from the one that took the INVITE): its BYE, re-INVITE or
// UPDATE comes on a connection of its own, to the address in our Contact. So
// each stream transport a trunk uses has a listening socket, and its port, not
// the connection's, is what Contact and Via carry. Via also carries alias
// (RFC 5923 section 5), unless the trunk's connection_reuse is false: a
// carrier that supports it sends its requests back on our connection while it
// lasts instead of opening one. The other way round is reuse.go.

// usesTransport reports whether any trunk is configured with transport tr.
func (c *Config) usesTransport(tr string) bool {
	return slices.ContainsFunc(c.Trunks, func(t TrunkConfig) bool { return t.Transport == tr })
}

// validateStreams checks the TCP and TLS listening addresses and the TLS
// listener's certificate, naming the field at fault.
func (c *Config) validateStreams() error {
	for _, l := range []struct{ name, addr string }{{"listen_tcp", c.ListenTCP}, {"listen_tls", c.ListenTLS}} {
		if l.addr == "" {
			continue
		}
		host, port, err := net.SplitHostPort(l.addr)
		if err != nil {
			return fmt.Errorf("%s %q: %w", l.name, l.addr, err)
		}
		if net.ParseIP(host) == nil {
			return fmt.Errorf("%s %q: host must be an IP address", l.name, l.addr)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("%s %q: bad port", l.name, l.addr)
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return fmt.Errorf("tls_cert_file %q and tls_key_file %q: set both or neither", c.TLSCertFile, c.TLSKeyFile)
	}
	if c.usesTransport(TransportTLS) && c.TLSCertFile == "" {
		// Without a listener a carrier's own connection for a BYE has nowhere
		// to go, and the call would outlive its person.
		return errors.New("tls_cert_file and tls_key_file: required when a trunk uses transport tls (the certificate Turbina's TLS listener presents to the carrier's connections)")
	}
	return nil
}

// listenStreams opens the TCP and TLS listeners that the trunks' transports
// need, after the UDP socket (their default ports follow it).
func (o *Originator) listenStreams(ctx context.Context) error {
	host, udpPortText, _ := net.SplitHostPort(o.cfg.ListenAddr)
	ephemeral := udpPortText == "0"
	lc := net.ListenConfig{}
	if o.cfg.usesTransport(TransportTCP) {
		addr, fallback := o.cfg.ListenTCP, ""
		if addr == "" {
			addr = net.JoinHostPort(host, strconv.Itoa(o.sipPort))
			if ephemeral {
				// An ephemeral UDP port's TCP twin may be someone else's.
				fallback = net.JoinHostPort(host, "0")
			}
		}
		l, err := lc.Listen(ctx, "tcp", addr)
		if err != nil && fallback != "" {
			l, err = lc.Listen(ctx, "tcp", fallback)
		}
		if err != nil {
			return fmt.Errorf("sip listen_tcp %s: %w", addr, err)
		}
		o.tcpLn = l
		o.tcpPort = l.Addr().(*net.TCPAddr).Port
	}
	if o.cfg.usesTransport(TransportTLS) {
		cert, err := tls.LoadX509KeyPair(o.cfg.TLSCertFile, o.cfg.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("sip tls_cert_file %s, tls_key_file %s: %w", o.cfg.TLSCertFile, o.cfg.TLSKeyFile, err)
		}
		addr := o.cfg.ListenTLS
		if addr == "" {
			port := 0
			if !ephemeral {
				port = o.sipPort + 1
			}
			addr = net.JoinHostPort(host, strconv.Itoa(port))
		}
		l, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("sip listen_tls %s: %w", addr, err)
		}
		o.tlsPort = l.Addr().(*net.TCPAddr).Port
		// A carrier's certificate, when it has one, is what lets its
		// connection carry our requests (reuse.go); checked there, per trunk,
		// so a carrier without one still connects.
		o.tlsLn = tls.NewListener(l, &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert},
			ClientAuth: tls.RequestClientCert})
	}
	return nil
}

// serveStreams hands the TCP listener to the main stack, and the TLS
// listener's connections to the stacks of the trunks they come from
// (dispatchTLS). Every stack's handlers (BYE, re-INVITE, OPTIONS) serve every
// trunk's calls.
func (o *Originator) serveStreams() {
	if o.tcpLn != nil {
		go func() { _ = o.main.Server.ServeTCP(o.tcpLn) }()
	}
	if o.tlsLn != nil {
		go o.dispatchTLS()
	}
}

// handshakeTimeout bounds a TLS handshake on the listener.
const handshakeTimeout = 10 * time.Second

// dispatchTLS accepts the TLS listener's connections until it is closed and,
// once a connection's handshake is done, hands it to the stack of the tls
// trunk with connection reuse whose carrier its certificate is valid for, or
// else to the main stack. sipgo reads a connection on the stack it was served
// on: only there do the trunk's requests, and the responses to them, find it
// (reuse.go).
func (o *Originator) dispatchTLS() {
	queues := map[*sipstack.Stack]*connQueue{}
	for _, s := range o.stacks {
		q := newConnQueue(o.tlsLn.Addr())
		queues[s] = q
		go func() { _ = s.Server.ServeTLS(q) }()
	}
	defer func() {
		for _, q := range queues {
			_ = q.Close()
		}
	}()
	for {
		c, err := o.tlsLn.Accept()
		if err != nil {
			return
		}
		go func() {
			tc := c.(*tls.Conn) // from tls.NewListener
			ctx, cancel := context.WithTimeout(o.rootCtx, handshakeTimeout)
			err := tc.HandshakeContext(ctx)
			cancel()
			if err != nil {
				o.log.Debug("sip tls handshake failed", "from", c.RemoteAddr().String(), "error", err)
				_ = c.Close()
				return
			}
			s := o.main
			if t := o.certifiedTrunk(tc.ConnectionState().PeerCertificates); t != nil {
				s = t.stack
			}
			queues[s].push(c)
		}()
	}
}

// connQueue is a net.Listener whose connections were accepted elsewhere.
type connQueue struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// push hands c to Accept; c is closed if the queue is.
func (q *connQueue) push(c net.Conn) {
	select {
	case q.conns <- c:
	case <-q.done:
		_ = c.Close()
	}
}

// Accept implements net.Listener.
func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

// Addr implements net.Listener.
func (q *connQueue) Addr() net.Addr { return q.addr }

// closeStreams closes the TCP and TLS listeners.
func (o *Originator) closeStreams() {
	for _, l := range []net.Listener{o.tcpLn, o.tlsLn} {
		if l != nil {
			_ = l.Close()
		}
	}
}

// streamPort is the listening port of a stream transport, for Contact and Via.
func (o *Originator) streamPort(transport string) int {
	if transport == TransportTLS {
		return o.tlsPort
	}
	return o.tcpPort
}

// TCPAddr is the address the SIP TCP listener serves, or nil when no trunk
// uses tcp.
func (o *Originator) TCPAddr() net.Addr {
	if o.tcpLn == nil {
		return nil
	}
	return o.tcpLn.Addr()
}

// TLSAddr is the address the SIP TLS listener serves, or nil when no trunk
// uses tls.
func (o *Originator) TLSAddr() net.Addr {
	if o.tlsLn == nil {
		return nil
	}
	return o.tlsLn.Addr()
}

// streamRequester is the last step of every request a trunk's stream client
// sends: it offers the connection for reuse (alias on Via) and makes the
// digest's uri the Request-URI as sent. sipgo signs the Request-URI without
// its parameters, and a carrier that compares the two (Kamailio's auth does)
// refuses "sip:…;transport=tcp" signed as "sip:…".
type streamRequester struct {
	ua       *sipgo.UserAgent
	password string // the trunk's, to sign with
	reuse    bool   // the trunk's connection_reuse
}

// Request implements sipgo's ClientTransactionRequester. An ACK is no
// transaction: sipgo hands it here too, and it goes straight to the wire.
func (r streamRequester) Request(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	if via := req.Via(); r.reuse && via != nil && !via.Params.Has("alias") {
		via.Params.Add("alias", "")
	}
	if r.reuse {
		pruneAlias(r.ua.TransportLayer().Pool(req.Transport()), destinationKey(req))
	}
	if err := signRequestURI(req, r.password); err != nil {
		return nil, err
	}
	if req.IsAck() {
		return nil, r.ua.TransportLayer().WriteMsg(req)
	}
	tx, err := r.ua.TransactionLayer().Request(ctx, req)
	if err != nil {
		return nil, err
	}
	return tx, nil
}

// signRequestURI signs req's digest credentials again with the Request-URI as
// the request line carries it, when sipgo signed another uri. The challenge's
// nonce, cnonce and count are the ones sipgo used.
func signRequestURI(req *sip.Request, password string) error {
	want := req.Recipient.String()
	for _, name := range []string{"Authorization", "Proxy-Authorization"} {
		h := req.GetHeader(name)
		if h == nil {
			continue
		}
		cred, err := digest.ParseCredentials(h.Value())
		if err != nil || cred.URI == want || cred.Userhash {
			continue // not ours to fix: sent as sipgo built it
		}
		chal := &digest.Challenge{Realm: cred.Realm, Nonce: cred.Nonce, Opaque: cred.Opaque, Algorithm: cred.Algorithm}
		if cred.QOP != "" {
			chal.QOP = []string{cred.QOP}
		}
		body := req.Body()
		signed, err := digest.Digest(chal, digest.Options{
			Method: req.Method.String(), URI: want, Username: cred.Username, Password: password,
			Cnonce: cred.Cnonce, Count: cred.Nc,
			GetBody: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(string(body))), nil },
		})
		if err != nil {
			return fmt.Errorf("sip digest for %s: %w", want, err)
		}
		req.ReplaceHeader(sip.NewHeader(name, signed.String()))
	}
	return nil
}

// destinationKey is the pool key sipgo looks req's connection up by: the
// destination's IP and port, the transport's default port when it names none;
// "" for a destination by name, which no adopted connection is keyed by.
func destinationKey(req *sip.Request) string {
	host, port, err := sip.ParseAddr(req.Destination())
	if err != nil || net.ParseIP(host) == nil {
		return ""
	}
	if port == 0 {
		port = defaultPort(sip.NetworkToLower(req.Transport()))
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}
