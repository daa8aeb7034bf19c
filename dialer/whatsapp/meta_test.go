package whatsapp_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
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
				SDPType: "offer", SDP: "<<RFC 8866 SDP>>"},
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
