package media

import (
	"context"
	_ "embed"
	"fmt"
	"math/rand/v2"
	"time"
)

// The default abandon prompt, generated once (a few seconds, 8 kHz µ-law, < 60 KB):
//
//go:generate sh -c "espeak-ng -v pt-br -s 165 -w /tmp/turbina-abandon.wav 'Desculpe, todos os nossos atendentes estão ocupados. Ligaremos novamente em breve.' && sox /tmp/turbina-abandon.wav -r 8000 -c 1 -e u-law -b 8 prompts/abandon-pt-br.wav norm -3"
//go:embed prompts/abandon-pt-br.wav
var abandonPromptWAV []byte

//go:generate sh -c "espeak-ng -v pt-br -s 165 -w /tmp/turbina-voicemail.wav 'Olá, aqui é da central de atendimento. Tentamos falar com você e vamos procurar você pelo WhatsApp. Obrigado.' && sox /tmp/turbina-voicemail.wav -r 8000 -c 1 -e u-law -b 8 prompts/voicemail-pt-br.wav norm -3"
//go:embed prompts/voicemail-pt-br.wav
var voicemailPromptWAV []byte

// NewVoicemailPlayer returns a Player for the embedded default message left on an
// answering machine.
func NewVoicemailPlayer() (*Player, error) { return NewPlayer(voicemailPromptWAV) }

// AbandonPromptWAV returns a copy of the embedded default abandon prompt, in
// Brazilian Portuguese: "Desculpe, todos os nossos atendentes estão ocupados.
// Ligaremos novamente em breve." (8 kHz mono µ-law WAV).
func AbandonPromptWAV() []byte { return append([]byte(nil), abandonPromptWAV...) }

// PromptFrame is the packetisation time of prompts: 20 ms, 160 samples at 8 kHz.
const PromptFrame = 20 * time.Millisecond

const promptFrameSamples = PCMRate / 50

// Player plays a recorded prompt into a leg as RTP at 20 ms pacing. A Player is
// immutable after creation and may play into many legs at once.
type Player struct {
	pcm []int16 // 8 kHz mono
}

// NewPlayer parses a WAV prompt: 8 kHz mono, µ-law, A-law or PCM16.
func NewPlayer(wav []byte) (*Player, error) {
	w, err := ParseWAV(wav)
	if err != nil {
		return nil, fmt.Errorf("prompt: %w", err)
	}
	if w.SampleRate != PCMRate || w.Channels != 1 {
		return nil, fmt.Errorf("prompt: %w: need 8000 Hz mono, got %d Hz × %d channels", ErrBadWAV, w.SampleRate, w.Channels)
	}
	return &Player{pcm: w.PCM()}, nil
}

// NewAbandonPlayer returns a Player for the embedded default abandon prompt.
func NewAbandonPlayer() (*Player, error) { return NewPlayer(abandonPromptWAV) }

// Duration returns the prompt's playing time.
func (p *Player) Duration() time.Duration {
	return time.Duration(len(p.pcm)) * time.Second / PCMRate
}

// PlayStats describes one playback.
type PlayStats struct {
	// Packets is the number of RTP packets sent; SSRC, FirstSeq and FirstTimestamp
	// identify the stream they formed.
	Packets        int
	SSRC           uint32
	FirstSeq       uint16
	FirstTimestamp uint32
	// Started is when the first packet was written to the leg: when the person
	// began to hear it, less the network's delay.
	Started time.Time
}

// Play sends the prompt into leg, encoded in the leg's codec, one packet every
// 20 ms against an absolute schedule (so timer jitter never accumulates into
// drift), with sequence numbers +1 and timestamps +1 frame per packet and the
// marker bit on the first. It returns when the prompt ends or ctx is done; the
// last partial frame is padded with silence.
func (p *Player) Play(ctx context.Context, leg Leg) (PlayStats, error) {
	codec := leg.Codec()
	enc, err := NewEncoder(codec)
	if err != nil {
		return PlayStats{}, fmt.Errorf("play prompt: %w", err)
	}
	st := PlayStats{SSRC: rand.Uint32(), FirstSeq: uint16(rand.Uint32()), FirstTimestamp: rand.Uint32()}
	step := codec.samplesPer20ms()
	pkt := make([]byte, maxPacket)
	frame := make([]int16, promptFrameSamples)
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	start := time.Now()
	for i := 0; i*promptFrameSamples < len(p.pcm); i++ {
		if i > 0 {
			timer.Reset(time.Until(start.Add(time.Duration(i) * PromptFrame)))
			select {
			case <-ctx.Done():
				return st, fmt.Errorf("play prompt: %w", ctx.Err())
			case <-timer.C:
			}
		} else if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("play prompt: %w", err)
		}
		n := copy(frame, p.pcm[i*promptFrameSamples:])
		clear(frame[n:])
		m, err := enc.Encode(pkt[rtpFixedHeader:], frame)
		if err != nil {
			return st, fmt.Errorf("play prompt: %w", err)
		}
		putRTPHeader(pkt, i == 0, codec.PayloadType, st.FirstSeq+uint16(i), st.FirstTimestamp+uint32(i)*step, st.SSRC)
		if err := leg.WriteRTP(pkt[:rtpFixedHeader+m]); err != nil {
			return st, fmt.Errorf("play prompt: %w", err)
		}
		if i == 0 {
			st.Started = time.Now()
		}
		st.Packets++
	}
	return st, nil
}
