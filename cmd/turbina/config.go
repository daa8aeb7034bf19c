package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"

	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/media"
	"github.com/turbina-dialer/turbina/storage"
	"github.com/turbina-dialer/turbina/web"
)

// config is everything serve and demo need, from defaults, the config file, the
// environment and flags, in rising order of precedence.
type config struct {
	HTTPAddr string `json:"http_addr"`
	DataDir  string `json:"data_dir"`
	// DatabaseURL is a PostgreSQL database (postgres://…) to keep the state in
	// instead of the SQLite file in DataDir.
	DatabaseURL    string `json:"database_url"`
	LogFormat      string `json:"log_format"`
	LogLevel       string `json:"log_level"`
	MaxBodyBytes   int64  `json:"max_body_bytes"`
	MaxImportBytes int64  `json:"max_import_bytes"`
	// SIP configures the trunks calls are placed on; without trunks the SIP rung is
	// skipped and contacts go straight to the next rung.
	SIP sip.Config `json:"sip"`
	// Engine tunes the dialing engine.
	Engine engineConfig `json:"engine"`
	// Registrar is where agents' SIP phones register; off unless listen_addr is set.
	Registrar sip.RegistrarConfig `json:"registrar"`
	// WebRTC says where browser agents' audio legs gather ICE candidates.
	WebRTC media.ICEConfig `json:"webrtc"`
	// WhatsApp is the WhatsApp Business account the WhatsApp rungs use; without an
	// access token those rungs are skipped.
	WhatsApp whatsappConfig `json:"whatsapp"`
	// HTTP bounds what one client can hold of the HTTP server.
	HTTP httpConfig `json:"http"`
	// Cluster is how this node shares a PostgreSQL database's campaigns with
	// the other nodes on it.
	Cluster clusterConfig `json:"cluster"`
	// AdminToken comes from the environment only: a secret has no place in a file
	// that gets copied around, nor in a flag that shows in ps.
	AdminToken string `json:"-"`
	// TokenKey is TURBINA_TOKEN_KEY, also from the environment only.
	TokenKey   string `json:"-"`
	ConfigFile string `json:"-"`
}

// engineConfig is the config file's engine section.
type engineConfig struct {
	RingTimeout sip.Duration `json:"ring_timeout,omitempty"`
	Patience    sip.Duration `json:"patience,omitempty"`
	// AgentSilence is how long an agent's audio may bring nothing before the
	// agent's leg is taken as lost and the agent paused (default 4s).
	AgentSilence sip.Duration `json:"agent_silence,omitempty"`
	// AgentReturn is how long a browser agent's call waits for its audio to
	// come back (a reloaded page) before the customer hears the safe-harbour
	// message (default 8s).
	AgentReturn sip.Duration `json:"agent_return,omitempty"`
	// NumberLimits bound the calls one number gets across every campaign and
	// channel (default 3 per 24 h and 10 per 7 days; 0: no limit of that period).
	NumberLimits *campaigns.NumberLimits `json:"number_limits,omitempty"`
	// QuietAfterAbandon is how long an abandoned person is not called again
	// unless an agent is reserved for the call (default 72h).
	QuietAfterAbandon sip.Duration `json:"quiet_after_abandon,omitempty"`
	// OptOutWords are the WhatsApp replies that opt a person out (default SAIR,
	// PARAR, STOP, CANCELAR, DESCADASTRAR), and OptOutReply the confirmation.
	OptOutWords []string `json:"opt_out_words,omitempty"`
	OptOutReply string   `json:"opt_out_reply,omitempty"`
	// MaxAbandon caps every campaign's pacing.target_abandon (default 0.03, the
	// TSR's and Ofcom's 3 %); at most campaigns.MaxAbandonCeiling.
	MaxAbandon float64 `json:"max_abandon,omitempty"`
	// PreviewHold is how long a preview agent may hold its offered contact
	// (default 60s); PreviewSkipDelay how long a skipped contact waits (default 30m).
	PreviewHold      sip.Duration `json:"preview_hold,omitempty"`
	PreviewSkipDelay sip.Duration `json:"preview_skip_delay,omitempty"`
	// InDoubtReportAfter is how long a WhatsApp message a crash left in doubt
	// waits for its status webhook before supervisors are told (default 15m).
	InDoubtReportAfter sip.Duration `json:"in_doubt_report_after,omitempty"`
	// InboundCampaign is the campaign whose agents take the WhatsApp calls of
	// numbers no running campaign knows (the default inbound queue; 0: those
	// calls are left unanswered); InboundMaxWait how long a caller waits on hold
	// for an agent before the apology and a call back (default 60s).
	InboundCampaign int64        `json:"inbound_campaign,omitempty"`
	InboundMaxWait  sip.Duration `json:"inbound_max_wait,omitempty"`
	// DrainTimeout bounds how long a stopping server (SIGTERM, Ctrl-C) waits
	// for the calls under way and their wrap-ups to end before it cuts what is
	// left (default 2m; between minDrainTimeout and maxDrainTimeout).
	DrainTimeout sip.Duration `json:"drain_timeout,omitempty"`
}

// The drain timeout's default and bounds: long enough for a call's end and its
// wrap-up, short enough for a rolling restart of several nodes.
const (
	defaultDrainTimeout = 2 * time.Minute
	minDrainTimeout     = time.Second
	maxDrainTimeout     = time.Hour
)

// drainTimeout is the section's drain timeout, refused naming the key when out
// of bounds.
func (e engineConfig) drainTimeout() (time.Duration, error) {
	d := e.DrainTimeout.Std()
	switch {
	case d == 0:
		return defaultDrainTimeout, nil
	case d < minDrainTimeout || d > maxDrainTimeout:
		return 0, fmt.Errorf("engine.drain_timeout %s: must be between %s and %s (absent: %s)", d, minDrainTimeout, maxDrainTimeout, defaultDrainTimeout)
	}
	return d, nil
}

// clusterConfig is the config file's cluster section (dialer.Cluster): with a
// PostgreSQL database, any number of nodes share the campaigns through leases.
type clusterConfig struct {
	// AdvertiseURL is this node's API base URL as the other nodes, agents and
	// load balancers reach it (default: http:// and the HTTP listen address).
	AdvertiseURL string `json:"advertise_url,omitempty"`
	// LeaseTTL is how long a campaign's lease lasts unrenewed, and how long a
	// node may miss its heartbeat before it is dead (default 6s); RenewEvery
	// how often the node heartbeats and renews (default 2s), below LeaseTTL.
	LeaseTTL   sip.Duration `json:"lease_ttl,omitempty"`
	RenewEvery sip.Duration `json:"renew_every,omitempty"`
}

// dialerCluster is the engine's cluster settings. The engine names the node
// (a new ID each start), and serve advertises the address it listens on when
// cluster.advertise_url is not set.
func (c config) dialerCluster() dialer.Cluster {
	return dialer.Cluster{
		Node:       storage.Node{Addr: c.Cluster.AdvertiseURL, SIPAddr: c.Registrar.ListenAddr},
		Shared:     c.DatabaseURL != "",
		LeaseTTL:   c.Cluster.LeaseTTL.Std(),
		RenewEvery: c.Cluster.RenewEvery.Std(),
	}
}

// httpConfig is the config file's http section: the HTTP server's timeouts and
// limits (web.Limits; an absent or zero setting takes web.DefaultLimits).
type httpConfig struct {
	ReadHeaderTimeout  sip.Duration `json:"read_header_timeout,omitempty"`
	BodyTimeout        sip.Duration `json:"body_timeout,omitempty"`
	UploadMinRate      int64        `json:"upload_min_bytes_per_second,omitempty"`
	UploadWindow       sip.Duration `json:"upload_window,omitempty"`
	WriteTimeout       sip.Duration `json:"write_timeout,omitempty"`
	StreamWriteTimeout sip.Duration `json:"stream_write_timeout,omitempty"`
	IdleTimeout        sip.Duration `json:"idle_timeout,omitempty"`
	MaxAnonymous       int          `json:"max_anonymous_requests,omitempty"`
	// TrustedProxies are the reverse proxies (addresses or CIDRs) whose
	// ClientIPHeader is believed; TURBINA_TRUSTED_PROXIES (comma-separated) wins.
	TrustedProxies []string     `json:"trusted_proxies,omitempty"`
	ClientIPHeader string       `json:"client_ip_header,omitempty"`
	LoginPerUser   int          `json:"login_per_user,omitempty"`
	LoginPerIP     int          `json:"login_per_ip,omitempty"`
	LoginWindow    sip.Duration `json:"login_window,omitempty"`
	PasswordChecks int          `json:"password_checks,omitempty"`
	PasswordQueue  int          `json:"password_queue,omitempty"`
	// PasswordCost is argon2id's cost for the password hashes the server makes:
	// an absent field takes web.DefaultPasswordCost's, and none may be below
	// web.MinPasswordCost's.
	PasswordCost passwordCost `json:"password_cost,omitzero"`
	// TokenTTL is how long a new API token works when its request names no
	// expiry, and the admin's token registered at start (web.DefaultTokenTTL
	// when absent; between web.MinTokenTTL and web.MaxTokenTTL).
	TokenTTL sip.Duration `json:"token_ttl,omitempty"`
	// TokenKeyFile holds the key API tokens are hashed under (storage.Options.
	// TokenKey); TURBINA_TOKEN_KEY gives it instead. Without either, a SQLite
	// server makes one in its data directory, and PostgreSQL is refused.
	TokenKeyFile string `json:"token_key_file,omitempty"`
}

// passwordCost is the http section's password_cost.
type passwordCost struct {
	Time      uint32 `json:"time,omitempty"`
	MemoryKiB uint32 `json:"memory_kib,omitempty"`
	Threads   uint8  `json:"threads,omitempty"`
}

// passwordCost is the section's password hashing cost, refused naming the key
// when the server could not use it or it is below web.MinPasswordCost.
func (h httpConfig) passwordCost() (web.PasswordCost, error) {
	c := web.PasswordCost(h.PasswordCost).WithDefaults()
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("http.password_cost.%w", err)
	}
	if err := c.AtLeast(web.MinPasswordCost()); err != nil {
		return c, fmt.Errorf("http.password_cost.%w", err)
	}
	return c, nil
}

// tokenTTL is the section's token expiry, refused naming the key when out of bounds.
func (h httpConfig) tokenTTL() (time.Duration, error) {
	d := h.TokenTTL.Std()
	switch {
	case d == 0:
		return web.DefaultTokenTTL, nil
	case d < web.MinTokenTTL || d > web.MaxTokenTTL:
		return 0, fmt.Errorf("http.token_ttl %s: must be between %s and %s (%d days)", d, web.MinTokenTTL, web.MaxTokenTTL, int(web.MaxTokenTTL/(24*time.Hour)))
	}
	return d, nil
}

// limits turns the section into the server's limits, naming a setting that is wrong.
func (h httpConfig) limits() (web.Limits, error) {
	for _, d := range []struct {
		name string
		v    sip.Duration
	}{
		{"read_header_timeout", h.ReadHeaderTimeout}, {"body_timeout", h.BodyTimeout}, {"upload_window", h.UploadWindow},
		{"write_timeout", h.WriteTimeout}, {"stream_write_timeout", h.StreamWriteTimeout}, {"idle_timeout", h.IdleTimeout},
		{"login_window", h.LoginWindow},
	} {
		if d.v < 0 {
			return web.Limits{}, fmt.Errorf("http.%s must not be negative", d.name)
		}
	}
	for _, n := range []struct {
		name string
		v    int64
	}{
		{"upload_min_bytes_per_second", h.UploadMinRate}, {"max_anonymous_requests", int64(h.MaxAnonymous)},
		{"login_per_user", int64(h.LoginPerUser)}, {"login_per_ip", int64(h.LoginPerIP)},
		{"password_checks", int64(h.PasswordChecks)}, {"password_queue", int64(h.PasswordQueue)},
	} {
		if n.v < 0 {
			return web.Limits{}, fmt.Errorf("http.%s must not be negative", n.name)
		}
	}
	proxies, err := web.ParseTrustedProxies(h.TrustedProxies)
	if err != nil {
		return web.Limits{}, fmt.Errorf("http.%w", err)
	}
	l := web.Limits{
		ReadHeaderTimeout: h.ReadHeaderTimeout.Std(), BodyTimeout: h.BodyTimeout.Std(),
		UploadMinRate: h.UploadMinRate, UploadWindow: h.UploadWindow.Std(),
		WriteTimeout: h.WriteTimeout.Std(), StreamWriteTimeout: h.StreamWriteTimeout.Std(), IdleTimeout: h.IdleTimeout.Std(),
		MaxAnonymous: h.MaxAnonymous, TrustedProxies: proxies, ClientIPHeader: h.ClientIPHeader,
		LoginPerUser: h.LoginPerUser, LoginPerIP: h.LoginPerIP, LoginWindow: h.LoginWindow.Std(),
		PasswordChecks: h.PasswordChecks, PasswordQueue: h.PasswordQueue,
	}
	if err := l.Validate(); err != nil {
		return l, fmt.Errorf("http.%w", err)
	}
	return l, nil
}

// whatsappConfig is the config file's whatsapp section. Secrets may come from
// TURBINA_WA_* variables instead, which win.
type whatsappConfig struct {
	whatsapp.Config
	Webhook whatsapp.WebhookConfig `json:"webhook"`
	Media   whatsapp.MediaConfig   `json:"media"`
	// PermissionText is the body of the call-permission request.
	PermissionText string `json:"permission_text"`
	// InDoubtWindow is how long a message a crash left in doubt waits for its
	// status webhook before it is recorded not sent (default 1h).
	InDoubtWindow sip.Duration `json:"in_doubt_window,omitempty"`
	// CallSettleWait is how long a WhatsApp call whose connect answer was lost
	// waits for the call's webhooks before it is left in doubt (default 20s,
	// whatsapp.DefaultSettleWait).
	CallSettleWait sip.Duration `json:"call_settle_wait,omitempty"`
}

// Bounds of whatsapp.call_settle_wait: Meta sends a call's webhooks within
// seconds, so less than a second would leave placed calls in doubt, and more
// than minutes only holds the attempt open for webhooks that are not coming.
const (
	minCallSettleWait = time.Second
	maxCallSettleWait = 5 * time.Minute
)

// enabled reports whether a WhatsApp account is configured.
func (w whatsappConfig) enabled() bool { return w.AccessToken != "" }

// whatsappEnv are the TURBINA_WA_* variables and the settings they fill.
func (w *whatsappConfig) env() map[string]*string {
	return map[string]*string{
		"TURBINA_WA_BASE_URL":        &w.BaseURL,
		"TURBINA_WA_API_VERSION":     &w.APIVersion,
		"TURBINA_WA_ACCESS_TOKEN":    &w.AccessToken,
		"TURBINA_WA_PHONE_NUMBER_ID": &w.PhoneNumberID,
		"TURBINA_WA_WABA_ID":         &w.WABAID,
		"TURBINA_WA_APP_SECRET":      &w.Webhook.AppSecret,
		"TURBINA_WA_VERIFY_TOKEN":    &w.Webhook.VerifyToken,
	}
}

func defaultConfig() config {
	return config{
		HTTPAddr:       "127.0.0.1:8080",
		DataDir:        "./turbina-data",
		LogFormat:      "text",
		LogLevel:       "info",
		MaxBodyBytes:   1 << 20,
		MaxImportBytes: 1 << 30,
	}
}

// tokenKey is the key API tokens are hashed under, from TURBINA_TOKEN_KEY or
// http.token_key_file; nil when neither is set, which only a SQLite server
// may be: nodes sharing a PostgreSQL database must share the key, so none
// may make its own.
func (c config) tokenKey() ([]byte, error) {
	switch {
	case c.TokenKey != "" && c.HTTP.TokenKeyFile != "":
		return nil, fmt.Errorf("token key: set TURBINA_TOKEN_KEY or http.token_key_file, not both")
	case c.TokenKey != "":
		key, err := storage.ParseTokenKey(c.TokenKey)
		if err != nil {
			return nil, fmt.Errorf("TURBINA_TOKEN_KEY: %w", err)
		}
		return key, nil
	case c.HTTP.TokenKeyFile != "":
		b, err := os.ReadFile(c.HTTP.TokenKeyFile)
		if err == nil {
			var key []byte
			if key, err = storage.ParseTokenKey(string(b)); err == nil {
				return key, nil
			}
		}
		return nil, fmt.Errorf("http.token_key_file %s: %w", c.HTTP.TokenKeyFile, err)
	case c.DatabaseURL != "":
		return nil, fmt.Errorf("a PostgreSQL database needs the API tokens' key, the same on every node: set TURBINA_TOKEN_KEY or http.token_key_file (e.g. openssl rand -hex 32)")
	}
	return nil, nil
}

// Database is what storage.Open takes: the PostgreSQL URL when one is set,
// else the SQLite file in the data directory.
func (c config) Database() string {
	if c.DatabaseURL != "" {
		return c.DatabaseURL
	}
	return filepath.Join(c.DataDir, "turbina.db")
}

// DatabaseForLog is Database with a URL's password hidden.
func (c config) DatabaseForLog() string {
	if c.DatabaseURL == "" {
		return c.Database()
	}
	u, err := url.Parse(c.DatabaseURL)
	if err != nil {
		return "(unparsable database URL)"
	}
	return u.Redacted()
}

// parseConfig starts from cfg (the defaults), then reads the config file, then TURBINA_* variables, then flags.
func parseConfig(name string, cfg config, args []string, getenv func(string) string, stderr io.Writer, extra func(*flag.FlagSet)) (config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	type binding struct {
		flag, env, help string
		dst             any
	}
	bindings := []binding{
		{"config", "TURBINA_CONFIG", "config file (JSON): trunks, WhatsApp account, prompts", &cfg.ConfigFile},
		{"http-addr", "TURBINA_HTTP_ADDR", "HTTP listen address", &cfg.HTTPAddr},
		{"data-dir", "TURBINA_DATA_DIR", "directory of the SQLite database and recordings", &cfg.DataDir},
		{"database-url", "TURBINA_DATABASE_URL", "PostgreSQL database (postgres://user:password@host/db) instead of the SQLite file", &cfg.DatabaseURL},
		{"log-format", "TURBINA_LOG_FORMAT", "log format: text or json", &cfg.LogFormat},
		{"log-level", "TURBINA_LOG_LEVEL", "log level: debug, info, warn, error", &cfg.LogLevel},
		{"max-body-bytes", "TURBINA_MAX_BODY_BYTES", "largest JSON request body", &cfg.MaxBodyBytes},
		{"max-import-bytes", "TURBINA_MAX_IMPORT_BYTES", "largest CSV upload", &cfg.MaxImportBytes},
	}
	// Flags are declared with placeholder defaults; their real defaults are applied
	// below in precedence order, and only flags actually given override them.
	for _, b := range bindings {
		help := fmt.Sprintf("%s (env %s)", b.help, b.env)
		switch d := b.dst.(type) {
		case *string:
			fs.String(b.flag, *d, help)
		case *int64:
			fs.Int64(b.flag, *d, help)
		}
	}
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return cfg, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", name, fs.Args())
		return cfg, errUsage
	}
	given := map[string]string{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = f.Value.String() })
	configFile := getenv("TURBINA_CONFIG")
	if v, ok := given["config"]; ok {
		configFile = v
	}
	if configFile != "" {
		if err := loadConfigFile(configFile, &cfg); err != nil {
			return cfg, err
		}
		cfg.ConfigFile = configFile
	}
	for _, b := range bindings[1:] {
		for _, v := range []struct {
			val, src string
			ok       bool
		}{{getenv(b.env), b.env, getenv(b.env) != ""}, {given[b.flag], "-" + b.flag, given[b.flag] != ""}} {
			if !v.ok {
				continue
			}
			if err := setValue(b.dst, v.val); err != nil {
				return cfg, fmt.Errorf("%s: %w", v.src, err)
			}
		}
	}
	cfg.AdminToken = getenv("TURBINA_ADMIN_TOKEN")
	cfg.TokenKey = getenv("TURBINA_TOKEN_KEY")
	if v := getenv("TURBINA_TRUSTED_PROXIES"); v != "" {
		cfg.HTTP.TrustedProxies = strings.Split(v, ",")
	}
	for name, dst := range cfg.WhatsApp.env() {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	return cfg, cfg.validate()
}

func setValue(dst any, v string) error {
	switch d := dst.(type) {
	case *string:
		*d = v
	case *int64:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", v)
		}
		*d = n
	}
	return nil
}

func loadConfigFile(path string, cfg *config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

func (c config) validate() error {
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("log format %q: want text or json", c.LogFormat)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if c.MaxBodyBytes <= 0 || c.MaxImportBytes <= 0 {
		return fmt.Errorf("body limits must be positive")
	}
	if c.DataDir == "" {
		return fmt.Errorf("data directory must not be empty")
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		return fmt.Errorf("database_url: want a postgres:// URL (without it, the SQLite file in the data directory is used)")
	}
	if _, err := c.HTTP.limits(); err != nil {
		return err
	}
	if _, err := c.HTTP.tokenTTL(); err != nil {
		return err
	}
	if _, err := c.HTTP.passwordCost(); err != nil {
		return err
	}
	if _, err := c.tokenKey(); err != nil {
		return err
	}
	if l := c.Engine.NumberLimits; l != nil && (l.PerDay < 0 || l.PerWeek < 0) {
		return fmt.Errorf("engine.number_limits: per_day and per_week must be 0 (no limit) or more")
	}
	if c.Engine.InboundCampaign < 0 {
		return fmt.Errorf("engine.inbound_campaign must be a campaign ID, or 0 for none")
	}
	if c.Engine.InboundMaxWait < 0 {
		return fmt.Errorf("engine.inbound_max_wait must not be negative")
	}
	if _, err := c.Engine.drainTimeout(); err != nil {
		return err
	}
	if err := c.validateCluster(); err != nil {
		return err
	}
	if c.Engine.QuietAfterAbandon < 0 {
		return fmt.Errorf("engine.quiet_after_abandon must not be negative")
	}
	if c.WhatsApp.InDoubtWindow < 0 {
		return fmt.Errorf("whatsapp.in_doubt_window must not be negative")
	}
	if w := c.WhatsApp.CallSettleWait.Std(); w != 0 && (w < minCallSettleWait || w > maxCallSettleWait) {
		return fmt.Errorf("whatsapp.call_settle_wait %s: must be between %s and %s (or absent for %s)",
			w, minCallSettleWait, maxCallSettleWait, whatsapp.DefaultSettleWait)
	}
	for _, w := range c.Engine.OptOutWords {
		if strings.TrimSpace(w) == "" {
			return fmt.Errorf("engine.opt_out_words: a word is empty")
		}
	}
	if c.Engine.MaxAbandon != 0 {
		if err := campaigns.ValidateMaxAbandon("engine.max_abandon", c.Engine.MaxAbandon); err != nil {
			return err
		}
	}
	if c.WhatsApp.enabled() {
		if err := c.WhatsApp.Config.Validate(); err != nil {
			return fmt.Errorf("whatsapp: %w", err)
		}
		if c.WhatsApp.Webhook.AppSecret == "" || c.WhatsApp.Webhook.VerifyToken == "" {
			return fmt.Errorf("whatsapp: the webhook app secret and verify token are required (TURBINA_WA_APP_SECRET, TURBINA_WA_VERIFY_TOKEN)")
		}
	}
	return nil
}

// validateCluster refuses lease timings that cannot keep a lease: a renewal
// that comes after the lease expired.
func (c config) validateCluster() error {
	ttl, every := c.Cluster.LeaseTTL.Std(), c.Cluster.RenewEvery.Std()
	switch {
	case ttl < 0:
		return fmt.Errorf("cluster.lease_ttl must not be negative")
	case every < 0:
		return fmt.Errorf("cluster.renew_every must not be negative")
	}
	if ttl == 0 {
		ttl = dialer.DefaultLeaseTTL
	}
	if every == 0 {
		every = dialer.DefaultRenewEvery
	}
	if every >= ttl {
		return fmt.Errorf("cluster.renew_every (%s) must be below cluster.lease_ttl (%s): a lease renewed only after it expired is lost", every, ttl)
	}
	if u := c.Cluster.AdvertiseURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return fmt.Errorf("cluster.advertise_url %q: want an http:// or https:// base URL", u)
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return l, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func newLogger(c config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
