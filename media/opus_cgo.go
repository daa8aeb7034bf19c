//go:build opus

package media

import (
	"fmt"

	opus "gopkg.in/hraban/opus.v2"
)

// OpusAvailable reports whether this binary was built with libopus (build tag
// "opus"); without it, Opus legs can only be forwarded, not transcoded.
const OpusAvailable = true

// libopus resamples internally, so both ends run at PCMRate: no Go resampler needed.
type opusDecoder struct{ d *opus.Decoder }

func newOpusDecoder() (Decoder, error) {
	d, err := opus.NewDecoder(PCMRate, 1)
	if err != nil {
		return nil, fmt.Errorf("opus decoder: %w", err)
	}
	return opusDecoder{d}, nil
}

func (o opusDecoder) Decode(pcm []int16, payload []byte) (int, error) {
	n, err := o.d.Decode(payload, pcm)
	if err != nil {
		return 0, fmt.Errorf("opus decode: %w", err)
	}
	return n, nil
}

type opusEncoder struct{ e *opus.Encoder }

func newOpusEncoder() (Encoder, error) {
	e, err := opus.NewEncoder(PCMRate, 1, opus.AppVoIP)
	if err != nil {
		return nil, fmt.Errorf("opus encoder: %w", err)
	}
	return opusEncoder{e}, nil
}

func (o opusEncoder) Encode(payload []byte, pcm []int16) (int, error) {
	n, err := o.e.Encode(pcm, payload)
	if err != nil {
		return 0, fmt.Errorf("opus encode: %w", err)
	}
	return n, nil
}
