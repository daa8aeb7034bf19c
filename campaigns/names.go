package campaigns

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// NameCleaning reports what CleanName removed from a display name.
type NameCleaning struct {
	// Removed counts what was removed: a character, or a whole ANSI escape sequence.
	Removed int `json:"removed"`
	// Kinds are what was removed, each once, in the order met: "control" (NUL and
	// the other C0 and C1 controls), "line_break" (line breaks and tabs, replaced
	// by a space), "bidi" (directional overrides, embeddings, isolates and marks)
	// and "ansi_escape" (terminal escape sequences).
	Kinds []string `json:"kinds"`
}

// CleanName returns name as it may be shown on a page, a terminal or a log: its
// control characters, bidi overrides and isolates, and ANSI escape sequences
// removed (an override would reverse what follows it on the wallboard, an escape
// would recolour an operator's terminal), line breaks and tabs made one space, and
// the ends trimmed. The report is nil when nothing but the trim changed.
func CleanName(name string) (string, *NameCleaning) {
	var b strings.Builder
	var rep NameCleaning
	note := func(kind string) {
		rep.Removed++
		for _, k := range rep.Kinds {
			if k == kind {
				return
			}
		}
		rep.Kinds = append(rep.Kinds, kind)
	}
	space := false // a line break was replaced; one space stands for a run of them
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		switch {
		case r == '\x1b' || r == '\u009b':
			i += size
			i += escapeLen(name[i:], r == '\u009b')
			note("ansi_escape")
			continue
		case r == '\n' || r == '\r' || r == '\t' || r == '\v' || r == '\f' || r == '\u0085' || r == '\u2028' || r == '\u2029':
			note("line_break")
			if !space {
				b.WriteByte(' ')
				space = true
			}
			i += size
			continue
		case isBidiControl(r):
			note("bidi")
		case unicode.IsControl(r) || r == utf8.RuneError && size == 1:
			note("control")
		default:
			b.WriteRune(r)
			space = false
		}
		i += size
	}
	clean := strings.TrimSpace(b.String())
	if rep.Removed == 0 {
		return clean, nil
	}
	return clean, &rep
}

// isBidiControl says r changes the direction of the text around it: the
// embeddings and overrides U+202A–U+202E, the isolates U+2066–U+2069, and the
// marks LRM, RLM and ALM.
func isBidiControl(r rune) bool {
	return (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') ||
		r == '\u200e' || r == '\u200f' || r == '\u061c'
}

// escapeLen is how many bytes at the start of rest, which follows an ESC (or a
// C1 CSI when csi), belong to its escape sequence: a CSI's parameters and final
// byte ("\x1b[31m"), an OSC's or DCS's text up to BEL or ST ("\x1b]0;title\x07"),
// or the one character after a plain ESC.
func escapeLen(rest string, csi bool) int {
	if csi {
		return csiLen(rest)
	}
	if rest == "" {
		return 0
	}
	switch rest[0] {
	case '[':
		return 1 + csiLen(rest[1:])
	case ']', 'P', '_', '^', 'X': // OSC, DCS, APC, PM, SOS: text up to BEL or ST
		end := strings.IndexAny(rest[1:], "\x07\x1b")
		if end < 0 {
			return len(rest)
		}
		n := 1 + end + 1
		if rest[n-1] == '\x1b' && n < len(rest) && rest[n] == '\\' {
			n++
		}
		return n
	default:
		_, size := utf8.DecodeRuneInString(rest)
		return size
	}
}

// csiLen is the length of a CSI's parameter bytes (0x30–0x3F), intermediates
// (0x20–0x2F) and final byte (0x40–0x7E) at the start of s.
func csiLen(s string) int {
	n := 0
	for n < len(s) && s[n] >= 0x20 && s[n] <= 0x3f {
		n++
	}
	if n < len(s) && s[n] >= 0x40 && s[n] <= 0x7e {
		n++
	}
	return n
}
