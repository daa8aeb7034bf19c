package storage

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// ClaimOnce records a side effect in the outbox under key before it is made and
// claims it. It reports false when the key was decided before (a restart after
// the crash that interrupted it): then the effect must not be made again.
func ClaimOnce(ctx context.Context, o Outbox, kind, key string, payload any) (OutboxMessage, bool, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return OutboxMessage{}, false, err
	}
	if _, _, err := o.Enqueue(ctx, kind, key, b); err != nil {
		return OutboxMessage{}, false, err
	}
	claimed, err := o.ClaimKey(ctx, key)
	if err != nil || claimed {
		m, gerr := o.OutboxByKey(ctx, key)
		return m, claimed, errors.Join(err, gerr)
	}
	m, err := o.OutboxByKey(ctx, key)
	return m, false, err
}

// Settle records how a claimed side effect went: sent (resultID is the far
// end's ID of it), or failed for good (a claimed effect is never retried, as it
// may have been made).
func Settle(ctx context.Context, o Outbox, m OutboxMessage, resultID string, err error) error {
	if err == nil {
		return o.MarkSent(ctx, m.ID, resultID)
	}
	return o.MarkFailed(ctx, m.ID, err, time.Time{})
}
