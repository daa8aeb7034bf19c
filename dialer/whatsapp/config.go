package whatsapp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// Defaults used by [Config.withDefaults] for zero fields.
const (
	DefaultBaseURL        = "https://graph.facebook.com"
	DefaultAPIVersion     = "v23.0"
	DefaultMessagesPerSec = 80
	DefaultRequestTimeout = 15 * time.Second
	DefaultMaxAttempts    = 5
	DefaultMinBackoff     = 250 * time.Millisecond
	DefaultMaxBackoff     = 20 * time.Second
)

// Config is what a [Client] needs to talk to the Cloud API for one business phone
// number. The lead wires it from the config file and TURBINA_WA_* variables.
type Config struct {
	// BaseURL is the Graph API root; only tests change it (to the emulator).
	BaseURL string `json:"base_url"`
	// APIVersion is the Graph API version path element, such as "v23.0".
	APIVersion string `json:"api_version"`
	// AccessToken is the system-user bearer token. It is never logged.
	AccessToken string `json:"access_token"`
	// AppSecret, when set, is the Meta app's secret: every Graph call then
	// carries appsecret_proof (HMAC-SHA256 of the access token keyed with it),
	// which apps with "Require App Secret" demand. It is never logged; serve
	// takes the webhook's app secret when this is empty.
	AppSecret string `json:"app_secret,omitempty"`
	// PhoneNumberID is the business phone number's Graph ID (not its E.164 number).
	PhoneNumberID string `json:"phone_number_id"`
	// WABAID is the WhatsApp Business Account ID, used to list templates.
	WABAID string `json:"waba_id"`
	// MessagesPerSecond is the client-side throughput cap for this phone number.
	MessagesPerSecond float64 `json:"messages_per_second"`
	// Burst is how many messages may leave at once after an idle period; it defaults
	// to a tenth of a second's worth so the rate over any window stays near the cap.
	Burst int `json:"burst"`
	// RequestTimeout bounds one HTTP attempt.
	RequestTimeout time.Duration `json:"request_timeout"`
	// MaxAttempts bounds the attempts of one request, retries included.
	MaxAttempts int `json:"max_attempts"`
	// MinBackoff and MaxBackoff bound the exponential backoff between attempts.
	MinBackoff time.Duration `json:"min_backoff"`
	MaxBackoff time.Duration `json:"max_backoff"`
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.APIVersion == "" {
		c.APIVersion = DefaultAPIVersion
	}
	if c.MessagesPerSecond <= 0 {
		c.MessagesPerSecond = DefaultMessagesPerSec
	}
	if c.Burst <= 0 {
		c.Burst = max(1, int(c.MessagesPerSecond/10))
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	return c
}

// Validate reports the first missing or malformed field.
func (c Config) Validate() error {
	var errs []error
	if c.AccessToken == "" {
		errs = append(errs, errors.New("access_token is required"))
	}
	if c.PhoneNumberID == "" {
		errs = append(errs, errors.New("phone_number_id is required"))
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("base_url %q is not an http(s) URL", c.BaseURL))
		}
	}
	if c.MessagesPerSecond < 0 {
		errs = append(errs, errors.New("messages_per_second must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("whatsapp config: %w", err)
	}
	return nil
}

// redacted shows whether a secret is set without showing any of it.
func redacted(s string) string {
	if s == "" {
		return ""
	}
	return "[REDACTED]"
}

// String formats the config with the access token redacted.
func (c Config) String() string {
	return fmt.Sprintf("whatsapp.Config{BaseURL:%q APIVersion:%q AccessToken:%q AppSecret:%q PhoneNumberID:%q WABAID:%q MessagesPerSecond:%g}",
		c.BaseURL, c.APIVersion, redacted(c.AccessToken), redacted(c.AppSecret), c.PhoneNumberID, c.WABAID, c.MessagesPerSecond)
}

// GoString keeps %#v from printing the token.
func (c Config) GoString() string { return c.String() }

// LogValue makes slog print the config with the token redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("base_url", c.BaseURL),
		slog.String("api_version", c.APIVersion),
		slog.String("access_token", redacted(c.AccessToken)),
		slog.String("app_secret", redacted(c.AppSecret)),
		slog.String("phone_number_id", c.PhoneNumberID),
		slog.String("waba_id", c.WABAID),
		slog.Float64("messages_per_second", c.MessagesPerSecond),
	)
}
