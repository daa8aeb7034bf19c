package media

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// DirectionStats counts one direction of a call through a bridge.
type DirectionStats struct {
	// Packets and Bytes count forwarded packets and their payload octets.
	Packets, Bytes uint64
	// Lost counts packets missing from the incoming sequence (RFC 3550 A.3).
	Lost uint64
	// Dropped counts packets received but not forwarded: unknown payload type,
	// telephone-event towards a leg without one, transcoding or write failures.
	Dropped uint64
	// DTMF counts forwarded RFC 4733 telephone-event packets (also in Packets).
	DTMF uint64
}

// CallStats counts both directions of one customer call through a bridge.
type CallStats struct {
	// ToAgent is customer → agent, ToCustomer is agent → customer.
	ToAgent, ToCustomer DirectionStats
}

// dirCounters is the live form of DirectionStats: atomics so Stats can be read
// while the owning goroutine forwards.
type dirCounters struct {
	packets, bytes, lost, dropped, dtmf atomic.Uint64
	seq                                 seqTracker // owned by the forwarding goroutine
}

func (d *dirCounters) snapshot() DirectionStats {
	return DirectionStats{
		Packets: d.packets.Load(), Bytes: d.bytes.Load(), Lost: d.lost.Load(),
		Dropped: d.dropped.Load(), DTMF: d.dtmf.Load(),
	}
}

// LatencyHistogram records durations in logarithmic buckets (8 per power of two,
// so a quantile is exact to within 9%) with atomic counters: one histogram can
// be shared by every bridge of a process and recorded into without allocating
// or locking.
type LatencyHistogram struct {
	buckets [64 * histSub]atomic.Uint64
	count   atomic.Uint64
	max     atomic.Int64
}

const histSubBits = 3
const histSub = 1 << histSubBits

func histIndex(ns uint64) int {
	if ns < histSub {
		return int(ns)
	}
	e := bits.Len64(ns) - 1 // ≥ histSubBits
	m := (ns >> (e - histSubBits)) & (histSub - 1)
	return (e-histSubBits+1)*histSub + int(m)
}

// histUpper returns the largest duration in bucket i, in nanoseconds.
func histUpper(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	e := i/histSub + histSubBits - 1
	m := uint64(i % histSub)
	return (histSub+m+1)<<(e-histSubBits) - 1
}

// Record adds one observation.
func (h *LatencyHistogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.buckets[histIndex(uint64(d))].Add(1)
	h.count.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// Count returns the number of observations.
func (h *LatencyHistogram) Count() uint64 { return h.count.Load() }

// Max returns the largest observation.
func (h *LatencyHistogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Quantile returns an upper bound of the q-quantile (0 < q ≤ 1), 0 when empty.
func (h *LatencyHistogram) Quantile(q float64) time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q * float64(n))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen >= rank {
			return min(time.Duration(histUpper(i)), h.Max())
		}
	}
	return h.Max()
}
