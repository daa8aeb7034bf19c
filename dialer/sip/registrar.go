package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/turbina-dialer/turbina/dialer/sip/internal/sipstack"
	"github.com/turbina-dialer/turbina/storage"
)

// Credentials looks up the SIP account of an agent's phone. The caller (the
// storage layer, in production) implements it; the registrar never sees or
// stores passwords, only their digest HA1.
type Credentials interface {
	// PhoneHA1 returns the digest HA1 of the phone account username in realm,
	// hex MD5(username:realm:password) (RFC 7616 3.4.2), and the agent it
	// belongs to. ok is false
	// when there is no such account, or none for realm; err is for lookups
	// that could not be made (the phone is told to retry later).
	PhoneHA1(ctx context.Context, username, realm string) (ha1 string, agentID int64, ok bool, err error)
}

// CredentialsFunc adapts a function to [Credentials].
type CredentialsFunc func(ctx context.Context, username, realm string) (ha1 string, agentID int64, ok bool, err error)

// PhoneHA1 implements [Credentials].
func (f CredentialsFunc) PhoneHA1(ctx context.Context, username, realm string) (string, int64, bool, error) {
	return f(ctx, username, realm)
}

// DefaultRealm is the digest realm of a registrar whose config names none.
const DefaultRealm = "turbina"

// RegistrarConfig configures a [Registrar].
type RegistrarConfig struct {
	// ListenAddr is the host:port the registrar listens on, for UDP and TCP
	// alike (default 127.0.0.1:5070; port 0 picks a free one). The host must
	// be an IP address; it also goes in Contact, Via and the SDP of calls to
	// phones.
	ListenAddr string `json:"listen_addr,omitempty"`
	// Realm is the digest authentication realm (default DefaultRealm). Phone
	// secrets are kept as HA1, which depends on it: after a change of realm,
	// every phone secret must be set again.
	Realm string `json:"realm,omitempty"`
	// NonceTTL is how long a nonce stays fresh (default 5m); a phone that
	// answers an older one is challenged again with stale=true.
	NonceTTL Duration `json:"nonce_ttl,omitempty"`
	// MinExpires, MaxExpires and DefaultExpires bound registrations: shorter
	// ones are refused with 423 Interval Too Brief, longer ones are cut to
	// MaxExpires, and a REGISTER that names none gets DefaultExpires
	// (defaults 60s, 1h, 1h).
	MinExpires     Duration `json:"min_expires,omitempty"`
	MaxExpires     Duration `json:"max_expires,omitempty"`
	DefaultExpires Duration `json:"default_expires,omitempty"`
	// MaxContacts caps an agent's simultaneous bindings (default 4); a new
	// contact beyond it replaces the one that would expire first.
	MaxContacts int `json:"max_contacts,omitempty"`
	// RTPPortMin and RTPPortMax bound the local RTP ports of calls to phones
	// (default: ephemeral).
	RTPPortMin int `json:"rtp_port_min,omitempty"`
	RTPPortMax int `json:"rtp_port_max,omitempty"`
	// InviteTimeout is how long an INVITE to a phone may go without any
	// response before the phone counts as unreachable (default 3s).
	InviteTimeout Duration `json:"invite_timeout,omitempty"`
	// AnswerTimeout is how long a phone may ring before the call is
	// cancelled (default 20s). Agent phones are set to answer at once.
	AnswerTimeout Duration `json:"answer_timeout,omitempty"`
	// UserAgent is sent in User-Agent and Server headers (default "Turbina").
	UserAgent string `json:"user_agent,omitempty"`
	// KeepaliveInterval is how often every registered phone, and every phone
	// in a nailed-up call, is sent an OPTIONS (default 30s); expired
	// registrations are dropped at the same pace. A phone that crashed, lost
	// its network or sits behind a NAT binding that lapsed answers nothing,
	// while its registration and the nailed-up call would otherwise look alive
	// until they expire or a customer is put through to silence.
	KeepaliveInterval Duration `json:"keepalive_interval,omitempty"`
	// KeepaliveTimeout is how long a phone may leave an OPTIONS unanswered
	// (over UDP, retransmissions included) before it is taken as lost: its
	// binding is removed and its nailed-up call ends with ErrPhoneLost
	// (default 5s).
	KeepaliveTimeout Duration `json:"keepalive_timeout,omitempty"`
	// MinSE is the smallest session interval (RFC 4028) a phone may ask for
	// in a re-INVITE or UPDATE (default 90s, RFC 4028's floor; lower values
	// are for tests). A phone that asks for a timer and does not refresh the
	// call in time has it ended.
	MinSE Duration `json:"min_se,omitempty"`

	// Node names this node on the bindings it shares; set by the program.
	Node string `json:"-"`
	// Shared, when set, keeps every binding where the other nodes on the
	// database find it (the local ones stay in memory too): any node calls a
	// phone registered over UDP to another (from its own socket, to the
	// phone's source address), shows it registered, and refuses a REGISTER
	// replayed to it. Set by the program.
	Shared storage.PhoneBindingStore `json:"-"`
	// NonceKey is the key digest nonces are made and checked under (at least
	// 16 bytes): nodes that share it accept each other's nonces, so a phone
	// behind a shared address may be challenged by one node and answer
	// another. Nil: a random key of this registrar's own. Set by the program.
	NonceKey []byte `json:"-"`
}

func (c *RegistrarConfig) applyDefaults() {
	if c.ListenAddr == "" {
		c.ListenAddr = "127.0.0.1:5070"
	}
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	if c.NonceTTL <= 0 {
		c.NonceTTL = Duration(5 * time.Minute)
	}
	if c.MinExpires <= 0 {
		c.MinExpires = Duration(60 * time.Second)
	}
	if c.MaxExpires <= 0 {
		c.MaxExpires = Duration(time.Hour)
	}
	if c.DefaultExpires <= 0 {
		c.DefaultExpires = c.MaxExpires
	}
	if c.MaxContacts <= 0 {
		c.MaxContacts = 4
	}
	if c.InviteTimeout <= 0 {
		c.InviteTimeout = Duration(3 * time.Second)
	}
	if c.AnswerTimeout <= 0 {
		c.AnswerTimeout = Duration(20 * time.Second)
	}
	if c.UserAgent == "" {
		c.UserAgent = "Turbina"
	}
	if c.KeepaliveInterval <= 0 {
		c.KeepaliveInterval = Duration(30 * time.Second)
	}
	if c.KeepaliveTimeout <= 0 {
		c.KeepaliveTimeout = Duration(5 * time.Second)
	}
	if c.MinSE <= 0 {
		c.MinSE = Duration(rfcMinSE)
	}
}

func (c *RegistrarConfig) validate() error {
	host, _, err := net.SplitHostPort(c.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen_addr %q: %w", c.ListenAddr, err)
	}
	if net.ParseIP(host) == nil {
		return fmt.Errorf("listen_addr %q: host must be an IP address", c.ListenAddr)
	}
	if c.MinExpires > c.MaxExpires {
		return fmt.Errorf("min_expires %s above max_expires %s", c.MinExpires.Std(), c.MaxExpires.Std())
	}
	if c.DefaultExpires < c.MinExpires || c.DefaultExpires > c.MaxExpires {
		return fmt.Errorf("default_expires %s outside %s-%s", c.DefaultExpires.Std(), c.MinExpires.Std(), c.MaxExpires.Std())
	}
	if c.RTPPortMin < 0 || c.RTPPortMax > 65535 || c.RTPPortMin > c.RTPPortMax {
		return fmt.Errorf("rtp ports %d-%d: invalid range", c.RTPPortMin, c.RTPPortMax)
	}
	if c.NonceKey != nil && len(c.NonceKey) < minNonceKey {
		return fmt.Errorf("nonce key: %d bytes, want at least %d", len(c.NonceKey), minNonceKey)
	}
	if strings.ContainsAny(c.Realm, "\"\\\r\n") {
		return fmt.Errorf("realm %q: quotes, backslashes and line breaks are not allowed", c.Realm)
	}
	return nil
}

// Binding is one registered contact of an agent's phone.
type Binding struct {
	AgentID  int64  `json:"agent_id"`
	Username string `json:"username"`
	// Contact is the URI the phone registered.
	Contact string `json:"contact"`
	// Source is the address the REGISTER came from. Calls go there rather
	// than to Contact, so that phones behind NAT are reached.
	Source string `json:"source"`
	// Transport is "udp" or "tcp", as the REGISTER came.
	Transport string `json:"transport"`
	// UserAgent is the phone's User-Agent header.
	UserAgent    string    `json:"user_agent,omitempty"`
	RegisteredAt time.Time `json:"registered_at"` // last refresh
	Expires      time.Time `json:"expires"`
	// Node is the node whose registrar took the REGISTER (RegistrarConfig.
	// Node); empty on a registrar alone.
	Node string `json:"node,omitempty"`

	contact sip.Uri
	aor     sip.Uri
	callID  string
	cseq    uint32
	// unshared: the database did not take it (RegistrarConfig.Shared), so
	// its absence there says nothing.
	unshared bool
}

// Errors of the registrar and of calls to agent phones.
var (
	// ErrNotRegistered means the agent has no live registration.
	ErrNotRegistered = errors.New("sip: agent phone is not registered")
	// ErrPhoneBusy means the phone answered 486, 600 or 603.
	ErrPhoneBusy = errors.New("sip: agent phone is busy")
	// ErrPhoneNoAnswer means the phone rang out, or answered 480 or 408.
	ErrPhoneNoAnswer = errors.New("sip: agent phone did not answer")
	// ErrPhoneUnreachable means the phone sent no response at all, or the
	// request could not be sent.
	ErrPhoneUnreachable = errors.New("sip: agent phone is unreachable")
	// ErrPhoneRejected means any other failure response.
	ErrPhoneRejected = errors.New("sip: agent phone rejected the call")
	// ErrRegistrarClosed means the Registrar was closed.
	ErrRegistrarClosed = errors.New("sip: registrar closed")
	// ErrPhoneLost means the phone stopped answering the registrar's
	// keepalive OPTIONS (RegistrarConfig.KeepaliveInterval).
	ErrPhoneLost = errors.New("sip: agent phone stopped answering")
	// ErrPhoneElsewhere means the phone's only live registration is over TCP
	// to another node: only that node holds its connection, so this
	// one cannot call it. The phone must register through a shared address.
	ErrPhoneElsewhere = errors.New("sip: agent phone is registered over TCP to another node")
)

// credentialsTimeout bounds one Credentials lookup.
const credentialsTimeout = 5 * time.Second

// Registrar is the SIP registrar agents' phones register to, and the user
// agent that calls them: an agent's phone is called once at login and the
// call stays up (the leg is nailed up) while customers are switched onto it.
//
// It listens on one address for UDP and TCP, authenticates REGISTERs with
// digest (MD5, qop=auth), keeps bindings in memory with their expiry, answers
// OPTIONS and sends them: a phone that stops answering is taken as lost. It is
// safe for concurrent use.
type Registrar struct {
	cfg    RegistrarConfig
	log    *slog.Logger
	creds  Credentials
	nonces *nonces
	now    func() time.Time
	ports  *portAllocator

	ua        *sipgo.UserAgent
	udpUA     *sipgo.DialogUA // calls to phones registered over UDP
	tcpUA     *sipgo.DialogUA // and over TCP
	udpConn   net.PacketConn
	tcpLn     net.Listener
	host      string
	port      int
	rootCtx   context.Context
	shutdown  context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	mu       sync.Mutex
	closed   bool
	bindings map[int64][]*Binding  // by agent
	calls    map[string]*AgentCall // by Call-ID

	keepalives atomic.Uint64 // OPTIONS phones answered
}

// NewRegistrar starts a Registrar on cfg.ListenAddr (UDP and TCP). ctx bounds
// only the start; Close stops it.
func NewRegistrar(ctx context.Context, cfg RegistrarConfig, creds Credentials, log *slog.Logger) (*Registrar, error) {
	return newRegistrar(ctx, cfg, creds, log, time.Now)
}

func newRegistrar(ctx context.Context, cfg RegistrarConfig, creds Credentials, log *slog.Logger, now func() time.Time) (*Registrar, error) {
	if creds == nil {
		return nil, errors.New("sip registrar: no credentials")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("sip registrar config: %w", err)
	}
	ns, err := newNonces(cfg.NonceTTL.Std(), cfg.NonceKey)
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(cfg.ListenAddr)
	pc, ln, err := listenUDPAndTCP(ctx, cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("sip registrar: %w", err)
	}
	rootCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &Registrar{
		cfg:      cfg,
		log:      log,
		creds:    creds,
		nonces:   ns,
		now:      now,
		ports:    &portAllocator{ip: net.ParseIP(host), min: cfg.RTPPortMin, max: cfg.RTPPortMax},
		udpConn:  pc,
		tcpLn:    ln,
		host:     host,
		port:     pc.LocalAddr().(*net.UDPAddr).Port,
		rootCtx:  rootCtx,
		shutdown: cancel,
		bindings: make(map[int64][]*Binding),
		calls:    make(map[string]*AgentCall),
	}
	if err := r.startStack(ctx); err != nil {
		cancel()
		_ = pc.Close()
		_ = ln.Close()
		return nil, err
	}
	r.wg.Add(1)
	go r.keepalive()
	log.Info("sip registrar started", "listen", r.Addr().String(), "realm", cfg.Realm)
	return r, nil
}

// listenUDPAndTCP binds UDP and TCP on the same port; with port 0 it retries
// until a free UDP port is also free for TCP.
func listenUDPAndTCP(ctx context.Context, addr string) (net.PacketConn, net.Listener, error) {
	host, port, _ := net.SplitHostPort(addr)
	var lc net.ListenConfig
	var lastErr error
	for range 20 {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen udp %s: %w", addr, err)
		}
		got := strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)
		ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, got))
		if err == nil {
			return pc, ln, nil
		}
		_ = pc.Close()
		lastErr = fmt.Errorf("listen tcp %s: %w", net.JoinHostPort(host, got), err)
		if port != "0" {
			break
		}
	}
	return nil, nil, lastErr
}

func (r *Registrar) startStack(ctx context.Context) error {
	st, err := sipstack.New(sipstack.Config{
		UserAgent: r.cfg.UserAgent,
		Host:      r.host,
		Port:      r.port,
		Logger:    r.log.With("component", "sipgo"),
	})
	if err != nil {
		return fmt.Errorf("sip registrar: %w", err)
	}
	r.ua = st.UA
	contact := sip.Uri{Scheme: "sip", User: "turbina", Host: r.host, Port: r.port}
	// RewriteContact: in-dialog requests (ACK, BYE) go to where the phone's
	// responses came from, not to its Contact, which NAT makes unreachable.
	r.udpUA = &sipgo.DialogUA{Client: st.Client, ContactHDR: sip.ContactHeader{Address: contact}, RewriteContact: true}
	tcpContact := contact
	tcpContact.UriParams = sip.NewParams()
	tcpContact.UriParams.Add("transport", "tcp")
	r.tcpUA = &sipgo.DialogUA{Client: st.Stream, ContactHDR: sip.ContactHeader{Address: tcpContact}, RewriteContact: true}

	s := st.Server
	s.OnRegister(r.onRegister)
	s.OnOptions(r.onOptions)
	s.OnInvite(r.onInvite)
	s.OnBye(r.onBye)
	s.OnUpdate(r.onUpdate)
	s.OnAck(r.onAck)
	s.OnCancel(func(req *sip.Request, tx sip.ServerTransaction) {
		r.respond(req, tx, sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	})
	s.OnNoRoute(r.onOther)

	go func() { _ = s.ServeTCP(r.tcpLn) }()
	if err := st.StartUDP(ctx, r.udpConn); err != nil {
		_ = st.UA.Close()
		return fmt.Errorf("sip registrar: %w", err)
	}
	return nil
}

// Addr returns the address the registrar listens on (UDP and TCP).
func (r *Registrar) Addr() *net.UDPAddr { return r.udpConn.LocalAddr().(*net.UDPAddr) }

// Realm returns the digest realm phones authenticate in.
func (r *Registrar) Realm() string { return r.cfg.Realm }

// Lookup returns the agent's most recently refreshed live binding.
func (r *Registrar) Lookup(agentID int64) (Binding, bool) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var best *Binding
	for _, b := range r.bindings[agentID] {
		if b.Expires.After(now) && (best == nil || b.RegisteredAt.After(best.RegisteredAt)) {
			best = b
		}
	}
	if best == nil {
		return Binding{}, false
	}
	return *best, true
}

// Bindings returns every live binding, by agent and then contact.
func (r *Registrar) Bindings() []Binding {
	now := r.now()
	r.mu.Lock()
	var out []Binding
	for _, list := range r.bindings {
		for _, b := range list {
			if b.Expires.After(now) {
				out = append(out, *b)
			}
		}
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Binding) int {
		if a.AgentID != b.AgentID {
			return int(min(max(a.AgentID-b.AgentID, -1), 1))
		}
		return strings.Compare(a.Contact, b.Contact)
	})
	return out
}

// Close hangs up every call to a phone, forgets all bindings and releases the
// sockets. It waits for the calls' BYEs for at most a few seconds.
func (r *Registrar) Close() error {
	var err error
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		r.shutdown() // calls BYE their phones and end
		done := make(chan struct{})
		go func() { r.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			r.log.Warn("sip registrar: calls still ending at close")
		}
		err = r.ua.Close()
		_ = r.udpConn.Close()
		_ = r.tcpLn.Close()
		r.mu.Lock()
		clear(r.bindings)
		r.mu.Unlock()
	})
	return err
}

// respond sends res, logging a failure.
func (r *Registrar) respond(req *sip.Request, tx sip.ServerTransaction, res *sip.Response) {
	res.AppendHeader(sip.NewHeader("Server", r.cfg.UserAgent))
	if err := tx.Respond(res); err != nil {
		r.log.Debug("sip registrar: respond", "method", req.Method, "status", res.StatusCode, "err", err)
	}
}

// allowed is the Allow header of the registrar's responses.
const allowed = "REGISTER, OPTIONS, INVITE, ACK, BYE, CANCEL, UPDATE"

func (r *Registrar) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.AppendHeader(sip.NewHeader("Allow", allowed))
	res.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	r.respond(req, tx, res)
}

// knownMethods are methods of SIP extensions the registrar understands but
// does not serve: 405. Anything else is 501.
var knownMethods = []sip.RequestMethod{sip.SUBSCRIBE, sip.NOTIFY, sip.MESSAGE, sip.INFO, sip.PUBLISH, sip.REFER, sip.PRACK}

func (r *Registrar) onOther(req *sip.Request, tx sip.ServerTransaction) {
	res := sip.NewResponseFromRequest(req, 501, "Not Implemented", nil)
	if slices.Contains(knownMethods, req.Method) {
		res = sip.NewResponseFromRequest(req, 405, "Method Not Allowed", nil)
	}
	res.AppendHeader(sip.NewHeader("Allow", allowed))
	r.respond(req, tx, res)
}

func (r *Registrar) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	r.respond(req, tx, r.register(req))
}

// register runs RFC 3261 10.3 on a REGISTER and returns the response.
func (r *Registrar) register(req *sip.Request) *sip.Response {
	reply := func(code int, reason string) *sip.Response {
		return sip.NewResponseFromRequest(req, code, reason, nil)
	}
	to, from, callID, cseq := req.To(), req.From(), req.CallID(), req.CSeq()
	if to == nil || from == nil || callID == nil || cseq == nil || to.Address.User == "" {
		return reply(400, "Bad Request")
	}
	username, agentID, res := r.authenticate(req)
	if res != nil {
		return res
	}
	if to.Address.User != username {
		return reply(403, "Forbidden (To does not match the authenticated user)")
	}

	// Expires header, per-contact expires parameters.
	defExp := int64(-1)
	if h := req.GetHeader("Expires"); h != nil {
		n, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32)
		if err != nil {
			return reply(400, "Bad Request (Expires)")
		}
		defExp = int64(n)
	}
	type update struct {
		contact *sip.ContactHeader
		expires time.Duration
	}
	var (
		updates  []update
		wildcard bool
	)
	minExp, maxExp := r.cfg.MinExpires.Std(), r.cfg.MaxExpires.Std()
	for _, h := range req.GetHeaders("Contact") {
		ch, ok := h.(*sip.ContactHeader)
		if !ok {
			return reply(400, "Bad Request (Contact)")
		}
		if ch.Address.Wildcard {
			wildcard = true
			continue
		}
		if !strings.EqualFold(ch.Address.Scheme, "sip") || ch.Address.Host == "" {
			return reply(400, "Bad Request (Contact must be a sip: URI)")
		}
		exp := defExp
		if v, ok := ch.Params.Get("expires"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil {
				return reply(400, "Bad Request (Contact expires)")
			}
			exp = int64(n)
		}
		d := r.cfg.DefaultExpires.Std()
		if exp >= 0 {
			d = time.Duration(exp) * time.Second
		}
		if d > 0 && d < minExp {
			res := reply(423, "Interval Too Brief")
			res.AppendHeader(sip.NewHeader("Min-Expires", strconv.Itoa(int(minExp/time.Second))))
			return res
		}
		updates = append(updates, update{contact: ch, expires: min(d, maxExp)})
	}
	if wildcard && (len(updates) > 0 || defExp != 0) {
		return reply(400, "Bad Request (Contact: * needs Expires: 0 and no other contact)")
	}

	now := r.now()
	source, transport := req.Source(), strings.ToLower(req.Transport())
	ua := ""
	if h := req.GetHeader("User-Agent"); h != nil {
		ua = h.Value()
	}
	// The other nodes' bindings of the agent: a REGISTER replayed to this
	// node is refused by what another node recorded, and the 200 lists them.
	// Should the database not answer, the phone is bound here all the same, as
	// a registrar alone would (only this node's Call-ID/CSeq are checked).
	others, err := r.sharedBindings(r.rootCtx, agentID, now)
	if err != nil {
		r.log.Warn("sip registrar: shared bindings unreadable", "agent", agentID, "err", err)
		others = nil
	}
	// Out-of-order or replayed requests (RFC 3261 10.3 step 7).
	stale := func(b *Binding) bool { return b.callID == callID.Value() && cseq.SeqNo <= b.cseq }
	for i := range others {
		o := &others[i]
		if stale(o) && (wildcard || slices.ContainsFunc(updates, func(u update) bool { return contactKey(u.contact.Address) == contactKey(o.contact) })) {
			return reply(500, "Server Internal Error (out of order REGISTER)")
		}
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return reply(503, "Service Unavailable")
	}
	list := slices.DeleteFunc(r.bindings[agentID], func(b *Binding) bool { return !b.Expires.After(now) })
	var (
		saved   []*Binding
		removed []string
	)
	if wildcard {
		for _, b := range list {
			if stale(b) {
				r.mu.Unlock()
				return reply(500, "Server Internal Error (out of order REGISTER)")
			}
		}
		for _, b := range list {
			removed = append(removed, contactKey(b.contact))
		}
		for _, o := range others {
			removed = append(removed, contactKey(o.contact))
		}
		list = nil
		r.log.Info("agent phone unregistered all contacts", "agent", agentID, "user", username)
	}
	for _, u := range updates {
		key := contactKey(u.contact.Address)
		i := slices.IndexFunc(list, func(b *Binding) bool { return contactKey(b.contact) == key })
		if i >= 0 && stale(list[i]) {
			r.mu.Unlock()
			return reply(500, "Server Internal Error (out of order REGISTER)")
		}
		if u.expires == 0 {
			removed = append(removed, key)
			if i >= 0 {
				list = slices.Delete(list, i, i+1)
				r.log.Info("agent phone unregistered", "agent", agentID, "user", username, "contact", key)
			}
			continue
		}
		b := &Binding{
			AgentID: agentID, Username: username, Contact: u.contact.Address.String(),
			Source: source, Transport: transport, UserAgent: ua,
			RegisteredAt: now, Expires: now.Add(u.expires), Node: r.cfg.Node,
			contact: *u.contact.Address.Clone(), aor: *to.Address.Clone(),
			callID: callID.Value(), cseq: cseq.SeqNo,
		}
		saved = append(saved, b)
		if i >= 0 {
			list[i] = b
			continue
		}
		if len(list) >= r.cfg.MaxContacts {
			// Replace the contact that would lapse first (a phone that
			// rebooted onto a new port, most likely).
			first := 0
			for j, o := range list {
				if o.Expires.Before(list[first].Expires) {
					first = j
				}
			}
			removed = append(removed, contactKey(list[first].contact))
			list = slices.Delete(list, first, first+1)
		}
		list = append(list, b)
		r.log.Info("agent phone registered", "agent", agentID, "user", username, "contact", key,
			"source", source, "transport", transport, "expires", u.expires)
	}
	r.setBindingsLocked(agentID, list)
	bound := make([]Binding, 0, len(list)+len(others))
	for _, b := range list {
		bound = append(bound, *b)
	}
	r.mu.Unlock()

	if err := r.share(agentID, saved, removed); err != nil {
		// Bound here all the same, as on a registrar alone, but for
		// MinExpires at most: the phone's next REGISTER, that soon, shares
		// it with the other nodes once the database answers again.
		r.log.Warn("sip registrar: could not share the phone's registration; bound here for min_expires", "agent", agentID, "err", err)
		r.mu.Lock()
		bound = bound[:0]
		for _, b := range list {
			if slices.Contains(saved, b) {
				b.unshared = true
				if limit := now.Add(minExp); b.Expires.After(limit) {
					b.Expires = limit
				}
			}
			bound = append(bound, *b)
		}
		r.mu.Unlock()
	}
	// The 200 lists every binding of the agent (RFC 3261 10.3 step 8), the
	// other nodes' too.
	for _, o := range others {
		key := contactKey(o.contact)
		if !slices.Contains(removed, key) && !slices.ContainsFunc(bound, func(b Binding) bool { return contactKey(b.contact) == key }) {
			bound = append(bound, o)
		}
	}
	res = reply(200, "OK")
	for _, b := range bound {
		ch := &sip.ContactHeader{Address: *b.contact.Clone(), Params: sip.NewParams()}
		ch.Params.Add("expires", strconv.Itoa(int((b.Expires.Sub(now)+time.Second/2)/time.Second)))
		res.AppendHeader(ch)
	}
	res.AppendHeader(sip.NewHeader("Date", now.UTC().Format(time.RFC1123)))
	return res
}

// contactKey identifies a contact for matching bindings (RFC 3261 19.1.4,
// simplified: scheme, user, host, port and transport).
func contactKey(u sip.Uri) string {
	tr := "udp"
	if u.UriParams != nil {
		if v, ok := u.UriParams.Get("transport"); ok && v != "" {
			tr = strings.ToLower(v)
		}
	}
	return strings.ToLower(u.Scheme) + ":" + u.User + "@" + strings.ToLower(u.Host) + ":" + strconv.Itoa(u.Port) + ";" + tr
}

// authenticate checks a request's digest credentials. It returns the phone's
// username and agent, or the response to send instead (a challenge, 403...).
func (r *Registrar) authenticate(req *sip.Request) (string, int64, *sip.Response) {
	now := r.now()
	challenge := func(stale bool) *sip.Response {
		res := sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
		res.AppendHeader(sip.NewHeader("WWW-Authenticate", r.nonces.challenge(r.cfg.Realm, now, stale)))
		return res
	}
	h := req.GetHeader("Authorization")
	if h == nil {
		return "", 0, challenge(false)
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil || cred.Username == "" || cred.Response == "" || cred.URI == "" {
		return "", 0, sip.NewResponseFromRequest(req, 400, "Bad Request (Authorization)", nil)
	}
	if cred.Realm != r.cfg.Realm || (cred.Algorithm != "" && !strings.EqualFold(cred.Algorithm, "MD5")) ||
		(cred.QOP != "" && cred.QOP != "auth") {
		// Credentials for another realm or scheme: offer ours.
		return "", 0, challenge(false)
	}
	state := r.nonces.check(cred.Nonce, now)
	if state == nonceInvalid {
		return "", 0, challenge(false)
	}
	ctx, cancel := context.WithTimeout(r.rootCtx, credentialsTimeout)
	ha1, agentID, ok, err := r.creds.PhoneHA1(ctx, cred.Username, r.cfg.Realm)
	cancel()
	if err != nil {
		r.log.Warn("sip registrar: credentials lookup failed", "user", cred.Username, "err", err)
		res := sip.NewResponseFromRequest(req, 500, "Server Internal Error", nil)
		res.AppendHeader(sip.NewHeader("Retry-After", "30"))
		return "", 0, res
	}
	// Unknown users get the same answer as wrong passwords, so the
	// registrar does not tell which account names exist.
	if !ok || !digestMatches(digestResponse(cred, string(req.Method), ha1), cred.Response) {
		r.log.Info("sip registrar: authentication failed", "user", cred.Username, "source", req.Source())
		return "", 0, sip.NewResponseFromRequest(req, 403, "Forbidden", nil)
	}
	if state == nonceStale {
		return "", 0, challenge(true)
	}
	return cred.Username, agentID, nil
}

// onInvite answers a phone's re-INVITE (hold, a new address, a session
// refresh) in a live call; phones may not place calls through Turbina.
func (r *Registrar) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if c := r.callFor(req); c != nil && c.fromPhone(req) {
		c.peer().onReinvite(req, tx)
		return
	}
	res := sip.NewResponseFromRequest(req, 405, "Method Not Allowed", nil)
	res.AppendHeader(sip.NewHeader("Allow", "REGISTER, OPTIONS"))
	r.respond(req, tx, res)
}

// onUpdate answers a phone's UPDATE (RFC 3311) in a live call.
func (r *Registrar) onUpdate(req *sip.Request, tx sip.ServerTransaction) {
	if c := r.callFor(req); c != nil && c.fromPhone(req) {
		c.peer().onUpdate(req, tx)
		return
	}
	r.respond(req, tx, sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
}

// onAck takes the answer in the ACK of a 200 that carried our offer.
func (r *Registrar) onAck(req *sip.Request, _ sip.ServerTransaction) {
	if c := r.callFor(req); c != nil && c.fromPhone(req) {
		c.peer().onAck(req)
	}
}

// onBye handles a phone hanging up.
func (r *Registrar) onBye(req *sip.Request, tx sip.ServerTransaction) {
	if c := r.callFor(req); c == nil || !c.remoteBye(req, tx) {
		r.respond(req, tx, sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	}
}

// callFor finds the answered call a request belongs to.
func (r *Registrar) callFor(req *sip.Request) *AgentCall {
	id := req.CallID()
	if id == nil || req.To() == nil || req.From() == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[id.Value()]
}
