package media

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// BridgeConfig configures a Bridge. The zero value is usable.
type BridgeConfig struct {
	// Logger receives rare events (calls connected and ended); default slog.Default().
	Logger *slog.Logger
	// Latency, if set, records each packet's receive-to-forward time inside the
	// relay. One histogram may be shared by all bridges.
	Latency *LatencyHistogram
	// FrameDuration is the packetisation time assumed when the agent's stream
	// moves from one customer to the next: the first packet of the new customer
	// is stamped one frame after the last of the previous one. Default 20 ms.
	FrameDuration time.Duration
	// AgentSilence ends Run with ErrAgentSilent when the agent sends nothing on
	// any of its legs for this long: a phone or browser gone without hanging up
	// would otherwise take customers into silence. Phones and browsers send
	// packets even when the agent is quiet or muted. Zero waits forever.
	AgentSilence time.Duration
}

// ErrAgentSilent ends a bridge whose agent leg stopped sending (BridgeConfig.AgentSilence).
var ErrAgentSilent = errors.New("media: no audio from the agent leg")

// ErrBridgeClosed is returned by Connect after the bridge's Run has returned.
var ErrBridgeClosed = errors.New("media: bridge closed")

// Bridge relays RTP between an agent's nailed-up legs and the customer leg
// currently connected to one of them. The agent legs stay open for the agent's
// whole session and each sees a single RTP stream (one SSRC, sequence numbers and
// timestamps without jumps) however many customers are connected in turn:
// connecting a customer is only a pointer swap and a goroutine, no negotiation.
//
// An agent session may carry one leg per codec (a browser carries PCMU and Opus
// at once): each customer is connected to the agent leg of its own codec, so
// neither a SIP (PCMU) nor a WhatsApp (Opus) customer is transcoded. Packets are
// rewritten in place (SSRC, sequence, timestamp, payload type) when the legs
// share a codec and transcoded otherwise; RFC 4733 telephone-events are forwarded
// with their payload type mapped. A Bridge never closes the legs it is given:
// their owners (the SIP or WebRTC session) do.
type Bridge struct {
	paths  []*agentPath
	cfg    BridgeConfig
	log    *slog.Logger
	frame  time.Duration
	idle   atomic.Uint64
	heard  atomic.Int64 // UnixNano of a recent agent packet on any leg (AgentSilence)
	closed atomic.Bool

	mu   sync.Mutex // serialises Connect and Disconnect
	cur  atomic.Pointer[Connection]
	last *Connection // the latest call; its reader owns its path's toAgent until it is done
	run  sync.Mutex  // one Run at a time
}

// agentPath is one of the agent's legs and the state the bridge keeps for it.
type agentPath struct {
	index   int // in the legs given to NewBridgePaths
	leg     Leg
	codec   Codec
	fwd     sync.Mutex // held by the path's reader while it forwards to a call
	toAgent outStream  // the leg's outbound stream, continuous across calls
}

// NewBridge returns a bridge for an agent's single nailed-up leg (a phone, or a
// browser offering one codec). Start its agent reader with Run, then Connect
// customers.
func NewBridge(agent Leg, cfg BridgeConfig) *Bridge {
	return NewBridgePaths([]Leg{agent}, cfg)
}

// NewBridgePaths returns a bridge for the legs of one agent session, one per
// codec, most preferred first: a customer is connected to the first leg sharing
// its codec, or transcoded onto agent[0] when none does. It panics without legs.
func NewBridgePaths(agent []Leg, cfg BridgeConfig) *Bridge {
	if len(agent) == 0 {
		panic("media: bridge without an agent leg")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	frame := cfg.FrameDuration
	if frame <= 0 {
		frame = 20 * time.Millisecond
	}
	b := &Bridge{cfg: cfg, log: log, frame: frame}
	for i, l := range agent {
		c := l.Codec()
		b.paths = append(b.paths, &agentPath{index: i, leg: l, codec: c, toAgent: newOutStream(c.ClockRate, frame)})
	}
	return b
}

// Run reads the agent legs and forwards each packet to the customer connected to
// its leg (dropping it when none is) until ctx is done or an agent leg fails. It
// disconnects the current call before returning. Run returns nil when ctx ends.
func (b *Bridge) Run(ctx context.Context) error {
	if !b.run.TryLock() {
		return errors.New("media: bridge already running")
	}
	defer b.run.Unlock()
	defer func() {
		b.closed.Store(true)
		b.Disconnect()
	}()
	b.heard.Store(time.Now().UnixNano()) // the silence allowance starts now
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(b.paths))
	for _, p := range b.paths {
		go func() {
			err := b.readAgent(rctx, p)
			cancel() // one leg failing ends the session's bridge
			errs <- err
		}()
	}
	var first error
	for range b.paths {
		if err := <-errs; err != nil && first == nil && ctx.Err() == nil {
			first = err
		}
	}
	return first
}

// readAgent reads one agent leg until ctx is done (nil) or the leg fails.
func (b *Bridge) readAgent(ctx context.Context, p *agentPath) error {
	stop := context.AfterFunc(ctx, func() { _ = p.leg.SetReadDeadline(time.Now()) })
	defer stop()

	buf := make([]byte, maxPacket)
	out := make([]byte, maxPacket)
	silence := b.cfg.AgentSilence
	var armed time.Time // when the silence deadline was last pushed back
	if silence > 0 {
		armed = time.Now()
		_ = p.leg.SetReadDeadline(armed.Add(silence))
		if ctx.Err() != nil { // cancelled before the deadline was moved: its stop is lost
			return nil
		}
	}
	for {
		n, err := p.leg.ReadRTP(buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if silence > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
				// A quiet leg is fine while another carries the agent's audio (a
				// browser may send on one codec only): the agent is silent once
				// the allowance has run out since the last packet on any leg.
				if until := time.Unix(0, b.heard.Load()).Add(silence); time.Until(until) > 0 {
					_ = p.leg.SetReadDeadline(until)
					if ctx.Err() != nil {
						return nil
					}
					continue
				}
				return fmt.Errorf("bridge: %w for %s", ErrAgentSilent, silence)
			}
			return fmt.Errorf("bridge: agent leg %s: %w", p.codec.Name, err)
		}
		t0 := time.Now()
		// The deadline moves only every quarter of the allowance, not per packet:
		// an agent that stops is noticed between ¾ and all of it later.
		if silence > 0 && t0.Sub(armed) > silence/4 {
			armed = t0
			b.heard.Store(t0.UnixNano())
			_ = p.leg.SetReadDeadline(t0.Add(silence))
			if ctx.Err() != nil {
				return nil
			}
		}
		p.fwd.Lock()
		if c := b.cur.Load(); c != nil && c.path == p {
			c.forwardToCustomer(buf[:n], out)
			if b.cfg.Latency != nil {
				b.cfg.Latency.Record(time.Since(t0))
			}
		} else {
			b.idle.Add(1)
		}
		p.fwd.Unlock()
	}
}

// Idle returns how many agent packets arrived on a leg no customer was connected to.
func (b *Bridge) Idle() uint64 { return b.idle.Load() }

// pathFor returns the agent leg a customer with codec cc is connected to.
func (b *Bridge) pathFor(cc Codec) *agentPath {
	for _, p := range b.paths {
		if p.codec.SameFormat(cc) {
			return p
		}
	}
	return b.paths[0]
}

// waitForwarding returns once no agent packet is being forwarded to a customer.
func (b *Bridge) waitForwarding() {
	for _, p := range b.paths {
		p.fwd.Lock()
		//lint:ignore SA2001 the empty critical section is the point: a barrier
		p.fwd.Unlock()
	}
}

// Current returns the connected call, or nil.
func (b *Bridge) Current() *Connection { return b.cur.Load() }

// ConnectOption configures one call through a bridge.
type ConnectOption func(*Connection)

// WithRecorder records both directions of the call into r (customer on the
// left channel, agent on the right). The bridge decodes but never closes r.
func WithRecorder(r *Recorder) ConnectOption { return func(c *Connection) { c.rec = r } }

// Connect switches the bridge to customer: from now on the customer's packets go
// to the agent leg of the customer's codec (or the first, transcoded, when none
// shares it) and that leg's packets to the customer. A call already connected is
// disconnected first. It fails if the two codecs need a transcoder this build
// lacks (Opus without the "opus" tag) or the bridge is closed.
func (b *Bridge) Connect(customer Leg, opts ...ConnectOption) (*Connection, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil, ErrBridgeClosed
	}
	c, err := newCall(b, customer, opts)
	if err != nil {
		return nil, err
	}
	if cur := b.cur.Load(); cur != nil {
		b.disconnectLocked(cur)
	}
	if b.last != nil {
		<-b.last.done // its reader no longer touches toAgent
	}
	c.path.toAgent.newSegment()
	c.discardQueued() // before the switch instant: what queued until now is stale
	// Logged before the call is live: from then on its readers own c.cc.
	b.log.Debug("bridge: customer connected", "customer", c.cc, "agent", c.path.codec)
	b.last = c
	b.cur.Store(c)
	go c.readCustomer()
	return c, nil
}

// Disconnect detaches the connected customer, if any, and returns its call once
// no goroutine of the bridge touches the customer leg any more. The agent leg
// stays up for the next Connect.
func (b *Bridge) Disconnect() *Connection {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.cur.Load()
	if c == nil {
		return nil
	}
	b.disconnectLocked(c)
	return c
}

func (b *Bridge) disconnectLocked(c *Connection) {
	b.cur.CompareAndSwap(c, nil)
	b.waitForwarding() // an agent → customer packet in flight
	c.stopping.Store(true)
	_ = c.customer.SetReadDeadline(time.Now())
	<-c.done
	_ = c.customer.SetReadDeadline(time.Time{}) // the leg may be used again (a prompt)
}

// Connection is one customer connected to a bridge.
type Connection struct {
	b        *Bridge
	path     *agentPath
	customer Leg
	cc       Codec // the customer's codec; the agent's is path.codec
	rec      *Recorder

	toCustomer outStream // owned by the reader of the call's agent leg
	toAgentTx  Transcoder
	toCustTx   Transcoder
	custDec    Decoder // for the recorder
	agentDec   Decoder
	pcm        []int16 // agent-reader scratch for recording

	stats    [2]dirCounters // 0: to agent, 1: to customer
	first    []byte         // the newest packet queued at the switch, forwarded first
	stopping atomic.Bool
	done     chan struct{}
	err      error
}

func newCall(b *Bridge, customer Leg, opts []ConnectOption) (*Connection, error) {
	cc := customer.Codec()
	path := b.pathFor(cc)
	c := &Connection{b: b, path: path, customer: customer, cc: cc, done: make(chan struct{})}
	for _, o := range opts {
		o(c)
	}
	c.toCustomer = newOutStream(c.cc.ClockRate, b.frame)
	if err := c.tune(cc); err != nil {
		return nil, err
	}
	if c.rec != nil {
		var err error
		if c.agentDec, err = NewDecoder(c.path.codec); err != nil {
			return nil, fmt.Errorf("bridge recording: %w", err)
		}
		c.pcm = make([]int16, maxFrameSamples)
	}
	return c, nil
}

// tune sets what the call needs to carry the customer's codec cc to and from
// its agent leg: the transcoders when the two differ, the recording's decoder.
func (c *Connection) tune(cc Codec) error {
	var toAgent, toCust Transcoder
	var dec Decoder
	if !cc.SameFormat(c.path.codec) {
		var err error
		if toAgent, err = NewTranscoder(cc, c.path.codec); err != nil {
			return fmt.Errorf("bridge %s → %s: %w", cc.Name, c.path.codec.Name, err)
		}
		if toCust, err = NewTranscoder(c.path.codec, cc); err != nil {
			return fmt.Errorf("bridge %s → %s: %w", c.path.codec.Name, cc.Name, err)
		}
	}
	if c.rec != nil {
		var err error
		if dec, err = NewDecoder(cc); err != nil {
			return fmt.Errorf("bridge recording: %w", err)
		}
	}
	c.cc, c.toAgentTx, c.toCustTx, c.custDec = cc, toAgent, toCust, dec
	return nil
}

// follow retunes the call when the customer leg's codec changed under it (a
// new offer and answer in the middle of a SIP call). The caller holds the
// path's fwd lock: both directions read what tune sets.
func (c *Connection) follow() {
	cc := c.customer.Codec()
	if cc == c.cc {
		return
	}
	if err := c.tune(cc); err != nil {
		// Kept as it was: packets of the new codec are dropped as unknown
		// until a codec the bridge can carry comes back.
		c.b.log.Warn("bridge: cannot follow the customer's new codec", "codec", cc, "err", err)
		c.cc = cc // tried once, not per packet
		return
	}
	c.b.log.Debug("bridge: customer codec changed", "customer", cc, "agent", c.path.codec)
}

// Path returns the index, among the legs given to NewBridgePaths, of the agent
// leg the call is on: a browser sending its microphone on one path at a time
// moves it there (AgentPeer.Legs gives the legs in transceiver order).
func (c *Connection) Path() int { return c.path.index }

// Stats returns the call's counters so far.
func (c *Connection) Stats() CallStats {
	return CallStats{ToAgent: c.stats[0].snapshot(), ToCustomer: c.stats[1].snapshot()}
}

// Done is closed when the customer reader has stopped: after Disconnect, or when
// the customer leg failed (hang-up closed it); Err then says why.
func (c *Connection) Done() <-chan struct{} { return c.done }

// Err returns why the call ended on its own (the customer leg's read error), or
// nil if it was disconnected or is still running. Valid after Done is closed.
func (c *Connection) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// readCustomer is the customer → agent loop of one call.
func (c *Connection) readCustomer() {
	b := c.b
	buf := make([]byte, maxPacket)
	out := make([]byte, maxPacket)
	var pcm []int16
	if c.rec != nil {
		pcm = make([]int16, maxFrameSamples)
	}
	defer func() {
		if b.cur.CompareAndSwap(c, nil) {
			b.waitForwarding() // an agent → customer packet in flight
		}
		close(c.done)
	}()
	if c.first != nil {
		n := copy(buf, c.first)
		c.first = nil
		c.toAgent(buf[:n], out, pcm)
	}
	for {
		// Checked before blocking too: Disconnect's deadline may have been
		// overwritten by discardQueued's reset.
		if c.stopping.Load() {
			return
		}
		n, err := c.customer.ReadRTP(buf)
		if c.stopping.Load() {
			return
		}
		if err != nil {
			if isTimeout(err) {
				continue // a deadline someone else set; only Disconnect stops us
			}
			c.err = err
			b.log.Debug("bridge: customer leg ended", "err", err)
			return
		}
		t0 := time.Now()
		c.toAgent(buf[:n], out, pcm)
		if b.cfg.Latency != nil {
			b.cfg.Latency.Record(time.Since(t0))
		}
	}
}

// discardQueued drops packets that queued on the customer leg while nobody read
// it: forwarded, they would reach the agent as a burst of stale audio and fill
// the agent's jitter buffer with delay. The newest is kept and forwarded first:
// when the agent was free at the answer it is the customer's first word, not
// stale. Only legs that can tell queued from arriving packets (UDPLeg) are drained.
func (c *Connection) discardQueued() {
	if d, ok := c.customer.(interface{ DiscardQueued() (int, []byte) }); ok {
		_, c.first = d.DiscardQueued()
	}
}

// toAgent forwards one customer packet to the agent leg. It holds the path's
// fwd lock, as the agent leg's reader does for the other direction, so that
// either may retune the call when the customer's codec changes.
func (c *Connection) toAgent(pkt, out []byte, pcm []int16) {
	c.path.fwd.Lock()
	defer c.path.fwd.Unlock()
	c.follow()
	c.forward(pkt, out, pcm, &c.stats[0], &c.path.toAgent, c.cc, c.path.codec, c.toAgentTx, c.path.leg, c.custDec, true)
}

// forwardToCustomer is called by the reader of the call's agent leg, with the
// path's fwd lock held.
func (c *Connection) forwardToCustomer(pkt, out []byte) {
	c.follow()
	c.forward(pkt, out, c.pcm, &c.stats[1], &c.toCustomer, c.path.codec, c.cc, c.toCustTx, c.customer, c.agentDec, false)
}

// rtpPayloadCN is static comfort noise (RFC 3389), forwarded untouched between
// legs of the same codec.
const rtpPayloadCN = 13

// forward relays one packet from a leg with codec from to dst with codec to.
func (c *Connection) forward(pkt, out []byte, pcm []int16, st *dirCounters, os *outStream,
	from, to Codec, tx Transcoder, dst Leg, dec Decoder, fromCustomer bool) {
	v, err := parseRTP(pkt)
	if err != nil {
		st.dropped.Add(1)
		return
	}
	st.seq.update(v.ssrc(), v.seq())
	st.lost.Store(st.seq.lost())

	pt := v.payloadType()
	switch {
	case pt == from.PayloadType:
		seq, ts, first := os.next(v.ssrc(), v.seq(), v.timestamp(), from.ClockRate)
		payload := v.payload()
		if c.rec != nil && dec != nil {
			if n, err := dec.Decode(pcm, payload); err == nil {
				if fromCustomer {
					c.rec.WriteCustomer(pcm[:n])
				} else {
					c.rec.WriteAgent(pcm[:n])
				}
			}
		}
		var wire []byte
		if tx == nil {
			rewriteRTPHeader(pkt, v.marker() || first, to.PayloadType, seq, ts, os.ssrc)
			wire = pkt[:v.withoutPadding()]
			if pkt[0]&0x20 != 0 {
				pkt[0] &^= 0x20 // padding cut off above
			}
		} else {
			n, err := tx.Transcode(out[rtpFixedHeader:], payload)
			if err != nil {
				st.dropped.Add(1)
				return
			}
			putRTPHeader(out, v.marker() || first, to.PayloadType, seq, ts, os.ssrc)
			wire = out[:rtpFixedHeader+n]
		}
		if err := dst.WriteRTP(wire); err != nil {
			st.dropped.Add(1)
			return
		}
		st.packets.Add(1)
		st.bytes.Add(uint64(len(wire) - v.headerLen()))
	case from.TelephoneEvent != 0 && pt == from.TelephoneEvent:
		if to.TelephoneEvent == 0 {
			st.dropped.Add(1)
			return
		}
		seq, ts, first := os.next(v.ssrc(), v.seq(), v.timestamp(), from.ClockRate)
		payload := v.payload()
		if len(payload) >= 4 && from.ClockRate != to.ClockRate && from.ClockRate != 0 {
			// The event duration is in timestamp units of the sender's clock.
			d := uint64(binary.BigEndian.Uint16(payload[2:])) * uint64(to.ClockRate) / uint64(from.ClockRate)
			binary.BigEndian.PutUint16(payload[2:], uint16(min(d, 0xFFFF)))
		}
		rewriteRTPHeader(pkt, v.marker() || first, to.TelephoneEvent, seq, ts, os.ssrc)
		if err := dst.WriteRTP(pkt[:v.withoutPadding()]); err != nil {
			st.dropped.Add(1)
			return
		}
		st.packets.Add(1)
		st.dtmf.Add(1)
		st.bytes.Add(uint64(len(payload)))
	case pt == rtpPayloadCN && tx == nil:
		seq, ts, first := os.next(v.ssrc(), v.seq(), v.timestamp(), from.ClockRate)
		rewriteRTPHeader(pkt, v.marker() || first, rtpPayloadCN, seq, ts, os.ssrc)
		if err := dst.WriteRTP(pkt[:v.withoutPadding()]); err != nil {
			st.dropped.Add(1)
			return
		}
		st.packets.Add(1)
		st.bytes.Add(uint64(len(v.payload())))
	default:
		st.dropped.Add(1)
	}
}

// outStream is the state of one outbound RTP stream that several inbound sources
// feed in turn (successive customers, or a customer whose SSRC changes): the
// outbound SSRC stays, and each new source is rebased so that sequence numbers
// continue without a gap and timestamps one frame after the last.
type outStream struct {
	ssrc     uint32
	clock    uint32
	frame    uint32 // timestamp units of one frame
	started  bool
	lastSeq  uint16
	lastTS   uint32
	srcValid bool
	srcSSRC  uint32
	seqDelta uint16
	inBase   uint32
	outBase  uint32
}

func newOutStream(clock uint32, frame time.Duration) outStream {
	if clock == 0 {
		clock = 8000
	}
	return outStream{
		ssrc: rand.Uint32(), clock: clock,
		frame: uint32(uint64(clock) * uint64(frame) / uint64(time.Second)),
		// RFC 3550: random initial sequence number and timestamp.
		lastSeq: uint16(rand.Uint32()), lastTS: rand.Uint32(),
	}
}

// newSegment makes the next packet start a new source mapping.
func (o *outStream) newSegment() { o.srcValid = false }

// next maps an inbound packet's sequence number and timestamp (at clock inClock)
// to the outbound stream; first reports the first packet of a new source, which
// gets the marker bit so the receiver's jitter buffer resynchronises.
func (o *outStream) next(ssrc uint32, seq uint16, ts, inClock uint32) (uint16, uint32, bool) {
	first := false
	if !o.srcValid || ssrc != o.srcSSRC {
		first = true
		o.srcValid, o.srcSSRC = true, ssrc
		o.seqDelta = o.lastSeq + 1 - seq
		if o.started {
			o.outBase = o.lastTS + o.frame
		} else {
			o.outBase = o.lastTS
		}
		o.inBase = ts
	}
	if inClock == 0 {
		inClock = o.clock
	}
	d := int64(int32(ts - o.inBase))
	outTS := o.outBase + uint32(d*int64(o.clock)/int64(inClock))
	if d > 1<<30 {
		// Rebase long streams so the signed difference never overflows.
		o.inBase, o.outBase = ts, outTS
	}
	outSeq := seq + o.seqDelta
	if !o.started || int16(outSeq-o.lastSeq) > 0 {
		o.lastSeq = outSeq
	}
	if !o.started || int32(outTS-o.lastTS) > 0 {
		o.lastTS = outTS
	}
	o.started = true
	return outSeq, outTS, first
}
