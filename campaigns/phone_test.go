package campaigns

import "testing"

func TestDisplayPhone(t *testing.T) {
	tests := []struct{ in, want string }{
		{"+5511960000082", "(11) 96000-0082"},
		{"+551130000000", "(11) 3000-0000"},
		{"+13125550100", "(312) 555-0100"},
		{"not a number", "not a number"},
	}
	for _, tt := range tests {
		if got := DisplayPhone(tt.in); got != tt.want {
			t.Errorf("DisplayPhone(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
