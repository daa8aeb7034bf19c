package baresiptest

import (
	"fmt"
	"net"
	"strconv"
	"testing"

	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/internal/testenv"
)

// CarrierOptions describe baresip playing a carrier's far end: a user agent
// that registers nowhere and answers the calls sent to its address at once,
// sending its 440 Hz tone.
type CarrierOptions struct {
	// User is the number it answers as (the Request-URI's user).
	User string
	// MediaEnc is baresip's media encryption for the account: "" (plain RTP),
	// "srtp" (SRTP when offered), "srtp-mand" (RTP/SAVP with SDES keys only),
	// loading the srtp module when set.
	MediaEnc string
	// DumpAudio writes what it decodes from the network for HeardLoud.
	DumpAudio bool
}

// StartCarrier runs baresip as the carrier's far end on loopback; SIPAddr is
// where to send the INVITEs. It is stopped at the test's cleanup.
func StartCarrier(t testing.TB, o CarrierOptions) *Phone {
	t.Helper()
	bin := testenv.RequireTool(t, "baresip", "baresip")
	dir := t.TempDir()
	sipPort, ctrlPort := freeSIPPort(t), sipptest.FreePort(t)
	conf := fmt.Sprintf(config, sipPort, ctrlPort)
	account := fmt.Sprintf("<sip:%s@127.0.0.1>;regint=0;answermode=auto;audio_codecs=PCMU,PCMA;mwi=no", o.User)
	if o.MediaEnc != "" {
		conf += "module\t\t\tsrtp.so\n"
		account += ";mediaenc=" + o.MediaEnc
	}
	if o.DumpAudio {
		conf += "module\t\t\tsndfile.so\nsnd_path\t\t" + dir + "\n"
	}
	p := run(t, bin, dir, conf, account+"\n", ctrlPort)
	p.sipAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(sipPort))
	return p
}

// SIPAddr is the host:port baresip takes SIP on (UDP and TCP); set by StartCarrier.
func (p *Phone) SIPAddr() string { return p.sipAddr }
