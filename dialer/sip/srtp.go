package sip

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// SRTP modes accepted in [TrunkConfig.SRTP]: keys exchanged in the SDP (SDES,
// RFC 4568), so they are only as secret as the SIP that carries them.
const (
	// SRTPOff offers plain RTP/AVP (the default).
	SRTPOff = "off"
	// SRTPOffer offers RTP/SAVP with keys and takes an RTP/AVP answer without
	// them as a plain call.
	SRTPOffer = "offer"
	// SRTPRequire offers RTP/SAVP and hangs up an answer without keys, a trunk fault.
	SRTPRequire = "require"
)

// The SRTP crypto suites Turbina offers (RFC 4568 section 6.2), in order of preference.
const (
	SuiteAES128SHA1_80 = "AES_CM_128_HMAC_SHA1_80"
	SuiteAES128SHA1_32 = "AES_CM_128_HMAC_SHA1_32"
)

// Errors of SRTP negotiation; an answered call that ends with one is a trunk fault.
var (
	// ErrSRTPRequired: the trunk requires SRTP and the answer carries no key.
	ErrSRTPRequired = errors.New("srtp required but the answer has no a=crypto")
	// ErrSRTPAnswer: the answer's security description cannot be used.
	ErrSRTPAnswer = errors.New("srtp answer refused")
)

// srtpSuites maps the suites Turbina speaks to pion's profiles.
var srtpSuites = map[string]srtp.ProtectionProfile{
	SuiteAES128SHA1_80: srtp.ProtectionProfileAes128CmHmacSha1_80,
	SuiteAES128SHA1_32: srtp.ProtectionProfileAes128CmHmacSha1_32,
}

// Both suites take a 128-bit master key and a 112-bit master salt (RFC 3711, RFC 4568 section 6.2).
const (
	srtpKeyLen  = 16
	srtpSaltLen = 14
	// srtpMinLifetime: a key's lifetime below 2^20 packets (5.8 hours of 20 ms
	// frames) would need rekeying within a call, which Turbina does not do.
	srtpMinLifetime = 1 << 20
	// srtpReplayWindow is the replay window of received packets (RFC 3711 section 3.3.2).
	srtpReplayWindow = 128
)

// CryptoAttribute is one a=crypto attribute (RFC 4568 section 4):
//
//	a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]
type CryptoAttribute struct {
	// Tag identifies the attribute within the media line; the answer repeats the
	// tag of the offered attribute it accepts.
	Tag uint32
	// Suite is the crypto suite's name, e.g. AES_CM_128_HMAC_SHA1_80.
	Suite string
	// Keys are the key-params, one or more "inline" keys.
	Keys []CryptoKey
	// SessionParams are the session parameters as written (KDR=…, UNENCRYPTED_SRTP, …).
	SessionParams []string
}

// CryptoKey is one "inline" key-param of the SRTP security description (RFC
// 4568 section 6.1): key-salt [ "|" lifetime ] [ "|" mki-value ":" mki-length ].
type CryptoKey struct {
	// KeySalt is the master key followed by the master salt, base64-decoded.
	KeySalt []byte
	// Lifetime is as written ("2^20" or decimal); empty when absent.
	Lifetime string
	// MKI and MKILength are the master key identifier and its length in bytes;
	// MKILength is 0 when the key has none.
	MKI       uint64
	MKILength int
}

// ParseCryptoAttribute reads the value of an a=crypto attribute, the text after
// "a=crypto:". It checks the syntax of RFC 4568 section 9 and of SRTP's inline
// key (section 6.1), not whether Turbina can use the suite.
func ParseCryptoAttribute(value string) (CryptoAttribute, error) {
	f := strings.Fields(value)
	if len(f) < 3 {
		return CryptoAttribute{}, fmt.Errorf("a=crypto %q: want tag, crypto-suite and key-params", value)
	}
	tag, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil || len(f[0]) > 9 {
		return CryptoAttribute{}, fmt.Errorf("a=crypto %q: tag %q: want 1 to 9 digits", value, f[0])
	}
	if !isCryptoToken(f[1]) {
		return CryptoAttribute{}, fmt.Errorf("a=crypto %q: crypto-suite %q: want letters, digits and _", value, f[1])
	}
	a := CryptoAttribute{Tag: uint32(tag), Suite: f[1]}
	if len(f) > 3 {
		a.SessionParams = f[3:]
	}
	for _, kp := range strings.Split(f[2], ";") {
		k, err := parseCryptoKey(kp)
		if err != nil {
			return CryptoAttribute{}, fmt.Errorf("a=crypto %q: %w", value, err)
		}
		a.Keys = append(a.Keys, k)
	}
	return a, nil
}

func isCryptoToken(s string) bool {
	for _, r := range s {
		if !(r == '_' || r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z') {
			return false
		}
	}
	return s != ""
}

func parseCryptoKey(kp string) (CryptoKey, error) {
	method, info, ok := strings.Cut(kp, ":")
	if !ok || method != "inline" {
		return CryptoKey{}, fmt.Errorf("key-param %q: want inline:<key||salt>", kp)
	}
	parts := strings.Split(info, "|")
	if parts[0] == "" {
		return CryptoKey{}, fmt.Errorf("key-param %q: no key and salt", kp)
	}
	if len(parts) > 3 {
		return CryptoKey{}, fmt.Errorf("key-param %q: too many |-separated fields", kp)
	}
	// Both paddings are met in the wild; a 30-byte key and salt need none.
	raw, err := base64.StdEncoding.Strict().DecodeString(parts[0])
	if err != nil {
		if raw, err = base64.RawStdEncoding.Strict().DecodeString(parts[0]); err != nil {
			return CryptoKey{}, fmt.Errorf("key-param %q: key and salt are not base64", kp)
		}
	}
	k := CryptoKey{KeySalt: raw}
	for _, p := range parts[1:] {
		if v, l, isMKI := strings.Cut(p, ":"); isMKI {
			if k.MKILength != 0 {
				return CryptoKey{}, fmt.Errorf("key-param %q: two MKIs", kp)
			}
			mki, err1 := strconv.ParseUint(v, 10, 64)
			n, err2 := strconv.Atoi(l)
			if err1 != nil || err2 != nil || n < 1 || n > 128 || len(l) > 3 {
				return CryptoKey{}, fmt.Errorf("key-param %q: MKI %q: want value:length, length 1 to 128", kp, p)
			}
			k.MKI, k.MKILength = mki, n
			continue
		}
		if k.Lifetime != "" || k.MKILength != 0 {
			return CryptoKey{}, fmt.Errorf("key-param %q: lifetime %q: want it once, before the MKI", kp, p)
		}
		if _, err := lifetimePackets(p); err != nil {
			return CryptoKey{}, fmt.Errorf("key-param %q: %w", kp, err)
		}
		k.Lifetime = p
	}
	return k, nil
}

// lifetimePackets reads a key's lifetime, "2^N" or decimal, in packets; a
// lifetime beyond 2^63 is reported as 2^63.
func lifetimePackets(s string) (uint64, error) {
	digits, pow := strings.CutPrefix(s, "2^")
	n, err := strconv.ParseUint(digits, 10, 64)
	if digits == "" || err != nil {
		return 0, fmt.Errorf("lifetime %q: want decimal or 2^decimal", s)
	}
	if !pow {
		return n, nil
	}
	if n > 63 {
		n = 63
	}
	return 1 << n, nil
}

// String writes the attribute's value as it follows "a=crypto:".
func (a CryptoAttribute) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s ", a.Tag, a.Suite)
	for i, k := range a.Keys {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString("inline:")
		b.WriteString(base64.StdEncoding.EncodeToString(k.KeySalt))
		if k.Lifetime != "" {
			b.WriteString("|" + k.Lifetime)
		}
		if k.MKILength != 0 {
			fmt.Fprintf(&b, "|%d:%d", k.MKI, k.MKILength)
		}
	}
	for _, p := range a.SessionParams {
		b.WriteString(" " + p)
	}
	return b.String()
}

// isRTPProfile reports whether an m= line's transport carries RTP that
// Turbina reads: plain or secure, with or without feedback.
func isRTPProfile(proto string) bool {
	switch strings.ToUpper(proto) {
	case "RTP/AVP", "RTP/SAVP", "RTP/AVPF", "RTP/SAVPF":
		return true
	}
	return false
}

func isSecureProfile(proto string) bool {
	return strings.HasPrefix(strings.ToUpper(proto), "RTP/SAVP")
}

// sdesOffer is the security description of one INVITE's offer: a fresh key for
// each suite, so the keys of one attempt are never those of another.
type sdesOffer struct {
	mode  string
	lines []CryptoAttribute
}

// newSDESOffer returns the offer for a trunk's SRTP mode, nil when it is off.
func newSDESOffer(mode string) *sdesOffer {
	if mode == "" || mode == SRTPOff {
		return nil
	}
	o := &sdesOffer{mode: mode}
	for i, suite := range []string{SuiteAES128SHA1_80, SuiteAES128SHA1_32} {
		key := make([]byte, srtpKeyLen+srtpSaltLen)
		_, _ = rand.Read(key) // crypto/rand.Read never fails (it crashes the program instead)
		o.lines = append(o.lines, CryptoAttribute{Tag: uint32(i + 1), Suite: suite, Keys: []CryptoKey{{KeySalt: key}}})
	}
	return o
}

// apply turns the plain offer SDP that buildOffer writes into a secure one: the
// audio m= line's RTP/AVP becomes RTP/SAVP, and the a=crypto lines follow it.
func (o *sdesOffer) apply(sdp []byte) []byte {
	if o == nil {
		return sdp
	}
	var out bytes.Buffer
	out.Grow(len(sdp) + 200)
	for _, line := range bytes.SplitAfter(sdp, []byte("\n")) {
		if !bytes.HasPrefix(line, []byte("m=audio ")) {
			out.Write(line)
			continue
		}
		out.Write(bytes.Replace(line, []byte(" RTP/AVP "), []byte(" RTP/SAVP "), 1))
		for _, a := range o.lines {
			out.WriteString("a=crypto:" + a.String() + "\r\n")
		}
	}
	return out.Bytes()
}

// negotiate reads the answer's security description against the offer o (nil:
// SRTP off): the keys of an SRTP call, nil for a plain one, or why the answer
// cannot be taken.
func (o *sdesOffer) negotiate(ans Answer) (*srtpKeys, error) {
	secure := isSecureProfile(ans.Profile)
	if o == nil {
		if secure {
			return nil, fmt.Errorf("%w: the answer is %s to an RTP/AVP offer", ErrSRTPAnswer, ans.Profile)
		}
		return nil, nil
	}
	switch len(ans.Crypto) {
	case 0:
		switch {
		case o.mode == SRTPRequire:
			return nil, fmt.Errorf("%w (m= line %s)", ErrSRTPRequired, ans.Profile)
		case secure:
			return nil, fmt.Errorf("%w: the answer is %s without a=crypto", ErrSRTPAnswer, ans.Profile)
		}
		return nil, nil
	case 1:
	default:
		return nil, fmt.Errorf("%w: %d a=crypto lines, want the one accepted", ErrSRTPAnswer, len(ans.Crypto))
	}
	got, err := ParseCryptoAttribute(ans.Crypto[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSRTPAnswer, err)
	}
	var ours *CryptoAttribute
	for i := range o.lines {
		if o.lines[i].Tag == got.Tag {
			ours = &o.lines[i]
		}
	}
	switch {
	case ours == nil:
		return nil, fmt.Errorf("%w: a=crypto tag %d was not offered", ErrSRTPAnswer, got.Tag)
	case got.Suite != ours.Suite:
		return nil, fmt.Errorf("%w: a=crypto tag %d is %s, offered as %s", ErrSRTPAnswer, got.Tag, got.Suite, ours.Suite)
	}
	remote, mki, err := usableKey(got)
	if err != nil {
		return nil, err
	}
	return &srtpKeys{tag: got.Tag, suite: got.Suite, local: ours.Keys[0].KeySalt, remote: remote, remoteMKI: mki}, nil
}

// usableKey checks the peer's key in a=crypto line got, of a suite Turbina
// speaks: one key of the suite's length, a lifetime Turbina need not rekey
// within, an MKI that fits, no session parameter but the window size hint.
// It returns the key and salt, and the MKI (nil: none).
func usableKey(got CryptoAttribute) (remote, mki []byte, err error) {
	if len(got.Keys) != 1 {
		return nil, nil, fmt.Errorf("%w: a=crypto tag %d has %d keys, want one", ErrSRTPAnswer, got.Tag, len(got.Keys))
	}
	for _, p := range got.SessionParams {
		// The window size hint (WSH) is only a hint; the others
		// change how packets are protected, and none of them is offered.
		if !strings.HasPrefix(p, "WSH=") {
			return nil, nil, fmt.Errorf("%w: session parameter %q not offered", ErrSRTPAnswer, p)
		}
	}
	k := got.Keys[0]
	if len(k.KeySalt) != srtpKeyLen+srtpSaltLen {
		return nil, nil, fmt.Errorf("%w: %s key and salt of %d bytes, want %d", ErrSRTPAnswer, got.Suite, len(k.KeySalt), srtpKeyLen+srtpSaltLen)
	}
	if k.Lifetime != "" {
		if n, _ := lifetimePackets(k.Lifetime); n < srtpMinLifetime {
			return nil, nil, fmt.Errorf("%w: key lifetime %s is below 2^20 packets", ErrSRTPAnswer, k.Lifetime)
		}
	}
	if k.MKILength > 0 {
		if k.MKILength > 8 {
			return nil, nil, fmt.Errorf("%w: MKI of %d bytes, want at most 8", ErrSRTPAnswer, k.MKILength)
		}
		if k.MKILength < 8 && k.MKI>>(8*k.MKILength) != 0 {
			return nil, nil, fmt.Errorf("%w: MKI %d does not fit in %d bytes", ErrSRTPAnswer, k.MKI, k.MKILength)
		}
		var be [8]byte
		binary.BigEndian.PutUint64(be[:], k.MKI)
		mki = be[8-k.MKILength:]
	}
	return k.KeySalt, mki, nil
}

// srtpKeys are the keys of an SRTP call: ours encrypts what we send, the
// answerer's decrypts what it sends (RFC 4568 section 6.1). tag is the
// a=crypto tag agreed, which our offers inside the call repeat.
type srtpKeys struct {
	tag           uint32
	suite         string
	local, remote []byte
	remoteMKI     []byte
}

func (k *srtpKeys) equal(o *srtpKeys) bool {
	return k.suite == o.suite && bytes.Equal(k.local, o.local) && bytes.Equal(k.remote, o.remote) && bytes.Equal(k.remoteMKI, o.remoteMKI)
}

// srtpSession protects one call's RTP with the negotiated keys. Each direction
// has its own pion context, used under its own lock; a new offer inside the
// call makes a new session that keeps the direction whose key did not change,
// and with it that direction's rollover counter and replay window.
type srtpSession struct {
	keys *srtpKeys
	tx   *srtpDirection
	rx   *srtpDirection
}

// srtpDirection is one direction's SRTP context.
type srtpDirection struct {
	mu  sync.Mutex
	ctx *srtp.Context
	buf []byte     // tx: the encrypted packet, reused
	hdr rtp.Header // rx: the decrypted packet's header, reused
}

// newSRTPSession makes the session of keys k, keeping prev's (nil: none)
// contexts whose key and suite k does not change.
func newSRTPSession(k *srtpKeys, prev *srtpSession) (*srtpSession, error) {
	profile := srtpSuites[k.suite]
	s := &srtpSession{keys: k}
	if prev != nil && prev.keys.suite == k.suite {
		if bytes.Equal(prev.keys.local, k.local) {
			s.tx = prev.tx
		}
		if bytes.Equal(prev.keys.remote, k.remote) && bytes.Equal(prev.keys.remoteMKI, k.remoteMKI) {
			s.rx = prev.rx
		}
	}
	if s.tx == nil {
		send, err := srtp.CreateContext(k.local[:srtpKeyLen], k.local[srtpKeyLen:], profile)
		if err != nil {
			return nil, fmt.Errorf("srtp send context: %w", err)
		}
		s.tx = &srtpDirection{ctx: send, buf: make([]byte, 0, 1500)}
	}
	if s.rx == nil {
		opts := []srtp.ContextOption{srtp.SRTPReplayProtection(srtpReplayWindow)}
		if len(k.remoteMKI) > 0 {
			opts = append(opts, srtp.MasterKeyIndicator(k.remoteMKI))
		}
		recv, err := srtp.CreateContext(k.remote[:srtpKeyLen], k.remote[srtpKeyLen:], profile, opts...)
		if err != nil {
			return nil, fmt.Errorf("srtp receive context: %w", err)
		}
		s.rx = &srtpDirection{ctx: recv}
	}
	return s, nil
}

// protect encrypts one RTP packet and hands the SRTP packet to write before
// the buffer is reused.
func (s *srtpSession) protect(pkt []byte, write func([]byte) error) error {
	s.tx.mu.Lock()
	defer s.tx.mu.Unlock()
	out, err := s.tx.ctx.EncryptRTP(s.tx.buf[:0], pkt, nil)
	if err != nil {
		return fmt.Errorf("srtp encrypt: %w", err)
	}
	s.tx.buf = out[:0]
	return write(out)
}

// unprotect authenticates and decrypts one SRTP packet into dst (grown when
// short); a forged, replayed or garbled packet is an error.
func (s *srtpSession) unprotect(dst, pkt []byte) ([]byte, error) {
	s.rx.mu.Lock()
	defer s.rx.mu.Unlock()
	out, err := s.rx.ctx.DecryptRTP(dst[:0], pkt, &s.rx.hdr)
	if err != nil {
		return nil, fmt.Errorf("srtp decrypt: %w", err)
	}
	return out, nil
}

// srtpState is a Media's SRTP for one attempt on a trunk that offers it: the
// offer, the session once an answer keyed it, and the relay that gives a bridge
// plain RTP. It is replaced only by the next attempt's offer.
type srtpState struct {
	offer *sdesOffer
	// session is nil until an answer keys the call, and after a plain one.
	session atomic.Pointer[srtpSession]
	// plain is set by an answer without SRTP that the offer allows.
	plain atomic.Bool

	relayMu  sync.Mutex
	relay    *srtpRelay // made with the first keys, so Detach cannot fail
	relaying bool       // Detach handed relay.plain to a bridge
	last     []byte     // the newest plain packet before Detach
}

// srtpRelay stands between an SRTP trunk and a bridge that reads and writes a
// plain UDP socket (Media.Detach): plain is the bridge's socket, inner the
// relay's, connected to it so that the relay reads nothing but the bridge. The
// Media's reader decrypts into inner; the relay's own goroutine encrypts what
// the bridge sends and forwards it to the carrier.
type srtpRelay struct {
	plain, inner *net.UDPConn
}

// offerSRTP starts an attempt on a trunk with the given SRTP mode: it returns
// the offer SDP made secure (unchanged when the mode is off). Until the answer
// says whether the call is SRTP, the Media's reader drops what arrives.
func (m *Media) offerSRTP(mode string, sdp []byte) []byte {
	o := newSDESOffer(mode)
	var next *srtpState
	if o != nil {
		next = &srtpState{offer: o}
		sdp = o.apply(sdp)
	}
	if prev := m.sec.Swap(next); prev != nil {
		prev.closeRelay() // a failed-over attempt's early media keyed it
	}
	return sdp
}

// keyAnswer applies an answer's security description (a 183's, then the
// 200's): an SRTP answer keys the call (a 200 repeating the 183's keys keeps
// the running session), a plain answer that the offer allows leaves it plain,
// and anything else is an error saying what is wrong. It runs before setAnswer.
func (m *Media) keyAnswer(ans Answer) error {
	st := m.sec.Load()
	var offer *sdesOffer
	if st != nil {
		offer = st.offer
	}
	keys, err := offer.negotiate(ans)
	if err != nil || st == nil {
		return err
	}
	if keys == nil {
		st.session.Store(nil)
		st.plain.Store(true)
		return nil
	}
	if cur := st.session.Load(); cur != nil && cur.keys.equal(keys) {
		return nil
	}
	s, err := newSRTPSession(keys, st.session.Load())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSRTPAnswer, err)
	}
	st.relayMu.Lock()
	if st.relay == nil {
		st.relay, err = newSRTPRelay()
	}
	st.relayMu.Unlock()
	if err != nil {
		return err
	}
	st.plain.Store(false)
	st.session.Store(s)
	return nil
}

// SRTP reports the crypto suite protecting the call's RTP, "" when it is plain.
func (m *Media) SRTP() string {
	if _, s := m.srtpNow(); s != nil {
		return s.keys.suite
	}
	return ""
}

// srtpNow returns the call's SRTP state, nil on a trunk that does not speak
// SRTP, and the session protecting its RTP now, nil while it is plain.
func (m *Media) srtpNow() (*srtpState, *srtpSession) {
	st := m.sec.Load()
	if st == nil {
		return nil, nil
	}
	return st, st.session.Load()
}

// unprotect turns a packet read from the trunk into plain RTP: as it is on a
// plain call, decrypted into dst on an SRTP one. ok is false for a packet to
// drop: one that fails authentication, or that came before the answer's keys.
func (m *Media) unprotect(dst, pkt []byte) (plain []byte, ok bool) {
	st := m.sec.Load()
	if st == nil {
		return pkt, true
	}
	s := st.session.Load()
	if s == nil {
		return pkt, st.plain.Load()
	}
	out, err := s.unprotect(dst, pkt)
	return out, err == nil
}

// relayed takes a plain packet the reader got on an SRTP call: after Detach it
// goes to the bridge (true); before, it is kept as the newest, for Detach. On
// a plain call it does nothing and returns false.
func (m *Media) relayed(pkt []byte) bool {
	st := m.sec.Load()
	if st == nil {
		return false
	}
	st.relayMu.Lock()
	defer st.relayMu.Unlock()
	if st.relaying {
		// A bridge that stops reading loses what it does not read, as on a plain socket.
		_, _ = st.relay.inner.Write(pkt)
		return true
	}
	if st.session.Load() != nil && m.answered.Load() {
		st.last = append(st.last[:0], pkt...)
	}
	return false
}

// detachSRTP is Detach for an SRTP call: the bridge gets the relay's plain
// socket on loopback, whose packets the relay carries to and from the trunk,
// and the newest packet read before. ok is false on a plain call.
func (m *Media) detachSRTP() (conn *net.UDPConn, last []byte, ok bool) {
	st := m.sec.Load()
	if st == nil {
		return nil, nil, false
	}
	st.relayMu.Lock()
	defer st.relayMu.Unlock()
	if st.relaying {
		return st.relay.plain, nil, true
	}
	if st.session.Load() == nil {
		return nil, nil, false
	}
	m.StopSilence()
	st.relaying = true
	if len(st.last) > 0 {
		last = st.last
	}
	st.last = nil
	m.relayAddr.Store(st.relay.inner.LocalAddr().(*net.UDPAddr))
	go m.relayOut(st)
	return st.relay.plain, last, true
}

func newSRTPRelay() (*srtpRelay, error) {
	lo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	plain, err := net.ListenUDP("udp", lo)
	if err != nil {
		return nil, fmt.Errorf("srtp relay: %w", err)
	}
	inner, err := net.DialUDP("udp", lo, plain.LocalAddr().(*net.UDPAddr))
	if err != nil {
		plain.Close()
		return nil, fmt.Errorf("srtp relay: %w", err)
	}
	return &srtpRelay{plain: plain, inner: inner}, nil
}

// relayOut encrypts what the bridge sends and forwards it to the carrier,
// until the call closes the relay.
func (m *Media) relayOut(st *srtpState) {
	buf := make([]byte, 1500)
	for {
		n, err := st.relay.inner.Read(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil || n < 12 || buf[0]>>6 != 2 {
			continue // e.g. ICMP port unreachable surfacing on Linux
		}
		remote := m.carrierAddr()
		if remote == nil {
			continue
		}
		write := func(pkt []byte) error {
			_, err := m.conn.WriteToUDP(pkt, remote)
			return err
		}
		if s := st.session.Load(); s != nil {
			err = s.protect(buf[:n], write)
		} else {
			err = write(buf[:n])
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err == nil {
			m.sent.Add(1)
		}
	}
}

// closeSRTP closes an SRTP call's relay: the bridge's socket too, which is how
// the bridge learns that the call ended, as it would of a plain call's socket.
func (m *Media) closeSRTP() {
	if st := m.sec.Load(); st != nil {
		st.closeRelay()
	}
}

func (st *srtpState) closeRelay() {
	st.relayMu.Lock()
	defer st.relayMu.Unlock()
	if st.relay != nil {
		_ = st.relay.inner.Close()
		_ = st.relay.plain.Close()
	}
}

// writeSRTP sends pkt to the carrier encrypted when the call is SRTP; ok is
// false otherwise, and Write sends pkt as it is.
func (m *Media) writeSRTP(pkt []byte, remote *net.UDPAddr) (n int, ok bool, err error) {
	st := m.sec.Load()
	if st == nil {
		return 0, false, nil
	}
	s := st.session.Load()
	if s == nil {
		return 0, false, nil
	}
	err = s.protect(pkt, func(out []byte) error {
		var werr error
		n, werr = m.conn.WriteToUDP(out, remote)
		return werr
	})
	return n, true, err
}

// warnSRTPInClear logs, once at start, each trunk whose SRTP keys would cross
// the network in clear SIP: SDES is only as private as the signalling.
func warnSRTPInClear(cfg Config, warn func(msg string, args ...any)) {
	for _, t := range cfg.Trunks {
		if t.SRTP != SRTPOff && t.Transport != TransportTLS {
			warn("sip trunk sends its SRTP keys in clear SIP; use transport tls", "trunk", t.Name, "srtp", t.SRTP, "transport", t.Transport)
		}
	}
}
