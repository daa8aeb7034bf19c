package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// WAVFormat is a WAVE format tag.
type WAVFormat uint16

// The WAVE format tags Turbina reads; it writes only WAVFormatPCM.
const (
	WAVFormatPCM  WAVFormat = 1 // linear PCM, little-endian
	WAVFormatALaw WAVFormat = 6 // G.711 A-law
	WAVFormatULaw WAVFormat = 7 // G.711 µ-law

	wavFormatExtensible WAVFormat = 0xFFFE
)

// ErrBadWAV is wrapped by every WAV parsing error.
var ErrBadWAV = errors.New("media: malformed WAV")

// WAV is a parsed WAVE file. Data aliases the parsed bytes.
type WAV struct {
	Format        WAVFormat
	Channels      uint16
	SampleRate    uint32
	BitsPerSample uint16
	// Data holds the sample data exactly as stored (interleaved when stereo).
	Data []byte
}

// ParseWAV parses a RIFF/WAVE file: PCM (8 or 16 bit), µ-law or A-law, including
// WAVE_FORMAT_EXTENSIBLE wrappers and streamed files whose data size is unset.
func ParseWAV(b []byte) (*WAV, error) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, fmt.Errorf("%w: no RIFF/WAVE header", ErrBadWAV)
	}
	var w WAV
	haveFmt := false
	for off := 12; off+8 <= len(b); {
		id := string(b[off : off+4])
		size := int(binary.LittleEndian.Uint32(b[off+4:]))
		body := off + 8
		if size < 0 || size > len(b)-body {
			if id != "data" {
				return nil, fmt.Errorf("%w: chunk %q overruns the file", ErrBadWAV, id)
			}
			size = len(b) - body // streamed writers leave the size unset
		}
		switch id {
		case "fmt ":
			if size < 16 {
				return nil, fmt.Errorf("%w: fmt chunk of %d bytes", ErrBadWAV, size)
			}
			f := b[body : body+size]
			w.Format = WAVFormat(binary.LittleEndian.Uint16(f[0:]))
			w.Channels = binary.LittleEndian.Uint16(f[2:])
			w.SampleRate = binary.LittleEndian.Uint32(f[4:])
			w.BitsPerSample = binary.LittleEndian.Uint16(f[14:])
			if w.Format == wavFormatExtensible {
				if size < 26 {
					return nil, fmt.Errorf("%w: short extensible fmt chunk", ErrBadWAV)
				}
				w.Format = WAVFormat(binary.LittleEndian.Uint16(f[24:])) // sub-format GUID
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return nil, fmt.Errorf("%w: data before fmt", ErrBadWAV)
			}
			w.Data = b[body : body+size]
			if err := w.validate(); err != nil {
				return nil, err
			}
			return &w, nil
		}
		off = body + size + size&1 // chunks are padded to even sizes
	}
	return nil, fmt.Errorf("%w: no data chunk", ErrBadWAV)
}

func (w *WAV) validate() error {
	if w.Channels == 0 || w.SampleRate == 0 {
		return fmt.Errorf("%w: %d channels at %d Hz", ErrBadWAV, w.Channels, w.SampleRate)
	}
	switch {
	case w.Format == WAVFormatPCM && (w.BitsPerSample == 16 || w.BitsPerSample == 8):
	case (w.Format == WAVFormatULaw || w.Format == WAVFormatALaw) && w.BitsPerSample == 8:
	default:
		return fmt.Errorf("%w: unsupported format %d with %d bits", ErrBadWAV, w.Format, w.BitsPerSample)
	}
	return nil
}

// PCM returns the samples as linear PCM16, interleaved as stored.
func (w *WAV) PCM() []int16 {
	switch {
	case w.Format == WAVFormatULaw:
		pcm := make([]int16, len(w.Data))
		DecodeULaw(pcm, w.Data)
		return pcm
	case w.Format == WAVFormatALaw:
		pcm := make([]int16, len(w.Data))
		DecodeALaw(pcm, w.Data)
		return pcm
	case w.BitsPerSample == 8: // unsigned 8-bit PCM
		pcm := make([]int16, len(w.Data))
		for i, s := range w.Data {
			pcm[i] = (int16(s) - 128) << 8
		}
		return pcm
	default:
		pcm := make([]int16, len(w.Data)/2)
		for i := range pcm {
			pcm[i] = int16(binary.LittleEndian.Uint16(w.Data[2*i:]))
		}
		return pcm
	}
}

// WAVWriter writes a linear PCM16 WAVE file whose header sizes are fixed up by
// Close, so it can be written while a call is in progress.
type WAVWriter struct {
	w        io.WriteSeeker
	channels uint16
	rate     uint32
	data     uint32 // bytes of sample data written
	buf      []byte
	err      error
}

const wavHeaderSize = 44

// NewWAVWriter writes a provisional header to w and returns a writer of PCM16
// samples at rate Hz with the given number of interleaved channels.
func NewWAVWriter(w io.WriteSeeker, rate uint32, channels uint16) (*WAVWriter, error) {
	ww := &WAVWriter{w: w, channels: channels, rate: rate}
	if _, err := w.Write(ww.header()); err != nil {
		return nil, fmt.Errorf("write WAV header: %w", err)
	}
	return ww, nil
}

func (ww *WAVWriter) header() []byte {
	h := make([]byte, wavHeaderSize)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], 36+ww.data)
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], uint16(WAVFormatPCM))
	binary.LittleEndian.PutUint16(h[22:], ww.channels)
	binary.LittleEndian.PutUint32(h[24:], ww.rate)
	binary.LittleEndian.PutUint32(h[28:], ww.rate*uint32(ww.channels)*2)
	binary.LittleEndian.PutUint16(h[32:], ww.channels*2)
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], ww.data)
	return h
}

// WriteSamples appends interleaved samples. The first error sticks and is also
// returned by Close.
func (ww *WAVWriter) WriteSamples(s []int16) error {
	if ww.err != nil {
		return ww.err
	}
	need := 2 * len(s)
	if cap(ww.buf) < need {
		ww.buf = make([]byte, need)
	}
	b := ww.buf[:need]
	for i, v := range s {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	if uint64(ww.data)+uint64(need) > 1<<32-1-36 {
		ww.err = fmt.Errorf("%w: WAV larger than 4 GiB", ErrBadWAV)
		return ww.err
	}
	if _, err := ww.w.Write(b); err != nil {
		ww.err = fmt.Errorf("write WAV samples: %w", err)
		return ww.err
	}
	ww.data += uint32(need)
	return nil
}

// Close rewrites the header with the final sizes. It does not close the
// underlying writer.
func (ww *WAVWriter) Close() error {
	if ww.err != nil {
		return ww.err
	}
	end, err := ww.w.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("finish WAV: %w", err)
	}
	if _, err := ww.w.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("finish WAV: %w", err)
	}
	if _, err := ww.w.Write(ww.header()); err != nil {
		return fmt.Errorf("finish WAV: %w", err)
	}
	if _, err := ww.w.Seek(end, io.SeekStart); err != nil {
		return fmt.Errorf("finish WAV: %w", err)
	}
	return nil
}
