package dialer

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/sipchannel"
	"github.com/turbina-dialer/turbina/dialer/wachannel"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/storage"
)

// BenchmarkFallbackLatency measures the fallback from SIP to WhatsApp: from the
// final response of a failed SIP call (a carrier answering 503, stored as the SIP
// attempt's end) to the WhatsApp connect request reaching the Cloud API emulator,
// which accepts the calls; API agents (no audio) take them and hang up at once.
// One contact per iteration, four agents; the target is p99 ≤ 100 ms:
//
//	GOFLAGS=-tags=opus,nolibopusfile go test -run '^$' -bench BenchmarkFallbackLatency -benchtime 200x ./dialer/
func BenchmarkFallbackLatency(b *testing.B) {
	const agents = 4
	n := b.N
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	carrier := sipptest.Start(b, "unavailable.xml", sipptest.Options{Calls: n})
	emu, err := emulator.Start(ctx, emulator.Config{AccessToken: waToken, AppSecret: waSecret, PhoneNumberID: "1000", WABAID: "2000"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { emu.Close() })
	waMedia, err := whatsapp.NewMedia(whatsapp.MediaConfig{LoopbackOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	client, err := whatsapp.NewClient(whatsapp.Config{BaseURL: emu.URL(), AccessToken: waToken, PhoneNumberID: "1000", WABAID: "2000"},
		whatsapp.WithMedia(waMedia))
	if err != nil {
		b.Fatal(err)
	}
	store, err := storage.Open(ctx, filepath.Join(b.TempDir(), "turbina.db"), storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	// The circuit never opens, so every contact gets a real 503 before falling back.
	o, err := sip.New(ctx, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}},
		FaultsToOpen: 1 << 30, ProbeInterval: sip.Duration(time.Hour)}, log)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { o.Close() })
	e := New(store, map[campaigns.Channel]channel.Channel{
		campaigns.ChannelSIP:          sipchannel.New(o),
		campaigns.ChannelWhatsAppCall: wachannel.NewCalls(client, store, "Podemos ligar?"),
	}, NewAgents(), Config{Tick: 50 * time.Millisecond, Sync: 100 * time.Millisecond, RingTimeout: 5 * time.Second, WhatsApp: client}, log)
	hooks, err := whatsapp.NewWebhookHandler(whatsapp.WebhookConfig{AppSecret: waSecret, VerifyToken: "v"}, e.WhatsAppSink(), log)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(hooks)
	b.Cleanup(srv.Close)
	emu.SetCallbackURL(srv.URL)

	c := campaigns.Campaign{Name: "fallback", CallerID: "+551130000000", Ladder: []campaigns.Rung{
		{Channel: campaigns.ChannelSIP, MaxAttempts: 1}, {Channel: campaigns.ChannelWhatsAppCall, MaxAttempts: 1}}}
	c.ApplyDefaults()
	c.Pacing.Mode = campaigns.PacingProgressive
	c.Window = campaigns.Window{Start: 0, End: 24*60 - 1}
	if err := store.CreateCampaign(ctx, tester, &c); err != nil {
		b.Fatal(err)
	}
	imp, err := store.BeginImport(ctx, tester, c.ID)
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if _, err := imp.Add(ctx, campaigns.Contact{Phone: fmt.Sprintf("+55119%08d", 86000000+i), Timezone: "UTC", Line: i + 2}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := imp.Finish(ctx, nil); err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Run(runCtx)
	}()
	b.Cleanup(func() { cancel(); <-done })
	pool := e.Agents()
	for i := range agents {
		u := storage.User{Username: fmt.Sprintf("bench-agent-%d", i), Role: storage.RoleAgent}
		if err := store.CreateUser(ctx, tester, &u); err != nil {
			b.Fatal(err)
		}
		pool.Login(u.ID, u.Username, []int64{c.ID}, time.Now())
		if _, err := pool.Ready(u.ID, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	// The agents hang up as soon as they are connected and close the call.
	go func() {
		for runCtx.Err() == nil {
			for _, a := range pool.List() {
				switch a.State {
				case AgentOnCall:
					e.Hangup(runCtx, a.ID)
				case AgentWrapUp:
					e.Disposition(runCtx, a.ID, Close{Code: "sale"})
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	b.ResetTimer()
	if _, err := store.UpdateCampaign(ctx, tester, c.ID, "bench", func(c *campaigns.Campaign) error {
		c.State = campaigns.StateRunning
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	e.CampaignChanged()
	var list []campaigns.Contact
	for deadline := time.Now().Add(time.Duration(n)*time.Second + 30*time.Second); ; time.Sleep(20 * time.Millisecond) {
		if list, _, err = store.ListContacts(ctx, c.ID, storage.ContactFilter{Limit: 1_000_000}); err != nil {
			b.Fatal(err)
		}
		if !slices.ContainsFunc(list, func(ct campaigns.Contact) bool { return ct.Status == campaigns.ContactPending }) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("contacts still pending after the deadline")
		}
	}
	b.StopTimer()

	connects := map[string]time.Time{}
	for _, r := range emu.Requests() {
		if r.Action == "connect" && strings.HasSuffix(r.Path, "/calls") {
			if _, ok := connects[r.To]; !ok {
				connects[r.To] = r.Time
			}
		}
	}
	var lat []time.Duration
	for _, ct := range list {
		as, err := store.ListAttempts(ctx, ct.ID)
		if err != nil {
			b.Fatal(err)
		}
		if len(as) < 2 || as[0].Channel != campaigns.ChannelSIP || as[0].SIPStatus != 503 || as[0].EndAt == nil {
			b.Fatalf("contact %s: attempts %+v", ct.Phone, as)
		}
		at, ok := connects[strings.TrimPrefix(ct.Phone, "+")]
		if !ok {
			b.Fatalf("contact %s: no WhatsApp connect request", ct.Phone)
		}
		lat = append(lat, at.Sub(*as[0].EndAt))
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(0, "ns/op")
}
