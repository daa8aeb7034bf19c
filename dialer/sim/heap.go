package sim

// eventKind says what happens at an event.
type eventKind uint8

const (
	evHuman       eventKind = iota // a dial is answered by a person
	evMachine                      // a dial is answered by a machine
	evNoAnswer                     // a dial rings out
	evFailed                       // a dial fails
	evMachineDone                  // a machine-answered line is dropped
	evPatience                     // a waiting person's patience runs out
	evTalkEnd                      // an agent's call ends
	evWrapEnd                      // an agent's wrap-up ends
	evScenario                     // the scenario changes
)

type event struct {
	t    float64
	seq  uint64 // ties break in scheduling order, so runs are reproducible
	kind eventKind
	id   int32
}

// eventHeap is a binary min-heap of events by time. It is written out rather than built on
// container/heap so that pushing and popping do not box events in interfaces.
type eventHeap struct {
	ev  []event
	seq uint64
}

func (h *eventHeap) less(i, j int) bool {
	a, b := &h.ev[i], &h.ev[j]
	return a.t < b.t || (a.t == b.t && a.seq < b.seq)
}

func (h *eventHeap) push(t float64, kind eventKind, id int32) {
	h.seq++
	h.ev = append(h.ev, event{t: t, seq: h.seq, kind: kind, id: id})
	i := len(h.ev) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h.ev[i], h.ev[p] = h.ev[p], h.ev[i]
		i = p
	}
}

func (h *eventHeap) len() int { return len(h.ev) }

// peek returns the time of the next event; the heap must not be empty.
func (h *eventHeap) peek() float64 { return h.ev[0].t }

func (h *eventHeap) pop() event {
	top := h.ev[0]
	n := len(h.ev) - 1
	h.ev[0] = h.ev[n]
	h.ev = h.ev[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			break
		}
		h.ev[i], h.ev[m] = h.ev[m], h.ev[i]
		i = m
	}
	return top
}
