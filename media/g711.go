package media

import "math/bits"

// G.711 conversion tables, computed once at start-up from the ITU-T G.711 reference
// algorithms (Sun's g711.c). They are immutable after initialisation; full 64 Ki
// entry encode tables cost 128 KiB and make encoding one load per sample.
var (
	ulawToLinear = func() (t [256]int16) {
		for i := range t {
			t[i] = decodeULawSlow(byte(i))
		}
		return t
	}()
	alawToLinear = func() (t [256]int16) {
		for i := range t {
			t[i] = decodeALawSlow(byte(i))
		}
		return t
	}()
	linearToULaw = func() (t [65536]byte) {
		for i := range t {
			t[i] = encodeULawSlow(int16(uint16(i)))
		}
		return t
	}()
	linearToALaw = func() (t [65536]byte) {
		for i := range t {
			t[i] = encodeALawSlow(int16(uint16(i)))
		}
		return t
	}()
	ulawToALaw = func() (t [256]byte) {
		for i := range t {
			t[i] = encodeALawSlow(decodeULawSlow(byte(i)))
		}
		return t
	}()
	alawToULaw = func() (t [256]byte) {
		for i := range t {
			t[i] = encodeULawSlow(decodeALawSlow(byte(i)))
		}
		return t
	}()
)

const (
	ulawBias = 0x84
	ulawClip = 32635
)

func encodeULawSlow(pcm int16) byte {
	s := int(pcm)
	var sign int
	if s < 0 {
		s = -s
		sign = 0x80
	}
	if s > ulawClip {
		s = ulawClip
	}
	s += ulawBias
	exp := bits.Len(uint(s>>7)) - 1
	mant := (s >> (exp + 3)) & 0x0F
	return ^byte(sign | exp<<4 | mant)
}

func decodeULawSlow(u byte) int16 {
	u = ^u
	t := ((int(u&0x0F) << 3) + ulawBias) << (int(u&0x70) >> 4)
	if u&0x80 != 0 {
		return int16(ulawBias - t)
	}
	return int16(t - ulawBias)
}

func encodeALawSlow(pcm int16) byte {
	p := int(pcm) >> 3
	var mask byte
	if p >= 0 {
		mask = 0xD5
	} else {
		mask = 0x55
		p = -p - 1
	}
	// Segment ends of the 13-bit magnitude: 0x1F, 0x3F, ... 0xFFF.
	seg := 0
	for end := 0x1F; seg < 8 && p > end; end = end<<1 | 1 {
		seg++
	}
	if seg >= 8 {
		return 0x7F ^ mask
	}
	a := byte(seg << 4)
	if seg < 2 {
		a |= byte(p>>1) & 0x0F
	} else {
		a |= byte(p>>seg) & 0x0F
	}
	return a ^ mask
}

func decodeALawSlow(a byte) int16 {
	a ^= 0x55
	t := int(a&0x0F) << 4
	seg := int(a&0x70) >> 4
	switch seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t += 0x108
		t <<= seg - 1
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}

// DecodeULaw decodes µ-law bytes from src into dst and returns the number of
// samples written, min(len(dst), len(src)).
func DecodeULaw(dst []int16, src []byte) int {
	n := min(len(dst), len(src))
	for i, b := range src[:n] {
		dst[i] = ulawToLinear[b]
	}
	return n
}

// DecodeALaw decodes A-law bytes from src into dst and returns the number of
// samples written, min(len(dst), len(src)).
func DecodeALaw(dst []int16, src []byte) int {
	n := min(len(dst), len(src))
	for i, b := range src[:n] {
		dst[i] = alawToLinear[b]
	}
	return n
}

// EncodeULaw encodes linear PCM16 samples from src into µ-law bytes in dst and
// returns the number of bytes written, min(len(dst), len(src)).
func EncodeULaw(dst []byte, src []int16) int {
	n := min(len(dst), len(src))
	for i, s := range src[:n] {
		dst[i] = linearToULaw[uint16(s)]
	}
	return n
}

// EncodeALaw encodes linear PCM16 samples from src into A-law bytes in dst and
// returns the number of bytes written, min(len(dst), len(src)).
func EncodeALaw(dst []byte, src []int16) int {
	n := min(len(dst), len(src))
	for i, s := range src[:n] {
		dst[i] = linearToALaw[uint16(s)]
	}
	return n
}

// ULawToALaw converts µ-law bytes to A-law bytes (dst may alias src) and returns
// the number of bytes written, min(len(dst), len(src)).
func ULawToALaw(dst, src []byte) int {
	n := min(len(dst), len(src))
	for i, b := range src[:n] {
		dst[i] = ulawToALaw[b]
	}
	return n
}

// ALawToULaw converts A-law bytes to µ-law bytes (dst may alias src) and returns
// the number of bytes written, min(len(dst), len(src)).
func ALawToULaw(dst, src []byte) int {
	n := min(len(dst), len(src))
	for i, b := range src[:n] {
		dst[i] = alawToULaw[b]
	}
	return n
}
