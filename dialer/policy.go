package dialer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/storage"
)

// Defaults of the policy settings.
var (
	// DefaultNumberLimits: Florida's 3 calls per 24 h, and 10 per 7 days.
	DefaultNumberLimits = campaigns.NumberLimits{PerDay: 3, PerWeek: 10}
	// DefaultOptOutWords are the replies that opt a person out (case, accents,
	// spaces and punctuation around them ignored).
	DefaultOptOutWords = []string{"SAIR", "PARAR", "STOP", "CANCELAR", "DESCADASTRAR"}
)

// DefaultOptOutReply is the confirmation an opted-out person gets on WhatsApp.
const DefaultOptOutReply = "Pronto: você não receberá mais ligações nem mensagens nossas."

// ErrBadAction means an action the policy gate does not know.
var ErrBadAction = errors.New("unknown action")

// policy is the gate for one campaign with the engine's settings.
func (e *Engine) policy(c *campaigns.Campaign) campaigns.Policy {
	return campaigns.Policy{Campaign: c, Limits: *e.cfg.NumberLimits, QuietAfterAbandon: e.cfg.QuietAfterAbandon}
}

// actionNumber is the number an action goes to: WhatsApp's or the phone.
func actionNumber(a campaigns.ContactAction, c campaigns.Contact) string {
	switch a {
	case campaigns.ActionSIPCall, campaigns.ActionCallback:
		return c.Phone
	}
	return c.WhatsAppNumber()
}

// CheckPolicy rules on action for a contact at at, as the engine does just before
// taking it. It records nothing: a supervisor's question is not a refusal.
func (e *Engine) CheckPolicy(ctx context.Context, contactID int64, action campaigns.ContactAction, at time.Time) (campaigns.Decision, error) {
	if !action.Valid() {
		return campaigns.Decision{}, fmt.Errorf("%w: %q", ErrBadAction, action)
	}
	ct, err := e.store.GetContact(ctx, contactID)
	if err != nil {
		return campaigns.Decision{}, err
	}
	c, err := e.store.GetCampaign(ctx, ct.CampaignID)
	if err != nil {
		return campaigns.Decision{}, err
	}
	return e.decide(ctx, &c, ct, action, at, false)
}

// decide reads a contact's facts and rules on action; reserved says an agent
// waits for this very call.
func (e *Engine) decide(ctx context.Context, c *campaigns.Campaign, ct campaigns.Contact, action campaigns.ContactAction, at time.Time, reserved bool) (campaigns.Decision, error) {
	f, err := e.store.PolicyFacts(ctx, ct.ID, actionNumber(action, ct), at)
	if err != nil {
		return campaigns.Decision{}, fmt.Errorf("policy facts of contact %d: %w", ct.ID, err)
	}
	f.AgentReserved = f.AgentReserved || reserved
	return e.policy(c).Check(ct, f, action, at), nil
}

// gate rules on an action about to be taken and keeps a refusal in the contact's
// history; a refusal comes back as a *campaigns.RefusedError.
func (e *Engine) gate(ctx context.Context, c *campaigns.Campaign, ct campaigns.Contact, action campaigns.ContactAction, at time.Time, reserved bool) (campaigns.Decision, error) {
	d, err := e.decide(ctx, c, ct, action, at, reserved)
	if err != nil {
		return d, err
	}
	if d.Allowed {
		return d, nil
	}
	// Kept before the refusal takes effect: a refusal not recorded did not happen.
	if err := e.keepRefusal(ctx, ct, action, d); err != nil {
		return d, err
	}
	return d, &campaigns.RefusedError{Action: action, Decision: d}
}

// keepRefusal records a refusal d of action in the contact's history.
func (e *Engine) keepRefusal(ctx context.Context, ct campaigns.Contact, action campaigns.ContactAction, d campaigns.Decision) error {
	return e.store.RecordPolicyRefusal(ctx, storage.PolicyRefusal{ContactID: ct.ID, CampaignID: ct.CampaignID,
		Action: action, Reasons: d.Reasons, At: e.cfg.Now(), NextAllowedAt: d.NextAllowedAt})
}

// gateContact is gate for a contact known by id.
func (e *Engine) gateContact(ctx context.Context, contactID int64, action campaigns.ContactAction, at time.Time, reserved bool) error {
	ct, err := e.store.GetContact(ctx, contactID)
	if err != nil {
		return err
	}
	c, err := e.store.GetCampaign(ctx, ct.CampaignID)
	if err != nil {
		return err
	}
	_, err = e.gate(ctx, &c, ct, action, at, reserved)
	return err
}

// OptOut puts a person's numbers on the global do-not-call list as their own
// wish and stops every rung of their contacts in every campaign at once.
func (e *Engine) OptOut(ctx context.Context, who storage.Actor, phones []string, source string) ([]string, error) {
	fresh, err := e.store.OptOut(ctx, who, phones, source)
	if err != nil {
		return nil, err
	}
	e.StopRinging(ctx, 0, phones)
	e.CampaignChanged()
	return fresh, nil
}

// StopRinging ends the calls still dialling or ringing to one of numbers, in
// campaignID's run (0: every run): a person just put on a do-not-call list is not
// left ringing. A call already answered goes on: the agent on the line has the
// person. It returns how many calls it ended.
func (e *Engine) StopRinging(ctx context.Context, campaignID int64, numbers []string) int {
	e.mu.Lock()
	var runs []*run
	for id, r := range e.runs {
		if campaignID == 0 || id == campaignID {
			runs = append(runs, r)
		}
	}
	e.mu.Unlock()
	// ringingCall is a call to stop, with its logger for what its hang-up says.
	type ringingCall struct {
		attempt channel.Attempt
		log     *slog.Logger
	}
	stopped := 0
	for _, r := range runs {
		calls := make(chan []ringingCall, 1)
		if !r.do(func() {
			var ringing []ringingCall
			for _, c := range r.calls {
				if (c.state != callDialing && c.state != callRinging) || c.leg == nil ||
					!slices.Contains(numbers, campaigns.NumberFor(c.rung.Channel, c.due.Contact)) {
					continue
				}
				c.attempt.HangupBy = "local"
				c.attempt.Detail = detailJSON("the number went on a do-not-call list while it rang")
				c.log.Info("stopped ringing: the number went on a do-not-call list")
				ringing = append(ringing, ringingCall{c.leg, c.log})
			}
			calls <- ringing
		}) {
			continue
		}
		select {
		case cs := <-calls:
			for _, c := range cs {
				if err := c.attempt.Hangup(ctx); err != nil {
					c.log.Warn("stop ringing", "err", err)
				}
				stopped++
			}
		case <-r.done:
		}
	}
	return stopped
}

// personNumbers are the numbers a person is reached on.
func personNumbers(c campaigns.Contact) []string {
	if c.WhatsApp != "" && c.WhatsApp != c.Phone {
		return []string{c.Phone, c.WhatsApp}
	}
	return []string{c.Phone}
}
