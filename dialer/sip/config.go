package sip

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/turbina-dialer/turbina/internal/jsontime"
)

// Duration is a time.Duration read and written in JSON config files as duration
// text ("1.5s", "300ms") or a number of seconds.
type Duration = jsontime.Duration

// Transport names accepted in [TrunkConfig.Transport].
const (
	TransportUDP = "udp"
	TransportTCP = "tcp"
	TransportTLS = "tls"
)

// TrunkConfig is one carrier trunk as written in the config file.
type TrunkConfig struct {
	// Name identifies the trunk in results, status and metrics. Required, unique.
	Name string `json:"name"`
	// Address is the carrier's SIP host:port (port defaults to 5060, or 5061 for TLS).
	Address string `json:"address"`
	// Transport is udp (default), tcp or tls.
	Transport string `json:"transport,omitempty"`
	// Username and Password answer digest challenges (401/407). Username
	// defaults to the caller ID when empty.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// CallerID is the E.164 number presented when the DialRequest has none.
	CallerID string `json:"caller_id,omitempty"`
	// Domain is the host part of the From, To and P-Asserted-Identity URIs;
	// defaults to the host of Address.
	Domain string `json:"domain,omitempty"`
	// MaxCPS caps new INVITEs per second on this trunk (0: unlimited).
	MaxCPS float64 `json:"max_cps,omitempty"`
	// MaxChannels caps concurrent calls on this trunk (0: unlimited).
	MaxChannels int `json:"max_channels,omitempty"`
	// Priority orders trunks: lower is preferred; ties keep config order.
	Priority int `json:"priority,omitempty"`
	// ExternalAddr overrides [Config.ExternalAddr] for this trunk, for a
	// carrier reached over another interface or NAT than the rest.
	ExternalAddr string `json:"external_addr,omitempty"`
	// RTPExternalAddr overrides [Config.RTPExternalAddr] for this trunk.
	RTPExternalAddr string `json:"rtp_external_addr,omitempty"`
	// KeepaliveInterval overrides [Config.KeepaliveInterval] for this trunk;
	// "off" (or 0) sends no keepalive OPTIONS at all, for carriers that
	// refuse or bill them. The trunk is still probed when calls on it show
	// signs of trouble, and while its circuit is open.
	KeepaliveInterval *Keepalive `json:"keepalive_interval,omitempty"`
	// TLSInsecureSkipVerify disables certificate checks (tests, labs only).
	TLSInsecureSkipVerify bool `json:"tls_insecure_skip_verify,omitempty"`
	// TLSRootCAFile is a PEM bundle that replaces the system roots for this trunk.
	TLSRootCAFile string `json:"tls_root_ca_file,omitempty"`
	// TLSServerName overrides the name checked in the carrier's certificate.
	TLSServerName string `json:"tls_server_name,omitempty"`
	// ConnectionReuse, for a tcp or tls trunk, offers our connections to the
	// carrier with alias in Via and sends our requests on a connection the
	// carrier offered with alias in its own (RFC 5923); default true. False
	// does neither, for a carrier that mishandles it.
	ConnectionReuse *bool `json:"connection_reuse,omitempty"`
	// Responses are this carrier's rows of the response table, read before the
	// defaults ([DefaultResponses]): what each final response means.
	Responses []ResponseRule `json:"responses,omitempty"`
	// SRTP is off (default: RTP/AVP), offer (RTP/SAVP with SDES keys, RFC 4568;
	// a plain answer makes a plain call) or require (an answer without keys is
	// hung up, a trunk fault). The keys travel in the SDP: use transport tls.
	SRTP string `json:"srtp,omitempty"`

	// NumberFormat writes the destination in the Request-URI and To: e164
	// (default, "+5511…"), e164_no_plus or national (of Country).
	NumberFormat string `json:"number_format,omitempty"`
	// Country is the trunk's ISO 3166 region ("BR", "US") for national formats.
	Country string `json:"country,omitempty"`
	// TechPrefix is prepended to every dialled number (digits, * and #).
	TechPrefix string `json:"tech_prefix,omitempty"`
	// BRCarrierCode is Brazil's carrier-selection code ("21"): a call to
	// another area code is dialled 0, code, DDD, number; a local one without.
	// Needs Country BR and NumberFormat national.
	BRCarrierCode string `json:"br_carrier_code,omitempty"`
	// CallerArea is the DDD calls are placed from, for BRCarrierCode; by
	// default the caller ID's.
	CallerArea string `json:"caller_area,omitempty"`
	// FromFormat writes the caller ID in From and P-Asserted-Identity, with
	// the same choices as NumberFormat.
	FromFormat string `json:"from_format,omitempty"`
	// PAI sends P-Asserted-Identity with the caller ID (default true).
	PAI *bool `json:"pai,omitempty"`
	// Privacy is "id" (hide the caller: anonymous From, Privacy: id, RFC
	// 3323/3325), "none" (send Privacy: none) or empty (no header).
	Privacy string `json:"privacy,omitempty"`

	// Register keeps the trunk registered (REGISTER with digest from Username
	// and Password), refreshed before it expires, removed at shutdown.
	Register bool `json:"register,omitempty"`
	// RegisterExpires is the registration lifetime asked for, in seconds
	// (default 600); the registrar may grant less.
	RegisterExpires int `json:"register_expires,omitempty"`
	// RegisterUser and RegisterDomain make the address of record
	// sip:user@domain (default Username, else the caller ID, at Domain).
	RegisterUser   string `json:"register_user,omitempty"`
	RegisterDomain string `json:"register_domain,omitempty"`
}

// Config configures an [Originator].
type Config struct {
	// Trunks lists the carriers; at least one.
	Trunks []TrunkConfig `json:"trunks"`
	// ListenAddr is the local host:port for SIP over UDP (default
	// 127.0.0.1:0, an ephemeral port). The host may be any address, 0.0.0.0
	// or [::]; RTP ports are bound on the same host. Unless ExternalAddr says
	// otherwise, Via, Contact and SDP carry the listening host, or when that is
	// any address, the local address the system routes to each trunk from.
	ListenAddr string `json:"listen_addr,omitempty"`
	// ExternalAddr is the address carriers reach Turbina at, host[:port], when
	// it is not the listening one: the public address of a cloud VM or of a
	// server behind 1:1 NAT. It goes in Via sent-by and Contact, and its host
	// in SDP c= unless RTPExternalAddr is set. The port defaults to the
	// listening port (a NAT that maps the same port).
	ExternalAddr string `json:"external_addr,omitempty"`
	// RTPExternalAddr is the IP address put in SDP c= for carriers to send
	// RTP to, when media leaves by another address than SIP (default: the
	// host of ExternalAddr, else as for Via).
	RTPExternalAddr string `json:"rtp_external_addr,omitempty"`
	// ListenTCP is the local host:port for SIP over TCP, opened when a trunk
	// uses tcp (default: listen_addr's host and the UDP port, one address for
	// all). INVITEs on tcp trunks put it in Contact and Via, so a carrier can
	// open its own connection for a request inside the call.
	ListenTCP string `json:"listen_tcp,omitempty"`
	// ListenTLS is the local host:port for SIP over TLS, opened when a trunk
	// uses tls (default: listen_addr's host and the UDP port + 1, as 5060 and
	// 5061; an ephemeral port when listen_addr's is).
	ListenTLS string `json:"listen_tls,omitempty"`
	// TLSCertFile and TLSKeyFile are the PEM certificate (with its chain) and
	// key the TLS listener presents to carriers; required when a trunk uses tls.
	TLSCertFile string `json:"tls_cert_file,omitempty"`
	TLSKeyFile  string `json:"tls_key_file,omitempty"`
	// RTPPortMin and RTPPortMax bound the local RTP ports (default: ephemeral).
	RTPPortMin int `json:"rtp_port_min,omitempty"`
	RTPPortMax int `json:"rtp_port_max,omitempty"`
	// RingTimeout ends an unanswered call with a CANCEL (default 30s); a
	// DialRequest may override it.
	RingTimeout Duration `json:"ring_timeout,omitempty"`
	// InviteTimeout is how long an INVITE may go without any response before
	// the trunk counts as silent and the call moves on (default 3s).
	InviteTimeout Duration `json:"invite_timeout,omitempty"`
	// UserAgent is sent in the User-Agent header (default "Turbina").
	UserAgent string `json:"user_agent,omitempty"`
	// FaultsToOpen consecutive trunk faults within FaultWindow open a trunk's
	// circuit (default 3 within 30s).
	FaultsToOpen int      `json:"faults_to_open,omitempty"`
	FaultWindow  Duration `json:"fault_window,omitempty"`
	// ProbeInterval is how often an open trunk is probed with OPTIONS (default 1s).
	ProbeInterval Duration `json:"probe_interval,omitempty"`
	// RecoverAfter consecutive answered probes close an open trunk (default 3),
	// so a link that comes and goes does not carry calls in between.
	RecoverAfter int `json:"recover_after,omitempty"`
	// SuspectAfter is how long an INVITE may go without any response, not even
	// 100 Trying, before the trunk is suspected and probed at once (default
	// 400ms, and below InviteTimeout).
	SuspectAfter Duration `json:"suspect_after,omitempty"`
	// ProbeBurstCount OPTIONS, ProbeBurstSpacing apart, test a suspected trunk
	// (default 3, 200ms); when none is answered within ProbeTimeout (default
	// 500ms) the trunk is down and every unanswered call on it ends trunk_down.
	ProbeBurstCount   int      `json:"probe_burst_count,omitempty"`
	ProbeBurstSpacing Duration `json:"probe_burst_spacing,omitempty"`
	ProbeTimeout      Duration `json:"probe_timeout,omitempty"`
	// KeepaliveInterval is the pause between OPTIONS to a trunk that is up
	// (default 500ms): one failed keepalive starts the burst, so an idle
	// trunk's death is known within about 2 s. A trunk's own
	// [TrunkConfig.KeepaliveInterval] overrides it, or turns keepalives off.
	KeepaliveInterval Duration `json:"keepalive_interval,omitempty"`
	// MediaSilence: when no RTP arrived on any answered call of a trunk for this
	// long (default 500ms), the trunk is suspected.
	MediaSilence Duration `json:"media_silence,omitempty"`
	// OnTrunkChange, when set, is called with a trunk's status each time it goes
	// down, opens on faults, is taken out of service, is held or its hold ends,
	// or recovers, so the engine
	// can react at once instead of polling [Originator.Trunks]. It runs on the
	// trunk's monitor or a call's goroutine and must not block.
	OnTrunkChange func(TrunkStatus) `json:"-"`
	// SendSilence makes answered calls send G.711 silence every 20 ms until
	// [Media.StopSilence], so carriers that drop one-way calls keep them up.
	SendSilence bool `json:"send_silence,omitempty"`
	// RTPTimeout ends an answered call with BYE when no RTP came from the
	// carrier for this long while its SDP says it sends (default 30s): a dead
	// call would otherwise hold its agent. The Result's Reason says so.
	RTPTimeout Duration `json:"rtp_timeout,omitempty"`
	// SessionExpires is the session interval asked for in the INVITE (RFC
	// 4028; default 30m): a carrier that takes it either refreshes the call
	// or has Turbina refresh it at half the interval, and a call not
	// refreshed in time is ended with BYE. MinSE is the smallest interval
	// accepted from a carrier (default 90s, RFC 4028's floor; lower values are
	// for tests). SessionRefresh is how Turbina refreshes: "invite" (default,
	// a re-INVITE with the current SDP) or "update" (RFC 3311, no SDP).
	SessionExpires Duration `json:"session_expires,omitempty"`
	MinSE          Duration `json:"min_se,omitempty"`
	SessionRefresh string   `json:"session_refresh,omitempty"`
	// DNSServer is the DNS server (host:port) that resolves trunk addresses
	// given as a name without a port (SRV, then A/AAAA); default: the
	// system's (the first nameserver of /etc/resolv.conf).
	DNSServer string `json:"dns_server,omitempty"`
}

func (c *Config) applyDefaults() {
	if c.ListenAddr == "" {
		c.ListenAddr = "127.0.0.1:0"
	}
	if c.RingTimeout <= 0 {
		c.RingTimeout = Duration(30 * time.Second)
	}
	if c.InviteTimeout <= 0 {
		c.InviteTimeout = Duration(3 * time.Second)
	}
	if c.UserAgent == "" {
		c.UserAgent = "Turbina"
	}
	if c.FaultsToOpen <= 0 {
		c.FaultsToOpen = 3
	}
	if c.FaultWindow <= 0 {
		c.FaultWindow = Duration(30 * time.Second)
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = Duration(time.Second)
	}
	if c.RecoverAfter == 0 {
		c.RecoverAfter = 3
	}
	if c.SuspectAfter == 0 {
		// Below the INVITE timeout, or the silent INVITE fails before it is suspected.
		c.SuspectAfter = min(Duration(400*time.Millisecond), c.InviteTimeout/2)
	}
	if c.ProbeBurstCount == 0 {
		c.ProbeBurstCount = 3
	}
	if c.ProbeBurstSpacing == 0 {
		c.ProbeBurstSpacing = Duration(200 * time.Millisecond)
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = Duration(500 * time.Millisecond)
	}
	if c.KeepaliveInterval == 0 {
		c.KeepaliveInterval = Duration(500 * time.Millisecond)
	}
	if c.MediaSilence == 0 {
		c.MediaSilence = Duration(500 * time.Millisecond)
	}
	c.applyDialogDefaults()
	for i := range c.Trunks {
		t := &c.Trunks[i]
		t.Transport = strings.ToLower(t.Transport)
		if t.Transport == "" {
			t.Transport = TransportUDP
		}
		if t.SRTP = strings.ToLower(t.SRTP); t.SRTP == "" {
			t.SRTP = SRTPOff
		}
		// A name without a port stays so: it is resolved with DNS SRV (resolve.go).
		if _, _, err := net.SplitHostPort(t.Address); err != nil && net.ParseIP(strings.Trim(t.Address, "[]")) != nil {
			t.Address = net.JoinHostPort(strings.Trim(t.Address, "[]"), strconv.Itoa(defaultPort(t.Transport)))
		}
		if t.Domain == "" {
			t.Domain = addressHost(t.Address)
		}
		if t.Register && t.RegisterExpires == 0 {
			t.RegisterExpires = defaultRegisterExpires
		}
	}
}

func (c *Config) validate() error {
	if len(c.Trunks) == 0 {
		return errors.New("no trunks configured")
	}
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		return fmt.Errorf("listen_addr %q: %w", c.ListenAddr, err)
	}
	if err := c.validateStreams(); err != nil {
		return err
	}
	if c.RTPPortMin < 0 || c.RTPPortMax > 65535 || c.RTPPortMin > c.RTPPortMax {
		return fmt.Errorf("rtp ports %d-%d: invalid range", c.RTPPortMin, c.RTPPortMax)
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{
		{"probe_interval", c.ProbeInterval}, {"suspect_after", c.SuspectAfter},
		{"probe_burst_spacing", c.ProbeBurstSpacing}, {"probe_timeout", c.ProbeTimeout},
		{"keepalive_interval", c.KeepaliveInterval}, {"media_silence", c.MediaSilence},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%s %s: must be positive", d.name, d.v.Std())
		}
	}
	if err := c.validateDialog(); err != nil {
		return err
	}
	if c.SuspectAfter >= c.InviteTimeout {
		return fmt.Errorf("suspect_after %s: must be below invite_timeout %s", c.SuspectAfter.Std(), c.InviteTimeout.Std())
	}
	if c.ProbeBurstCount < 1 || c.ProbeBurstCount > 10 {
		return fmt.Errorf("probe_burst_count %d: want 1 to 10", c.ProbeBurstCount)
	}
	if c.RecoverAfter < 1 {
		return fmt.Errorf("recover_after %d: want at least 1", c.RecoverAfter)
	}
	if c.DNSServer != "" {
		if _, _, err := net.SplitHostPort(c.DNSServer); err != nil {
			return fmt.Errorf("dns_server %q: want host:port: %w", c.DNSServer, err)
		}
	}
	if err := validateExternal("", c.ExternalAddr, c.RTPExternalAddr); err != nil {
		return err
	}
	seen := make(map[string]bool)
	for i, t := range c.Trunks {
		if t.Name == "" {
			return fmt.Errorf("trunk %d: name is required", i)
		}
		if seen[t.Name] {
			return fmt.Errorf("trunk %q: duplicate name", t.Name)
		}
		seen[t.Name] = true
		if host, port, err := net.SplitHostPort(t.Address); err == nil {
			if host == "" {
				return fmt.Errorf("trunk %q: address %q: want host:port or a host name", t.Name, t.Address)
			}
			if _, err := strconv.Atoi(port); err != nil {
				return fmt.Errorf("trunk %q: address %q: bad port", t.Name, t.Address)
			}
		} else if !srvName(t.Address) {
			return fmt.Errorf("trunk %q: address %q: want host:port or a host name", t.Name, t.Address)
		}
		switch t.Transport {
		case TransportUDP, TransportTCP, TransportTLS:
		default:
			return fmt.Errorf("trunk %q: transport %q: want udp, tcp or tls", t.Name, t.Transport)
		}
		switch t.SRTP {
		case SRTPOff, SRTPOffer, SRTPRequire:
		default:
			return fmt.Errorf("trunk %q: srtp %q: want off, offer or require", t.Name, t.SRTP)
		}
		if t.MaxCPS < 0 || t.MaxChannels < 0 {
			return fmt.Errorf("trunk %q: negative limit", t.Name)
		}
		for j, r := range t.Responses {
			if err := r.validate(); err != nil {
				return fmt.Errorf("trunk %q: responses[%d].%w", t.Name, j, err)
			}
		}
		if err := t.validateFormats(); err != nil {
			return err
		}
		if t.RegisterExpires < 0 {
			return fmt.Errorf("trunk %q: register_expires %d: must be positive", t.Name, t.RegisterExpires)
		}
		rtpExt := t.RTPExternalAddr
		if rtpExt == "" && t.ExternalAddr == "" {
			rtpExt = c.RTPExternalAddr
		}
		if err := validateExternal(fmt.Sprintf("trunk %q: ", t.Name), t.ExternalAddr, rtpExt); err != nil {
			return err
		}
		if t.ConnectionReuse != nil && t.Transport == TransportUDP {
			return fmt.Errorf("trunk %q: connection_reuse: only for transport tcp or tls (udp has no connection)", t.Name)
		}
		if t.KeepaliveInterval != nil && *t.KeepaliveInterval < 0 {
			return fmt.Errorf("trunk %q: keepalive_interval %s: want a positive duration or \"off\"", t.Name, Duration(*t.KeepaliveInterval).Std())
		}
	}
	return nil
}

// validateExternal checks an external_addr (host[:port]) and the
// rtp_external_addr that goes with it; prefix names the trunk, if any.
func validateExternal(prefix, ext, rtpExt string) error {
	if ext != "" {
		host, port, err := splitExternal(ext)
		if err != nil {
			return fmt.Errorf("%sexternal_addr %q: %w", prefix, ext, err)
		}
		if port < 0 || port > 65535 {
			return fmt.Errorf("%sexternal_addr %q: bad port", prefix, ext)
		}
		if net.ParseIP(host) == nil && rtpExt == "" {
			// SDP c= takes an address: a name there is rarely understood.
			return fmt.Errorf("%sexternal_addr %q: a host name needs rtp_external_addr (an IP address) for SDP", prefix, ext)
		}
	}
	if rtpExt != "" {
		if ip := net.ParseIP(rtpExt); ip == nil || ip.IsUnspecified() {
			return fmt.Errorf("%srtp_external_addr %q: want an IP address", prefix, rtpExt)
		}
	}
	return nil
}

// splitExternal splits host[:port] (IPv6 literals in brackets); port 0 when absent.
func splitExternal(addr string) (host string, port int, err error) {
	if h, p, err := net.SplitHostPort(addr); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || h == "" {
			return "", 0, errors.New("want host[:port]")
		}
		return h, n, nil
	}
	host = addr
	if strings.HasPrefix(addr, "[") {
		if !strings.HasSuffix(addr, "]") {
			return "", 0, errors.New("want host[:port]")
		}
		host = addr[1 : len(addr)-1]
	}
	if host == "" || strings.ContainsAny(host, "[]/ ") {
		return "", 0, errors.New("want host[:port]")
	}
	if strings.Contains(host, ":") && net.ParseIP(host) == nil {
		return "", 0, errors.New("want host[:port]")
	}
	return host, 0, nil
}

// Keepalive is a trunk's keepalive_interval: duration text, a number of
// seconds, or "off" (written back as "off"), which is 0.
type Keepalive Duration

// KeepaliveOff is the Keepalive that sends none.
const KeepaliveOff Keepalive = 0

// KeepaliveEvery returns a trunk's keepalive_interval of d; 0 is off.
func KeepaliveEvery(d time.Duration) *Keepalive {
	k := Keepalive(d)
	return &k
}

// MarshalJSON writes "off" or duration text.
func (k Keepalive) MarshalJSON() ([]byte, error) {
	if k == KeepaliveOff {
		return []byte(`"off"`), nil
	}
	return Duration(k).MarshalJSON()
}

// UnmarshalJSON reads "off", duration text or a number of seconds.
func (k *Keepalive) UnmarshalJSON(b []byte) error {
	if string(b) == `"off"` {
		*k = KeepaliveOff
		return nil
	}
	var d Duration
	if err := d.UnmarshalJSON(b); err != nil {
		return fmt.Errorf("keepalive_interval: %w (or \"off\")", err)
	}
	*k = Keepalive(d)
	return nil
}
