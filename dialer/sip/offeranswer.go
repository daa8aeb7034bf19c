package sip

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// offerAnswer is one side's offer/answer state for the life of a call (RFC
// 3264): the local RTP address and o= line, the codecs this side may carry,
// its newest description, and an offer of ours that waits for its answer in
// an ACK. Its methods are safe for concurrent use.
type offerAnswer struct {
	port int
	id   uint64

	mu       sync.Mutex
	ip       net.IP
	codecs   []Codec // what this side may carry, most preferred first
	version  uint64
	last     []byte // our newest description
	awaiting bool   // an offer of ours went in a 200; the ACK brings its answer
	// sec is the call's SRTP (nil: a leg that is always plain): our
	// descriptions inside the call carry its key, and the peer's carry theirs.
	sec callSRTP
	// lastCodecs, lastDTMF and lastDir are what our newest description said,
	// for current to say again with the key of now.
	lastCodecs []Codec
	lastDTMF   uint8
	lastDir    Direction
}

func newOfferAnswer(local *net.UDPAddr, codecs []Codec) *offerAnswer {
	var sid [8]byte
	_, _ = rand.Read(sid[:])
	id := binary.BigEndian.Uint64(sid[:]) >> 2
	return &offerAnswer{ip: local.IP, port: local.Port, id: id, version: id, codecs: codecs}
}

// setIP sets the address our descriptions name for RTP (a trunk's external
// media address behind NAT); for a new dialog, before its first offer.
func (n *offerAnswer) setIP(ip net.IP) {
	if ip == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ip = ip
}

// secured makes the call's descriptions inside the call follow its SRTP.
func (n *offerAnswer) secured(sec callSRTP) *offerAnswer {
	n.sec = sec
	return n
}

// offer is a fresh offer: every codec this side may carry, sendrecv, with
// telephone-event. pending marks it as sent in a 200 whose ACK answers it, an
// offer inside the call, which carries the call's SRTP key; the INVITE's
// offer is made secure by Media.offerSRTP instead, with a key per suite.
func (n *offerAnswer) offer(pending bool) []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.awaiting = pending
	return n.describeLocked(n.codecs, telephoneEventPT, DirSendRecv, pending)
}

// current is our newest description, unchanged: a session refresh offers it
// again with the same version (RFC 4028 §7.4, RFC 3264 §8).
// On an SRTP call it carries the key of now: the version goes up only when
// the key changed since.
func (n *offerAnswer) current() []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.last == nil {
		return n.describeLocked(n.codecs, telephoneEventPT, DirSendRecv, true)
	}
	return n.describeLocked(n.lastCodecs, n.lastDTMF, n.lastDir, true)
}

// restrict narrows what this side may carry from now on (an agent's phone
// leg stays on the codec its bridge was built with).
func (n *offerAnswer) restrict(codecs ...Codec) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.codecs = codecs
}

// describeLocked writes a description, the version one up from the last one
// when anything but the o= line changed; inCall descriptions carry the call's
// SRTP key.
func (n *offerAnswer) describeLocked(codecs []Codec, dtmf uint8, dir Direction, inCall bool) []byte {
	var line *CryptoAttribute
	if inCall && n.sec != nil {
		line = n.sec.localCrypto()
	}
	body := secureSDP(buildSDP(n.ip, n.port, n.id, n.version, codecs, dtmf, dir), line)
	if n.last != nil && !bytes.Equal(afterOrigin(body), afterOrigin(n.last)) {
		n.version++
		body = secureSDP(buildSDP(n.ip, n.port, n.id, n.version, codecs, dtmf, dir), line)
	}
	n.last, n.lastCodecs, n.lastDTMF, n.lastDir = body, codecs, dtmf, dir
	return body
}

// afterOrigin is a description from its s= line on: what changes when the
// session does.
func afterOrigin(b []byte) []byte {
	if i := bytes.Index(b, []byte("\r\ns=")); i >= 0 {
		return b[i:]
	}
	return b
}

// answer answers a peer's offer (RFC 3264 §6): the first of the offer's
// formats that this side may carry, alone, with the offer's telephone-event,
// and the direction that answers the offer's. The Answer is what to apply to
// the media, its Direction the peer's. On an SRTP call the answer carries
// the key the offer agreed (callSRTP.answerCrypto). The error wraps
// ErrNoAudio, ErrNoCommonCodec or ErrSRTPOffer; nothing changes then (the
// request is refused with 488).
func (n *offerAnswer) answer(offer []byte) (Answer, []byte, error) {
	a, err := parseSDP(offer)
	if err != nil {
		return Answer{}, nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var pick Codec
	found := false
	for _, f := range a.formats {
		if slices.ContainsFunc(n.codecs, func(c Codec) bool { return c.Name == f.Name }) {
			pick, found = f, true
			break
		}
	}
	if !found {
		return Answer{}, nil, ErrNoCommonCodec
	}
	if n.sec != nil {
		if err := n.sec.answerCrypto(a); err != nil {
			return Answer{}, nil, err
		}
	}
	peer := a.dir
	remote := a.remote()
	if remote == nil {
		peer = DirSendOnly // c=0.0.0.0: the old hold, nothing is to be sent to it
	}
	body := n.describeLocked([]Codec{pick}, a.dtmf, answerDir[peer], true)
	n.awaiting = false
	return Answer{Remote: remote, Codec: pick, TelephoneEvent: a.dtmf, Direction: peer, Profile: a.profile, Crypto: a.crypto}, body, nil
}

// answered takes the answer to an offer of ours that went in a 200, from its
// ACK. false when no offer of ours waits for one.
func (n *offerAnswer) answered(body []byte) (Answer, bool, error) {
	n.mu.Lock()
	waiting := n.awaiting
	n.awaiting = false
	n.mu.Unlock()
	if !waiting {
		return Answer{}, false, nil
	}
	ans, err := n.take(body)
	return ans, true, err
}

// take reads the peer's answer to an offer of ours inside the call (in an ACK,
// or in the 2xx of our refresh) and, on an SRTP call, takes the key it
// carries (callSRTP.takeCrypto). On an error nothing changes.
func (n *offerAnswer) take(body []byte) (Answer, error) {
	a, err := parseSDP(body)
	if err != nil {
		return Answer{}, err
	}
	if len(a.formats) == 0 {
		return Answer{}, ErrNoCommonCodec
	}
	if n.sec != nil {
		if err := n.sec.takeCrypto(a); err != nil {
			return Answer{}, err
		}
	}
	return Answer{Remote: a.remote(), Codec: a.formats[0], TelephoneEvent: a.dtmf, Direction: a.dir, Profile: a.profile, Crypto: a.crypto}, nil
}

// allowMethods is the Allow header of the originator's requests and answers:
// what a carrier may send inside a call.
const allowMethods = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE"

// Session timers (RFC 4028).
const (
	// rfcMinSE is the smallest Min-SE RFC 4028 allows; Config.MinSE may go
	// below it for tests.
	rfcMinSE = 90 * time.Second
	// maxSessionExpires bounds how far a 422's Min-SE may raise our
	// Session-Expires before the call is given up.
	maxSessionExpires = 2 * time.Hour
)

// sessionTimer is a dialog's session timer: how long it lives without a
// refresh, and whether this side sends the refreshes.
type sessionTimer struct {
	interval time.Duration // 0: no timer
	refresh  bool          // we refresh; otherwise the peer does
}

// parseSessionExpires reads a Session-Expires header: "1800;refresher=uac".
func parseSessionExpires(h sip.Header) (time.Duration, string, bool) {
	if h == nil {
		return 0, "", false
	}
	parts := strings.Split(h.Value(), ";")
	secs, err := strconv.Atoi(strings.TrimSpace(parts[0]))
	if err != nil || secs <= 0 {
		return 0, "", false
	}
	refresher := ""
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "refresher") {
			refresher = strings.ToLower(strings.TrimSpace(v))
		}
	}
	return time.Duration(secs) * time.Second, refresher, true
}

// parseMinSE reads a Min-SE header (a 422's or a request's).
func parseMinSE(h sip.Header) (time.Duration, bool) {
	if h == nil {
		return 0, false
	}
	v, _, _ := strings.Cut(h.Value(), ";")
	secs, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || secs <= 0 {
		return 0, false
	}
	return time.Duration(secs) * time.Second, true
}

// sessionExpiresHeader writes Session-Expires: N;refresher=R.
func sessionExpiresHeader(d time.Duration, refresher string) sip.Header {
	v := strconv.Itoa(int(d / time.Second))
	if refresher != "" {
		v += ";refresher=" + refresher
	}
	return sip.NewHeader("Session-Expires", v)
}

func minSEHeader(d time.Duration) sip.Header {
	return sip.NewHeader("Min-SE", strconv.Itoa(int(d/time.Second)))
}

// uasTimer is our side of a session-timer request the peer sent inside the
// dialog (RFC 4028 §9): the timer from now on and the headers of the 200, or
// tooSmall when the interval is below minSE (answer 422 with Min-SE). ok is
// false when the request asks for no timer.
func uasTimer(req *sip.Request, minSE time.Duration) (st sessionTimer, headers []sip.Header, tooSmall, ok bool) {
	d, refresher, ok := parseSessionExpires(req.GetHeader("Session-Expires"))
	if !ok {
		return sessionTimer{}, nil, false, false
	}
	if d < minSE {
		return sessionTimer{}, nil, true, true
	}
	if refresher != "uas" {
		refresher = "uac" // the peer asked, or left it to us: it refreshes
	}
	st = sessionTimer{interval: d, refresh: refresher == "uas"}
	headers = []sip.Header{sessionExpiresHeader(d, refresher), sip.NewHeader("Require", "timer")}
	return st, headers, false, true
}

// expiryDelay is when a session the peer should refresh is given up: the
// interval less a third of it, or 32 s (RFC 4028 §10).
func (s sessionTimer) expiryDelay() time.Duration {
	return s.interval - min(32*time.Second, s.interval/3)
}

// sessionExpired is why a call whose session timer ran out ended.
func sessionExpired(d time.Duration) string {
	return fmt.Sprintf("session timer expired: no refresh within %s (RFC 4028)", d)
}

// Session refresh methods (Config.SessionRefresh).
const (
	RefreshInvite = "invite"
	RefreshUpdate = "update"
)

func (c *Config) applyDialogDefaults() {
	if c.RTPTimeout == 0 {
		c.RTPTimeout = Duration(30 * time.Second)
	}
	if c.SessionExpires == 0 {
		c.SessionExpires = Duration(30 * time.Minute)
	}
	if c.MinSE == 0 {
		c.MinSE = Duration(rfcMinSE)
	}
	c.SessionRefresh = strings.ToLower(c.SessionRefresh)
	if c.SessionRefresh == "" {
		c.SessionRefresh = RefreshInvite
	}
}

func (c *Config) validateDialog() error {
	for _, d := range []struct {
		name string
		v    Duration
	}{{"rtp_timeout", c.RTPTimeout}, {"session_expires", c.SessionExpires}, {"min_se", c.MinSE}} {
		if d.v < Duration(time.Second) {
			return fmt.Errorf("%s %s: want at least 1s", d.name, d.v.Std())
		}
	}
	if c.SessionExpires < c.MinSE {
		return fmt.Errorf("session_expires %s: below min_se %s", c.SessionExpires.Std(), c.MinSE.Std())
	}
	if c.SessionRefresh != RefreshInvite && c.SessionRefresh != RefreshUpdate {
		return fmt.Errorf("session_refresh %q: want invite or update", c.SessionRefresh)
	}
	return nil
}
