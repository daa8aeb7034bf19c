package waevents

import (
	"context"
	"strings"
	"unicode"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"

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
// claimed before (sent, or in doubt after a crash) is not sent again.
func (in *Inbox) optOutReply(ctx context.Context, phone, key string) error {
	client := in.cfg.Client
	if client == nil {
		return nil // stays pending in the outbox: not sent is not recorded as sent
	}
	claimed, err := in.store.ClaimKey(ctx, key)
	if err != nil || !claimed {
		return err
	}
	m, err := in.store.OutboxByKey(ctx, key)
	if err != nil {
		return err
	}
	res, err := client.SendText(ctx, key, phone, in.cfg.OptOutReply)
	storage.Settle(ctx, in.store, m, err)
	if err != nil {
		in.cfg.Logger.Error("opt-out confirmation", "phone", phone, "err", err)
		return nil
	}
	// Shown in the conversation of every contact with the number, as a reply is.
	return in.keep(ctx, storage.WAMessage{Direction: "out", WAID: res.MessageID, Phone: phone, Type: "text",
		Body: in.cfg.OptOutReply, At: in.cfg.Now()})
}
