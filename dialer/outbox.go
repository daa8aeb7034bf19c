package dialer

import (
	"context"
	"fmt"
	"time"

	"github.com/turbina-dialer/turbina/storage"
)

// outboxTemplateKind is the one outbox kind whose sends are made again under
// their key after their node stopped: a template's contact is placed again
// (its attempt was interrupted). Others a stop caught before their request
// left are recorded not sent: nothing would send them (an agent's retry with
// the same key gets that answer).
const outboxTemplateKind = storage.OutboxKindTemplate

// reportInDoubt tells supervisors, once each, of the messages still in doubt
// InDoubtReportAfter after a crash left them so: no status webhook came, so no
// one knows whether the person got them. They stay in doubt.
func (e *Engine) reportInDoubt(ctx context.Context) {
	every := min(e.cfg.InDoubtReportAfter/4, time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := e.reportInDoubtOnce(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("report outbox messages in doubt", "err", err)
		}
	}
}

// reportInDoubtOnce reports the messages in doubt for longer than the wait.
func (e *Engine) reportInDoubtOnce(ctx context.Context) error {
	const page = 500
	for {
		list, err := e.store.InDoubtSince(ctx, e.cfg.Now().Add(-e.cfg.InDoubtReportAfter), page)
		if err != nil || len(list) == 0 {
			return err
		}
		ids := make([]int64, len(list))
		for i, m := range list {
			ids[i] = m.ID
			e.log.Error("WhatsApp message in doubt: its request may have reached WhatsApp, and no status webhook has said so; check it with the contact",
				"kind", m.Kind, "key", m.IdempotencyKey, "in_doubt_since", m.InDoubtSince.Format(time.RFC3339), "reason", m.LastError)
		}
		if err := e.store.MarkReported(ctx, ids); err != nil {
			return fmt.Errorf("mark reported: %w", err)
		}
		e.metrics.inDoubtReported.Add(float64(len(ids)))
		if len(list) < page {
			return nil
		}
	}
}
