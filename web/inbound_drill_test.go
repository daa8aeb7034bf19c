package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/sipchannel"
	"github.com/turbina-dialer/turbina/dialer/wachannel"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/internal/storetest"
	"github.com/turbina-dialer/turbina/internal/testenv"
	"github.com/turbina-dialer/turbina/internal/watest"
	"github.com/turbina-dialer/turbina/media"
	"github.com/turbina-dialer/turbina/storage"
)

// TestInboundDrillTrunkCutCustomersCallIn is issue 17's drill at full size: the
// trunk is dead, eight agents work the campaign (over WhatsApp calls, through the
// agent API), and fifty customers (some known, most not) call the business on
// WhatsApp in a burst, each from a pion peer of the emulator. Every call is
// answered and either put through to an agent or, past the longest wait, given
// the apology and a call back; none is lost. The wallboard the supervisor's page
// reads (GET /api/v1/wallboard) showed callers waiting during the burst and
// counts them all afterwards, answered and abandoned, with the longest wait; and
// no outbound call is placed to a person while their own call is open.
func TestInboundDrillTrunkCutCustomersCallIn(t *testing.T) {
	// It asserts no bound a loaded machine breaks (see below): it may share the
	// machine with the browser tests.
	t.Parallel()
	requireOpus(t)
	const (
		agents  = 8
		callers = 50
		known   = 10 // callers who are contacts of the campaign, their journeys over
		list    = 8  // contacts the campaign dials meanwhile
		maxWait = 4 * time.Second
		talk    = 1500 * time.Millisecond
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, emu := newInboundScene(t, newEnv, maxWait)

	var callerNumbers, rows []string
	for i := range callers {
		n := fmt.Sprintf("+55119876506%02d", i)
		callerNumbers = append(callerNumbers, n)
		if i < known {
			rows = append(rows, n)
		}
	}
	for i := range list {
		n := fmt.Sprintf("+55119876507%02d", i)
		rows = append(rows, n)
		emu.Script(strings.TrimPrefix(n, "+"), emulator.Behaviour{Call: emulator.CallAccept, AnswerAfter: 300 * time.Millisecond})
	}
	sup := e.tokens[storage.RoleSupervisor]
	// The drill's campaign, the first created, is the default inbound queue.
	c := decode[campaignView](t, e.send(t, "POST", "/api/v1/campaigns", e.tokens[storage.RoleSales], map[string]any{
		"name": "Fila", "default_country": "BR", "caller_id": "+551130000000",
		"ladder":         []map[string]any{{"channel": "sip", "max_attempts": 1}, {"channel": "whatsapp_call", "max_attempts": 1}},
		"calling_window": map[string]string{"start": "00:00", "end": "23:59"},
		"schedule":       map[string]string{"timezone": "UTC"},
		"holidays":       map[string]any{"national": false},
	}), http.StatusCreated)
	if c.ID != "1" {
		t.Fatalf("the drill's campaign is %s, the engine's inbound queue 1", c.ID)
	}
	decode[any](t, e.send(t, "PATCH", "/api/v1/campaigns/"+c.ID+"/pacing", sup, map[string]any{"mode": "progressive"}), http.StatusOK)
	e.importCSV(t, c.ID, "phone,name,timezone\n"+strings.Join(rows, ",Cliente,UTC\n")+",Cliente,UTC\n")
	for _, n := range callerNumbers[:known] {
		storetest.EndJourney(ctx, t, e.db, contactOf(ctx, t, e.db, n).ID)
	}
	newDrillAgents(t, e, c.ID, agents, talk)
	decode[any](t, e.action(t, c.ID, "start", storage.RoleSupervisor), http.StatusOK)

	// The campaign is dialling (over WhatsApp: the trunk is dead) when the calls come.
	waitAttempts(ctx, t, e.db, "+5511987650700", "the campaign's first WhatsApp call", func(a storage.Attempt) bool {
		return a.Channel == campaigns.ChannelWhatsAppCall && a.Direction == storage.DirectionOutbound
	})
	// The supervisor watches the wallboard through the burst.
	watchCtx, stopWatching := context.WithCancel(ctx)
	watched := make(chan int)
	go func() {
		most := 0
		for watchCtx.Err() == nil {
			if snap, err := wallboardOf(watchCtx, e, sup); err == nil && len(snap.Inbound) == 1 {
				most = max(most, snap.Inbound[0].Waiting)
			}
			sleepCtx(watchCtx, 500*time.Millisecond)
		}
		watched <- most
	}()
	var wg sync.WaitGroup
	callIDs := make([]string, callers)
	for i, n := range callerNumbers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := emu.PlaceCall(ctx, n)
			if err != nil {
				t.Errorf("caller %s: %v", n, err)
			}
			callIDs[i] = id
		}()
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()

	// Every caller's call ends answered and put through, or missed and called back.
	var answered, missed int
	var longest time.Duration
	for _, n := range callerNumbers {
		as := waitAttempts(ctx, t, e.db, n, "caller "+n+"'s call settled", func(a storage.Attempt) bool {
			return a.Direction == storage.DirectionInbound && a.State == "ended"
		})
		in := as[slices.IndexFunc(as, func(a storage.Attempt) bool { return a.Direction == storage.DirectionInbound })]
		switch {
		case in.Outcome == string(campaigns.OutcomeConnected) && in.AgentID != 0 && in.ConnectAt != nil:
			answered++
			longest = max(longest, in.ConnectAt.Sub(*in.AnswerAt))
		case in.Outcome == string(campaigns.OutcomeInboundMissed) && in.AgentID == 0:
			missed++
			var d struct {
				WaitedMS int64 `json:"waited_ms"`
			}
			if err := json.Unmarshal(in.Detail, &d); err != nil {
				t.Errorf("caller %s: missed attempt's detail %s: %v", n, in.Detail, err)
			}
			waited := time.Duration(d.WaitedMS) * time.Millisecond
			// Left the queue for the apology at the longest wait, not before (how
			// soon after is the loaded machine's to say: no bound is asserted).
			if waited < maxWait || waited > in.EndAt.Sub(*in.AnswerAt) {
				t.Errorf("caller %s left the queue after %s, longest wait %s, call ended after %s", n, waited, maxWait, in.EndAt.Sub(*in.AnswerAt))
			}
			longest = max(longest, waited)
		default:
			t.Errorf("caller %s: inbound attempt %+v", n, in)
		}
		// No call of ours while theirs was open.
		for _, a := range as {
			if a.Direction == storage.DirectionOutbound && !a.CreatedAt.Before(in.CreatedAt) && in.EndAt != nil && a.CreatedAt.Before(*in.EndAt) {
				t.Errorf("caller %s was called (attempt %d) while on their own call (attempt %d)", n, a.ID, in.ID)
			}
		}
	}
	stopWatching()
	mostWaiting := <-watched
	for i, id := range callIDs {
		if st, ok := emu.CallStats(id); !ok || !st.Accepted {
			t.Errorf("caller %s's call %s was not answered: %+v", callerNumbers[i], id, st)
		}
	}
	// Eight agents talking 1.5 s each serve at most about two dozen callers
	// within the longest wait: the burst leaves some to the apology, whatever
	// the load, and the wallboard saw a queue.
	if answered+missed != callers || answered < agents || missed == 0 || mostWaiting < 2 {
		t.Fatalf("%d answered and %d missed of %d calls; at most %d waiting on the wallboard", answered, missed, callers, mostWaiting)
	}
	// The wallboard is a snapshot of the last second: the calls that ended in
	// it show in the next.
	var q dialer.InboundQueue
	for q.Answered+q.Abandoned < callers {
		snap, err := wallboardOf(ctx, e, sup)
		if err != nil || len(snap.Inbound) != 1 {
			t.Fatalf("wallboard's queues %+v, %v", snap.Inbound, err)
		}
		q = snap.Inbound[0]
		sleepCtx(ctx, 100*time.Millisecond)
	}
	// The known callers were put through as their own contacts; the queue
	// counts every inbound call.
	if q.CampaignName != "Fila" || q.Answered != answered || q.Abandoned != missed || q.Waiting != 0 ||
		q.LongestWaitSeconds < longest.Seconds()-0.001 || q.LongestWaitSeconds > longest.Seconds()+0.001 {
		t.Errorf("wallboard's queue %+v; want %d answered, %d abandoned, longest wait %s", q, answered, missed, longest)
	}
	t.Logf("drill: %d calls, %d answered, %d missed, longest wait %s, at most %d waiting", callers, answered, missed, longest, mostWaiting)
}

// requireOpus ends a test of WhatsApp calls' audio when the build has no Opus:
// a failure in CI, a skip elsewhere.
func requireOpus(t *testing.T) {
	t.Helper()
	if media.OpusAvailable {
		return
	}
	if testenv.InCI() {
		t.Fatal("built without the opus tag: make test builds with it")
	}
	t.Skip("built without the opus tag (make test builds with it)")
}

// newInboundScene is a server made by newEnv (newEnv, newUIEnv) with an engine
// whose SIP trunk is cut (nothing listens at its address) and whose WhatsApp is
// the emulator, with media, its webhooks signed; the first campaign created is
// the default inbound queue, its longest wait maxWait.
func newInboundScene(t *testing.T, newEnv func(*testing.T, Config) *apiEnv, maxWait time.Duration) (*apiEnv, *emulator.Emulator) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	waMedia, err := whatsapp.NewMedia(whatsapp.MediaConfig{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	emu, client := watest.Start(t, log, whatsapp.WithMedia(waMedia))
	o, err := sip.New(context.Background(), sip.Config{Trunks: []sip.TrunkConfig{{Name: "trunk", Address: fmt.Sprintf("127.0.0.1:%d", sipptest.FreePort(t))}},
		InviteTimeout: sip.Duration(300 * time.Millisecond), FaultsToOpen: 1, ProbeInterval: sip.Duration(time.Hour)}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	slot := &engineSlot{}
	e := newEnv(t, Config{Engine: slot})
	slot.set(runEngine(t, e, map[campaigns.Channel]channel.Channel{
		campaigns.ChannelSIP:          sipchannel.New(o),
		campaigns.ChannelWhatsAppCall: wachannel.NewCalls(client, e.db, "Podemos ligar?"),
	}, func(c *dialer.Config) { c.WhatsApp, c.InboundCampaign, c.InboundMaxWait = client, 1, maxWait }))
	hooks, err := whatsapp.NewWebhookHandler(whatsapp.WebhookConfig{AppSecret: watest.Secret, VerifyToken: "v"}, slot.get().WhatsAppSink(), log)
	if err != nil {
		t.Fatal(err)
	}
	hookSrv := httptest.NewServer(hooks)
	t.Cleanup(hookSrv.Close)
	emu.SetCallbackURL(hookSrv.URL)
	return e, emu
}

// drillAgents are agents of a campaign working through the agent API, each
// with its own token, watched through the supervisor's agent list.
type drillAgents struct {
	t      *testing.T
	e      *apiEnv
	tokens map[string]string // by agent ID
	done   chan struct{}
}

// newDrillAgents assigns n agents to campaign id, logs them in, ready, and has
// them work until the test ends.
func newDrillAgents(t *testing.T, e *apiEnv, id string, n int, talk time.Duration) {
	t.Helper()
	d := &drillAgents{t: t, e: e, tokens: map[string]string{}, done: make(chan struct{})}
	for i := range n {
		u, tok := e.users[storage.RoleAgent], e.tokens[storage.RoleAgent]
		if i > 0 {
			u, tok = e.createUser(t, fmt.Sprintf("agent%d", i+1), storage.RoleAgent)
		}
		decode[any](t, e.send(t, "POST", "/api/v1/campaigns/"+id+"/agents", e.tokens[storage.RoleSupervisor], map[string]any{"user_id": u.ID}), http.StatusOK)
		decode[any](t, e.send(t, "POST", "/api/v1/agent/login", tok, map[string]any{}), http.StatusOK)
		decode[any](t, e.send(t, "POST", "/api/v1/agent/ready", tok, map[string]any{}), http.StatusOK)
		d.tokens[fmt.Sprint(u.ID)] = tok
	}
	ctx, cancel := context.WithCancel(context.Background())
	go d.work(ctx, talk)
	t.Cleanup(func() { cancel(); <-d.done })
}

// work has each agent hang up a call after talk and close it as a sale, until
// ctx ends.
func (d *drillAgents) work(ctx context.Context, talk time.Duration) {
	defer close(d.done)
	sup := d.e.tokens[storage.RoleSupervisor]
	// Each hang-up and disposition is asked once: the list read next may
	// still show the state the request just ended.
	asked := map[string]bool{}
	for ctx.Err() == nil {
		var list struct{ Agents []dialer.Agent }
		if err := d.e.call(ctx, "GET", "/api/v1/agents", sup, nil, &list); err != nil {
			if ctx.Err() == nil {
				d.t.Errorf("agents: %v", err)
			}
			return
		}
		for _, a := range list.Agents {
			tok := d.tokens[fmt.Sprint(a.ID)]
			step := fmt.Sprint(a.ID, a.State, a.AttemptID)
			if asked[step] {
				continue
			}
			var err error
			switch {
			case a.State == dialer.AgentOnCall && time.Since(a.Since) >= talk:
				asked[step] = true
				err = d.e.call(ctx, "POST", "/api/v1/agent/hangup", tok, map[string]any{}, nil)
			case a.State == dialer.AgentWrapUp:
				asked[step] = true
				err = d.e.call(ctx, "POST", "/api/v1/agent/disposition", tok, map[string]any{"code": "sale"}, nil)
			}
			if err != nil && ctx.Err() == nil {
				d.t.Errorf("agent %d in %s: %v", a.ID, a.State, err)
			}
		}
		sleepCtx(ctx, 50*time.Millisecond)
	}
}

// call is an API request for a goroutine other than the test's: its failure,
// a status other than 200 included, is returned; out, when not nil, is the
// decoded answer.
func (e *apiEnv) call(ctx context.Context, method, path, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.srv.URL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		return fmt.Errorf("%s %s: %s %s", method, path, res.Status, b)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(res.Body).Decode(out)
}

// wallboardOf is the wallboard as the supervisor's page reads it.
func wallboardOf(ctx context.Context, e *apiEnv, token string) (WallboardSnapshot, error) {
	var snap WallboardSnapshot
	err := e.call(ctx, "GET", "/api/v1/wallboard", token, nil, &snap)
	return snap, err
}

// contactOf is the one contact with phone.
func contactOf(ctx context.Context, t *testing.T, db *storage.DB, phone string) campaigns.Contact {
	t.Helper()
	cs, err := db.ContactsByWhatsApp(ctx, phone)
	if err != nil || len(cs) != 1 {
		t.Fatalf("contacts with %s: %+v, %v", phone, cs, err)
	}
	return cs[0]
}

// waitAttempts waits until the contact with phone has an attempt satisfying ok,
// and returns its attempts; what names the wait when ctx ends first.
func waitAttempts(ctx context.Context, t *testing.T, db *storage.DB, phone, what string, ok func(storage.Attempt) bool) []storage.Attempt {
	t.Helper()
	for {
		cs, err := db.ContactsByWhatsApp(context.WithoutCancel(ctx), phone)
		if err != nil {
			t.Fatal(err)
		}
		var as []storage.Attempt
		if len(cs) == 1 {
			if as, err = db.ListAttempts(context.WithoutCancel(ctx), cs[0].ID); err != nil {
				t.Fatal(err)
			}
			if slices.ContainsFunc(as, ok) {
				return as
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("%s: never happened (contacts %+v, attempts %+v)", what, cs, as)
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
