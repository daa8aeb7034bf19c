// Package waoutbox sends WhatsApp messages through the outbox exactly once, and
// records honestly what became of each: the message is stored under its
// idempotency key first; the rate limit's token is taken before the row is
// claimed, so a row is sending only while its request is in flight; the start
// of the request is recorded just before it is written. So a crash leaves a row
// either pending (its request provably never left: sent again) or in doubt
// (settled only by the message's status webhook), never sent without evidence.
package waoutbox

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/storage"
)

// bookkeepingTimeout bounds the writes that record how a request went: they
// run even when the caller's context ended, since the request did.
const bookkeepingTimeout = 5 * time.Second

// SendFunc makes the request; ctx carries the admission Send took.
type SendFunc func(ctx context.Context) (whatsapp.SendResult, error)

// Send sends the message of kind under key once. payload is what is stored (it
// lets a later look see what was decided). It returns the row as it stands
// after: sent (ResultID is Meta's wamid, now or from an earlier send), failed
// (LastError says why), in doubt, or pending again when the caller's context
// ended before the request left. err is the request's error when this call
// made one that failed, or a storage error.
func Send(ctx context.Context, o storage.Outbox, client *whatsapp.Client, kind, key string, payload any, send SendFunc) (storage.OutboxMessage, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return storage.OutboxMessage{}, fmt.Errorf("outbox %s: encode payload: %w", kind, err)
	}
	if _, _, err := o.Enqueue(ctx, kind, key, b); err != nil {
		return storage.OutboxMessage{}, err
	}
	m, err := o.OutboxByKey(ctx, key)
	if err != nil || m.State != storage.OutboxPending {
		return m, err // decided before: its first result stands
	}
	// The token first: a row never waits claimed on the rate limit.
	actx, err := client.Admit(ctx, func(ctx context.Context) error { return o.MarkRequestStarted(ctx, m.ID) })
	if err != nil {
		return m, err
	}
	claimed, err := o.ClaimKey(ctx, key)
	if err != nil || !claimed {
		// Claimed by a concurrent send with the same key: its result stands.
		m, gerr := o.OutboxByKey(ctx, key)
		if err == nil {
			err = gerr
		}
		return m, err
	}
	m.State, m.Tries = storage.OutboxSending, m.Tries+1
	res, serr := send(actx)
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	switch {
	case serr == nil:
		m.State, m.ResultID, m.LastError = storage.OutboxSent, res.MessageID, ""
		// Not recorded, the row stays sending with its request started: a
		// restart finds it in doubt and its status webhook settles it.
		return m, o.MarkSent(bctx, m.ID, res.MessageID)
	case whatsapp.MayHaveLeft(serr):
		m.State, m.LastError = storage.OutboxInDoubt, serr.Error()
		return m, joinErr(serr, o.MarkInDoubt(bctx, m.ID, serr))
	case ctx.Err() != nil:
		// The caller stopped before the request left: it is due again under its key.
		m.State, m.LastError = storage.OutboxPending, serr.Error()
		return m, joinErr(serr, o.MarkFailed(bctx, m.ID, serr, time.Now()))
	default:
		// Meta answered with an error, or the request never left: not sent.
		m.State, m.LastError = storage.OutboxFailed, serr.Error()
		return m, joinErr(serr, o.MarkFailed(bctx, m.ID, serr, time.Time{}))
	}
}

// joinErr is the request's error, with the storage's when recording it failed.
func joinErr(sendErr, storeErr error) error {
	if storeErr == nil {
		return sendErr
	}
	return fmt.Errorf("%w (and recording it: %w)", sendErr, storeErr)
}
