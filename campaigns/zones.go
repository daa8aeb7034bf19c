package campaigns

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
)

// Zone names used by the tables below.
const (
	zSaoPaulo  = "America/Sao_Paulo"
	zNewYork   = "America/New_York"
	zChicago   = "America/Chicago"
	zDenver    = "America/Denver"
	zPhoenix   = "America/Phoenix"
	zLosAngels = "America/Los_Angeles"
	zAnchorage = "America/Anchorage"
	zAdak      = "America/Adak"
	zHonolulu  = "Pacific/Honolulu"
	zBoise     = "America/Boise"
	zIndiana   = "America/Indiana/Indianapolis"
	zDetroit   = "America/Detroit"
	zMenominee = "America/Menominee"
	zRecife    = "America/Recife"
	zNoronha   = "America/Noronha"
	zManaus    = "America/Manaus"
	zEirunepe  = "America/Eirunepe"
)

// brazilZonesByUF maps each of Brazil's 27 federative units to the zones its
// people live in, from the tz database's zone.tab descriptions. Amazonas has two
// (the south-west, around Eirunepé, keeps UTC−5) and Pernambuco two (Fernando de
// Noronha keeps UTC−2). Immutable.
var brazilZonesByUF = map[string][]string{
	"AC": {"America/Rio_Branco"}, "AL": {"America/Maceio"}, "AP": {"America/Belem"},
	"AM": {zManaus, zEirunepe}, "BA": {"America/Bahia"}, "CE": {"America/Fortaleza"},
	"DF": {zSaoPaulo}, "ES": {zSaoPaulo}, "GO": {zSaoPaulo}, "MA": {"America/Fortaleza"},
	"MT": {"America/Cuiaba"}, "MS": {"America/Campo_Grande"}, "MG": {zSaoPaulo},
	"PA": {"America/Belem", "America/Santarem"}, "PB": {"America/Fortaleza"}, "PR": {zSaoPaulo},
	"PE": {zRecife, zNoronha}, "PI": {"America/Fortaleza"}, "RJ": {zSaoPaulo},
	"RN": {"America/Fortaleza"}, "RS": {zSaoPaulo}, "RO": {"America/Porto_Velho"},
	"RR": {"America/Boa_Vista"}, "SC": {zSaoPaulo}, "SP": {zSaoPaulo}, "SE": {"America/Maceio"},
	"TO": {"America/Araguaina"},
}

// usZonesByState maps US states, DC and the territories to the zones their
// people live in; the states that span zones (a county or two on the other side
// of the line counts) have several. Arizona has Denver for the Navajo Nation,
// which keeps daylight saving time. Immutable.
var usZonesByState = map[string][]string{
	"AL": {zChicago}, "AK": {zAnchorage, zAdak}, "AZ": {zPhoenix, zDenver}, "AR": {zChicago},
	"CA": {zLosAngels}, "CO": {zDenver}, "CT": {zNewYork}, "DE": {zNewYork}, "DC": {zNewYork},
	"FL": {zNewYork, zChicago}, "GA": {zNewYork}, "HI": {zHonolulu}, "ID": {zBoise, zLosAngels},
	"IL": {zChicago}, "IN": {zIndiana, zChicago}, "IA": {zChicago}, "KS": {zChicago, zDenver},
	"KY": {zNewYork, zChicago}, "LA": {zChicago}, "ME": {zNewYork}, "MD": {zNewYork},
	"MA": {zNewYork}, "MI": {zDetroit, zMenominee}, "MN": {zChicago}, "MS": {zChicago},
	"MO": {zChicago}, "MT": {zDenver}, "NE": {zChicago, zDenver}, "NV": {zLosAngels, zDenver},
	"NH": {zNewYork}, "NJ": {zNewYork}, "NM": {zDenver}, "NY": {zNewYork}, "NC": {zNewYork},
	"ND": {zChicago, zDenver}, "OH": {zNewYork}, "OK": {zChicago}, "OR": {zLosAngels, zBoise},
	"PA": {zNewYork}, "RI": {zNewYork}, "SC": {zNewYork}, "SD": {zChicago, zDenver},
	"TN": {zChicago, zNewYork}, "TX": {zChicago, zDenver}, "UT": {zDenver}, "VT": {zNewYork},
	"VA": {zNewYork}, "WA": {zLosAngels}, "WV": {zNewYork}, "WI": {zChicago}, "WY": {zDenver},
	"PR": {"America/Puerto_Rico"}, "VI": {"America/St_Thomas"}, "GU": {"Pacific/Guam"},
	"AS": {"Pacific/Pago_Pago"}, "MP": {"Pacific/Saipan"},
}

// usContiguousZones are the zones of the 48 contiguous states: where a US
// contact whose zone nothing tells may be.
var usContiguousZones = []string{zNewYork, zChicago, zDenver, zPhoenix, zLosAngels}

// nanpSplitAreaCodes are the US and Canadian area codes whose area spans a zone
// line. The phone library (v1.8.1) gives one zone for most of them (850, 270 →
// New York only; 605 → Denver and North Dakota only), so these zones are added to
// what it says. From the NANPA area-code maps and the tz database. Immutable.
var nanpSplitAreaCodes = map[string][]string{
	"850": {zNewYork, zChicago}, "270": {zChicago, zNewYork}, "364": {zChicago, zNewYork},
	"606": {zNewYork, zChicago}, "423": {zNewYork, zChicago}, "931": {zChicago, zNewYork},
	"812": {zIndiana, zChicago}, "930": {zIndiana, zChicago}, "574": {zIndiana, zChicago},
	"906": {zDetroit, zMenominee}, "605": {zChicago, zDenver}, "701": {zChicago, zDenver},
	"308": {zChicago, zDenver}, "785": {zChicago, zDenver}, "620": {zChicago, zDenver},
	"432": {zChicago, zDenver}, "208": {zBoise, zLosAngels}, "986": {zBoise, zLosAngels},
	"541": {zLosAngels, zBoise}, "458": {zLosAngels, zBoise}, "775": {zLosAngels, zDenver},
	"928": {zPhoenix, zDenver}, "907": {zAnchorage, zAdak},
	"807": {"America/Toronto", "America/Winnipeg"}, "705": {"America/Toronto", "America/Winnipeg"},
	"306": {"America/Regina", "America/Edmonton"}, "639": {"America/Regina", "America/Edmonton"},
	"250": {"America/Vancouver", "America/Edmonton"}, "236": {"America/Vancouver", "America/Edmonton"},
	"778": {"America/Vancouver", "America/Edmonton"}, "709": {"America/St_Johns", "America/Halifax"},
	"418": {"America/Toronto", "America/Puerto_Rico"}, "581": {"America/Toronto", "America/Puerto_Rico"},
}

// brazilDDDSplit are the Brazilian area codes whose area spans zones: 97 covers
// western Amazonas, part of it on UTC−5 (America/Eirunepe) and part on Manaus
// time; 81 covers Fernando de Noronha (UTC−2) besides Recife. A mobile number
// does not say which side its owner lives on, so both count; for 81 this ends
// the day an hour early on Recife's clock, which is the price of not calling the
// island after its window (a CEP column, 53990, pins Noronha down). Immutable.
var brazilDDDSplit = map[string][]string{
	"97": {zManaus, zEirunepe},
	"81": {zRecife, zNoronha},
}

// ZonesForNumber returns every IANA zone the owner of an E.164 number may be
// in, or nil when the number does not tell. The returned slice is shared: do
// not modify it. See brazilZoneByDDD, brazilDDDSplit and nanpSplitAreaCodes for
// where it departs from the phone library; toll-free and non-geographic numbers
// get every zone the library lists for them.
func ZonesForNumber(e164 string) []string {
	if len(e164) >= 5 && strings.HasPrefix(e164, "+55") {
		ddd := e164[3:5]
		if zs, ok := brazilDDDSplit[ddd]; ok {
			return zs
		}
		if tz, ok := brazilSingleZone[ddd]; ok {
			return tz
		}
	}
	zones, err := phonenumbers.GetTimezonesForPrefix(e164)
	if err != nil || len(zones) == 0 || zones[0] == phonenumbers.UNKNOWN_TIMEZONE {
		zones = nil
	}
	if len(e164) >= 5 && strings.HasPrefix(e164, "+1") {
		if extra, ok := nanpSplitAreaCodes[e164[2:5]]; ok {
			out := slices.Clone(zones)
			for _, z := range extra {
				if !slices.Contains(out, z) {
					out = append(out, z)
				}
			}
			return out
		}
	}
	return zones
}

// brazilSingleZone is brazilZoneByDDD with each zone as a one-element slice, so
// the import of a Brazilian list allocates nothing per row for its zones.
var brazilSingleZone = func() map[string][]string {
	m := make(map[string][]string, len(brazilZoneByDDD))
	for ddd, z := range brazilZoneByDDD {
		m[ddd] = []string{z}
	}
	return m
}()

// ZonesForRegion returns the zones of a Brazilian UF or a US state (two-letter
// code, any case) for a contact of country (ISO 3166 alpha-2: "BR" or "US"). The
// error names the code when the country has no such unit.
func ZonesForRegion(country, code string) ([]string, error) {
	code = strings.ToUpper(strings.TrimSpace(code))
	var table map[string][]string
	switch strings.ToUpper(country) {
	case "BR":
		table = brazilZonesByUF
	case "US":
		table = usZonesByState
	default:
		return nil, fmt.Errorf("no state table for country %q", country)
	}
	zs, ok := table[code]
	if !ok {
		return nil, fmt.Errorf("%q is not a %s state", code, strings.ToUpper(country))
	}
	return zs, nil
}

// cepRange is a range of the first five digits of Brazilian postal codes.
type cepRange struct {
	lo, hi int
	uf     string
}

// cepRanges are the Correios' CEP ranges of each UF (first five digits).
// Immutable.
var cepRanges = []cepRange{
	{1000, 19999, "SP"}, {20000, 28999, "RJ"}, {29000, 29999, "ES"}, {30000, 39999, "MG"},
	{40000, 48999, "BA"}, {49000, 49999, "SE"}, {50000, 56999, "PE"}, {57000, 57999, "AL"},
	{58000, 58999, "PB"}, {59000, 59999, "RN"}, {60000, 63999, "CE"}, {64000, 64999, "PI"},
	{65000, 65999, "MA"}, {66000, 68899, "PA"}, {68900, 68999, "AP"}, {69000, 69299, "AM"},
	{69300, 69399, "RR"}, {69400, 69899, "AM"}, {69900, 69999, "AC"}, {70000, 72799, "DF"},
	{72800, 72999, "GO"}, {73000, 73699, "DF"}, {73700, 76799, "GO"}, {76800, 76999, "RO"},
	{77000, 77999, "TO"}, {78000, 78899, "MT"}, {79000, 79999, "MS"}, {80000, 87999, "PR"},
	{88000, 89999, "SC"}, {90000, 99999, "RS"},
}

// zipRange is a range of US ZIP code three-digit prefixes.
type zipRange struct {
	lo, hi int
	state  string
}

// zipRanges are the USPS three-digit ZIP prefixes of each state. Military
// (AA, AE, AP) prefixes are left out: they say nothing of a zone. Immutable.
var zipRanges = []zipRange{
	{5, 5, "NY"}, {6, 7, "PR"}, {8, 8, "VI"}, {9, 9, "PR"}, {10, 27, "MA"}, {28, 29, "RI"},
	{30, 38, "NH"}, {39, 49, "ME"}, {50, 54, "VT"}, {55, 55, "MA"}, {56, 59, "VT"},
	{60, 69, "CT"}, {70, 89, "NJ"}, {100, 149, "NY"}, {150, 196, "PA"}, {197, 199, "DE"},
	{200, 200, "DC"}, {201, 201, "VA"}, {202, 205, "DC"}, {206, 219, "MD"}, {220, 246, "VA"},
	{247, 268, "WV"}, {270, 289, "NC"}, {290, 299, "SC"}, {300, 319, "GA"}, {320, 339, "FL"},
	{341, 349, "FL"}, {350, 369, "AL"}, {370, 385, "TN"}, {386, 397, "MS"}, {398, 399, "GA"},
	{400, 427, "KY"}, {430, 459, "OH"}, {460, 479, "IN"}, {480, 499, "MI"}, {500, 528, "IA"},
	{530, 549, "WI"}, {550, 567, "MN"}, {570, 577, "SD"}, {580, 588, "ND"}, {590, 599, "MT"},
	{600, 629, "IL"}, {630, 658, "MO"}, {660, 679, "KS"}, {680, 693, "NE"}, {700, 714, "LA"},
	{716, 729, "AR"}, {730, 749, "OK"}, {750, 799, "TX"}, {800, 816, "CO"}, {820, 831, "WY"},
	{832, 838, "ID"}, {840, 847, "UT"}, {850, 865, "AZ"}, {870, 884, "NM"}, {885, 885, "TX"},
	{889, 898, "NV"}, {900, 961, "CA"}, {967, 968, "HI"}, {969, 969, "GU"}, {970, 979, "OR"},
	{980, 994, "WA"}, {995, 999, "AK"},
}

// noronhaCEP is the one CEP prefix of Fernando de Noronha (53990-000).
const noronhaCEP = 53990

// ZonesForPostalCode returns the zones of a Brazilian CEP or a US ZIP code, by
// the ranges of the unit the code belongs to. The error names the code when it
// is not one or falls in no range.
func ZonesForPostalCode(country, code string) ([]string, error) {
	digits := strings.NewReplacer("-", "", " ", "", ".", "").Replace(strings.TrimSpace(code))
	if digits == "" || digitsOnly(digits) != digits {
		return nil, fmt.Errorf("%q is not a postal code", code)
	}
	switch strings.ToUpper(country) {
	case "BR":
		if len(digits) != 8 && len(digits) != 5 {
			return nil, fmt.Errorf("%q is not a CEP (8 digits)", code)
		}
		p := atoi(digits[:5])
		if p == noronhaCEP {
			return []string{zNoronha}, nil
		}
		for _, r := range cepRanges {
			if p >= r.lo && p <= r.hi {
				zs := brazilZonesByUF[r.uf]
				if r.uf == "PE" {
					return []string{zRecife}, nil // Noronha has its own CEP, above.
				}
				return zs, nil
			}
		}
		return nil, fmt.Errorf("CEP %q is in no state's range", code)
	case "US":
		if len(digits) != 5 && len(digits) != 9 {
			return nil, fmt.Errorf("%q is not a ZIP code (5 or 9 digits)", code)
		}
		p := atoi(digits[:3])
		for _, r := range zipRanges {
			if p >= r.lo && p <= r.hi {
				return usZonesByState[r.state], nil
			}
		}
		return nil, fmt.Errorf("ZIP code %q is in no state's range", code)
	}
	return nil, fmt.Errorf("no postal-code table for country %q", country)
}

func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// CountryZones returns where a contact of country whose zone nothing tells may
// be: every contiguous zone for the US (a call must be lawful wherever the person
// is), São Paulo for Brazil (where most of its people are; a Brazilian number
// always tells its zone by its DDD, so this is only for numbers of other
// countries in a Brazilian campaign), else the zones the phone library gives the
// country's example number, else nil.
func CountryZones(country string) []string {
	switch strings.ToUpper(country) {
	case "US":
		return usContiguousZones
	case "BR":
		return []string{zSaoPaulo}
	}
	ex := phonenumbers.GetExampleNumber(strings.ToUpper(country))
	if ex == nil {
		return nil
	}
	zs, err := phonenumbers.GetTimezonesForNumber(ex)
	if err != nil || len(zs) == 0 || zs[0] == phonenumbers.UNKNOWN_TIMEZONE {
		return nil
	}
	return zs
}

// countryOfZone maps the zones of Brazil and the US to their country, for the
// holidays of the contact's own country. Built once from the tables above and
// the library's zones of toll-free numbers; immutable.
var countryOfZone = func() map[string]string {
	m := map[string]string{}
	for _, zs := range brazilZonesByUF {
		for _, z := range zs {
			m[z] = "BR"
		}
	}
	for _, z := range brazilZoneByDDD {
		m[z] = "BR"
	}
	for _, zs := range usZonesByState {
		for _, z := range zs {
			m[z] = "US"
		}
	}
	for _, z := range []string{"America/Juneau", "America/Sitka", "America/Nome", "America/Yakutat",
		"America/Metlakatla", "America/North_Dakota/Center", "America/North_Dakota/New_Salem",
		"America/North_Dakota/Beulah", "America/Indiana/Knox", "America/Indiana/Tell_City",
		"America/Indiana/Vincennes", "America/Indiana/Petersburg", "America/Indiana/Winamac",
		"America/Indiana/Marengo", "America/Indiana/Vevay", "America/Kentucky/Louisville",
		"America/Kentucky/Monticello"} {
		m[z] = "US"
	}
	return m
}()

// loadedZones holds every zone the tables above name, loaded once; other zones
// are loaded when asked. Immutable after init.
var loadedZones = func() map[string]*time.Location {
	m := map[string]*time.Location{}
	add := func(z string) {
		if loc, err := time.LoadLocation(z); err == nil {
			m[z] = loc
		}
	}
	for z := range countryOfZone {
		add(z)
	}
	for _, zs := range nanpSplitAreaCodes {
		for _, z := range zs {
			add(z)
		}
	}
	return m
}()

// loadZone returns the location of an IANA name.
func loadZone(name string) (*time.Location, error) {
	if loc, ok := loadedZones[name]; ok {
		return loc, nil
	}
	return time.LoadLocation(name)
}

// regionHeaders and postalHeaders are the canonical header names of the
// state/UF and postal-code columns of an import. The columns stay attributes
// of the contact. Immutable.
var (
	regionHeaders = map[string]bool{"uf": true, "estado": true, "state": true, "state_code": true}
	postalHeaders = map[string]bool{"cep": true, "zip": true, "zip_code": true, "zipcode": true,
		"postal_code": true, "código_postal": true, "codigo_postal": true}
)

// contactCountry is the country whose state and postal tables read a contact's
// columns: Brazil for +55, the US for +1, else the campaign's default country.
func contactCountry(e164, defaultCountry string) string {
	switch {
	case strings.HasPrefix(e164, "+55"):
		return "BR"
	case strings.HasPrefix(e164, "+1"):
		return "US"
	}
	return strings.ToUpper(defaultCountry)
}

// zonesFromColumns returns the zones a state/UF and a postal code give (the
// postal code, finer, wins when both are there), or nil when both are empty.
// The error says which column is bad and why.
func zonesFromColumns(country, region, postal string) ([]string, error) {
	var zs []string
	if region != "" {
		z, err := ZonesForRegion(country, region)
		if err != nil {
			return nil, fmt.Errorf("state/UF column: %w", err)
		}
		zs = z
	}
	if postal != "" {
		z, err := ZonesForPostalCode(country, postal)
		if err != nil {
			return nil, fmt.Errorf("postal-code column: %w", err)
		}
		zs = z
	}
	return zs, nil
}

// ContactZoneNames returns the zones a contact's state/UF or postal-code
// attribute gives, else those of its number (ZonesForNumber), else nil. It is
// what the import stores as Contact.Zones when the file has no timezone column;
// a bad state or postal code counts as absent here (the import refuses it).
func ContactZoneNames(phone string, attrs map[string]string, defaultCountry string) []string {
	var region, postal string
	for k, v := range attrs {
		switch ck := canonicalHeader(k); {
		case regionHeaders[ck]:
			region = v
		case postalHeaders[ck]:
			postal = v
		}
	}
	country := contactCountry(phone, defaultCountry)
	if postal != "" {
		if zs, err := ZonesForPostalCode(country, postal); err == nil {
			return zs
		}
	}
	if region != "" {
		if zs, err := ZonesForRegion(country, region); err == nil {
			return zs
		}
	}
	return ZonesForNumber(phone)
}
