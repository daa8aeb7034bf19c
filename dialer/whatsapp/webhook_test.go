package whatsapp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
)

func newHandler(t testing.TB, sink whatsapp.Sink, maxBytes int64) *whatsapp.WebhookHandler {
	t.Helper()
	h, err := whatsapp.NewWebhookHandler(whatsapp.WebhookConfig{AppSecret: testSecret, VerifyToken: testVerify, MaxBodyBytes: maxBytes}, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func post(h http.Handler, body []byte, sig string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/webhooks/whatsapp", bytes.NewReader(body))
	if sig != "" {
		r.Header.Set(whatsapp.SignatureHeader, sig)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func callStatusBody(callID, status, ts string) []byte {
	return fmt.Appendf(nil, `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"calls","value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"10"},"statuses":[{"id":%q,"timestamp":%q,"type":"call","status":%q,"recipient_id":"5511"}]}}]}]}`, callID, ts, status)
}

func terminateBody(callID, ts string, duration int) []byte {
	return fmt.Appendf(nil, `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"calls","value":{"calls":[{"id":%q,"event":"terminate","timestamp":%q,"status":"COMPLETED","duration":%d,"direction":"BUSINESS_INITIATED","unknown_field":{"x":1}}]}}]}]}`, callID, ts, duration)
}

func TestWebhookVerificationHandshake(t *testing.T) {
	h := newHandler(t, whatsapp.NewMemorySink(), 0)
	tests := []struct {
		name     string
		query    url.Values
		wantCode int
		wantBody string
	}{
		{"ok", url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {testVerify}, "hub.challenge": {"1158201444"}}, 200, "1158201444"},
		{"wrong token", url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {"nope"}, "hub.challenge": {"1"}}, 403, ""},
		{"wrong mode", url.Values{"hub.mode": {"unsubscribe"}, "hub.verify_token": {testVerify}, "hub.challenge": {"1"}}, 403, ""},
		{"no token", url.Values{"hub.mode": {"subscribe"}, "hub.challenge": {"1"}}, 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/webhooks/whatsapp?"+tt.query.Encode(), nil))
			if w.Code != tt.wantCode || (tt.wantBody != "" && w.Body.String() != tt.wantBody) {
				t.Fatalf("got %d %q", w.Code, w.Body.String())
			}
		})
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPut, "/webhooks/whatsapp", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("PUT: %d", w.Code)
	}
}

func TestWebhookPostChecks(t *testing.T) {
	good := callStatusBody("wacid.A", "RINGING", "1749196895")
	big := append(bytes.Repeat([]byte(" "), 2048), good...)
	tests := []struct {
		name     string
		body     []byte
		sig      string
		wantCode int
		wantEvs  int
	}{
		{"valid", good, whatsapp.Sign(testSecret, good), 200, 1},
		{"forged signature", good, whatsapp.Sign("not-the-secret", good), 401, 0},
		{"missing signature", good, "", 401, 0},
		{"signature of another body", good, whatsapp.Sign(testSecret, []byte("{}")), 401, 0},
		{"sha1 prefix", good, strings.Replace(whatsapp.Sign(testSecret, good), "sha256=", "sha1=", 1), 401, 0},
		{"not hex", good, "sha256=zz", 401, 0},
		{"oversize", big, whatsapp.Sign(testSecret, big), 413, 0},
		// Signed but unparsable: acknowledged (Meta would resend it for days) and
		// quarantined; see TestWebhookQuarantine.
		{"malformed json", []byte(`{"object":`), whatsapp.Sign(testSecret, []byte(`{"object":`)), 200, 0},
		{"wrong object", []byte(`{"object":"page","entry":[]}`), whatsapp.Sign(testSecret, []byte(`{"object":"page","entry":[]}`)), 200, 0},
		{"bad timestamp", callStatusBody("wacid.A", "RINGING", "soon"), whatsapp.Sign(testSecret, callStatusBody("wacid.A", "RINGING", "soon")), 200, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := whatsapp.NewMemorySink()
			w := post(newHandler(t, sink, 1024), tt.body, tt.sig)
			if w.Code != tt.wantCode || len(sink.Events()) != tt.wantEvs {
				t.Fatalf("got %d with %d events, want %d with %d", w.Code, len(sink.Events()), tt.wantCode, tt.wantEvs)
			}
		})
	}
}

func TestWebhookDedupeAndSinkFailure(t *testing.T) {
	var fail bool
	var mu sync.Mutex
	mem := whatsapp.NewMemorySink()
	sink := whatsapp.SinkFunc(func(ctx context.Context, evs []whatsapp.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return errors.New("disk full")
		}
		return mem.HandleEvents(ctx, evs)
	})
	h := newHandler(t, sink, 0)
	ringing := callStatusBody("wacid.B", "RINGING", "100")
	term := terminateBody("wacid.B", "101", 0)

	if w := post(h, ringing, whatsapp.Sign(testSecret, ringing)); w.Code != 200 {
		t.Fatal(w.Code)
	}
	if w := post(h, ringing, whatsapp.Sign(testSecret, ringing)); w.Code != 200 {
		t.Fatal(w.Code) // a duplicate is acknowledged, not delivered again
	}
	mu.Lock()
	fail = true
	mu.Unlock()
	if w := post(h, term, whatsapp.Sign(testSecret, term)); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("sink failure answered %d", w.Code)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	// Meta's redelivery of the refused webhook must not be dropped as a duplicate.
	if w := post(h, term, whatsapp.Sign(testSecret, term)); w.Code != 200 {
		t.Fatal(w.Code)
	}
	evs := mem.Events()
	if len(evs) != 2 || evs[0].Type != whatsapp.EventCallStatus || evs[1].Type != whatsapp.EventCallTerminate {
		t.Fatalf("events %+v", evs)
	}
}

func TestWebhookConcurrentDuplicates(t *testing.T) {
	mem := whatsapp.NewMemorySink()
	h := newHandler(t, mem, 0)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Two bodies with the same events in opposite order, posted concurrently.
			a, b := callStatusBody("wacid.C", "RINGING", "5"), terminateBody("wacid.C", "6", 3)
			body := fmt.Appendf(nil, `{"object":"whatsapp_business_account","entry":[%s,%s]}`, entryOf(a), entryOf(b))
			if i%2 == 1 {
				body = fmt.Appendf(nil, `{"object":"whatsapp_business_account","entry":[%s,%s]}`, entryOf(b), entryOf(a))
			}
			if w := post(h, body, whatsapp.Sign(testSecret, body)); w.Code != 200 {
				t.Errorf("code %d", w.Code)
			}
		}()
	}
	wg.Wait()
	if n := len(mem.Events()); n != 2 {
		t.Fatalf("%d events delivered, want 2", n)
	}
}

// entryOf extracts the single entry object of a body built by the helpers above.
func entryOf(body []byte) string {
	s := string(body)
	i := strings.Index(s, `"entry":[`) + len(`"entry":[`)
	return s[i : len(s)-2]
}

func TestParseWebhookShapes(t *testing.T) {
	body := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"WABA","changes":[
	 {"field":"calls","value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"PN","display_phone_number":"1555"},
	  "calls":[{"id":"wacid.X","to":"5511","from":"1555","event":"connect","timestamp":"1749196895","direction":"BUSINESS_INITIATED",
	            "session":{"sdp_type":"answer","sdp":"v=0"},"biz_opaque_callback_data":"key-1"},
	           {"id":"wacid.X","event":"terminate","timestamp":"1749196950","status":"FAILED","start_time":"1749196900","end_time":"1749196950","duration":50,
	            "errors":[{"code":131000,"title":"Something went wrong"}]},
	           {"id":"wacid.X","event":"future_event","timestamp":"1"}]}},
	 {"field":"messages","value":{"metadata":{"phone_number_id":"PN"},
	  "statuses":[{"id":"wamid.M","status":"failed","timestamp":"1749196000","recipient_id":"5511","biz_opaque_callback_data":"k",
	              "errors":[{"code":131026,"title":"Message undeliverable","error_data":{"details":"not a WhatsApp user"}}]}],
	  "messages":[{"from":"5511","id":"wamid.R","timestamp":"1749196001","type":"interactive","context":{"from":"1555","id":"wamid.Q"},
	               "interactive":{"type":"call_permission_reply","call_permission_reply":{"response":"accept","is_permanent":false,"expiration_timestamp":1749800000,"response_source":"user_action"}}},
	              {"from":"5511","id":"wamid.T","timestamp":"1749196002","type":"text","text":{"body":"oi"}}]}}]}]}`)
	evs, err := whatsapp.ParseWebhook(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 5 {
		t.Fatalf("%d events: %+v", len(evs), evs)
	}
	c := evs[0]
	if c.Type != whatsapp.EventCallConnect || c.Call.SDP != "v=0" || c.Call.SDPType != "answer" || c.Call.BizOpaque != "key-1" ||
		c.WABAID != "WABA" || c.PhoneNumberID != "PN" || c.Time.Unix() != 1749196895 {
		t.Fatalf("connect %+v %+v", c, c.Call)
	}
	tm := evs[1]
	if tm.Type != whatsapp.EventCallTerminate || tm.Call.Duration.Seconds() != 50 || tm.Call.Status != "FAILED" || tm.Call.Errors[0].Code != 131000 || tm.Call.StartTime.Unix() != 1749196900 {
		t.Fatalf("terminate %+v", tm.Call)
	}
	st := evs[2]
	if st.Type != whatsapp.EventMessageStatus || st.Status.Errors[0].Details != "not a WhatsApp user" || st.Status.Errors[0].Kind() != whatsapp.KindNotOnWhatsApp || st.Key != "msg|wamid.M|failed" {
		t.Fatalf("status %+v", st.Status)
	}
	p := evs[3]
	if p.Type != whatsapp.EventPermissionReply || !p.Permission.Granted || p.Permission.ContextID != "wamid.Q" || p.Permission.Expires.Unix() != 1749800000 {
		t.Fatalf("permission %+v", p.Permission)
	}
	if m := evs[4]; m.Type != whatsapp.EventMessage || m.Message.Text != "oi" {
		t.Fatalf("message %+v", m.Message)
	}
}
