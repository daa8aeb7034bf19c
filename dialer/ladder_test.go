package dialer

import (
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

func TestAdvance(t *testing.T) {
	now := time.Date(2026, 11, 26, 14, 0, 0, 0, time.UTC)
	ladder := []campaigns.Rung{
		{Channel: campaigns.ChannelSIP, MaxAttempts: 2, RetryDelay: campaigns.Duration(30 * time.Minute)},
		{Channel: campaigns.ChannelWhatsAppCall, MaxAttempts: 1, RetryDelay: campaigns.Duration(time.Hour)},
		{Channel: campaigns.ChannelWhatsAppTemplate, MaxAttempts: 1},
	}
	sipOnly := ladder[:1]
	noTemplate := ladder[:2]
	samePhone := campaigns.Contact{Phone: "+5511987654321"}
	ownWhatsApp := campaigns.Contact{Phone: "+5511987654321", WhatsApp: "+5511912345678"}
	pending := campaigns.ContactPending
	at := func(rung, attempts int, after time.Duration, st campaigns.ContactStatus) Position {
		return Position{Rung: rung, Attempts: attempts, NextAt: now.Add(after), Status: st}
	}
	tests := []struct {
		name    string
		ladder  []campaigns.Rung
		contact campaigns.Contact
		from    Position
		outcome campaigns.Outcome
		want    Position
	}{
		{"connected finishes", ladder, samePhone, at(0, 0, 0, pending), campaigns.OutcomeConnected, at(0, 1, 0, campaigns.ContactDone)},
		{"busy retries after the rung's delay", ladder, samePhone, at(0, 0, 0, pending), campaigns.OutcomeBusy, at(0, 1, 30*time.Minute, pending)},
		{"no answer on the last SIP attempt climbs to WhatsApp at once", ladder, samePhone, at(0, 1, 0, pending), campaigns.OutcomeNoAnswer, at(1, 0, 0, pending)},
		{"trunk down climbs at once without using an attempt", ladder, samePhone, at(0, 0, 0, pending), campaigns.OutcomeChannelDown, at(1, 0, 0, pending)},
		{"trunk down on the last rung: waits for it, free", sipOnly, samePhone, at(0, 1, 0, pending), campaigns.OutcomeChannelDown, at(0, 1, channelDownDelay, pending)},
		{"channel not configured: skipped", ladder, samePhone, at(1, 0, 0, pending), campaigns.OutcomeNoChannel, at(2, 0, 0, pending)},
		{"channel not configured, last rung: exhausted", sipOnly, samePhone, at(0, 0, 0, pending), campaigns.OutcomeNoChannel, at(1, 0, 0, campaigns.ContactExhausted)},
		{"trunk fault retries soon", ladder, samePhone, at(0, 0, 0, pending), campaigns.OutcomeTrunkFault, at(0, 1, trunkFaultDelay, pending)},
		{"channel full: soon again, free", ladder, samePhone, at(0, 1, 0, pending), campaigns.OutcomeChannelBusy, at(0, 1, channelBusyDelay, pending)},
		{"machine, campaign moves on", ladder, samePhone, at(0, 0, 0, pending), campaigns.OutcomeMachineNext, at(1, 0, 0, pending)},
		{"machine retries", ladder, samePhone, at(0, 0, 0, pending), campaigns.OutcomeMachine, at(0, 1, 30*time.Minute, pending)},
		{"rejected climbs", ladder, samePhone, at(0, 0, 0, pending), campaigns.OutcomeRejected, at(1, 0, 0, pending)},
		{"interrupted is retried at once, free", ladder, samePhone, at(0, 1, 0, pending), campaigns.OutcomeInterrupted, at(0, 1, time.Nanosecond, pending)},
		{"invalid number, same number on WhatsApp: invalid", ladder, samePhone, at(0, 0, 0, pending), campaigns.OutcomeInvalidNumber, at(3, 0, 0, campaigns.ContactInvalid)},
		{"invalid number, own WhatsApp number: WhatsApp call", ladder, ownWhatsApp, at(0, 0, 0, pending), campaigns.OutcomeInvalidNumber, at(1, 0, 0, pending)},
		{"WhatsApp call rejected: template", ladder, samePhone, at(1, 0, 0, pending), campaigns.OutcomeRejected, at(2, 0, 0, pending)},
		{"no permission: template", ladder, samePhone, at(1, 0, 0, pending), campaigns.OutcomeNoPermission, at(2, 0, 0, pending)},
		{"not on WhatsApp, nothing else left: exhausted", ladder, samePhone, at(1, 0, 0, pending), campaigns.OutcomeNotOnWhatsApp, at(3, 0, 0, campaigns.ContactExhausted)},
		{"template sent finishes", ladder, samePhone, at(2, 0, 0, pending), campaigns.OutcomeSent, at(2, 1, 0, campaigns.ContactDone)},
		{"template failed: exhausted", ladder, samePhone, at(2, 0, 0, pending), campaigns.OutcomeSendFailed, at(3, 0, 0, campaigns.ContactExhausted)},
		{"abandoned: sorry-we-missed-you template at once", ladder, samePhone, at(0, 0, 0, pending), campaigns.OutcomeAbandoned, at(2, 0, 0, pending)},
		{"abandoned without a template rung: quiet for 72 h", noTemplate, samePhone, at(0, 0, 0, pending), campaigns.OutcomeAbandoned, at(0, 1, AbandonQuietPeriod, pending)},
		{"last attempt of the last rung: exhausted", sipOnly, samePhone, at(0, 1, 0, pending), campaigns.OutcomeBusy, at(1, 0, 0, campaigns.ContactExhausted)},
		{"unknown outcome retries", ladder, samePhone, at(0, 0, 0, pending), campaigns.Outcome("gremlins"), at(0, 1, 30*time.Minute, pending)},
		{"past the end: exhausted", sipOnly, samePhone, at(5, 0, 0, pending), campaigns.OutcomeBusy, at(5, 0, 0, campaigns.ContactExhausted)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Advance(tc.ladder, tc.contact, tc.from, tc.outcome, now)
			if got != tc.want {
				t.Errorf("Advance(%+v, %s) = %+v, want %+v", tc.from, tc.outcome, got, tc.want)
			}
		})
	}
}

// TestEveryOutcomeHasARule keeps the table complete: an outcome added without a rule
// would fall back to retrying, which may not be what it needs.
func TestEveryOutcomeHasARule(t *testing.T) {
	for _, o := range []campaigns.Outcome{campaigns.OutcomeConnected, campaigns.OutcomeAbandoned, campaigns.OutcomeMachine, campaigns.OutcomeMachineNext, campaigns.OutcomeMachineMessage, campaigns.OutcomeBusy, campaigns.OutcomeNoAnswer,
		campaigns.OutcomeRejected, campaigns.OutcomeInvalidNumber, campaigns.OutcomeTrunkFault, campaigns.OutcomeChannelDown, campaigns.OutcomeChannelBusy, campaigns.OutcomeNoChannel, campaigns.OutcomeMediaFailed,
		campaigns.OutcomeInterrupted, campaigns.OutcomeNoPermission, campaigns.OutcomeNotOnWhatsApp, campaigns.OutcomeSent, campaigns.OutcomeSendFailed} {
		if _, ok := rules[o]; !ok {
			t.Errorf("no rule for %s", o)
		}
	}
}
