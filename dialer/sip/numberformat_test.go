package sip

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/internal/sipptest"
)

func TestDialNumber(t *testing.T) {
	t.Parallel()
	br := func(f func(*TrunkConfig)) TrunkConfig {
		tc := TrunkConfig{Name: "br", Country: "BR", NumberFormat: FormatNational}
		f(&tc)
		return tc
	}
	tests := []struct {
		name     string
		trunk    TrunkConfig
		to       string
		callerID string
		want     string
		wantErr  string
	}{
		{name: "e164 by default", trunk: TrunkConfig{Name: "x"}, to: "+5511987654321", want: "+5511987654321"},
		{name: "e164", trunk: TrunkConfig{Name: "x", NumberFormat: FormatE164}, to: "+5511987654321", want: "+5511987654321"},
		{name: "e164 without plus", trunk: TrunkConfig{Name: "x", NumberFormat: FormatE164NoPlus}, to: "+5511987654321", want: "5511987654321"},
		{name: "national BR mobile", trunk: br(func(*TrunkConfig) {}), to: "+5511987654321", want: "11987654321"},
		{name: "national BR landline", trunk: br(func(*TrunkConfig) {}), to: "+552133334444", want: "2133334444"},
		{name: "national US", trunk: TrunkConfig{Name: "us", Country: "US", NumberFormat: FormatNational}, to: "+16502530000", want: "6502530000"},
		{name: "national refuses another country", trunk: br(func(*TrunkConfig) {}), to: "+16502530000", wantErr: `trunk "br": number_format: "+16502530000" is not a number of BR`},
		{name: "tech prefix", trunk: TrunkConfig{Name: "x", NumberFormat: FormatE164NoPlus, TechPrefix: "1010#"}, to: "+5511987654321", want: "1010#5511987654321"},
		{name: "carrier code, long distance from caller_area", trunk: br(func(tc *TrunkConfig) { tc.BRCarrierCode, tc.CallerArea = "21", "11" }),
			to: "+552133334444", want: "0212133334444"},
		{name: "carrier code, local call dials without it", trunk: br(func(tc *TrunkConfig) { tc.BRCarrierCode, tc.CallerArea = "21", "11" }),
			to: "+5511987654321", want: "11987654321"},
		{name: "carrier code, area from the caller ID", trunk: br(func(tc *TrunkConfig) { tc.BRCarrierCode = "15" }),
			to: "+5511987654321", callerID: "+552140001234", want: "01511987654321"},
		{name: "carrier code, local by the caller ID", trunk: br(func(tc *TrunkConfig) { tc.BRCarrierCode = "15" }),
			to: "+552133334444", callerID: "+552140001234", want: "2133334444"},
		{name: "carrier code and tech prefix", trunk: br(func(tc *TrunkConfig) { tc.BRCarrierCode, tc.CallerArea, tc.TechPrefix = "41", "11", "99" }),
			to: "+554133334444", want: "990414133334444"},
		{name: "carrier code without any area", trunk: br(func(tc *TrunkConfig) { tc.BRCarrierCode = "21" }),
			to: "+5511987654321", wantErr: "br_carrier_code: no caller_area and no caller ID"},
		{name: "carrier code with a foreign caller ID", trunk: br(func(tc *TrunkConfig) { tc.BRCarrierCode = "21" }),
			to: "+5511987654321", callerID: "+16502530000", wantErr: `caller ID "+16502530000" is not a Brazilian number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.trunk.dialNumber(tt.to, tt.callerID)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("dialNumber(%s) = %q, %v; want error containing %q", tt.to, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("dialNumber(%s) = %q, %v; want %q", tt.to, got, err, tt.want)
			}
		})
	}
}

func TestIdentity(t *testing.T) {
	t.Parallel()
	off := false
	tests := []struct {
		name  string
		trunk TrunkConfig
		want  identity
	}{
		{name: "defaults", trunk: TrunkConfig{Name: "x", Domain: "carrier.test"},
			want: identity{dialed: "+5511987654321", fromUser: "+551140001234", fromHost: "carrier.test", pai: "+551140001234", authUser: "+551140001234"}},
		{name: "national caller ID", trunk: TrunkConfig{Name: "x", Domain: "carrier.test", Country: "BR", FromFormat: FormatNational},
			want: identity{dialed: "+5511987654321", fromUser: "1140001234", fromHost: "carrier.test", pai: "1140001234", authUser: "1140001234"}},
		{name: "no PAI", trunk: TrunkConfig{Name: "x", Domain: "carrier.test", FromFormat: FormatE164NoPlus, PAI: &off},
			want: identity{dialed: "+5511987654321", fromUser: "551140001234", fromHost: "carrier.test", authUser: "551140001234"}},
		{name: "privacy id", trunk: TrunkConfig{Name: "x", Domain: "carrier.test", Privacy: PrivacyID},
			want: identity{dialed: "+5511987654321", fromUser: "anonymous", fromHost: "anonymous.invalid", fromDisplay: "Anonymous",
				pai: "+551140001234", privacy: "id", authUser: "+551140001234"}},
		{name: "privacy none", trunk: TrunkConfig{Name: "x", Domain: "carrier.test", Privacy: PrivacyNone},
			want: identity{dialed: "+5511987654321", fromUser: "+551140001234", fromHost: "carrier.test", pai: "+551140001234", privacy: "none", authUser: "+551140001234"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.trunk.identity("+5511987654321", "+551140001234")
			if err != nil || got != tt.want {
				t.Fatalf("identity = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// TestFormatConfigErrors checks that each bad setting is refused at start,
// naming its field.
func TestFormatConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		trunk func(*TrunkConfig)
		want  string
	}{
		{"unknown number format", func(tc *TrunkConfig) { tc.NumberFormat = "e.164" }, `number_format "e.164"`},
		{"national without country", func(tc *TrunkConfig) { tc.NumberFormat = FormatNational }, "number_format national needs country"},
		{"unknown from format", func(tc *TrunkConfig) { tc.FromFormat = "local" }, `from_format "local"`},
		{"bad country", func(tc *TrunkConfig) { tc.Country = "XX" }, `country "XX"`},
		{"bad tech prefix", func(tc *TrunkConfig) { tc.TechPrefix = "12a" }, `tech_prefix "12a"`},
		{"carrier code of three digits", func(tc *TrunkConfig) { tc.BRCarrierCode, tc.Country, tc.NumberFormat = "123", "BR", FormatNational }, `br_carrier_code "123"`},
		{"carrier code outside Brazil", func(tc *TrunkConfig) { tc.BRCarrierCode, tc.Country, tc.NumberFormat = "21", "US", FormatNational }, "br_carrier_code needs country BR"},
		{"carrier code with e164", func(tc *TrunkConfig) { tc.BRCarrierCode, tc.Country = "21", "BR" }, "br_carrier_code needs country BR and number_format national"},
		{"bad caller area", func(tc *TrunkConfig) { tc.CallerArea = "011" }, `caller_area "011"`},
		{"bad privacy", func(tc *TrunkConfig) { tc.Privacy = "user" }, `privacy "user"`},
		{"negative register expiry", func(tc *TrunkConfig) { tc.Register, tc.RegisterExpires = true, -1 }, "register_expires -1"},
		{"bad address", func(tc *TrunkConfig) { tc.Address = "carrier test" }, `address "carrier test"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := TrunkConfig{Name: "carrier", Address: "127.0.0.1:5060"}
			tt.trunk(&tc)
			cfg := Config{Trunks: []TrunkConfig{tc}}
			cfg.applyDefaults()
			err := cfg.validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `trunk "carrier"`) {
				t.Fatalf("validate = %v, want an error about trunk \"carrier\" containing %q", err, tt.want)
			}
		})
	}
}

// TestNumberFormatsOnTheWire dials a carrier (sipp) that checks the
// Request-URI user part of the INVITE it receives against what the trunk's
// formats must produce, and tells in its answer what From,
// P-Asserted-Identity and Privacy said.
func TestNumberFormatsOnTheWire(t *testing.T) {
	t.Parallel()
	off := false
	tests := []struct {
		name     string
		trunk    func(*TrunkConfig)
		to       string
		wantUser string
		wantSeen string
	}{
		{name: "e164", trunk: func(*TrunkConfig) {}, to: "+5511987654321", wantUser: "+5511987654321",
			wantSeen: "ruri=+5511987654321 to=+5511987654321 from=+551140001234@carrier.test pai=+551140001234 privacy="},
		{name: "national with carrier code and tech prefix, hidden caller", trunk: func(tc *TrunkConfig) {
			tc.Country, tc.NumberFormat, tc.BRCarrierCode, tc.TechPrefix = "BR", FormatNational, "21", "77"
			tc.FromFormat, tc.Privacy = FormatNational, PrivacyID
		}, to: "+552133334444", wantUser: "770212133334444",
			wantSeen: "ruri=770212133334444 to=770212133334444 from=anonymous@anonymous.invalid pai=1140001234 privacy=id"},
		{name: "local call without carrier code, no PAI", trunk: func(tc *TrunkConfig) {
			tc.Country, tc.NumberFormat, tc.BRCarrierCode, tc.FromFormat, tc.PAI = "BR", FormatNational, "21", FormatE164NoPlus, &off
		}, to: "+5511987654321", wantUser: "11987654321",
			wantSeen: "ruri=11987654321 to=11987654321 from=551140001234@carrier.test pai= privacy="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sipp := sipptest.Start(t, "identity.xml", sipptest.Options{Extra: []string{"-set", "want_ruser", tt.wantUser}})
			tc := udpTrunk("carrier", sipp.Addr, 0)
			tc.CallerID, tc.Domain = "+551140001234", "carrier.test"
			tt.trunk(&tc)
			o := newTestOriginator(t, testConfig(tc))
			c, err := o.Dial(context.Background(), DialRequest{To: tt.to})
			if err != nil {
				t.Fatal(err)
			}
			r := waitResult(t, c, 10*time.Second)
			if r.Status != 480 || r.Reason != "Seen "+tt.wantSeen {
				t.Errorf("carrier answered %d %q, want 480 %q", r.Status, r.Reason, "Seen "+tt.wantSeen)
			}
			sipp.Wait(t, 10*time.Second) // exits non-zero when the Request-URI user part differs
		})
	}
}

// TestDialRefusesUnformattable checks that a number no trunk can write in its
// format is refused by Dial with an error naming the field, and nothing is sent.
func TestDialRefusesUnformattable(t *testing.T) {
	t.Parallel()
	tc := udpTrunk("br", "127.0.0.1:9", 0)
	tc.Country, tc.NumberFormat = "BR", FormatNational
	o := newTestOriginator(t, testConfig(tc))
	_, err := o.Dial(context.Background(), DialRequest{To: "+16502530000"})
	if err == nil || !strings.Contains(err.Error(), `trunk "br": number_format: "+16502530000" is not a number of BR`) {
		t.Fatalf("Dial = %v, want the number_format error", err)
	}
}

// TestDialSkipsUnfitTrunk: a number the preferred trunk cannot write (a
// foreign number on a national trunk) goes to the next trunk, and the
// preferred one shows no attempt, since it was sent nothing.
func TestDialSkipsUnfitTrunk(t *testing.T) {
	t.Parallel()
	sipp := sipptest.Start(t, "identity.xml", sipptest.Options{Extra: []string{"-set", "want_ruser", "16502530000"}})
	national := udpTrunk("br", "127.0.0.1:9", 0)
	national.Country, national.NumberFormat = "BR", FormatNational
	intl := udpTrunk("intl", sipp.Addr, 1)
	intl.NumberFormat = FormatE164NoPlus
	o := newTestOriginator(t, testConfig(national, intl))
	c, err := o.Dial(context.Background(), DialRequest{To: "+16502530000"})
	if err != nil {
		t.Fatal(err)
	}
	r := waitResult(t, c, 10*time.Second)
	if r.Trunk != "intl" || len(r.Attempts) != 1 || r.Attempts[0].Trunk != "intl" || r.Status != 480 {
		t.Errorf("result %+v: want one attempt, on intl, answered 480 by the carrier", r)
	}
	sipp.Wait(t, 10*time.Second)
}
