package campaigns

import (
	"slices"
	"testing"
)

func TestCleanName(t *testing.T) {
	tests := []struct {
		name, in, want string
		removed        int
		kinds          []string
	}{
		{"plain", "Cobrança Março", "Cobrança Março", 0, nil},
		{"trimmed only", "  Cobrança  ", "Cobrança", 0, nil},
		{"RTL override", "Invoice\u202Egpj.exe", "Invoicegpj.exe", 1, []string{"bidi"}},
		{"every override and isolate", "a\u202Ab\u202Bc\u202Cd\u202De\u202Ef\u2066g\u2067h\u2068i\u2069j", "abcdefghij", 9, []string{"bidi"}},
		{"NUL", "Camp\x00anha", "Campanha", 1, []string{"control"}},
		{"newlines become one space", "Linha 1\r\nLinha 2", "Linha 1 Linha 2", 2, []string{"line_break"}},
		{"ANSI colour", "\x1b[31mVermelho\x1b[0m", "Vermelho", 2, []string{"ansi_escape"}},
		{"ANSI title (OSC)", "\x1b]0;pwned\x07Campanha", "Campanha", 1, []string{"ansi_escape"}},
		{"ANSI clear screen", "\x1b[2J\x1b[HX", "X", 2, []string{"ansi_escape"}},
		{"C1 CSI", "a\u009b1mb", "ab", 1, []string{"ansi_escape"}},
		{"DEL and C1", "a\x7fb\u0085c", "ab c", 2, []string{"control", "line_break"}},
		{"mixed", "\u202E\x00x\ny", "x y", 3, []string{"bidi", "control", "line_break"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rep := CleanName(tt.in)
			if got != tt.want {
				t.Errorf("CleanName(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if tt.removed == 0 {
				if rep != nil {
					t.Errorf("report %+v, want none", rep)
				}
				return
			}
			if rep == nil || rep.Removed != tt.removed || !slices.Equal(rep.Kinds, tt.kinds) {
				t.Errorf("report %+v, want %d removed, kinds %v", rep, tt.removed, tt.kinds)
			}
		})
	}
}
