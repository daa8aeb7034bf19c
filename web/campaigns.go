package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/storage"
)

// campaignInput is a campaign as clients send it: absent fields keep their value
// (the default on create, the stored one on update).
type campaignInput struct {
	Name           *string                   `json:"name"`
	CallerID       *string                   `json:"caller_id"`
	DefaultCountry *string                   `json:"default_country"`
	Schedule       *campaigns.Schedule       `json:"schedule"`
	Window         *windowInput              `json:"calling_window"`
	CallingHours   *campaigns.WeeklyHours    `json:"calling_hours"`
	Holidays       *campaigns.Holidays       `json:"holidays"`
	Ladder         []campaigns.Rung          `json:"ladder"`
	Pacing         *pacingInput              `json:"pacing"`
	Dispositions   []campaigns.Disposition   `json:"dispositions"`
	WrapUp         *campaigns.Duration       `json:"wrap_up"`
	AMD            *campaigns.AMD            `json:"amd"`
	Record         *bool                     `json:"record"`
	CallPermission *campaigns.CallPermission `json:"call_permission"`
	RequireConsent *bool                     `json:"require_consent"`
	Script         *string                   `json:"script"`
}

type windowInput struct {
	Start *campaigns.ClockTime `json:"start"`
	End   *campaigns.ClockTime `json:"end"`
}

type pacingInput struct {
	Mode          *campaigns.PacingMode `json:"mode"`
	TargetAbandon *float64              `json:"target_abandon"`
	MaxRatio      *float64              `json:"max_ratio"`
	MaxInFlight   *int                  `json:"max_in_flight"`
	// RingTimeout and MinRingTimeout are duration text ("20s") or a number of seconds.
	RingTimeout    *campaigns.Duration `json:"ring_timeout"`
	MinRingTimeout *campaigns.Duration `json:"min_ring_timeout"`
}

// cleanName removes from the name sent what must not be shown (campaigns.CleanName)
// and says what it removed, for the answer.
func (in *campaignInput) cleanName() *campaigns.NameCleaning {
	if in.Name == nil {
		return nil
	}
	clean, rep := campaigns.CleanName(*in.Name)
	in.Name = &clean
	return rep
}

// campaignAnswer is a campaign as created or changed, with what was removed from
// the name sent, if anything.
type campaignAnswer struct {
	campaigns.Campaign
	NameCleaned *campaigns.NameCleaning `json:"name_cleaned,omitempty"`
}

func set[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

func (in pacingInput) apply(p *campaigns.Pacing) {
	set(&p.Mode, in.Mode)
	set(&p.TargetAbandon, in.TargetAbandon)
	set(&p.MaxRatio, in.MaxRatio)
	set(&p.MaxInFlight, in.MaxInFlight)
	set(&p.RingTimeout, in.RingTimeout)
	set(&p.MinRingTimeout, in.MinRingTimeout)
}

func (in campaignInput) apply(c *campaigns.Campaign) {
	set(&c.Name, in.Name)
	set(&c.CallerID, in.CallerID)
	oldCountry := c.DefaultCountry
	set(&c.DefaultCountry, in.DefaultCountry)
	c.DefaultCountry = strings.ToUpper(c.DefaultCountry)
	set(&c.Schedule, in.Schedule)
	// The schedule zone follows the country unless the client sets it or set it
	// before (it then differs from the old country's zone).
	if (in.Schedule == nil && c.Schedule.Timezone == campaigns.CountryTimezone(oldCountry)) ||
		(in.Schedule != nil && in.Schedule.Timezone == "") {
		c.Schedule.Timezone = campaigns.CountryTimezone(c.DefaultCountry)
	}
	if in.Window != nil {
		set(&c.Window.Start, in.Window.Start)
		set(&c.Window.End, in.Window.End)
		// The legacy window is every day: it replaces any weekly hours.
		c.WeekHours = nil
	}
	if in.CallingHours != nil {
		h := *in.CallingHours
		c.WeekHours = &h
	}
	if in.Holidays != nil {
		c.Holidays = *in.Holidays
		if c.Holidays.National == nil {
			on := true
			c.Holidays.National = &on
		}
	}
	if in.Ladder != nil {
		c.Ladder = in.Ladder
	}
	if in.Pacing != nil {
		in.Pacing.apply(&c.Pacing)
	}
	if in.Dispositions != nil {
		c.Dispositions = in.Dispositions
	}
	set(&c.WrapUp, in.WrapUp)
	set(&c.AMD, in.AMD)
	set(&c.Record, in.Record)
	set(&c.CallPermission, in.CallPermission)
	set(&c.RequireConsent, in.RequireConsent)
	set(&c.Script, in.Script)
}

// limits are the engine's bounds every campaign is checked against.
func (s *Server) limits() campaigns.Limits {
	return campaigns.Limits{MaxAbandon: s.cfg.MaxAbandon}
}

func (s *Server) createCampaign(w http.ResponseWriter, r *http.Request, p principal) error {
	var in campaignInput
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	cleaned := in.cleanName()
	var c campaigns.Campaign
	c.ApplyDefaults()
	defaults := c.Pacing
	in.apply(&c)
	if err := maySetPacing(p, defaults, c.Pacing); err != nil {
		return err
	}
	if err := s.limits().Check(&c); err != nil {
		return err
	}
	if err := s.store.CreateCampaign(r.Context(), p.actor(), &c); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, campaignAnswer{Campaign: c, NameCleaned: cleaned})
	return nil
}

// campaignFor loads a campaign the caller may see: agents only see the campaigns
// they are assigned to.
func (s *Server) campaignFor(ctx context.Context, p principal, id int64) (campaigns.Campaign, error) {
	c, err := s.store.GetCampaign(ctx, id)
	if err != nil {
		return c, err
	}
	if p.Role == storage.RoleAgent {
		ids, err := s.store.AgentCampaigns(ctx, p.ID)
		if err != nil {
			return c, err
		}
		for _, allowed := range ids {
			if allowed == id {
				return c, nil
			}
		}
		return c, forbidden(fmt.Sprintf("agent %s is not assigned to campaign %d", p.Username, id))
	}
	return c, nil
}

func (s *Server) campaignFromPath(r *http.Request, p principal) (campaigns.Campaign, error) {
	id, err := pathID(r, "id")
	if err != nil {
		return campaigns.Campaign{}, err
	}
	return s.campaignFor(r.Context(), p, id)
}

func (s *Server) listCampaigns(w http.ResponseWriter, r *http.Request, p principal) error {
	var ids []int64
	if p.Role == storage.RoleAgent {
		var err error
		if ids, err = s.store.AgentCampaigns(r.Context(), p.ID); err != nil {
			return err
		}
	}
	list, err := s.store.ListCampaigns(r.Context(), ids)
	if err != nil {
		return err
	}
	if st := r.URL.Query().Get("state"); st != "" {
		filtered := list[:0]
		for _, c := range list {
			if string(c.State) == st {
				filtered = append(filtered, c)
			}
		}
		list = filtered
	}
	writeJSON(w, http.StatusOK, map[string]any{"campaigns": list})
	return nil
}

func (s *Server) getCampaign(w http.ResponseWriter, r *http.Request, p principal) error {
	c, err := s.campaignFromPath(r, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) updateCampaign(w http.ResponseWriter, r *http.Request, p principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var in campaignInput
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	cleaned := in.cleanName()
	c, err := s.store.UpdateCampaign(r.Context(), p.actor(), id, "campaign.update", func(c *campaigns.Campaign) error {
		if c.State == campaigns.StateFinished {
			return conflict("a finished campaign cannot be changed")
		}
		if err := mayChangeCampaign(p, *c); err != nil {
			return err
		}
		before := c.Pacing
		in.apply(c)
		if err := maySetPacing(p, before, c.Pacing); err != nil {
			return err
		}
		return s.limits().Check(c)
	})
	if err != nil {
		return err
	}
	s.campaignChanged()
	writeJSON(w, http.StatusOK, campaignAnswer{Campaign: c, NameCleaned: cleaned})
	return nil
}

// archiveCampaign is DELETE of a campaign: it leaves every list and closes to
// changes, but its contacts and attempts stay for reports and the law's records,
// so deleting never erases what was dialled.
func (s *Server) archiveCampaign(w http.ResponseWriter, r *http.Request, p principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	_, err = s.store.ArchiveCampaign(r.Context(), p.actor(), id, func(c campaigns.Campaign) error {
		if c.State == campaigns.StateRunning || c.State == campaigns.StatePaused {
			return conflict(fmt.Sprintf("campaign %d is %s: finish it before deleting it", id, c.State))
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.campaignChanged()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// campaignAction applies the lifecycle action named by the last path segment.
func (s *Server) campaignAction(w http.ResponseWriter, r *http.Request, p principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	action := campaigns.Action(r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:])
	columns, err := s.store.CampaignColumns(r.Context(), id)
	if err != nil {
		return err
	}
	c, err := s.store.UpdateCampaign(r.Context(), p.actor(), id, "campaign."+string(action), func(c *campaigns.Campaign) error {
		next, err := c.State.Next(action)
		if err != nil {
			return err
		}
		if action == campaigns.ActionStart || action == campaigns.ActionResume {
			if err := c.ValidateForStart(columns); err != nil {
				return err
			}
			if err := s.limits().Check(c); err != nil {
				return err
			}
		}
		c.State = next
		return nil
	})
	if err != nil {
		return err
	}
	s.campaignChanged()
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) getPacing(w http.ResponseWriter, r *http.Request, p principal) error {
	c, err := s.campaignFromPath(r, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c.Pacing)
	return nil
}

func (s *Server) updatePacing(w http.ResponseWriter, r *http.Request, p principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var in pacingInput
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	c, err := s.store.UpdateCampaign(r.Context(), p.actor(), id, "campaign.pacing", func(c *campaigns.Campaign) error {
		if c.State == campaigns.StateFinished {
			return conflict("a finished campaign cannot be changed")
		}
		in.apply(&c.Pacing)
		return s.limits().Check(c)
	})
	if err != nil {
		return err
	}
	s.campaignChanged()
	writeJSON(w, http.StatusOK, c.Pacing)
	return nil
}

func (s *Server) campaignStats(w http.ResponseWriter, r *http.Request, p principal) error {
	c, err := s.campaignFromPath(r, p)
	if err != nil {
		return err
	}
	st, err := s.store.CampaignStats(r.Context(), c.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) listCampaignAgents(w http.ResponseWriter, r *http.Request, p principal) error {
	c, err := s.campaignFromPath(r, p)
	if err != nil {
		return err
	}
	users, err := s.store.CampaignAgents(r.Context(), c.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"agents": users})
	return nil
}

func (s *Server) assignAgent(w http.ResponseWriter, r *http.Request, p principal) error {
	c, err := s.campaignFromPath(r, p)
	if err != nil {
		return err
	}
	var in struct {
		UserID flexID `json:"user_id"`
	}
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	u, err := s.store.GetUser(r.Context(), int64(in.UserID))
	if err != nil {
		return unprocessable(fmt.Sprintf("user %d does not exist", in.UserID))
	}
	if u.Role != storage.RoleAgent {
		return unprocessable(fmt.Sprintf("user %s is a %s, not an agent", u.Username, u.Role))
	}
	if err := s.store.AssignAgent(r.Context(), p.actor(), c.ID, u.ID); err != nil {
		return err
	}
	// A logged-in agent works the campaign from the engine's next decision; one
	// logged out gets it at its next login.
	if e, err := s.engine(); err == nil {
		e.Agents().Assign(u.ID, c.ID)
	}
	return s.listCampaignAgents(w, r, p)
}

func (s *Server) unassignAgent(w http.ResponseWriter, r *http.Request, p principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	uid, err := pathID(r, "user_id")
	if err != nil {
		return err
	}
	if err := s.store.UnassignAgent(r.Context(), p.actor(), id, uid); err != nil {
		return err
	}
	if e, err := s.engine(); err == nil {
		e.Agents().Unassign(uid, id)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
