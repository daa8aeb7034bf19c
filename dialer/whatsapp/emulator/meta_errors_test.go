package emulator_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
)

// graphPost posts body to the emulator's messages edge with query q and returns
// the status and Graph's error code (0 on success).
func graphPost(t *testing.T, e *emulator.Emulator, token, query string, body string) (int, int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.URL()+"/v23.0/"+e.PhoneNumberID()+"/messages"+query, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var g struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&g)
	return resp.StatusCode, g.Error.Code, g.Error.Message
}

const templateSend = `{"messaging_product":"whatsapp","recipient_type":"individual","to":"5511900000401","type":"template","template":{"name":"a","language":{"code":"en_US"}}}`

// TestThroughputErrorsAreHTTP400: Meta's error codes table gives 130429 (rate
// limit hit) and 131056 (pair rate limit hit) HTTP 400, not 429.
func TestThroughputErrorsAreHTTP400(t *testing.T) {
	e := start(t)
	e.Script("5511900000401", emulator.Behaviour{Throttle: 1, PairRateLimit: 1})
	for _, want := range []int{130429, 131056} {
		status, code, _ := graphPost(t, e, "tok", "", templateSend)
		if status != http.StatusBadRequest || code != want {
			t.Errorf("got HTTP %d code %d, want HTTP 400 code %d", status, code, want)
		}
	}
	if status, code, _ := graphPost(t, e, "tok", "", templateSend); status != http.StatusOK {
		t.Errorf("after the scripted errors: HTTP %d code %d", status, code)
	}
}

// TestRequireAppSecretProof: with "Require App Secret" the emulator refuses a
// call without appsecret_proof, or with a wrong one, as Graph does (code 100),
// and takes one with the HMAC-SHA256 of the token keyed with the app secret.
func TestRequireAppSecretProof(t *testing.T) {
	e, err := emulator.Start(context.Background(), emulator.Config{AccessToken: "tok", AppSecret: "sec", RequireAppSecretProof: true,
		Templates: []emulator.Template{{Name: "a", Language: "en_US", Status: "APPROVED", Body: "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	for _, tc := range []struct {
		name, query string
		status      int
		says        string
	}{
		{"missing", "", http.StatusBadRequest, "require an appsecret_proof"},
		{"wrong", "?appsecret_proof=" + whatsapp.AppSecretProof("other", "tok"), http.StatusBadRequest, "Invalid appsecret_proof"},
		{"right", "?appsecret_proof=" + whatsapp.AppSecretProof("sec", "tok"), http.StatusOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, code, msg := graphPost(t, e, "tok", tc.query, templateSend)
			if status != tc.status || (tc.says != "" && (code != 100 || !strings.Contains(msg, tc.says))) {
				t.Fatalf("HTTP %d code %d %q, want HTTP %d saying %q", status, code, msg, tc.status, tc.says)
			}
		})
	}
}

// TestWebhookRetriedLikeMeta: a webhook the receiver refuses is tried again
// with exponential backoff until it is taken, as Meta does (for up to 7 days),
// not given up after a few tries.
func TestWebhookRetriedLikeMeta(t *testing.T) {
	const refusals = 7
	var mu sync.Mutex
	var tries []time.Time
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		tries = append(tries, time.Now())
		if len(tries) <= refusals {
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(recv.Close)
	e, err := emulator.Start(context.Background(), emulator.Config{AccessToken: "tok", AppSecret: "sec", CallbackURL: recv.URL,
		WebhookMaxBackoff: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	e.UserMessage("5511900000402", "hello")
	for deadline := time.Now().Add(30 * time.Second); e.WebhooksDelivered() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not delivered after %d tries", len(tries))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(tries) != refusals+1 {
		t.Fatalf("%d tries, want %d", len(tries), refusals+1)
	}
	// Each wait at least doubles the first (20 ms) up to the cap: load can only
	// lengthen a wait, so a floor holds on a busy machine.
	for i := 1; i < len(tries); i++ {
		floor := min(20*time.Millisecond<<(i-1), 2*time.Second)
		if gap := tries[i].Sub(tries[i-1]); gap < floor {
			t.Errorf("wait %d was %v, want at least %v (exponential)", i, gap, floor)
		}
	}
}
