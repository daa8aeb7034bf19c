package dialer

import (
	"context"
	"slices"
	"time"

	"github.com/turbina-dialer/turbina/storage"
)

// A run that ends while agents are in wrap-up after its calls (its campaign
// handed over to another node, its node's drain cut by the drain timeout, its
// process stopped) leaves their dispositions to give: those calls are ended,
// connected, with their agent and no disposition. The campaign's next run, on
// whichever node, reads them as it starts (orphans) and gives each back to its
// agent once the agent is logged in to the campaign there and free (the page
// followed the campaign and logged in again): the agent is in wrap-up for that
// call again, since the call's end, with its screen-pop, and gives its
// disposition there. A disposition is recorded once (storage.ErrDisposed): one
// the agent gave on the old node meanwhile stands. One whose agent does not
// come back within the campaign's wrap-up timeout is closed as the timeout
// closes any.

// loadOrphans reads the wrap-ups the campaign's last run left open, those
// that have not reached the wrap-up timeout: an agent's latest one each.
func (r *run) loadOrphans(ctx context.Context) {
	since := r.e.cfg.Now().Add(-time.Duration(r.campaign.WrapUp))
	open, err := r.e.store.OpenWrapUps(ctx, r.id, since)
	if err != nil {
		if ctx.Err() == nil {
			r.e.log.Error("wrap-ups left open by the campaign's last run: not given back", "campaign", r.id, "err", err)
		}
		return
	}
	for _, a := range open {
		if a.EndAt == nil {
			continue
		}
		if r.orphans == nil {
			r.orphans = map[int64]storage.Attempt{}
		}
		if prev, ok := r.orphans[a.AgentID]; !ok || prev.ID < a.ID {
			r.orphans[a.AgentID] = a
		}
	}
	if len(r.orphans) > 0 {
		r.e.log.Info("wrap-ups left open by the campaign's last run: given back to their agents when they log in here", "campaign", r.id, "wrap_ups", len(r.orphans))
	}
}

// adoptWrapUps gives each wrap-up left open back to its agent when the agent
// is logged in to the campaign here and free, and closes those whose timeout
// passed.
func (r *run) adoptWrapUps(ctx context.Context, now time.Time) {
	for agentID, at := range r.orphans {
		a, ok := r.e.agents.Get(agentID)
		switch {
		case ok && a.State == AgentWrapUp && a.AttemptID == at.ID:
			// Still in it on this node (the campaign's last run was here):
			// this run's timeout closes it.
			r.wrapping[agentID] = wrapUp{attemptID: at.ID, channel: at.Channel}
		case now.Sub(*at.EndAt) >= time.Duration(r.campaign.WrapUp):
			r.timeOutWrapUp(ctx, at.ID, now)
		case ok && (a.State == AgentPaused || a.State == AgentReady) && slices.Contains(a.Campaigns, r.id):
			ct, err := r.e.store.GetContact(ctx, at.ContactID)
			if err != nil {
				r.e.log.Warn("give a wrap-up back to its agent: tried again", "campaign", r.id, "attempt", at.ID, "err", err)
				continue
			}
			connected := *at.EndAt
			if at.ConnectAt != nil {
				connected = *at.ConnectAt
			}
			pop := r.buildPop(ctx, at.ID, ct, at.Channel, at.Direction, connected, r.e.log)
			if !r.e.agents.resumeWrapUp(agentID, r.id, at.ID, at.Channel, *at.EndAt, pop) {
				continue // busy meanwhile: tried again
			}
			r.wrapping[agentID] = wrapUp{attemptID: at.ID, channel: at.Channel}
			r.e.events.publish(agentID, AgentEvent{Kind: EventScreenPop, At: now, ScreenPop: &pop})
			r.e.log.Info("wrap-up given back to its agent", "campaign", r.id, "attempt", at.ID, "agent", agentID)
		default:
			continue // not here yet, or on a call
		}
		delete(r.orphans, agentID)
	}
}
