package sip

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// mustB64 decodes a key from RFC 4568's examples.
func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParseCryptoAttribute reads the a=crypto lines of RFC 4568's examples,
// and refuses malformed ones with an error that quotes them.
func TestParseCryptoAttribute(t *testing.T) {
	tests := []struct {
		name string
		in   string // the value after "a=crypto:"
		want CryptoAttribute
	}{
		{
			// RFC 4568 section 4: "a=crypto:1 AES_CM_128_HMAC_SHA1_80
			//   inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32"
			name: "section 4, lifetime and MKI",
			in:   "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32",
			want: CryptoAttribute{Tag: 1, Suite: SuiteAES128SHA1_80, Keys: []CryptoKey{{
				KeySalt: mustB64(t, "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"), Lifetime: "2^20", MKI: 1, MKILength: 32}}},
		},
		{
			// RFC 4568's offer example: "a=crypto:1 AES_CM_128_HMAC_SHA1_80
			//   inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4
			//   FEC_ORDER=FEC_SRTP"
			name: "offer example, session parameter",
			in:   "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4 FEC_ORDER=FEC_SRTP",
			want: CryptoAttribute{Tag: 1, Suite: SuiteAES128SHA1_80, Keys: []CryptoKey{{
				KeySalt: mustB64(t, "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"), Lifetime: "2^20", MKI: 1, MKILength: 4}},
				SessionParams: []string{"FEC_ORDER=FEC_SRTP"}},
		},
		{
			// RFC 4568's offer example, second line: "a=crypto:2 F8_128_HMAC_SHA1_80
			//   inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm|2^20|1:4;
			//   inline:QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5|2^20|2:4
			//   FEC_ORDER=FEC_SRTP"
			name: "offer example, two keys",
			in:   "2 F8_128_HMAC_SHA1_80 inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm|2^20|1:4;inline:QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5|2^20|2:4 FEC_ORDER=FEC_SRTP",
			want: CryptoAttribute{Tag: 2, Suite: "F8_128_HMAC_SHA1_80", Keys: []CryptoKey{
				{KeySalt: mustB64(t, "MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm"), Lifetime: "2^20", MKI: 1, MKILength: 4},
				{KeySalt: mustB64(t, "QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5"), Lifetime: "2^20", MKI: 2, MKILength: 4}},
				SessionParams: []string{"FEC_ORDER=FEC_SRTP"}},
		},
		{
			// RFC 4568's key with an MKI and no lifetime:
			// "inline:YUJDZGVmZ2hpSktMbW9QUXJzVHVWd3l6MTIzNDU2|1066:4".
			name: "MKI without lifetime",
			in:   "1 AES_CM_128_HMAC_SHA1_32 inline:YUJDZGVmZ2hpSktMbW9QUXJzVHVWd3l6MTIzNDU2|1066:4",
			want: CryptoAttribute{Tag: 1, Suite: SuiteAES128SHA1_32, Keys: []CryptoKey{{
				KeySalt: mustB64(t, "YUJDZGVmZ2hpSktMbW9QUXJzVHVWd3l6MTIzNDU2"), MKI: 1066, MKILength: 4}}},
		},
		{
			name: "key alone",
			in:   "7 AES_CM_128_HMAC_SHA1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
			want: CryptoAttribute{Tag: 7, Suite: SuiteAES128SHA1_32, Keys: []CryptoKey{{
				KeySalt: mustB64(t, "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR")}}},
		},
		{
			name: "decimal lifetime",
			in:   "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|1048576",
			want: CryptoAttribute{Tag: 1, Suite: SuiteAES128SHA1_80, Keys: []CryptoKey{{
				KeySalt: mustB64(t, "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"), Lifetime: "1048576"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCryptoAttribute(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			// Written back, it is the line it was read from.
			if s := got.String(); s != tt.in {
				t.Errorf("written back as %q", s)
			}
		})
	}

	bad := []struct{ in, why string }{
		{"", "want tag"},
		{"1 AES_CM_128_HMAC_SHA1_80", "want tag"},
		{"x AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR", "tag"},
		{"1234567890 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR", "tag"},
		{"-1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR", "tag"},
		{"1 AES-CM inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR", "crypto-suite"},
		{"1 AES_CM_128_HMAC_SHA1_80 PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR", "want inline"},
		{"1 AES_CM_128_HMAC_SHA1_80 uri:https://keys.example/1", "want inline"},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:not*base64!", "not base64"},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:", "no key"},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:|2^20", "no key"},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^x", "lifetime"},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|1:0", "MKI"},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|1:200", "MKI"},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|1:4|2^20", "lifetime"},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4|5", "too many"},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR;", "want inline"},
	}
	for _, tt := range bad {
		_, err := ParseCryptoAttribute(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.why) || !strings.Contains(err.Error(), "a=crypto") {
			t.Errorf("ParseCryptoAttribute(%q) = %v, want an error about %s", tt.in, err, tt.why)
		}
	}
}

// FuzzParseCryptoAttribute: any text is read or refused, never a panic, and
// what is read is written back in a form that reads the same.
func FuzzParseCryptoAttribute(f *testing.F) {
	for _, s := range []string{
		"1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32",
		"2 F8_128_HMAC_SHA1_80 inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm|2^20|1:4;inline:QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5|2^20|2:4 FEC_ORDER=FEC_SRTP",
		"1 X inline:|||", "1 X inline:AA==|2^99999999999999999999", "1 X inline:AA|99:999",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		a, err := ParseCryptoAttribute(in)
		if err != nil {
			return
		}
		b, err := ParseCryptoAttribute(a.String())
		if err != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("%q read as %+v, written %q, read back %+v (%v)", in, a, a.String(), b, err)
		}
	})
}

// TestSDESOffer: a trunk that offers or requires SRTP sends RTP/SAVP with one
// fresh 30-byte key for each suite, in lines that read back as written.
func TestSDESOffer(t *testing.T) {
	plain := buildOffer(net.IPv4(127, 0, 0, 1), 40000, 7)
	if got := newSDESOffer(SRTPOff).apply(plain); !bytes.Equal(got, plain) {
		t.Errorf("srtp off changed the offer:\n%s", got)
	}
	seen := map[string]bool{}
	for range 2 {
		o := newSDESOffer(SRTPOffer)
		sdp := o.apply(plain)
		if !bytes.Contains(sdp, []byte("\r\nm=audio 40000 RTP/SAVP 0 8 101\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:")) {
			t.Fatalf("offer:\n%s", sdp)
		}
		ans, err := ParseAnswerSDP(sdp) // our offer read as an answer would be
		if err != nil {
			t.Fatal(err)
		}
		if ans.Profile != "RTP/SAVP" || len(ans.Crypto) != 2 || ans.Codec != CodecPCMU || ans.TelephoneEvent != 101 {
			t.Fatalf("read back as %+v", ans)
		}
		for i, line := range ans.Crypto {
			a, err := ParseCryptoAttribute(line)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{SuiteAES128SHA1_80, SuiteAES128SHA1_32}[i]
			if a.Tag != uint32(i+1) || a.Suite != want || len(a.Keys) != 1 || len(a.Keys[0].KeySalt) != 30 {
				t.Errorf("line %d: %+v", i, a)
			}
			k := string(a.Keys[0].KeySalt)
			if seen[k] {
				t.Error("a key was offered twice")
			}
			seen[k] = true
		}
	}
}

// answerWith is an SDP answer from the carrier with the given m= profile and
// a=crypto lines.
func answerWith(profile string, crypto ...string) Answer {
	sdp := "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=audio 30000 " + profile + " 0\r\n"
	for _, c := range crypto {
		sdp += "a=crypto:" + c + "\r\n"
	}
	ans, err := ParseAnswerSDP([]byte(sdp))
	if err != nil {
		panic(err)
	}
	return ans
}

// TestSDESNegotiate: the answer's security description is checked against what
// was offered: the tag, its suite, one inline key of the suite's length, no
// session parameter that changes the protection; a trunk that requires SRTP
// takes no answer without it, and one that only offers it takes a plain one.
func TestSDESNegotiate(t *testing.T) {
	const key = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR" // RFC 4568's example key, 30 bytes
	tests := []struct {
		name   string
		mode   string
		answer Answer
		suite  string // the SRTP call's suite; "" a plain call
		err    error
		why    string
	}{
		{name: "off/plain", mode: SRTPOff, answer: answerWith("RTP/AVP")},
		{name: "off/savp answer", mode: SRTPOff, answer: answerWith("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key), err: ErrSRTPAnswer, why: "RTP/SAVP to an RTP/AVP offer"},
		{name: "offer/80", mode: SRTPOffer, answer: answerWith("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key), suite: SuiteAES128SHA1_80},
		{name: "offer/32", mode: SRTPOffer, answer: answerWith("RTP/SAVP", "2 AES_CM_128_HMAC_SHA1_32 inline:"+key+"|2^31"), suite: SuiteAES128SHA1_32},
		{name: "require/answer example with MKI", mode: SRTPRequire, answer: answerWith("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key+"|2^20|1:4"), suite: SuiteAES128SHA1_80},
		{name: "require/window size hint", mode: SRTPRequire, answer: answerWith("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key+" WSH=128"), suite: SuiteAES128SHA1_80},
		{name: "offer/plain answer", mode: SRTPOffer, answer: answerWith("RTP/AVP")},
		{name: "require/plain answer", mode: SRTPRequire, answer: answerWith("RTP/AVP"), err: ErrSRTPRequired, why: "RTP/AVP"},
		{name: "require/savp without keys", mode: SRTPRequire, answer: answerWith("RTP/SAVP"), err: ErrSRTPRequired},
		{name: "offer/savp without keys", mode: SRTPOffer, answer: answerWith("RTP/SAVP"), err: ErrSRTPAnswer, why: "without a=crypto"},
		{name: "tag not offered", mode: SRTPOffer, answer: answerWith("RTP/SAVP", "3 AES_CM_128_HMAC_SHA1_80 inline:"+key), err: ErrSRTPAnswer, why: "tag 3 was not offered"},
		{name: "suite of another tag", mode: SRTPOffer, answer: answerWith("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_32 inline:"+key), err: ErrSRTPAnswer, why: "offered as AES_CM_128_HMAC_SHA1_80"},
		{name: "suite not offered", mode: SRTPOffer, answer: answerWith("RTP/SAVP", "1 AES_256_CM_HMAC_SHA1_80 inline:"+key+key), err: ErrSRTPAnswer, why: "AES_256_CM_HMAC_SHA1_80"},
		{name: "short key", mode: SRTPOffer, answer: answerWith("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key[:20]), err: ErrSRTPAnswer, why: "15 bytes, want 30"},
		{name: "long key", mode: SRTPOffer, answer: answerWith("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key+"AAAA"), err: ErrSRTPAnswer, why: "33 bytes, want 30"},
		{name: "not base64", mode: SRTPRequire, answer: answerWith("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:PS1u#CVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"), err: ErrSRTPAnswer, why: "not base64"},
		{name: "garbage", mode: SRTPRequire, answer: answerWith("RTP/SAVP", "AES_CM_128_HMAC_SHA1_80"), err: ErrSRTPAnswer, why: "want tag"},
		{name: "two keys", mode: SRTPOffer, answer: answerWith("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key+"|2^20|1:4;inline:"+key+"|2^20|2:4"), err: ErrSRTPAnswer, why: "2 keys"},
		{name: "two lines", mode: SRTPOffer, answer: answerWith("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key, "2 AES_CM_128_HMAC_SHA1_32 inline:"+key), err: ErrSRTPAnswer, why: "2 a=crypto lines"},
		{name: "unencrypted", mode: SRTPOffer, answer: answerWith("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key+" UNENCRYPTED_SRTP"), err: ErrSRTPAnswer, why: "UNENCRYPTED_SRTP"},
		{name: "key derivation rate", mode: SRTPOffer, answer: answerWith("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key+" KDR=10"), err: ErrSRTPAnswer, why: "KDR=10"},
		{name: "short lifetime", mode: SRTPOffer, answer: answerWith("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key+"|2^10"), err: ErrSRTPAnswer, why: "lifetime 2^10"},
		{name: "MKI too big", mode: SRTPOffer, answer: answerWith("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key+"|300:1"), err: ErrSRTPAnswer, why: "MKI 300"},
		{name: "MKI too long", mode: SRTPOffer, answer: answerWith("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key+"|1:32"), err: ErrSRTPAnswer, why: "MKI of 32 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			offer := newSDESOffer(tt.mode)
			keys, err := offer.negotiate(tt.answer)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.why) {
					t.Fatalf("err = %v, want %v about %q", err, tt.err, tt.why)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.suite == "" && keys != nil:
				t.Fatalf("a plain answer keyed the call: %+v", keys)
			case tt.suite != "" && (keys == nil || keys.suite != tt.suite):
				t.Fatalf("keys %+v, want suite %s", keys, tt.suite)
			case keys != nil:
				a, _ := ParseCryptoAttribute(tt.answer.Crypto[0])
				if !bytes.Equal(keys.remote, a.Keys[0].KeySalt) || !bytes.Equal(keys.local, offer.lines[a.Tag-1].Keys[0].KeySalt) {
					t.Error("the keys are not the answer's and our offered one for its tag")
				}
			}
		})
	}
}

// TestSRTPSession: for each suite, what we protect is read by an independent
// SRTP endpoint (pion's context, keyed as the carrier would be from our offer),
// and what it protects with its key, with or without an MKI, we read back;
// a packet changed on the way, or replayed, is refused.
func TestSRTPSession(t *testing.T) {
	for _, tt := range []struct {
		suite string
		mki   []byte
	}{{SuiteAES128SHA1_80, nil}, {SuiteAES128SHA1_32, nil}, {SuiteAES128SHA1_80, []byte{0, 0, 0, 1}}} {
		t.Run(tt.suite, func(t *testing.T) {
			keys := &srtpKeys{suite: tt.suite, local: bytes.Repeat([]byte{1}, 30), remote: bytes.Repeat([]byte{2}, 30), remoteMKI: tt.mki}
			s, err := newSRTPSession(keys, nil)
			if err != nil {
				t.Fatal(err)
			}
			profile := srtpSuites[tt.suite]
			// The carrier decrypts with our key and encrypts with its own.
			theirRecv, err := srtp.CreateContext(keys.local[:16], keys.local[16:], profile)
			if err != nil {
				t.Fatal(err)
			}
			var opts []srtp.ContextOption
			if tt.mki != nil {
				opts = append(opts, srtp.MasterKeyIndicator(tt.mki))
			}
			theirSend, err := srtp.CreateContext(keys.remote[:16], keys.remote[16:], profile, opts...)
			if err != nil {
				t.Fatal(err)
			}
			p := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 42, SequenceNumber: 7, Timestamp: 160}, Payload: bytes.Repeat([]byte{0x55}, 160)}
			plain, _ := p.Marshal()

			var wire []byte
			if err := s.protect(plain, func(b []byte) error { wire = append([]byte(nil), b...); return nil }); err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(wire, p.Payload[:16]) {
				t.Fatal("the payload went out in clear")
			}
			got, err := theirRecv.DecryptRTP(nil, wire, nil)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("the carrier read %x, %v", got, err)
			}

			in, err := theirSend.EncryptRTP(nil, plain, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err = s.unprotect(nil, in)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("we read %x, %v", got, err)
			}
			if _, err := s.unprotect(nil, in); err == nil {
				t.Error("a replayed packet was taken")
			}
			p.SequenceNumber++
			next, _ := p.Marshal()
			in, _ = theirSend.EncryptRTP(nil, next, nil)
			in[20] ^= 1
			if _, err := s.unprotect(nil, in); err == nil {
				t.Error("a packet changed on the way was taken")
			}
		})
	}
}

// TestSRTPConfig: the trunk's srtp setting defaults to off, is read in any
// case, and a wrong value is refused naming the trunk and the field.
func TestSRTPConfig(t *testing.T) {
	cfg := Config{Trunks: []TrunkConfig{{Name: "a", Address: "h:5060"}, {Name: "b", Address: "h:5060", SRTP: "Require"}}}
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Trunks[0].SRTP != SRTPOff || cfg.Trunks[1].SRTP != SRTPRequire {
		t.Errorf("srtp = %q, %q", cfg.Trunks[0].SRTP, cfg.Trunks[1].SRTP)
	}
	bad := Config{Trunks: []TrunkConfig{{Name: "a", Address: "h:5060", SRTP: "mandatory"}}}
	bad.applyDefaults()
	if err := bad.validate(); err == nil || !strings.Contains(err.Error(), `trunk "a": srtp "mandatory"`) {
		t.Errorf("validate = %v", err)
	}
}
