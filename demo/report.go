package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/sip/carrier"
	"github.com/turbina-dialer/turbina/kpi"
	"github.com/turbina-dialer/turbina/storage"
)

// Report is the summary of a headless demo run. The JSON field names are a
// contract: scripts and tests read them.
type Report struct {
	DurationS float64 `json:"duration_s"`
	Agents    int     `json:"agents"`
	// Channels counts attempts per ladder channel and how many reached the contact
	// (a call connected or abandoned, a template sent).
	Channels map[string]storage.ChannelStats `json:"channels"`
	// Calls over the call channels: dialled, answered, connected, abandoned.
	Dials     int `json:"dials"`
	Answered  int `json:"answered"`
	Connected int `json:"connected"`
	Abandoned int `json:"abandoned"`
	// AbandonRate is kpi.AbandonRate: abandoned over answered calls.
	AbandonRate float64 `json:"abandon_rate"`
	// Occupancy is kpi.Occupancy over the simulated agents' logged-in time:
	// (talk + wrap-up) / (talk + wrap-up + ready idle).
	Occupancy float64 `json:"occupancy"`
	// TMAS is kpi.AHT, the average handle time (talk and wrap-up) of a call, in
	// seconds.
	TMAS float64 `json:"tma_s"`
	// TMES is kpi.ASA, the average wait of an answered person for an agent, in
	// seconds.
	TMES float64 `json:"tme_s"`
	// Contacts counts the campaign's contacts by status.
	Contacts map[string]int `json:"contacts"`
	// TrunkCutAtS is when the carrier was cut, in seconds from the start.
	TrunkCutAtS *float64 `json:"trunk_cut_at_s,omitempty"`
	// AfterCut counts, per channel, the attempts started after the cut.
	AfterCut map[string]storage.ChannelStats `json:"after_cut,omitempty"`
	// Failover is how fast the cut's contacts reached WhatsApp; nil without a cut.
	Failover *Failover `json:"failover,omitempty"`
	// Carrier is what the simulated carrier saw.
	Carrier carrier.Stats `json:"carrier"`
}

// Failover measures a cut from the records: when the first WhatsApp call left,
// and what became of each contact whose SIP call was under way at the cut.
type Failover struct {
	// FirstWhatsAppCallS is the time from the cut to the first WhatsApp call
	// placed after it, in seconds; nil when none was.
	FirstWhatsAppCallS *float64 `json:"first_whatsapp_call_s"`
	// Caught lists the contacts whose SIP call was under way at the cut, by contact.
	Caught []CaughtContact `json:"caught"`
	// CaughtCalledS are the caught contacts' times to their WhatsApp call, in
	// seconds, sorted; a contact never called on WhatsApp has none.
	CaughtCalledS []float64 `json:"caught_called_s"`
}

// CaughtContact is one contact whose SIP call was under way when the carrier was cut.
type CaughtContact struct {
	ContactID int64 `json:"contact_id,string"`
	// SIPOutcome is how the caught SIP attempt was recorded (trunk_down, never
	// no_answer, when the engine is honest).
	SIPOutcome string `json:"sip_outcome"`
	// Connected reports that the SIP call was connected to an agent at the cut.
	Connected bool `json:"connected"`
	// HangupBy is who ended the caught SIP call: trunk for a conversation its
	// trunk's death cut, agent or local for one our side hung up.
	HangupBy string `json:"hangup_by,omitempty"`
	// ToWhatsAppS is the time from the cut to the contact's first WhatsApp call
	// after it, in seconds; nil when it got none.
	ToWhatsAppS *float64 `json:"to_whatsapp_s"`
	// ResumeOutcome is, for a conversation the trunk cut, how its call back on
	// WhatsApp (resumed_from) ended; Resumed reports that the person answered it
	// and was back with the agent.
	ResumeOutcome string `json:"resume_outcome,omitempty"`
	Resumed       bool   `json:"resumed"`
	// NotCalledWhy says why a caught contact was rightly not called on WhatsApp:
	// a conversation our side hung up before the trunk's death was found ended
	// there, as any conversation the agent ends. Empty when it was called, or
	// when nothing explains that it was not.
	NotCalledWhy string `json:"not_called_why,omitempty"`
}

// hungUpByUs is the reason a conversation ended by our side is not called back.
const hungUpByUs = "hung up by the agent before the trunk's death was found"

// failover reads a cut at cutAt out of every contact's attempts.
func failover(cutAt time.Time, attemptsByContact map[int64][]storage.Attempt) *Failover {
	f := &Failover{Caught: []CaughtContact{}, CaughtCalledS: []float64{}}
	since := func(t time.Time) *float64 { s := t.Sub(cutAt).Seconds(); return &s }
	var first time.Time
	for _, id := range slices.Sorted(maps.Keys(attemptsByContact)) {
		attempts := attemptsByContact[id]
		var caught *CaughtContact
		var caughtID int64
		var toWA time.Time
		for _, a := range attempts {
			placed := !slices.Contains(campaigns.UnplacedOutcomes(), campaigns.Outcome(a.Outcome))
			if a.Channel == campaigns.ChannelSIP && a.CreatedAt.Before(cutAt) && (a.EndAt == nil || !a.EndAt.Before(cutAt)) && placed {
				caught = &CaughtContact{ContactID: id, SIPOutcome: a.Outcome, HangupBy: a.HangupBy,
					Connected: a.ConnectAt != nil && a.ConnectAt.Before(cutAt)}
				caughtID = a.ID
			}
			if caught != nil && a.ResumedFrom != 0 && a.ResumedFrom == caughtID {
				caught.ResumeOutcome, caught.Resumed = a.Outcome, a.AnswerAt != nil
			}
			if a.Channel == campaigns.ChannelWhatsAppCall && !a.CreatedAt.Before(cutAt) && placed {
				if toWA.IsZero() || a.CreatedAt.Before(toWA) {
					toWA = a.CreatedAt
				}
			}
		}
		if !toWA.IsZero() && (first.IsZero() || toWA.Before(first)) {
			first = toWA
		}
		if caught == nil {
			continue
		}
		switch {
		case !toWA.IsZero():
			caught.ToWhatsAppS = since(toWA)
			f.CaughtCalledS = append(f.CaughtCalledS, *caught.ToWhatsAppS)
		case caught.Connected && (caught.HangupBy == "agent" || caught.HangupBy == "local"):
			caught.NotCalledWhy = hungUpByUs
		}
		f.Caught = append(f.Caught, *caught)
	}
	if !first.IsZero() {
		f.FirstWhatsAppCallS = since(first)
	}
	slices.Sort(f.CaughtCalledS)
	return f
}

// BuildReport reads the run's figures from storage, the simulated agents and the
// world, once the engine has stopped (every attempt closed, the figures final).
// The run took ran from started.
func BuildReport(ctx context.Context, store *storage.DB, campaignID int64, team *Team, world *World, ran time.Duration, started time.Time) (Report, error) {
	st, err := store.CampaignStats(ctx, campaignID)
	if err != nil {
		return Report{}, fmt.Errorf("campaign stats: %w", err)
	}
	rep := Report{
		DurationS: ran.Seconds(), Agents: team.Len(), Channels: st.Channels,
		Dials: st.Dials, Answered: st.Answered, Connected: st.Connected, Abandoned: st.Abandoned,
		AbandonRate: kpi.AbandonRate(st.Abandoned, st.Answered),
		Contacts:    st.Contacts, Carrier: world.CarrierStats(),
	}
	agents := team.Totals(time.Now())
	// Simulated agents never pause: their logged-in time is talk, wrap-up and
	// ready idle.
	rep.Occupancy = kpi.Occupancy(agents.Talk, agents.Wrap, agents.LoggedIn-agents.Talk-agents.Wrap)
	rep.TMAS = kpi.AHT(agents.Talk+agents.Wrap, agents.Calls).Seconds()
	cutAt, cut := world.FirstCut()
	if cut {
		s := cutAt.Sub(started).Seconds()
		rep.TrunkCutAtS = &s
		rep.AfterCut = map[string]storage.ChannelStats{}
		for _, ch := range reportChannels {
			rep.AfterCut[string(ch)] = storage.ChannelStats{}
		}
	}
	contacts, err := AllContacts(ctx, store, campaignID)
	if err != nil {
		return rep, err
	}
	var waits time.Duration
	var waited int
	byContact := make(map[int64][]storage.Attempt, len(contacts))
	for _, c := range contacts {
		attempts, err := store.ListAttempts(ctx, c.ID)
		if err != nil {
			return rep, fmt.Errorf("contact %d's attempts: %w", c.ID, err)
		}
		byContact[c.ID] = attempts
		for _, a := range attempts {
			if a.AnswerAt != nil && a.ConnectAt != nil {
				waits += a.ConnectAt.Sub(*a.AnswerAt)
				waited++
			}
			if cut && !a.CreatedAt.Before(cutAt) && !slices.Contains(campaigns.UnplacedOutcomes(), campaigns.Outcome(a.Outcome)) {
				s := rep.AfterCut[string(a.Channel)]
				s.Attempts++
				if campaigns.Outcome(a.Outcome).Reached() {
					s.Reached++
				}
				rep.AfterCut[string(a.Channel)] = s
			}
		}
	}
	rep.TMES = kpi.ASA(waits, waited).Seconds()
	if cut {
		rep.Failover = failover(cutAt, byContact)
	}
	return rep, nil
}

// WriteJSON prints the summary as one JSON object.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	return enc.Encode(r)
}

// WriteTable prints the summary for a person.
func (r Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nTurbina demo: %.0f s, %d simulated agents", r.DurationS, r.Agents)
	if r.TrunkCutAtS != nil {
		fmt.Fprintf(&b, ", carrier cut at %.0f s", *r.TrunkCutAtS)
	}
	b.WriteString("\n\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := "channel\tattempts\treached\t"
	if r.AfterCut != nil {
		header += "attempts after cut\treached after cut\t"
	}
	fmt.Fprintln(tw, header)
	for _, ch := range reportChannels {
		s := r.Channels[string(ch)]
		line := fmt.Sprintf("%s\t%d\t%d\t", ch, s.Attempts, s.Reached)
		if r.AfterCut != nil {
			a := r.AfterCut[string(ch)]
			line += fmt.Sprintf("%d\t%d\t", a.Attempts, a.Reached)
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	if f := r.Failover; f != nil {
		b.WriteString("\n  failover        ")
		if f.FirstWhatsAppCallS != nil {
			fmt.Fprintf(&b, "first WhatsApp call %.2f s after the cut", *f.FirstWhatsAppCallS)
		} else {
			b.WriteString("no WhatsApp call after the cut")
		}
		fmt.Fprintf(&b, "; %s under way at the cut, %d called on WhatsApp", count(len(f.Caught), "call", "calls"), len(f.CaughtCalledS))
		if n := len(f.CaughtCalledS); n > 0 {
			fmt.Fprintf(&b, " (median %.2f s, slowest %.2f s)", f.CaughtCalledS[n/2], f.CaughtCalledS[n-1])
		}
		b.WriteString("\n")
		outcomes := map[string]int{}
		for _, c := range f.Caught {
			outcomes[c.SIPOutcome]++
		}
		if len(outcomes) > 0 {
			b.WriteString("                  recorded as")
			for _, o := range slices.Sorted(maps.Keys(outcomes)) {
				fmt.Fprintf(&b, " %s %d", o, outcomes[o])
			}
			b.WriteString("\n")
		}
		var cut, resumed, ours, unexplained int
		for _, c := range f.Caught {
			switch {
			case c.HangupBy == "trunk":
				cut++
				if c.Resumed {
					resumed++
				}
			case c.NotCalledWhy != "":
				ours++
			case c.ToWhatsAppS == nil:
				unexplained++
			}
		}
		if cut > 0 {
			fmt.Fprintf(&b, "                  %s cut by the trunk, %d resumed on WhatsApp with their agent\n", count(cut, "conversation", "conversations"), resumed)
		}
		if ours > 0 {
			fmt.Fprintf(&b, "                  %d not called on WhatsApp: %s\n", ours, hungUpByUs)
		}
		if unexplained > 0 {
			fmt.Fprintf(&b, "                  %d not called on WhatsApp, for no reason the records give\n", unexplained)
		}
	}
	fmt.Fprintf(&b, "\n  calls dialled   %d (answered %d, connected %d)\n", r.Dials, r.Answered, r.Connected)
	fmt.Fprintf(&b, "  abandoned       %d (%.1f%% of answered)\n", r.Abandoned, 100*r.AbandonRate)
	fmt.Fprintf(&b, "  occupancy       %.0f%% (agents' talk and wrap-up time / logged-in time)\n", 100*r.Occupancy)
	fmt.Fprintf(&b, "  TMA             %.1f s (average handle time: talk and wrap-up)\n", r.TMAS)
	fmt.Fprintf(&b, "  TME             %.2f s (average wait from answer to agent)\n", r.TMES)
	fmt.Fprintf(&b, "  carrier         %d INVITEs: %d answered, %d busy, %d rang out, %d failed, %d invalid\n\n",
		r.Carrier.Invites, r.Carrier.Answered, r.Carrier.Busy, r.Carrier.RingOuts, r.Carrier.Failed, r.Carrier.Invalid)
	_, err := io.WriteString(w, b.String())
	return err
}

// count writes n with the noun's singular or plural.
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
