package emulator

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
)

// MetaWebhookRetryFor is how long Meta tries again a webhook the receiver did
// not take (any answer but 200), with exponential backoff: up to 7 days. The
// emulator does the same by default (Config.WebhookRetryFor), its waits capped
// by Config.WebhookMaxBackoff so that a test sees redelivery soon after its
// receiver is back; Close ends the retries.
const MetaWebhookRetryFor = 7 * 24 * time.Hour

// webhookFirstBackoff is the wait after the first refused try; each next wait
// doubles it up to Config.WebhookMaxBackoff.
const webhookFirstBackoff = 20 * time.Millisecond

// webhookSender POSTs queued webhooks to the callback URL one at a time, in order,
// signed with the app secret, retrying non-2xx answers.
type webhookSender struct {
	e    *Emulator
	hc   *http.Client
	wake chan struct{}

	mu      sync.Mutex
	queue   [][]byte
	posting bool // a webhook is taken off the queue and not yet delivered or dropped
	ok      int
}

func newWebhookSender(e *Emulator) *webhookSender {
	return &webhookSender{e: e, hc: &http.Client{Timeout: 5 * time.Second}, wake: make(chan struct{}, 1)}
}

func (s *webhookSender) enqueue(body []byte) {
	s.mu.Lock()
	s.queue = append(s.queue, body)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pending counts the webhooks queued or being posted.
func (s *webhookSender) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.queue)
	if s.posting {
		n++
	}
	return n
}

func (s *webhookSender) delivered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ok
}

func (s *webhookSender) run(ctx context.Context) {
	for {
		s.mu.Lock()
		var body []byte
		if len(s.queue) > 0 {
			body = s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
		}
		s.posting = body != nil
		s.mu.Unlock()
		if body == nil {
			select {
			case <-s.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		s.post(ctx, body)
		s.mu.Lock()
		s.posting = false
		s.mu.Unlock()
	}
}

func (s *webhookSender) post(ctx context.Context, body []byte) {
	sig := whatsapp.Sign(s.e.cfg.AppSecret, body)
	backoff := webhookFirstBackoff
	giveUp := time.Now().Add(s.e.cfg.WebhookRetryFor)
	for attempt := 1; ; attempt++ {
		// Read at every try: a receiver that restarts may come back elsewhere.
		s.e.mu.Lock()
		url := s.e.callbackURL
		s.e.mu.Unlock()
		if url == "" {
			return
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			s.e.log.Error("webhook request", slog.String("error", err.Error()))
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(whatsapp.SignatureHeader, sig)
		resp, err := s.hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				s.mu.Lock()
				s.ok++
				s.mu.Unlock()
				return
			}
			s.e.log.Debug("webhook refused", slog.Int("status", resp.StatusCode), slog.Int("attempt", attempt))
		} else if ctx.Err() != nil {
			return
		}
		if time.Now().Add(backoff).After(giveUp) {
			break
		}
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, s.e.cfg.WebhookMaxBackoff)
	}
	s.e.log.Warn("webhook dropped after retries", slog.Duration("for", s.e.cfg.WebhookRetryFor))
}
