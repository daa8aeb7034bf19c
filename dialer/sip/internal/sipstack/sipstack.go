// Package sipstack builds the sipgo user agent, server and clients that the
// originator, the registrar and the carrier simulator each run, and serves
// their UDP socket.
//
// What differs between them — the listening sockets, the user agent name, TLS,
// the handlers — stays with the caller: New builds the stack, the caller
// registers its handlers on Stack.Server, then StartUDP serves the socket.
package sipstack

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Config is what one stack is built with.
type Config struct {
	// UserAgent goes in the User-Agent header of requests.
	UserAgent string
	// Host is the local IP address put in Via and Contact, and the one
	// Stack.Client sends from: the listening address, which may be 0.0.0.0
	// or :: (then see [Stack.Advertise]).
	Host string
	// Port is the local SIP UDP port: Stack.Client sends from Host:Port.
	Port int
	// StreamPort, when set, is the port of the TCP or TLS listener that
	// requests sent by Stream name in their Via (the connection's own port
	// otherwise).
	StreamPort int
	// TLS, when not nil, is the client config of the TLS connections the
	// stack dials. sipgo holds one per user agent.
	TLS *tls.Config
	// UnhandledResponse, when not nil, is given the responses that match no
	// client transaction.
	UnhandledResponse func(*sip.Response)
	// Logger receives sipgo's logs.
	Logger *slog.Logger
}

// Stack is a sipgo user agent with its server and client handles. Closing UA
// closes all of it.
type Stack struct {
	UA     *sipgo.UserAgent
	Server *sipgo.Server
	// Client sends requests from the UDP socket at Host:Port.
	Client *sipgo.Client
	// Stream sends requests over TCP or TLS connections from ephemeral ports.
	Stream *sipgo.Client

	cfg Config
}

// New builds a stack. It listens on nothing yet: see [Stack.StartUDP].
func New(cfg Config) (*Stack, error) {
	txOpts := []sip.TransactionLayerOption{sip.WithTransactionLayerLogger(cfg.Logger)}
	if cfg.UnhandledResponse != nil {
		txOpts = append(txOpts, sip.WithTransactionLayerUnhandledResponseHandler(cfg.UnhandledResponse))
	}
	uaOpts := []sipgo.UserAgentOption{
		sipgo.WithUserAgent(cfg.UserAgent),
		sipgo.WithUserAgentHostname(cfg.Host),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(cfg.Logger)),
		sipgo.WithUserAgentTransactionLayerOptions(txOpts...),
	}
	if cfg.TLS != nil {
		uaOpts = append(uaOpts, sipgo.WithUserAgenTLSConfig(cfg.TLS))
	}
	ua, err := sipgo.NewUA(uaOpts...)
	if err != nil {
		return nil, fmt.Errorf("user agent: %w", err)
	}
	s := &Stack{UA: ua, cfg: cfg}
	if s.Server, err = sipgo.NewServer(ua, sipgo.WithServerLogger(cfg.Logger)); err != nil {
		_ = ua.Close()
		return nil, fmt.Errorf("server: %w", err)
	}
	if s.Client, err = sipgo.NewClient(ua, sipgo.WithClientLogger(cfg.Logger), sipgo.WithClientHostname(cfg.Host),
		sipgo.WithClientConnectionAddr(net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))); err != nil {
		_ = ua.Close()
		return nil, fmt.Errorf("client: %w", err)
	}
	streamOpts := []sipgo.ClientOption{sipgo.WithClientLogger(cfg.Logger), sipgo.WithClientHostname(cfg.Host)}
	if cfg.StreamPort > 0 {
		streamOpts = append(streamOpts, sipgo.WithClientPort(cfg.StreamPort))
	}
	if s.Stream, err = sipgo.NewClient(ua, streamOpts...); err != nil {
		_ = ua.Close()
		return nil, fmt.Errorf("client: %w", err)
	}
	return s, nil
}

// Advertise returns clients that send as Stack.Client and Stack.Stream do,
// but put host and port in Via sent-by (for Stream: StreamPort, or when that
// is 0 the connection's own) with
// rport (RFC 3581), so that a carrier behind which, or a NAT behind which, the
// socket's address means nothing answers where the request came from, and
// learns the address it sees.
func (s *Stack) Advertise(host string, port int) (udp, stream *sipgo.Client, err error) {
	cfg := s.cfg
	if udp, err = sipgo.NewClient(s.UA, sipgo.WithClientLogger(cfg.Logger), sipgo.WithClientHostname(host),
		sipgo.WithClientPort(port), sipgo.WithClientNAT(),
		sipgo.WithClientConnectionAddr(net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))); err != nil {
		return nil, nil, fmt.Errorf("client: %w", err)
	}
	streamOpts := []sipgo.ClientOption{sipgo.WithClientLogger(cfg.Logger), sipgo.WithClientHostname(host), sipgo.WithClientNAT()}
	if cfg.StreamPort > 0 {
		streamOpts = append(streamOpts, sipgo.WithClientPort(cfg.StreamPort))
	}
	if stream, err = sipgo.NewClient(s.UA, streamOpts...); err != nil {
		return nil, nil, fmt.Errorf("client: %w", err)
	}
	return udp, stream, nil
}

// startTimeout bounds how long StartUDP waits for sipgo to take the socket.
const startTimeout = 2 * time.Second

// StartUDP serves pc in the background until s.UA is closed, and returns once
// sipgo holds pc in its connection pool: sipgo adds it from the serving
// goroutine, and a request sent before that would bind the port again. It
// gives up after two seconds or when ctx is done; s.UA and pc are left for
// the caller to close.
func (s *Stack) StartUDP(ctx context.Context, pc net.PacketConn) error {
	go func() { _ = s.Server.ServeUDP(pc) }()
	addr := pc.LocalAddr().String()
	deadline := time.Now().Add(startTimeout)
	for {
		if c, _ := s.UA.TransportLayer().GetConnection("udp", addr); c != nil {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("udp listener did not start: %w", err)
		}
		if time.Now().After(deadline) {
			return errors.New("udp listener did not start")
		}
		time.Sleep(time.Millisecond)
	}
}
