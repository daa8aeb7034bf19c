package whatsapp

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Sink durably accepts webhook events. The handler answers Meta 200 only after
// HandleEvents returned nil, so an event is either stored or redelivered by Meta.
// Events of one request arrive in payload order.
type Sink interface {
	HandleEvents(ctx context.Context, events []Event) error
}

// SinkFunc adapts a function to [Sink].
type SinkFunc func(ctx context.Context, events []Event) error

// HandleEvents calls f.
func (f SinkFunc) HandleEvents(ctx context.Context, events []Event) error { return f(ctx, events) }

// MultiSink hands events to each sink in turn, stopping at the first error.
type MultiSink []Sink

// HandleEvents implements [Sink].
func (m MultiSink) HandleEvents(ctx context.Context, events []Event) error {
	for _, s := range m {
		if err := s.HandleEvents(ctx, events); err != nil {
			return err
		}
	}
	return nil
}

// MemorySink keeps events in arrival order; it is the test double of the engine's
// durable queue.
type MemorySink struct {
	mu     sync.Mutex
	events []Event
	notify chan struct{}
}

// NewMemorySink returns an empty sink.
func NewMemorySink() *MemorySink { return &MemorySink{notify: make(chan struct{})} }

// HandleEvents implements [Sink].
func (s *MemorySink) HandleEvents(_ context.Context, events []Event) error {
	s.mu.Lock()
	s.events = append(s.events, events...)
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()
	return nil
}

// Events returns a copy of everything received so far.
func (s *MemorySink) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// WaitFor blocks until pred holds for the received events or ctx ends, and returns them.
func (s *MemorySink) WaitFor(ctx context.Context, pred func([]Event) bool) ([]Event, error) {
	for {
		s.mu.Lock()
		evs := append([]Event(nil), s.events...)
		ch := s.notify
		s.mu.Unlock()
		if pred(evs) {
			return evs, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return evs, fmt.Errorf("waiting for webhook events: %w", ctx.Err())
		}
	}
}

// Webhook defaults. Meta's webhook payloads can be up to 3 MB, and a body
// refused for its size is resent for days: the default takes 3 MiB.
const (
	DefaultMaxWebhookBytes = 3 << 20
	DefaultDedupeKeys      = 200_000
)

// WebhookConfig configures [NewWebhookHandler].
type WebhookConfig struct {
	// AppSecret is the Meta app secret that signs every POST. It is never logged.
	AppSecret string `json:"app_secret"`
	// VerifyToken is the token set on the app's webhook subscription for the GET
	// handshake. It is never logged.
	VerifyToken string `json:"verify_token"`
	// MaxBodyBytes bounds a POST body (413 beyond it; default 3 MiB, the most
	// Meta sends).
	MaxBodyBytes int64 `json:"max_body_bytes"`
	// DedupeKeys bounds how many event keys are remembered for deduplication.
	DedupeKeys int `json:"dedupe_keys"`
	// PhoneNumberID and WABAID, when set, are the business phone number and
	// account this server serves: events for others (another number of the same
	// app) are acknowledged and ignored. serve fills them from the whatsapp
	// section.
	PhoneNumberID string `json:"-"`
	WABAID        string `json:"-"`
}

// Quarantine keeps the signed webhook bodies, or single changes of them, that
// could not be parsed: they are acknowledged (Meta would resend a refused one
// for days) and kept for an administrator. storage.DB is one.
type Quarantine interface {
	// QuarantineWebhook keeps body; part is "batch" (a whole body) or "change"
	// (one entry[].changes[] item); reason is the parse error.
	QuarantineWebhook(ctx context.Context, part, reason string, body []byte) error
}

// Parts of a quarantined webhook.
const (
	QuarantineBatch  = "batch"
	QuarantineChange = "change"
)

// WebhookOption configures a [WebhookHandler].
type WebhookOption func(*WebhookHandler)

// WithQuarantine keeps the signed bodies that do not parse in q. Without it
// they are logged whole and acknowledged.
func WithQuarantine(q Quarantine) WebhookOption { return func(h *WebhookHandler) { h.quarantine = q } }

// Reasons a webhook request is refused (turbina_whatsapp_webhook_refused_total)
// or an event ignored (turbina_whatsapp_webhook_ignored_total).
const (
	RefusedTooLarge         = "too_large"
	RefusedUnreadable       = "unreadable"
	RefusedBadSignature     = "bad_signature"
	RefusedBadVerifyToken   = "bad_verify_token"
	RefusedMethod           = "method"
	RefusedSinkUnavailable  = "sink_unavailable"
	RefusedQuarantineFailed = "quarantine_unavailable"
	IgnoredOtherPhoneNumber = "other_phone_number"
	IgnoredOtherWABA        = "other_waba"
)

// webhookMetrics are the handler's counters; each handler has its own, so
// that tests and several handlers do not share them.
type webhookMetrics struct {
	refused     *prometheus.CounterVec
	ignored     *prometheus.CounterVec
	quarantined *prometheus.CounterVec
}

func newWebhookMetrics() webhookMetrics {
	return webhookMetrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "turbina_whatsapp_webhook_refused_total",
			Help: "WhatsApp webhook requests answered with an error, by reason (Meta resends them)."}, []string{"reason"}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "turbina_whatsapp_webhook_ignored_total",
			Help: "WhatsApp webhook events acknowledged and not applied, by reason (another phone number or account)."}, []string{"reason"}),
		quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "turbina_whatsapp_webhook_quarantined_total",
			Help: "Signed WhatsApp webhook bodies (batch) or changes (change) that did not parse, acknowledged and kept in quarantine."}, []string{"part"}),
	}
}

// String formats the config with its secrets redacted.
func (c WebhookConfig) String() string {
	return fmt.Sprintf("whatsapp.WebhookConfig{AppSecret:%q VerifyToken:%q MaxBodyBytes:%d}", redacted(c.AppSecret), redacted(c.VerifyToken), c.MaxBodyBytes)
}

// GoString keeps %#v from printing the secrets.
func (c WebhookConfig) GoString() string { return c.String() }

// LogValue makes slog print the config with its secrets redacted.
func (c WebhookConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("app_secret", redacted(c.AppSecret)), slog.String("verify_token", redacted(c.VerifyToken)), slog.Int64("max_body_bytes", c.MaxBodyBytes))
}

// WebhookHandler is the http.Handler for Meta's webhooks; mount it at
// /webhooks/whatsapp.
type WebhookHandler struct {
	cfg        WebhookConfig
	sink       Sink
	log        *slog.Logger
	dedupe     *dedupe
	quarantine Quarantine
	metrics    webhookMetrics
}

// NewWebhookHandler returns a handler delivering verified, deduplicated events to sink.
// logger may be nil.
func NewWebhookHandler(cfg WebhookConfig, sink Sink, logger *slog.Logger, opts ...WebhookOption) (*WebhookHandler, error) {
	if cfg.AppSecret == "" {
		return nil, errors.New("whatsapp webhook: app_secret is required")
	}
	if sink == nil {
		return nil, errors.New("whatsapp webhook: a sink is required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxWebhookBytes
	}
	if cfg.DedupeKeys <= 0 {
		cfg.DedupeKeys = DefaultDedupeKeys
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &WebhookHandler{cfg: cfg, sink: sink, log: logger.With(slog.String("component", "whatsapp-webhook")), dedupe: newDedupe(cfg.DedupeKeys),
		metrics: newWebhookMetrics()}
	for _, o := range opts {
		o(h)
	}
	return h, nil
}

// Collectors returns the handler's metrics for a Prometheus registry.
func (h *WebhookHandler) Collectors() []prometheus.Collector {
	return []prometheus.Collector{h.metrics.refused, h.metrics.ignored, h.metrics.quarantined}
}

// refuse answers an error, logs why and counts it: every refusal makes Meta
// resend, so each must be visible.
func (h *WebhookHandler) refuse(w http.ResponseWriter, r *http.Request, status int, reason, text string, attrs ...slog.Attr) {
	h.metrics.refused.WithLabelValues(reason).Inc()
	level := slog.LevelWarn
	if status >= 500 {
		level = slog.LevelError
	}
	attrs = append(attrs, slog.String("reason", reason), slog.Int("status", status), slog.String("remote", r.RemoteAddr),
		slog.Int64("content_length", r.ContentLength))
	h.log.LogAttrs(r.Context(), level, "webhook refused", attrs...)
	http.Error(w, text, status)
}

// ServeHTTP implements http.Handler.
func (h *WebhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		h.verify(w, r)
	case http.MethodPost:
		h.receive(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		h.refuse(w, r, http.StatusMethodNotAllowed, RefusedMethod, "method not allowed", slog.String("method", r.Method))
	}
}

// verify answers the subscription handshake: hub.challenge is echoed when hub.mode is
// subscribe and hub.verify_token matches.
func (h *WebhookHandler) verify(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	token := q.Get("hub.verify_token")
	if q.Get("hub.mode") != "subscribe" || h.cfg.VerifyToken == "" ||
		subtle.ConstantTimeCompare([]byte(token), []byte(h.cfg.VerifyToken)) != 1 {
		h.refuse(w, r, http.StatusForbidden, RefusedBadVerifyToken, "forbidden")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, q.Get("hub.challenge"))
}

// SignatureHeader is the header carrying the HMAC-SHA256 of the raw body.
const SignatureHeader = "X-Hub-Signature-256"

// Sign returns the X-Hub-Signature-256 value for body: "sha256=" and the hex
// HMAC-SHA256 of the raw bytes keyed with the app secret.
func Sign(appSecret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature reports whether header is the valid signature of body, comparing in
// constant time.
func VerifySignature(appSecret string, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

func (h *WebhookHandler) receive(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.refuse(w, r, http.StatusRequestEntityTooLarge, RefusedTooLarge, "payload too large",
				slog.Int64("max_body_bytes", h.cfg.MaxBodyBytes))
			return
		}
		h.refuse(w, r, http.StatusBadRequest, RefusedUnreadable, "bad request", slog.String("error", err.Error()))
		return
	}
	// The signature is checked before anything in the body is looked at.
	if !VerifySignature(h.cfg.AppSecret, body, r.Header.Get(SignatureHeader)) {
		h.refuse(w, r, http.StatusUnauthorized, RefusedBadSignature, "invalid signature")
		return
	}
	events, bad, err := ParseWebhookChanges(body)
	if err != nil {
		// Signed, so Meta's: refusing it would have it resent for days, each time
		// refused again. It is kept whole instead.
		if !h.keep(w, r, QuarantineBatch, err, body) {
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	for _, b := range bad {
		if !h.keep(w, r, QuarantineChange, b.Err, b.Raw) {
			return
		}
	}
	events = h.ours(r.Context(), events)
	if err := h.deliver(r.Context(), events); err != nil {
		// A 5xx makes Meta redeliver; the events were not marked as seen.
		h.refuse(w, r, http.StatusServiceUnavailable, RefusedSinkUnavailable, "temporarily unavailable", slog.String("error", err.Error()))
		return
	}
	w.WriteHeader(http.StatusOK)
}

// keep quarantines a body or change that did not parse, and reports whether it
// is safe: when it could not be kept the request is refused, so Meta resends it.
func (h *WebhookHandler) keep(w http.ResponseWriter, r *http.Request, part string, perr error, body []byte) bool {
	attrs := []slog.Attr{slog.String("part", part), slog.String("error", perr.Error()), slog.Int("bytes", len(body))}
	if h.quarantine == nil {
		// Nowhere to keep it: the log line is its record.
		attrs = append(attrs, slog.String("body", string(body)))
	} else if err := h.quarantine.QuarantineWebhook(r.Context(), part, perr.Error(), body); err != nil {
		h.refuse(w, r, http.StatusServiceUnavailable, RefusedQuarantineFailed, "temporarily unavailable",
			slog.String("part", part), slog.String("error", err.Error()))
		return false
	}
	h.metrics.quarantined.WithLabelValues(part).Inc()
	h.log.LogAttrs(r.Context(), slog.LevelWarn, "signed webhook did not parse: acknowledged and quarantined", attrs...)
	return true
}

// ours drops, logging and counting each, the events for a phone number or
// account other than the configured ones: another number of the same app must
// not change this one's contacts.
func (h *WebhookHandler) ours(ctx context.Context, events []Event) []Event {
	out := events[:0:0]
	for _, ev := range events {
		reason := ""
		switch {
		case h.cfg.PhoneNumberID != "" && ev.PhoneNumberID != "" && ev.PhoneNumberID != h.cfg.PhoneNumberID:
			reason = IgnoredOtherPhoneNumber
		case h.cfg.WABAID != "" && ev.WABAID != "" && ev.WABAID != h.cfg.WABAID:
			reason = IgnoredOtherWABA
		}
		if reason == "" {
			out = append(out, ev)
			continue
		}
		h.metrics.ignored.WithLabelValues(reason).Inc()
		h.log.LogAttrs(ctx, slog.LevelWarn, "webhook event for another number or account ignored", slog.String("reason", reason),
			slog.String("key", ev.Key), slog.String("phone_number_id", ev.PhoneNumberID), slog.String("waba_id", ev.WABAID))
	}
	return out
}

// maxDeliverRounds bounds how often deliver retakes events whose concurrent delivery
// failed.
const maxDeliverRounds = 3

// deliver hands the new events to the sink. Keys are claimed before the sink call and
// committed only when it succeeds, so a failed delivery is retried on Meta's resend
// instead of being dropped as a duplicate. An event claimed by a concurrent request is
// waited for after this request's own events are committed (holding no claims while
// waiting rules out deadlock), and taken over if that request failed.
func (h *WebhookHandler) deliver(ctx context.Context, events []Event) error {
	todo := events
	for range maxDeliverRounds {
		var mine []Event
		var mineKeys []string
		var waits []pendingEvent
		for _, ev := range todo {
			claimed, done := h.dedupe.claim(ev.Key)
			switch {
			case claimed:
				mine = append(mine, ev)
				mineKeys = append(mineKeys, ev.Key)
			case done != nil:
				waits = append(waits, pendingEvent{ev: ev, done: done})
			}
		}
		if len(mine) > 0 {
			err := h.sink.HandleEvents(ctx, mine)
			h.dedupe.resolve(mineKeys, err == nil)
			if err != nil {
				return fmt.Errorf("sink: %w", err)
			}
		}
		if len(waits) == 0 {
			return nil
		}
		todo = todo[:0:0]
		for _, p := range waits {
			select {
			case <-p.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if !h.dedupe.committed(p.ev.Key) {
				todo = append(todo, p.ev)
			}
		}
		if len(todo) == 0 {
			return nil
		}
	}
	return errors.New("events still claimed by failing concurrent deliveries")
}

type pendingEvent struct {
	ev   Event
	done <-chan struct{}
}

// dedupe remembers event keys: pending while a delivery is in flight, committed after.
// Committed keys are forgotten oldest first beyond max.
type dedupe struct {
	mu      sync.Mutex
	max     int
	pending map[string]chan struct{}
	seen    map[string]struct{}
	ring    []string
	next    int
}

func newDedupe(maxKeys int) *dedupe {
	return &dedupe{max: maxKeys, pending: make(map[string]chan struct{}), seen: make(map[string]struct{})}
}

// claim returns claimed=true if key is new; otherwise done is a channel closed when a
// pending delivery of key ends, or nil if key is already committed.
func (d *dedupe) claim(key string) (claimed bool, done <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.seen[key]; ok {
		return false, nil
	}
	if ch, ok := d.pending[key]; ok {
		return false, ch
	}
	d.pending[key] = make(chan struct{})
	return true, nil
}

func (d *dedupe) resolve(keys []string, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, k := range keys {
		ch, pending := d.pending[k]
		if !pending {
			continue
		}
		delete(d.pending, k)
		close(ch)
		if !ok {
			continue
		}
		if len(d.ring) < d.max {
			d.ring = append(d.ring, k)
		} else {
			delete(d.seen, d.ring[d.next])
			d.ring[d.next] = k
			d.next = (d.next + 1) % d.max
		}
		d.seen[k] = struct{}{}
	}
}

func (d *dedupe) committed(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.seen[key]
	return ok
}
