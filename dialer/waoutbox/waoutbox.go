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
	for attempt := 1; ; attempt++ {
		m, serr, err := try(ctx, o, client, key, send)
		if serr == nil || m.State != storage.OutboxSending {
			return m, err
		}
		// Refused by Meta for throughput, or Meta failed, or it never left: due
		// again at once, claimed again only when its next token is taken.
		delay, again := client.RetryDelay(attempt, serr)
		if !again || ctx.Err() != nil {
			return settleFailure(ctx, o, m, serr)
		}
		if err := o.MarkFailed(ctx, m.ID, serr, time.Now()); err != nil {
			return m, joinErr(serr, err)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			m.State, m.LastError = storage.OutboxPending, serr.Error()
			return m, serr
		}
	}
}

// try makes one request for the row under key if it is pending: the token
// first, then the claim, then the request. It returns the row, the request's
// error (the row then still sending) and a storage error; a row that is not
// pending, or claimed by another, is returned as it stands.
func try(ctx context.Context, o storage.Outbox, client *whatsapp.Client, key string, send SendFunc) (storage.OutboxMessage, error, error) {
	m, err := o.OutboxByKey(ctx, key)
	if err != nil || m.State != storage.OutboxPending {
		return m, nil, err // decided before: its first result stands
	}
	// The token first: a row never waits claimed on the rate limit.
	actx, err := client.Admit(ctx, func(ctx context.Context) error { return o.MarkRequestStarted(ctx, m.ID) })
	if err != nil {
		return m, nil, err
	}
	claimed, err := o.ClaimKey(ctx, key)
	if err != nil || !claimed {
		// Claimed by a concurrent send with the same key: its result stands.
		m, gerr := o.OutboxByKey(ctx, key)
		if err == nil {
			err = gerr
		}
		return m, nil, err
	}
	m.State, m.Tries = storage.OutboxSending, m.Tries+1
	res, serr := send(actx)
	if serr != nil {
		return m, serr, nil
	}
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	m.State, m.ResultID, m.LastError = storage.OutboxSent, res.MessageID, ""
	// Not recorded, the row stays sending with its request started: a restart
	// finds it in doubt and its status webhook settles it.
	return m, nil, o.MarkSent(bctx, m.ID, res.MessageID)
}

// settleFailure records a failed request as what is known of it: in doubt when
// it may have left, pending when the caller stopped before it left, else failed.
func settleFailure(ctx context.Context, o storage.Outbox, m storage.OutboxMessage, serr error) (storage.OutboxMessage, error) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	switch {
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
