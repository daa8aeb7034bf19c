package whatsapp_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
)

// discardSink accepts events without keeping them, so the benchmark measures the
// handler (read, verify, parse, dedupe) and not the test's storage.
type discardSink struct{ n atomic.Int64 }

func (s *discardSink) HandleEvents(_ context.Context, evs []whatsapp.Event) error {
	s.n.Add(int64(len(evs)))
	return nil
}

// BenchmarkWebhookIngest measures signed webhook ingestion through the handler:
// body read, HMAC verification, JSON parsing and deduplication, one event per POST,
// every event new. Run: go test -run '^$' -bench WebhookIngest ./dialer/whatsapp/
func BenchmarkWebhookIngest(b *testing.B) {
	sdp := strings.Repeat("a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n", 20)
	shapes := map[string]func(i int) []byte{
		"message_status": func(i int) []byte {
			return fmt.Appendf(nil, `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001234","phone_number_id":"106540352242922"},"statuses":[{"id":"wamid.HBgNNTUxMTk4NzY1NDMyMRUCABEYEjk%08d","status":"delivered","timestamp":"1749196895","recipient_id":"5511987654321","biz_opaque_callback_data":"outbox-%d"}]}}]}]}`, i, i)
		},
		"call_connect_sdp": func(i int) []byte {
			return fmt.Appendf(nil, `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"calls","value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"106540352242922"},"calls":[{"id":"wacid.HBgLMTIxODU1NTI4MjgVAgARGCAy%08d","to":"5511987654321","from":"15550001234","event":"connect","timestamp":"1749196895","direction":"BUSINESS_INITIATED","biz_opaque_callback_data":"outbox-%d","session":{"sdp_type":"answer","sdp":%q}}]}}]}]}`, i, i, sdp)
		},
	}
	for name, mk := range shapes {
		b.Run(name, func(b *testing.B) {
			const pool = 4096
			bodies := make([][]byte, pool)
			sigs := make([]string, pool)
			sink := &discardSink{}
			var h *whatsapp.WebhookHandler
			fresh := func(round int) {
				for i := range bodies {
					bodies[i] = mk(round*pool + i)
					sigs[i] = whatsapp.Sign(testSecret, bodies[i])
				}
				h = newHandler(b, sink, 0)
			}
			fresh(0)
			b.ReportAllocs()
			b.SetBytes(int64(len(bodies[0])))
			b.ResetTimer()
			for i := range b.N {
				if i > 0 && i%pool == 0 {
					b.StopTimer()
					fresh(i / pool)
					b.StartTimer()
				}
				r := httptest.NewRequest(http.MethodPost, "/webhooks/whatsapp", bytes.NewReader(bodies[i%pool]))
				r.Header.Set(whatsapp.SignatureHeader, sigs[i%pool])
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
			b.StopTimer()
			if got := sink.n.Load(); got != int64(b.N) {
				b.Fatalf("%d events delivered for %d posts", got, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkTemplateThroughput sends templates from 16 goroutines through one client
// against the emulator and reports the achieved rate, which the client's limiter must
// hold at the configured messages_per_second, and the loss (messages without a sent,
// delivered and read status webhook). Run:
// go test -run '^$' -bench TemplateThroughput -benchtime 400x ./dialer/whatsapp/
func BenchmarkTemplateThroughput(b *testing.B) {
	for _, rate := range []float64{80, 400} {
		b.Run(fmt.Sprintf("rate=%g", rate), func(b *testing.B) {
			env := newEnv(b, func(c *whatsapp.Config) { c.MessagesPerSecond = rate; c.Burst = 0 })
			var seq atomic.Int64
			ids := make(chan string, b.N)
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := seq.Add(1)
					res, err := env.client.SendTemplate(b.Context(), fmt.Sprintf("bench-%d", i), whatsapp.TemplateMessage{
						To: fmt.Sprintf("55119%08d", i), Name: "order_update", Language: "pt_BR",
						BodyParams: []whatsapp.TemplateParam{{Text: "Ana"}, {Text: fmt.Sprint(i)}},
					})
					if err != nil {
						b.Error(err)
						return
					}
					ids <- res.MessageID
				}
			})
			b.StopTimer()
			elapsed := b.Elapsed()
			close(ids)
			want := map[string]bool{}
			for id := range ids {
				want[id] = true
			}
			// Zero loss: every message accepted once and every status webhook received.
			deadline := time.Now().Add(30 * time.Second)
			lost := len(want)
			for time.Now().Before(deadline) {
				done := map[string]int{}
				for _, e := range env.sink.Events() {
					if e.Status != nil && want[e.Status.ID] {
						done[e.Status.ID]++
					}
				}
				lost = 0
				for id := range want {
					if done[id] != 3 {
						lost++
					}
				}
				if lost == 0 {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			accepted := 0
			for _, r := range env.emu.Requests() {
				if r.Status == http.StatusOK && strings.HasPrefix(r.Key, "bench-") {
					accepted++
				}
			}
			if len(want) != b.N || accepted != b.N || lost != 0 {
				b.Fatalf("sent %d, accepted %d, lost %d of %d", len(want), accepted, lost, b.N)
			}
			achieved := float64(b.N) / elapsed.Seconds()
			burst := max(1, int(rate/10))
			if b.N > 4*burst && achieved > rate*1.05+float64(burst)/elapsed.Seconds() {
				b.Fatalf("achieved %.1f msg/s over the configured %g", achieved, rate)
			}
			b.ReportMetric(achieved, "msgs/s")
			b.ReportMetric(float64(lost), "lost")
		})
	}
}
