package campaigns

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/nyaruka/phonenumbers"
)

// Errors returned by NormalizePhone and PhoneNormalizer.Normalize. Test with errors.Is.
var (
	// ErrEmptyNumber is returned for an empty (or all-blank) phone number.
	ErrEmptyNumber = errors.New("empty phone number")
	// ErrInvalidNumber is returned for a number the phone-number library does not
	// consider valid (wrong length, unassigned range, unparsable text).
	ErrInvalidNumber = errors.New("invalid phone number")
	// ErrUnknownCountry is returned for a default country that is not an
	// ISO 3166-1 alpha-2 region known to the phone-number library.
	ErrUnknownCountry = errors.New("unknown default country")
)

// NormalizePhone returns raw as an E.164 number ("+5511987654321"), reading it as
// a national number of defaultCountry (ISO 3166-1 alpha-2, e.g. "BR") unless it
// carries its own country calling code. It accepts the same formats as the CSV
// import and gives the same answers; see PhoneNormalizer for the rules.
//
// Errors wrap ErrEmptyNumber, ErrInvalidNumber or ErrUnknownCountry. For many
// numbers in a row, a PhoneNormalizer is several times faster.
func NormalizePhone(raw, defaultCountry string) (string, error) {
	n, err := NewPhoneNormalizer(defaultCountry)
	if err != nil {
		return "", err
	}
	return n.Normalize(raw)
}

// PhoneNormalizer turns phone numbers as people type them into E.164, for one
// default country. It is what NormalizePhone uses, with its per-country set-up
// done once; a PhoneNormalizer is not safe for concurrent use.
//
// The answer is always the phone-number library's (github.com/nyaruka/phonenumbers):
// phonenumbers.Parse with the default country, then phonenumbers.IsValidNumber.
// Two additions:
//   - a number written with the default country's calling code but without "+"
//     ("5511987654321") that is not valid as a national number is retried with "+";
//   - for the default country, numbers made only of digits and the usual
//     separators ("(11) 98765-4321", "11987654321", "+55 11 98765-4321") take a
//     fast path that skips phonenumbers.Parse, whose regular expressions cost
//     ~10 µs a number and would cap an import at well under 100k rows/s. The fast
//     path is taken only where Parse provably does nothing but strip the
//     separators (no national or international prefix, no calling code without
//     "+"), and validity is still phonenumbers.IsValidNumber, so both paths agree;
//     TestPhoneFastPathMatchesLibrary checks that on random input.
type PhoneNormalizer struct {
	region string
	cc     int32
	ccStr  string
	fast   *fastPathRule // nil: no fast path for this region

	num    phonenumbers.PhoneNumber // scratch for IsValidNumber, reused to save an allocation a number
	digits []byte                   // scratch
}

// fastPathRule is what the fast path must know about a region to predict what
// phonenumbers.Parse does with a string of digits.
type fastPathRule struct {
	// The region's metadata patterns, anchored as Parse anchors them:
	// nationalPrefixForParsing and internationalPrefix at the start,
	// generalDesc (any national number of the region) on the whole number.
	nationalPrefixForParsing *regexp.Regexp
	internationalPrefix      *regexp.Regexp
	generalDesc              *regexp.Regexp
	// plusOK: no proper prefix of the calling code is itself a calling code, so
	// "+<cc>…" always extracts exactly cc.
	plusOK bool
}

// fastPathRules holds the regions with a fast path. The library exports its
// per-region metadata only through phonenumbers.MetadataCollection, which is not
// safe to call concurrently, so the patterns are copied here;
// TestFastPathRulesMatchLibraryMetadata fails if the library's data moves away
// from them. Immutable after package initialisation.
var fastPathRules = map[string]*fastPathRule{
	"BR": {
		nationalPrefixForParsing: regexp.MustCompile(`^(?:(?:0|90)(?:(1[245]|2[1-35]|31|4[13]|[56]5|99)(\d{10,11}))?)`),
		internationalPrefix:      regexp.MustCompile(`^(?:00(?:1[245]|2[1-35]|31|4[13]|[56]5|99))`),
		generalDesc:              regexp.MustCompile(`^(?:[1-467]\d{9,10}|55[0-46-9]\d{8}|[34]\d{7}|55\d{7,8}|(?:5[0-46-9]|[89]\d)\d{7,9})$`),
		plusOK:                   true,
	},
}

// Bounds on the digit count the fast path handles; anything else goes the slow
// way. They are well inside the library's own limits (2..17 national digits).
const (
	fastMinDigits = 8
	fastMaxDigits = 15
)

// NewPhoneNormalizer returns a normalizer for numbers of defaultCountry (ISO
// 3166-1 alpha-2, case-insensitive). An empty defaultCountry accepts only
// numbers written with "+" and a calling code. The error wraps ErrUnknownCountry.
func NewPhoneNormalizer(defaultCountry string) (*PhoneNormalizer, error) {
	region := strings.ToUpper(strings.TrimSpace(defaultCountry))
	n := &PhoneNormalizer{region: region}
	if region == "" {
		return n, nil
	}
	cc := phonenumbers.GetCountryCodeForRegion(region)
	if cc == 0 {
		return nil, fmt.Errorf("%w: %q", ErrUnknownCountry, defaultCountry)
	}
	n.cc = int32(cc)
	n.ccStr = strconv.Itoa(cc)
	n.fast = fastPathRules[region]
	return n, nil
}

// Normalize returns raw in E.164. Errors wrap ErrEmptyNumber or ErrInvalidNumber.
func (n *PhoneNormalizer) Normalize(raw string) (string, error) {
	e164, _, err := n.normalize(raw)
	return e164, err
}

// normalize is Normalize that also returns the E.164 digits as an integer, the
// compact key of the import's duplicate set.
func (n *PhoneNormalizer) normalize(raw string) (string, uint64, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", 0, ErrEmptyNumber
	}
	if hasLetters(s) {
		// The library reads letters as a phone keypad ("1-800-FLOWERS"), so a
		// typo such as "(62) 9ABCD-1234" would become someone else's number.
		return "", 0, fmt.Errorf("%w: %q has letters, not only digits", ErrInvalidNumber, s)
	}
	if e164, key, ok := n.fastPath(s); ok {
		if e164 == "" {
			return "", 0, fmt.Errorf("%w: %q is not a valid number for %s", ErrInvalidNumber, s, n.region)
		}
		return e164, key, nil
	}
	num, err := phonenumbers.Parse(s, n.region)
	if err == nil && phonenumbers.IsValidNumber(num) {
		return n.result(num)
	}
	// "5511987654321": the calling code without "+". Parse already strips a
	// leading calling code when the rest is a better national number; this
	// covers what it leaves, so the rule the importers were promised holds.
	if n.ccStr != "" && !strings.HasPrefix(s, "+") && strings.HasPrefix(digitsOnly(s), n.ccStr) {
		if num2, err2 := phonenumbers.Parse("+"+s, n.region); err2 == nil && phonenumbers.IsValidNumber(num2) {
			return n.result(num2)
		}
	}
	if err != nil {
		return "", 0, fmt.Errorf("%w: %q: %w", ErrInvalidNumber, s, err)
	}
	return "", 0, fmt.Errorf("%w: %q is not a valid number", ErrInvalidNumber, s)
}

func (n *PhoneNormalizer) result(num *phonenumbers.PhoneNumber) (string, uint64, error) {
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	key, err := strconv.ParseUint(e164[1:], 10, 64)
	if err != nil {
		// E.164 has at most 15 digits, so this means the library gave
		// something that is not E.164; refuse it rather than store it.
		return "", 0, fmt.Errorf("%w: %q is not E.164", ErrInvalidNumber, e164)
	}
	return e164, key, nil
}

// fastPath handles s when it is only digits and separators, for the default
// country. ok is false when s must go the slow way; with ok true, e164 is ""
// for an invalid number.
//
// It follows phonenumbers.Parse (parseHelper) step by step for the cases it
// takes, and gives up wherever Parse would do more:
//   - "+<cc><national>" with the default country's cc;
//   - "<cc><national>" without "+", when Parse would strip cc: the whole is not
//     a national number of the region and the rest is (Parse also strips it
//     when the whole is too long; that case goes the slow way);
//   - "<trunk prefix><national>", when the national-prefix pattern matches
//     without its carrier-code groups, so Parse strips the match (it keeps it
//     only when the result is not viable, and a valid result is viable);
//   - "<national>".
//
// The national part must not start with 0 (Italian leading zeros) nor match the
// national-prefix pattern again. Where the prediction rests on the result being
// valid (a prefix stripped), an invalid result goes the slow way, so the library
// has the last word on every odd case.
func (n *PhoneNormalizer) fastPath(s string) (e164 string, key uint64, ok bool) {
	rule := n.fast
	if rule == nil {
		return "", 0, false
	}
	d := n.digits[:0]
	plus := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			d = append(d, c)
		case c == '+' && i == 0:
			plus = true
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return "", 0, false
		}
	}
	n.digits = d
	if len(d) < fastMinDigits || len(d) > fastMaxDigits {
		return "", 0, false
	}
	hasCC := len(d) > len(n.ccStr) && string(d[:len(n.ccStr)]) == n.ccStr
	national := d
	stripped := false
	switch {
	case plus:
		if !rule.plusOK || !hasCC {
			return "", 0, false
		}
		national = d[len(n.ccStr):]
	case hasCC:
		national = d[len(n.ccStr):]
		if rule.generalDesc.Match(d) || !rule.generalDesc.Match(national) {
			return "", 0, false
		}
		stripped = true
	case rule.internationalPrefix.Match(d):
		return "", 0, false
	default:
		m := rule.nationalPrefixForParsing.FindSubmatchIndex(d)
		if m != nil {
			for g := 2; g < len(m); g += 2 {
				if m[g] >= 0 { // a carrier code or a transformation
					return "", 0, false
				}
			}
			national = d[m[1]:]
			stripped = true
		}
	}
	if len(national) < 2 || national[0] == '0' || rule.nationalPrefixForParsing.Match(national) {
		return "", 0, false
	}
	nsn, err := strconv.ParseUint(string(national), 10, 64)
	if err != nil {
		return "", 0, false
	}
	n.num.Reset()
	n.num.CountryCode = &n.cc
	n.num.NationalNumber = &nsn
	valid := phonenumbers.IsValidNumber(&n.num)
	n.num.Reset() // drop the pointers
	if !valid {
		if stripped {
			return "", 0, false
		}
		return "", 0, true
	}
	e164 = "+" + n.ccStr + string(national)
	key, err = strconv.ParseUint(e164[1:], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return e164, key, true
}

// hasLetters reports whether s holds a letter other than the "xx" of Brazil's
// carrier-selection prefix ("0xx11 98765-4321"), which the library strips.
func hasLetters(s string) bool {
	if len(s) > 3 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && (s[2] == 'x' || s[2] == 'X') {
		s = s[3:]
	}
	return strings.IndexFunc(s, unicode.IsLetter) >= 0
}

func digitsOnly(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// brazilZoneByDDD maps a Brazilian area code (DDD) to the IANA zone of its state.
// In Brazil a number keeps its DDD when it moves between carriers, so the DDD is
// the only location a mobile number carries. The library's own Brazilian data
// (phonenumbers.GetTimezonesForNumber, v1.8.1) has only four zones and, checked
// against it, puts every 81 9xxxx-xxxx mobile (Recife, UTC−3) in
// America/Noronha (UTC−2) and most 91/93/94 numbers (Pará, UTC−3) in
// America/Manaus (UTC−4): an hour off for calling windows. This table follows
// the tz database's zone.tab descriptions of the Brazilian zones. Immutable.
var brazilZoneByDDD = map[string]string{
	// São Paulo, Rio de Janeiro, Espírito Santo, Minas Gerais, Paraná, Santa
	// Catarina, Rio Grande do Sul, Distrito Federal, Goiás.
	"11": "America/Sao_Paulo", "12": "America/Sao_Paulo", "13": "America/Sao_Paulo",
	"14": "America/Sao_Paulo", "15": "America/Sao_Paulo", "16": "America/Sao_Paulo",
	"17": "America/Sao_Paulo", "18": "America/Sao_Paulo", "19": "America/Sao_Paulo",
	"21": "America/Sao_Paulo", "22": "America/Sao_Paulo", "24": "America/Sao_Paulo",
	"27": "America/Sao_Paulo", "28": "America/Sao_Paulo",
	"31": "America/Sao_Paulo", "32": "America/Sao_Paulo", "33": "America/Sao_Paulo",
	"34": "America/Sao_Paulo", "35": "America/Sao_Paulo", "37": "America/Sao_Paulo",
	"38": "America/Sao_Paulo",
	"41": "America/Sao_Paulo", "42": "America/Sao_Paulo", "43": "America/Sao_Paulo",
	"44": "America/Sao_Paulo", "45": "America/Sao_Paulo", "46": "America/Sao_Paulo",
	"47": "America/Sao_Paulo", "48": "America/Sao_Paulo", "49": "America/Sao_Paulo",
	"51": "America/Sao_Paulo", "53": "America/Sao_Paulo", "54": "America/Sao_Paulo",
	"55": "America/Sao_Paulo",
	"61": "America/Sao_Paulo", "62": "America/Sao_Paulo", "64": "America/Sao_Paulo",
	"63": "America/Araguaina",    // Tocantins
	"65": "America/Cuiaba",       // Mato Grosso
	"66": "America/Cuiaba",       // Mato Grosso
	"67": "America/Campo_Grande", // Mato Grosso do Sul
	"68": "America/Rio_Branco",   // Acre
	"69": "America/Porto_Velho",  // Rondônia
	"71": "America/Bahia", "73": "America/Bahia", "74": "America/Bahia",
	"75": "America/Bahia", "77": "America/Bahia",
	"79": "America/Maceio", // Sergipe
	"81": "America/Recife", // Pernambuco (Fernando de Noronha's few lines included)
	"87": "America/Recife",
	"82": "America/Maceio",    // Alagoas
	"83": "America/Fortaleza", // Paraíba
	"84": "America/Fortaleza", // Rio Grande do Norte
	"85": "America/Fortaleza", // Ceará
	"88": "America/Fortaleza",
	"86": "America/Fortaleza", // Piauí
	"89": "America/Fortaleza",
	"91": "America/Belem",    // Pará (east)
	"93": "America/Santarem", // Pará (west)
	"94": "America/Belem",
	"92": "America/Manaus", // Amazonas
	"97": "America/Manaus",
	"95": "America/Boa_Vista", // Roraima
	"96": "America/Belem",     // Amapá
	"98": "America/Fortaleza", // Maranhão
	"99": "America/Fortaleza",
}

// TimezoneForNumber returns the IANA time zone of an E.164 number when the
// number tells exactly one (see ZonesForNumber), else "": a number whose area
// spans zones has no single zone, and picking one would call someone outside
// their hours.
func TimezoneForNumber(e164 string) string {
	if zs := ZonesForNumber(e164); len(zs) == 1 {
		return zs[0]
	}
	return ""
}

// DisplayPhone writes an E.164 number as people of its country write it:
// "(11) 96000-0082" for Brazil, "(312) 555-0100" for the US. A number that
// cannot be parsed is returned as it was.
func DisplayPhone(e164 string) string {
	num, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return e164
	}
	return phonenumbers.Format(num, phonenumbers.NATIONAL)
}
