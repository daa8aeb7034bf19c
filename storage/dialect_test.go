package storage

import "testing"

func TestRebind(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"SELECT ?", "SELECT $1"},
		{"VALUES (?,?,?)", "VALUES ($1,$2,$3)"},
		{"WHERE a = ?1 AND b = ?2 OR c = ?1", "WHERE a = $1 AND b = $2 OR c = $1"},
		// SQLite numbers a bare ? after the highest so far.
		{"?3, ?", "$3, $4"},
		{"?10 ?", "$10 $11"},
		{"WHERE s = '?' AND t = ?", "WHERE s = '?' AND t = $1"},
		{"WHERE s = 'it''s ?' AND t = ?", "WHERE s = 'it''s ?' AND t = $1"},
		{`SELECT "odd?name" FROM t WHERE a = ?`, `SELECT "odd?name" FROM t WHERE a = $1`},
		{"-- is it?\nSELECT ?", "-- is it?\nSELECT $1"},
		{"SELECT '?", "SELECT '?"},
	} {
		if got := rebind(tc.in); got != tc.want {
			t.Errorf("rebind(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"+5511", "+5512"},
		{"+5519", "+551:"},
		{"+", ","},
	} {
		if got := prefixEnd(tc.in); got != tc.want {
			t.Errorf("prefixEnd(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if !(tc.in+"999" < prefixEnd(tc.in)) {
			t.Errorf("%q+999 is not below prefixEnd", tc.in)
		}
	}
}
