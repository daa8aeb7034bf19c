package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/storage"
)

const (
	crashWAToken  = "crash-test-access-token"
	crashWASecret = "crash-test-app-secret"
	crashWAVerify = "crash-test-verify-token"
	crashAdmin    = "crash-test-admin-token-0000000"
)

// waServer is a turbina serve process wired to a WhatsApp Cloud API emulator.
type waServer struct {
	emu     *emulator.Emulator
	env     []string
	dataDir string
	addr    string
}

// newWAServer starts the emulator and writes the config file a turbina serve needs
// to use it: no SIP trunks, the emulator as the Graph API, loopback-only media.
// The HTTP address is fixed so that webhooks the emulator retries across a
// restart reach the new process.
func newWAServer(t *testing.T, mps float64) *waServer {
	t.Helper()
	emu := startEmulator(t)
	dir := t.TempDir()
	b, _ := json.Marshal(map[string]any{"whatsapp": whatsappSection(emu, mps)})
	file := filepath.Join(dir, "turbina.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dataDir := filepath.Join(dir, "data")
	return &waServer{emu: emu, dataDir: dataDir, addr: addr, env: []string{"TURBINA_DATA_DIR=" + dataDir,
		"TURBINA_ADMIN_TOKEN=" + crashAdmin, "TURBINA_CONFIG=" + file, "TURBINA_HTTP_ADDR=" + addr}}
}

// startEmulator starts a WhatsApp Cloud API emulator with the drills' templates,
// closed when t ends.
func startEmulator(t *testing.T) *emulator.Emulator {
	t.Helper()
	// "Require App Secret": every Graph call serve makes must carry appsecret_proof,
	// which serve derives from the webhook's app secret.
	emu, err := emulator.Start(context.Background(), emulator.Config{AccessToken: crashWAToken, AppSecret: crashWASecret,
		RequireAppSecretProof: true, PhoneNumberID: "1000", WABAID: "2000", Templates: []emulator.Template{
			{Name: "lembrete", Language: "pt_BR", Status: "APPROVED", Category: "UTILITY", Body: "Olá {{1}}, seu plano {{2}} vence em breve."},
			{Name: "rascunho", Language: "pt_BR", Status: "PENDING", Category: "MARKETING", Body: "Oferta {{1}}"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	return emu
}

// whatsappSection is the config file's whatsapp section for serve to use emu,
// sending at most mps messages a second, media on loopback only.
func whatsappSection(emu *emulator.Emulator, mps float64) map[string]any {
	return map[string]any{
		"base_url": emu.URL(), "access_token": crashWAToken, "phone_number_id": "1000", "waba_id": "2000",
		"messages_per_second": mps, "min_backoff": int64(20 * time.Millisecond), "max_backoff": int64(200 * time.Millisecond),
		"webhook": map[string]any{"app_secret": crashWASecret, "verify_token": crashWAVerify},
		"media":   map[string]any{"loopback_only": true},
	}
}

// start runs turbina serve and points the emulator's webhooks at it.
func (s *waServer) start(t *testing.T) *proc {
	t.Helper()
	p := start(t, s.env, "serve")
	s.emu.SetCallbackURL(p.url + "/webhooks/whatsapp")
	return p
}

// kill ends the process with SIGKILL: no shutdown code runs.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("turbina survived SIGKILL for 10 s")
	}
}

// crashCampaign creates and starts a campaign of n contacts whose ladder is
// ladderJSON, and returns its id.
func crashCampaign(t *testing.T, url string, n int, ladderJSON string) string {
	t.Helper()
	var c struct{ ID string }
	call(t, "POST", url+"/api/v1/campaigns", crashAdmin, "application/json", strings.NewReader(`{"name":"wa-crash",
		"caller_id":"+551130000000","default_country":"BR","calling_window":{"start":"00:00","end":"23:59"},"holidays":{"national":false},
		"pacing":{"mode":"progressive"},"ladder":`+ladderJSON+`}`), 201, &c)
	var csv bytes.Buffer
	csv.WriteString("name,phone,plano\n")
	for i := range n {
		fmt.Fprintf(&csv, "Cliente %d,+55119%08d,Plano %d\n", i, 87000000+i, i)
	}
	var rep struct{ Imported int }
	call(t, "POST", url+"/api/v1/campaigns/"+c.ID+"/contacts", crashAdmin, "text/csv", &csv, 200, &rep)
	if rep.Imported != n {
		t.Fatalf("imported %d contacts, want %d", rep.Imported, n)
	}
	call(t, "POST", url+"/api/v1/campaigns/"+c.ID+"/start", crashAdmin, "", nil, 200, nil)
	return c.ID
}

// waitDone waits until every contact of the campaign is done. It fails when no
// contact was done for stall (the run is stuck), not after a fixed time: a process
// starved of CPU on a loaded machine is slow, not broken. Five stalls' time bounds
// the whole wait.
func waitDone(t *testing.T, p *proc, campaignID string, n int, stall time.Duration) {
	t.Helper()
	last, progress, giveUp := -1, time.Now(), time.Now().Add(5*stall)
	for {
		var page struct{ Total int }
		call(t, "GET", p.url+"/api/v1/campaigns/"+campaignID+"/contacts?limit=1&status=done", crashAdmin, "", nil, 200, &page)
		if page.Total == n {
			return
		}
		if page.Total != last {
			last, progress = page.Total, time.Now()
		}
		if time.Since(progress) > stall || time.Now().After(giveUp) {
			t.Fatalf("%d of %d contacts done, the last one %s ago:\n%s", page.Total, n, time.Since(progress).Round(time.Second), tail(p.Output(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

// sends groups the emulator's accepted requests of one kind by idempotency key.
func accepted(emu *emulator.Emulator, match func(emulator.Request) bool) (byKey map[string]int, byTo map[string]int, inFlight int) {
	byKey, byTo = map[string]int{}, map[string]int{}
	for _, r := range emu.Requests() {
		if !match(r) {
			continue
		}
		switch r.Status {
		case http.StatusOK:
			byKey[r.Key]++
			byTo[r.To]++
		case 499: // the client went away while the request was in the emulator
			inFlight++
		}
	}
	return byKey, byTo, inFlight
}

// acceptedOnce is accepted, checking that WhatsApp accepted each key and each
// number at most once: what makes a send-once run.
func acceptedOnce(t *testing.T, emu *emulator.Emulator, match func(emulator.Request) bool, what string) (byKey, byTo map[string]int, inFlight int) {
	t.Helper()
	byKey, byTo, inFlight = accepted(emu, match)
	for k, c := range byKey {
		if c != 1 {
			t.Errorf("%s key %s accepted %d times", what, k, c)
		}
	}
	for to, c := range byTo {
		if c != 1 {
			t.Errorf("%s to %s accepted %d times", what, to, c)
		}
	}
	return byKey, byTo, inFlight
}

// waitAccepted waits until the emulator has accepted want distinct requests that
// match (each idempotency key counted once), so that a kill lands mid-run.
func waitAccepted(t *testing.T, emu *emulator.Emulator, p *proc, match func(emulator.Request) bool, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		byKey, _, _ := accepted(emu, match)
		if len(byKey) >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d requests accepted in %v:\n%s", len(byKey), want, within, tail(p.Output(), 40))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func isTemplate(r emulator.Request) bool { return r.Type == "template" }
func isConnect(r emulator.Request) bool {
	return r.Action == "connect" && strings.HasSuffix(r.Path, "/calls")
}

// openDB opens the stopped server's database for the checks.
func openDB(t *testing.T, dataDir string) *storage.DB {
	t.Helper()
	db, err := storage.Open(context.Background(), filepath.Join(dataDir, "turbina.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.IntegrityCheck(context.Background()); err != nil {
		t.Fatal(err)
	}
	if open, err := db.OpenAttempts(context.Background()); err != nil || len(open) != 0 {
		t.Fatalf("attempts left open: %+v, %v", open, err)
	}
	return db
}

// TestKillMidSendEachTemplateSentOnce: a campaign of template messages is SIGKILLed
// while sends are in flight (the emulator answers slowly) and restarted on the same
// data. Every contact ends done; no template is accepted twice for a contact or a
// key; a send whose request never left was sent after the restart; one a crash
// cut off in flight is in doubt (never sent again, never called sent), and those
// are no more than the requests in flight at the kill.
func TestKillMidSendEachTemplateSentOnce(t *testing.T) {
	const n = 200
	s := newWAServer(t, 100)
	for i := range n {
		s.emu.Script(fmt.Sprintf("55119%08d", 87000000+i), emulator.Behaviour{Slow: 150 * time.Millisecond, StatusDelay: 5 * time.Millisecond})
	}
	p := s.start(t)
	id := crashCampaign(t, p.url, n, `[{"channel":"whatsapp_template","max_attempts":1,"template":"lembrete","language":"pt_BR","params":["name","plano"]}]`)
	waitAccepted(t, s.emu, p, isTemplate, n/3, 20*time.Second)
	p.kill(t)
	atKill, _, _ := accepted(s.emu, isTemplate)
	t.Logf("killed with %d templates accepted", len(atKill))

	p = s.start(t)
	waitDone(t, p, id, n, 25*time.Second)
	if !strings.Contains(p.Output(), "interrupted") {
		t.Errorf("restart did not report interrupted attempts:\n%s", p.Output())
	}
	waitWebhooksQuiet(t, s.emu)
	p.stop(t)

	byKey, _, inFlight := acceptedOnce(t, s.emu, isTemplate, "template")
	db := openDB(t, s.dataDir)
	checkOnceEach(t, db, n, byKey, inFlight, campaigns.ChannelWhatsAppTemplate)
}

// waitWebhooksQuiet waits until the emulator has no webhook left to deliver: the
// statuses that settle sends a kill left in doubt reach the restarted process, however
// long it took to come back (the emulator retries each for 30 s).
func waitWebhooksQuiet(t *testing.T, emu *emulator.Emulator) {
	t.Helper()
	for deadline := time.Now().Add(45 * time.Second); emu.WebhooksPending() > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d webhooks still to deliver after 45 s", emu.WebhooksPending())
		}
	}
}

// checkOnceEach checks the stored side of a send-once run: every contact done with
// exactly one attempt on channel that was not interrupted; its outbox row sent
// when the emulator accepted the key, and never sent when it did not (in doubt
// when its request was cut off in flight, and its attempt not called sent).
func checkOnceEach(t *testing.T, db *storage.DB, n int, byKey map[string]int, inFlight int, channel campaigns.Channel) {
	t.Helper()
	ctx := context.Background()
	list, total, err := db.ListContacts(ctx, 1, storage.ContactFilter{Limit: 1000})
	if err != nil || total != n {
		t.Fatalf("%d contacts, %v", total, err)
	}
	inDoubt, interrupted := 0, 0
	for _, c := range list {
		if c.Status != campaigns.ContactDone {
			t.Errorf("contact %d is %s", c.ID, c.Status)
		}
		as, err := db.ListAttempts(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		var final []storage.Attempt
		for _, a := range as {
			if a.Outcome == "interrupted" {
				interrupted++
				continue
			}
			if a.Channel == channel {
				final = append(final, a)
			}
		}
		if len(final) != 1 {
			t.Errorf("contact %d: %d %s attempts besides interrupted ones: %+v", c.ID, len(final), channel, as)
			continue
		}
		a := final[0]
		key := fmt.Sprintf("contact-%d-attempt-%d", c.ID, len(as)-1-countInterrupted(as))
		m, err := db.OutboxByKey(ctx, key)
		if err != nil {
			t.Errorf("contact %d: outbox %s: %v", c.ID, key, err)
			continue
		}
		switch byKey[key] {
		case 1:
			if m.State != storage.OutboxSent {
				t.Errorf("contact %d: %s accepted by WhatsApp but outbox %s", c.ID, key, m.State)
			}
		case 0:
			if m.State == storage.OutboxSent || campaigns.Outcome(a.Outcome).Reached() {
				t.Errorf("contact %d: %s never reached WhatsApp, outbox %s, attempt %s: recorded sent without evidence", c.ID, key, m.State, a.Outcome)
			}
			if m.State == storage.OutboxInDoubt {
				inDoubt++
			}
		}
	}
	t.Logf("%d contacts, %d attempts interrupted by the kill, %d sends left in doubt (%d requests cut off in flight)", n, interrupted, inDoubt, inFlight)
	if interrupted == 0 {
		t.Error("no attempt was interrupted: the kill came too late to test anything")
	}
	if inDoubt > inFlight+inFlightSlack {
		t.Errorf("%d sends left in doubt, but only %d were in flight at the kill", inDoubt, inFlight)
	}
}

// inFlightSlack allows for requests the kill cut off while being written: they
// started (so are in doubt) but the emulator never read them whole.
const inFlightSlack = 2

func countInterrupted(as []storage.Attempt) int {
	n := 0
	for _, a := range as {
		if a.Outcome == "interrupted" {
			n++
		}
	}
	return n
}

// inboundWebhook is Meta's webhook for a text message a user sent.
func inboundWebhook(from, id, text string) []byte {
	b, _ := json.Marshal(map[string]any{"object": "whatsapp_business_account", "entry": []any{map[string]any{
		"id": "2000", "changes": []any{map[string]any{"field": "messages", "value": map[string]any{
			"messaging_product": "whatsapp",
			"metadata":          map[string]string{"display_phone_number": "15550001234", "phone_number_id": "1000"},
			"contacts":          []any{map[string]any{"wa_id": from, "profile": map[string]string{"name": "Cliente"}}},
			"messages": []any{map[string]any{"from": from, "id": id, "timestamp": fmt.Sprint(time.Now().Unix()),
				"type": "text", "text": map[string]string{"body": text}}},
		}}},
	}}})
	return b
}

func postWebhook(t *testing.T, url string, body []byte, signature string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if signature != "" {
		req.Header.Set(whatsapp.SignatureHeader, signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestServeMountsTheWhatsAppWebhook: turbina serve answers Meta's verification
// handshake at /webhooks/whatsapp, refuses a forged or missing signature with 401
// and keeps nothing of it, and applies a properly signed webhook.
func TestServeMountsTheWhatsAppWebhook(t *testing.T) {
	s := newWAServer(t, 80)
	p := s.start(t)
	// The sales UI's template list comes from the emulated account: approved only.
	var tl struct {
		Templates []struct {
			Name       string
			BodyParams int `json:"body_params"`
		}
	}
	call(t, "GET", p.url+"/api/v1/whatsapp/templates", crashAdmin, "", nil, 200, &tl)
	if len(tl.Templates) != 1 || tl.Templates[0].Name != "lembrete" || tl.Templates[0].BodyParams != 2 {
		t.Errorf("templates: %+v", tl)
	}
	crashCampaign(t, p.url, 1, `[{"channel":"whatsapp_template","max_attempts":1,"template":"lembrete","language":"pt_BR","params":["name","plano"]}]`)
	hook := p.url + "/webhooks/whatsapp"

	resp, err := http.Get(hook + "?hub.mode=subscribe&hub.verify_token=" + crashWAVerify + "&hub.challenge=1158201444")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "1158201444" {
		t.Errorf("handshake: %d %q", resp.StatusCode, b)
	}
	resp, err = http.Get(hook + "?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("handshake with a wrong verify token: %d", resp.StatusCode)
	}

	const from = "5511987000000"
	forged := inboundWebhook(from, "wamid.forged", "forged")
	for _, sig := range []string{whatsapp.Sign("not-the-app-secret", forged), "", "sha256=00", whatsapp.Sign(crashWASecret, []byte("other body"))} {
		if code := postWebhook(t, hook, forged, sig); code != http.StatusUnauthorized {
			t.Errorf("signature %q: %d, want 401", sig, code)
		}
	}
	genuine := inboundWebhook(from, "wamid.genuine", "genuine")
	if code := postWebhook(t, hook, genuine, whatsapp.Sign(crashWASecret, genuine)); code != http.StatusOK {
		t.Fatalf("signed webhook: %d", code)
	}
	// Another number of the same app: acknowledged, not applied.
	other := bytes.Replace(inboundWebhook(from, "wamid.other-number", "other"), []byte(`"1000"`), []byte(`"9999"`), 1)
	if !bytes.Contains(other, []byte(`"9999"`)) {
		t.Fatalf("the inbound webhook carries no phone_number_id \"1000\" to change: %s", other)
	}
	if code := postWebhook(t, hook, other, whatsapp.Sign(crashWASecret, other)); code != http.StatusOK {
		t.Fatalf("webhook for another number: %d, want 200", code)
	}
	// A signed body that does not parse: acknowledged and quarantined, shown to the admin.
	poison := []byte(`{"object":"page","entry":[]}`)
	if code := postWebhook(t, hook, poison, whatsapp.Sign(crashWASecret, poison)); code != http.StatusOK {
		t.Fatalf("signed poison batch: %d, want 200", code)
	}
	var q struct {
		Webhooks []struct{ Part, Body string }
	}
	call(t, "GET", p.url+"/api/v1/whatsapp/quarantine", crashAdmin, "", nil, 200, &q)
	if len(q.Webhooks) != 1 || q.Webhooks[0].Part != "batch" || q.Webhooks[0].Body != string(poison) {
		t.Errorf("quarantine %+v, want the poison batch", q)
	}
	time.Sleep(1500 * time.Millisecond) // the engine applies kept events at least every second
	p.stop(t)
	db := openDB(t, s.dataDir)
	list, _, err := db.ListContacts(context.Background(), 1, storage.ContactFilter{Limit: 10})
	if err != nil || len(list) != 1 {
		t.Fatalf("contacts %+v, %v", list, err)
	}
	msgs, err := db.ListWAMessages(context.Background(), list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	var in []string
	for _, m := range msgs {
		if m.Direction == "in" {
			in = append(in, m.WAID+":"+m.Body)
		}
	}
	if strings.Join(in, ",") != "wamid.genuine:genuine" {
		t.Errorf("inbound messages kept: %v", in)
	}
}

// TestKillMidCallsEachWhatsAppCallPlacedOnce: a campaign of WhatsApp calls is
// SIGKILLed while connects are in flight (the emulator answers slowly) and
// restarted on the same data. Every contact ends its ladder; no call connect is
// accepted twice for a key or a number: a connect a crash left in doubt is not
// placed again.
func TestKillMidCallsEachWhatsAppCallPlacedOnce(t *testing.T) {
	const n = 60
	s := newWAServer(t, 80)
	for i := range n {
		s.emu.Script(fmt.Sprintf("55119%08d", 87000000+i), emulator.Behaviour{Call: emulator.CallReject, AnswerAfter: 50 * time.Millisecond,
			Slow: 150 * time.Millisecond})
	}
	p := s.start(t)
	id := crashCampaign(t, p.url, n, `[{"channel":"whatsapp_call","max_attempts":1}]`)
	// Calls are paced for free agents: eight keep eight calls in flight.
	tokens := drillAgents(t, p.url, id, 8)
	driver := &agentDriver{url: p.url, tokens: tokens}
	driver.run(t)
	waitAccepted(t, s.emu, p, isConnect, n/4, 30*time.Second)
	p.kill(t)
	driver.halt()
	atKill, _, _ := accepted(s.emu, isConnect)
	t.Logf("killed with %d calls connected", len(atKill))

	p = s.start(t)
	driver = &agentDriver{url: p.url, tokens: tokens}
	driver.run(t)
	// Every contact's ladder ended: none pending and none with a call under way,
	// which the stop below would interrupt and leave pending again.
	for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		open := 0
		for _, status := range []string{"pending", "in_progress"} {
			var page struct{ Total int }
			call(t, "GET", p.url+"/api/v1/campaigns/"+id+"/contacts?limit=1&status="+status, crashAdmin, "", nil, 200, &page)
			open += page.Total
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d contacts pending or in progress:\n%s", open, tail(p.Output(), 40))
		}
	}
	if !strings.Contains(p.Output(), "interrupted") {
		t.Errorf("restart did not report interrupted attempts:\n%s", p.Output())
	}
	driver.halt()
	waitWebhooksQuiet(t, s.emu)
	p.stop(t)

	_, byTo, inFlight := acceptedOnce(t, s.emu, isConnect, "call connect")
	db := openDB(t, s.dataDir)
	list, total, err := db.ListContacts(context.Background(), 1, storage.ContactFilter{Limit: 1000})
	if err != nil || total != n {
		t.Fatalf("%d contacts, %v", total, err)
	}
	interrupted := 0
	for _, c := range list {
		if c.Status == campaigns.ContactPending {
			t.Errorf("contact %d still pending", c.ID)
		}
		as, err := db.ListAttempts(context.Background(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		interrupted += countInterrupted(as)
	}
	t.Logf("%d contacts, %d numbers called once each, %d attempts interrupted by the kill, %d connects cut off in flight",
		n, len(byTo), interrupted, inFlight)
	if interrupted == 0 {
		t.Error("no attempt was interrupted: the kill came too late to test anything")
	}
}
