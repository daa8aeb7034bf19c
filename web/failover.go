package web

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/turbina-dialer/turbina/dialer/sip"
)

// recoveredShown is how long the wallboard's banner says a trunk is back.
const recoveredShown = time.Minute

// WallboardFailover is a SIP trunk's death as it happens, for the banner at the
// top of the supervisors' page: while the trunk is down, and for a minute after
// it recovered.
type WallboardFailover struct {
	Trunk string `json:"trunk"`
	// DownSince is when a probe burst found the trunk down.
	DownSince time.Time `json:"down_since"`
	// DetectionS is the seconds from the first sign to the trunk marked down;
	// Sign is that first sign.
	DetectionS float64 `json:"detection_s"`
	Sign       string  `json:"sign"`
	// RecoveredAt is when the trunk took calls again; absent while it is down.
	RecoveredAt *time.Time `json:"recovered_at,omitempty"`
	// DownForS is how long it was down, once it recovered.
	DownForS float64 `json:"down_for_s,omitempty"`
	// Caught, MovedToWhatsApp and Resumed count, since DownSince, the contacts
	// whose SIP call the trunk's death ended, those of them called on WhatsApp,
	// and the conversations put back through to their agent on WhatsApp.
	Caught          int `json:"caught"`
	MovedToWhatsApp int `json:"moved_to_whatsapp"`
	Resumed         int `json:"resumed"`
}

// failovers remembers the trunks' deaths the wallboard shows: the trunks' status
// says only whether a trunk is down now, and the banner also tells of one that
// recovered a moment ago, and for how long it was down.
type failovers struct {
	mu     sync.Mutex
	byName map[string]*WallboardFailover
}

// note takes a trunk's status, as OnTrunkChange or the wallboard's poll gives it.
func (f *failovers) note(st sip.TrunkStatus, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byName == nil {
		f.byName = map[string]*WallboardFailover{}
	}
	cur := f.byName[st.Name]
	switch {
	case !st.DownSince.IsZero():
		if cur == nil || !cur.DownSince.Equal(st.DownSince) {
			cur = &WallboardFailover{Trunk: st.Name, DownSince: st.DownSince}
			f.byName[st.Name] = cur
		}
		cur.DetectionS, cur.Sign = st.LastDetection, st.Sign
	case cur != nil && cur.RecoveredAt == nil && st.State == sip.CircuitClosed:
		at := st.LastChangeAt
		if at.IsZero() || at.Before(cur.DownSince) {
			at = now
		}
		cur.RecoveredAt, cur.DownForS = &at, at.Sub(cur.DownSince).Seconds()
	}
}

// list is the failovers to show at now: trunks down, and those back for less
// than recoveredShown, without their counts.
func (f *failovers) list(now time.Time) []WallboardFailover {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []WallboardFailover{}
	for name, fo := range f.byName {
		if fo.RecoveredAt != nil && now.Sub(*fo.RecoveredAt) > recoveredShown {
			delete(f.byName, name)
			continue
		}
		out = append(out, *fo)
	}
	return out
}

// counted sorts list, oldest death first, and gives each its counts from storage.
func counted(ctx context.Context, s *Server, list []WallboardFailover) []WallboardFailover {
	slices.SortFunc(list, func(a, b WallboardFailover) int { return a.DownSince.Compare(b.DownSince) })
	for i := range list {
		counts, err := s.store.FailoverCounts(ctx, list[i].DownSince)
		if err != nil {
			s.log.Warn("wallboard failover counts", "trunk", list[i].Trunk, "err", err)
			continue
		}
		list[i].Caught, list[i].MovedToWhatsApp, list[i].Resumed = counts.Caught, counts.MovedToWhatsApp, counts.Resumed
	}
	return list
}

// TrunkChanged tells the wallboard a SIP trunk went down, opened, was taken out
// of service or recovered (sip.Config.OnTrunkChange): it is remembered for the
// failover banner, and a snapshot goes out now rather than at the next second.
// It does not block.
func (s *Server) TrunkChanged(st sip.TrunkStatus) {
	s.ui.wall.failovers.note(st, s.ui.now())
	s.ui.wall.poke()
}
