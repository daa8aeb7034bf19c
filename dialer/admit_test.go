package dialer

import (
	"testing"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/storage"
)

// TestSharesNumber: a page of due contacts is admitted side by side only when no
// two of them have a number in common (a number's limits count the attempts
// recorded before the gate asks); a contact's own phone and WhatsApp number
// being one number does not count.
func TestSharesNumber(t *testing.T) {
	due := func(cs ...campaigns.Contact) []storage.DueContact {
		out := make([]storage.DueContact, len(cs))
		for i, c := range cs {
			c.ID = int64(i + 1)
			out[i] = storage.DueContact{Contact: c}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		due  []storage.DueContact
		want bool
	}{
		{"none", nil, false},
		{"one", due(campaigns.Contact{Phone: "+5511900000001"}), false},
		{"apart", due(campaigns.Contact{Phone: "+5511900000001"}, campaigns.Contact{Phone: "+5511900000002"}), false},
		{"own WhatsApp number is the phone", due(campaigns.Contact{Phone: "+5511900000001", WhatsApp: "+5511900000001"},
			campaigns.Contact{Phone: "+5511900000002"}), false},
		{"one phone", due(campaigns.Contact{Phone: "+5511900000001"}, campaigns.Contact{Phone: "+5511900000001"}), true},
		{"a phone is another's WhatsApp", due(campaigns.Contact{Phone: "+5511900000001", WhatsApp: "+5511900000009"},
			campaigns.Contact{Phone: "+5511900000009"}), true},
		{"one WhatsApp number", due(campaigns.Contact{Phone: "+5511900000001", WhatsApp: "+5511900000009"},
			campaigns.Contact{Phone: "+5511900000002", WhatsApp: "+5511900000009"}), true},
	} {
		if got := sharesNumber(tc.due); got != tc.want {
			t.Errorf("%s: sharesNumber = %v, want %v", tc.name, got, tc.want)
		}
	}
}
