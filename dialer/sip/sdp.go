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
	addr := ip.String()
	family := "IP4"
	if ip.To4() == nil {
		family = "IP6"
	}
	var b strings.Builder
	b.Grow(320)
	fmt.Fprintf(&b, "v=0\r\no=- %d %d IN %s %s\r\ns=Turbina\r\nc=IN %s %s\r\nt=0 0\r\n", sessionID, sessionID, family, addr, family, addr)
	fmt.Fprintf(&b, "m=audio %d RTP/AVP %d %d %d\r\n", port, CodecPCMU.PayloadType, CodecPCMA.PayloadType, telephoneEventPT)
	b.WriteString("a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n")
	fmt.Fprintf(&b, "a=rtpmap:%d telephone-event/8000\r\na=fmtp:%d 0-16\r\n", telephoneEventPT, telephoneEventPT)
	b.WriteString("a=ptime:20\r\na=sendrecv\r\n")
	return []byte(b.String())
}

// Answer is what Turbina takes from the carrier's SDP answer.
type Answer struct {
	// Remote is where to send RTP.
	Remote *net.UDPAddr
	// Codec is the first codec in the answer that Turbina offered.
	Codec Codec
	// TelephoneEvent is the payload type for RFC 4733 DTMF, 0 when absent.
	TelephoneEvent uint8
	// Profile is the audio stream's transport, e.g. RTP/AVP or RTP/SAVP.
	Profile string
	// Crypto holds the values of the stream's a=crypto lines (RFC 4568), as
	// written; the SRTP negotiation (srtp.go) reads them.
	Crypto []string
}

// ParseAnswerSDP reads an SDP answer: the first audio stream with a non-zero
// port, its connection address and the first codec we offered. It reads only
// the lines it needs and never panics on malformed input.
func ParseAnswerSDP(body []byte) (Answer, error) {
	var (
		sessionConn string
		inAudio     bool
		done        bool
		mediaConn   string
		port        int
		formats     []string
		profile     string
		crypto      []string
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
			inAudio, port, formats, profile = true, p, f[3:], f[2]
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
				mediaConn = host
			} else if port == 0 {
				sessionConn = host
			}
		case 'a':
			if inAudio && strings.HasPrefix(val, "crypto:") {
				crypto = append(crypto, strings.TrimPrefix(val, "crypto:"))
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
	if port == 0 {
		return Answer{}, ErrNoAudio
	}
	host := mediaConn
	if host == "" {
		host = sessionConn
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsUnspecified() {
		// 0.0.0.0 is an old-style hold; either way there is nowhere to send.
		return Answer{}, fmt.Errorf("%w: connection address %q", ErrNoAudio, host)
	}
	ans := Answer{Remote: &net.UDPAddr{IP: ip, Port: port}, Profile: profile, Crypto: crypto}
	found := false
	for _, pt := range formats {
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
		switch {
		case name == "TELEPHONE-EVENT" && ans.TelephoneEvent == 0:
			ans.TelephoneEvent = uint8(n)
		case !found && name == "PCMU":
			ans.Codec, found = Codec{Name: "PCMU", PayloadType: uint8(n), ClockRate: 8000}, true
		case !found && name == "PCMA":
			ans.Codec, found = Codec{Name: "PCMA", PayloadType: uint8(n), ClockRate: 8000}, true
		}
	}
	if !found {
		return Answer{}, ErrNoCommonCodec
	}
	return ans, nil
}
