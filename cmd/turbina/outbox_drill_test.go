package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/storage"
)

// outboxDrillContacts is the drill's campaign. The drill had 4,000
// contacts (its trunk cut, so every contact fell to the template rung); at the
// drill's 100 messages a second that is 40 s of sends alone, so 1,500
// contacts, template rung only (the outbox is the same whichever rung failed
// before), keep five kills and six starts within about 30 s of the 60 s bound.
const outboxDrillContacts = 1500

// inDoubtLine is the restart's report of what the last process left in doubt.
var inDoubtLine = regexp.MustCompile(`in_doubt=(\d+)`)

// TestKillFiveTimesDuringTemplateSendsSettlesEveryRow is the crash drill of
// issue 15: the real binary sends templates and is SIGKILLed five times
// mid-send, restarted each time on the same data. WhatsApp's answers come back
// 100 ms after it took each message (AnswerDelay), so every kill leaves
// messages WhatsApp has whose wamid the process never learnt. At the end,
// once the emulator's status webhooks (retried across restarts, as Meta does)
// have arrived, every outbox row is settled: sent exactly once according to the
// emulator's own count, or recorded not sent; none is recorded sent (nor its
// attempt) that the emulator never received; no row of any kind (permission
// requests included) is left sending; none is in doubt but those whose
// request the kill cut short between its recorded start and its body's last
// byte, which WhatsApp never processed and no evidence will ever settle (never
// more than the requests the emulator got cut short; about one in twenty kills
// on a loaded 2-core machine).
func TestKillFiveTimesDuringTemplateSendsSettlesEveryRow(t *testing.T) {
	const n, kills = outboxDrillContacts, 5
	s := newWAServer(t, 100)
	for i := range n {
		s.emu.Script(fmt.Sprintf("55119%08d", 87000000+i), emulator.Behaviour{AnswerDelay: 100 * time.Millisecond, StatusDelay: 5 * time.Millisecond})
	}
	started := time.Now()
	// Every wait shares the drill's 60 s bound.
	left := func() time.Duration { return max(time.Until(started.Add(60*time.Second)), time.Second) }
	p := s.start(t)
	id := crashCampaign(t, p.url, n, `[{"channel":"whatsapp_template","max_attempts":1,"template":"lembrete","language":"pt_BR","params":["name","plano"]}]`)
	inDoubtAtRestart := 0
	for k := 1; k <= kills; k++ {
		// Each kill lands a sixth further into the campaign.
		waitAccepted(t, s.emu, p, isTemplate, k*n/(kills+1), left())
		p.kill(t)
		p = s.start(t)
		// The restart reports what the kill left: its Warn line is written before
		// the engine runs, so it is there once the process listens... or soon after.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if m := inDoubtLine.FindStringSubmatch(p.Output()); m != nil {
				v, _ := strconv.Atoi(m[1])
				inDoubtAtRestart += v
				break
			}
		}
	}
	// A stall of 10 s fails it: contacts are done at 100 a second.
	waitDone(t, p, id, n, min(left(), 10*time.Second))
	// The statuses of every message WhatsApp took, those the kills hid included.
	waitWebhooksQuiet(t, s.emu)
	time.Sleep(1500 * time.Millisecond) // the engine applies kept events at once, and every second at the latest
	p.stop(t)
	t.Logf("drill: %d contacts, %d kills, %s", n, kills, time.Since(started).Round(time.Millisecond))
	if inDoubtAtRestart == 0 {
		t.Error("no kill left a message in doubt: the drill tested nothing of the doubt")
	}

	byTo, byKey := s.emu.MessageCounts()
	var unsettled []string
	db := openDB(t, s.dataDir)
	ctx := context.Background()
	for c := 1; c <= n; c++ {
		as, err := db.ListAttempts(ctx, int64(c))
		if err != nil {
			t.Fatal(err)
		}
		for ord, a := range as {
			key := fmt.Sprintf("contact-%d-attempt-%d", c, ord-countInterrupted(as[:ord]))
			if a.Outcome == string(campaigns.OutcomeInterrupted) {
				continue
			}
			m, err := db.OutboxByKey(ctx, key)
			if err != nil {
				t.Errorf("contact %d attempt %s: outbox %s: %v", c, a.Outcome, key, err)
				continue
			}
			got := byKey[key]
			switch {
			case got > 1:
				t.Errorf("%s: WhatsApp got it %d times", key, got)
			case m.State == storage.OutboxInDoubt && got != 0:
				t.Errorf("%s: still in doubt after every webhook arrived, yet WhatsApp got it", key)
			case m.State == storage.OutboxInDoubt:
				unsettled = append(unsettled, key)
			case m.State == storage.OutboxSent && got != 1:
				t.Errorf("%s: recorded sent, WhatsApp never got it", key)
			case m.State != storage.OutboxSent && got != 0:
				t.Errorf("%s: WhatsApp got it, recorded %s", key, m.State)
			case campaigns.Outcome(a.Outcome).Reached() && got != 1:
				t.Errorf("contact %d: attempt %s, WhatsApp never got %s", c, a.Outcome, key)
			}
		}
	}
	// The one doubt no evidence can settle: a kill between the record of a
	// request's start and the last byte of its body leaves a request WhatsApp
	// never processed (it got it cut short) and the process cannot know it. Such a
	// message stays in doubt, reported to supervisors, never resent nor called
	// sent; there are never more of them than requests the emulator got cut short.
	truncated := 0
	for _, r := range s.emu.Requests() {
		if r.Truncated {
			truncated++
		}
	}
	if len(unsettled) > truncated {
		t.Errorf("%d messages still in doubt after every webhook arrived (%v), and only %d requests were cut short by the kills", len(unsettled), unsettled, truncated)
	} else if len(unsettled) > 0 {
		t.Logf("%d messages in doubt with no evidence to come: the kill cut their request short (%v; %d requests cut short in all)", len(unsettled), unsettled, truncated)
	}
	for to, c := range byTo {
		if c > 1 {
			t.Errorf("%s got %d templates", to, c)
		}
	}
	counts, err := db.OutboxCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for kind, byState := range counts {
		if byState[storage.OutboxSending] != 0 {
			t.Errorf("%s: %d rows left sending", kind, byState[storage.OutboxSending])
		}
	}
	if counts["whatsapp.template"][storage.OutboxInDoubt] != len(unsettled) {
		t.Errorf("%d template rows in doubt, %d found by contact", counts["whatsapp.template"][storage.OutboxInDoubt], len(unsettled))
	}
	t.Logf("outbox: %v; %d numbers got one template each; %d messages were in doubt at a restart", counts, len(byTo), inDoubtAtRestart)
}
