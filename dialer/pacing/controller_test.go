package pacing

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// warmed returns a predictive Controller that has learned an hour of a campaign: answer
// rate 0.25, ring times around 9 s, talk around 180 s, wrap-up around 15 s, and no
// abandons.
func warmed(t testing.TB) *Controller {
	t.Helper()
	c := NewController(Settings{Mode: Predictive})
	r := rand.New(rand.NewPCG(1, 1))
	ring := lognormal(9, 5)
	talk := lognormal(180, 150)
	for i := range 3600 {
		now := at(float64(i))
		if r.Float64() < 0.25 {
			c.Observe(Observation{At: now, Kind: Human, Channel: "sip", Duration: secs(ring(r))})
			c.Observe(Observation{At: now, Kind: Connected, Channel: "sip"})
		} else {
			c.Observe(Observation{At: now, Kind: NoAnswer, Channel: "sip", Duration: 25 * time.Second})
		}
		if i%4 == 0 {
			c.Observe(Observation{At: now, Kind: TalkEnded, Channel: "sip", Duration: secs(talk(r))})
			c.Observe(Observation{At: now, Kind: WrapEnded, Channel: "sip", Duration: secs(15 * r.ExpFloat64())})
		}
	}
	return c
}

func secs(x float64) time.Duration { return time.Duration(x * float64(time.Second)) }

// snapshot returns ready agents, busy agents talking for staggered times, and dials ringing
// for staggered times, at time now.
func snapshot(now float64, ready, talking, dials int) Snapshot {
	var s Snapshot
	s.Channel = "sip"
	for range ready {
		s.Agents = append(s.Agents, Agent{State: AgentReady, Since: at(now), Channel: "sip"})
	}
	for i := range talking {
		s.Agents = append(s.Agents, Agent{State: AgentTalking, Since: at(now - float64(i*37%400)), Channel: "sip"})
	}
	for i := range dials {
		s.Dials = append(s.Dials, Dial{Start: at(now - float64(i%20)), Channel: "sip"})
	}
	return s
}

func TestModes(t *testing.T) {
	s := snapshot(0, 5, 3, 2)
	s.Waiting = 1
	tests := []struct {
		mode Mode
		want int
	}{
		{Preview, 0},
		{Progressive, 2},
	}
	for _, tt := range tests {
		if got := NewController(Settings{Mode: tt.mode}).Decide(at(0), s); got != tt.want {
			t.Errorf("%v: Decide = %d, want %d", tt.mode, got, tt.want)
		}
	}
	// A predictive pacer that has learned nothing dials progressively.
	if got := NewController(Settings{Mode: Predictive}).Decide(at(0), s); got != 2 {
		t.Errorf("cold predictive: Decide = %d, want 2", got)
	}
}

func TestLimit(t *testing.T) {
	s := snapshot(0, 4, 4, 3)
	s.Waiting, s.Holding = 1, 2
	s.Agents = append(s.Agents, Agent{State: AgentPaused}, Agent{State: AgentLoggingOff})
	tests := []struct {
		name string
		set  Settings
		n    int
		want int
	}{
		{"no limits", Settings{}, 10, 10},
		{"negative", Settings{}, -3, 0},
		{"paused", Settings{Paused: true}, 10, 0},
		{"max in flight", Settings{MaxInFlight: 8}, 10, 2}, // 3 ringing + 1 waiting + 2 holding
		{"max in flight reached", Settings{MaxInFlight: 5}, 10, 0},
		{"max ratio", Settings{MaxRatio: 1.5}, 10, 8}, // 1.5 × 8 active − 3 − 1
		{"both", Settings{MaxRatio: 1.5, MaxInFlight: 7}, 10, 1},
	}
	for _, tt := range tests {
		if got := tt.set.Limit(s, tt.n); got != tt.want {
			t.Errorf("%s: Limit(%d) = %d, want %d", tt.name, tt.n, got, tt.want)
		}
	}
}

func TestPredictiveMonotoneInReadyAgents(t *testing.T) {
	c := warmed(t)
	for _, busy := range []int{0, 10, 40} {
		for _, ringing := range []int{0, 5, 30} {
			prev := -1
			for ready := 0; ready <= 30; ready++ {
				got := c.Decide(at(3600), snapshot(3600, ready, busy, ringing))
				if got < prev {
					t.Errorf("busy %d ringing %d: %d ready → %d dials, one fewer ready → %d", busy, ringing, ready, got, prev)
				}
				if prog := max(ready-ringing, 0); got < prog {
					t.Errorf("busy %d ringing %d ready %d: %d dials, below progressive %d", busy, ringing, ready, got, prog)
				}
				prev = got
			}
		}
	}
}

func TestPredictiveDialsAhead(t *testing.T) {
	c := warmed(t)
	// Forty agents talking, none ready: some will be free within the ring time, so a
	// predictive pacer dials, while a progressive one would not.
	if got := c.Decide(at(3600), snapshot(3600, 0, 40, 0)); got == 0 {
		t.Error("no dials for 40 busy agents and nothing ringing")
	}
	// With 40 dials already ringing for 2 agents there is nothing to add.
	if got := c.Decide(at(3600), snapshot(3600, 2, 0, 40)); got != 0 {
		t.Errorf("%d more dials with 40 ringing for 2 agents", got)
	}
}

func TestSupervisorLimitsWin(t *testing.T) {
	c := warmed(t)
	s := snapshot(3600, 20, 20, 0)
	free := c.Decide(at(3600), s)
	if free <= 20 {
		t.Fatalf("predictive with 20 ready = %d, want more than progressive", free)
	}
	c.SetSettings(Settings{Mode: Predictive, MaxInFlight: 25})
	if got := c.Decide(at(3600), s); got != 25 {
		t.Errorf("with MaxInFlight 25: %d", got)
	}
	c.SetSettings(Settings{Mode: Predictive, Paused: true})
	if got := c.Decide(at(3600), s); got != 0 {
		t.Errorf("paused: %d", got)
	}
}

func TestSpentAllowanceTurnsProgressive(t *testing.T) {
	c := warmed(t)
	s := snapshot(3600, 3, 40, 0)
	if got := c.Decide(at(3600), s); got <= 3 {
		t.Fatalf("before any abandon: %d dials, want more than progressive", got)
	}
	if e := c.Estimates("sip"); e.Progressive || e.Threshold < progressiveBelow {
		t.Fatalf("before any abandon: estimates %+v, want a threshold and not progressive", e)
	}
	// The last hour answered about 900 people: 1.5 × 3 % of them is 40 abandons.
	for i := range 41 {
		c.Observe(Observation{At: at(3600 + float64(i)), Kind: Abandoned, Channel: "sip"})
	}
	if got := c.Decide(at(3641), s); got != 3 {
		t.Errorf("after 41 abandons in a minute: %d dials, want progressive's 3", got)
	}
	if e := c.Estimates("sip"); !e.Progressive || e.Threshold >= progressiveBelow {
		t.Errorf("after 41 abandons: estimates %+v, want progressive", e)
	}
}

func TestBudgetSettlesAtAim(t *testing.T) {
	// Abandon exactly at 6 %: the threshold must fall; at 0 % it must rise.
	for _, tt := range []struct {
		rate float64
		fall bool
	}{{0.06, true}, {0, false}} {
		b := newBudget(0.03)
		start := math.Exp(b.logTheta)
		for i := range 2000 {
			b.observe(float64(i), Human)
			if tt.rate > 0 && i%int(1/tt.rate) == 0 {
				b.observe(float64(i), Abandoned)
			}
		}
		end := math.Exp(b.logTheta)
		if (end < start) != tt.fall {
			t.Errorf("abandoning %.0f%%: threshold went from %.4f to %.4f", tt.rate*100, start, end)
		}
	}
}

func TestRiskGrowsWithDials(t *testing.T) {
	f := forecast{ready: 3, ringing: 2}
	for k := range horizons {
		f.g[k] = 0.3 * float64(k+1) / horizons
		f.ansMu[k], f.ansVar[k] = 0.5, 0.25
		f.freeMu[k], f.freeVar[k] = 1, 0.5
	}
	if got := f.risk(1); got != 0 {
		t.Errorf("risk with a line per ready agent = %v, want 0", got)
	}
	prev := 0.0
	for n := 2; n < 40; n++ {
		r := f.risk(n)
		if r < prev {
			t.Errorf("risk(%d) = %v < risk(%d) = %v", n, r, n-1, prev)
		}
		prev = r
	}
	if prev < 0.5 {
		t.Errorf("risk of 39 dials for 3 agents = %v, want most likely", prev)
	}
}

func BenchmarkDecide500Agents1000InFlight(b *testing.B) {
	c := warmed(b)
	s := snapshot(3600, 20, 480, 1000)
	c.Decide(at(3600), s) // fit once, as the live engine does on its first call
	b.ReportAllocs()
	for b.Loop() {
		c.Decide(at(3600), s)
	}
}

// TestObserveToleratesEarlierTimes: outcomes stamped before the controller's first
// time, or with a negative duration (clocks of other systems, whole seconds), are
// taken as happening now, never as a crash.
func TestObserveToleratesEarlierTimes(t *testing.T) {
	c := NewController(Settings{Mode: Predictive})
	now := time.Date(2026, 11, 26, 12, 0, 0, 500_000_000, time.UTC)
	c.Decide(now, Snapshot{Agents: []Agent{{State: AgentReady, Since: now}}})
	for _, k := range []ObservationKind{Human, Abandoned, Connected, TalkEnded, NoAnswer} {
		c.Observe(Observation{At: now.Add(-90 * time.Second), Kind: k, Channel: "whatsapp", Duration: -time.Second})
	}
	if n := c.Decide(now.Add(time.Second), Snapshot{Agents: []Agent{{State: AgentReady, Since: now}}}); n < 0 {
		t.Fatalf("Decide = %d", n)
	}
}
