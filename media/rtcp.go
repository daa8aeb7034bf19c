package media

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/pion/rtcp"
)

// DefaultRTCPInterval is the RTCP report interval RFC 3550 suggests as a minimum.
const DefaultRTCPInterval = 5 * time.Second

// rtcpSession keeps reception statistics of the stream a UDP leg receives and
// sends RTCP reports about it. The RTP path only takes a mutex and updates a few
// counters; reports are built (and allocate) in the session's own goroutine.
type rtcpSession struct {
	conn     *net.UDPConn
	remote   *net.UDPAddr
	interval time.Duration
	clock    uint32
	log      *slog.Logger
	done     chan struct{}

	mu        sync.Mutex
	epoch     time.Time // reference for arrival times in timestamp units
	seq       seqTracker
	jitter    float64
	lastTrans int64 // previous arrival - timestamp, in clock units
	haveTrans bool
	// priorExpected/priorReceived snapshot the counters at the previous report,
	// for the fraction lost of the interval (RFC 3550 A.3).
	priorExpected uint64
	priorReceived uint64
	lastSR        uint32    // middle 32 bits of the last SR's NTP time
	lastSRAt      time.Time // when it arrived
	ourSSRC       uint32
	sentPackets   uint32
	sentOctets    uint32
	lastSentTS    uint32
	lastSentAt    time.Time
	sentSince     bool // RTP sent since the last report: send an SR
	reportsSent   uint64
}

func newRTCPSession(conn *net.UDPConn, remote *net.UDPAddr, interval time.Duration, clock uint32) *rtcpSession {
	if interval <= 0 {
		interval = DefaultRTCPInterval
	}
	if clock == 0 {
		clock = 8000
	}
	return &rtcpSession{
		conn: conn, remote: remote, interval: interval, clock: clock,
		done: make(chan struct{}), epoch: time.Now(), ourSSRC: rand.Uint32(),
	}
}

func (s *rtcpSession) start(log *slog.Logger) {
	s.log = log
	go s.run()
}

func (s *rtcpSession) close() error {
	err := s.conn.Close()
	<-s.done
	return err
}

// received updates the statistics with one RTP packet (RFC 3550 A.8 jitter).
func (s *rtcpSession) received(v rtpView, n int) {
	now := time.Now()
	s.mu.Lock()
	if s.seq.update(v.ssrc(), v.seq()) {
		s.seq.lostBefore = 0
		s.jitter, s.haveTrans = 0, false
		s.priorExpected, s.priorReceived = 0, 0
	}
	arrival := int64(now.Sub(s.epoch)) * int64(s.clock) / int64(time.Second)
	transit := arrival - int64(v.timestamp())
	if s.haveTrans {
		d := transit - s.lastTrans
		if d < 0 {
			d = -d
		}
		s.jitter += (float64(d) - s.jitter) / 16
	}
	s.lastTrans, s.haveTrans = transit, true
	s.mu.Unlock()
}

// sent records one RTP packet the leg sent, for the sender report.
func (s *rtcpSession) sent(pkt []byte) {
	v := rtpView{buf: pkt}
	s.mu.Lock()
	s.ourSSRC = v.ssrc()
	s.sentPackets++
	s.sentOctets += uint32(len(pkt) - rtpFixedHeader)
	s.lastSentTS = v.timestamp()
	s.lastSentAt = time.Now()
	s.sentSince = true
	s.mu.Unlock()
}

func (s *rtcpSession) run() {
	defer close(s.done)
	buf := make([]byte, maxPacket)
	next := time.Now().Add(s.interval)
	for {
		if err := s.conn.SetReadDeadline(next); err != nil {
			return
		}
		n, err := s.conn.Read(buf)
		switch {
		case errors.Is(err, net.ErrClosed):
			return
		case err != nil && isTimeout(err):
			s.report()
			next = time.Now().Add(s.interval)
			continue
		case err != nil:
			s.log.Debug("rtcp read", "err", err)
			continue
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			s.log.Debug("rtcp: malformed packet dropped", "err", err)
			continue
		}
		for _, p := range pkts {
			if sr, ok := p.(*rtcp.SenderReport); ok {
				s.mu.Lock()
				s.lastSR = uint32(sr.NTPTime >> 16)
				s.lastSRAt = time.Now()
				s.mu.Unlock()
				// Answer at once: the peer measures round-trip time from it.
				s.report()
			}
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// report sends one compound RTCP packet: SR or RR, plus SDES CNAME (RFC 3550 6.1).
func (s *rtcpSession) report() {
	pkt, err := s.buildReport(time.Now())
	if err != nil {
		s.log.Debug("rtcp: build report", "err", err)
		return
	}
	if _, err := s.conn.WriteToUDP(pkt, s.remote); err != nil {
		s.log.Debug("rtcp: send report", "err", err)
	}
}

func (s *rtcpSession) buildReport(now time.Time) ([]byte, error) {
	s.mu.Lock()
	var reports []rtcp.ReceptionReport
	if s.seq.started {
		expected := s.seq.expected()
		expInt := expected - s.priorExpected
		recInt := s.seq.received - s.priorReceived
		s.priorExpected, s.priorReceived = expected, s.seq.received
		var fraction uint8
		if expInt > 0 && recInt < expInt {
			fraction = uint8((expInt - recInt) << 8 / expInt)
		}
		var dlsr uint32
		if !s.lastSRAt.IsZero() {
			dlsr = uint32(now.Sub(s.lastSRAt).Seconds() * 65536)
		}
		reports = []rtcp.ReceptionReport{{
			SSRC:               s.seq.ssrc,
			FractionLost:       fraction,
			TotalLost:          uint32(min(s.seq.lost(), 1<<23-1)),
			LastSequenceNumber: s.seq.extendedMax(),
			Jitter:             uint32(s.jitter),
			LastSenderReport:   s.lastSR,
			Delay:              dlsr,
		}}
	}
	var first rtcp.Packet
	if s.sentSince {
		// The RTP time of "now": the last sent timestamp advanced by the time since.
		rtpTime := s.lastSentTS + uint32(now.Sub(s.lastSentAt).Seconds()*float64(s.clock))
		first = &rtcp.SenderReport{
			SSRC: s.ourSSRC, NTPTime: ntpTime(now), RTPTime: rtpTime,
			PacketCount: s.sentPackets, OctetCount: s.sentOctets, Reports: reports,
		}
	} else {
		first = &rtcp.ReceiverReport{SSRC: s.ourSSRC, Reports: reports}
	}
	s.sentSince = false
	s.reportsSent++
	ssrc := s.ourSSRC
	s.mu.Unlock()
	b, err := rtcp.Marshal([]rtcp.Packet{first, &rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{
		Source: ssrc,
		Items:  []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "turbina"}},
	}}}})
	if err != nil {
		return nil, fmt.Errorf("marshal RTCP report: %w", err)
	}
	return b, nil
}

// ntpTime converts t to the 64-bit NTP format (seconds since 1900, 32.32 fixed).
func ntpTime(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return secs<<32 | frac
}
