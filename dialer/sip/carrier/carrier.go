package carrier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/turbina-dialer/turbina/dialer/sip/internal/sipstack"
)

// Behaviour is what the simulated network does with one call.
type Behaviour int

// Behaviours.
const (
	// Answer: rings, answers, talks, hangs up.
	Answer Behaviour = iota + 1
	// RingOut: rings until the caller cancels (or Config.MaxRing, then 480).
	RingOut
	// Busy: 486 Busy Here.
	Busy
	// Fail: 503 Service Unavailable.
	Fail
	// Invalid: 404 Not Found.
	Invalid
)

// String names the behaviour.
func (b Behaviour) String() string {
	switch b {
	case Answer:
		return "answer"
	case RingOut:
		return "ring_out"
	case Busy:
		return "busy"
	case Fail:
		return "fail"
	case Invalid:
		return "invalid"
	}
	return "behaviour(" + strconv.Itoa(int(b)) + ")"
}

// Odds weigh the behaviours of calls that are not scripted. They need not add up to
// one: each is divided by their sum. All zero means [DefaultOdds].
type Odds struct {
	Answer  float64 `json:"answer"`
	RingOut float64 `json:"ring_out"`
	Busy    float64 `json:"busy"`
	Fail    float64 `json:"fail"`
	Invalid float64 `json:"invalid"`
}

// DefaultOdds are a plausible consumer list: most people pick up.
var DefaultOdds = Odds{Answer: 0.70, RingOut: 0.14, Busy: 0.10, Fail: 0.02, Invalid: 0.04}

func (o Odds) sum() float64 { return o.Answer + o.RingOut + o.Busy + o.Fail + o.Invalid }

// Audio is what an answered call's simulated person sends.
type Audio int

// Audio sources.
const (
	// AudioSpeech is speech-like bursts (voiced tones of varying pitch) between
	// pauses of silence: the default.
	AudioSpeech Audio = iota
	// AudioTone is a steady 425 Hz tone.
	AudioTone
	// AudioPrompt loops the recorded prompt shipped in package media.
	AudioPrompt
	// AudioSilence is digital silence, still one packet every 20 ms.
	AudioSilence
)

// Config configures [Start]. Zero fields take the defaults named.
type Config struct {
	// Addr is the UDP address to listen on; it must be on loopback (default
	// 127.0.0.1:0, an ephemeral port).
	Addr string
	// Seed seeds the random draws, so a run can be repeated (0 is a seed too).
	Seed uint64
	// Odds weigh the behaviours (default DefaultOdds).
	Odds Odds
	// RingMin and RingMax bound the ring time before an answer or a busy
	// (default 1 s to 4 s).
	RingMin, RingMax time.Duration
	// TalkMin and TalkMax bound how long an answered person talks before hanging
	// up (default 20 s to 60 s).
	TalkMin, TalkMax time.Duration
	// MaxRing ends a RingOut call with 480 if the caller never cancels (default 2 min).
	MaxRing time.Duration
	// Audio is what answered calls send (default AudioSpeech).
	Audio Audio
	// FirstRTP, if set, is called as each answered call's first RTP packet
	// leaves, with the call's X-Turbina-Attempt header: when the person started
	// talking, for measuring what the caller does with it. It must not block.
	FirstRTP func(attempt string, at time.Time)
	// CallerRTP, if set, is called as each RTP packet from the caller arrives, with
	// the call's X-Turbina-Attempt header and the packet's payload (which it must not
	// keep): what the person hears, and when. It must not block.
	CallerRTP func(attempt string, at time.Time, payload []byte)
	// Logger receives the carrier's logs (default: discarded).
	Logger *slog.Logger
}

func (c *Config) applyDefaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	if c.Odds.sum() <= 0 {
		c.Odds = DefaultOdds
	}
	if c.RingMin <= 0 && c.RingMax <= 0 {
		c.RingMin, c.RingMax = time.Second, 4*time.Second
	}
	if c.TalkMin <= 0 && c.TalkMax <= 0 {
		c.TalkMin, c.TalkMax = 20*time.Second, 60*time.Second
	}
	c.RingMax = max(c.RingMax, c.RingMin)
	c.TalkMax = max(c.TalkMax, c.TalkMin)
	if c.MaxRing <= 0 {
		c.MaxRing = 2 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("addr %q: %w", c.Addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("addr %q is not a loopback address", c.Addr)
	}
	o := c.Odds
	if o.Answer < 0 || o.RingOut < 0 || o.Busy < 0 || o.Fail < 0 || o.Invalid < 0 {
		return errors.New("odds must not be negative")
	}
	if c.RingMin < 0 || c.TalkMin < 0 {
		return errors.New("ring and talk times must not be negative")
	}
	return nil
}

// Stats counts what the carrier did since it started.
type Stats struct {
	// Invites counts INVITEs received (not those dropped while cut).
	Invites int64 `json:"invites"`
	// By behaviour: calls answered, rung out, busy, failed and invalid.
	Answered int64 `json:"answered"`
	RingOuts int64 `json:"ring_outs"`
	Busy     int64 `json:"busy"`
	Failed   int64 `json:"failed"`
	Invalid  int64 `json:"invalid"`
	// Canceled counts calls the caller cancelled before an answer.
	Canceled int64 `json:"canceled"`
	// HungUpByCarrier and HungUpByCaller split the ended answered calls.
	HungUpByCarrier int64 `json:"hung_up_by_carrier"`
	HungUpByCaller  int64 `json:"hung_up_by_caller"`
	// Active is the number of answered calls in progress.
	Active int64 `json:"active"`
	// Options counts OPTIONS answered.
	Options int64 `json:"options"`
	// Dropped counts SIP datagrams dropped while cut.
	Dropped int64 `json:"dropped"`
	// RTPSent and RTPReceived count audio packets over every call.
	RTPSent     int64 `json:"rtp_sent"`
	RTPReceived int64 `json:"rtp_received"`
}

// counters are the live Stats.
type counters struct {
	invites, answered, ringOuts, busy, failed, invalid, canceled atomic.Int64
	byCarrier, byCaller, active, options, dropped                atomic.Int64
	rtpSent, rtpReceived                                         atomic.Int64
}

// Carrier is a running simulated carrier. Create it with [Start]; it is safe for
// concurrent use.
type Carrier struct {
	cfg     Config
	log     *slog.Logger
	conn    *cutConn
	ua      *sipgo.UserAgent
	dialogs *sipgo.DialogServerCache
	host    string
	audio   []int16 // the looped prompt, for AudioPrompt
	stats   counters

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	rng     *rand.Rand
	scripts map[string]Behaviour
	closed  bool
}

// Start listens on cfg.Addr and serves calls until Close.
func Start(ctx context.Context, cfg Config) (*Carrier, error) {
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("carrier: %w", err)
	}
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("carrier: listen: %w", err)
	}
	host, portStr, _ := net.SplitHostPort(pc.LocalAddr().String())
	port, _ := strconv.Atoi(portStr)
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c := &Carrier{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "carrier"),
		host:    host,
		ctx:     cctx,
		cancel:  cancel,
		rng:     rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		scripts: map[string]Behaviour{},
	}
	c.conn = &cutConn{PacketConn: pc, dropped: &c.stats.dropped}
	if cfg.Audio == AudioPrompt {
		if c.audio, err = promptPCM(); err != nil {
			cancel()
			pc.Close()
			return nil, fmt.Errorf("carrier: %w", err)
		}
	}
	if err := c.startStack(ctx, port); err != nil {
		cancel()
		pc.Close()
		return nil, fmt.Errorf("carrier: %w", err)
	}
	c.log.Info("carrier simulator listening", "addr", c.Addr())
	return c, nil
}

func (c *Carrier) startStack(ctx context.Context, port int) error {
	st, err := sipstack.New(sipstack.Config{
		UserAgent: "Turbina carrier simulator",
		Host:      c.host,
		Port:      port,
		Logger:    c.log.With("component", "carrier-sipgo"),
	})
	if err != nil {
		return err
	}
	c.ua = st.UA
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "carrier", Host: c.host, Port: port}}
	c.dialogs = sipgo.NewDialogServerCache(st.Client, contact)
	s := st.Server
	s.OnInvite(c.onInvite)
	s.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { _ = c.dialogs.ReadAck(req, tx) })
	s.OnBye(c.onBye)
	s.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		c.stats.options.Add(1)
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	})
	s.OnCancel(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	})
	// sipgo serves the cut link, not the bare socket, so that Cut drops
	// datagrams both ways.
	if err := st.StartUDP(ctx, c.conn); err != nil {
		st.UA.Close()
		return err
	}
	return nil
}

// Addr returns the host:port a trunk is pointed at.
func (c *Carrier) Addr() string { return c.conn.LocalAddr().String() }

// Cut makes the carrier drop every datagram, SIP and RTP, in and out (true), as
// a dead link would, or serve again (false). Answered calls go silent both ways
// while cut; their RTP clock runs on, so audio resumes where it would be.
func (c *Carrier) Cut(cut bool) {
	if c.conn.cut.Swap(cut) != cut {
		c.log.Info("carrier simulator link", "cut", cut)
	}
}

// IsCut reports whether the carrier is cut.
func (c *Carrier) IsCut() bool { return c.conn.cut.Load() }

// Script fixes the behaviour of calls to number ("+" optional); zero removes the
// script, so calls to it are drawn again.
func (c *Carrier) Script(number string, b Behaviour) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b == 0 {
		delete(c.scripts, normalize(number))
		return
	}
	c.scripts[normalize(number)] = b
}

// Stats returns what the carrier did so far.
func (c *Carrier) Stats() Stats {
	s := &c.stats
	return Stats{
		Invites: s.invites.Load(), Answered: s.answered.Load(), RingOuts: s.ringOuts.Load(), Busy: s.busy.Load(),
		Failed: s.failed.Load(), Invalid: s.invalid.Load(), Canceled: s.canceled.Load(),
		HungUpByCarrier: s.byCarrier.Load(), HungUpByCaller: s.byCaller.Load(), Active: s.active.Load(),
		Options: s.options.Load(), Dropped: s.dropped.Load(), RTPSent: s.rtpSent.Load(), RTPReceived: s.rtpReceived.Load(),
	}
}

// Close hangs up every call and stops the carrier.
func (c *Carrier) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel() // answered calls hang up; ringing ones stop
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		// Final responses wait for their ACK, which a cut link never brings.
		c.log.Debug("carrier simulator: calls still ending at close")
	}
	err := c.ua.Close()
	if cerr := c.conn.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

func normalize(n string) string { return strings.TrimPrefix(strings.TrimSpace(n), "+") }

// draw decides the fate of a call to number, and its ring and talk times.
func (c *Carrier) draw(number string) (b Behaviour, ring, talk time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, scripted := c.scripts[normalize(number)]
	if !scripted {
		o := c.cfg.Odds
		x := c.rng.Float64() * o.sum()
		switch {
		case x < o.Answer:
			b = Answer
		case x < o.Answer+o.RingOut:
			b = RingOut
		case x < o.Answer+o.RingOut+o.Busy:
			b = Busy
		case x < o.Answer+o.RingOut+o.Busy+o.Fail:
			b = Fail
		default:
			b = Invalid
		}
	}
	between := func(lo, hi time.Duration) time.Duration {
		if hi <= lo {
			return lo
		}
		return lo + time.Duration(c.rng.Int64N(int64(hi-lo)))
	}
	return b, between(c.cfg.RingMin, c.cfg.RingMax), between(c.cfg.TalkMin, c.cfg.TalkMax)
}

// seed returns a fresh seed for one call's audio.
func (c *Carrier) seed() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rng.Uint64()
}

func (c *Carrier) onBye(req *sip.Request, tx sip.ServerTransaction) {
	if err := c.dialogs.ReadBye(req, tx); err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	}
}

// onInvite plays one call to its end; sipgo runs it on a goroutine of its own.
func (c *Carrier) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	c.wg.Add(1)
	defer c.wg.Done()
	c.stats.invites.Add(1)
	number := req.Recipient.User
	b, ring, talk := c.draw(number)
	log := c.log.With("call_id", req.CallID().Value(), "to", number, "behaviour", b.String())
	sess, err := c.dialogs.ReadInvite(req, tx)
	if err != nil {
		log.Warn("carrier: invite refused", "err", err)
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusBadRequest, "Bad Request", nil))
		return
	}
	defer sess.Close()
	if err := sess.Respond(sip.StatusTrying, "Trying", nil); err != nil {
		return
	}
	log.Debug("carrier: call")
	switch b {
	case Invalid:
		c.stats.invalid.Add(1)
		if c.wait(sess, 100*time.Millisecond) {
			_ = sess.Respond(sip.StatusNotFound, "Not Found", nil)
		}
	case Fail:
		c.stats.failed.Add(1)
		_ = sess.Respond(sip.StatusServiceUnavailable, "Service Unavailable", nil)
	case Busy:
		c.stats.busy.Add(1)
		if c.ringFor(sess, ring/2) {
			_ = sess.Respond(sip.StatusBusyHere, "Busy Here", nil)
		}
	case RingOut:
		c.stats.ringOuts.Add(1)
		if c.ringFor(sess, c.cfg.MaxRing) {
			_ = sess.Respond(sip.StatusTemporarilyUnavailable, "Temporarily Unavailable", nil)
		}
	default:
		if c.ringFor(sess, ring) {
			c.answer(sess, req, talk, log)
		}
	}
}

// ringFor sends 180 Ringing and waits d; false when the caller cancelled meanwhile
// (sipgo has answered the CANCEL and the INVITE with 487) or the carrier closes.
func (c *Carrier) ringFor(sess *sipgo.DialogServerSession, d time.Duration) bool {
	if err := sess.Respond(sip.StatusRinging, "Ringing", nil); err != nil {
		return false
	}
	return c.wait(sess, d)
}

// wait sleeps d unless the dialog ends (CANCEL) or the carrier closes first.
func (c *Carrier) wait(sess *sipgo.DialogServerSession, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-sess.Context().Done():
		c.stats.canceled.Add(1)
		return false
	case <-c.ctx.Done():
		return false // closing: the caller's transaction times out
	}
}

// answer sends 200 OK with the SDP answer, and once ACKed talks for talk, then
// hangs up, unless the caller does first.
func (c *Carrier) answer(sess *sipgo.DialogServerSession, req *sip.Request, talk time.Duration, log *slog.Logger) {
	m, answerSDP, err := newMediaSession(c.host, req.Body(), c.seed())
	if err != nil {
		log.Info("carrier: unusable offer", "err", err)
		_ = sess.Respond(sip.StatusNotAcceptableHere, "Not Acceptable Here", nil)
		return
	}
	defer m.close()
	m.cut = &c.conn.cut
	if err := sess.RespondSDP(answerSDP); err != nil {
		// No ACK, or the caller cancelled as the 200 left.
		log.Debug("carrier: answer not acknowledged", "err", err)
		c.stats.canceled.Add(1)
		byeCtx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
		_ = sess.Bye(byeCtx)
		cancel()
		return
	}
	c.stats.answered.Add(1)
	c.stats.active.Add(1)
	defer c.stats.active.Add(-1)
	callCtx, stop := context.WithCancel(c.ctx)
	var media sync.WaitGroup
	media.Add(2)
	attempt := ""
	if h := req.GetHeader("X-Turbina-Attempt"); h != nil {
		attempt = h.Value()
	}
	first := func(time.Time) {}
	if c.cfg.FirstRTP != nil {
		first = func(at time.Time) { c.cfg.FirstRTP(attempt, at) }
	}
	var heard func(time.Time, []byte)
	if c.cfg.CallerRTP != nil {
		heard = func(at time.Time, payload []byte) { c.cfg.CallerRTP(attempt, at, payload) }
	}
	go func() { defer media.Done(); m.send(callCtx, c.cfg.Audio, c.audio, &c.stats.rtpSent, first) }()
	go func() { defer media.Done(); m.receive(&c.stats.rtpReceived, heard) }()
	defer func() {
		stop()
		m.close() // ends receive
		media.Wait()
	}()
	t := time.NewTimer(talk)
	defer t.Stop()
	select {
	case <-sess.Context().Done():
		c.stats.byCaller.Add(1)
		log.Debug("carrier: caller hung up")
		return
	case <-t.C:
	case <-c.ctx.Done():
	}
	stop()
	c.stats.byCarrier.Add(1)
	timeout := 5 * time.Second
	if c.ctx.Err() != nil || c.IsCut() {
		timeout = time.Second // closing, or the link is down: do not wait long
	}
	byeCtx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), timeout)
	defer cancel()
	if err := sess.Bye(byeCtx); err != nil {
		log.Debug("carrier: bye", "err", err)
	}
}

// cutConn is the SIP socket with a switch that drops every datagram.
type cutConn struct {
	net.PacketConn
	cut     atomic.Bool
	dropped *atomic.Int64
}

// ReadFrom returns the next datagram that arrives while not cut.
func (c *cutConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || !c.cut.Load() {
			return n, addr, err
		}
		c.dropped.Add(1)
	}
}

// WriteTo sends b unless cut, when it pretends to.
func (c *cutConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.cut.Load() {
		c.dropped.Add(1)
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, addr)
}
