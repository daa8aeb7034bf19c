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

// Webhook defaults.
const (
	DefaultMaxWebhookBytes = 1 << 20
	DefaultDedupeKeys      = 200_000
)

// WebhookConfig configures [NewWebhookHandler].
type WebhookConfig struct {
	// AppSecret is the Meta app secret that signs every POST. It is never logged.
	AppSecret string `json:"app_secret"`
	// VerifyToken is the token set on the app's webhook subscription for the GET
	// handshake. It is never logged.
	VerifyToken string `json:"verify_token"`
	// MaxBodyBytes bounds a POST body (413 beyond it).
	MaxBodyBytes int64 `json:"max_body_bytes"`
	// DedupeKeys bounds how many event keys are remembered for deduplication.
	DedupeKeys int `json:"dedupe_keys"`
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
	cfg    WebhookConfig
	sink   Sink
	log    *slog.Logger
	dedupe *dedupe
}

// NewWebhookHandler returns a handler delivering verified, deduplicated events to sink.
// logger may be nil.
func NewWebhookHandler(cfg WebhookConfig, sink Sink, logger *slog.Logger) (*WebhookHandler, error) {
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
	return &WebhookHandler{cfg: cfg, sink: sink, log: logger.With(slog.String("component", "whatsapp-webhook")), dedupe: newDedupe(cfg.DedupeKeys)}, nil
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
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// verify answers the subscription handshake: hub.challenge is echoed when hub.mode is
// subscribe and hub.verify_token matches.
func (h *WebhookHandler) verify(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	token := q.Get("hub.verify_token")
	if q.Get("hub.mode") != "subscribe" || h.cfg.VerifyToken == "" ||
		subtle.ConstantTimeCompare([]byte(token), []byte(h.cfg.VerifyToken)) != 1 {
		http.Error(w, "forbidden", http.StatusForbidden)
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
			http.Error(w, "payload too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	// The signature is checked before anything in the body is looked at.
	if !VerifySignature(h.cfg.AppSecret, body, r.Header.Get(SignatureHeader)) {
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "webhook signature rejected", slog.String("remote", r.RemoteAddr))
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	events, err := ParseWebhook(body)
	if err != nil {
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "webhook body rejected", slog.String("error", err.Error()))
		http.Error(w, "malformed payload", http.StatusBadRequest)
		return
	}
	if err := h.deliver(r.Context(), events); err != nil {
		h.log.LogAttrs(r.Context(), slog.LevelError, "webhook events not accepted", slog.String("error", err.Error()))
		// A 5xx makes Meta redeliver; the events were not marked as seen.
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
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
