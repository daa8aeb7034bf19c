package campaigns

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/turbina-dialer/turbina/internal/jsontime"
)

// Duration is a time.Duration read and written in JSON as duration text ("30m").
type Duration = jsontime.Duration

// ClockTime is a time of day in minutes after midnight, written as "HH:MM".
type ClockTime int

func (c ClockTime) valid() bool { return c >= 0 && c < 24*60 }

// String formats the time as HH:MM.
func (c ClockTime) String() string { return fmt.Sprintf("%02d:%02d", int(c)/60, int(c)%60) }

// MarshalJSON writes "HH:MM".
func (c ClockTime) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// UnmarshalJSON reads "HH:MM".
func (c *ClockTime) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("time of day must be text \"HH:MM\": %w", err)
	}
	t, err := time.Parse("15:04", s)
	if err != nil {
		return fmt.Errorf("time of day %q: want HH:MM", s)
	}
	*c = ClockTime(t.Hour()*60 + t.Minute())
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
