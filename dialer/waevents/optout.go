package waevents

import (
	"context"
	"errors"
	"strings"
	"unicode"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"

	"github.com/turbina-dialer/turbina/dialer/waoutbox"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/storage"
)

// foldWord reduces a reply to what an opt-out word is compared on: no accents,
// no case, nothing but letters and digits at its ends.
func foldWord(s string) string {
	t := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
	folded, _, err := transform.String(t, s)
	if err != nil {
		folded = s
	}
	folded = strings.TrimFunc(folded, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	return strings.ToUpper(folded)
}

// isOptOut reports whether a reply is one of the opt-out words.
func (in *Inbox) isOptOut(text string) bool {
	w := foldWord(text)
	if w == "" {
		return false
	}
	for _, o := range in.cfg.OptOutWords {
		if foldWord(o) == w {
			return true
		}
	}
	return false
}

// outboxOptOutReply is the outbox kind of an opt-out's confirmation.
const outboxOptOutReply = "whatsapp.opt_out_reply"

// optOutReply sends an opt-out's confirmation queued under key, once: a key
// sent before, or in doubt after a crash, is not sent again.
func (in *Inbox) optOutReply(ctx context.Context, phone, key string) error {
	client := in.cfg.Client
	if client == nil {
		return nil // stays pending in the outbox: not sent is not recorded as sent
	}
	if _, err := in.store.OutboxByKey(ctx, key); errors.Is(err, storage.ErrNotFound) {
		return nil // not queued: the number had opted out before, and was confirmed then
	} else if err != nil {
		return err
	}
	m, err := waoutbox.Send(ctx, in.store, client, outboxOptOutReply, key, optOutPayload{To: phone},
		func(ctx context.Context) (whatsapp.SendResult, error) {
			return client.SendText(ctx, key, phone, in.cfg.OptOutReply)
		})
	if m.State != storage.OutboxSent {
		if err != nil {
			in.cfg.Logger.Error("opt-out confirmation", "phone", phone, "state", m.State, "err", err)
		}
		return nil
	}
	// Shown in the conversation of every contact with the number, as a reply is.
	return in.keep(ctx, storage.WAMessage{Direction: "out", WAID: m.ResultID, Phone: phone, Type: "text",
		Body: in.cfg.OptOutReply, At: in.cfg.Now()})
}

// optOutPayload is what the outbox keeps of an opt-out's confirmation.
type optOutPayload struct {
	To string `json:"to"`
}
