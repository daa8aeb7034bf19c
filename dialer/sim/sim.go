package sim

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/turbina-dialer/turbina/dialer/pacing"
)

// Result is one pacer's result on one scenario, with the field names of the contract.
type Result struct {
	Scenario           string  `json:"scenario"`
	Pacer              string  `json:"pacer"`
	Dials              int     `json:"dials"`
	Answered           int     `json:"answered"`
	Connected          int     `json:"connected"`
	Abandoned          int     `json:"abandoned"`
	AbandonRate        float64 `json:"abandon_rate"`
	MaxHourAbandonRate float64 `json:"max_hour_abandon_rate"`
	Occupancy          float64 `json:"occupancy"`
	OccupancyLimit     float64 `json:"occupancy_limit"`
	Efficiency         float64 `json:"efficiency"`
	MeanAgentWaitS     float64 `json:"mean_agent_wait_s"`
	SimWallS           float64 `json:"sim_wall_s"`

	// Hours holds answered and abandoned per whole hour of the run.
	Hours []Hour `json:"-"`
	// Idle says where the agents' ready time went; it is not part of the contract's result.
	Idle Idle `json:"-"`
	// GivenUp counts the people who would have answered a dial had the pacer not given it
	// up first (see pacing.RingTimer); they are not in Answered.
	GivenUp int `json:"-"`
}

// Idle is the time agents spent ready for a call during the shift, in agent-seconds, split
// by what they were waiting on. With r agents ready and l lines working (dials in flight
// plus people answered and waiting), min(r, l) agents wait for a person to answer and the
// rest for the pacer to dial. This is where occupancy is lost: talk and wrap-up are
// fixed by the scenario, so occupancy_limit − occupancy is the ready time alone.
type Idle struct {
	// LoggedIn is the agents' logged-in time: the whole of which the others are parts.
	LoggedIn float64
	// Answer is ready time with a line working for the agent.
	Answer float64
	// Stale is the part of Answer spent on lines that had rung longer than StaleRing,
	// counting each waiting agent against the youngest lines first: the wait for a dial
	// unlikely to be answered any more, that a new line would cut short at a risk of
	// abandonment should the old one be answered after all.
	Stale float64
	// NoDial is ready time with no line working for the agent: the pacer held back.
	NoDial float64
}

// StaleRing is how long a dial must have rung unanswered for Idle to count the wait on it
// as Stale: with the example scenarios' ring times (lognormal, mean 9 s, sd 5 s) nine in ten
// people who answer have done so by then.
const StaleRing = 15.0

// Hour is the count of one whole hour of a run, by the time people answered.
type Hour struct {
	Answered, Abandoned int
}

// Channel is the channel every simulated dial uses.
const Channel pacing.Channel = "sip"

// DecisionInterval is the longest the simulator lets pass without asking the pacer.
const DecisionInterval = 250 * time.Millisecond

// Run simulates sc with the pacer called name (see NewPacer).
func Run(ctx context.Context, sc *Scenario, name string) (Result, error) {
	p, err := NewPacer(name, sc)
	if err != nil {
		return Result{}, err
	}
	return RunPacer(ctx, sc, name, p)
}

type agent struct {
	pos      int32   // index in the snapshot; -1 once logged off
	loginAt  float64 // when the agent logged in
	waitFrom float64 // when the current wait after wrap-up began; -1 if none
	callAt   float64 // when the current call was bridged
	talk     float64
	wrap     float64
	leaving  bool
}

type waiter struct {
	id   int32
	at   float64 // when the person answered
	hour int     // whole hour of the run the answer counts in; -1 if none
}

type state struct {
	sc     *Scenario
	p      pacing.Pacer
	timer  pacing.RingTimer // p, when it chooses how long dials ring; else nil
	now    float64
	end    float64
	ev     eventHeap
	dialR  *rand.Rand
	workR  *rand.Rand
	leaveR *rand.Rand

	ring, fail, machine, talk, wrap sampler
	answerP, machineP, failP        float64

	agents    []agent
	snapAg    []pacing.Agent // the snapshot's agents, in positions
	posID     []int32        // agent id at each snapshot position
	ready     []int32        // ready agents, longest waiting first; stale entries are skipped
	readyHead int

	dials   []pacing.Dial // the snapshot's dials in flight
	dialPos []int32       // position in dials of each dial id
	posDial []int32       // dial id at each position
	dialAt  []float64     // start time of each dial id

	queue     []waiter // people waiting for an agent, in order of answer
	queueHead int
	calls     int32
	holding   int

	res       Result
	talkSum   float64
	loginSum  float64
	waitSum   float64
	waits     int
	readyN    int     // agents ready now
	idleAt    float64 // the time up to which Idle has been counted
	hourCount []Hour
}

// RunPacer simulates sc with pacer p, reported under name.
func RunPacer(ctx context.Context, sc *Scenario, name string, p pacing.Pacer) (Result, error) {
	if err := sc.Validate(); err != nil {
		return Result{}, err
	}
	wall := time.Now()
	s := &state{
		sc:       sc,
		p:        p,
		end:      sc.DurationS,
		dialR:    rand.New(rand.NewPCG(sc.Seed, 1)),
		workR:    rand.New(rand.NewPCG(sc.Seed, 2)),
		leaveR:   rand.New(rand.NewPCG(sc.Seed, 3)),
		ring:     newSampler(sc.Ring),
		fail:     newSampler(sc.Fail),
		machine:  newSampler(sc.Machine),
		talk:     newSampler(sc.Talk),
		wrap:     newSampler(sc.Wrap),
		answerP:  sc.AnswerProb,
		machineP: sc.MachineProb,
		failP:    sc.FailProb,
	}
	s.timer, _ = p.(pacing.RingTimer)
	s.hourCount = make([]Hour, int(sc.DurationS/3600))
	s.res.Scenario, s.res.Pacer = sc.Name, name
	s.setAgents(sc.Agents)
	for i, e := range sc.Events {
		s.ev.push(e.AtS, evScenario, int32(i))
	}
	if err := s.loop(ctx); err != nil {
		return Result{}, fmt.Errorf("sim: %s with %s: %w", sc.Name, name, err)
	}
	s.finish()
	s.res.SimWallS = time.Since(wall).Seconds()
	return s.res, nil
}

// at returns the instant of virtual time t. Time starts at a fixed instant; which one does
// not matter.
func (s *state) at(t float64) time.Time {
	return time.Unix(1_736_150_400, 0).UTC().Add(time.Duration(math.Round(t * 1e9)))
}

func (s *state) loop(ctx context.Context) error {
	lastDecision := -DecisionInterval.Seconds()
	for n := 0; ; n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if s.now < s.end {
			next := math.Inf(1)
			if s.ev.len() > 0 {
				next = s.ev.peek()
			}
			tick := lastDecision + DecisionInterval.Seconds()
			if tick < next && tick < s.end {
				s.countIdle(tick)
				s.now = tick
				s.decide()
				lastDecision = tick
				continue
			}
			if next >= s.end {
				s.countIdle(s.end)
				s.now = s.end // the shift is over: no more dials, let those in flight end
				continue
			}
			s.handle(s.ev.pop())
			s.decide()
			lastDecision = s.now
			continue
		}
		if len(s.dials) == 0 && s.queueHead == len(s.queue) || s.ev.len() == 0 {
			return nil
		}
		s.handle(s.ev.pop())
	}
}

func (s *state) snapshot() pacing.Snapshot {
	return pacing.Snapshot{
		Agents:  s.snapAg,
		Dials:   s.dials,
		Waiting: len(s.queue) - s.queueHead,
		Holding: s.holding,
		Channel: Channel,
	}
}

func (s *state) decide() {
	n := s.p.Decide(s.at(s.now), s.snapshot())
	for range n {
		s.dial()
	}
}

func (s *state) dial() {
	id := int32(len(s.dialAt))
	s.dialAt = append(s.dialAt, s.now)
	s.dialPos = append(s.dialPos, int32(len(s.dials)))
	s.posDial = append(s.posDial, id)
	s.dials = append(s.dials, pacing.Dial{Start: s.at(s.now), Channel: Channel})
	s.res.Dials++
	u := s.dialR.Float64()
	var kind eventKind
	var d float64
	switch {
	case u < s.answerP:
		kind, d = evHuman, min(s.ring.draw(s.dialR), s.sc.NoAnswerS)
	case u < s.answerP+s.machineP:
		kind, d = evMachine, min(s.ring.draw(s.dialR), s.sc.NoAnswerS)
	case u < s.answerP+s.machineP+s.failP:
		kind, d = evFailed, s.fail.draw(s.dialR)
	default:
		kind, d = evNoAnswer, s.sc.NoAnswerS
	}
	if s.timer != nil {
		if c := s.timer.RingTimeout(Channel).Seconds(); c > 0 && d > c {
			if kind == evHuman {
				s.res.GivenUp++
			}
			kind, d = evNoAnswer, c
		}
	}
	s.ev.push(s.now+d, kind, id)
}

// endDial removes a dial from those in flight and returns how long it rang.
func (s *state) endDial(id int32) float64 {
	i := s.dialPos[id]
	last := int32(len(s.dials) - 1)
	moved := s.posDial[last]
	s.dials[i] = s.dials[last]
	s.posDial[i] = moved
	s.dialPos[moved] = i
	s.dials = s.dials[:last]
	s.posDial = s.posDial[:last]
	return s.now - s.dialAt[id]
}

func (s *state) observe(kind pacing.ObservationKind, d float64) {
	s.p.Observe(pacing.Observation{
		At:       s.at(s.now),
		Kind:     kind,
		Channel:  Channel,
		Duration: time.Duration(math.Round(d * 1e9)),
	})
}

// countIdle adds to Idle the ready time from the last count up to t, within the shift. The
// state has not changed since the last count, so the counts of agents ready and lines
// working hold over the whole interval; a dial's age is taken at its start.
func (s *state) countIdle(t float64) {
	t = min(t, s.end)
	dt := t - s.idleAt
	if dt <= 0 {
		return
	}
	s.idleAt = t
	if s.readyN == 0 {
		return
	}
	waiting := len(s.queue) - s.queueHead
	covered := min(s.readyN, len(s.dials)+waiting)
	s.res.Idle.NoDial += float64(s.readyN-covered) * dt
	s.res.Idle.Answer += float64(covered) * dt
	young := waiting
	for i := 0; i < len(s.dials) && young < covered; i++ {
		if s.now-s.dialAt[s.posDial[i]] < StaleRing {
			young++
		}
	}
	if young < covered {
		s.res.Idle.Stale += float64(covered-young) * dt
	}
}

func (s *state) handle(e event) {
	s.countIdle(e.t)
	s.now = e.t
	switch e.kind {
	case evHuman:
		s.observe(pacing.Human, s.endDial(e.id))
		s.answered()
	case evMachine:
		s.observe(pacing.Machine, s.endDial(e.id))
		s.holding++
		s.ev.push(s.now+s.machine.draw(s.dialR), evMachineDone, e.id)
	case evFailed:
		s.observe(pacing.Failed, s.endDial(e.id))
	case evNoAnswer:
		s.observe(pacing.NoAnswer, s.endDial(e.id))
	case evMachineDone:
		s.holding--
	case evPatience:
		if s.queueHead < len(s.queue) && s.queue[s.queueHead].id == e.id {
			w := s.queue[s.queueHead]
			s.queueHead++
			s.res.Abandoned++
			if w.hour >= 0 {
				s.hourCount[w.hour].Abandoned++
			}
			s.observe(pacing.Abandoned, s.now-w.at)
		}
	case evTalkEnd:
		a := &s.agents[e.id]
		s.observe(pacing.TalkEnded, a.talk)
		s.snapAg[a.pos].State = wrapState(a)
		s.snapAg[a.pos].Since = s.at(s.now)
		s.ev.push(s.now+a.wrap, evWrapEnd, e.id)
	case evWrapEnd:
		a := &s.agents[e.id]
		s.observe(pacing.WrapEnded, a.wrap)
		if a.leaving {
			s.logOff(e.id)
			return
		}
		if s.now < s.end {
			a.waitFrom = s.now
		}
		s.free(e.id)
	case evScenario:
		s.change(s.sc.Events[e.id])
	}
}

func wrapState(a *agent) pacing.AgentState {
	if a.leaving {
		return pacing.AgentLoggingOff
	}
	return pacing.AgentWrapUp
}

// answered handles a person answering a dial.
func (s *state) answered() {
	s.res.Answered++
	hour := -1
	if h := int(s.now / 3600); h < len(s.hourCount) && s.now < s.end {
		hour = h
		s.hourCount[h].Answered++
	}
	if id, ok := s.popReady(); ok {
		s.connect(id, 0)
		return
	}
	s.calls++
	s.queue = append(s.queue, waiter{id: s.calls, at: s.now, hour: hour})
	s.ev.push(s.now+s.sc.PatienceS, evPatience, s.calls)
}

// free makes an agent ready, or gives them the person waiting longest.
func (s *state) free(id int32) {
	if s.queueHead < len(s.queue) {
		w := s.queue[s.queueHead]
		s.queueHead++
		if s.queueHead == len(s.queue) {
			s.queue, s.queueHead = s.queue[:0], 0
		}
		s.connect(id, s.now-w.at)
		return
	}
	a := &s.agents[id]
	s.snapAg[a.pos] = pacing.Agent{State: pacing.AgentReady, Since: s.at(s.now), Channel: Channel}
	s.ready = append(s.ready, id)
	s.readyN++
}

func (s *state) popReady() (int32, bool) {
	for s.readyHead < len(s.ready) {
		id := s.ready[s.readyHead]
		s.readyHead++
		if s.readyHead == len(s.ready) {
			s.ready, s.readyHead = s.ready[:0], 0
		}
		a := &s.agents[id]
		if a.pos >= 0 && s.snapAg[a.pos].State == pacing.AgentReady {
			s.readyN--
			return id, true
		}
	}
	return 0, false
}

// connect bridges a person to agent id after they waited wait seconds.
func (s *state) connect(id int32, wait float64) {
	s.res.Connected++
	s.observe(pacing.Connected, wait)
	a := &s.agents[id]
	if a.waitFrom >= 0 && s.now <= s.end {
		s.waitSum += s.now - a.waitFrom
		s.waits++
	}
	a.waitFrom = -1
	a.callAt = s.now
	a.talk = s.talk.draw(s.workR)
	a.wrap = s.wrap.draw(s.workR)
	if s.now < s.end {
		s.talkSum += min(s.now+a.talk, s.end) - s.now
	}
	st := pacing.AgentTalking
	if a.leaving {
		st = pacing.AgentLoggingOff
	}
	s.snapAg[a.pos] = pacing.Agent{State: st, Since: s.at(s.now), Channel: Channel}
	s.ev.push(s.now+a.talk, evTalkEnd, id)
}

func (s *state) logIn() {
	id := int32(len(s.agents))
	s.agents = append(s.agents, agent{pos: int32(len(s.snapAg)), loginAt: s.now, waitFrom: -1})
	s.snapAg = append(s.snapAg, pacing.Agent{})
	s.posID = append(s.posID, id)
	s.free(id)
}

func (s *state) logOff(id int32) {
	a := &s.agents[id]
	s.loginSum += min(s.now, s.end) - a.loginAt
	i := a.pos
	last := int32(len(s.snapAg) - 1)
	moved := s.posID[last]
	s.snapAg[i] = s.snapAg[last]
	s.posID[i] = moved
	s.agents[moved].pos = i
	s.snapAg = s.snapAg[:last]
	s.posID = s.posID[:last]
	a.pos = -1
}

// setAgents brings the number of agents not leaving to n. Agents leaving are asked to stay
// before anyone new logs in. Those who must go are drawn at random: a ready one leaves at
// once, a busy one after the call and wrap-up.
func (s *state) setAgents(n int) {
	staying := 0
	for _, id := range s.posID {
		if !s.agents[id].leaving {
			staying++
		}
	}
	for i := len(s.posID) - 1; i >= 0 && staying < n; i-- {
		a := &s.agents[s.posID[i]]
		if a.leaving {
			a.leaving = false
			ag := &s.snapAg[a.pos]
			ag.State = pacing.AgentWrapUp
			if a.callAt+a.talk > s.now {
				ag.State = pacing.AgentTalking
			}
			staying++
		}
	}
	for staying < n {
		s.logIn()
		staying++
	}
	for staying > n {
		var cand []int32
		for _, id := range s.posID {
			if !s.agents[id].leaving {
				cand = append(cand, id)
			}
		}
		id := cand[s.leaveR.IntN(len(cand))]
		a := &s.agents[id]
		a.leaving = true
		staying--
		if st := &s.snapAg[a.pos]; st.State == pacing.AgentReady {
			s.readyN--
			s.logOff(id)
		} else {
			st.State = pacing.AgentLoggingOff
		}
	}
}

func (s *state) change(e Event) {
	if e.AnswerProb != nil {
		s.answerP = *e.AnswerProb
	}
	if e.MachineProb != nil {
		s.machineP = *e.MachineProb
	}
	if e.FailProb != nil {
		s.failP = *e.FailProb
	}
	if e.Agents != nil {
		s.setAgents(*e.Agents)
	}
}

func (s *state) finish() {
	for _, id := range s.posID {
		s.loginSum += s.end - s.agents[id].loginAt
	}
	r := &s.res
	r.Hours = s.hourCount
	r.AbandonRate = ratio(r.Abandoned, r.Answered)
	for _, h := range s.hourCount {
		r.MaxHourAbandonRate = max(r.MaxHourAbandonRate, ratio(h.Abandoned, h.Answered))
	}
	r.Idle.LoggedIn = s.loginSum
	if s.loginSum > 0 {
		r.Occupancy = s.talkSum / s.loginSum
	}
	talk, wrap := s.sc.Talk.Mean(), s.sc.Wrap.Mean()
	r.OccupancyLimit = talk / (talk + wrap)
	r.Efficiency = r.Occupancy / r.OccupancyLimit
	if s.waits > 0 {
		r.MeanAgentWaitS = s.waitSum / float64(s.waits)
	}
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
