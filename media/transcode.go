package media

import (
	"errors"
	"fmt"
	"strings"
)

// PCMRate is the sample rate of the linear PCM that decoders produce and encoders
// take: narrowband telephony, 8 kHz mono signed 16-bit.
const PCMRate = 8000

// maxFrameSamples bounds one decoded payload: 120 ms of Opus, or the largest G.711
// payload that fits an Ethernet MTU.
const maxFrameSamples = 1500

// ErrUnsupportedCodec is returned when no decoder, encoder or transcoder exists for
// a codec (Opus without the "opus" build tag, or an unknown name).
var ErrUnsupportedCodec = errors.New("media: unsupported codec")

// Decoder turns one RTP payload into 8 kHz mono PCM16.
type Decoder interface {
	// Decode decodes payload into pcm and returns the number of samples written.
	Decode(pcm []int16, payload []byte) (int, error)
}

// Encoder turns 8 kHz mono PCM16 into one RTP payload.
type Encoder interface {
	// Encode encodes pcm into payload and returns the number of bytes written.
	Encode(payload []byte, pcm []int16) (int, error)
}

// Transcoder converts one RTP payload of one codec into a payload of another.
type Transcoder interface {
	// Transcode converts src into dst and returns the number of bytes written.
	Transcode(dst, src []byte) (int, error)
}

type ulawCodec struct{}

func (ulawCodec) Decode(pcm []int16, p []byte) (int, error) { return DecodeULaw(pcm, p), nil }
func (ulawCodec) Encode(p []byte, pcm []int16) (int, error) { return EncodeULaw(p, pcm), nil }

type alawCodec struct{}

func (alawCodec) Decode(pcm []int16, p []byte) (int, error) { return DecodeALaw(pcm, p), nil }
func (alawCodec) Encode(p []byte, pcm []int16) (int, error) { return EncodeALaw(p, pcm), nil }

func isName(c Codec, name string) bool { return strings.EqualFold(c.Name, name) }

// NewDecoder returns a decoder for c. Decoders may keep state (Opus does), so use
// one per stream.
func NewDecoder(c Codec) (Decoder, error) {
	switch {
	case isName(c, "PCMU"):
		return ulawCodec{}, nil
	case isName(c, "PCMA"):
		return alawCodec{}, nil
	case isName(c, "opus"):
		return newOpusDecoder()
	}
	return nil, fmt.Errorf("decoder for %s: %w", c.Name, ErrUnsupportedCodec)
}

// NewEncoder returns an encoder for c. Encoders may keep state (Opus does), so use
// one per stream.
func NewEncoder(c Codec) (Encoder, error) {
	switch {
	case isName(c, "PCMU"):
		return ulawCodec{}, nil
	case isName(c, "PCMA"):
		return alawCodec{}, nil
	case isName(c, "opus"):
		return newOpusEncoder()
	}
	return nil, fmt.Errorf("encoder for %s: %w", c.Name, ErrUnsupportedCodec)
}

type tableTranscoder struct{ table *[256]byte }

func (t tableTranscoder) Transcode(dst, src []byte) (int, error) {
	n := min(len(dst), len(src))
	for i, b := range src[:n] {
		dst[i] = t.table[b]
	}
	return n, nil
}

type identity struct{}

func (identity) Transcode(dst, src []byte) (int, error) { return copy(dst, src), nil }

// pcmTranscoder goes through linear PCM, for pairs without a direct table.
type pcmTranscoder struct {
	dec Decoder
	enc Encoder
	pcm []int16
}

func (t *pcmTranscoder) Transcode(dst, src []byte) (int, error) {
	n, err := t.dec.Decode(t.pcm, src)
	if err != nil {
		return 0, fmt.Errorf("transcode: %w", err)
	}
	m, err := t.enc.Encode(dst, t.pcm[:n])
	if err != nil {
		return 0, fmt.Errorf("transcode: %w", err)
	}
	return m, nil
}

// NewTranscoder returns a transcoder from payloads of from to payloads of to. G.711
// pairs use a single 256-entry table; other pairs decode to PCM and re-encode. A
// transcoder keeps state and buffers: use one per direction of a call.
func NewTranscoder(from, to Codec) (Transcoder, error) {
	switch {
	case from.SameFormat(to):
		return identity{}, nil
	case isName(from, "PCMU") && isName(to, "PCMA"):
		return tableTranscoder{&ulawToALaw}, nil
	case isName(from, "PCMA") && isName(to, "PCMU"):
		return tableTranscoder{&alawToULaw}, nil
	}
	dec, err := NewDecoder(from)
	if err != nil {
		return nil, err
	}
	enc, err := NewEncoder(to)
	if err != nil {
		return nil, err
	}
	return &pcmTranscoder{dec: dec, enc: enc, pcm: make([]int16, maxFrameSamples)}, nil
}
