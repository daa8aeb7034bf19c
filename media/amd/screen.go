package amd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/pion/rtp"

	"github.com/turbina-dialer/turbina/media"
)

// Screen feeds a customer's first audio to an answering-machine detector until it
// decides or until the deadline, and returns its result: NotSure (cause TOOLONG)
// when the deadline came first. Telephone-events and other payload types are skipped. The leg is
// left as it was, ready for a bridge or a prompt.
func Screen(ctx context.Context, leg media.Leg, d *Detector, until time.Time) (Result, error) {
	codec := leg.Codec()
	dec, err := media.NewDecoder(codec)
	if err != nil {
		return d.Result(), fmt.Errorf("screen: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = leg.SetReadDeadline(time.Now()) })
	defer stop()
	defer leg.SetReadDeadline(time.Time{})
	if err := leg.SetReadDeadline(until); err != nil {
		return d.Result(), fmt.Errorf("screen: %w", err)
	}
	buf := make([]byte, 1500)
	pcm := make([]int16, 1500*6) // Opus at 48 kHz decodes to 8 kHz: at most 6× a G.711 frame
	var h rtp.Header
	for {
		n, err := leg.ReadRTP(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if ctx.Err() != nil {
					return d.Result(), ctx.Err()
				}
				res := d.Result()
				if res.Decision == Undecided {
					res.Decision, res.Cause = NotSure, CauseTooLong
				}
				return res, nil
			}
			return d.Result(), fmt.Errorf("screen: %w", err)
		}
		// The leg returns only valid RTP; padding is rare enough on a first greeting to ignore.
		off, err := h.Unmarshal(buf[:n])
		if err != nil || h.PayloadType != codec.PayloadType {
			continue
		}
		samples, err := dec.Decode(pcm, buf[off:n])
		if err != nil || samples == 0 {
			continue
		}
		if res, done := d.Feed(pcm[:samples]); done {
			return res, nil
		}
	}
}

// AwaitQuiet reads a leg until its audio has been silent for quiet (an answering
// machine's greeting and beep are over), or until the deadline, whichever is first.
// Silence is judged as the detector judges it, against p.SilenceThreshold.
func AwaitQuiet(ctx context.Context, leg media.Leg, p Params, quiet time.Duration, until time.Time) error {
	dec, err := media.NewDecoder(leg.Codec())
	if err != nil {
		return fmt.Errorf("await quiet: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = leg.SetReadDeadline(time.Now()) })
	defer stop()
	defer leg.SetReadDeadline(time.Time{})
	if err := leg.SetReadDeadline(until); err != nil {
		return fmt.Errorf("await quiet: %w", err)
	}
	buf := make([]byte, 1500)
	pcm := make([]int16, 1500*6)
	var h rtp.Header
	need, silent := samples(quiet), 0
	for silent < need {
		n, err := leg.ReadRTP(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil {
				return nil // the deadline is a fine time to speak too
			}
			return fmt.Errorf("await quiet: %w", err)
		}
		off, err := h.Unmarshal(buf[:n])
		if err != nil || h.PayloadType != leg.Codec().PayloadType {
			continue
		}
		k, err := dec.Decode(pcm, buf[off:n])
		if err != nil || k == 0 {
			continue
		}
		var sum int
		for _, v := range pcm[:k] {
			sum += max(int(v), -int(v))
		}
		if sum/k < p.SilenceThreshold {
			silent += k
		} else {
			silent = 0
		}
	}
	return nil
}
