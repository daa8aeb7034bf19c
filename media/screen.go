package media

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/turbina-dialer/turbina/media/amd"
)

// Screen feeds a customer's first audio to an answering-machine detector until it
// decides or until the deadline, and returns its result: NotSure (cause TOOLONG)
// when the deadline came first. Telephone-events and other payload types are skipped. The leg is
// left as it was, ready for a bridge or a prompt.
func Screen(ctx context.Context, leg Leg, d *amd.Detector, until time.Time) (amd.Result, error) {
	codec := leg.Codec()
	dec, err := NewDecoder(codec)
	if err != nil {
		return d.Result(), fmt.Errorf("screen: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = leg.SetReadDeadline(time.Now()) })
	defer stop()
	defer leg.SetReadDeadline(time.Time{})
	if err := leg.SetReadDeadline(until); err != nil {
		return d.Result(), fmt.Errorf("screen: %w", err)
	}
	buf := make([]byte, maxPacket)
	pcm := make([]int16, maxPacket*6) // Opus at 48 kHz decodes to 8 kHz: at most 6× a G.711 frame
	for {
		n, err := leg.ReadRTP(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if ctx.Err() != nil {
					return d.Result(), ctx.Err()
				}
				res := d.Result()
				if res.Decision == amd.Undecided {
					res.Decision, res.Cause = amd.NotSure, amd.CauseTooLong
				}
				return res, nil
			}
			return d.Result(), fmt.Errorf("screen: %w", err)
		}
		v, err := parseRTP(buf[:n])
		if err != nil || v.payloadType() != codec.PayloadType {
			continue
		}
		samples, err := dec.Decode(pcm, v.payload())
		if err != nil || samples == 0 {
			continue
		}
		if res, done := d.Feed(pcm[:samples]); done {
			return res, nil
		}
	}
}
