package sip

import (
	"crypto/rand"
	"errors"
	"fmt"
)

// ErrSRTPOffer: an offer inside a call whose security description the call
// cannot take; the request is refused with 488 and the call goes on as it was.
var ErrSRTPOffer = errors.New("srtp offer inside the call refused")

// callSRTP is the SRTP side of offer/answer inside an answered call (RFC 4568
// section 6.1 on offers after the first), carried out by the call's Media.
type callSRTP interface {
	// localCrypto is the a=crypto line our descriptions carry now: the agreed
	// tag and suite with our current key; nil on a plain call.
	localCrypto() *CryptoAttribute
	// answerCrypto takes the peer's offer a: it keys the call as the offer
	// asks, so that localCrypto is our answer's line (nil: answer plain), or
	// says why the offer cannot be taken, leaving the call as it was.
	answerCrypto(a sdpAudio) error
	// takeCrypto takes the peer's answer a to an offer of ours that carried
	// localCrypto: the peer may change its key, not the suite or the tag.
	takeCrypto(a sdpAudio) error
}

// localCrypto implements callSRTP.
func (m *Media) localCrypto() *CryptoAttribute {
	st := m.sec.Load()
	if st == nil {
		return nil
	}
	s := st.session.Load()
	if s == nil {
		return nil
	}
	return &CryptoAttribute{Tag: s.keys.tag, Suite: s.keys.suite, Keys: []CryptoKey{{KeySalt: s.keys.local}}}
}

// answerCrypto implements callSRTP. On an SRTP call, the first offered line
// of a suite Turbina speaks with a usable key is taken: our key stays as it
// is while the suite does, since our SSRC and rollover counter go on and
// Turbina uses no MKI (RFC 4568 section 6.1), and a new key of the peer's
// rekeys only what we receive. An offer without keys downgrades the call on a
// trunk that only offers SRTP and is refused on one that requires it; SRTP
// cannot start inside a call that was answered plain, as its bridge already
// reads the trunk's socket.
func (m *Media) answerCrypto(a sdpAudio) error {
	st, cur := m.srtpNow()
	secure := isSecureProfile(a.profile)
	switch {
	case cur == nil && secure:
		return fmt.Errorf("%w: %s offered inside a plain call", ErrSRTPOffer, a.profile)
	case cur == nil:
		return nil
	case secure && len(a.crypto) == 0:
		return fmt.Errorf("%w: %s without a=crypto", ErrSRTPOffer, a.profile)
	case !secure && st.offer.mode == SRTPRequire:
		return fmt.Errorf("%w: %s offered on a trunk that requires srtp", ErrSRTPOffer, a.profile)
	case !secure:
		st.session.Store(nil)
		st.plain.Store(true)
		return nil
	}
	var why []string
	for _, v := range a.crypto {
		got, err := ParseCryptoAttribute(v)
		if err != nil {
			why = append(why, err.Error())
			continue
		}
		if _, ok := srtpSuites[got.Suite]; !ok {
			why = append(why, fmt.Sprintf("tag %d: suite %s not spoken", got.Tag, got.Suite))
			continue
		}
		remote, mki, err := usableKey(got)
		if err != nil {
			why = append(why, err.Error())
			continue
		}
		local := cur.keys.local
		if got.Suite != cur.keys.suite {
			local = make([]byte, srtpKeyLen+srtpSaltLen)
			_, _ = rand.Read(local) // crypto/rand.Read never fails (it crashes the program instead)
		}
		keys := &srtpKeys{tag: got.Tag, suite: got.Suite, local: local, remote: remote, remoteMKI: mki}
		s, err := newSRTPSession(keys, cur)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrSRTPOffer, err)
		}
		st.session.Store(s)
		return nil
	}
	return fmt.Errorf("%w: no usable a=crypto line: %v", ErrSRTPOffer, why)
}

// takeCrypto implements callSRTP.
func (m *Media) takeCrypto(a sdpAudio) error {
	st, cur := m.srtpNow()
	secure := isSecureProfile(a.profile)
	switch {
	case cur == nil && secure:
		return fmt.Errorf("%w: the answer is %s to an RTP/AVP offer", ErrSRTPAnswer, a.profile)
	case cur == nil:
		return nil
	case !secure || len(a.crypto) != 1:
		return fmt.Errorf("%w: the answer to our RTP/SAVP offer is %s with %d a=crypto lines", ErrSRTPAnswer, a.profile, len(a.crypto))
	}
	got, err := ParseCryptoAttribute(a.crypto[0])
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSRTPAnswer, err)
	}
	if got.Tag != cur.keys.tag || got.Suite != cur.keys.suite {
		return fmt.Errorf("%w: a=crypto tag %d %s, offered tag %d %s", ErrSRTPAnswer, got.Tag, got.Suite, cur.keys.tag, cur.keys.suite)
	}
	remote, mki, err := usableKey(got)
	if err != nil {
		return err
	}
	keys := &srtpKeys{tag: got.Tag, suite: got.Suite, local: cur.keys.local, remote: remote, remoteMKI: mki}
	if keys.equal(cur.keys) {
		return nil
	}
	s, err := newSRTPSession(keys, cur)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSRTPAnswer, err)
	}
	st.session.Store(s)
	return nil
}

// secureSDP makes a plain description that buildSDP wrote carry line: the
// audio m= line's RTP/AVP becomes RTP/SAVP and the a=crypto line follows it.
// A nil line leaves it plain.
func secureSDP(sdp []byte, line *CryptoAttribute) []byte {
	if line == nil {
		return sdp
	}
	return (&sdesOffer{lines: []CryptoAttribute{*line}}).apply(sdp)
}
