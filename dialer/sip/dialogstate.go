package sip

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// dialogState is what one answered call's dialog keeps between the requests
// inside it: the 2xx we sent to re-INVITEs over UDP and still retransmit
// until their ACKs arrive, and whether our own offer (a session refresh) is
// pending, so that a crossing re-INVITE or UPDATE gets 491.
type dialogState struct {
	mu      sync.Mutex
	unacked map[uint32]chan struct{} // by the re-INVITE's CSeq number
	lastAck uint32                   // the CSeq number of the last ACK taken
	// offering: our re-INVITE, and the offer in it, awaits its final response.
	offering bool
	// answering is held while a request inside the call is answered: the
	// media moves before the 200 leaves, and a BYE of ours sent meanwhile
	// (the call hung up as the media moved) would reach the peer before the
	// 200 to its own re-INVITE.
	answering sync.Mutex
}

// afterAnswers waits until no request inside the call is being answered: our
// BYE goes after the 200s already decided.
func (s *dialogState) afterAnswers() {
	s.answering.Lock()
	//lint:ignore SA2001 waiting for the answer to leave is the point
	s.answering.Unlock()
}

func newDialogState() *dialogState {
	return &dialogState{unacked: make(map[uint32]chan struct{})}
}

// retransmit resends a 2xx to a re-INVITE that came over UDP until its ACK
// arrives (RFC 3261 §13.3.1.4, which §14.2 applies to re-INVITEs): after T1,
// then doubling up to T2, for at most 64*T1, or until the dialog ends. sipgo's
// server transaction sends the 2xx once and absorbs the re-INVITE's
// retransmissions (RFC 6026 §7.1), so without this a lost 200 leaves the
// carrier resending its re-INVITE unanswered until it gives up, and most
// carriers then end the call. send writes the 2xx once more.
func (s *dialogState) retransmit(ctx context.Context, seq uint32, send func() error, log *slog.Logger) {
	acked := make(chan struct{})
	s.mu.Lock()
	if _, dup := s.unacked[seq]; dup {
		s.mu.Unlock()
		return // already resent until acknowledged
	}
	s.unacked[seq] = acked
	s.mu.Unlock()
	go func() {
		defer func() {
			s.mu.Lock()
			if s.unacked[seq] == acked {
				delete(s.unacked, seq)
			}
			s.mu.Unlock()
		}()
		giveUp := time.NewTimer(64 * sip.T1)
		defer giveUp.Stop()
		wait := time.NewTimer(sip.T1)
		defer wait.Stop()
		for interval := sip.T1; ; {
			select {
			case <-acked:
				return
			case <-ctx.Done():
				return
			case <-giveUp.C:
				log.Warn("sip: no ACK for our 2xx to a re-INVITE", "cseq", seq)
				return
			case <-wait.C:
			}
			if err := send(); err != nil {
				log.Debug("sip: 2xx retransmission", "cseq", seq, "err", err)
				return
			}
			interval = min(2*interval, sip.T2)
			wait.Reset(interval)
		}
	}()
}

// acked stops the retransmission of the 2xx the ACK with CSeq number seq
// acknowledges.
func (s *dialogState) acked(seq uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastAck = max(s.lastAck, seq)
	if ch, ok := s.unacked[seq]; ok {
		close(ch)
		delete(s.unacked, seq)
	}
}

// offer marks our re-INVITE (a session refresh, with our offer) pending until
// the returned func is called with its final response in.
func (s *dialogState) offer() (done func()) {
	s.mu.Lock()
	s.offering = true
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.offering = false
		s.mu.Unlock()
	}
}

// crosses reports whether a request from the peer crosses our pending offer
// and must be refused with 491 Request Pending: a re-INVITE while ours is
// pending (RFC 3261 §14.2), or an UPDATE with an offer while our offer awaits
// its answer (RFC 3311 §5.2). Our refresh by UPDATE carries no offer, so
// nothing crosses it.
func (s *dialogState) crosses(invite, hasOffer bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offering && (invite || hasOffer)
}

// glareDelay is how long to wait before sending again a re-INVITE refused
// with 491 (RFC 3261 §14.1): in units of 10 ms, 2.1 to 4 s when we chose the
// dialog's Call-ID, else 0 to 2 s, so that the two ends do not cross again.
// n(k) returns a random integer in [0, k).
func glareDelay(ownCallID bool, n func(int) int) time.Duration {
	const unit = 10 * time.Millisecond
	if ownCallID {
		return 210*unit + time.Duration(n(191))*unit
	}
	return time.Duration(n(201)) * unit
}
