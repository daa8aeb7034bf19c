package emulator_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
)

func start(t *testing.T) *emulator.Emulator {
	t.Helper()
	e, err := emulator.Start(context.Background(), emulator.Config{AccessToken: "tok", AppSecret: "sec",
		Templates: []emulator.Template{{Name: "a", Language: "en_US", Status: "APPROVED", Body: "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func TestStartRefusesNonLoopback(t *testing.T) {
	if _, err := emulator.Start(context.Background(), emulator.Config{Addr: "0.0.0.0:0", AccessToken: "t", AppSecret: "s"}); err == nil {
		t.Fatal("listening beyond loopback")
	}
}

// TestGraphErrorShapeAndRecording checks the error envelope against the Cloud API
// error codes reference's sample response (message, type, code, error_data with
// messaging_product and details, fbtrace_id; no error_subcode, deprecated since
// v16.0) and the HTTP statuses of the calling troubleshooting reference.
func TestGraphErrorShapeAndRecording(t *testing.T) {
	e := start(t)
	e.Script("5511900000001", emulator.Behaviour{ErrorCode: 138006})
	e.Script("5511900000002", emulator.Behaviour{ErrorCode: 138000})
	tests := []struct {
		name, method, path, token, body string
		wantStatus, wantCode            int
	}{
		{"bad token", "POST", "/v23.0/" + e.PhoneNumberID() + "/messages", "nope", `{"messaging_product":"whatsapp","to":"1","type":"text","biz_opaque_callback_data":"k1"}`, 401, 190},
		{"unknown node", "POST", "/v23.0/999/messages", "tok", `{}`, 400, 100},
		{"bad json", "POST", "/v23.0/" + e.PhoneNumberID() + "/messages", "tok", `{`, 400, 100},
		{"unknown template", "POST", "/v23.0/" + e.PhoneNumberID() + "/messages", "tok", `{"messaging_product":"whatsapp","to":"1","type":"template","template":{"name":"zz","language":{"code":"en_US"}}}`, 400, 132001},
		{"connect without offer", "POST", "/v23.0/" + e.PhoneNumberID() + "/calls", "tok", `{"messaging_product":"whatsapp","to":"1","action":"connect"}`, 400, 100},
		{"terminate unknown call", "POST", "/v23.0/" + e.PhoneNumberID() + "/calls", "tok", `{"messaging_product":"whatsapp","call_id":"wacid.x","action":"terminate"}`, 400, 100},
		{"no call permission", "POST", "/v23.0/" + e.PhoneNumberID() + "/calls", "tok", `{"messaging_product":"whatsapp","to":"5511900000001","action":"connect","session":{"sdp_type":"offer","sdp":"v=0"}}`, 401, 138006},
		{"calling not enabled", "POST", "/v23.0/" + e.PhoneNumberID() + "/calls", "tok", `{"messaging_product":"whatsapp","to":"5511900000002","action":"connect","session":{"sdp_type":"offer","sdp":"v=0"}}`, 401, 138000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, e.URL()+tt.path, strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+tt.token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			var g struct {
				Error struct {
					Message   string `json:"message"`
					Type      string `json:"type"`
					Code      int    `json:"code"`
					FBTraceID string `json:"fbtrace_id"`
					ErrorData struct {
						MessagingProduct string `json:"messaging_product"`
						Details          string `json:"details"`
					} `json:"error_data"`
					Subcode *int `json:"error_subcode"`
				} `json:"error"`
			}
			if err := json.Unmarshal(raw, &g); err != nil || resp.StatusCode != tt.wantStatus || g.Error.Code != tt.wantCode || g.Error.FBTraceID == "" ||
				g.Error.Message == "" || g.Error.Type == "" || g.Error.ErrorData.MessagingProduct != "whatsapp" || g.Error.ErrorData.Details == "" {
				t.Fatalf("%d %s", resp.StatusCode, raw)
			}
			if g.Error.Subcode != nil && tt.wantCode != 100 {
				t.Fatalf("deprecated error_subcode sent: %s", raw)
			}
		})
	}
	reqs := e.Requests()
	if len(reqs) != len(tests) || reqs[0].Key != "k1" || reqs[0].Status != 401 {
		t.Fatalf("recorded %+v", reqs)
	}
}
