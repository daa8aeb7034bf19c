package web

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/kpi"
	"github.com/turbina-dialer/turbina/storage"
)

// TrunkControl takes SIP trunks out of service and back, for supervisors. The SIP
// originator implements it; without one the API answers 501.
type TrunkControl interface {
	SetTrunkOutOfService(name string, out bool) error
}

// ErrNoSuchTrunk may be returned (wrapped) by a TrunkControl for an unknown trunk.
var ErrNoSuchTrunk = errors.New("no such trunk")

// uiRoutes are the API calls the wallboard adds.
func (s *Server) uiRoutes() []route {
	return []route{
		{"GET", "/api/v1/wallboard", supervisors, s.getWallboard},
		{"GET", "/api/v1/wallboard/stream", supervisors, s.streamWallboard},
		// A trunk's ID is its configured name.
		{"PATCH", "/api/v1/trunks/{id}", supervisors, s.updateTrunk},
	}
}

// slaThreshold is the wait within which a connected call counts toward the service
// level: the two seconds after which an answered person hears the abandon prompt.
const slaThreshold = 2 * time.Second

// historyWindow is how far back the wallboard's charts reach.
const historyWindow = time.Hour

// sampleInterval is how often the history takes a sample: the first snapshot of
// each interval of the server's clock is kept, however many are computed in it.
const sampleInterval = time.Second

// WallboardSnapshot is what the supervisors' wallboard shows, computed once a second.
type WallboardSnapshot struct {
	At        time.Time           `json:"at"`
	Campaigns []WallboardCampaign `json:"campaigns"`
	Agents    []WallboardAgent    `json:"agents"`
	Trunks    any                 `json:"trunks"`
	// TrunkControl says whether trunks can be taken out of service here.
	TrunkControl bool              `json:"trunk_control"`
	WhatsApp     WallboardWhatsApp `json:"whatsapp"`
	Audit        []WallboardAudit  `json:"audit"`
	// Failovers are the SIP trunks down now, or back for less than a minute:
	// the banner at the top of the page.
	Failovers []WallboardFailover `json:"failovers"`
	// Inbound are the inbound queues: callers on hold now, and today's answered
	// and abandoned calls and longest wait (the server's time zone), per campaign.
	Inbound []dialer.InboundQueue `json:"inbound"`
	// MaxAbandon is the highest abandonment cap (pacing.target_abandon) the engine
	// accepts, for the pacing form to check before it sends.
	MaxAbandon float64 `json:"max_abandon"`
	// Draining says this node drains before it stops: it places no new call,
	// and the calls under way end as usual.
	Draining bool `json:"draining"`
}

// WallboardAudit is an audit entry as the wallboard tells it: the action's code
// and the names a sentence needs, for the page to write it in its language.
type WallboardAudit struct {
	storage.AuditEntry
	// UserName is the actor's display name, UserRole their role; empty for the
	// system or a user since removed.
	UserName string `json:"user_name,omitempty"`
	UserRole string `json:"user_role,omitempty"`
	// ObjectName names the object: a campaign's or user's name, a trunk's.
	ObjectName string `json:"object_name,omitempty"`
	// SubjectName names the user an action on a campaign was about: the agent
	// assigned or unassigned.
	SubjectName string `json:"subject_name,omitempty"`
	// Changes are the fields the action changed, by their JSON path
	// ("pacing.max_ratio"), each with its value before and after.
	Changes []AuditChange `json:"changes,omitempty"`
}

// AuditChange is one field an audited action changed.
type AuditChange struct {
	Field  string `json:"field"`
	Before any    `json:"before"`
	After  any    `json:"after"`
}

// WallboardWhatsApp is the WhatsApp Cloud API's health.
type WallboardWhatsApp struct {
	Configured bool   `json:"configured"`
	Status     string `json:"status"`
}

// WallboardCampaign is one campaign's live figures.
type WallboardCampaign struct {
	ID     int64                  `json:"id,string"`
	Name   string                 `json:"name"`
	State  campaigns.State        `json:"state"`
	Pacing campaigns.Pacing       `json:"pacing"`
	Ladder []campaigns.Rung       `json:"ladder"`
	Stats  *storage.CampaignStats `json:"stats,omitempty"`
	// DialsPerMinute is the dial rate over the last minute.
	DialsPerMinute float64 `json:"dials_per_minute"`
	// AnswerRate is reached / attempts by channel.
	AnswerRate map[string]float64 `json:"answer_rate"`
	// Occupancy is kpi.OccupancyNow over the agents signed in to the campaign:
	// those handling a call (reserved, talking, in wrap-up) over those and the ready
	// ones.
	Occupancy float64 `json:"occupancy"`
	// AHT (TMA) and ASA (TME) are in seconds over the calls seen in the last hour;
	// SLA is the share of them connected within two seconds of answer.
	AHTSeconds   float64 `json:"aht_seconds"`
	ASASeconds   float64 `json:"asa_seconds"`
	SLA          float64 `json:"sla"`
	HandledCalls int     `json:"handled_calls"`
	// AgentIDs are the agent users assigned to the campaign.
	AgentIDs []string `json:"agent_ids"`
	// Pacer is the pacer's view of each call channel of the ladder, in ladder order;
	// empty when the engine does not run the campaign.
	Pacer []WallboardPacer `json:"pacer"`
	// Abandonment is the campaign's abandonment as the law counts it, against its cap;
	// absent when the campaign is not running or paused.
	Abandonment *WallboardAbandonment `json:"abandonment,omitempty"`
	// Ringing counts the campaign's calls placed and not yet answered, over its call
	// channels; Waiting the persons who answered and wait for an agent, the longest
	// of them for LongestWaitSeconds (0 when nobody waits).
	Ringing            int     `json:"ringing"`
	Waiting            int     `json:"waiting"`
	LongestWaitSeconds float64 `json:"longest_wait_seconds"`
	// Node is the node (turbina serve process) whose live lease runs the
	// campaign; empty when none does now.
	Node string `json:"node,omitempty"`
}

// WallboardAbandonment is a campaign's abandonment over the law's periods: the rolling
// 30 days (US TSR), the rolling 24 h (Ofcom) and today in the campaign's zone, and the
// cap it is held to (pacing.target_abandon).
type WallboardAbandonment struct {
	Days30  storage.AbandonFigures `json:"days_30"`
	Hours24 storage.AbandonFigures `json:"hours_24"`
	Today   storage.AbandonFigures `json:"today"`
	Cap     float64                `json:"cap"`
}

// WallboardPacer is what a campaign's pacer sees on one call channel (dialer.PacerView):
// why the dialer dials as it does. Durations are Go duration text, as in the campaign's
// pacing.
type WallboardPacer struct {
	Channel campaigns.Channel    `json:"channel"`
	Mode    campaigns.PacingMode `json:"mode"`
	// DialsLearned is how many ended dials on the channel the pacer has learned from.
	DialsLearned int `json:"dials_learned"`
	// AnswerProb is the learned probability that a person answers a dial; it, MeanTalk
	// and MeanWrap are learned in predictive mode only, and are 0 while unknown.
	AnswerProb float64            `json:"answer_prob"`
	MeanTalk   campaigns.Duration `json:"mean_talk"`
	MeanWrap   campaigns.Duration `json:"mean_wrap"`
	// Threshold is the risk the predictive pacer accepted at its last decision that
	// the person who answers its last dial finds no agent; 0 in other modes.
	Threshold float64 `json:"threshold"`
	// Progressive says the predictive pacer dials one line per free agent: it is still
	// learning, or has spent its abandonment allowance.
	Progressive bool `json:"progressive"`
	// RingTimeout is how long new calls on the channel ring before they are given up.
	RingTimeout campaigns.Duration `json:"ring_timeout"`
	// RingTimeoutAuto says the campaign leaves it automatic (pacing.ring_timeout 0s);
	// otherwise it is the campaign's fixed one.
	RingTimeoutAuto bool `json:"ring_timeout_auto"`
	// RingTimeoutLearned says an automatic ring timeout is the pacer's choice from the
	// ring times it learned; otherwise it is the engine's default.
	RingTimeoutLearned bool `json:"ring_timeout_learned"`
	// Down says the channel cannot take calls now (every SIP trunk's circuit open,
	// or the channel not configured): its contacts go on to the next rung.
	Down bool `json:"down"`
	// Forecast says new dials go to this channel, so the pacer forecasts with its
	// answer rate and ring time: the ladder's first call channel that is up.
	Forecast bool `json:"forecast"`
	// Ringing counts the calls on the channel placed and not yet answered; Waiting
	// the persons who answered one and wait for an agent.
	Ringing int `json:"ringing"`
	Waiting int `json:"waiting"`
}

// wallboardPacer is v as the wallboard shows it: durations rounded for reading.
func wallboardPacer(v dialer.PacerView) WallboardPacer {
	return WallboardPacer{
		Channel:            v.Channel,
		Mode:               v.Mode,
		DialsLearned:       v.DialsLearned,
		AnswerProb:         v.AnswerProb,
		MeanTalk:           campaigns.Duration(v.MeanTalk.Round(time.Second)),
		MeanWrap:           campaigns.Duration(v.MeanWrap.Round(time.Second)),
		Threshold:          v.Threshold,
		Progressive:        v.Progressive,
		RingTimeout:        campaigns.Duration(v.RingTimeout.Round(100 * time.Millisecond)),
		RingTimeoutAuto:    v.RingTimeoutAuto,
		RingTimeoutLearned: v.RingTimeoutLearned,
		Down:               v.Down,
		Forecast:           v.Forecast,
		Ringing:            v.Ringing,
		Waiting:            v.Waiting,
	}
}

// WallboardAgent is one agent user, signed in or not.
type WallboardAgent struct {
	ID             int64      `json:"id,string"`
	Username       string     `json:"username"`
	Name           string     `json:"name"`
	State          string     `json:"state"`
	Reason         string     `json:"reason,omitempty"`
	Since          *time.Time `json:"since,omitempty"`
	SecondsInState float64    `json:"seconds_in_state"`
	// CampaignIDs are the campaigns the agent is signed in to; Assigned those it may work.
	CampaignIDs []string `json:"campaign_ids"`
	Assigned    []string `json:"assigned_campaign_ids"`
	// Node is the node serving the agent, when several nodes are live.
	Node string `json:"node,omitempty"`
	// Phone is the agent's SIP phone registration, whichever node took it;
	// absent when it has none.
	Phone *WallboardPhone `json:"phone,omitempty"`
}

// WallboardPhone is an agent's SIP phone registration (the most recently
// refreshed, when it has several), as every node reads it from the database.
type WallboardPhone struct {
	// Node is the node whose registrar took the REGISTER.
	Node      string    `json:"node,omitempty"`
	Transport string    `json:"transport"`
	UserAgent string    `json:"user_agent,omitempty"`
	Expires   time.Time `json:"expires"`
}

// wallSample is one second's counters, kept for the charts.
type wallSample struct {
	At        time.Time               `json:"at"`
	Campaigns map[string]sampleCounts `json:"campaigns"`
}

type sampleCounts struct {
	Dials     int `json:"dials"`
	Answered  int `json:"answered"`
	Abandoned int `json:"abandoned"`
	Connected int `json:"connected"`
}

// handled is one call an agent finished, for TMA, TME and SLA.
type handled struct {
	at         time.Time
	campaignID int64
	handle     time.Duration
	wait       time.Duration
}

// callSeen follows one call on an agent from connect to the end of wrap-up.
type callSeen struct {
	agentID   int64
	wrapSince time.Time
	lastSeen  time.Time
}

// wallboard computes snapshots while someone watches and fans them out. It keeps
// the last hour of counters for the charts and the calls it saw agents finish.
type wallboard struct {
	s *Server

	mu      sync.Mutex
	subs    map[chan []byte]struct{}
	stop    chan struct{}
	samples []wallSample
	calls   map[int64]*callSeen // by attempt ID
	done    []handled

	abandon   abandonCache
	failovers failovers
	wake      chan struct{} // a snapshot now: a trunk changed

	// cluster is how this node shares the wallboard with others (RunCluster).
	cluster clusterSlot

	// shared is the last snapshot as GET /api/v1/wallboard answers it, reused for
	// snapshotTTL of the server's clock by every reader (shared.go).
	shared sharedSnapshot
}

func newWallboard(s *Server) *wallboard {
	return &wallboard{s: s, subs: map[chan []byte]struct{}{}, calls: map[int64]*callSeen{},
		abandon: abandonCache{ttl: abandonTTL, entries: map[int64]abandonEntry{}}, wake: make(chan struct{}, 1)}
}

// poke makes the sampler send a snapshot now, if anyone watches, and the next
// GET compute one: a trunk's change is news the second it happens.
func (wb *wallboard) poke() {
	wb.shared.forget()
	select {
	case wb.wake <- struct{}{}:
	default:
	}
}

// subscribe returns a channel of encoded snapshots and the history so far. The
// sampler runs while anyone subscribes; when it starts, the last hour is rebuilt
// from the attempts table, so the charts are whole even after a restart or an
// hour nobody watched.
func (wb *wallboard) subscribe(ctx context.Context) (<-chan []byte, []wallSample, func()) {
	ch := make(chan []byte, 2)
	wb.mu.Lock()
	defer wb.mu.Unlock()
	wb.subs[ch] = struct{}{}
	if wb.stop == nil {
		if past, err := wb.past(ctx); err != nil {
			wb.s.log.Warn("wallboard history", "err", err)
		} else {
			wb.samples = past
		}
		wb.stop = make(chan struct{})
		go wb.loop(wb.stop)
	}
	history := downsample(wb.samples, 10*time.Second)
	return ch, history, func() {
		wb.mu.Lock()
		defer wb.mu.Unlock()
		if _, ok := wb.subs[ch]; !ok {
			return
		}
		delete(wb.subs, ch)
		if len(wb.subs) == 0 && wb.stop != nil {
			close(wb.stop)
			wb.stop = nil
		}
	}
}

func (wb *wallboard) loop(stop chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 900*time.Millisecond)
		gen := wb.shared.generation()
		snap, err := wb.snapshot(ctx)
		cancel()
		if err != nil {
			wb.s.log.Warn("wallboard snapshot", "err", err)
		} else if b, err := json.Marshal(snap); err == nil {
			// The readers of GET in this second take what the watchers get
			// (json.Marshal's escaping of <, > and & is the same JSON).
			wb.shared.offer(gen, snap.At, append(b[:len(b):len(b)], '\n'))
			wb.mu.Lock()
			for ch := range wb.subs {
				select {
				case ch <- b:
				default: // a slow viewer skips a second; the next snapshot is complete
				}
			}
			wb.mu.Unlock()
		}
		select {
		case <-stop:
			return
		case <-t.C:
		case <-wb.wake:
		}
	}
}

// past is the last hour of counters from storage, one sample per 10 s.
func (wb *wallboard) past(ctx context.Context) ([]wallSample, error) {
	now := wb.s.ui.now()
	times, counts, err := wb.s.store.ActivityHistory(ctx, now.Add(-historyWindow), now, 10*time.Second)
	if err != nil {
		return nil, err
	}
	out := make([]wallSample, len(times))
	for i, at := range times {
		out[i] = wallSample{At: at, Campaigns: make(map[string]sampleCounts, len(counts))}
		for id, series := range counts {
			a := series[i]
			out[i].Campaigns[idString(id)] = sampleCounts{Dials: a.Dials, Answered: a.Answered, Abandoned: a.Abandoned, Connected: a.Connected}
		}
	}
	return out, nil
}

// downsample keeps one sample per step, the last of each step.
func downsample(in []wallSample, step time.Duration) []wallSample {
	out := []wallSample{}
	for i, smp := range in {
		if i == len(in)-1 || in[i+1].At.Truncate(step) != smp.At.Truncate(step) {
			out = append(out, smp)
		}
	}
	return out
}

// snapshot computes the wallboard from storage and the engine, and records the
// counters (once per sampleInterval) and the calls agents finished.
func (wb *wallboard) snapshot(ctx context.Context) (WallboardSnapshot, error) {
	s := wb.s
	now := s.ui.now()
	snap := WallboardSnapshot{At: now, Campaigns: []WallboardCampaign{}, Agents: []WallboardAgent{},
		Trunks: []any{}, TrunkControl: s.cfg.TrunkControl != nil,
		WhatsApp: WallboardWhatsApp{Status: "not_configured"}, Inbound: []dialer.InboundQueue{},
		MaxAbandon: s.limits().MaxAbandon}
	if snap.MaxAbandon == 0 {
		snap.MaxAbandon = campaigns.DefaultMaxAbandon
	}
	lv, err := wb.live(ctx, now)
	if err != nil {
		return snap, err
	}
	snap.Trunks, snap.Inbound = lv.trunks, lv.inbound
	snap.Failovers = counted(ctx, s, lv.failovers)
	if s.cfg.Templates != nil {
		snap.WhatsApp = s.whatsappHealth(ctx, now)
	}
	list, err := s.store.ListCampaigns(ctx, nil)
	if err != nil {
		return snap, err
	}
	if s.cfg.Engine != nil {
		snap.Draining = s.cfg.Engine.Draining()
	}
	live, views := lv.agents, lv.views
	pacers := map[int64][]WallboardPacer{}
	for id, vs := range views {
		for _, v := range vs {
			pacers[id] = append(pacers[id], wallboardPacer(v))
		}
	}
	agents := map[int64]*WallboardAgent{}
	var agentOrder []int64
	sample := wallSample{At: now, Campaigns: map[string]sampleCounts{}}
	var running []int64
	for _, c := range list {
		if c.State == campaigns.StateFinished {
			continue
		}
		wc := WallboardCampaign{ID: c.ID, Name: c.Name, State: c.State, Pacing: c.Pacing, Ladder: c.Ladder,
			AnswerRate: map[string]float64{}, AgentIDs: []string{}, Pacer: []WallboardPacer{}, Node: lv.holder[c.ID]}
		if p, ok := pacers[c.ID]; ok {
			wc.Pacer = p
		}
		for _, v := range views[c.ID] {
			wc.Ringing += v.Ringing
			wc.Waiting += v.Waiting
			if v.Waiting > 0 {
				wc.LongestWaitSeconds = max(wc.LongestWaitSeconds, now.Sub(v.WaitingSince).Seconds())
			}
		}
		users, err := s.store.CampaignAgents(ctx, c.ID)
		if err != nil {
			return snap, err
		}
		for _, u := range users {
			wc.AgentIDs = append(wc.AgentIDs, idString(u.ID))
			a, ok := agents[u.ID]
			if !ok {
				name := u.DisplayName
				if name == "" {
					name = u.Username
				}
				a = &WallboardAgent{ID: u.ID, Username: u.Username, Name: name, State: string(dialer.AgentLoggedOut),
					CampaignIDs: []string{}, Assigned: []string{}}
				agents[u.ID] = a
				agentOrder = append(agentOrder, u.ID)
			}
			a.Assigned = append(a.Assigned, idString(c.ID))
		}
		if c.State == campaigns.StateRunning || c.State == campaigns.StatePaused {
			st, err := s.store.CampaignStats(ctx, c.ID)
			if err != nil {
				return snap, err
			}
			wc.Stats = &st
			for ch, cs := range st.Channels {
				if cs.Attempts > 0 {
					wc.AnswerRate[ch] = kpi.AnswerRate(cs.Reached, cs.Attempts)
				}
			}
			sample.Campaigns[idString(c.ID)] = sampleCounts{Dials: st.Dials, Answered: st.Answered,
				Abandoned: st.Abandoned, Connected: st.Connected}
			wc.Occupancy = occupancy(live, c.ID)
			if wc.Abandonment, err = wb.abandon.get(ctx, s.store, c, st, now); err != nil {
				return snap, err
			}
			running = append(running, c.ID)
		}
		snap.Campaigns = append(snap.Campaigns, wc)
	}
	for _, la := range live {
		a, ok := agents[la.ID]
		if !ok {
			a = &WallboardAgent{ID: la.ID, Name: la.Name, Assigned: []string{}}
			agents[la.ID] = a
			agentOrder = append(agentOrder, la.ID)
		}
		since := la.Since
		a.State, a.Reason, a.Since = string(la.State), la.Reason, &since
		a.SecondsInState = now.Sub(la.Since).Seconds()
		a.CampaignIDs = idStrings(la.Campaigns)
		a.Node = lv.agentNode[la.ID]
	}
	phones, err := s.store.LivePhoneBindings(ctx, now)
	if err != nil {
		return snap, err
	}
	for _, p := range phones { // by agent, the latest refreshed first
		if a, ok := agents[p.AgentID]; ok && a.Phone == nil {
			a.Phone = &WallboardPhone{Node: p.Node, Transport: p.Transport, UserAgent: p.UserAgent, Expires: p.Expires}
		}
	}
	for _, id := range agentOrder {
		snap.Agents = append(snap.Agents, *agents[id])
	}
	wb.abandon.keepOnly(running)
	wb.followCalls(ctx, live, now)

	wb.mu.Lock()
	// One sample per interval of the server's clock, the first one computed in it:
	// a snapshot for every reader would grow the hour's history with the readers.
	if n := len(wb.samples); n == 0 || !wb.samples[n-1].At.Truncate(sampleInterval).Equal(now.Truncate(sampleInterval)) {
		wb.samples = append(wb.samples, sample)
	}
	cut := 0
	for cut < len(wb.samples) && now.Sub(wb.samples[cut].At) > historyWindow {
		cut++
	}
	wb.samples = wb.samples[cut:]
	for i := range snap.Campaigns {
		wc := &snap.Campaigns[i]
		wc.DialsPerMinute = wb.dialRateLocked(idString(wc.ID), now)
		wb.handleFiguresLocked(wc, now)
	}
	wb.mu.Unlock()

	entries, _, err := s.store.ListAudit(ctx, storage.AuditFilter{Limit: 15})
	if err != nil {
		return snap, err
	}
	users, err := s.store.ListUsers(ctx)
	if err != nil {
		return snap, err
	}
	snap.Audit = wallboardAudit(entries, users, list)
	return snap, nil
}

// wallboardAudit turns entries into what the page's sentences need. The full
// before and after stay in the audit API: the wallboard carries the changes.
func wallboardAudit(entries []storage.AuditEntry, users []storage.User, list []campaigns.Campaign) []WallboardAudit {
	byID := make(map[int64]storage.User, len(users))
	for _, u := range users {
		byID[u.ID] = u
	}
	names := make(map[string]string, len(list))
	for _, c := range list {
		names[idString(c.ID)] = c.Name
	}
	out := make([]WallboardAudit, 0, len(entries))
	for _, e := range entries {
		a := WallboardAudit{AuditEntry: e, Changes: auditChanges(e.Before, e.After)}
		if u, ok := byID[e.UserID]; ok && e.UserID != 0 {
			a.UserName, a.UserRole = cmp.Or(u.DisplayName, u.Username), string(u.Role)
		}
		switch e.ObjectType {
		case "campaign":
			a.ObjectName = names[e.ObjectID]
		case "user":
			if id, err := strconv.ParseInt(e.ObjectID, 10, 64); err == nil {
				a.ObjectName = cmp.Or(byID[id].DisplayName, byID[id].Username)
			}
		case "trunk":
			a.ObjectName = e.ObjectID
		}
		var subject struct {
			UserID string `json:"user_id"`
		}
		raw := e.After
		if len(raw) == 0 || string(raw) == "null" {
			raw = e.Before
		}
		if json.Unmarshal(raw, &subject) == nil && subject.UserID != "" {
			if id, err := strconv.ParseInt(subject.UserID, 10, 64); err == nil {
				a.SubjectName = cmp.Or(byID[id].DisplayName, byID[id].Username)
			}
		}
		a.Before, a.After = nil, nil
		out = append(out, a)
	}
	return out
}

// maxAuditChanges bounds the changes one entry lists: a sentence names a few.
const maxAuditChanges = 6

// auditChanges lists the fields that differ between before and after, JSON
// objects compared two levels deep ("pacing.max_ratio"), in path order. An
// entry with no before (a creation, an assignment) lists nothing.
func auditChanges(before, after json.RawMessage) []AuditChange {
	var b, a map[string]any
	if json.Unmarshal(before, &b) != nil || json.Unmarshal(after, &a) != nil || b == nil || a == nil {
		return nil
	}
	flat := func(m map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				for k2, v2 := range sub {
					out[k+"."+k2] = v2
				}
				continue
			}
			out[k] = v
		}
		return out
	}
	fb, fa := flat(b), flat(a)
	var out []AuditChange
	for _, k := range slices.Sorted(maps.Keys(fa)) {
		if k == "updated_at" || k == "version" || reflect.DeepEqual(fb[k], fa[k]) {
			continue
		}
		out = append(out, AuditChange{Field: k, Before: fb[k], After: fa[k]})
		if len(out) == maxAuditChanges {
			break
		}
	}
	return out
}

// occupancy is kpi.OccupancyNow over the agents signed in to the campaign; paused
// agents are not available and count in neither term.
func occupancy(live []dialer.Agent, campaignID int64) float64 {
	handling, ready := 0, 0
	for _, a := range live {
		if !slices.Contains(a.Campaigns, campaignID) {
			continue
		}
		switch a.State {
		case dialer.AgentReserved, dialer.AgentOnCall, dialer.AgentWrapUp:
			handling++
		case dialer.AgentReady:
			ready++
		}
	}
	return kpi.OccupancyNow(handling, ready)
}

// dialRateLocked is the dials of the last minute (or of the samples there are).
func (wb *wallboard) dialRateLocked(id string, now time.Time) float64 {
	if len(wb.samples) < 2 {
		return 0
	}
	last := wb.samples[len(wb.samples)-1]
	first := last
	for i := len(wb.samples) - 1; i >= 0; i-- {
		if now.Sub(wb.samples[i].At) > time.Minute {
			break
		}
		first = wb.samples[i]
	}
	span := last.At.Sub(first.At)
	if span < time.Second {
		return 0
	}
	return float64(last.Campaigns[id].Dials-first.Campaigns[id].Dials) / span.Minutes()
}

func (wb *wallboard) handleFiguresLocked(wc *WallboardCampaign, now time.Time) {
	var handle, wait time.Duration
	n, fast := 0, 0
	for _, h := range wb.done {
		if h.campaignID != wc.ID || now.Sub(h.at) > historyWindow {
			continue
		}
		n++
		handle += h.handle
		wait += h.wait
		if h.wait <= slaThreshold {
			fast++
		}
	}
	wc.HandledCalls = n
	wc.AHTSeconds = kpi.AHT(handle, n).Seconds()
	wc.ASASeconds = kpi.ASA(wait, n).Seconds()
	wc.SLA = kpi.ServiceLevel(fast, n)
}

// followCalls watches agents' calls: when an agent leaves a call's wrap-up, the call
// is read back from storage for its answer, connect and end times.
func (wb *wallboard) followCalls(ctx context.Context, live []dialer.Agent, now time.Time) {
	wb.mu.Lock()
	busy := map[int64]bool{}
	for _, a := range live {
		if a.AttemptID == 0 {
			continue
		}
		switch a.State {
		case dialer.AgentReserved, dialer.AgentOnCall, dialer.AgentWrapUp:
			busy[a.AttemptID] = true
			cs, ok := wb.calls[a.AttemptID]
			if !ok {
				cs = &callSeen{agentID: a.ID}
				wb.calls[a.AttemptID] = cs
			}
			cs.lastSeen = now
			if a.State == dialer.AgentWrapUp && cs.wrapSince.IsZero() {
				cs.wrapSince = a.Since
			}
		}
	}
	var finished []int64
	for id, cs := range wb.calls {
		if !busy[id] {
			finished = append(finished, id)
		} else if now.Sub(cs.lastSeen) > historyWindow {
			delete(wb.calls, id)
		}
	}
	wb.mu.Unlock()
	for _, id := range finished {
		a, err := wb.s.store.GetAttempt(ctx, id)
		wb.mu.Lock()
		cs := wb.calls[id]
		delete(wb.calls, id)
		if err == nil && cs != nil && a.AnswerAt != nil && a.ConnectAt != nil {
			end := now
			if a.EndAt != nil && cs.wrapSince.IsZero() {
				end = *a.EndAt
			}
			wb.done = append(wb.done, handled{at: now, campaignID: a.CampaignID,
				handle: end.Sub(*a.ConnectAt), wait: a.ConnectAt.Sub(*a.AnswerAt)})
		}
		wb.mu.Unlock()
	}
	wb.mu.Lock()
	cut := 0
	for cut < len(wb.done) && now.Sub(wb.done[cut].at) > historyWindow {
		cut++
	}
	wb.done = wb.done[cut:]
	wb.mu.Unlock()
}

// getWallboard answers the snapshot of the last second, computed once for every
// reader of that second (a wall of supervisors' pages polling costs one).
func (s *Server) getWallboard(w http.ResponseWriter, r *http.Request, _ principal) error {
	body, err := s.ui.wall.current(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
	return nil
}

// streamWallboard pushes a snapshot every second as server-sent events, after one
// "history" event with the last hour's counters (one sample per 10 s).
func (s *Server) streamWallboard(w http.ResponseWriter, r *http.Request, _ principal) error {
	// Only an event-stream client (EventSource sends this) gets the endless answer;
	// anything else would wait forever for a body that never ends.
	if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		return errorf(http.StatusNotAcceptable, "not_acceptable", "this is a stream: send Accept: text/event-stream (GET /api/v1/wallboard gives one snapshot)")
	}
	rc := http.NewResponseController(w)
	ch, history, stop := s.ui.wall.subscribe(r.Context())
	defer stop()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // proxies must not hold events back
	w.WriteHeader(http.StatusOK)
	hb, err := json.Marshal(history)
	if err != nil {
		return nil
	}
	if _, err := fmt.Fprintf(w, "retry: 2000\nevent: history\ndata: %s\n\n", hb); err != nil {
		return nil
	}
	if err := rc.Flush(); err != nil {
		return nil
	}
	for {
		select {
		case <-r.Context().Done():
			return nil
		case b := <-ch:
			if _, err := fmt.Fprintf(w, "event: snapshot\ndata: %s\n\n", b); err != nil {
				return nil
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
		}
	}
}

// updateTrunk takes a trunk out of service or puts it back, here at once and on
// every other node within RunCluster's poll.
func (s *Server) updateTrunk(w http.ResponseWriter, r *http.Request, p principal) error {
	name := r.PathValue("id")
	var in struct {
		OutOfService *bool `json:"out_of_service"`
	}
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.OutOfService == nil {
		return unprocessable("out_of_service: required (true or false)")
	}
	if s.cfg.TrunkControl == nil {
		return errorf(http.StatusNotImplemented, "not_implemented", "this server cannot take trunks out of service yet")
	}
	mu := &s.ui.wall.cluster.trunks
	mu.Lock()
	defer mu.Unlock()
	if err := s.cfg.TrunkControl.SetTrunkOutOfService(name, *in.OutOfService); err != nil {
		if errors.Is(err, ErrNoSuchTrunk) {
			return notFound("no trunk named " + strconv.Quote(name))
		}
		return err
	}
	// Kept, with its audit entry, for every node: the trunk is the carrier,
	// which each node reaches through its own SIP stack (RunCluster applies it
	// there), and a node that starts later takes it as it is.
	if _, err := s.store.SetTrunkService(r.Context(), p.actor(), name, *in.OutOfService); err != nil {
		return fmt.Errorf("the trunk changed on this node only: %w", err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "out_of_service": *in.OutOfService})
	return nil
}

// whatsappHealth judges the WhatsApp API by the last ten minutes of sends: ok when
// none failed, degraded when some did, failing when none went through.
func (s *Server) whatsappHealth(ctx context.Context, now time.Time) WallboardWhatsApp {
	h := WallboardWhatsApp{Configured: true, Status: "ok"}
	sent, failed, err := s.store.OutboxHealth(ctx, "whatsapp.", now.Add(-10*time.Minute))
	switch {
	case err != nil:
		h.Status = "unknown"
	case failed > 0 && sent == 0:
		h.Status = "failing"
	case failed > 0:
		h.Status = "degraded"
	}
	return h
}

// abandonTTL is how long the wallboard shows a campaign's abandonment before it
// reads it again: the read scans 30 days of answered calls, and the wallboard is
// computed every second for every running campaign.
const abandonTTL = 15 * time.Second

// abandonCache keeps each running campaign's abandonment for the wallboard, read
// again after ttl, or at once when the campaign's count of answered or abandoned
// calls (which the wallboard reads every second anyway) is no longer the one it
// was read with. A ttl of 0 reads it every time.
type abandonCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	entries map[int64]abandonEntry // by campaign
}

type abandonEntry struct {
	read time.Time
	key  abandonKey
	a    WallboardAbandonment
}

// abandonKey is what the figures were read with: a change in any is a change in them.
type abandonKey struct {
	answered, abandoned int
	zone                string
}

// get returns c's abandonment at now, st being c's figures read at now.
func (ac *abandonCache) get(ctx context.Context, store storage.ComplianceStore, c campaigns.Campaign, st storage.CampaignStats, now time.Time) (*WallboardAbandonment, error) {
	key := abandonKey{answered: st.Answered, abandoned: st.Abandoned, zone: c.Schedule.Timezone}
	ac.mu.Lock()
	e, ok := ac.entries[c.ID]
	ac.mu.Unlock()
	if !ok || e.key != key || now.Before(e.read) || now.Sub(e.read) >= ac.ttl {
		a, err := wallAbandonment(ctx, store, c, now)
		if err != nil {
			return nil, err
		}
		e = abandonEntry{read: now, key: key, a: *a}
		ac.mu.Lock()
		ac.entries[c.ID] = e
		ac.mu.Unlock()
	}
	a := e.a
	a.Cap = c.Pacing.TargetAbandon // the campaign's own, as it is now
	return &a, nil
}

// keepOnly forgets the campaigns not in ids (stopped, finished or deleted).
func (ac *abandonCache) keepOnly(ids []int64) {
	ac.mu.Lock()
	defer ac.mu.Unlock()
	for id := range ac.entries {
		if !slices.Contains(ids, id) {
			delete(ac.entries, id)
		}
	}
}

// wallAbandonment reads c's abandonment at now for the wallboard.
func wallAbandonment(ctx context.Context, store storage.ComplianceStore, c campaigns.Campaign, now time.Time) (*WallboardAbandonment, error) {
	loc, err := time.LoadLocation(c.Schedule.Timezone)
	if err != nil {
		loc = time.UTC
	}
	a, err := store.Abandonment(ctx, c.ID, now, loc)
	if err != nil {
		return nil, err
	}
	wa := &WallboardAbandonment{Days30: a.Days30, Hours24: a.Hours24, Cap: c.Pacing.TargetAbandon}
	if n := len(a.Days); n > 0 {
		wa.Today = a.Days[n-1].AbandonFigures
	}
	return wa, nil
}
