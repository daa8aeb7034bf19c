package demo

import (
	"fmt"
	"io"
	"strings"

	"github.com/turbina-dialer/turbina/storage"
)

// Banner is what the banner says about the run.
type Banner struct {
	// Agents is the number of simulated agents.
	Agents int
	// Contacts is the number of synthetic contacts; 0 means the 300-row sample.
	Contacts int
	// Trunk is the external carrier's address; empty means the simulated one.
	Trunk string
	// NoWhatsApp says the WhatsApp emulator is left out.
	NoWhatsApp bool
}

// PrintBanner tells a person at the terminal where the demo runs, how to sign in
// as each demo user and what to try.
func PrintBanner(w io.Writer, addr string, logins map[storage.Role]Login, opts Banner) {
	base := "http://" + addr
	var b strings.Builder
	fmt.Fprintf(&b, "\nTurbina demo is running at %s (Ctrl-C stops it once the calls under way end; twice: at once)\n\n", base)
	contacts, carrierName, whatsApp := 300, "a simulated\ncarrier (SIP)", " and the WhatsApp Cloud API emulator"
	if opts.Contacts > 0 {
		contacts = opts.Contacts
	}
	if opts.Trunk != "" {
		carrierName = "the carrier\nat " + opts.Trunk + " (SIP)"
	}
	if opts.NoWhatsApp {
		whatsApp = ""
	}
	fmt.Fprintf(&b, "Sample campaign %q with %d contacts is dialing through %s%s; %d simulated agents take the calls.\n\n",
		CampaignName, contacts, carrierName, whatsApp, opts.Agents)
	fmt.Fprintf(&b, "Sign in at %s/ — or use the API token (all new on every start):\n", base)
	fmt.Fprintf(&b, "  %-10s %-16s %-14s %s\n", "role", "username", "password", "API token")
	for _, role := range Roles() {
		l := logins[role]
		fmt.Fprintf(&b, "  %-10s %-16s %-14s %s\n", role, l.Username, l.Password, l.Token)
	}
	fmt.Fprintf(&b, "\nWallboard: %s/supervisor (sign in as demo-supervisor)\n", base)
	fmt.Fprintf(&b, "Take calls yourself: %s/agent (sign in as demo-agent, allow the microphone)\n", base)
	if opts.Trunk == "" {
		fmt.Fprintf(&b, "\nCut the trunk and watch the WhatsApp rung absorb the calls (false restores it):\n")
		fmt.Fprintf(&b, "  curl -X POST -d '{\"cut\":true}' %s/demo/cut-trunk\n", base)
	}
	fmt.Fprintf(&b, "\nTry:\n")
	fmt.Fprintf(&b, "  curl -H 'Authorization: Bearer %s' %s/api/v1/campaigns\n", logins[storage.RoleSupervisor].Token, base)
	fmt.Fprintf(&b, "  curl %s/metrics\n", base)
	fmt.Fprintf(&b, "  API reference: %s/api/v1/openapi.json (with a token)\n\n", base)
	io.WriteString(w, b.String())
}
