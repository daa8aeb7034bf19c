package media

import "math"

// holdPCM is the default hold tone: two soft notes (440 Hz, then 554 Hz, 300 ms
// each, faded in and out so they do not click) and 2.4 s of silence, at 8 kHz.
// A caller waiting in a queue hears that the line is alive without a message
// that would repeat every few seconds.
func holdPCM() []int16 {
	const (
		note    = PCMRate * 3 / 10
		gap     = PCMRate / 10
		silence = PCMRate * 24 / 10
		fade    = PCMRate / 50
		level   = 6000.0
	)
	pcm := make([]int16, 0, 2*note+gap+silence)
	for _, freq := range []float64{440, 554.37} {
		for i := range note {
			env := math.Min(1, math.Min(float64(i), float64(note-1-i))/fade)
			pcm = append(pcm, int16(level*env*math.Sin(2*math.Pi*freq*float64(i)/PCMRate)))
		}
		pcm = append(pcm, make([]int16, gap)...)
	}
	return append(pcm, make([]int16, silence-gap)...)
}

// NewHoldPlayer returns a Player for the default hold tone (3 s, meant to be
// played again and again while a caller waits).
func NewHoldPlayer() *Player { return &Player{pcm: holdPCM()} }
