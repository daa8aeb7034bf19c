package dialer

import (
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/storage"
)

// WhatsAppSink is where the WhatsApp webhook handler delivers its events: the
// engine's waevents.Inbox keeps them, then applies them.
func (e *Engine) WhatsAppSink() whatsapp.Sink { return e.wa }

// waEngine is the engine as WhatsApp's webhook events need it (waevents.Engine).
type waEngine struct{ *Engine }

// JourneyMove is the storage's move of a contact through ev at now on ladder.
func (w waEngine) JourneyMove(ladder []campaigns.Rung, ev campaigns.Event, now time.Time) storage.MoveFunc {
	return w.journeyMove(ladder, ev, now, nil)
}
