package whatsapp_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
)

func TestSendTemplateAndStatuses(t *testing.T) {
	env := newEnv(t, nil)
	ctx := testCtx(t, 10*time.Second)
	res, err := env.client.SendTemplate(ctx, "outbox-1", whatsapp.TemplateMessage{
		To: "+5511987654321", Name: "order_update", Language: "pt_BR",
		BodyParams: []whatsapp.TemplateParam{{Text: "Ana"}, {Text: "#123"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deduplicated || len(res.MessageID) < 7 || res.MessageID[:6] != "wamid." {
		t.Fatalf("result = %+v", res)
	}
	reqs := env.requestsWithKey("outbox-1")
	if len(reqs) != 1 || reqs[0].Status != http.StatusOK || reqs[0].To != "5511987654321" || reqs[0].Type != "template" {
		t.Fatalf("emulator saw %+v", reqs)
	}
	// The body is what Meta documents: parameters in order, as text.
	var body struct {
		Template struct {
			Name     string `json:"name"`
			Language struct {
				Code string `json:"code"`
			} `json:"language"`
			Components []struct {
				Type       string `json:"type"`
				Parameters []struct {
					Type string `json:"type"`
					Text string `json:"text"`
				} `json:"parameters"`
			} `json:"components"`
		} `json:"template"`
	}
	if err := json.Unmarshal(reqs[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	tpl := body.Template
	if tpl.Name != "order_update" || tpl.Language.Code != "pt_BR" || len(tpl.Components) != 1 ||
		tpl.Components[0].Type != "body" || len(tpl.Components[0].Parameters) != 2 ||
		tpl.Components[0].Parameters[0].Text != "Ana" || tpl.Components[0].Parameters[1].Text != "#123" {
		t.Fatalf("template body = %s", reqs[0].Body)
	}
	evs := env.waitEvents(t, func(evs []whatsapp.Event) bool { return len(statusesOf(evs, res.MessageID)) == 3 })
	if got := statusesOf(evs, res.MessageID); !slices.Equal(got, []string{"sent", "delivered", "read"}) {
		t.Fatalf("statuses = %v", got)
	}
	for _, e := range evs {
		if e.Status != nil && e.Status.BizOpaque != "outbox-1" {
			t.Fatalf("status without the idempotency key: %+v", e.Status)
		}
	}

	// The same key again: no request, the first result.
	again, err := env.client.SendTemplate(ctx, "outbox-1", whatsapp.TemplateMessage{To: "5511987654321", Name: "order_update", Language: "pt_BR",
		BodyParams: []whatsapp.TemplateParam{{Text: "Ana"}, {Text: "#123"}}})
	if err != nil || !again.Deduplicated || again.MessageID != res.MessageID {
		t.Fatalf("resend = %+v, %v", again, err)
	}
	if n := env.emu.Accepted("outbox-1"); n != 1 {
		t.Fatalf("emulator accepted key %d times", n)
	}
}

func TestConcurrentSendsWithOneKeySendOnce(t *testing.T) {
	env := newEnv(t, nil)
	env.emu.Script("5511900000001", emulator.Behaviour{Slow: 50 * time.Millisecond})
	ctx := testCtx(t, 10*time.Second)
	results := make(chan whatsapp.SendResult, 8)
	for range 8 {
		go func() {
			r, err := env.client.SendTemplate(ctx, "k-conc", whatsapp.TemplateMessage{To: "5511900000001", Name: "no_params", Language: "en_US"})
			if err != nil {
				t.Error(err)
			}
			results <- r
		}()
	}
	ids := map[string]bool{}
	for range 8 {
		ids[(<-results).MessageID] = true
	}
	if len(ids) != 1 || len(env.requestsWithKey("k-conc")) != 1 {
		t.Fatalf("ids %v, requests %d", ids, len(env.requestsWithKey("k-conc")))
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name         string
		behaviour    emulator.Behaviour
		maxAttempts  int
		wantErr      whatsapp.Kind
		wantRequests int
	}{
		{"429 storm then success", emulator.Behaviour{Throttle: 4}, 6, "", 5},
		{"5xx then success", emulator.Behaviour{ServerErrors: 2}, 5, "", 3},
		{"429 then 5xx then success", emulator.Behaviour{Throttle: 1, ServerErrors: 1}, 5, "", 3},
		{"429 storm outlasts attempts", emulator.Behaviour{Throttle: 10}, 3, whatsapp.KindThrottled, 3},
		{"5xx outlasts attempts", emulator.Behaviour{ServerErrors: 10}, 2, whatsapp.KindServer, 2},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, func(c *whatsapp.Config) { c.MaxAttempts = tt.maxAttempts })
			number := "551190000010" + string(rune('0'+i))
			env.emu.Script(number, tt.behaviour)
			key := "retry-" + tt.name
			_, err := env.client.SendTemplate(testCtx(t, 10*time.Second), key, whatsapp.TemplateMessage{To: number, Name: "no_params", Language: "en_US"})
			if got := whatsapp.ErrorKind(err); (err == nil) != (tt.wantErr == "") || (err != nil && got != tt.wantErr) {
				t.Fatalf("err = %v (kind %s), want kind %q", err, got, tt.wantErr)
			}
			if n := len(env.requestsWithKey(key)); n != tt.wantRequests {
				t.Fatalf("emulator saw %d requests, want %d", n, tt.wantRequests)
			}
			wantAccepted := 1
			if tt.wantErr != "" {
				wantAccepted = 0
				var e *whatsapp.Error
				if !errors.As(err, &e) || e.Attempts != tt.maxAttempts || e.FBTraceID == "" || !e.Temporary() {
					t.Fatalf("error = %#v", e)
				}
			}
			if n := env.emu.Accepted(key); n != wantAccepted {
				t.Fatalf("sent %d times, want %d", n, wantAccepted)
			}
		})
	}
}

func TestPermanentErrorsAreClassifiedAndNotRetried(t *testing.T) {
	tests := []struct {
		name      string
		number    string
		behaviour emulator.Behaviour
		msg       whatsapp.TemplateMessage
		token     string
		wantKind  whatsapp.Kind
		wantCode  int
	}{
		{name: "unknown template 132001", msg: whatsapp.TemplateMessage{Name: "nope", Language: "en_US"}, wantKind: whatsapp.KindBadTemplate, wantCode: 132001},
		{name: "pending template 132001", msg: whatsapp.TemplateMessage{Name: "promo", Language: "en_US", BodyParams: []whatsapp.TemplateParam{{Text: "x"}}}, wantKind: whatsapp.KindBadTemplate, wantCode: 132001},
		{name: "parameter count 132000", msg: whatsapp.TemplateMessage{Name: "order_update", Language: "pt_BR", BodyParams: []whatsapp.TemplateParam{{Text: "x"}}}, wantKind: whatsapp.KindBadTemplate, wantCode: 132000},
		{name: "not on whatsapp 131026", behaviour: emulator.Behaviour{ErrorCode: 131026}, msg: whatsapp.TemplateMessage{Name: "no_params", Language: "en_US"}, wantKind: whatsapp.KindNotOnWhatsApp, wantCode: 131026},
		{name: "outside window 131047", behaviour: emulator.Behaviour{ErrorCode: 131047}, msg: whatsapp.TemplateMessage{Name: "no_params", Language: "en_US"}, wantKind: whatsapp.KindOutsideWindow, wantCode: 131047},
		{name: "bad token 190", token: "wrong", msg: whatsapp.TemplateMessage{Name: "no_params", Language: "en_US"}, wantKind: whatsapp.KindAuth, wantCode: 190},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, func(c *whatsapp.Config) {
				if tt.token != "" {
					c.AccessToken = tt.token
				}
			})
			number := "551190000020" + string(rune('0'+i))
			env.emu.Script(number, tt.behaviour)
			tt.msg.To = number
			key := "perm-" + tt.name
			_, err := env.client.SendTemplate(testCtx(t, 10*time.Second), key, tt.msg)
			var e *whatsapp.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *whatsapp.Error", err)
			}
			if e.Kind() != tt.wantKind || e.Code != tt.wantCode || e.Attempts != 1 || e.Temporary() || e.FBTraceID == "" || e.Message == "" {
				t.Fatalf("error = %+v kind %s", e, e.Kind())
			}
			if n := len(env.requestsWithKey(key)); n != 1 {
				t.Fatalf("permanent error retried: %d requests", n)
			}
		})
	}
}

func TestFailedStatusWebhook(t *testing.T) {
	env := newEnv(t, nil)
	env.emu.Script("5511900000300", emulator.Behaviour{FailCode: 131026})
	res, err := env.client.SendTemplate(testCtx(t, 10*time.Second), "fail-1", whatsapp.TemplateMessage{To: "5511900000300", Name: "no_params", Language: "en_US"})
	if err != nil {
		t.Fatal(err)
	}
	evs := env.waitEvents(t, func(evs []whatsapp.Event) bool { return slices.Contains(statusesOf(evs, res.MessageID), "failed") })
	for _, e := range evs {
		if e.Status != nil && e.Status.Status == "failed" {
			if len(e.Status.Errors) != 1 || e.Status.Errors[0].Code != 131026 || e.Status.Errors[0].Kind() != whatsapp.KindNotOnWhatsApp {
				t.Fatalf("failed status = %+v", e.Status)
			}
			return
		}
	}
}

func TestListTemplatesPagingAndValidation(t *testing.T) {
	env := newEnv(t, nil)
	ts, err := env.client.ListTemplates(testCtx(t, 10*time.Second), 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != len(testTemplates) {
		t.Fatalf("got %d templates, want %d", len(ts), len(testTemplates))
	}
	pages := 0
	for _, r := range env.emu.Requests() {
		if r.Method == http.MethodGet {
			pages++
		}
	}
	if pages != 3 {
		t.Fatalf("%d page requests, want 3", pages)
	}
	approved := whatsapp.ApprovedTemplates(ts)
	var names []string
	for _, a := range approved {
		names = append(names, a.Name)
	}
	if !slices.Equal(names, []string{"order_update", "call_you", "no_params", "reminder"}) {
		t.Fatalf("approved = %v", names)
	}
	byName := map[string]whatsapp.Template{}
	for _, t := range ts {
		byName[t.Name] = t
	}
	tests := []struct {
		template string
		columns  []string
		wantErr  bool
		count    int
	}{
		{"order_update", []string{"name", "order"}, false, 2},
		{"order_update", []string{"name"}, true, 2},
		{"reminder", []string{"a", "b", "c"}, false, 3},
		{"no_params", nil, false, 0},
		{"call_you", []string{"first_name", "topic"}, false, 2},
		{"call_you", []string{"topic", "first_name"}, true, 2},
		{"promo", []string{"name"}, true, 1}, // not approved
	}
	for _, tt := range tests {
		tpl := byName[tt.template]
		if tpl.BodyParamCount() != tt.count {
			t.Errorf("%s: %d params %v, want %d", tt.template, tpl.BodyParamCount(), tpl.BodyParams, tt.count)
		}
		if err := whatsapp.ValidateTemplateParams(tpl, tt.columns); (err != nil) != tt.wantErr {
			t.Errorf("%s %v: err = %v, wantErr %v", tt.template, tt.columns, err, tt.wantErr)
		}
	}
	if byName["call_you"].ParameterFormat != whatsapp.FormatNamed || byName["order_update"].Category != "UTILITY" || byName["promo"].Status != "PENDING" {
		t.Fatalf("fields not parsed: %+v", byName)
	}
}

func TestNamedTemplateSend(t *testing.T) {
	env := newEnv(t, nil)
	_, err := env.client.SendTemplate(testCtx(t, 10*time.Second), "named-1", whatsapp.TemplateMessage{To: "5511900000400", Name: "call_you", Language: "en_US",
		BodyParams: []whatsapp.TemplateParam{{Name: "first_name", Text: "Pablo"}, {Name: "topic", Text: "your order"}}})
	if err != nil {
		t.Fatal(err)
	}
	r := env.requestsWithKey("named-1")[0]
	if !json.Valid(r.Body) || !strings.Contains(string(r.Body), `"parameter_name":"first_name"`) {
		t.Fatalf("body = %s", r.Body)
	}
}
