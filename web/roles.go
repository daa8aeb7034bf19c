package web

import (
	"fmt"
	"slices"
	"strings"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/storage"
)

// The roles as the README gives them are one table in two parts: which role may
// call which operation is the route table (Server.routes, with these role lists),
// and what a role may change inside a campaign is campaignEdits. The OpenAPI
// document carries both (x-roles and x-role-rules) and openapi_test.go checks
// that it says the same as the code.
var (
	allRoles    = []storage.Role{storage.RoleAdmin, storage.RoleSupervisor, storage.RoleSales, storage.RoleAgent}
	staffRoles  = []storage.Role{storage.RoleAdmin, storage.RoleSupervisor, storage.RoleSales}
	adminOnly   = []storage.Role{storage.RoleAdmin}
	supervisors = []storage.Role{storage.RoleAdmin, storage.RoleSupervisor}
	salesRoles  = []storage.Role{storage.RoleAdmin, storage.RoleSales}
	agentOnly   = []storage.Role{storage.RoleAgent}
)

// campaignEdit is what one role may change in a campaign it may edit.
type campaignEdit struct {
	// states are the campaign states the role may change a campaign in. Nobody
	// changes a finished or archived campaign.
	states []campaigns.State
	// pacing says whether the role may set pacing: without it, a new campaign's
	// pacing must be the defaults and an existing one's stays as it is.
	pacing bool
}

// campaignEdits is the field-level half of the role table: supervisors run
// campaigns, so they change them in any live state, pacing included; sales
// prepares drafts and leaves pacing to supervisors.
func campaignEdits() map[storage.Role]campaignEdit {
	live := []campaigns.State{campaigns.StateDraft, campaigns.StateRunning, campaigns.StatePaused}
	return map[storage.Role]campaignEdit{
		storage.RoleAdmin:      {states: live, pacing: true},
		storage.RoleSupervisor: {states: live, pacing: true},
		storage.RoleSales:      {states: []campaigns.State{campaigns.StateDraft}},
	}
}

// campaignEditOperations are the operations that apply campaignEdits on top of
// their route's roles.
var campaignEditOperations = []string{
	"POST /api/v1/campaigns",
	"PATCH /api/v1/campaigns/{id}",
	"PUT /api/v1/campaigns/{id}/safe_harbour",
	"DELETE /api/v1/campaigns/{id}/safe_harbour",
}

// roleRules is the text of x-role-rules for the operations in
// campaignEditOperations: for each role limited by campaignEdits, what it may do.
func roleRules() map[string]string {
	out := map[string]string{}
	edits := campaignEdits()
	for role, e := range edits {
		var limits []string
		if !slices.Equal(e.states, edits[storage.RoleAdmin].states) {
			names := make([]string, len(e.states))
			for i, st := range e.states {
				names[i] = string(st)
			}
			limits = append(limits, "changes only "+strings.Join(names, " or ")+" campaigns")
		}
		if !e.pacing {
			limits = append(limits, "may not set pacing (a new campaign's pacing must be the defaults)")
		}
		if len(limits) > 0 {
			out[string(role)] = strings.Join(limits, "; ")
		}
	}
	return out
}

// mayChangeCampaign refuses when p's role may not change a campaign in c's state,
// and everyone when it is archived.
// A state no role may change in (finished) is left to the caller, which answers
// it as a conflict for everyone.
func mayChangeCampaign(p principal, c campaigns.Campaign) error {
	if c.ArchivedAt != nil {
		return conflict(fmt.Sprintf("campaign %d is archived: it cannot be changed", c.ID))
	}
	edits := campaignEdits()
	e, ok := edits[p.Role]
	if !ok {
		return forbidden(fmt.Sprintf("role %s may not change campaigns", p.Role))
	}
	if !slices.Contains(e.states, c.State) && slices.Contains(edits[storage.RoleAdmin].states, c.State) {
		return forbidden(fmt.Sprintf("role %s may not change a %s campaign (campaign %d); a supervisor can", p.Role, c.State, c.ID))
	}
	return nil
}

// maySetPacing refuses when p's role may not set pacing and after's pacing
// differs from before's, naming every field that differs.
func maySetPacing(p principal, before, after campaigns.Pacing) error {
	if e := campaignEdits()[p.Role]; e.pacing {
		return nil
	}
	changed := pacingDiff(before, after)
	if len(changed) == 0 {
		return nil
	}
	return forbidden(fmt.Sprintf("role %s may not set pacing: %s (pacing is for supervisors)", p.Role, strings.Join(changed, ", ")))
}

// pacingDiff names, as pacing.<json name>, the pacing settings that differ.
func pacingDiff(a, b campaigns.Pacing) []string {
	var out []string
	for _, f := range []struct {
		name string
		same bool
	}{
		{"mode", a.Mode == b.Mode},
		{"target_abandon", a.TargetAbandon == b.TargetAbandon},
		{"max_ratio", a.MaxRatio == b.MaxRatio},
		{"max_in_flight", a.MaxInFlight == b.MaxInFlight},
		{"ring_timeout", a.RingTimeout == b.RingTimeout},
		{"min_ring_timeout", a.MinRingTimeout == b.MinRingTimeout},
	} {
		if !f.same {
			out = append(out, "pacing."+f.name)
		}
	}
	return out
}
