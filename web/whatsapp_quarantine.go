package web

import (
	"context"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/turbina-dialer/turbina/storage"
)

// quarantinedWebhookView is a quarantined webhook as the admin API shows it.
type quarantinedWebhookView struct {
	ID         int64     `json:"id,string"`
	Part       string    `json:"part"`
	Reason     string    `json:"reason"`
	ReceivedAt time.Time `json:"received_at"`
	Bytes      int       `json:"bytes"`
	// Body is the body as received when it is UTF-8 text (Meta's bodies are
	// JSON); BodyBase64 carries it otherwise.
	Body       string `json:"body,omitempty"`
	BodyBase64 []byte `json:"body_base64,omitempty"`
}

// listQuarantinedWebhooks shows the signed webhooks that did not parse, newest
// first: they were acknowledged, so Meta does not send them again, and this is
// where they are.
func (s *Server) listQuarantinedWebhooks(w http.ResponseWriter, r *http.Request, _ principal) error {
	limit, err := queryInt(r, "limit", 50)
	if err != nil {
		return err
	}
	limit = min(max(limit, 1), 500)
	before, err := queryID(r, "before")
	if err != nil {
		return err
	}
	list, err := s.store.QuarantinedWebhooks(r.Context(), before, limit)
	if err != nil {
		return err
	}
	total, err := s.store.CountQuarantinedWebhooks(r.Context())
	if err != nil {
		return err
	}
	out := make([]quarantinedWebhookView, 0, len(list))
	for _, q := range list {
		v := quarantinedWebhookView{ID: q.ID, Part: q.Part, Reason: q.Reason, ReceivedAt: q.ReceivedAt, Bytes: len(q.Body)}
		if utf8.Valid(q.Body) {
			v.Body = string(q.Body)
		} else {
			v.BodyBase64 = q.Body
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": out, "total": total})
	return nil
}

// quarantineCollector reports at scrape time how many webhooks are in
// quarantine, so that an alert survives a restart (the handler's counter does
// not).
type quarantineCollector struct{ store storage.Store }

var quarantineDesc = prometheus.NewDesc("turbina_whatsapp_webhook_quarantine",
	"Signed WhatsApp webhook bodies or changes kept in quarantine because they did not parse (GET /api/v1/whatsapp/quarantine).", nil, nil)

func (c quarantineCollector) Describe(ch chan<- *prometheus.Desc) { ch <- quarantineDesc }

func (c quarantineCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := c.store.CountQuarantinedWebhooks(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(quarantineDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(quarantineDesc, prometheus.GaugeValue, float64(n))
}
