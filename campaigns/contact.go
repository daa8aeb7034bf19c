package campaigns

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ContactStatus is where a contact stands in its campaign.
type ContactStatus string

// Contact statuses.
const (
	// ContactPending has not been tried yet, or is due for another attempt.
	ContactPending ContactStatus = "pending"
	// ContactInProgress has an attempt under way.
	ContactInProgress ContactStatus = "in_progress"
	// ContactDone reached a final disposition (connected and dispositioned, messaged, …).
	ContactDone ContactStatus = "done"
	// ContactExhausted ran out of rungs and attempts without being reached.
	ContactExhausted ContactStatus = "exhausted"
	// ContactInvalid has a number the network reported as not existing; it is not retried.
	ContactInvalid ContactStatus = "invalid"
	// ContactDoNotCall was put on a do-not-call list after import.
	ContactDoNotCall ContactStatus = "do_not_call"
)

// Contact is one person to reach in a campaign.
type Contact struct {
	ID         int64  `json:"id,string"`
	CampaignID int64  `json:"campaign_id,string"`
	Phone      string `json:"phone"`              // E.164
	WhatsApp   string `json:"whatsapp,omitempty"` // E.164; empty when it is Phone
	Name       string `json:"name,omitempty"`
	Timezone   string `json:"timezone,omitempty"` // IANA name
	// Zones are every IANA zone the person may be in, found at import from the
	// timezone, state/UF or postal-code column or the number; more than one when
	// those leave it ambiguous (the calling hours must hold in each).
	Zones      []string          `json:"zones,omitempty"`
	Attributes map[string]string `json:"attributes"`
	Status     ContactStatus     `json:"status"`
	// Line is the 1-based line of the source file the contact came from (header = 1).
	Line int `json:"line,omitempty"`
	// Consent is when the person consented to WhatsApp contact (the import's
	// consent column); nil: no record. A zero time from an import is a consent
	// without a date, stored with the import's time.
	Consent *time.Time `json:"consent_at,omitempty"`
}

// WhatsAppNumber is the number to reach the contact on WhatsApp.
func (c Contact) WhatsAppNumber() string {
	if c.WhatsApp != "" {
		return c.WhatsApp
	}
	return c.Phone
}

// RejectReason is the machine-readable reason an import row was not imported.
type RejectReason string

// Reasons an import row is rejected. They are part of the public API.
const (
	RejectMissingPhone      RejectReason = "missing_phone"
	RejectInvalidNumber     RejectReason = "invalid_number"
	RejectInvalidWhatsApp   RejectReason = "invalid_whatsapp"
	RejectInvalidTimezone   RejectReason = "invalid_timezone"
	RejectInvalidConsent    RejectReason = "invalid_consent"
	RejectInvalidRegion     RejectReason = "invalid_region"
	RejectDuplicateInFile   RejectReason = "duplicate_in_file"
	RejectAlreadyInCampaign RejectReason = "already_in_campaign"
	RejectDoNotCall         RejectReason = "do_not_call"
	RejectBadEncoding       RejectReason = "bad_encoding"
	// RejectMixedEncoding is a row whose encoding is not the one the upload
	// declared, and that would be garbled read in it.
	RejectMixedEncoding  RejectReason = "mixed_encoding"
	RejectTooManyColumns RejectReason = "too_many_columns"
	RejectMalformedRow   RejectReason = "malformed_row"
	RejectFieldTooLong   RejectReason = "field_too_long"
)

// Rejection is one row of an import that was not imported.
type Rejection struct {
	Line   int          `json:"line"`
	Reason RejectReason `json:"reason"`
	// Detail explains the reason in English, for logs and API users; pages
	// translate Reason and show Value instead.
	Detail string `json:"detail,omitempty"`
	// Value is the cell (or number) the reason is about, as written in the
	// file or, for a duplicate, in E.164; empty when the reason is about the
	// whole row.
	Value string `json:"value,omitempty"`
	// Cells are the row's cells as read, so the person who fixes it sees the
	// row of their spreadsheet.
	Cells []string `json:"cells,omitempty"`
}

// ErrMissingColumn means a column named (by a template's parameters) is not one
// of the contact's.
var ErrMissingColumn = errors.New("template parameter column missing")

// Values returns the contact's value for each column named: "name", "phone"
// (in any case) or any attribute of its import, in order.
func (c Contact) Values(columns []string) ([]string, error) {
	out := make([]string, 0, len(columns))
	for _, col := range columns {
		var v string
		switch strings.ToLower(col) {
		case "name":
			v = c.Name
		case "phone":
			v = c.Phone
		default:
			var ok bool
			if v, ok = c.Attributes[col]; !ok {
				return nil, fmt.Errorf("%w: %q", ErrMissingColumn, col)
			}
		}
		out = append(out, v)
	}
	return out, nil
}
