//go:build !opus

package media

import "fmt"

// OpusAvailable reports whether this binary was built with libopus (build tag
// "opus"); without it, Opus legs can only be forwarded, not transcoded.
const OpusAvailable = false

func newOpusDecoder() (Decoder, error) {
	return nil, fmt.Errorf("opus decoder (build with -tags opus and libopus-dev): %w", ErrUnsupportedCodec)
}

func newOpusEncoder() (Encoder, error) {
	return nil, fmt.Errorf("opus encoder (build with -tags opus and libopus-dev): %w", ErrUnsupportedCodec)
}
