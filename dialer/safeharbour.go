package dialer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/media"
	"github.com/turbina-dialer/turbina/storage"
)

// safeHarbourLead is how long before the patience ends a waiting person is given up
// and the safe-harbour message started: the time to hand the call to its goroutine
// and send the first packet, so that it arrives within the patience (2 s by default,
// what the US TSR and Ofcom allow after the greeting).
const safeHarbourLead = 100 * time.Millisecond

// safeHarbourPlayedMsg is the log message of a safe-harbour message played, with
// which one and how long after the answer its first packet left.
const safeHarbourPlayedMsg = "safe-harbour message played"

// safeHarbour is a campaign's own safe-harbour message as the run plays it, and when it
// was set (the zero time and a nil player: the campaign has none).
type safeHarbour struct {
	stamp  time.Time
	player *media.Player
}

// refreshSafeHarbour loads the campaign's own safe-harbour message when it changed
// since the run last looked, so an upload or a removal applies to the next abandon.
func (r *run) refreshSafeHarbour(ctx context.Context) error {
	stamp, err := r.e.store.SafeHarbourStamp(ctx, r.id)
	if err != nil {
		return err
	}
	if cur := r.safeHarbour.Load(); cur != nil && cur.stamp.Equal(stamp) {
		return nil
	}
	if stamp.IsZero() {
		r.safeHarbour.Store(&safeHarbour{})
		return nil
	}
	sh, err := r.e.store.GetSafeHarbour(ctx, r.id)
	if errors.Is(err, storage.ErrNotFound) {
		r.safeHarbour.Store(&safeHarbour{}) // removed between the two reads
		return nil
	}
	if err != nil {
		return err
	}
	p, err := media.NewPlayer(sh.WAV)
	if err != nil {
		// Stored only after conversion, so this is a damaged row: the built-in prompt
		// plays rather than nothing.
		r.safeHarbour.Store(&safeHarbour{stamp: stamp})
		return fmt.Errorf("safe harbour of campaign %d: %w", r.id, err)
	}
	r.safeHarbour.Store(&safeHarbour{stamp: sh.UpdatedAt, player: p})
	return nil
}

// abandonPrompt is what a person no agent was free for hears: the campaign's own
// message when it has one, else the engine's (the built-in pt-BR prompt by default),
// and which of the two it is.
func (r *run) abandonPrompt() (*media.Player, string) {
	if sh := r.safeHarbour.Load(); sh != nil && sh.player != nil {
		return sh.player, storage.SafeHarbourCampaign
	}
	return r.e.cfg.AbandonPrompt, storage.SafeHarbourBuiltin
}

// apologiseAbandoned plays the safe-harbour message to the person of an abandoned
// attempt, hangs up, and records on the attempt that the message played and which.
// It runs on a goroutine of its own: the run goes on meanwhile. answered is when the person
// answered: the log tells how long after it the message began, the figure the US TSR
// and Ofcom bound (2 s).
func (r *run) apologiseAbandoned(ctx context.Context, leg channel.Attempt, attemptID int64, answered time.Time, log *slog.Logger) {
	player, which := r.abandonPrompt()
	played := false
	if mc, ok := leg.(MediaCarrier); ok && player != nil {
		if customer, err := mc.MediaLeg(); err == nil {
			st, err := player.Play(ctx, customer)
			if err != nil {
				log.Debug("safe-harbour message", "err", err)
			}
			played = st.Packets > 0
			if played {
				log.Info(safeHarbourPlayedMsg, "which", which, "after_answer", st.Started.Sub(answered))
			}
		}
	}
	leg.Hangup(ctx)
	if !played {
		return
	}
	// The attempt's outcome is written by the run meanwhile; this column is not among
	// those it writes, so the two do not overwrite each other.
	if err := r.e.store.SetSafeHarbourPlayed(context.WithoutCancel(ctx), attemptID, which); err != nil {
		log.Error("record safe-harbour message", "err", err)
	}
}
