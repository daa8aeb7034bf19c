package whatsapp_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
)

const (
	testToken  = "EAAG-test-token-never-logged"
	testSecret = "app-secret-for-tests"
	testVerify = "verify-me"
)

// testEnv is a client wired to an emulator, with the webhook handler on loopback
// delivering to a memory sink and then to the client's calls.
type testEnv struct {
	emu    *emulator.Emulator
	client *whatsapp.Client
	sink   *whatsapp.MemorySink
	hook   *httptest.Server
}

var testTemplates = []emulator.Template{
	{Name: "order_update", Language: "pt_BR", Status: "APPROVED", Category: "UTILITY", Body: "Olá {{1}}, seu pedido {{2}} saiu. {{1}}, obrigado!"},
	{Name: "promo", Language: "en_US", Status: "PENDING", Category: "MARKETING", Body: "Hi {{1}}"},
	{Name: "call_you", Language: "en_US", Status: "APPROVED", Category: "UTILITY", Body: "Hi {{first_name}}, may we call about {{topic}}?", ParameterFormat: "named"},
	{Name: "no_params", Language: "en_US", Status: "APPROVED", Category: "UTILITY", Body: "We tried to reach you."},
	{Name: "paused_one", Language: "es", Status: "PAUSED", Category: "MARKETING", Body: "Hola {{1}}"},
	{Name: "reminder", Language: "en_US", Status: "APPROVED", Category: "UTILITY", Body: "Reminder {{1}} at {{2}} with {{3}}"},
	{Name: "rejected_one", Language: "en_US", Status: "REJECTED", Category: "MARKETING", Body: "x"},
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newEnv starts the emulator, a webhook server feeding a memory sink and the
// client, and the client, its configuration changed by mutate and its options
// added to by opts.
func newEnv(t testing.TB, mutate func(*whatsapp.Config), opts ...whatsapp.Option) *testEnv {
	t.Helper()
	env := &testEnv{sink: whatsapp.NewMemorySink()}
	// The handler's sink reaches the client through a closure because the client is
	// created after the server (its base URL is the emulator's).
	var client *whatsapp.Client
	h, err := whatsapp.NewWebhookHandler(whatsapp.WebhookConfig{AppSecret: testSecret, VerifyToken: testVerify}, whatsapp.MultiSink{
		env.sink,
		whatsapp.SinkFunc(func(ctx context.Context, evs []whatsapp.Event) error { return client.HandleEvents(ctx, evs) }),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	env.hook = httptest.NewServer(h)
	t.Cleanup(env.hook.Close)
	emu, err := emulator.Start(context.Background(), emulator.Config{
		AccessToken: testToken, AppSecret: testSecret, CallbackURL: env.hook.URL, Templates: testTemplates,
		StatusDelay: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	env.emu = emu
	media, err := whatsapp.NewMedia(whatsapp.MediaConfig{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := whatsapp.Config{
		BaseURL: emu.URL(), AccessToken: testToken, PhoneNumberID: emu.PhoneNumberID(), WABAID: emu.WABAID(),
		MessagesPerSecond: 1000, RequestTimeout: 5 * time.Second, MaxAttempts: 5,
		MinBackoff: 2 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	client, err = whatsapp.NewClient(cfg, append([]whatsapp.Option{whatsapp.WithMedia(media), whatsapp.WithJitterSeed(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	env.client = client
	return env
}

// requestsWithKey returns the emulator's requests carrying key.
func (env *testEnv) requestsWithKey(key string) []emulator.Request {
	var out []emulator.Request
	for _, r := range env.emu.Requests() {
		if r.Key == key {
			out = append(out, r)
		}
	}
	return out
}

// waitEvents waits until pred holds over the sink's events.
func (env *testEnv) waitEvents(t *testing.T, pred func([]whatsapp.Event) bool) []whatsapp.Event {
	t.Helper()
	evs, err := env.sink.WaitFor(testCtx(t, 10*time.Second), pred)
	if err != nil {
		t.Fatalf("%v; got %d events: %+v", err, len(evs), evs)
	}
	return evs
}

func statusesOf(evs []whatsapp.Event, wamid string) []string {
	var out []string
	for _, e := range evs {
		if e.Type == whatsapp.EventMessageStatus && e.Status.ID == wamid {
			out = append(out, e.Status.Status)
		}
	}
	return out
}
