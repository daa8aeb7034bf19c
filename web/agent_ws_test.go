package web

import (
	"encoding/json"
	"testing"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
)

// TestAgentEventsCarryNationalPhones: a screen-pop or a preview sent to the
// agent page carries each of the contact's numbers as written in its country;
// other events carry none.
func TestAgentEventsCarryNationalPhones(t *testing.T) {
	contact := campaigns.Contact{Phone: "+5511960000082", WhatsApp: "+13125550100"}
	tests := []struct {
		name string
		ev   dialer.AgentEvent
		want map[string]string
	}{
		{"screen-pop", dialer.AgentEvent{Kind: dialer.EventScreenPop, ScreenPop: &dialer.ScreenPop{Contact: contact}},
			map[string]string{"+5511960000082": "(11) 96000-0082", "+13125550100": "(312) 555-0100"}},
		{"preview", dialer.AgentEvent{Kind: dialer.EventPreview, Preview: &dialer.PreviewOffer{Contact: campaigns.Contact{Phone: "+5511960000082"}}},
			map[string]string{"+5511960000082": "(11) 96000-0082"}},
		{"state", dialer.AgentEvent{Kind: dialer.EventState, Agent: &dialer.Agent{State: dialer.AgentReady}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(viewEvent(tt.ev))
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Type   string            `json:"type"`
				Phones map[string]string `json:"phones"`
			}
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if got.Type != string(tt.ev.Kind) || len(got.Phones) != len(tt.want) {
				t.Fatalf("event %s, want type %s and phones %v", b, tt.ev.Kind, tt.want)
			}
			for k, v := range tt.want {
				if got.Phones[k] != v {
					t.Errorf("phones[%s] = %q, want %q", k, got.Phones[k], v)
				}
			}
		})
	}
}
