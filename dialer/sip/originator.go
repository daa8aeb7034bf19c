package sip

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/turbina-dialer/turbina/dialer/sip/internal/sipstack"
)

// DialRequest is one call to place.
type DialRequest struct {
	// To is the destination number, E.164 ("+34911234567").
	To string
	// CallerID is presented in From and P-Asserted-Identity; defaults to the trunk's.
	CallerID string
	// RingTimeout overrides Config.RingTimeout when positive.
	RingTimeout time.Duration
	// AttemptID is sent in the X-Turbina-Attempt header so carrier logs and
	// CDRs can be joined with Turbina's attempt records.
	AttemptID string
	// OnEvent, when set, is called with each progress event, in order, from the
	// call's goroutine. It must not block.
	OnEvent func(Event)
}

// TrunkStatus is a trunk's health and load, for the API and metrics.
type TrunkStatus struct {
	Name         string       `json:"name"`
	Priority     int          `json:"priority"`
	State        CircuitState `json:"state"`
	InFlight     int          `json:"in_flight"`
	MaxChannels  int          `json:"max_channels"`
	Faults       int          `json:"consecutive_faults"`
	OutOfService bool         `json:"out_of_service"`
	LastError    string       `json:"last_error,omitempty"`
	LastChangeAt time.Time    `json:"last_change_at,omitzero"`
	// DownSince is when a probe burst found the trunk down; zero once it recovered.
	DownSince time.Time `json:"down_since,omitzero"`
	// LastDetection is the seconds from the first sign to the trunk marked down,
	// for its last death; Sign is that first sign.
	LastDetection float64 `json:"last_detection_seconds,omitempty"`
	Sign          string  `json:"sign,omitempty"`
	// HeldUntil is when the trunk's hold ends (503 with Retry-After, 402), while
	// one lasts; zero otherwise.
	HeldUntil time.Time `json:"held_until,omitzero"`
	// Alarm is the carrier's last refusal of service ("402 Payment Required")
	// since the trunk last carried a call to a person; "" when none.
	Alarm      string    `json:"alarm,omitempty"`
	AlarmSince time.Time `json:"alarm_since,omitzero"`
	// Registration is the trunk's outbound registration; nil when it does not register.
	Registration *RegistrationStatus `json:"registration,omitempty"`
}

// trunk is a configured trunk with its limits, circuit and SIP stack.
type trunk struct {
	cfg      TrunkConfig
	index    int // config order, the tie break among equal priorities
	host     string
	port     int
	pacer    *pacer
	channels channels
	circuit  circuit
	health   health
	stack    *sipstack.Stack
	dialogUA *sipgo.DialogUA
	// responses is the trunk's response table: its own rows, then the defaults.
	responses responseTable
	// reg is the trunk's outbound registration, nil unless cfg.Register.
	reg *registration
	// resolved is where a trunk given as a host name goes (DNS SRV), nil
	// for one given as host:port.
	resolved *resolution
	// viaHost and viaPort go in Via sent-by and Contact, mediaIP in SDP c=:
	// what the carrier must reach, not necessarily what we listen on.
	viaHost string
	viaPort int
	mediaIP net.IP
	// keepalive is the pause between keepalive OPTIONS; 0: none.
	keepalive time.Duration
	// tlsConf is a tls trunk's client config: its roots and the name its
	// carrier's certificates must be valid for (reuse.go). nil otherwise.
	tlsConf *tls.Config
}

// Originator places calls on a set of SIP trunks. It is safe for concurrent use.
type Originator struct {
	cfg    Config
	log    *slog.Logger
	trunks []*trunk // sorted by priority, then config order
	ports  *portAllocator

	main     *sipstack.Stack   // serves the UDP socket; UDP and TCP trunks use it
	stacks   []*sipstack.Stack // main, then one per TLS trunk (see newStack)
	udpConn  net.PacketConn
	host     string // listening address, perhaps 0.0.0.0 or ::
	sipPort  int
	dns      *dnsLookup
	metrics  *metrics
	now      func() time.Time
	rootCtx  context.Context
	shutdown context.CancelFunc
	wg       sync.WaitGroup

	// tcpLn and tlsLn listen for carriers' own connections (transport.go);
	// nil when no trunk uses their transport.
	tcpLn, tlsLn     net.Listener
	tcpPort, tlsPort int

	mu     sync.Mutex
	closed bool
	calls  map[string]*Call // by Call-ID of the current attempt
	// orphans are INVITEs abandoned unanswered on a dead trunk, by Call-ID.
	orphans map[string]orphaned
}

// New starts an Originator: it binds the SIP UDP socket on cfg.ListenAddr and
// begins probing trunks whose circuits open. Close releases everything.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Originator, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Trunks = slices.Clone(cfg.Trunks)
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("sip config: %w", err)
	}
	warnSRTPInClear(cfg, log.Warn)
	host, _, _ := net.SplitHostPort(cfg.ListenAddr)
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, fmt.Errorf("sip config: listen_addr %q: host must be an IP address", cfg.ListenAddr)
	}
	rootCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	o := &Originator{
		cfg:      cfg,
		log:      log,
		ports:    &portAllocator{ip: ip, min: cfg.RTPPortMin, max: cfg.RTPPortMax},
		host:     host,
		now:      time.Now,
		rootCtx:  rootCtx,
		shutdown: cancel,
		calls:    make(map[string]*Call),
		orphans:  make(map[string]orphaned),
		dns:      newDNSLookup(cfg.DNSServer),
	}
	o.metrics = newMetrics()

	lc := net.ListenConfig{}
	// udp4 for an IPv4 host: on "udp" 0.0.0.0 becomes [::], and sipgo would
	// not find the socket under the address its client sends from, and bind
	// the port again for every request (address already in use).
	network := "udp"
	if ip.To4() != nil {
		network = "udp4"
	}
	pc, err := lc.ListenPacket(ctx, network, cfg.ListenAddr)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("sip listen %s: %w", cfg.ListenAddr, err)
	}
	o.udpConn = pc
	if uc, ok := pc.(*net.UDPConn); ok {
		// Bursts of INVITE responses overflow the default buffer and cost a
		// 500 ms retransmission each; best effort, the kernel may cap it.
		_ = uc.SetReadBuffer(4 << 20)
		_ = uc.SetWriteBuffer(4 << 20)
	}
	o.sipPort = pc.LocalAddr().(*net.UDPAddr).Port

	if err := o.listenStreams(ctx); err != nil {
		o.closeStreams()
		_ = pc.Close()
		cancel()
		return nil, err
	}
	o.main, err = o.newStack(nil, o.tcpPort)
	if err != nil {
		o.closeStreams()
		_ = pc.Close()
		cancel()
		return nil, err
	}
	if err := o.main.StartUDP(ctx, pc); err != nil {
		_ = o.closeStacks()
		o.closeStreams()
		_ = pc.Close()
		cancel()
		return nil, fmt.Errorf("sip listen: %w", err)
	}

	for i, tc := range cfg.Trunks {
		t := &trunk{cfg: tc, index: i, pacer: newPacer(tc.MaxCPS), stack: o.main, health: newHealth(),
			responses: newResponseTable(tc.Responses)}
		t.channels.max = tc.MaxChannels
		t.circuit.faultsToOpen = cfg.FaultsToOpen
		t.circuit.recoverAfter = cfg.RecoverAfter
		t.circuit.window = cfg.FaultWindow.Std()
		name := tc.Name
		t.circuit.onChange = func(s CircuitState) { o.metrics.setState(name, s) }
		h := addressHost(tc.Address)
		t.host = h
		if _, p, err := net.SplitHostPort(tc.Address); err == nil {
			t.port, _ = strconv.Atoi(p)
		} else {
			t.resolved = &resolution{} // the port comes from SRV: the Request-URI has none
		}
		if tc.Register {
			t.reg = newRegistration(tc)
		}
		if tc.Transport == TransportTLS {
			tlsConf, err := trunkTLSConfig(tc, h)
			if err != nil {
				o.closeStacks()
				o.closeStreams()
				cancel()
				return nil, err
			}
			t.tlsConf = tlsConf
			if t.stack, err = o.newStack(tlsConf, o.tlsPort); err != nil {
				o.closeStacks()
				o.closeStreams()
				cancel()
				return nil, err
			}
		}
		t.keepalive = cfg.KeepaliveInterval.Std()
		if tc.KeepaliveInterval != nil {
			t.keepalive = Duration(*tc.KeepaliveInterval).Std()
		}
		if err := o.advertise(t); err != nil {
			o.closeStacks()
			o.closeStreams()
			cancel()
			return nil, err
		}
		if t.dialogUA, err = o.dialogUA(t); err != nil {
			o.closeStacks()
			o.closeStreams()
			cancel()
			return nil, err
		}
		o.metrics.setState(name, CircuitClosed)
		o.metrics.inFlight.WithLabelValues(name).Set(0)
		o.metrics.alarm.WithLabelValues(name).Set(0)
		o.trunks = append(o.trunks, t)
	}
	slices.SortStableFunc(o.trunks, func(a, b *trunk) int { return a.cfg.Priority - b.cfg.Priority })
	// After the trunks: the TLS listener hands connections to their stacks.
	o.serveStreams()

	for _, t := range o.trunks {
		if t.resolved != nil {
			rctx, rcancel := context.WithTimeout(ctx, 2*dnsTimeout)
			next := o.refresh(rctx, t)
			rcancel()
			o.wg.Add(1)
			go o.resolveLoop(t, next)
		}
		o.wg.Add(1)
		go o.monitor(t)
		if t.reg != nil {
			o.wg.Add(1)
			go o.registerLoop(t)
		}
	}
	log.Info("sip originator started", "listen", pc.LocalAddr().String(), "tcp", o.TCPAddr(), "tls", o.TLSAddr(), "trunks", len(o.trunks))
	return o, nil
}

func trunkTLSConfig(tc TrunkConfig, host string) (*tls.Config, error) {
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         host,
		InsecureSkipVerify: tc.TLSInsecureSkipVerify, //nolint:gosec // opt-in per trunk, for labs
	}
	if tc.TLSServerName != "" {
		conf.ServerName = tc.TLSServerName
	}
	if tc.TLSRootCAFile != "" {
		pem, err := os.ReadFile(tc.TLSRootCAFile)
		if err != nil {
			return nil, fmt.Errorf("trunk %q: tls root CA: %w", tc.Name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("trunk %q: tls root CA %s: no certificates", tc.Name, tc.TLSRootCAFile)
		}
		conf.RootCAs = pool
	}
	return conf, nil
}

// newStack builds a sipgo stack that sends from the originator's UDP socket
// and handles requests from trunks. UDP and TCP trunks share the main stack;
// each TLS trunk gets its own, with tlsConf, because sipgo holds one TLS
// client config per user agent and trunks differ in CAs. streamPort is the
// listening port its TCP or TLS requests name in Via.
func (o *Originator) newStack(tlsConf *tls.Config, streamPort int) (*sipstack.Stack, error) {
	s, err := sipstack.New(sipstack.Config{
		UserAgent:         o.cfg.UserAgent,
		Host:              o.host,
		Port:              o.sipPort,
		StreamPort:        streamPort,
		TLS:               tlsConf,
		UnhandledResponse: o.strayResponse,
		Logger:            o.log.With("component", "sipgo"),
	})
	if err != nil {
		return nil, fmt.Errorf("sip: %w", err)
	}
	s.UA.TransportLayer().OnMessage(func(m sip.Message) { o.adoptConnection(s, m) })
	s.Server.OnBye(o.onBye)
	s.Server.OnOptions(o.onOptions)
	s.Server.OnInvite(o.onInvite)
	s.Server.OnUpdate(o.onUpdate)
	s.Server.OnAck(o.onAck)
	s.Server.OnNoRoute(o.onOther)
	s.Server.OnCancel(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	})
	o.stacks = append(o.stacks, s)
	return s, nil
}

// advertise works out what t's carrier is told to reach: the trunk's
// external_addr, else the originator's, else the listening address, or when
// that is any address, the local address the system routes to the trunk from.
func (o *Originator) advertise(t *trunk) error {
	ext, rtpExt := t.cfg.ExternalAddr, t.cfg.RTPExternalAddr
	if ext == "" {
		ext = o.cfg.ExternalAddr
		if rtpExt == "" {
			rtpExt = o.cfg.RTPExternalAddr
		}
	}
	host, port := o.host, o.sipPort
	switch {
	case ext != "":
		h, p, _ := splitExternal(ext) // validated
		host = h
		if p != 0 {
			port = p
		}
	case net.ParseIP(o.host).IsUnspecified():
		local, err := routeFrom(t.cfg.Address)
		if err != nil {
			return fmt.Errorf("sip config: trunk %q: listen_addr %s: no local address routes to %s (set external_addr): %w",
				t.cfg.Name, o.cfg.ListenAddr, t.cfg.Address, err)
		}
		host = local.String()
	}
	t.viaHost, t.viaPort = host, port
	if t.mediaIP = net.ParseIP(rtpExt); t.mediaIP == nil {
		t.mediaIP = net.ParseIP(host) // validated: an IP unless rtpExt is set
	}
	return nil
}

// routeFrom is the local address the system would send to addr from. No
// packet leaves: connecting a UDP socket only picks the route.
func routeFrom(addr string) (net.IP, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP, nil
}

// dialogUA returns the dialog handle for a trunk: which client sends its
// requests (with the trunk's advertised Via and rport) and what Contact it
// advertises.
func (o *Originator) dialogUA(t *trunk) (*sipgo.DialogUA, error) {
	udp, stream, err := t.stack.Advertise(t.viaHost, t.viaPort)
	if err != nil {
		return nil, fmt.Errorf("sip: trunk %q: %w", t.cfg.Name, err)
	}
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "turbina", Host: t.viaHost}}
	client := udp
	if t.cfg.Transport == TransportUDP {
		contact.Address.Port = t.viaPort
	} else {
		// The listening port, not the connection's: the carrier may close
		// the connection and open its own for a BYE (transport.go).
		client = stream
		stream.TxRequester = streamRequester{ua: t.stack.UA, password: t.cfg.Password, reuse: t.cfg.reuse()}
		contact.Address.Port = o.streamPort(t.cfg.Transport)
		contact.Address.UriParams = sip.NewParams()
		contact.Address.UriParams.Add("transport", t.cfg.Transport)
	}
	return &sipgo.DialogUA{Client: client, ContactHDR: contact}, nil
}

// LocalAddr returns the SIP UDP address the Originator listens on.
func (o *Originator) LocalAddr() net.Addr { return o.udpConn.LocalAddr() }

// Dial places a call. It picks the preferred trunk whose circuit is closed
// and that has a free channel, waits (within ctx) for that trunk's
// calls-per-second slot, and returns once the call is under way; the INVITE,
// any failover and the rest of the call continue in the background until
// [Call.Done]. ctx bounds only Dial itself, as with net.Dialer: cancelling it
// later does not end the call (use [Call.Hangup]).
//
// Dial returns ErrNoTrunk at once when every trunk's circuit is open, and
// ErrTrunksBusy when the healthy trunks are all at their channel limit.
func (o *Originator) Dial(ctx context.Context, req DialRequest) (*Call, error) {
	if req.To == "" {
		return nil, errors.New("sip dial: empty destination")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sip dial: %w", err)
	}
	unfit, err := o.unfit(req)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	closed := o.closed
	o.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	t, err := o.acquire(unfit)
	if err != nil {
		return nil, err
	}
	if err := o.waitSlot(ctx, t); err != nil {
		o.release(t)
		return nil, fmt.Errorf("sip dial: waiting for %s cps slot: %w", t.cfg.Name, err)
	}
	media, err := o.ports.open()
	if err != nil {
		o.release(t)
		return nil, fmt.Errorf("sip dial: %w", err)
	}
	c := newCall(o, req, media)
	c.unfit = unfit
	o.wg.Add(1)
	go c.run(t)
	return c, nil
}

// acquire takes a channel on the first usable trunk not in skip.
func (o *Originator) acquire(skip []*trunk) (*trunk, error) {
	healthy := false
	for _, t := range o.trunks {
		o.endHold(t)
		if slices.Contains(skip, t) || t.circuit.current() != CircuitClosed {
			continue
		}
		healthy = true
		if t.channels.tryAcquire(t.admissionCap(o.now())) {
			o.metrics.inFlight.WithLabelValues(t.cfg.Name).Inc()
			return t, nil
		}
	}
	if healthy {
		return nil, ErrTrunksBusy
	}
	return nil, ErrNoTrunk
}

// acquireTrunk takes a channel on t itself, for a redirect to it.
func (o *Originator) acquireTrunk(t *trunk) error {
	o.endHold(t)
	if t.circuit.current() != CircuitClosed {
		return ErrNoTrunk
	}
	if !t.channels.tryAcquire(t.admissionCap(o.now())) {
		return ErrTrunksBusy
	}
	o.metrics.inFlight.WithLabelValues(t.cfg.Name).Inc()
	return nil
}

// trunkAt is the configured trunk whose SIP address is the URI's host and
// port (5060, or 5061 for sips, when the URI has none), or nil: a redirect
// goes nowhere else.
func (o *Originator) trunkAt(u sip.Uri) *trunk {
	port := u.Port
	if port == 0 {
		port = 5060
		if u.Scheme == "sips" {
			port = 5061
		}
	}
	for _, t := range o.trunks {
		// A trunk found by SRV has no port of its own: its name is enough.
		if strings.EqualFold(t.host, u.Host) && (t.port == port || t.resolved != nil && u.Port == 0) {
			return t
		}
	}
	return nil
}

// endHold closes a trunk's circuit once its hold is over, and says so.
func (o *Originator) endHold(t *trunk) {
	if t.circuit.releaseHold(o.now()) {
		o.log.Info("sip trunk hold ended", "trunk", t.cfg.Name)
		o.trunkChanged(t)
	}
}

// holdTrunk keeps a trunk from new calls for d, as its carrier asked.
func (o *Originator) holdTrunk(t *trunk, d time.Duration, why string) {
	now := o.now()
	if t.circuit.hold(now, now.Add(d), why) {
		o.log.Warn("sip trunk held", "trunk", t.cfg.Name, "for", d, "why", why)
		o.trunkChanged(t)
	}
}

// alarm raises a trunk's alarm: its carrier refused service. It changes no
// routing, so OnTrunkChange is not told (a carrier failing one call in fifty
// would raise and clear it all day); the status, the metric and the
// wallboard's next second show it.
func (o *Originator) alarm(t *trunk, what string) {
	if t.circuit.raiseAlarm(o.now(), what) {
		o.metrics.alarm.WithLabelValues(t.cfg.Name).Set(1)
		o.log.Info("sip trunk alarm", "trunk", t.cfg.Name, "alarm", what)
	}
}

// clearAlarm ends a trunk's alarm: it carried a call to a person.
func (o *Originator) clearAlarm(t *trunk) {
	if t.circuit.clearAlarm() {
		o.metrics.alarm.WithLabelValues(t.cfg.Name).Set(0)
		o.log.Info("sip trunk alarm cleared", "trunk", t.cfg.Name)
	}
}

func (o *Originator) release(t *trunk) {
	t.channels.release()
	o.metrics.inFlight.WithLabelValues(t.cfg.Name).Dec()
}

// waitSlot sleeps until the trunk's next CPS slot, or ctx ends.
func (o *Originator) waitSlot(ctx context.Context, t *trunk) error {
	d := t.pacer.reserve(o.now())
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Trunks reports every trunk's circuit and load, in priority order.
func (o *Originator) Trunks() []TrunkStatus {
	out := make([]TrunkStatus, 0, len(o.trunks))
	for _, t := range o.trunks {
		out = append(out, o.status(t))
	}
	return out
}

func (o *Originator) status(t *trunk) TrunkStatus {
	c := t.circuit.snapshot()
	t.health.mu.Lock()
	down, detection, sign := t.health.downSince, t.health.lastDetection, t.health.sign
	t.health.mu.Unlock()
	st := TrunkStatus{
		Name: t.cfg.Name, Priority: t.cfg.Priority, State: c.state,
		InFlight: t.channels.load(), MaxChannels: t.cfg.MaxChannels,
		Faults: c.faults, OutOfService: c.forced, LastError: c.lastErr, LastChangeAt: c.changedAt,
		DownSince: down, LastDetection: detection.Seconds(), Sign: sign,
		Alarm: c.alarm, AlarmSince: c.alarmSince,
		Registration: t.reg.status(),
	}
	if o.now().Before(c.heldUntil) {
		st.HeldUntil = c.heldUntil
	}
	return st
}

// ErrUnknownTrunk means no configured trunk has the name given.
var ErrUnknownTrunk = errors.New("sip: unknown trunk")

// SetTrunkOutOfService takes a trunk out of service (calls go to the others, or to
// the next rung when none is left) or puts it back, after which it carries calls
// again once an OPTIONS probe is answered. Calls in progress are not touched.
func (o *Originator) SetTrunkOutOfService(name string, out bool) error {
	for _, t := range o.trunks {
		if t.cfg.Name == name {
			t.circuit.force(out, o.now())
			o.trunkChanged(t)
			return nil
		}
	}
	return fmt.Errorf("%w %q", ErrUnknownTrunk, name)
}

// Close hangs up every call (CANCEL or BYE), stops probing and releases the
// sockets. It waits for calls to end for at most a few seconds.
func (o *Originator) Close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	o.mu.Unlock()
	o.shutdown() // ends probes and tells every call to hang up
	done := make(chan struct{})
	go func() { o.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		o.log.Warn("sip originator: calls still ending at close")
	}
	err := o.closeStacks()
	o.closeStreams()
	_ = o.udpConn.Close()
	return err
}

func (o *Originator) closeStacks() error {
	var errs []error
	for _, s := range o.stacks {
		if err := s.UA.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// probe sends one OPTIONS. Any final response below 500 proves the trunk is
// up: many carriers answer OPTIONS with 403/404/405 and still route calls.
func (o *Originator) probe(t *trunk, timeout time.Duration) error {
	return o.probeCtx(o.rootCtx, t, timeout)
}

func (o *Originator) probeCtx(ctx context.Context, t *trunk, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := t.unresolved(); err != nil {
		return fmt.Errorf("options: %w", err)
	}
	req := sip.NewRequest(sip.OPTIONS, o.trunkURI(t, ""))
	dest := t.destination()
	if dest != "" {
		req.SetDestination(dest)
	}
	req.AppendHeader(sip.NewHeader("User-Agent", o.cfg.UserAgent))
	res, err := t.dialogUA.Client.Do(ctx, req)
	if err != nil {
		// A trunk found by SRV moves on to its next target (RFC 3263 4.3).
		t.resolved.skip(dest)
		return fmt.Errorf("options %s: %w", t.cfg.Name, err)
	}
	if res.StatusCode >= 500 {
		return fmt.Errorf("options %s: %d %s", t.cfg.Name, res.StatusCode, res.Reason)
	}
	return nil
}

func (o *Originator) trunkURI(t *trunk, user string) sip.Uri {
	u := sip.Uri{Scheme: "sip", User: user, Host: t.host, Port: t.port}
	if t.cfg.Transport != TransportUDP {
		u.UriParams = sip.NewParams()
		u.UriParams.Add("transport", t.cfg.Transport)
	}
	return u
}

func (o *Originator) register(callID string, c *Call) {
	o.mu.Lock()
	o.calls[callID] = c
	o.mu.Unlock()
}

func (o *Originator) unregister(callID string) {
	o.mu.Lock()
	delete(o.calls, callID)
	o.mu.Unlock()
}

func (o *Originator) lookup(callID string) *Call {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.calls[callID]
}

// onBye handles a BYE from a carrier.
func (o *Originator) onBye(req *sip.Request, tx sip.ServerTransaction) {
	var c *Call
	if id := req.CallID(); id != nil {
		c = o.lookup(id.Value())
	}
	if c == nil || !c.remoteBye(req, tx) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	}
}

// onInvite refuses new calls (Turbina only originates) and answers
// re-INVITEs in a live call (Call.onReinvite).
func (o *Originator) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if c := o.inDialog(req); c != nil {
		c.onReinvite(req, tx)
		return
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, 403, "Forbidden", nil))
}

// strayResponse handles responses that match no transaction: retransmitted
// 200s after the INVITE transaction ended, or forged/garbled ones. A 2xx to an
// INVITE that we no longer track is a call someone answered that nobody
// listens to; it is only logged, since ACK/BYE to an unknown dialog would
// let anyone aim our BYEs at a third party.
//
// The exception is a call we ended trunk_down before any response: its dialog
// is ours, so a 200 for it is ACKed and BYEd (adoptLateAnswer).
func (o *Originator) strayResponse(res *sip.Response) {
	if o.adoptLateAnswer(res) {
		return
	}
	o.log.Debug("sip: response for no transaction", "status", res.StatusCode, "call_id", callIDOf(res))
}

func callIDOf(m sip.Message) string {
	if r, ok := m.(*sip.Response); ok && r.CallID() != nil {
		return r.CallID().Value()
	}
	if r, ok := m.(*sip.Request); ok && r.CallID() != nil {
		return r.CallID().Value()
	}
	return ""
}
