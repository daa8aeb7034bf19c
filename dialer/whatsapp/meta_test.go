package whatsapp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
)

// readMeta returns a payload of testdata/meta: an example from Meta's documents
// (see its README for the page of each).
func readMeta(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "meta", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParseMetaExamples feeds Meta's documented payloads through the parser and
// checks every field the engine relies on, so that the parser reads what Meta sends
// (string timestamps, a terminate's errors beside calls[], contacts[] names).
func TestParseMetaExamples(t *testing.T) {
	unix := func(s int64) time.Time { return time.Unix(s, 0).UTC() }
	tests := []struct {
		file string
		want []whatsapp.Event
	}{
		{"calls_connect_business.json", []whatsapp.Event{{
			Type: whatsapp.EventCallConnect, Key: "call|wacid.HBgLMTIxODU1NTI4MjgVAgARGCAyODRQIAFRoA|connect|1749196895",
			Time: unix(1749196895), WABAID: "366634483210360", PhoneNumberID: "436666719526789",
			Call: &whatsapp.CallEvent{ID: "wacid.HBgLMTIxODU1NTI4MjgVAgARGCAyODRQIAFRoA", From: "13175551399", To: "12185552828",
				Direction: "BUSINESS_INITIATED", SDPType: "answer", SDP: "<RFC 8866 SDP>", BizOpaque: "TRx334DUDFTI4Mj"},
		}}},
		{"calls_status.json", []whatsapp.Event{{
			Type: whatsapp.EventCallStatus, Key: "call|wacid.ABGGFjFVU2AfAgo6V|status:RINGING|1671644824",
			Time: unix(1671644824), WABAID: "366634483210360", PhoneNumberID: "436666719526789",
			Call: &whatsapp.CallEvent{ID: "wacid.ABGGFjFVU2AfAgo6V", To: "163155536021", Status: "RINGING", BizOpaque: "random_string"},
		}}},
		{"calls_terminate.json", []whatsapp.Event{{
			Type: whatsapp.EventCallTerminate, Key: "call|wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gh|terminate|1671644824",
			Time: unix(1671644824), WABAID: "366634483210360", PhoneNumberID: "436666719526789",
			Call: &whatsapp.CallEvent{ID: "wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gh", From: "16315553602", To: "16315553601",
				Direction: "BUSINESS_INITIATED", Status: "FAILED", BizOpaque: "random_string",
				StartTime: unix(1671644824), EndTime: unix(1671644944), Duration: 120 * time.Second,
				Errors: []whatsapp.WebhookError{{Code: 138021, Message: "Media receive timeout",
					Details: "The WhatsApp client terminated the call due to not receiving any media for a long time."}}},
		}}},
		{"calls_connect_user.json", []whatsapp.Event{{
			Type: whatsapp.EventCallConnect, Key: "call|wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gh|connect|1671644824",
			Time: unix(1671644824), WABAID: "366634483210360", PhoneNumberID: "436666719526789",
			Call: &whatsapp.CallEvent{ID: "wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gh", From: "13175551399", To: "16315553601",
				Direction: "USER_INITIATED", SDPType: "offer", SDP: "<<RFC 8866 SDP>>"},
		}}},
		{"messages_status_sent.json", []whatsapp.Event{{
			Type: whatsapp.EventMessageStatus, Key: "msg|wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA|sent",
			Time: unix(1750263773), WABAID: "102290129340398", PhoneNumberID: "106540352242922",
			Status: &whatsapp.MessageStatus{ID: "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA", Status: "sent",
				RecipientID: "16505551234", BizOpaque: "outbox-4711"},
		}}},
		{"messages_status_failed.json", []whatsapp.Event{{
			Type: whatsapp.EventMessageStatus, Key: "msg|wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA|failed",
			Time: unix(1750263773), WABAID: "102290129340398", PhoneNumberID: "106540352242922",
			Status: &whatsapp.MessageStatus{ID: "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA", Status: "failed",
				RecipientID: "16505551234", BizOpaque: "outbox-4711",
				Errors: []whatsapp.WebhookError{{Code: 131026, Title: "Message undeliverable", Message: "Message undeliverable", Details: "Message Undeliverable."}}},
		}}},
		{"messages_text.json", []whatsapp.Event{{
			Type: whatsapp.EventMessage, Key: "in|ABGGFlA5Fpa", Time: unix(1504902988), WABAID: "0", PhoneNumberID: "123456123",
			Message: &whatsapp.InboundMessage{ID: "ABGGFlA5Fpa", From: "16315551181", Name: "test user name", Type: "text", Text: "this is a text message"},
		}}},
		{"messages_call_permission_reply.json", []whatsapp.Event{{
			Type: whatsapp.EventPermissionReply, Key: "in|wamid.sH0kFlaCGg0xcvZbgmg90lHrg2dL",
			Time: unix(1749416383), WABAID: "102290129340398", PhoneNumberID: "106540352242922",
			Permission: &whatsapp.PermissionReply{MessageID: "wamid.sH0kFlaCGg0xcvZbgmg90lHrg2dL", ContextID: "wamid.gBGGFlaCmZ9plHrf2Mh-o",
				From: "16505551234", Granted: true, Expires: unix(1750021183), Source: "user_action"},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := whatsapp.ParseWebhook(readMeta(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parsed\n%s\nwant\n%s", dump(got), dump(tt.want))
			}
		})
	}
}

// TestParseTerminateStatusCase: the business-initiated calls page spells the
// terminate status "Completed"/"Failed" in one example and COMPLETED/FAILED in
// another; the parser gives the state machine one spelling.
func TestParseTerminateStatusCase(t *testing.T) {
	for _, status := range []string{"Completed", "COMPLETED", "completed"} {
		evs, err := whatsapp.ParseWebhook([]byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"calls","value":{"calls":[{"id":"wacid.C","event":"terminate","timestamp":"1","status":"` + status + `"}]}}]}]}`))
		if err != nil || len(evs) != 1 || evs[0].Call.Status != "COMPLETED" {
			t.Fatalf("%s: %v %s", status, err, dump(evs))
		}
	}
}

func dump(evs []whatsapp.Event) string {
	s := ""
	for _, e := range evs {
		s += fmt.Sprintf("  %+v call=%+v status=%+v message=%+v permission=%+v\n", e, e.Call, e.Status, e.Message, e.Permission)
	}
	return s
}

// rawRecorder keeps every webhook body before handing the request on.
type rawRecorder struct {
	next   http.Handler
	mu     sync.Mutex
	bodies [][]byte
}

func (r *rawRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.bodies = append(r.bodies, b)
	r.mu.Unlock()
	req.Body = io.NopCloser(bytes.NewReader(b))
	r.next.ServeHTTP(w, req)
}

func (r *rawRecorder) all() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bodies)
}

// jsonPaths returns the paths of a JSON document's leaves with their JSON type
// ("entry[].changes[].value.calls[].timestamp:string"): the shape of a payload
// without its values.
func jsonPaths(t testing.TB, b []byte) map[string]bool {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(strings.TrimPrefix(prefix+"."+k, "."), e)
			}
		case []any:
			for _, e := range x {
				walk(prefix+"[]", e)
			}
		case string:
			out[prefix+":string"] = true
		case float64:
			out[prefix+":number"] = true
		case bool:
			out[prefix+":bool"] = true
		default:
			out[prefix+":null"] = true
		}
	}
	walk("", v)
	return out
}

// metaKind names the documented example a webhook body is an instance of.
func metaKind(t testing.TB, b []byte) string {
	t.Helper()
	var p struct {
		Entry []struct {
			Changes []struct {
				Field string `json:"field"`
				Value struct {
					Calls []struct {
						Event     string `json:"event"`
						Direction string `json:"direction"`
					} `json:"calls"`
					Statuses []struct {
						Status string `json:"status"`
					} `json:"statuses"`
					Messages []struct {
						Type string `json:"type"`
					} `json:"messages"`
					Errors []json.RawMessage `json:"errors"`
				} `json:"value"`
			} `json:"changes"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(b, &p); err != nil || len(p.Entry) != 1 || len(p.Entry[0].Changes) != 1 {
		t.Fatalf("not one change: %s", b)
	}
	ch := p.Entry[0].Changes[0]
	v := ch.Value
	switch {
	case ch.Field == "calls" && len(v.Calls) == 1 && v.Calls[0].Event == "connect" && v.Calls[0].Direction == "USER_INITIATED":
		return "calls_connect_user.json"
	case ch.Field == "calls" && len(v.Calls) == 1 && v.Calls[0].Event == "connect":
		return "calls_connect_business.json"
	case ch.Field == "calls" && len(v.Calls) == 1 && v.Calls[0].Event == "terminate":
		return "calls_terminate.json"
	case ch.Field == "calls" && len(v.Statuses) == 1:
		return "calls_status.json"
	case ch.Field == "messages" && len(v.Statuses) == 1 && v.Statuses[0].Status == "failed":
		return "messages_status_failed.json"
	case ch.Field == "messages" && len(v.Statuses) == 1:
		return "messages_status_sent.json"
	case ch.Field == "messages" && len(v.Messages) == 1 && v.Messages[0].Type == "text":
		return "messages_text.json"
	case ch.Field == "messages" && len(v.Messages) == 1 && v.Messages[0].Type == "interactive":
		return "messages_call_permission_reply.json"
	case ch.Field == "messages" && len(v.Errors) > 0 && len(v.Statuses) == 0 && len(v.Messages) == 0:
		return "messages_errors_toplevel.json"
	}
	t.Fatalf("webhook of no documented kind: %s", b)
	return ""
}

// TestEmulatorWebhooksMatchMeta drives the emulator through a business-initiated
// call, a user-initiated call, template sends (delivered and failed), a user message
// and a call permission reply, and compares every webhook it sends with Meta's
// documented example of its kind, field by field and JSON type by JSON type: the
// emulator sends no field Meta's example lacks, and lacks none Meta's example has
// beyond those the documents call optional.
func TestEmulatorWebhooksMatchMeta(t *testing.T) {
	env := newEnv(t, nil)
	rec := &rawRecorder{next: env.hook.Config.Handler}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	env.emu.SetCallbackURL(srv.URL)
	ctx := testCtx(t, 20*time.Second)

	callee, caller, reader, failing, throttledLate := "5511900000101", "5511900000102", "5511900000103", "5511900000104", "5511900000105"
	env.emu.Script(callee, emulator.Behaviour{Call: emulator.CallAccept, HangupAfter: 20 * time.Millisecond})
	env.emu.Script(failing, emulator.Behaviour{FailCode: 131026})
	env.emu.Script(throttledLate, emulator.Behaviour{AsyncErrorCode: 130429})
	env.emu.Script(reader, emulator.Behaviour{Permission: emulator.PermissionGrant})

	call, err := env.client.Dial(ctx, "meta-shape-call", callee, whatsapp.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	collectUpdates(t, call)
	if _, err := env.emu.PlaceCall(ctx, caller); err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{reader, failing, throttledLate} {
		if _, err := env.client.SendTemplate(ctx, "meta-shape-"+to, whatsapp.TemplateMessage{To: to, Name: "no_params", Language: "en_US"}); err != nil {
			t.Fatal(err)
		}
	}
	// The user's message opens the customer service window the interactive
	// permission request needs.
	env.emu.UserMessage(reader, "may you call me?")
	if _, err := env.client.RequestCallPermission(ctx, "meta-shape-perm", reader, "May we call you?"); err != nil {
		t.Fatal(err)
	}
	env.waitEvents(t, func(evs []whatsapp.Event) bool {
		return slices.ContainsFunc(evs, func(e whatsapp.Event) bool { return e.Type == whatsapp.EventPermissionReply }) &&
			slices.ContainsFunc(evs, func(e whatsapp.Event) bool { return e.Type == whatsapp.EventMessage }) &&
			slices.ContainsFunc(evs, func(e whatsapp.Event) bool { return e.Type == whatsapp.EventMessagesError }) &&
			slices.ContainsFunc(evs, func(e whatsapp.Event) bool {
				return e.Type == whatsapp.EventMessageStatus && e.Status.Status == "failed"
			}) &&
			slices.ContainsFunc(evs, func(e whatsapp.Event) bool {
				return e.Type == whatsapp.EventCallConnect && e.Call.Direction == "USER_INITIATED"
			})
	})

	// Fields Meta's examples show that the documents call optional or that belong to
	// features the emulator does not play (business-scoped user IDs and usernames, the
	// legacy connection object, a failed call's errors).
	optional := func(path string) bool {
		for _, s := range []string{"user_id", "username", ".connection.", ".errors[]"} {
			if strings.Contains(path, s) {
				return true
			}
		}
		return false
	}
	seen := map[string]int{}
	for _, body := range rec.all() {
		kind := metaKind(t, body)
		seen[kind]++
		got, want := jsonPaths(t, body), jsonPaths(t, readMeta(t, kind))
		var status string
		if kind == "messages_status_sent.json" {
			status = statusOf(t, body)
		}
		for p := range got {
			// Inbound interactive messages carry their type; the permission reply
			// sample shows only the fields it is about.
			if !want[p] && !(kind == "messages_call_permission_reply.json" && p == "entry[].changes[].value.messages[].type:string") {
				t.Errorf("%s: the emulator sends %s, Meta's example has no such field (%s)", kind, p, body)
			}
		}
		for p := range want {
			// Pricing comes with sent and with one of delivered or read.
			if !got[p] && !optional(p) && !(status == "read" && strings.Contains(p, ".pricing.")) {
				t.Errorf("%s: the emulator lacks %s (%s)", kind, p, body)
			}
		}
	}
	for _, kind := range []string{"calls_connect_business.json", "calls_status.json", "calls_terminate.json", "calls_connect_user.json",
		"messages_status_sent.json", "messages_status_failed.json", "messages_text.json", "messages_call_permission_reply.json",
		"messages_errors_toplevel.json"} {
		if seen[kind] == 0 {
			t.Errorf("no webhook of kind %s was compared; got %v", kind, seen)
		}
	}
}

func statusOf(t testing.TB, b []byte) string {
	t.Helper()
	evs, err := whatsapp.ParseWebhook(b)
	if err != nil || len(evs) != 1 || evs[0].Status == nil {
		t.Fatalf("%v %s", err, b)
	}
	return evs[0].Status.Status
}

// TestClientRequestsMatchMeta compares the body of every request the client sends
// with Meta's documented request body for its action, path by path and JSON type by
// JSON type: the client sends exactly the documented fields. And the emulator's
// answer to each with Meta's documented success response for it: the emulator
// answers exactly the documented fields, which the client read (it got its
// call and message IDs from them).
func TestClientRequestsMatchMeta(t *testing.T) {
	answers := &answerRecorder{next: http.DefaultTransport}
	env := newEnv(t, nil, whatsapp.WithHTTPClient(&http.Client{Transport: answers}))
	ctx := testCtx(t, 20*time.Second)
	callee, caller, user := "5511900000201", "5511900000202", "5511900000203"
	env.emu.Script(callee, emulator.Behaviour{Call: emulator.CallAccept})

	call, err := env.client.Dial(ctx, "meta-req-call", callee, whatsapp.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitPhase(t, call, whatsapp.PhaseAccepted)
	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	callID, err := env.emu.PlaceCall(ctx, caller)
	if err != nil {
		t.Fatal(err)
	}
	evs := env.waitEvents(t, func(evs []whatsapp.Event) bool {
		return slices.ContainsFunc(evs, func(e whatsapp.Event) bool { return e.Type == whatsapp.EventCallConnect && e.CallID() == callID })
	})
	offer := evs[slices.IndexFunc(evs, func(e whatsapp.Event) bool { return e.Type == whatsapp.EventCallConnect && e.CallID() == callID })]
	in, err := env.client.Accept(ctx, "meta-req-accept", offer)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := env.client.SendTemplate(ctx, "meta-req-template", whatsapp.TemplateMessage{To: user, Name: "order_update", Language: "pt_BR",
		BodyParams: []whatsapp.TemplateParam{{Text: "Ana"}, {Text: "4711"}}}); err != nil {
		t.Fatal(err)
	}
	env.emu.UserMessage(user, "hello") // opens the customer service window
	if _, err := env.client.RequestCallPermission(ctx, "meta-req-perm", user, "May we call you?"); err != nil {
		t.Fatal(err)
	}

	// biz_opaque_callback_data on a message send: the status webhooks reference
	// echoes it "only included if message sent with biz_opaque_callback_data".
	const bizOpaque = "biz_opaque_callback_data:string"
	seen := map[string]int{}
	for _, r := range env.emu.Requests() {
		if r.Method != http.MethodPost {
			continue
		}
		var kind string
		switch {
		case strings.HasSuffix(r.Path, "/calls"):
			kind = "req_calls_" + r.Action + ".json"
		case r.Type == "template":
			kind = "req_messages_template.json"
		case r.Type == "interactive":
			kind = "req_messages_call_permission_request.json"
		default:
			t.Fatalf("unexpected request %s %s", r.Path, r.Body)
		}
		seen[kind]++
		got, want := jsonPaths(t, r.Body), jsonPaths(t, readMeta(t, kind))
		if strings.HasPrefix(kind, "req_messages_") {
			want[bizOpaque] = true
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: client sends %v, Meta documents %v (%s)", kind, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)), r.Body)
		}
	}
	for _, kind := range []string{"req_calls_connect.json", "req_calls_terminate.json", "req_calls_pre_accept.json", "req_calls_accept.json",
		"req_messages_template.json", "req_messages_call_permission_request.json"} {
		if seen[kind] == 0 {
			t.Errorf("no request of kind %s was compared; got %v", kind, seen)
		}
	}

	answered := map[string]int{}
	for _, a := range answers.all() {
		kind := answerKind(t, a)
		if kind == "" {
			continue
		}
		answered[kind]++
		got, want := jsonPaths(t, a.answer), jsonPaths(t, readMeta(t, kind))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: the emulator answers %v, Meta documents %v (%s)", kind, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)), a.answer)
		}
	}
	for _, kind := range []string{"resp_calls_connect.json", "resp_calls_success.json", "resp_messages_template.json", "resp_messages_call_permission_request.json"} {
		if answered[kind] == 0 {
			t.Errorf("no answer of kind %s was compared; got %v", kind, answered)
		}
	}
}

// answerKind names the testdata/meta file of Meta's documented success
// response to a's request, or "" for a request this test does not compare
// (the listings and reads, and refusals).
func answerKind(t *testing.T, a recordedAnswer) string {
	t.Helper()
	if a.method != http.MethodPost || a.status != http.StatusOK {
		return ""
	}
	var req struct{ Action, Type string }
	if err := json.Unmarshal(a.request, &req); err != nil {
		t.Fatalf("request %s: %v", a.request, err)
	}
	switch {
	case strings.HasSuffix(a.path, "/calls") && req.Action == "connect":
		return "resp_calls_connect.json"
	case strings.HasSuffix(a.path, "/calls"):
		return "resp_calls_success.json"
	case strings.HasSuffix(a.path, "/messages") && req.Type == "template":
		return "resp_messages_template.json"
	case strings.HasSuffix(a.path, "/messages") && req.Type == "interactive":
		return "resp_messages_call_permission_request.json"
	}
	t.Fatalf("answer to an unexpected request %s %s", a.path, a.request)
	return ""
}

// answerRecorder is an HTTP transport that keeps every answer the client got,
// with its request.
type answerRecorder struct {
	next    http.RoundTripper
	mu      sync.Mutex
	answers []recordedAnswer
}

// recordedAnswer is one request the client made and the answer it got.
type recordedAnswer struct {
	method, path    string
	request, answer []byte
	status          int
}

func (r *answerRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(answer))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answers = append(r.answers, recordedAnswer{method: req.Method, path: req.URL.Path, request: body, answer: answer, status: resp.StatusCode})
	return resp, nil
}

func (r *answerRecorder) all() []recordedAnswer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.answers)
}

// TestClientReadsMetaAnswers: the client reads the message ID from Meta's own
// documented answers to a template send and to a free-form call permission
// request (the one without message_status), served verbatim.
func TestClientReadsMetaAnswers(t *testing.T) {
	for _, tc := range []struct {
		file, want string
		send       func(ctx context.Context, c *whatsapp.Client) (whatsapp.SendResult, error)
	}{
		{"resp_messages_template.json", "wamid.HBgLMTMyMzI4NjU2NzgVAgARGBJBQzRBRDBEMDEwQzVBM0M0QkIA",
			func(ctx context.Context, c *whatsapp.Client) (whatsapp.SendResult, error) {
				return c.SendTemplate(ctx, "k1", whatsapp.TemplateMessage{To: "+15551234567", Name: "no_params", Language: "en_US"})
			}},
		{"resp_messages_call_permission_request.json", "wamid.gBGGFlaCmZ9plHrf2Mh-o",
			func(ctx context.Context, c *whatsapp.Client) (whatsapp.SendResult, error) {
				return c.RequestCallPermission(ctx, "k2", "+14085551234", "May we call you?")
			}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			answer := readMeta(t, tc.file)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/messages"):
					w.Header().Set("Content-Type", "application/json")
					w.Write(answer)
				case strings.HasSuffix(r.URL.Path, "/message_templates"):
					// The template's listing, before a send: a positional one.
					w.Header().Set("Content-Type", "application/json")
					fmt.Fprint(w, `{"data":[{"name":"no_params","language":"en_US","status":"APPROVED","category":"UTILITY","id":"1","components":[{"type":"BODY","text":"Hi."}]}]}`)
				default:
					http.NotFound(w, r)
				}
			}))
			t.Cleanup(srv.Close)
			c, err := whatsapp.NewClient(whatsapp.Config{BaseURL: srv.URL, AccessToken: testToken, PhoneNumberID: "106540352242922", WABAID: "102290129340398",
				RequestTimeout: 5 * time.Second, MaxAttempts: 1})
			if err != nil {
				t.Fatal(err)
			}
			res, err := tc.send(testCtx(t, 10*time.Second), c)
			if err != nil || res.MessageID != tc.want {
				t.Errorf("sent %+v, %v; want message %s", res, err, tc.want)
			}
		})
	}
}
