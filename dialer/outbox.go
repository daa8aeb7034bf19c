package dialer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
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
// one knows whether the person got them. They stay in doubt. On the same clock
// it records not sent the templates nothing will send (dropUnsendable).
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
		if err := e.dropUnsendable(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("record unsendable templates not sent", "err", err)
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

// outboxKey is the idempotency key of a contact's attempt of ordinal n: a template
// placed again after a crash gets the same one (storage.AttemptOrdinal does not
// count the interrupted try), so its row is sent at most once.
func outboxKey(contactID int64, n int) string {
	return fmt.Sprintf("contact-%d-attempt-%d", contactID, n)
}

// keyContact is the contact an outboxKey names.
func keyContact(key string) (int64, bool) {
	var id int64
	var n int
	if _, err := fmt.Sscanf(key, "contact-%d-attempt-%d", &id, &n); err != nil || outboxKey(id, n) != key {
		return 0, false
	}
	return id, true
}

// dropUnsendable records not sent the templates a stop put back in the queue
// (their request provably never left) whose contact will not be placed again:
// closed (done, exhausted, invalid, do-not-call or opted out, by the gate at the
// new start or since) or in a finished campaign. Left pending, they would say
// they are still to be sent. A contact still waiting (its hours closed, its
// campaign paused, its retry delay) keeps its row: its next placement, which
// the policy gate admits or refuses at that time however long after the crash,
// sends it under its key.
func (e *Engine) dropUnsendable(ctx context.Context) error {
	const page = 500
	var after int64
	for {
		list, err := e.store.PendingOutbox(ctx, outboxTemplateKind, after, page)
		if err != nil {
			return err
		}
		for _, m := range list {
			after = m.ID
			cause, drop, err := e.unsendable(ctx, m.IdempotencyKey)
			if err != nil {
				return err
			}
			if !drop {
				continue
			}
			if ok, err := e.store.DropPending(ctx, m.ID, cause); err != nil {
				return err
			} else if ok {
				e.log.Warn("template left by a stop recorded not sent", "key", m.IdempotencyKey, "reason", cause)
			}
		}
		if len(list) < page {
			return nil
		}
	}
}

// unsendable says why the template under key will never be sent, if it will not.
func (e *Engine) unsendable(ctx context.Context, key string) (cause string, drop bool, err error) {
	id, ok := keyContact(key)
	if !ok {
		return "", false, nil
	}
	ct, err := e.store.GetContact(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return "not sent: its contact is gone", true, nil
	}
	if err != nil {
		return "", false, err
	}
	switch ct.Status {
	case campaigns.ContactNew, campaigns.ContactPending, campaigns.ContactInProgress:
	default:
		return fmt.Sprintf("not sent: its contact was closed (%s) before it could be sent again", ct.Status), true, nil
	}
	c, err := e.store.GetCampaign(ctx, ct.CampaignID)
	if err != nil {
		return "", false, err
	}
	if c.State == campaigns.StateFinished {
		return "not sent: its campaign finished before it could be sent again", true, nil
	}
	return "", false, nil
}
