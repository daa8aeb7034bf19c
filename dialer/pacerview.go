package dialer

import (
	"cmp"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/pacing"
)

// PacerView is what a campaign's pacer has learned about one call channel of its ladder,
// and the ring timeout new calls on it get: what a supervisor needs to see why the
// dialer dials as it does. Message rungs have no pacing and no view.
type PacerView struct {
	// CampaignID is the campaign the pacer paces.
	CampaignID int64
	// Channel is the call channel (sip or whatsapp_call).
	Channel campaigns.Channel
	// Mode is the campaign's pacing mode.
	Mode campaigns.PacingMode
	// DialsLearned is how many ended dials on the channel the pacer has learned from.
	DialsLearned int
	// AnswerProb is the learned probability that a dial is answered by a person.
	// AnswerProb, MeanTalk and MeanWrap are fitted as the predictive pacer decides:
	// in the other modes they stay 0 (unknown).
	AnswerProb float64
	// MeanTalk and MeanWrap are the learned mean talk and wrap-up times; 0 while
	// unknown.
	MeanTalk time.Duration
	MeanWrap time.Duration
	// Threshold is the risk the predictive pacer accepted at its last decision that the
	// person who answers its last dial finds no agent; it follows the abandonment
	// measured so far. 0 outside predictive mode.
	Threshold float64
	// Progressive reports that the predictive pacer dialled progressively at its last
	// decision, one line per free agent: it had learned too little to forecast, or its
	// abandonment allowance (of the run or of the hour) was spent.
	Progressive bool
	// RingTimeout is how long a new call on the channel rings before it is given up,
	// as the engine places it now.
	RingTimeout time.Duration
	// RingTimeoutAuto reports that the campaign leaves the ring timeout automatic
	// (pacing.ring_timeout 0); otherwise RingTimeout is the campaign's fixed one.
	RingTimeoutAuto bool
	// RingTimeoutLearned reports that an automatic RingTimeout is the one the
	// predictive pacer chose from the ring times it learned; when false an automatic
	// RingTimeout is the engine's (Config.RingTimeout, its default and ceiling).
	RingTimeoutLearned bool
	// Down reports that the channel cannot take calls now (every SIP trunk's
	// circuit open, or the channel not configured): its contacts go on to the
	// next rung.
	Down bool
	// Forecast reports that new dials go to this channel, so the pacer forecasts
	// with its answer rate and ring time: the ladder's first call channel that is
	// up (with all down, the first).
	Forecast bool
	// Ringing counts the run's calls on the channel placed and not yet answered.
	Ringing int
	// Waiting counts the persons who answered a call on the channel and wait for an
	// agent; WaitingSince is when the one waiting longest answered (zero when none).
	Waiting      int
	WaitingSince time.Time
}

// PacerViews returns the pacer's view of every call channel of every campaign the engine
// runs (running or paused), by campaign ID and then in ladder order. Each run refreshes
// its views at every tick (Config.Tick); a campaign the engine does not run has none.
// It is safe to call from any goroutine.
func (e *Engine) PacerViews() []PacerView {
	e.mu.Lock()
	runs := slices.SortedFunc(maps.Values(e.runs), func(a, b *run) int { return cmp.Compare(a.id, b.id) })
	e.mu.Unlock()
	var out []PacerView
	for _, r := range runs {
		if v := r.pacerViews.Load(); v != nil {
			out = append(out, *v...)
		}
	}
	return out
}

// publishPacerViews refreshes the views PacerViews reads. Run by the loop: the pacer is
// read there only.
func (r *run) publishPacerViews() {
	routes := r.routes()
	dialing := pacing.DialChannel(routes)
	views := make([]PacerView, 0, len(routes))
	for _, rt := range routes {
		v := r.pacerView(campaigns.Channel(rt.Channel))
		v.Down, v.Forecast = rt.Down, rt.Channel == dialing
		views = append(views, v)
	}
	for _, c := range r.calls {
		if c.state != callDialing && c.state != callRinging {
			continue
		}
		if i := slices.IndexFunc(views, func(v PacerView) bool { return v.Channel == c.rung.Channel }); i >= 0 {
			views[i].Ringing++
		}
	}
	// r.waiting is in answer order: the first on a channel has waited longest.
	for _, c := range r.waiting {
		if i := slices.IndexFunc(views, func(v PacerView) bool { return v.Channel == c.rung.Channel }); i >= 0 {
			if views[i].Waiting == 0 {
				views[i].WaitingSince = c.answered
			}
			views[i].Waiting++
		}
	}
	r.pacerViews.Store(&views)
}

// pacerView is the pacer's view of ch now.
func (r *run) pacerView(ch campaigns.Channel) PacerView {
	c := r.campaign
	est := r.pacer.Estimates(pacing.Channel(ch))
	ring := r.ringTimeout(ch)
	auto := c.Pacing.RingTimeout == 0
	v := PacerView{
		CampaignID:      r.id,
		Channel:         ch,
		Mode:            c.Pacing.Mode,
		DialsLearned:    est.Dials,
		AnswerProb:      est.AnswerProb,
		MeanTalk:        known(est.MeanTalk),
		MeanWrap:        known(est.MeanWrap),
		RingTimeout:     ring,
		RingTimeoutAuto: auto,
		// Automatic, ringTimeout gives the engine's ceiling unless the pacer chose less.
		RingTimeoutLearned: auto && ring < r.e.cfg.RingTimeout,
	}
	if c.Pacing.Mode == campaigns.PacingPredictive {
		v.Threshold = est.Threshold
		v.Progressive = est.Progressive
	}
	return v
}

// known is d, or 0 for the endless duration pacing.Estimates gives for an unknown mean.
func known(d time.Duration) time.Duration {
	if d < 0 || d == math.MaxInt64 {
		return 0
	}
	return d
}
