package media

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
)

// Recorder writes a call as a stereo 8 kHz PCM16 WAV: the customer on the left
// channel, the agent on the right. It takes decoded PCM from both directions of a
// bridge (WithRecorder) and is safe for concurrent use.
//
// The two directions arrive as separate packet streams with no common clock, so
// the recorder aligns them by arrival: samples are written when both channels
// have them, and a channel that falls more than MaxLag behind (the other side is
// silent, or sends no packets while muted) is padded with silence.
type Recorder struct {
	mu     sync.Mutex
	file   *os.File // nil when writing to a caller's io.WriteSeeker
	bw     *bufio.Writer
	wav    *WAVWriter
	left   []int16
	right  []int16
	inter  []int16
	maxLag int
	err    error
	closed bool
}

// recorderMaxLag is 200 ms: beyond a jitter buffer's worth, a silent side is
// treated as silence rather than as late.
const recorderMaxLag = PCMRate / 5

// NewRecorder starts a recording into w.
func NewRecorder(w io.WriteSeeker) (*Recorder, error) {
	r := &Recorder{maxLag: recorderMaxLag}
	// The WAV writer seeks only in Close, after the buffer has been flushed.
	r.bw = bufio.NewWriterSize(writerOnly{w}, 32<<10)
	wav, err := NewWAVWriter(seekFlusher{w: w, bw: r.bw}, PCMRate, 2)
	if err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	r.wav = wav
	return r, nil
}

// CreateRecorder creates (or truncates) the file at path and records into it;
// Close closes the file.
func CreateRecorder(path string) (*Recorder, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	r, err := NewRecorder(f)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	r.file = f
	return r, nil
}

// WriteCustomer appends customer audio (8 kHz mono PCM16). Write errors are kept
// and returned by Close, so the packet path never blocks on them.
func (r *Recorder) WriteCustomer(pcm []int16) { r.write(pcm, true) }

// WriteAgent appends agent audio (8 kHz mono PCM16).
func (r *Recorder) WriteAgent(pcm []int16) { r.write(pcm, false) }

func (r *Recorder) write(pcm []int16, left bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.err != nil {
		return
	}
	if left {
		r.left = append(r.left, pcm...)
	} else {
		r.right = append(r.right, pcm...)
	}
	// Pad a channel lagging by more than maxLag, then write what both have.
	if d := len(r.left) - len(r.right); d > r.maxLag {
		r.right = padSilence(r.right, d-r.maxLag)
	} else if -d > r.maxLag {
		r.left = padSilence(r.left, -d-r.maxLag)
	}
	r.flush(min(len(r.left), len(r.right)))
}

func (r *Recorder) flush(n int) {
	if n == 0 {
		return
	}
	if cap(r.inter) < 2*n {
		r.inter = make([]int16, 2*n)
	}
	in := r.inter[:2*n]
	for i := range n {
		in[2*i], in[2*i+1] = r.left[i], r.right[i]
	}
	if err := r.wav.WriteSamples(in); err != nil {
		r.err = err
	}
	r.left = r.left[:copy(r.left, r.left[n:])]
	r.right = r.right[:copy(r.right, r.right[n:])]
}

// Close pads the shorter channel, writes the remaining samples, fixes up the WAV
// header and closes the file it created. It returns the first write error.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return r.err
	}
	r.closed = true
	if r.err == nil {
		n := max(len(r.left), len(r.right))
		r.left = padSilence(r.left, n-len(r.left))
		r.right = padSilence(r.right, n-len(r.right))
		r.flush(n)
	}
	err := r.err
	if err == nil {
		err = r.bw.Flush()
	}
	if err == nil {
		err = r.wav.Close()
	}
	if r.file != nil {
		err = errors.Join(err, r.file.Close())
	}
	if err != nil {
		r.err = fmt.Errorf("recorder: %w", err)
	}
	return r.err
}

// writerOnly hides Seek so bufio does not bypass its buffer.
type writerOnly struct{ w io.Writer }

func (w writerOnly) Write(p []byte) (int, error) { return w.w.Write(p) }

// seekFlusher writes through the buffer and flushes it before seeking.
type seekFlusher struct {
	w  io.WriteSeeker
	bw *bufio.Writer
}

func (s seekFlusher) Write(p []byte) (int, error) { return s.bw.Write(p) }

func (s seekFlusher) Seek(off int64, whence int) (int64, error) {
	if err := s.bw.Flush(); err != nil {
		return 0, err
	}
	return s.w.Seek(off, whence)
}

// padSilence appends n zero samples, reusing s's capacity (no allocation once
// the buffers have grown).
func padSilence(s []int16, n int) []int16 {
	s = slices.Grow(s, n)
	l := len(s)
	s = s[:l+n]
	clear(s[l:])
	return s
}
