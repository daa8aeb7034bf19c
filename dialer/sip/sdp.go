package sip

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Codec is an RTP audio payload format.
type Codec struct {
	Name        string // "PCMU" or "PCMA"
	PayloadType uint8
	ClockRate   uint32
}

// The codecs Turbina offers, in order of preference, and the DTMF payload.
var (
	CodecPCMU = Codec{Name: "PCMU", PayloadType: 0, ClockRate: 8000}
	CodecPCMA = Codec{Name: "PCMA", PayloadType: 8, ClockRate: 8000}
)

// telephoneEventPT is the dynamic payload type offered for RFC 4733 DTMF.
const telephoneEventPT = 101

// Errors from SDP answer handling.
var (
	ErrNoCommonCodec = errors.New("sdp: no common codec")
	ErrNoAudio       = errors.New("sdp: no usable audio stream")
)

// buildOffer returns the SDP offer for a local RTP address.
func buildOffer(ip net.IP, port int, sessionID uint64) []byte {
	return buildSDP(ip, port, sessionID, sessionID, []Codec{CodecPCMU, CodecPCMA}, telephoneEventPT, DirSendRecv)
}

// buildSDP writes a session description with one audio stream: codecs in
// order, telephone-event on dtmf (0: none) and the direction attribute.
// version is the o= line's session version, which RFC 3264 §8 requires to
// grow by one with every change, and to stay when nothing changed.
func buildSDP(ip net.IP, port int, sessionID, version uint64, codecs []Codec, dtmf uint8, dir Direction) []byte {
	addr := ip.String()
	family := "IP4"
	if ip.To4() == nil {
		family = "IP6"
	}
	var b strings.Builder
	b.Grow(320)
	fmt.Fprintf(&b, "v=0\r\no=- %d %d IN %s %s\r\ns=Turbina\r\nc=IN %s %s\r\nt=0 0\r\n", sessionID, version, family, addr, family, addr)
	fmt.Fprintf(&b, "m=audio %d RTP/AVP", port)
	for _, c := range codecs {
		fmt.Fprintf(&b, " %d", c.PayloadType)
	}
	if dtmf != 0 {
		fmt.Fprintf(&b, " %d", dtmf)
	}
	b.WriteString("\r\n")
	for _, c := range codecs {
		fmt.Fprintf(&b, "a=rtpmap:%d %s/%d\r\n", c.PayloadType, c.Name, c.ClockRate)
	}
	if dtmf != 0 {
		fmt.Fprintf(&b, "a=rtpmap:%d telephone-event/8000\r\na=fmtp:%d 0-16\r\n", dtmf, dtmf)
	}
	b.WriteString("a=ptime:20\r\na=" + string(dir) + "\r\n")
	return []byte(b.String())
}

// Direction is an SDP stream's direction attribute (RFC 3264 §5.1), from the
// point of view of the side that wrote it.
type Direction string

// The four directions.
const (
	DirSendRecv Direction = "sendrecv"
	DirSendOnly Direction = "sendonly"
	DirRecvOnly Direction = "recvonly"
	DirInactive Direction = "inactive"
)

// answerDir is the direction that answers an offer of d (RFC 3264 §6.1):
// a peer that only sends is answered by one that only receives, and so on.
var answerDir = map[Direction]Direction{
	DirSendRecv: DirSendRecv, DirSendOnly: DirRecvOnly, DirRecvOnly: DirSendOnly, DirInactive: DirInactive,
}

// sends reports whether the side that wrote d sends media.
func (d Direction) sends() bool { return d == DirSendRecv || d == DirSendOnly }

// receives reports whether the side that wrote d receives media.
func (d Direction) receives() bool { return d == DirSendRecv || d == DirRecvOnly }

// Answer is what Turbina takes from the carrier's SDP answer.
type Answer struct {
	// Remote is where to send RTP.
	Remote *net.UDPAddr
	// Codec is the first codec in the answer that Turbina offered.
	Codec Codec
	// TelephoneEvent is the payload type for RFC 4733 DTMF, 0 when absent.
	TelephoneEvent uint8
	// Direction is the peer's: sendonly means the peer only sends (it holds
	// the call), recvonly or inactive that it sends nothing.
	Direction Direction
	// Profile is the audio stream's transport, e.g. RTP/AVP or RTP/SAVP.
	Profile string
	// Crypto holds the values of the stream's a=crypto lines (RFC 4568), as
	// written; the SRTP negotiation (srtp.go) reads them.
	Crypto []string
}

// sdpAudio is the first usable audio stream of a session description.
type sdpAudio struct {
	host    string // connection address, as written
	port    int
	formats []Codec // the G.711 formats it lists, in its order
	dtmf    uint8   // telephone-event payload type, 0: none
	dir     Direction
	profile string   // the m= line's transport: RTP/AVP, RTP/SAVP
	crypto  []string // its a=crypto values (RFC 4568), as written
}

// parseSDP reads the first audio stream with a non-zero port: its connection
// address, the G.711 formats in its order, telephone-event and direction. It
// reads only the lines it needs and never panics on malformed input.
func parseSDP(body []byte) (sdpAudio, error) {
	var (
		sessionConn string
		sessionDir  Direction
		inAudio     bool
		done        bool
		a           sdpAudio
		fmts        []string
		rtpmap      = map[string]string{} // payload type -> encoding name (upper case)
	)
	for _, raw := range strings.Split(string(body), "\n") {
		line := strings.TrimRight(raw, "\r")
		if len(line) < 2 || line[1] != '=' {
			continue
		}
		key, val := line[0], line[2:]
		if key == 'm' {
			if inAudio {
				done = true // only the first usable audio stream counts
			}
			inAudio = false
			if done {
				continue
			}
			f := strings.Fields(val)
			if len(f) < 4 || f[0] != "audio" || !isRTPProfile(f[2]) {
				continue
			}
			p, err := strconv.Atoi(strings.SplitN(f[1], "/", 2)[0])
			if err != nil || p <= 0 || p > 65535 {
				continue // port 0: stream rejected
			}
			inAudio, a.port, fmts, a.profile = true, p, f[3:], f[2]
			continue
		}
		switch key {
		case 'c':
			f := strings.Fields(val)
			if len(f) < 3 || f[0] != "IN" {
				continue
			}
			host := strings.SplitN(f[2], "/", 2)[0]
			if inAudio {
				a.host = host
			} else if a.port == 0 {
				sessionConn = host
			}
		case 'a':
			switch d := Direction(val); d {
			case DirSendRecv, DirSendOnly, DirRecvOnly, DirInactive:
				// A media-level attribute overrides the session's (RFC 4566 §6).
				if inAudio {
					a.dir = d
				} else if a.port == 0 {
					sessionDir = d
				}
				continue
			}
			if inAudio && strings.HasPrefix(val, "crypto:") {
				a.crypto = append(a.crypto, strings.TrimPrefix(val, "crypto:"))
				continue
			}
			if !inAudio || !strings.HasPrefix(val, "rtpmap:") {
				continue
			}
			f := strings.Fields(strings.TrimPrefix(val, "rtpmap:"))
			if len(f) < 2 {
				continue
			}
			rtpmap[f[0]] = strings.ToUpper(strings.SplitN(f[1], "/", 2)[0])
		}
	}
	if a.port == 0 {
		return sdpAudio{}, ErrNoAudio
	}
	if a.host == "" {
		a.host = sessionConn
	}
	if a.dir == "" {
		a.dir = sessionDir
	}
	if a.dir == "" {
		a.dir = DirSendRecv
	}
	for _, pt := range fmts {
		n, err := strconv.Atoi(pt)
		if err != nil || n < 0 || n > 127 {
			continue
		}
		name, mapped := rtpmap[pt]
		if !mapped {
			// Static payload types need no rtpmap (RFC 3551).
			switch n {
			case 0:
				name = "PCMU"
			case 8:
				name = "PCMA"
			}
		}
		switch name {
		case "TELEPHONE-EVENT":
			if a.dtmf == 0 {
				a.dtmf = uint8(n)
			}
		case "PCMU", "PCMA":
			a.formats = append(a.formats, Codec{Name: name, PayloadType: uint8(n), ClockRate: 8000})
		}
	}
	return a, nil
}

// remote is the stream's RTP address; nil for an unspecified address
// (c=0.0.0.0, the hold of RFC 2543) or one that is not an IP address.
func (a sdpAudio) remote() *net.UDPAddr {
	ip := net.ParseIP(a.host)
	if ip == nil || ip.IsUnspecified() {
		return nil
	}
	return &net.UDPAddr{IP: ip, Port: a.port}
}

// ParseAnswerSDP reads an SDP answer: the first audio stream with a non-zero
// port, its connection address, the first codec we offered and its direction.
// It reads only the lines it needs and never panics on malformed input.
func ParseAnswerSDP(body []byte) (Answer, error) {
	a, err := parseSDP(body)
	if err != nil {
		return Answer{}, err
	}
	remote := a.remote()
	if remote == nil {
		// 0.0.0.0 is an old-style hold; either way there is nowhere to send.
		return Answer{}, fmt.Errorf("%w: connection address %q", ErrNoAudio, a.host)
	}
	if len(a.formats) == 0 {
		return Answer{}, ErrNoCommonCodec
	}
	return Answer{Remote: remote, Codec: a.formats[0], TelephoneEvent: a.dtmf, Direction: a.dir, Profile: a.profile, Crypto: a.crypto}, nil
}
