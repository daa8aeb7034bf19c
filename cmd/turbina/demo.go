package main

import (
	"bytes"
	"context"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/storage"
	"github.com/turbina-dialer/turbina/web"
)

//go:embed demo/contacts.csv
var demoContacts []byte

const demoCampaignName = "Demonstração — Renovação de planos"

// runDemo starts the server on its own data directory with a sample campaign, a user
// of every role and fresh tokens for them, and tells the person where to look.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	base := defaultConfig()
	base.DataDir = "./turbina-data-demo"
	var duration time.Duration
	cfg, err := parseConfig("demo", base, args, os.Getenv, stderr, func(fs *flag.FlagSet) {
		fs.DurationVar(&duration, "duration", 0, "stop after this long (0: run until interrupted)")
	})
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	a, err := openApp(ctx, cfg, log, io.Discard)
	if err != nil {
		return err
	}
	defer a.close()
	tokens, err := seedDemo(ctx, a.store)
	if err != nil {
		return fmt.Errorf("prepare demo: %w", err)
	}
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	return a.serve(ctx, func(addr string) {
		printDemoBanner(stdout, addr, tokens)
	})
}

// demoRoles are the demo's users, one per role, in the order they are printed.
var demoRoles = []storage.Role{storage.RoleAdmin, storage.RoleSupervisor, storage.RoleSales, storage.RoleAgent}

// demoLogin is what a person needs to use a demo user: a password for the pages and
// a token for the API.
type demoLogin struct{ username, password, token string }

// seedDemo creates (once) the demo users and campaign and issues each user a fresh
// password and token, revoking the previous run's, so the printed ones are the only ones.
func seedDemo(ctx context.Context, store *storage.DB) (map[storage.Role]demoLogin, error) {
	system := storage.Actor{Username: "demo"}
	users, err := store.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]storage.User{}
	for _, u := range users {
		byName[u.Username] = u
	}
	logins := map[storage.Role]demoLogin{}
	var agent storage.User
	for _, role := range demoRoles {
		name := "demo-" + string(role)
		u, ok := byName[name]
		if !ok {
			u = storage.User{Username: name, DisplayName: "Demo " + string(role), Role: role}
			if err := store.CreateUser(ctx, system, &u); err != nil {
				return nil, err
			}
		}
		if role == storage.RoleAgent {
			agent = u
		}
		old, err := store.ListTokens(ctx, u.ID)
		if err != nil {
			return nil, err
		}
		for _, t := range old {
			if t.RevokedAt == nil {
				if err := store.RevokeToken(ctx, system, t.ID); err != nil {
					return nil, err
				}
			}
		}
		secret, err := web.NewToken()
		if err != nil {
			return nil, err
		}
		t := storage.Token{UserID: u.ID, Name: "demo", Prefix: secret[:10]}
		if err := store.CreateToken(ctx, system, &t, web.HashToken(secret)); err != nil {
			return nil, err
		}
		password := "demo-" + secret[len(secret)-8:]
		hash, err := web.HashPassword(ctx, password)
		if err != nil {
			return nil, err
		}
		if _, err := store.UpdateUser(ctx, system, u.ID, func(u *storage.User) error { u.PasswordHash = hash; return nil }); err != nil {
			return nil, err
		}
		logins[role] = demoLogin{username: name, password: password, token: secret}
	}
	list, err := store.ListCampaigns(ctx, nil)
	if err != nil {
		return nil, err
	}
	for _, c := range list {
		if c.Name == demoCampaignName {
			return logins, nil
		}
	}
	c := campaigns.Campaign{Name: demoCampaignName, CallerID: "+551130000000", DefaultCountry: "BR"}
	c.ApplyDefaults()
	c.Ladder[2].Template, c.Ladder[2].Language = "renovacao_plano", "pt_BR"
	c.Ladder[2].Params = []string{"name", "plano", "vencimento"}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := store.CreateCampaign(ctx, system, &c); err != nil {
		return nil, err
	}
	if err := store.AssignAgent(ctx, system, c.ID, agent.ID); err != nil {
		return nil, err
	}
	ir, err := campaigns.NewImportReader(bytes.NewReader(demoContacts), campaigns.ImportOptions{DefaultCountry: c.DefaultCountry})
	if err != nil {
		return nil, err
	}
	batch, err := store.BeginImport(ctx, system, c.ID)
	if err != nil {
		return nil, err
	}
	_, loadErr := campaigns.Load(ctx, ir, batch, 0)
	if _, err := batch.Finish(ctx, loadErr); err != nil {
		return nil, err
	}
	return logins, loadErr
}

func printDemoBanner(w io.Writer, addr string, logins map[storage.Role]demoLogin) {
	base := "http://" + addr
	var b strings.Builder
	fmt.Fprintf(&b, "\nTurbina demo is running at %s (Ctrl-C stops it)\n\n", base)
	fmt.Fprintf(&b, "Sample campaign %q with 300 contacts is loaded.\n\n", demoCampaignName)
	fmt.Fprintf(&b, "Sign in at %s/ — or use the API token (all new on every start):\n", base)
	fmt.Fprintf(&b, "  %-10s %-16s %-14s %s\n", "role", "username", "password", "API token")
	for _, role := range demoRoles {
		l := logins[role]
		fmt.Fprintf(&b, "  %-10s %-16s %-14s %s\n", role, l.username, l.password, l.token)
	}
	fmt.Fprintf(&b, "\nTry:\n")
	fmt.Fprintf(&b, "  curl -H 'Authorization: Bearer %s' %s/api/v1/campaigns\n", logins[storage.RoleSupervisor].token, base)
	fmt.Fprintf(&b, "  curl %s/metrics\n", base)
	fmt.Fprintf(&b, "  API reference: %s/api/v1/openapi.json (with a token)\n\n", base)
	io.WriteString(w, b.String())
}
