package whatsapp_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
)

// TestClientSendsAppSecretProof: with an app secret configured, every Graph
// call (a send, a template listing) carries appsecret_proof, and an emulator
// requiring it ("Require App Secret") takes them; without one, it refuses
// (code 100).
func TestClientSendsAppSecretProof(t *testing.T) {
	emu, err := emulator.Start(context.Background(), emulator.Config{AccessToken: testToken, AppSecret: testSecret,
		RequireAppSecretProof: true, Templates: testTemplates})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	ctx := testCtx(t, 10*time.Second)
	client := func(secret string) *whatsapp.Client {
		c, err := whatsapp.NewClient(whatsapp.Config{BaseURL: emu.URL(), AccessToken: testToken, AppSecret: secret,
			PhoneNumberID: emu.PhoneNumberID(), WABAID: emu.WABAID(), MaxAttempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	with := client(testSecret)
	if _, err := with.ListTemplates(ctx, 0); err != nil {
		t.Fatalf("listing with appsecret_proof: %v", err)
	}
	if _, err := with.SendTemplate(ctx, "proof-1", whatsapp.TemplateMessage{To: "5511900000501", Name: "call_you", Language: "en_US",
		BodyParams: whatsapp.TextParams("Ana", "x")}); err != nil {
		t.Fatalf("send with appsecret_proof: %v", err)
	}
	_, err = client("").SendTemplate(ctx, "proof-2", whatsapp.TemplateMessage{To: "5511900000501", Name: "no_params", Language: "en_US"})
	var gerr *whatsapp.Error
	if !errors.As(err, &gerr) || gerr.Code != 100 || gerr.HTTPStatus != http.StatusBadRequest {
		t.Fatalf("send without appsecret_proof: %v, want Graph's code 100", err)
	}
}

// TestPairRateLimitWaitsSixSeconds: a send refused with 131056 (too many
// messages to one user) is sent again no sooner than PairRateLimitWait, the
// pace Meta allows towards one user, whatever the client's own backoff.
func TestPairRateLimitWaitsSixSeconds(t *testing.T) {
	env := newEnv(t, nil) // MinBackoff 2 ms, MaxBackoff 20 ms
	env.emu.Script("5511900000502", emulator.Behaviour{PairRateLimit: 1})
	ctx := testCtx(t, 30*time.Second)
	if _, err := env.client.SendTemplate(ctx, "pair-1", whatsapp.TemplateMessage{To: "5511900000502", Name: "no_params", Language: "en_US"}); err != nil {
		t.Fatal(err)
	}
	reqs := env.requestsWithKey("pair-1")
	if len(reqs) != 2 || reqs[0].Status != http.StatusBadRequest || reqs[1].Status != http.StatusOK {
		t.Fatalf("requests %+v, want a 131056 refusal then a success", reqs)
	}
	if gap := reqs[1].Time.Sub(reqs[0].Time); gap < whatsapp.PairRateLimitWait {
		t.Errorf("retried after %v, want at least %v", gap, whatsapp.PairRateLimitWait)
	}
	// The outbox's retry (RetryDelay) waits as long.
	if d, ok := env.client.RetryDelay(1, &whatsapp.Error{HTTPStatus: 400, Code: 131056}); !ok || d < whatsapp.PairRateLimitWait {
		t.Errorf("RetryDelay for 131056 = %v, %v; want at least %v", d, ok, whatsapp.PairRateLimitWait)
	}
}
