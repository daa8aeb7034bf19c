package carrier

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	tsip "github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/media"
)

// frameSamples is 20 ms of 8 kHz audio.
const frameSamples = 160

// mediaSession is the RTP side of one answered call.
type mediaSession struct {
	conn   *net.UDPConn
	remote *net.UDPAddr
	codec  tsip.Codec
	rng    *rand.Rand // used by the sending goroutine only
	once   sync.Once
	// cut is the carrier's link switch: a cut link carries no RTP either way.
	cut *atomic.Bool
}

// newMediaSession opens an RTP socket on host and returns it with the SDP answer to
// the caller's offer: PCMU, or PCMA when the offer has only that.
func newMediaSession(host string, offer []byte, seed uint64) (*mediaSession, []byte, error) {
	// The offer has the same shape as an answer for what matters here: the first
	// audio stream, its address and the first G.711 codec in the caller's order.
	o, err := tsip.ParseAnswerSDP(offer)
	if err != nil {
		return nil, nil, fmt.Errorf("sdp offer: %w", err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(host)})
	if err != nil {
		return nil, nil, fmt.Errorf("rtp socket: %w", err)
	}
	m := &mediaSession{conn: conn, remote: o.Remote, codec: o.Codec, rng: rand.New(rand.NewPCG(seed, seed>>1|1))}
	local := conn.LocalAddr().(*net.UDPAddr)
	sid := seed >> 2
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=carrier %d %d IN IP4 %s\r\ns=Turbina carrier simulator\r\nc=IN IP4 %s\r\nt=0 0\r\n", sid, sid, local.IP, local.IP)
	if o.TelephoneEvent != 0 {
		fmt.Fprintf(&b, "m=audio %d RTP/AVP %d %d\r\n", local.Port, o.Codec.PayloadType, o.TelephoneEvent)
	} else {
		fmt.Fprintf(&b, "m=audio %d RTP/AVP %d\r\n", local.Port, o.Codec.PayloadType)
	}
	fmt.Fprintf(&b, "a=rtpmap:%d %s/8000\r\n", o.Codec.PayloadType, o.Codec.Name)
	if o.TelephoneEvent != 0 {
		fmt.Fprintf(&b, "a=rtpmap:%d telephone-event/8000\r\na=fmtp:%d 0-16\r\n", o.TelephoneEvent, o.TelephoneEvent)
	}
	b.WriteString("a=ptime:20\r\na=sendrecv\r\n")
	return m, []byte(b.String()), nil
}

func (m *mediaSession) close() { m.once.Do(func() { m.conn.Close() }) }

// receive counts the caller's RTP packets until the socket closes, and hands each to
// heard, when set, as it arrives.
func (m *mediaSession) receive(count *atomic.Int64, heard func(time.Time, []byte)) {
	buf := make([]byte, 1500)
	var p rtp.Packet
	for {
		n, _, err := m.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if m.cut != nil && m.cut.Load() {
			continue
		}
		if p.Unmarshal(buf[:n]) == nil {
			count.Add(1)
			if heard != nil {
				heard(time.Now(), p.Payload)
			}
		}
	}
}

// send streams audio as RTP every 20 ms, on an absolute schedule, until ctx ends.
// first is told when the first packet left.
func (m *mediaSession) send(ctx context.Context, audio Audio, prompt []int16, count *atomic.Int64, first func(time.Time)) {
	src := m.source(audio, prompt)
	pcm := make([]int16, frameSamples)
	payload := make([]byte, frameSamples)
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: m.codec.PayloadType, Marker: true,
		SequenceNumber: uint16(m.rng.Uint32()), Timestamp: m.rng.Uint32(), SSRC: m.rng.Uint32()}}
	buf := make([]byte, 12+frameSamples)
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		src(pcm)
		if m.codec.Name == "PCMA" {
			media.EncodeALaw(payload, pcm)
		} else {
			media.EncodeULaw(payload, pcm)
		}
		pkt.Payload = payload
		n, err := pkt.MarshalTo(buf)
		if err == nil && (m.cut == nil || !m.cut.Load()) {
			if _, err := m.conn.WriteToUDP(buf[:n], m.remote); err != nil {
				return // the socket closed: the call is over
			}
			if i == 0 {
				first(time.Now())
			}
			count.Add(1)
		}
		pkt.Marker = false
		pkt.SequenceNumber++
		pkt.Timestamp += frameSamples
		timer.Reset(time.Until(start.Add(time.Duration(i+1) * 20 * time.Millisecond)))
	}
}

// source returns a function that fills the next 20 ms of the chosen audio.
func (m *mediaSession) source(audio Audio, prompt []int16) func([]int16) {
	switch audio {
	case AudioSilence:
		return func(pcm []int16) { clear(pcm) }
	case AudioTone:
		var n int
		return func(pcm []int16) {
			for i := range pcm {
				pcm[i] = int16(6000 * math.Sin(2*math.Pi*425*float64(n)/8000))
				n++
			}
		}
	case AudioPrompt:
		var pos int
		return func(pcm []int16) {
			for i := range pcm {
				if len(prompt) == 0 {
					pcm[i] = 0
					continue
				}
				pcm[i] = prompt[pos%len(prompt)]
				pos++
			}
		}
	}
	return m.speech()
}

// speech returns a source of speech-like audio: voiced bursts (a fundamental of
// 100–250 Hz with two harmonics under a smooth envelope) of 0.3–1.6 s between
// pauses of 0.2–0.9 s, starting with a short pause, as a person answering does.
func (m *mediaSession) speech() func([]int16) {
	var (
		n       int     // sample within the current segment
		length  = 1600  // samples in the current segment (200 ms of initial pause)
		voiced  bool    // whether the current segment is a burst
		f0      float64 // burst's fundamental
		phase   float64
		samples = 8000.0
	)
	return func(pcm []int16) {
		for i := range pcm {
			if n >= length {
				voiced, n = !voiced, 0
				if voiced {
					length = int(samples * (0.3 + 1.3*m.rng.Float64()))
					f0 = 100 + 150*m.rng.Float64()
				} else {
					length = int(samples * (0.2 + 0.7*m.rng.Float64()))
				}
			}
			if !voiced {
				pcm[i] = int16(m.rng.IntN(41) - 20) // faint line noise
				n++
				continue
			}
			env := math.Sin(math.Pi * float64(n) / float64(length))
			f := f0 * (1 + 0.05*math.Sin(2*math.Pi*3*float64(n)/samples)) // a little intonation
			phase += 2 * math.Pi * f / samples
			v := math.Sin(phase) + 0.5*math.Sin(2*phase) + 0.25*math.Sin(3*phase)
			pcm[i] = int16(5000 * env * v)
			n++
		}
	}
}

// promptPCM is the prompt shipped in package media, as 8 kHz samples.
func promptPCM() ([]int16, error) {
	w, err := media.ParseWAV(media.AbandonPromptWAV())
	if err != nil {
		return nil, fmt.Errorf("prompt: %w", err)
	}
	return w.PCM(), nil
}
