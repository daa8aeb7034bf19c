package sip

import (
	"cmp"
	"errors"
	"fmt"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Number formats for [TrunkConfig.NumberFormat] and [TrunkConfig.FromFormat].
const (
	// FormatE164 sends the number as given, "+5511987654321" (the default).
	FormatE164 = "e164"
	// FormatE164NoPlus strips the "+": "5511987654321".
	FormatE164NoPlus = "e164_no_plus"
	// FormatNational sends the national significant number of the trunk's
	// country, "11987654321"; numbers of other countries cannot be dialled.
	FormatNational = "national"
)

// Values of [TrunkConfig.Privacy] (RFC 3323, RFC 3325).
const (
	// PrivacyID hides the caller: From is anonymous, P-Asserted-Identity keeps
	// the number for the carrier, and Privacy: id asks it not to pass it on.
	PrivacyID = "id"
	// PrivacyNone sends Privacy: none, for carriers that want it said.
	PrivacyNone = "none"
)

// anonymousHost is the From host of a hidden caller (RFC 3323 4.1.1.3).
const anonymousHost = "anonymous.invalid"

// identity is what one INVITE on one trunk says about who calls whom.
type identity struct {
	dialed      string // user part of the Request-URI and To
	fromUser    string
	fromHost    string
	fromDisplay string
	pai         string // user part of P-Asserted-Identity; "" sends none
	privacy     string // Privacy header value; "" sends none
	authUser    string // digest username when the trunk has none
}

// identity formats the destination and the caller ID of a call for trunk t.
// The error names the field of the trunk that the numbers do not fit.
func (tc *TrunkConfig) identity(to, callerID string) (identity, error) {
	dialed, err := tc.dialNumber(to, callerID)
	if err != nil {
		return identity{}, err
	}
	id := identity{dialed: dialed, fromHost: tc.Domain}
	if callerID != "" {
		if id.fromUser, err = formatNumber(callerID, tc.FromFormat, tc.Country); err != nil {
			return identity{}, fmt.Errorf("trunk %q: from_format: %w", tc.Name, err)
		}
	}
	id.authUser = id.fromUser
	if tc.PAI == nil || *tc.PAI {
		id.pai = id.fromUser
	}
	switch tc.Privacy {
	case PrivacyID:
		id.fromUser, id.fromHost, id.fromDisplay, id.privacy = "anonymous", anonymousHost, "Anonymous", PrivacyID
	case PrivacyNone:
		id.privacy = PrivacyNone
	}
	return id, nil
}

// dialNumber is the Request-URI user part for an E.164 destination: the
// trunk's number format, Brazil's carrier-selection code for long distance,
// then the tech prefix.
func (tc *TrunkConfig) dialNumber(to, callerID string) (string, error) {
	n, err := formatNumber(to, tc.NumberFormat, tc.Country)
	if err != nil {
		return "", fmt.Errorf("trunk %q: number_format: %w", tc.Name, err)
	}
	if tc.BRCarrierCode != "" {
		area, err := tc.callerArea(callerID)
		if err != nil {
			return "", err
		}
		// n is the national significant number: the DDD, then the subscriber.
		if !strings.HasPrefix(n, area) {
			n = "0" + tc.BRCarrierCode + n
		}
	}
	return tc.TechPrefix + n, nil
}

// callerArea is the DDD long distance is judged from: the trunk's
// caller_area, else the caller ID's.
func (tc *TrunkConfig) callerArea(callerID string) (string, error) {
	if tc.CallerArea != "" {
		return tc.CallerArea, nil
	}
	if callerID == "" {
		return "", fmt.Errorf("trunk %q: br_carrier_code: no caller_area and no caller ID to take the area code from", tc.Name)
	}
	nsn, err := formatNumber(callerID, FormatNational, "BR")
	if err != nil || len(nsn) < 10 {
		return "", fmt.Errorf("trunk %q: br_carrier_code: no caller_area, and caller ID %q is not a Brazilian number with an area code", tc.Name, callerID)
	}
	return nsn[:2], nil
}

// formatNumber writes an E.164 number in format for a trunk of country.
func formatNumber(number, format, country string) (string, error) {
	switch format {
	case "", FormatE164:
		return number, nil
	case FormatE164NoPlus:
		return strings.TrimPrefix(number, "+"), nil
	case FormatNational:
		n, err := phonenumbers.Parse(number, country)
		if err != nil {
			return "", fmt.Errorf("%q: %w", number, err)
		}
		if int(n.GetCountryCode()) != phonenumbers.GetCountryCodeForRegion(country) {
			return "", fmt.Errorf("%q is not a number of %s, the trunk's country", number, country)
		}
		return phonenumbers.GetNationalSignificantNumber(n), nil
	}
	return "", fmt.Errorf("%q: want e164, e164_no_plus or national", format)
}

// validateFormats checks a trunk's number, caller-ID and privacy settings.
func (tc *TrunkConfig) validateFormats() error {
	for _, f := range []struct{ name, v string }{{"number_format", tc.NumberFormat}, {"from_format", tc.FromFormat}} {
		switch f.v {
		case "", FormatE164, FormatE164NoPlus:
		case FormatNational:
			if tc.Country == "" {
				return fmt.Errorf("trunk %q: %s national needs country (ISO 3166 code, e.g. BR)", tc.Name, f.name)
			}
		default:
			return fmt.Errorf("trunk %q: %s %q: want e164, e164_no_plus or national", tc.Name, f.name, f.v)
		}
	}
	if tc.Country != "" && phonenumbers.GetCountryCodeForRegion(tc.Country) == 0 {
		return fmt.Errorf("trunk %q: country %q: not an ISO 3166 region code", tc.Name, tc.Country)
	}
	if strings.Trim(tc.TechPrefix, "0123456789*#") != "" || len(tc.TechPrefix) > 16 {
		return fmt.Errorf("trunk %q: tech_prefix %q: want up to 16 of 0-9, * and #", tc.Name, tc.TechPrefix)
	}
	if tc.BRCarrierCode != "" {
		if !twoDigits(tc.BRCarrierCode) {
			return fmt.Errorf("trunk %q: br_carrier_code %q: want two digits", tc.Name, tc.BRCarrierCode)
		}
		if tc.Country != "BR" || tc.NumberFormat != FormatNational {
			return fmt.Errorf("trunk %q: br_carrier_code needs country BR and number_format national", tc.Name)
		}
	}
	if tc.CallerArea != "" && (!twoDigits(tc.CallerArea) || tc.CallerArea[0] == '0') {
		return fmt.Errorf("trunk %q: caller_area %q: want a two-digit DDD (11 to 99)", tc.Name, tc.CallerArea)
	}
	switch tc.Privacy {
	case "", PrivacyID, PrivacyNone:
	default:
		return fmt.Errorf("trunk %q: privacy %q: want id or none", tc.Name, tc.Privacy)
	}
	return nil
}

func twoDigits(s string) bool {
	return len(s) == 2 && strings.Trim(s, "0123456789") == ""
}

// errNoTrunkFormats means no trunk can write the destination in its format.
var errNoTrunkFormats = errors.New("sip dial: no trunk can dial the number")

// identityFor formats a call's numbers for trunk t; the caller ID is the
// request's, else the trunk's.
func (t *trunk) identityFor(req DialRequest) (identity, error) {
	return t.cfg.identity(req.To, cmp.Or(req.CallerID, t.cfg.CallerID))
}

// unfit lists the trunks that cannot write the request's numbers in their
// formats (a national trunk given another country's number), for Dial to
// leave out; when that is every trunk the call is refused before anything is sent.
func (o *Originator) unfit(req DialRequest) ([]*trunk, error) {
	var out []*trunk
	var errs []error
	for _, t := range o.trunks {
		if _, err := t.identityFor(req); err != nil {
			out = append(out, t)
			errs = append(errs, err)
		}
	}
	if len(out) == len(o.trunks) {
		return nil, fmt.Errorf("%w: %w", errNoTrunkFormats, errors.Join(errs...))
	}
	return out, nil
}
