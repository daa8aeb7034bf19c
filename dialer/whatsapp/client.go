package whatsapp

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// maxResponseBytes bounds what the client reads of a Graph answer.
const maxResponseBytes = 4 << 20

// PairRateLimitWait is the least wait before a message refused with 131056
// (too many messages to one user) is sent again: Meta's pace towards one
// user is about one message every 6 seconds, so a retry sooner is refused
// again.
const PairRateLimitWait = 6 * time.Second

// codePairRateLimit is Meta's 131056, "(Business Account, Consumer Account)
// pair rate limit hit".
const codePairRateLimit = 131056

// Client talks to the Graph API for one business phone number. It is safe for
// concurrent use. Create it with [NewClient].
type Client struct {
	cfg     Config
	hc      *http.Client
	log     *slog.Logger
	limiter *TokenBucket
	idem    IdempotencyStore
	media   *Media

	mu     sync.Mutex
	rng    *rand.Rand
	flight map[string]*flightCall

	calls *callRegistry
	// proof is the appsecret_proof sent with every call ("" without an app secret).
	proof string
	// templates names the parameters of NAMED templates.
	templates templateCache
}

// Option configures a [Client].
type Option func(*clientOptions)

type clientOptions struct {
	hc    *http.Client
	log   *slog.Logger
	clock Clock
	idem  IdempotencyStore
	media *Media
	seed  uint64
}

// WithHTTPClient sets the HTTP client (its Timeout is left alone; each attempt is
// bounded by Config.RequestTimeout through its context).
func WithHTTPClient(hc *http.Client) Option { return func(o *clientOptions) { o.hc = hc } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(o *clientOptions) { o.log = l } }

// WithClock sets the clock of the rate limiter.
func WithClock(c Clock) Option { return func(o *clientOptions) { o.clock = c } }

// WithIdempotencyStore sets where send results are remembered by idempotency key. The
// default is an in-memory store of 100,000 keys; the engine may give a durable one.
func WithIdempotencyStore(s IdempotencyStore) Option { return func(o *clientOptions) { o.idem = s } }

// WithMedia sets the WebRTC settings used for call legs; the default is [NewMedia] with
// a zero [MediaConfig].
func WithMedia(m *Media) Option { return func(o *clientOptions) { o.media = m } }

// WithJitterSeed makes the backoff jitter reproducible (tests).
func WithJitterSeed(seed uint64) Option { return func(o *clientOptions) { o.seed = seed } }

// NewClient validates cfg, fills its defaults and returns a client.
func NewClient(cfg Config, opts ...Option) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := clientOptions{seed: uint64(time.Now().UnixNano())}
	for _, opt := range opts {
		opt(&o)
	}
	if o.hc == nil {
		o.hc = &http.Client{}
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.idem == nil {
		o.idem = NewMemoryIdempotencyStore(100_000)
	}
	if o.media == nil {
		m, err := NewMedia(MediaConfig{})
		if err != nil {
			return nil, err
		}
		o.media = m
	}
	return &Client{
		cfg:     cfg,
		hc:      o.hc,
		log:     o.log.With(slog.String("component", "whatsapp"), slog.String("phone_number_id", cfg.PhoneNumberID)),
		limiter: NewTokenBucket(o.clock, cfg.MessagesPerSecond, cfg.Burst),
		idem:    o.idem,
		media:   o.media,
		rng:     rand.New(rand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15)),
		flight:  make(map[string]*flightCall),
		calls:   newCallRegistry(),
		proof:   AppSecretProof(cfg.AppSecret, cfg.AccessToken),
	}, nil
}

// Config returns the client's configuration with defaults filled in.
func (c *Client) Config() Config { return c.cfg }

// AppSecretProof is the appsecret_proof of a Graph call: the hex HMAC-SHA256
// of the access token keyed with the app secret (Graph API, "Securing
// requests").
func AppSecretProof(appSecret, accessToken string) string {
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write([]byte(accessToken))
	return hex.EncodeToString(m.Sum(nil))
}

// endpoint builds the URL of a Graph path under the configured base and
// version, with appsecret_proof when an app secret is configured.
func (c *Client) endpoint(path string, q url.Values) string {
	u := c.cfg.BaseURL + "/" + c.cfg.APIVersion + "/" + path
	if c.cfg.AppSecret != "" {
		q = maps.Clone(q)
		if q == nil {
			q = url.Values{}
		}
		q.Set("appsecret_proof", c.proof)
	}
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// request describes one Graph call for [Client.do].
type request struct {
	op      string
	method  string
	path    string
	query   url.Values
	body    any
	limited bool // takes a token of the phone number's rate limit per attempt
	// once: a request that must not be carried out twice (a call's connect,
	// which has no idempotency key) is not retried after a failure that may
	// have been processed all the same; only refusals are retried.
	once bool
}

// admitKey is the context key of an [admission].
type admitKey struct{}

// admission is one token of the rate limit taken by Admit, for the next request
// made with its context.
type admission struct {
	unused atomic.Bool
	before func(context.Context) error
}

// Admit waits for one token of the phone number's rate limit (the one limit that
// every request of the client shares) and returns a context carrying it. A send
// made with that context uses the token rather than waiting again, makes one
// HTTP attempt (its caller, an outbox, retries by rescheduling), and calls
// before, when not nil, once its connection is made and just before its request
// is written: an error from before stops the request (which, as the transport
// may have begun writing it, the error does not call unsent). So an outbox takes the token first, then claims its row, and a
// row is claimed only while its request is in flight.
func (c *Client) Admit(ctx context.Context, before func(context.Context) error) (context.Context, error) {
	if err := c.limiter.Wait(ctx); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotSent, err)
	}
	a := &admission{before: before}
	a.unused.Store(true)
	return context.WithValue(ctx, admitKey{}, a), nil
}

// do performs r with retries and decodes a 2xx JSON answer into out.
func (c *Client) do(ctx context.Context, r request, out any) error {
	var payload []byte
	if r.body != nil {
		var err error
		if payload, err = json.Marshal(r.body); err != nil {
			return fmt.Errorf("whatsapp %s: encode request: %w", r.op, err)
		}
	}
	adm, _ := ctx.Value(admitKey{}).(*admission)
	for attempt := 1; ; attempt++ {
		if r.limited && (adm == nil || !adm.unused.CompareAndSwap(true, false)) {
			if err := c.limiter.Wait(ctx); err != nil {
				return fmt.Errorf("%w: %w", ErrNotSent, err)
			}
		}
		status, hdr, body, err := c.attempt(ctx, r, payload, adm)
		var gerr *Error
		switch {
		case err != nil && ctx.Err() != nil:
			// The caller gave up: its own cancellation is not Meta's failure.
			if errors.Is(err, ErrNotSent) {
				return fmt.Errorf("whatsapp %s: %w: %w", r.op, ErrNotSent, ctx.Err())
			}
			return fmt.Errorf("whatsapp %s: %w", r.op, ctx.Err())
		case err != nil:
			gerr = &Error{Op: r.op, Err: err}
		case status >= 200 && status < 300:
			if out == nil {
				return nil
			}
			if err := json.Unmarshal(body, out); err != nil {
				return &Error{Op: r.op, HTTPStatus: status, Attempts: attempt, Err: fmt.Errorf("decode response: %w", err), Message: "malformed response"}
			}
			return nil
		default:
			gerr = parseGraphError(r.op, status, body)
		}
		gerr.Attempts = attempt
		if !gerr.retryable() || attempt >= c.cfg.MaxAttempts || adm != nil || (r.once && mayHaveBeenProcessed(gerr)) {
			return gerr
		}
		wait := c.backoff(attempt, hdr)
		if gerr.Code == codePairRateLimit {
			wait = max(wait, PairRateLimitWait)
		}
		c.log.LogAttrs(ctx, slog.LevelDebug, "retrying graph request",
			slog.String("op", r.op), slog.Int("attempt", attempt), slog.String("kind", string(gerr.Kind())),
			slog.Int("code", gerr.Code), slog.Duration("backoff", wait))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("whatsapp %s: %w (last error: %w)", r.op, ctx.Err(), gerr)
		}
	}
}

// attempt sends one HTTP request bounded by the request timeout. A request is
// processed only once its body has arrived whole, and the transport reads the
// body only after writing the headers: so the body's first read is where a
// request starts to leave. adm's hook, when the request was admitted, runs
// there, before a byte of the body is handed over (an error from it sends no
// body, so nothing processable); an error before that point wraps ErrNotSent.
func (c *Client) attempt(ctx context.Context, r request, payload []byte, adm *admission) (int, http.Header, []byte, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	var body *startGate
	var rd io.Reader
	if payload != nil {
		body = &startGate{ctx: ctx, r: bytes.NewReader(payload)}
		if adm != nil {
			body.before = adm.before
		}
		rd = body
	}
	req, err := http.NewRequestWithContext(actx, r.method, c.endpoint(r.path, r.query), rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.ContentLength = int64(len(payload)) // no probe read, no chunking: the body is read once, after the headers
	req.Header.Set("Authorization", "Bearer "+c.cfg.AccessToken)
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	var connected atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(actx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { connected.Store(true) }}))
	resp, err := c.hc.Do(req)
	if err != nil {
		if (body != nil && !body.started.Load()) || (body == nil && !connected.Load()) {
			// Nothing processable was written: no body, or no connection.
			return 0, nil, nil, fmt.Errorf("%w: %w", ErrNotSent, err)
		}
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read response: %w", err)
	}
	return resp.StatusCode, resp.Header, out, nil
}

// startGate is a request body that runs before on its first read, and reports
// whether it was read at all.
type startGate struct {
	ctx     context.Context
	r       io.Reader
	before  func(context.Context) error
	started atomic.Bool
	err     error
}

// Read runs the hook once, before the first byte is handed over.
func (g *startGate) Read(p []byte) (int, error) {
	if !g.started.Load() {
		if g.before != nil {
			if err := g.before(g.ctx); err != nil {
				g.err = fmt.Errorf("the request's start could not be recorded: %w", err)
				return 0, g.err
			}
		}
		g.started.Store(true)
	}
	if g.err != nil {
		return 0, g.err
	}
	return g.r.Read(p)
}

// backoff returns the wait before attempt+1: exponential from MinBackoff, capped at
// MaxBackoff, with "equal jitter" (half fixed, half random) so that many clients
// throttled together do not retry together, yet each waits at least half the step.
// A Retry-After header, when Meta sends one, is a floor.
func (c *Client) backoff(attempt int, hdr http.Header) time.Duration {
	step := c.cfg.MinBackoff << min(attempt-1, 30)
	if step <= 0 || step > c.cfg.MaxBackoff {
		step = c.cfg.MaxBackoff
	}
	c.mu.Lock()
	j := c.rng.Float64()
	c.mu.Unlock()
	d := step/2 + time.Duration(j*float64(step/2))
	if hdr != nil {
		if s, err := strconv.Atoi(hdr.Get("Retry-After")); err == nil && s > 0 {
			d = max(d, min(time.Duration(s)*time.Second, c.cfg.MaxBackoff))
		}
	}
	return d
}

// flightCall is one send in progress, shared by concurrent callers with its key.
type flightCall struct {
	done chan struct{}
	id   string
	err  error
}

// once runs send at most once per key: a remembered result is returned as is, and
// concurrent callers with the same key wait for the first one.
func (c *Client) once(ctx context.Context, scope, key string, send func(context.Context) (string, error)) (id string, dedup bool, err error) {
	if key == "" {
		return "", false, errors.New("whatsapp: an idempotency key is required")
	}
	k := scope + ":" + key
	if id, ok, err := c.idem.Lookup(ctx, k); err != nil {
		return "", false, fmt.Errorf("whatsapp idempotency lookup: %w", err)
	} else if ok {
		return id, true, nil
	}
	c.mu.Lock()
	if f, ok := c.flight[k]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.id, true, f.err
		case <-ctx.Done():
			return "", false, fmt.Errorf("whatsapp: waiting for send with the same key: %w", ctx.Err())
		}
	}
	f := &flightCall{done: make(chan struct{})}
	c.flight[k] = f
	c.mu.Unlock()

	f.id, f.err = send(ctx)
	if f.err == nil {
		if err := c.idem.Record(ctx, k, f.id); err != nil {
			// The send happened; failing to remember it only weakens dedupe, and
			// the echoed biz_opaque_callback_data still identifies it.
			c.log.LogAttrs(ctx, slog.LevelWarn, "idempotency record failed", slog.String("error", err.Error()))
		}
	}
	c.mu.Lock()
	delete(c.flight, k)
	c.mu.Unlock()
	close(f.done)
	return f.id, false, f.err
}

// IdempotencyStore remembers the Meta ID (wamid or wacid) returned for an idempotency
// key. The engine may supply a durable implementation backed by its outbox.
type IdempotencyStore interface {
	// Lookup returns the ID recorded for key.
	Lookup(ctx context.Context, key string) (id string, ok bool, err error)
	// Record remembers id for key.
	Record(ctx context.Context, key, id string) error
}

// MemoryIdempotencyStore is a bounded in-memory [IdempotencyStore]; the oldest keys
// are forgotten first. It does not survive a restart (see the package doc).
type MemoryIdempotencyStore struct {
	mu    sync.Mutex
	max   int
	ids   map[string]string
	order []string
	next  int
}

// NewMemoryIdempotencyStore returns a store remembering at most maxKeys keys.
func NewMemoryIdempotencyStore(maxKeys int) *MemoryIdempotencyStore {
	maxKeys = max(maxKeys, 1)
	return &MemoryIdempotencyStore{max: maxKeys, ids: make(map[string]string), order: make([]string, 0, min(maxKeys, 1024))}
}

// Lookup implements [IdempotencyStore].
func (s *MemoryIdempotencyStore) Lookup(_ context.Context, key string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.ids[key]
	return id, ok, nil
}

// Record implements [IdempotencyStore].
func (s *MemoryIdempotencyStore) Record(_ context.Context, key, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ids[key]; ok {
		s.ids[key] = id
		return nil
	}
	if len(s.order) < s.max {
		s.order = append(s.order, key)
	} else {
		delete(s.ids, s.order[s.next])
		s.order[s.next] = key
		s.next = (s.next + 1) % s.max
	}
	s.ids[key] = id
	return nil
}
