package baresiptest

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
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
	// TLSCertFile is a PEM file with the certificate and key baresip's SIP
	// TLS listener (TLSAddr) presents. Without one baresip takes no TLS.
	// (Debian's baresip 1.0 does not check the certificates of the TLS
	// connections it opens.)
	TLSCertFile string
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
	if o.TLSCertFile != "" {
		conf += "sip_certificate\t\t" + o.TLSCertFile + "\n"
	}
	p := run(t, bin, dir, conf, account+"\n", ctrlPort)
	p.sipAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(sipPort))
	return p
}

// SIPAddr is the host:port baresip takes SIP on (UDP and TCP); set by StartCarrier.
func (p *Phone) SIPAddr() string { return p.sipAddr }

// TLSAddr is the host:port baresip takes SIP over TLS on: the port after
// SIPAddr's (see freeSIPPort), with CarrierOptions.TLSCertFile set.
func (p *Phone) TLSAddr() string {
	host, port, _ := net.SplitHostPort(p.sipAddr)
	n, _ := strconv.Atoi(port)
	return net.JoinHostPort(host, strconv.Itoa(n+1))
}

// DropConnections resets baresip's end of every established TCP connection on
// its SIP ports (TCP and TLS), as a carrier's idle timer or an SBC restart
// would: a request either side sends next needs a connection of its own. It
// fails the test when there was none to drop.
func (p *Phone) DropConnections(t testing.TB) {
	t.Helper()
	ss := testenv.RequireTool(t, "ss", "iproute2")
	_, port, _ := net.SplitHostPort(p.sipAddr)
	n, _ := strconv.Atoi(port)
	out, err := exec.Command(ss, "-K", "-tn", "state", "established",
		"(", "sport", "=", ":"+port, "or", "sport", "=", ":"+strconv.Itoa(n+1), ")").CombinedOutput()
	if err != nil {
		t.Fatalf("ss -K: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "127.0.0.1:") {
		t.Fatalf("no connection to baresip's ports %s and %d to drop:\n%s", port, n+1, out)
	}
}
