package web

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/turbina-dialer/turbina/dialer"
)

// TestBrowserAgentPageFollowsItsCampaignToAnotherNode: the agent page, open on
// node A, works the agent's session on node B, which runs its campaign; when
// the campaign moves to A, the page reconnects by itself, logs the agent in
// again there, paused, says so, and goes ready on A: no reload.
func TestBrowserAgentPageFollowsItsCampaignToAnotherNode(t *testing.T) {
	n := newAgentNodes(t)
	a, b := n.a, n.b
	n.agentPassword(t)
	bLease := n.lease(t, "node-b")
	n.waitHome(t, a, "node-b")

	p := openBrowser(t, a)
	// waitState waits until the page shows the agent's state; if it does not,
	// the failure says what the page shows instead.
	waitState := func(what, state string) {
		t.Helper()
		const show = `document.getElementById('state').dataset.state + ' | ' + document.getElementById('agent-status').className + ': ' + document.getElementById('agent-status').textContent`
		deadline := time.Now().Add(20 * time.Second)
		for {
			got := eval[string](p, show)
			if strings.HasPrefix(got, state+" |") {
				return
			}
			if time.Now().After(deadline) {
				p.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
				t.Fatalf("%s: the page shows %q, want the state %s", what, got, state)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	p.signIn("agent1", "/agent")
	p.do("log in to campaigns", chromedp.Click(chromedp.CSS("#agent-login")))
	waitState("paused after login", "paused")
	p.do("ready", chromedp.Click(chromedp.CSS("#ready")))
	waitState("ready", "ready")
	within(t, followPatience, "node B's engine has the agent ready with its page open", func() bool {
		got := n.state(b)
		return got.State == dialer.AgentReady && got.Page
	})
	if got := n.state(a).State; got != dialer.AgentLoggedOut {
		t.Fatalf("node A's engine: agent %s, want logged out: B serves the agent", got)
	}

	n.release(t, bLease)
	n.lease(t, "node-a")
	within(t, followPatience, "node A has the agent logged in again with its page open", func() bool {
		got := n.state(a)
		return got.State == dialer.AgentPaused && got.Page
	})
	p.waitJS("the page says the session moved", `document.getElementById('state').dataset.state === 'paused' &&
		document.getElementById('agent-status').className === 'note'`, 20*time.Second)
	if got := p.text("#agent-status"); !strings.Contains(got, "Your campaign moved to another server") {
		t.Errorf("status %q, want the note that the campaign moved", got)
	}
	if got := n.state(b).State; got != dialer.AgentLoggedOut {
		t.Errorf("node B's engine: agent %s, want logged out once its campaign moved", got)
	}
	p.shot("moved")
	p.do("ready on node A", chromedp.Click(chromedp.CSS("#ready")))
	waitState("ready on node A", "ready")
	if got := n.state(a).State; got != dialer.AgentReady {
		t.Errorf("node A's engine: agent %s, want ready", got)
	}
}
