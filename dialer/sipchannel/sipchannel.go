// Package sipchannel is the sip rung's channel: it places the engine's attempts on
// the SIP trunks of a dialer/sip Originator and reports their progress as
// channel.Attempts. The SIP package's outcomes (sip.Outcome, protocol
// vocabulary) become the ladder's campaigns.Outcome here and nowhere else.
package sipchannel

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/media"
)

// Channel places the sip rung's attempts on the SIP trunks of an Originator.
type Channel struct {
	originator *sip.Originator
}

// New returns the channel that dials through o.
func New(o *sip.Originator) *Channel { return &Channel{originator: o} }

// Up reports whether some trunk takes calls: its circuit closed and in service.
// With every circuit open, Place fails with channel.ErrChannelDown.
func (s *Channel) Up() bool {
	for _, t := range s.originator.Trunks() {
		if t.State == sip.CircuitClosed && !t.OutOfService {
			return true
		}
	}
	return false
}

// sipOutcomes maps the SIP package's outcomes to the ladder's. sip.Outcome is
// the protocol's vocabulary; this map is the one place it becomes a
// campaigns.Outcome, so the engine and storage speak only the ladder's.
var sipOutcomes = map[sip.Outcome]campaigns.Outcome{
	sip.OutcomeBusy:          campaigns.OutcomeBusy,
	sip.OutcomeNoAnswer:      campaigns.OutcomeNoAnswer,
	sip.OutcomeInvalidNumber: campaigns.OutcomeInvalidNumber,
	sip.OutcomeRejected:      campaigns.OutcomeRejected,
	sip.OutcomeTrunkFault:    campaigns.OutcomeTrunkFault,
	sip.OutcomeTrunkDown:     campaigns.OutcomeTrunkDown,
	sip.OutcomeMediaFailed:   campaigns.OutcomeMediaFailed,
	sip.OutcomeCanceled:      campaigns.OutcomeInterrupted,
}

// Place dials one attempt. Every trunk's circuit open is channel.ErrChannelDown, so the
// contact moves on to the next rung at once; every trunk at its channel limit is
// channel.ErrChannelBusy, so the contact waits a moment without losing an attempt.
func (s *Channel) Place(ctx context.Context, req channel.PlaceRequest) (channel.Attempt, error) {
	l := &sipAttempt{events: make(chan channel.AttemptEvent, 16)}
	call, err := s.originator.Dial(ctx, sip.DialRequest{
		To:          req.To,
		CallerID:    req.CallerID,
		RingTimeout: req.RingTimeout,
		AttemptID:   strconv.FormatInt(req.AttemptID, 10),
		OnEvent:     l.progress,
	})
	switch {
	case errors.Is(err, sip.ErrNoTrunk):
		return nil, fmt.Errorf("%w: %w", channel.ErrChannelDown, err)
	case errors.Is(err, sip.ErrTrunksBusy):
		return nil, fmt.Errorf("%w: %w", channel.ErrChannelBusy, err)
	case err != nil:
		return nil, err
	}
	l.mu.Lock()
	l.call = call
	l.mu.Unlock()
	go l.end()
	return l, nil
}

// sipAttempt turns a SIP call's progress into attempt events.
type sipAttempt struct {
	events chan channel.AttemptEvent

	mu      sync.Mutex
	call    *sip.Call // set by Place, or by the answer when it comes first
	ringing bool
	audio   media.Leg
}

// MediaLeg hands the answered call's RTP socket over to a media leg.
func (l *sipAttempt) MediaLeg() (media.Leg, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mediaLegLocked()
}

func (l *sipAttempt) mediaLegLocked() (media.Leg, error) {
	if l.audio != nil {
		return l.audio, nil
	}
	if !l.call.Answered() {
		return nil, errors.New("sip call not answered")
	}
	m := l.call.Media()
	conn, last := m.Detach()
	leg := media.NewUDPLeg(conn, m.RemoteAddr(), legCodec(m.Codec(), m.TelephoneEvent()), media.WithFirstPacket(last))
	// A re-INVITE or UPDATE may move the carrier's RTP, change its codec or
	// hold the call: the leg, and the bridge it is in, follow.
	m.Follow(func(st sip.MediaState) {
		leg.SetRemote(st.Remote)
		leg.SetCodec(legCodec(st.Codec, st.TelephoneEvent))
		leg.SetMuted(st.Held)
	})
	m.WillNoteReceived() // heardLeg does: a carrier that sends nothing is found dead
	l.audio = heardLeg{UDPLeg: leg, m: m}
	return l.audio, nil
}

// legCodec is the media codec of a SIP call's agreed one.
func legCodec(c sip.Codec, dtmf uint8) media.Codec {
	codec := media.PCMU
	if c.Name == "PCMA" {
		codec = media.PCMA
	}
	codec.PayloadType, codec.TelephoneEvent = c.PayloadType, dtmf
	return codec
}

// heardLeg tells the SIP call of each customer packet the bridge reads: once the
// socket is detached only the bridge sees the media, and the trunk's health
// watch needs it to tell a conversation that goes on from one the trunk's death
// silenced (sip.Media.NoteReceived). The UDPLeg's other methods are its own.
type heardLeg struct {
	*media.UDPLeg
	m *sip.Media
}

// ReadRTP reads as the UDPLeg does and notes the packet's arrival.
func (l heardLeg) ReadRTP(buf []byte) (int, error) {
	n, err := l.UDPLeg.ReadRTP(buf)
	if err == nil {
		l.m.NoteReceived(time.Now())
	}
	return n, err
}

// Events reports the call's progress.
func (l *sipAttempt) Events() <-chan channel.AttemptEvent { return l.events }

func (l *sipAttempt) Hangup(ctx context.Context) error { return l.sipCall().Hangup(ctx) }

func (l *sipAttempt) sipCall() *sip.Call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.call
}

// progress is the SIP call's OnEvent hook: it runs on the call's goroutine and must
// not block, which the buffer guarantees since each kind is sent at most once.
func (l *sipAttempt) progress(ev sip.Event) {
	var kind channel.AttemptEventKind
	switch ev.Kind {
	case sip.EventRinging, sip.EventEarlyMedia:
		l.mu.Lock()
		first := !l.ringing
		l.ringing = true
		l.mu.Unlock()
		if !first {
			return
		}
		kind = channel.AttemptRinging
	case sip.EventAnswered:
		// Take the RTP socket over at once: the customer's first packets then wait
		// on it for the bridge instead of being read and dropped.
		l.mu.Lock()
		if l.call == nil {
			l.call = ev.Call
		}
		l.mediaLegLocked()
		l.mu.Unlock()
		kind = channel.AttemptAnswered
	default:
		return
	}
	select {
	case l.events <- channel.AttemptEvent{Kind: kind, At: ev.Time, Trunk: ev.Trunk, SIPStatus: ev.Status}:
	default:
	}
}

// end reports the call's result once it is final. Done closes after the call's last
// progress event, so the answer is always delivered before the end.
func (l *sipAttempt) end() {
	<-l.call.Done()
	res := l.call.Result()
	ev := channel.AttemptEvent{Kind: channel.AttemptEnded, At: res.EndAt, SIPStatus: res.Status, Trunk: res.Trunk,
		HangupBy: string(res.HangupBy), Detail: res.Reason, SetupAt: res.InviteAt, RingAt: res.RingAt}
	if res.Outcome != sip.OutcomeAnswered {
		ev.Outcome = sipOutcomes[res.Outcome]
		if ev.Outcome == "" {
			ev.Outcome = campaigns.OutcomeTrunkFault
		}
	}
	l.events <- ev
	close(l.events)
}
