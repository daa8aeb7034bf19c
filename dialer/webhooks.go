package dialer

import (
	"context"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/storage"
)

// WhatsAppSink is where the WhatsApp webhook handler delivers its events: the
// engine's waevents.Inbox keeps them, then applies them. What they send (an
// opt-out's confirmation) is this node's in the outbox.
func (e *Engine) WhatsAppSink() whatsapp.Sink {
	return whatsapp.SinkFunc(func(ctx context.Context, events []whatsapp.Event) error {
		return e.wa.HandleEvents(storage.WithNode(ctx, e.NodeID()), events)
	})
}

// waEngine is the engine as WhatsApp's webhook events need it (waevents.Engine).
type waEngine struct{ *Engine }

// JourneyMove is the storage's move of a contact through ev at now on ladder.
func (w waEngine) JourneyMove(ladder []campaigns.Rung, ev campaigns.Event, now time.Time) storage.MoveFunc {
	return w.journeyMove(ladder, ev, now, nil)
}
