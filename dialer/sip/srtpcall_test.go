package sip

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"testing"
)

// secOffer is a carrier's offer inside the call at 127.0.0.2:4002.
func secOffer(profile string, crypto ...string) []byte {
	b := "v=0\r\no=sbc 1 3 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 4002 " + profile + " 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
	for _, c := range crypto {
		b += "a=crypto:" + c + "\r\n"
	}
	return []byte(b)
}

// srtpCall is a Media keyed as an answered call on a trunk in mode (its
// answer RTP/SAVP with key, or plain when key is ""), and its offer/answer.
func srtpCall(t *testing.T, mode, key string) (*Media, *offerAnswer) {
	t.Helper()
	m, err := (&portAllocator{ip: net.IPv4(127, 0, 0, 1)}).open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.close)
	n := newOfferAnswer(m.LocalAddr(), []Codec{CodecPCMU, CodecPCMA}).secured(m)
	m.offerSRTP(mode, n.offer(false))
	ans := answerWith("RTP/AVP")
	if key != "" {
		ans = answerWith("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key)
	}
	if err := m.keyAnswer(ans); err != nil {
		t.Fatal(err)
	}
	return m, n
}

// TestSRTPOfferInCall: a carrier's offer inside an SRTP call is answered as
// RFC 4568 section 6.1 says. Our key stays while the suite does, a new key of
// the carrier's rekeys only what we receive (what we send keeps its context,
// and with it its rollover counter), a new suite gets a new key of ours; a
// plain offer is refused on a trunk that requires SRTP and downgrades the call
// on one that offers it; what cannot be taken changes nothing.
func TestSRTPOfferInCall(t *testing.T) {
	const key = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR" // RFC 4568's example key
	other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 30))
	tests := []struct {
		name      string
		mode      string
		answered  string // the carrier's key in the call's answer; "": a plain call
		offer     []byte
		err       error
		why       string
		line      string // our answer's a=crypto tag and suite; "": a plain answer
		newLocal  bool   // our key changes
		newRemote bool   // the receive context is made anew
	}{
		{name: "moved, same key", mode: SRTPRequire, answered: key, offer: secOffer("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key), line: "1 AES_CM_128_HMAC_SHA1_80"},
		{name: "new key of theirs", mode: SRTPRequire, answered: key, offer: secOffer("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+other), line: "1 AES_CM_128_HMAC_SHA1_80", newRemote: true},
		{name: "new MKI of theirs", mode: SRTPRequire, answered: key, offer: secOffer("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key+"|2^31|2:1"), line: "1 AES_CM_128_HMAC_SHA1_80", newRemote: true},
		{name: "new suite", mode: SRTPOffer, answered: key, offer: secOffer("RTP/SAVP", "2 AES_CM_128_HMAC_SHA1_32 inline:"+key), line: "2 AES_CM_128_HMAC_SHA1_32", newLocal: true, newRemote: true},
		{name: "first usable line", mode: SRTPRequire, answered: key, offer: secOffer("RTP/SAVP", "1 AES_256_CM_HMAC_SHA1_80 inline:"+key+key, "2 AES_CM_128_HMAC_SHA1_80 inline:"+key[:20], "3 AES_CM_128_HMAC_SHA1_80 inline:"+other), line: "3 AES_CM_128_HMAC_SHA1_80", newRemote: true},
		{name: "plain offer, srtp required", mode: SRTPRequire, answered: key, offer: secOffer("RTP/AVP"), err: ErrSRTPOffer, why: "RTP/AVP offered on a trunk that requires srtp"},
		{name: "plain offer, srtp offered", mode: SRTPOffer, answered: key, offer: secOffer("RTP/AVP")},
		{name: "savp without keys", mode: SRTPOffer, answered: key, offer: secOffer("RTP/SAVP"), err: ErrSRTPOffer, why: "without a=crypto"},
		{name: "no usable key", mode: SRTPOffer, answered: key, offer: secOffer("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key+"|2^10", "2 AES_CM_128_HMAC_SHA1_32 inline:"+key+" KDR=1"), err: ErrSRTPOffer, why: "lifetime 2^10"},
		{name: "savp inside a plain call", mode: SRTPOffer, offer: secOffer("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key), err: ErrSRTPOffer, why: "inside a plain call"},
		{name: "plain inside a plain call", mode: SRTPOffer, offer: secOffer("RTP/AVP")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, n := srtpCall(t, tt.mode, tt.answered)
			before := m.sec.Load().session.Load()
			desc := n.current()
			ans, body, err := n.answer(tt.offer)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.why) {
					t.Fatalf("err = %v, want %v about %q", err, tt.err, tt.why)
				}
				if m.sec.Load().session.Load() != before || !bytes.Equal(n.current(), desc) {
					t.Error("a refused offer changed the call")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ans.Remote.String() != "127.0.0.2:4002" {
				t.Errorf("the answer applies remote %v", ans.Remote)
			}
			if tt.line == "" {
				if m.SRTP() != "" || !bytes.Contains(body, []byte(" RTP/AVP 0 101\r\n")) || bytes.Contains(body, []byte("a=crypto")) {
					t.Fatalf("want a plain answer and call, got %q:\n%s", m.SRTP(), body)
				}
				return
			}
			after := m.sec.Load().session.Load()
			want := &CryptoAttribute{Tag: after.keys.tag, Suite: after.keys.suite, Keys: []CryptoKey{{KeySalt: after.keys.local}}}
			if !bytes.Contains(body, []byte(" RTP/SAVP 0 101\r\n")) || !bytes.Contains(body, []byte("\r\na=crypto:"+want.String()+"\r\n")) || !strings.HasPrefix(want.String(), tt.line+" ") {
				t.Errorf("answer, want RTP/SAVP and a=crypto:%s ...:\n%s", tt.line, body)
			}
			if changed := !bytes.Equal(after.keys.local, before.keys.local); changed != tt.newLocal || (after.tx != before.tx) != tt.newLocal {
				t.Errorf("our key changed: %v, send context anew: %v; want %v", changed, after.tx != before.tx, tt.newLocal)
			}
			if (after.rx != before.rx) != tt.newRemote {
				t.Errorf("receive context anew: %v, want %v", after.rx != before.rx, tt.newRemote)
			}
			// A refresh offers what was agreed, with our key of now.
			if cur := n.current(); !bytes.Equal(afterOrigin(cur), afterOrigin(body)) {
				t.Errorf("refresh offer\n%s\nis not the answer's description\n%s", cur, body)
			}
		})
	}
}

// TestSRTPAnswerToOurOffer: the carrier's answer to an offer of ours inside an
// SRTP call (an offerless re-INVITE's ACK, our refresh's 200) may bring a new
// key of its own; it may not drop SRTP nor change the tag or suite.
func TestSRTPAnswerToOurOffer(t *testing.T) {
	const key = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
	other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 30))
	tests := []struct {
		name      string
		answer    []byte
		why       string // "": taken
		newRemote bool
	}{
		{name: "same key", answer: secOffer("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key)},
		{name: "new key", answer: secOffer("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+other), newRemote: true},
		{name: "plain", answer: secOffer("RTP/AVP"), why: "RTP/AVP with 0 a=crypto lines"},
		{name: "other tag", answer: secOffer("RTP/SAVP", "2 AES_CM_128_HMAC_SHA1_32 inline:"+key), why: "offered tag 1"},
		{name: "short key", answer: secOffer("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key[:20]), why: "15 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, n := srtpCall(t, SRTPRequire, key)
			offer := n.offer(true)
			if !bytes.Contains(offer, []byte(" RTP/SAVP 0 8 101\r\n")) || !bytes.Contains(offer, []byte("a=crypto:"+m.localCrypto().String()+"\r\n")) {
				t.Fatalf("our offer inside the call is not RTP/SAVP with our key:\n%s", offer)
			}
			before := m.sec.Load().session.Load()
			_, waited, err := n.answered(tt.answer)
			if !waited {
				t.Fatal("no offer of ours waited for the ACK's answer")
			}
			after := m.sec.Load().session.Load()
			if tt.why != "" {
				if !errors.Is(err, ErrSRTPAnswer) || !strings.Contains(err.Error(), tt.why) || after != before {
					t.Fatalf("err = %v (session changed: %v), want ErrSRTPAnswer about %q", err, after != before, tt.why)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if after.tx != before.tx || (after.rx != before.rx) != tt.newRemote {
				t.Errorf("send context anew: %v, receive context anew: %v, want false, %v", after.tx != before.tx, after.rx != before.rx, tt.newRemote)
			}
		})
	}
}
