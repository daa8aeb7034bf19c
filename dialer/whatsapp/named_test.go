package whatsapp_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
)

// TestClientSendsNamedParameters: a NAMED template's body parameters leave with
// the parameter_name of each placeholder, in the shape Meta documents, and the
// emulator (which checks the names as Meta does) accepts them; a positional
// template's leave without names.
func TestClientSendsNamedParameters(t *testing.T) {
	env := newEnv(t, nil)
	ctx := testCtx(t, 10*time.Second)
	if _, err := env.client.SendTemplate(ctx, "named-1", whatsapp.TemplateMessage{To: "5511900000301", Name: "call_you", Language: "en_US",
		BodyParams: whatsapp.TextParams("Ana", "your plan")}); err != nil {
		t.Fatalf("named template refused: %v", err)
	}
	if _, err := env.client.SendTemplate(ctx, "positional-1", whatsapp.TemplateMessage{To: "5511900000301", Name: "reminder", Language: "en_US",
		BodyParams: []whatsapp.TemplateParam{{Name: "stray", Text: "a"}, {Text: "b"}, {Text: "c"}}}); err != nil {
		t.Fatalf("positional template refused: %v", err)
	}
	reqs := env.requestsWithKey("named-1")
	if len(reqs) != 1 {
		t.Fatalf("%d requests with key named-1", len(reqs))
	}
	got, want := jsonPaths(t, reqs[0].Body), jsonPaths(t, readMeta(t, "req_messages_template_named.json"))
	want["biz_opaque_callback_data:string"] = true
	if !reflect.DeepEqual(got, want) {
		t.Errorf("client sends %v, Meta documents %v", got, want)
	}
	var body struct {
		Template struct {
			Components []struct {
				Parameters []map[string]string `json:"parameters"`
			} `json:"components"`
		} `json:"template"`
	}
	if err := json.Unmarshal(reqs[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	ps := body.Template.Components[0].Parameters
	if ps[0]["parameter_name"] != "first_name" || ps[0]["text"] != "Ana" || ps[1]["parameter_name"] != "topic" || ps[1]["text"] != "your plan" {
		t.Errorf("parameters %v, want first_name=Ana, topic=your plan", ps)
	}
	if b := env.requestsWithKey("positional-1")[0].Body; bytes.Contains(b, []byte("parameter_name")) {
		t.Errorf("positional template sent with a parameter_name: %s", b)
	}
	// Fewer values than a NAMED template's placeholders are refused before sending.
	_, err := env.client.SendTemplate(ctx, "named-2", whatsapp.TemplateMessage{To: "5511900000301", Name: "call_you", Language: "en_US",
		BodyParams: whatsapp.TextParams("Ana")})
	if err == nil || !strings.Contains(err.Error(), "first_name,topic") {
		t.Fatalf("short named send: %v, want an error naming first_name,topic", err)
	}
	if n := len(env.requestsWithKey("named-2")); n != 0 {
		t.Errorf("short named send made %d requests", n)
	}
}

// TestEmulatorNamedTemplatesAsMeta: the emulator lists a named template as Meta
// does (parameter_format NAMED, upper case, whatever case it was configured
// in), accepts Meta's documented named send, and refuses it without names, with
// an unknown name, or with names on a positional template (132000, HTTP 400).
func TestEmulatorNamedTemplatesAsMeta(t *testing.T) {
	emu, err := emulator.Start(t.Context(), emulator.Config{AccessToken: testToken, AppSecret: testSecret, Templates: []emulator.Template{
		{Name: "order_confirmation", Language: "en_US", Status: "APPROVED", Category: "UTILITY", ParameterFormat: "named",
			Body: "Thank you, {{first_name}}! Your order number is {{order_number}}."},
		{Name: "positional", Language: "en_US", Status: "APPROVED", Category: "UTILITY", Body: "Hi {{1}}, order {{2}}"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	do := func(method, path string, body []byte) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, emu.URL()+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		return resp.StatusCode, buf.Bytes()
	}
	status, list := do(http.MethodGet, "/v23.0/"+emu.WABAID()+"/message_templates?fields=name,parameter_format,components", nil)
	if status != http.StatusOK {
		t.Fatalf("listing: %d %s", status, list)
	}
	var got, golden struct {
		Data []struct {
			Name            string `json:"name"`
			ParameterFormat string `json:"parameter_format"`
		} `json:"data"`
	}
	if err := json.Unmarshal(list, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(readMeta(t, "resp_message_templates_named.json"), &golden); err != nil {
		t.Fatal(err)
	}
	if got.Data[0].ParameterFormat != golden.Data[0].ParameterFormat || got.Data[1].ParameterFormat != "POSITIONAL" {
		t.Errorf("listed parameter_format %q, %q; Meta lists %q and POSITIONAL", got.Data[0].ParameterFormat, got.Data[1].ParameterFormat, golden.Data[0].ParameterFormat)
	}

	send := readMeta(t, "req_messages_template_named.json")
	path := "/v23.0/" + emu.PhoneNumberID() + "/messages"
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
	}{
		{"Meta's documented named send", send, http.StatusOK},
		{"no parameter_name", bytes.ReplaceAll(send, []byte(`"parameter_name": "order_number",`), nil), http.StatusBadRequest},
		{"unknown name", bytes.ReplaceAll(send, []byte(`"order_number"`), []byte(`"plan"`)), http.StatusBadRequest},
		{"names on a positional template", bytes.ReplaceAll(send, []byte(`"order_confirmation"`), []byte(`"positional"`)), http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := do(http.MethodPost, path, tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if tc.status != http.StatusOK && !bytes.Contains(body, []byte(`"code":132000`)) {
				t.Errorf("refusal %s, want code 132000", body)
			}
		})
	}
}

// TestValidateTemplateParamsNamed: Meta lists parameter_format in upper case; a
// NAMED template whose placeholders the columns do not cover is refused naming
// them, whatever the case of the format.
func TestValidateTemplateParamsNamed(t *testing.T) {
	named := func(format string) whatsapp.Template {
		return whatsapp.Template{Name: "welcome", Language: "pt_BR", Status: "APPROVED", ParameterFormat: format, BodyParams: []string{"user_name", "store_name"}}
	}
	for _, tc := range []struct {
		name    string
		t       whatsapp.Template
		columns []string
		says    string
	}{
		{"upper case, columns miss both", named("NAMED"), []string{"phone", "plan"}, "no column for {{user_name}}, {{store_name}}"},
		{"lower case, columns miss one", named("named"), []string{"user_name", "plan"}, "no column for {{store_name}}"},
		{"covered, in order", named("NAMED"), []string{"user_name", "store_name"}, ""},
		{"covered, other case", named("Named"), []string{"User_Name", "STORE_NAME"}, ""},
		{"positional counts only", whatsapp.Template{Name: "p", Language: "en", Status: "APPROVED", ParameterFormat: "POSITIONAL", BodyParams: []string{"1", "2"}}, []string{"phone", "plan"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := whatsapp.ValidateTemplateParams(tc.t, tc.columns)
			if tc.says == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %v, want an error saying %q", err, tc.says)
			}
		})
	}
}
