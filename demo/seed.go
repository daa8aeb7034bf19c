package demo

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/storage"
	"github.com/turbina-dialer/turbina/web"
)

// SampleContacts is the sample campaign's list: 300 contacts in São Paulo.
//
//go:embed contacts.csv
var SampleContacts []byte

// CampaignName is the sample campaign's name.
const CampaignName = "Demonstração — Renovação de planos"

// StartDialing brings the simulated agents in, waits until their audio is up (so
// the first answered calls find them) and starts the demo campaign.
func StartDialing(ctx context.Context, store *storage.DB, engine *dialer.Engine, team *Team, campaignID int64, log *slog.Logger) error {
	team.Start(ctx)
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := team.WaitReady(wctx); err != nil {
		log.Warn("demo: not every simulated agent is ready; dialing anyway", "err", err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	now := time.Now()
	if _, err := store.UpdateCampaign(ctx, storage.Actor{Username: "demo"}, campaignID, "campaign.start", func(c *campaigns.Campaign) error {
		// The calling window covers the whole day but one minute, twelve hours
		// away, so the demo dials at any hour, and on any day: holidays are off.
		c.Window = Window(now)
		c.WeekHours = nil
		c.Holidays = Holidays()
		c.State = campaigns.StateRunning
		return nil
	}); err != nil {
		return err
	}
	engine.CampaignChanged()
	log.Info("demo campaign running", "campaign", campaignID)
	return nil
}

// Holidays switches the national holidays off: the demo shows the engine dialling
// whatever the day.
func Holidays() campaigns.Holidays {
	off := false
	return campaigns.Holidays{National: &off}
}

// Window is a calling window open all day except the minute twelve hours from now
// in São Paulo (a window cannot hold all 1,440 minutes).
func Window(now time.Time) campaigns.Window {
	loc, err := time.LoadLocation(campaigns.DefaultTimezone)
	if err != nil {
		loc = time.UTC
	}
	local := now.In(loc)
	gap := campaigns.ClockTime((local.Hour()*60 + local.Minute() + 12*60) % (24 * 60))
	return campaigns.Window{Start: (gap + 1) % (24 * 60), End: gap}
}

// Roles are the demo's users, one per role, in the order they are printed.
func Roles() []storage.Role {
	return []storage.Role{storage.RoleAdmin, storage.RoleSupervisor, storage.RoleSales, storage.RoleAgent}
}

// demoName is a demo user's display name: a person's name, as the pages and the
// audit log show it, rather than a label made of the role.
func demoName(role storage.Role) string {
	switch role {
	case storage.RoleSupervisor:
		return "Ana Souza"
	case storage.RoleSales:
		return "Bruno Lima"
	case storage.RoleAgent:
		return "Carla Dias"
	}
	return "Admin"
}

// Login is what a person needs to use a demo user: a password for the pages and a
// token for the API.
type Login struct{ Username, Password, Token string }

// Seeded is what Seed prepared.
type Seeded struct {
	// Logins are the demo users' fresh credentials, by role.
	Logins map[storage.Role]Login
	// Campaign is the sample campaign, ready to dial.
	Campaign campaigns.Campaign
	// SimAgents are the simulated agents' users.
	SimAgents []storage.User
}

// Seed creates (once) the demo users, issues each a fresh password and token
// (revoking the previous run's, so the printed ones are the only ones), creates the
// simulated agents' users, and loads the sample campaign with the contacts of the
// CSV list (its ladder the SIP rung alone when sipOnly). A campaign a previous run
// dialled is kept under a dated name, finished, and a fresh one is loaded, so every
// run dials the whole list.
func Seed(ctx context.Context, store *storage.DB, simAgents int, list []byte, sipOnly bool, now time.Time) (Seeded, error) {
	system := storage.Actor{Username: "demo"}
	var seed Seeded
	users, err := store.ListUsers(ctx)
	if err != nil {
		return seed, err
	}
	byName := map[string]storage.User{}
	for _, u := range users {
		byName[u.Username] = u
	}
	ensure := func(name, display string, role storage.Role) (storage.User, error) {
		if u, ok := byName[name]; ok {
			return u, nil
		}
		u := storage.User{Username: name, DisplayName: display, Role: role}
		err := store.CreateUser(ctx, system, &u)
		return u, err
	}
	seed.Logins = map[storage.Role]Login{}
	var agents []storage.User
	for _, role := range Roles() {
		name := "demo-" + string(role)
		u, err := ensure(name, demoName(role), role)
		if err != nil {
			return seed, err
		}
		if role == storage.RoleAgent {
			agents = append(agents, u)
		}
		old, err := store.ListTokens(ctx, u.ID)
		if err != nil {
			return seed, err
		}
		for _, t := range old {
			if t.RevokedAt == nil {
				if err := store.RevokeToken(ctx, system, t.ID); err != nil {
					return seed, err
				}
			}
		}
		secret, err := web.NewToken()
		if err != nil {
			return seed, err
		}
		t := storage.Token{UserID: u.ID, Name: "demo", Prefix: secret[:10]}
		if err := store.CreateToken(ctx, system, &t, web.HashToken(secret)); err != nil {
			return seed, err
		}
		password := "demo-" + secret[len(secret)-8:]
		hash, err := web.HashPassword(ctx, password)
		if err != nil {
			return seed, err
		}
		if _, err := store.UpdateUser(ctx, system, u.ID, func(u *storage.User) error { u.PasswordHash = hash; return nil }); err != nil {
			return seed, err
		}
		seed.Logins[role] = Login{Username: name, Password: password, Token: secret}
	}
	for i := 1; i <= simAgents; i++ {
		u, err := ensure(fmt.Sprintf("demo-sim-%02d", i), fmt.Sprintf("Agente simulado %02d", i), storage.RoleAgent)
		if err != nil {
			return seed, err
		}
		seed.SimAgents = append(seed.SimAgents, u)
		agents = append(agents, u)
	}
	if seed.Campaign, err = sampleCampaign(ctx, store, system, list, sipOnly, now); err != nil {
		return seed, err
	}
	assigned, err := store.CampaignAgents(ctx, seed.Campaign.ID)
	if err != nil {
		return seed, err
	}
	for _, u := range agents {
		if !containsUser(assigned, u.ID) {
			if err := store.AssignAgent(ctx, system, seed.Campaign.ID, u.ID); err != nil {
				return seed, err
			}
		}
	}
	return seed, nil
}

func containsUser(list []storage.User, id int64) bool {
	for _, u := range list {
		if u.ID == id {
			return true
		}
	}
	return false
}

// sampleCampaign returns the sample campaign ready to dial: the draft one, or a new
// one loaded with the contacts of the csv list when a previous run dialled it (that
// one is kept, finished, under a dated name). With sipOnly its ladder is the SIP
// rung alone.
func sampleCampaign(ctx context.Context, store *storage.DB, system storage.Actor, csv []byte, sipOnly bool, now time.Time) (campaigns.Campaign, error) {
	list, err := store.ListCampaigns(ctx, nil)
	if err != nil {
		return campaigns.Campaign{}, err
	}
	for _, c := range list {
		if c.Name != CampaignName {
			continue
		}
		if c.State == campaigns.StateDraft {
			return c, nil
		}
		if _, err := store.UpdateCampaign(ctx, system, c.ID, "campaign.archive", func(c *campaigns.Campaign) error {
			c.Name = fmt.Sprintf("%s (%s)", CampaignName, c.CreatedAt.Local().Format("2006-01-02 15:04:05"))
			c.State = campaigns.StateFinished
			return nil
		}); err != nil {
			return campaigns.Campaign{}, fmt.Errorf("archive the previous demo campaign: %w", err)
		}
	}
	c := campaigns.Campaign{Name: CampaignName, CallerID: "+551130000000", DefaultCountry: "BR"}
	c.ApplyDefaults()
	c.Window = Window(now)
	c.Holidays = Holidays()
	c.Ladder[2].Template, c.Ladder[2].Language = templateName, templateLanguage
	c.Ladder[2].Params = []string{"name", "plano", "vencimento"}
	if sipOnly {
		c.Ladder = c.Ladder[:1]
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	if err := store.CreateCampaign(ctx, system, &c); err != nil {
		return c, err
	}
	ir, err := campaigns.NewImportReader(bytes.NewReader(csv), campaigns.ImportOptions{DefaultCountry: c.DefaultCountry})
	if err != nil {
		return c, err
	}
	batch, err := store.BeginImport(ctx, system, c.ID)
	if err != nil {
		return c, err
	}
	if err := batch.SetColumns(ir.Header()); err != nil {
		return c, err
	}
	_, loadErr := campaigns.Load(ctx, ir, batch, 0)
	if _, err := batch.Finish(ctx, loadErr); err != nil {
		return c, err
	}
	return c, loadErr
}

// AllContacts returns every contact of a campaign.
func AllContacts(ctx context.Context, store *storage.DB, campaignID int64) ([]campaigns.Contact, error) {
	var out []campaigns.Contact
	for {
		page, total, err := store.ListContacts(ctx, campaignID, storage.ContactFilter{Limit: 500, Offset: len(out)})
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) == 0 || len(out) >= total {
			return out, nil
		}
	}
}
