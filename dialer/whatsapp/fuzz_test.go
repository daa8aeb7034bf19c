package whatsapp

import (
	"encoding/json"
	"errors"
	"testing"
)

func FuzzParseWebhook(f *testing.F) {
	seeds := []string{
		`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"calls","value":{"calls":[{"id":"wacid.A","event":"connect","timestamp":"1","session":{"sdp_type":"answer","sdp":"v=0"}}]}}]}]}`,
		`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"calls","value":{"statuses":[{"id":"wacid.A","type":"call","status":"RINGING","timestamp":"2"}]}}]}]}`,
		`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"calls","value":{"calls":[{"id":"wacid.A","event":"terminate","timestamp":3,"duration":"4.0"}]}}]}]}`,
		`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[{"id":"wamid.B","type":"interactive","interactive":{"type":"call_permission_reply","call_permission_reply":{"response":"reject"}}}]}}]}]}`,
		`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"statuses":[{"id":"wamid.C","status":"failed","errors":[{"code":131026}]}]}}]}]}`,
		`{"object":"page"}`, `{`, ``, `null`, `[]`, `{"object":"whatsapp_business_account","entry":null}`,
		`{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"calls":[{"id":"x","event":"connect","timestamp":"99999999999999999999"}]}}]}]}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := ParseWebhook(body)
		if err != nil {
			if !errors.Is(err, ErrMalformedWebhook) {
				t.Fatalf("error does not wrap ErrMalformedWebhook: %v", err)
			}
			if evs != nil {
				t.Fatal("events returned with an error")
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("invalid JSON accepted: %q", body)
		}
		for _, ev := range evs {
			if ev.Key == "" {
				t.Fatalf("event without key: %+v", ev)
			}
			n := 0
			for _, set := range []bool{ev.Call != nil, ev.Status != nil, ev.Message != nil, ev.Permission != nil} {
				if set {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("event with %d payloads: %+v", n, ev)
			}
			if _, err := json.Marshal(ev); err != nil {
				t.Fatalf("event does not marshal: %v", err)
			}
		}
	})
}
