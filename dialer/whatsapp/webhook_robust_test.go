package whatsapp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
)

// memQuarantine keeps quarantined bodies in memory; fail makes it refuse.
type memQuarantine struct {
	mu   sync.Mutex
	kept []quarantined
	fail bool
}

type quarantined struct{ part, reason, body string }

func (q *memQuarantine) QuarantineWebhook(_ context.Context, part, reason string, body []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fail {
		return errors.New("disk full")
	}
	q.kept = append(q.kept, quarantined{part, reason, string(body)})
	return nil
}

// logBuffer is a slog handler writing to a buffer safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// counter returns the value of the handler's metric name with label value.
func counter(t *testing.T, h *whatsapp.WebhookHandler, name, label string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(h.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestWebhookBodyLimitAndRefusals: a signed 2.8 MB batch (Meta sends up to 3 MB)
// is taken by default; beyond the configured limit the refusal is 413, logged
// with its reason and counted, as every other refusal is.
func TestWebhookBodyLimitAndRefusals(t *testing.T) {
	good := callStatusBody("wacid.big", "RINGING", "1749196895")
	// JSON allows whitespace anywhere between tokens: padding keeps the body valid.
	big := append(bytes.Repeat([]byte(" "), 2_800_000), good...)
	logs := &logBuffer{}
	sink := whatsapp.NewMemorySink()
	h, err := whatsapp.NewWebhookHandler(whatsapp.WebhookConfig{AppSecret: testSecret, VerifyToken: testVerify}, sink,
		slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if w := post(h, big, whatsapp.Sign(testSecret, big)); w.Code != http.StatusOK || len(sink.Events()) != 1 {
		t.Fatalf("2.8 MB batch: %d with %d events, want 200 with 1", w.Code, len(sink.Events()))
	}

	small := newHandlerWith(t, whatsapp.WebhookConfig{AppSecret: testSecret, VerifyToken: testVerify, MaxBodyBytes: 1024}, sink, logs)
	for _, tc := range []struct {
		name, reason string
		body         []byte
		sig          string
		code         int
	}{
		{"too large", whatsapp.RefusedTooLarge, big, whatsapp.Sign(testSecret, big), http.StatusRequestEntityTooLarge},
		{"bad signature", whatsapp.RefusedBadSignature, good, whatsapp.Sign("other", good), http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if w := post(small, tc.body, tc.sig); w.Code != tc.code {
				t.Fatalf("status %d, want %d", w.Code, tc.code)
			}
			if n := counter(t, small, "turbina_whatsapp_webhook_refused_total", tc.reason); n != 1 {
				t.Errorf("refused_total{reason=%q} = %v, want 1", tc.reason, n)
			}
			if !strings.Contains(logs.String(), "reason="+tc.reason) {
				t.Errorf("no log line with reason=%s in:\n%s", tc.reason, logs.String())
			}
		})
	}
}

func newHandlerWith(t *testing.T, cfg whatsapp.WebhookConfig, sink whatsapp.Sink, logs *logBuffer, opts ...whatsapp.WebhookOption) *whatsapp.WebhookHandler {
	t.Helper()
	h, err := whatsapp.NewWebhookHandler(cfg, sink, slog.New(slog.NewTextHandler(logs, nil)), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// statusChange is one messages change with one status of wamid.
func statusChange(phoneID, wamid, status, ts string) string {
	return fmt.Sprintf(`{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":%q},"statuses":[{"id":%q,"status":%q,"timestamp":%q,"recipient_id":"5511"}]}}`,
		phoneID, wamid, status, ts)
}

func batch(wabaID string, changes ...string) []byte {
	return fmt.Appendf(nil, `{"object":"whatsapp_business_account","entry":[{"id":%q,"changes":[%s]}]}`, wabaID, strings.Join(changes, ","))
}

// TestWebhookQuarantine: a signed batch that does not parse is answered 200 and
// kept whole with its error; a change that does not parse is kept alone and the
// batch's other changes are applied; when the quarantine cannot keep it the
// request is refused (503), so that Meta resends it.
func TestWebhookQuarantine(t *testing.T) {
	q := &memQuarantine{}
	sink := whatsapp.NewMemorySink()
	logs := &logBuffer{}
	h := newHandlerWith(t, whatsapp.WebhookConfig{AppSecret: testSecret}, sink, logs, whatsapp.WithQuarantine(q))

	poison := []byte(`{"object":"page","entry":[{"id":"1"}]}`)
	if w := post(h, poison, whatsapp.Sign(testSecret, poison)); w.Code != http.StatusOK {
		t.Fatalf("poison batch: %d, want 200", w.Code)
	}
	if len(q.kept) != 1 || q.kept[0].part != whatsapp.QuarantineBatch || q.kept[0].body != string(poison) || !strings.Contains(q.kept[0].reason, `"page"`) {
		t.Fatalf("kept %+v, want the whole batch with its error", q.kept)
	}

	bad := `{"field":"messages","value":{"metadata":{"phone_number_id":"10"},"statuses":[{"id":"wamid.B","status":"sent","timestamp":{"odd":true}}]}}`
	mixed := batch("1", statusChange("10", "wamid.A", "delivered", "1750263773"), bad, statusChange("10", "wamid.C", "read", "1750263774"))
	if w := post(h, mixed, whatsapp.Sign(testSecret, mixed)); w.Code != http.StatusOK {
		t.Fatalf("batch with one bad change: %d, want 200", w.Code)
	}
	var ids []string
	for _, ev := range sink.Events() {
		ids = append(ids, ev.Status.ID)
	}
	if strings.Join(ids, ",") != "wamid.A,wamid.C" {
		t.Errorf("applied %v, want wamid.A and wamid.C (the good changes)", ids)
	}
	if len(q.kept) != 2 || q.kept[1].part != whatsapp.QuarantineChange || q.kept[1].body != bad {
		t.Errorf("kept %+v, want the bad change alone", q.kept)
	}
	if n := counter(t, h, "turbina_whatsapp_webhook_quarantined_total", whatsapp.QuarantineBatch); n != 1 {
		t.Errorf("quarantined_total{part=batch} = %v, want 1", n)
	}
	if n := counter(t, h, "turbina_whatsapp_webhook_quarantined_total", whatsapp.QuarantineChange); n != 1 {
		t.Errorf("quarantined_total{part=change} = %v, want 1", n)
	}

	q.fail = true
	other := []byte(`{"object":"whatsapp_business_account","entry":"x"}`)
	if w := post(h, other, whatsapp.Sign(testSecret, other)); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("quarantine down: %d, want 503 (Meta resends)", w.Code)
	}
	if n := counter(t, h, "turbina_whatsapp_webhook_refused_total", whatsapp.RefusedQuarantineFailed); n != 1 {
		t.Errorf("refused_total{reason=%s} = %v, want 1", whatsapp.RefusedQuarantineFailed, n)
	}
}

// TestWebhookForeignIDsIgnored: events for another phone number or account than
// the configured ones are acknowledged, not delivered, logged and counted.
func TestWebhookForeignIDsIgnored(t *testing.T) {
	sink := whatsapp.NewMemorySink()
	logs := &logBuffer{}
	h := newHandlerWith(t, whatsapp.WebhookConfig{AppSecret: testSecret, PhoneNumberID: "10", WABAID: "1"}, sink, logs)
	body := []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[%s,%s]},{"id":"2","changes":[%s]}]}`,
		statusChange("10", "wamid.ours", "delivered", "1"), statusChange("99", "wamid.other-number", "failed", "2"),
		statusChange("10", "wamid.other-waba", "failed", "3")))
	if w := post(h, body, whatsapp.Sign(testSecret, body)); w.Code != http.StatusOK {
		t.Fatalf("%d, want 200", w.Code)
	}
	evs := sink.Events()
	if len(evs) != 1 || evs[0].Status.ID != "wamid.ours" {
		t.Fatalf("delivered %+v, want only wamid.ours", evs)
	}
	for _, reason := range []string{whatsapp.IgnoredOtherPhoneNumber, whatsapp.IgnoredOtherWABA} {
		if n := counter(t, h, "turbina_whatsapp_webhook_ignored_total", reason); n != 1 {
			t.Errorf("ignored_total{reason=%s} = %v, want 1", reason, n)
		}
		if !strings.Contains(logs.String(), "reason="+reason) {
			t.Errorf("no log line for %s", reason)
		}
	}
}

// TestParseTopLevelErrors: errors at the top of a messages change (Meta's
// out-of-band errors, an asynchronous 130429 here) are an event of their own.
func TestParseTopLevelErrors(t *testing.T) {
	evs, err := whatsapp.ParseWebhook(readMeta(t, "messages_errors_toplevel.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Type != whatsapp.EventMessagesError || len(evs[0].Errors) != 1 ||
		evs[0].Errors[0].Code != 130429 || evs[0].Errors[0].Kind() != whatsapp.KindThrottled || evs[0].PhoneNumberID != "106540352242922" || evs[0].Key == "" {
		t.Fatalf("events %+v, want one messages.error with 130429", evs)
	}
}
