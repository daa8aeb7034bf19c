package campaigns

import (
	"fmt"
	"strings"
	"time"
)

// consentHeaders are the column names an import reads a contact's consent from
// (canonical form); the column stays one of the contact's attributes as well.
var consentHeaders = map[string]bool{"consent": true, "consentimento": true, "opt_in": true, "optin": true, "consent_at": true}

// consentWords are the answers a consent column may hold instead of a date.
var consentWords = map[string]bool{
	"sim": true, "s": true, "yes": true, "y": true, "true": true, "1": true, "x": true, "ok": true,
	"não": false, "nao": false, "n": false, "no": false, "false": false, "0": false, "": false,
}

// consentLayouts are the dates a consent column may hold.
var consentLayouts = []string{time.RFC3339, "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02", "02/01/2006 15:04", "02/01/2006"}

// ParseConsent reads a consent cell: a yes or no word (sim, yes, true, não, …) or
// the date consent was given (2025-03-01, 01/03/2025, RFC 3339; dates without a
// zone are read in UTC). given is false for a no; a yes without a date gives a
// zero time, which the import stores as its own time.
func ParseConsent(cell string) (at time.Time, given bool, err error) {
	v := strings.ToLower(strings.TrimSpace(cell))
	if yes, ok := consentWords[v]; ok {
		return time.Time{}, yes, nil
	}
	for _, l := range consentLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t, true, nil
		}
	}
	return time.Time{}, false, fmt.Errorf("consent %q is neither yes/no (sim, não, true, false) nor a date (2006-01-02, 02/01/2006)", cell)
}
