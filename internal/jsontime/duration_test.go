package jsontime

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDurationJSON(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: `"30m"`, want: 30 * time.Minute},
		{in: `"1.5s"`, want: 1500 * time.Millisecond},
		{in: `2`, want: 2 * time.Second},
		{in: `0.25`, want: 250 * time.Millisecond},
		{in: `"soon"`, wantErr: `duration "soon"`},
		{in: `true`, wantErr: "want text"},
		{in: `{}`, wantErr: "want text"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var d Duration
			err := json.Unmarshal([]byte(tt.in), &d)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Unmarshal(%s) = %v, %v; want error containing %q", tt.in, d.Std(), err, tt.wantErr)
				}
				return
			}
			if err != nil || d.Std() != tt.want {
				t.Fatalf("Unmarshal(%s) = %v, %v; want %v", tt.in, d.Std(), err, tt.want)
			}
			out, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			var back Duration
			if err := json.Unmarshal(out, &back); err != nil || back != d {
				t.Fatalf("round trip %s → %s → %v, %v", tt.in, out, back.Std(), err)
			}
		})
	}
}
