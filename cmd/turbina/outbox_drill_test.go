package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
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

// outboxDrillWindow is the drill's whatsapp.in_doubt_window: short, so that
// what no evidence will settle is recorded not sent within the drill's time.
const outboxDrillWindow = 3 * time.Second

// TestKillFiveTimesDuringTemplateSendsSettlesEveryRow is the crash drill of
// issue 15: the real binary sends templates and is SIGKILLed five times
// mid-send, restarted each time on the same data. WhatsApp's answers come back
// 100 ms after it took each message (AnswerDelay), so every kill leaves
// messages WhatsApp has whose wamid the process never learnt. At the end,
// once the emulator's status webhooks (retried across restarts, as Meta does)
// have arrived and the in-doubt window (3 s here) has passed, every outbox row
// is settled: sent exactly once according to the emulator's own count, or
// recorded not sent and never received; none is recorded sent (nor its
// attempt) that the emulator never received; no row of any kind (permission
// requests included) is left sending, and none in doubt: a request the kill cut
// short between its recorded start and its body's last byte (WhatsApp never
// processed it, and no evidence will ever come) is recorded not sent once the
// window has passed.
func TestKillFiveTimesDuringTemplateSendsSettlesEveryRow(t *testing.T) {
	const n, kills = outboxDrillContacts, 5
	s := newWAServer(t, 100)
	s.setWhatsApp(t, "in_doubt_window", outboxDrillWindow.String())
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
	// A stall of 10 s fails it: contacts are finished at 100 a second (done, or
	// exhausted when their template was recorded not sent).
	waitFinished(t, p, id, n, min(left(), 10*time.Second))
	// The statuses of every message WhatsApp took, those the kills hid included.
	waitWebhooksQuiet(t, s.emu)
	// Then what is still in doubt has no evidence to come: the window records it
	// not sent (the engine looks a few times per window).
	waitNoneInDoubt(t, s.dataDir, outboxDrillWindow+10*time.Second)
	time.Sleep(1500 * time.Millisecond) // the engine applies kept events at once, and every second at the latest
	p.stop(t)
	t.Logf("drill: %d contacts, %d kills, %s", n, kills, time.Since(started).Round(time.Millisecond))
	if inDoubtAtRestart == 0 {
		t.Error("no kill left a message in doubt: the drill tested nothing of the doubt")
	}

	byTo, byKey := s.emu.MessageCounts()
	notSent := 0
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
			case m.State == storage.OutboxInDoubt || a.Outcome == string(campaigns.OutcomeInDoubt):
				t.Errorf("%s: still in doubt (outbox %s, attempt %s) after every webhook arrived and the window passed (WhatsApp got it %d times)",
					key, m.State, a.Outcome, got)
			case m.State == storage.OutboxSent && got != 1:
				t.Errorf("%s: recorded sent, WhatsApp never got it", key)
			case m.State != storage.OutboxSent && got != 0:
				t.Errorf("%s: WhatsApp got it, recorded %s (%s)", key, m.State, m.LastError)
			case m.State != storage.OutboxFailed && m.State != storage.OutboxSent:
				t.Errorf("%s: left %s", key, m.State)
			case campaigns.Outcome(a.Outcome).Reached() && got != 1:
				t.Errorf("contact %d: attempt %s, WhatsApp never got %s", c, a.Outcome, key)
			case m.State == storage.OutboxFailed && strings.HasPrefix(m.LastError, "no status from WhatsApp within"):
				notSent++
			}
		}
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
		for _, st := range []string{storage.OutboxSending, storage.OutboxInDoubt} {
			if byState[st] != 0 {
				t.Errorf("%s: %d rows left %s", kind, byState[st], st)
			}
		}
	}
	t.Logf("outbox: %v; %d numbers got one template each; %d messages were in doubt at a restart, %d recorded not sent after the window",
		counts, len(byTo), inDoubtAtRestart, notSent)
}

// setWhatsApp sets key of the whatsapp section of the server's config file.
func (s *waServer) setWhatsApp(t *testing.T, key string, value any) {
	t.Helper()
	var file string
	for _, kv := range s.env {
		if v, ok := strings.CutPrefix(kv, "TURBINA_CONFIG="); ok {
			file = v
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["whatsapp"][key] = value
	if b, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitFinished waits until none of the campaign's n contacts is pending or in
// progress, failing when none finishes for stall.
func waitFinished(t *testing.T, p *proc, campaignID string, n int, stall time.Duration) {
	t.Helper()
	last, progress, giveUp := -1, time.Now(), time.Now().Add(5*stall)
	for {
		finished := 0
		for _, st := range []campaigns.ContactStatus{campaigns.ContactDone, campaigns.ContactExhausted} {
			var page struct{ Total int }
			call(t, "GET", p.url+"/api/v1/campaigns/"+campaignID+"/contacts?limit=1&status="+string(st), crashAdmin, "", nil, 200, &page)
			finished += page.Total
		}
		if finished == n {
			return
		}
		if finished != last {
			last, progress = finished, time.Now()
		}
		if time.Since(progress) > stall || time.Now().After(giveUp) {
			t.Fatalf("%d of %d contacts finished, the last one %s ago:\n%s", finished, n, time.Since(progress).Round(time.Second), tail(p.Output(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitNoneInDoubt waits, reading the database file beside the running server,
// until no outbox row and no attempt is in doubt.
func waitNoneInDoubt(t *testing.T, dataDir string, bound time.Duration) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dataDir, "turbina.db")+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows, attempts int
	for deadline := time.Now().Add(bound); ; time.Sleep(100 * time.Millisecond) {
		err := db.QueryRow(`SELECT (SELECT count(*) FROM outbox WHERE state = 'in_doubt'),
			(SELECT count(*) FROM attempts WHERE outcome = 'in_doubt')`).Scan(&rows, &attempts)
		if err == nil && rows == 0 && attempts == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d outbox rows and %d attempts still in doubt (%v)", bound, rows, attempts, err)
		}
	}
}
