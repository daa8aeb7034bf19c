package campaigns

import (
	"strings"
	"testing"
	"time"
)

func TestImportReadsConsent(t *testing.T) {
	csv := "telefone,nome,consentimento\n" +
		"11987650001,Ana,sim\n" +
		"11987650002,Bia,2025-03-01\n" +
		"11987650003,Caio,01/03/2025 14:30\n" +
		"11987650004,Davi,não\n" +
		"11987650005,Eva,\n" +
		"11987650006,Fabio,talvez\n" +
		"11987650007,Gil,TRUE\n"
	rows := importAll(t, []byte(csv), ImportOptions{DefaultCountry: "BR"})
	undated := time.Time{}
	tests := []struct {
		consent *time.Time
		reject  RejectReason
	}{
		{consent: &undated},
		{consent: ptr(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))},
		{consent: ptr(time.Date(2025, 3, 1, 14, 30, 0, 0, time.UTC))},
		{}, {},
		{reject: RejectInvalidConsent},
		{consent: &undated},
	}
	if len(rows) != len(tests) {
		t.Fatalf("%d rows, want %d", len(rows), len(tests))
	}
	for i, tt := range tests {
		r := rows[i]
		switch {
		case tt.reject != "":
			if r.Reject == nil || r.Reject.Reason != tt.reject || !strings.Contains(r.Reject.Detail, "consent") {
				t.Errorf("row %d: %+v, want rejected %s naming consent", i+2, r.Reject, tt.reject)
			}
		case r.Reject != nil:
			t.Errorf("row %d rejected: %+v", i+2, r.Reject)
		case (tt.consent == nil) != (r.Contact.Consent == nil):
			t.Errorf("row %d: consent %v, want %v", i+2, r.Contact.Consent, tt.consent)
		case tt.consent != nil && !tt.consent.Equal(*r.Contact.Consent):
			t.Errorf("row %d: consent %v, want %v", i+2, *r.Contact.Consent, *tt.consent)
		}
	}
}
