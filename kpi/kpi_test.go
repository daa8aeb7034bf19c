package kpi

import (
	"math"
	"testing"
	"time"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestOccupancy(t *testing.T) {
	for _, tc := range []struct {
		name             string
		talk, wrap, idle time.Duration
		want             float64
	}{
		{"wrap-up is handling time", 40 * time.Minute, 10 * time.Minute, 10 * time.Minute, 50.0 / 60},
		{"never idle", time.Hour, 0, 0, 1},
		{"only idle", 0, 0, time.Hour, 0},
		{"nothing signed in", 0, 0, 0, 0},
		{"only wrap-up", 0, 5 * time.Minute, 15 * time.Minute, 0.25},
		{"negative idle from rounding is none", 30 * time.Second, 30 * time.Second, -time.Millisecond, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Occupancy(tc.talk, tc.wrap, tc.idle); !near(got, tc.want) {
				t.Errorf("Occupancy(%v, %v, %v) = %v, want %v", tc.talk, tc.wrap, tc.idle, got, tc.want)
			}
		})
	}
}

// TestOccupancyNowAgreesWithOccupancy checks that the snapshot is the same figure
// as the one over time when every agent has spent the same span in its state.
func TestOccupancyNowAgreesWithOccupancy(t *testing.T) {
	for _, tc := range []struct {
		name            string
		handling, ready int
		want            float64
	}{
		{"three of four", 3, 1, 0.75},
		{"all ready", 0, 5, 0},
		{"all handling", 4, 0, 1},
		{"nobody", 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := OccupancyNow(tc.handling, tc.ready)
			if !near(got, tc.want) {
				t.Errorf("OccupancyNow(%d, %d) = %v, want %v", tc.handling, tc.ready, got, tc.want)
			}
			span := time.Minute
			if over := Occupancy(time.Duration(tc.handling)*span, 0, time.Duration(tc.ready)*span); !near(over, got) {
				t.Errorf("Occupancy over a minute each = %v, OccupancyNow = %v", over, got)
			}
		})
	}
}

func TestRates(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func(int, int) float64
		n, d int
		want float64
	}{
		{"abandon 3 of 100 answered", AbandonRate, 3, 100, 0.03},
		{"abandon nothing answered", AbandonRate, 0, 0, 0},
		{"answer 1 of 4", AnswerRate, 1, 4, 0.25},
		{"answer no attempts", AnswerRate, 0, 0, 0},
		{"service level 9 of 10", ServiceLevel, 9, 10, 0.9},
		{"service level no calls", ServiceLevel, 0, 0, 0},
		{"negative denominator", AnswerRate, 1, -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.f(tc.n, tc.d); !near(got, tc.want) {
				t.Errorf("%d/%d = %v, want %v", tc.n, tc.d, got, tc.want)
			}
		})
	}
}

func TestAverages(t *testing.T) {
	for _, tc := range []struct {
		name  string
		f     func(time.Duration, int) time.Duration
		total time.Duration
		calls int
		want  time.Duration
	}{
		{"AHT of three calls", AHT, 6 * time.Minute, 3, 2 * time.Minute},
		{"AHT of none", AHT, time.Minute, 0, 0},
		{"ASA of four calls", ASA, 2 * time.Second, 4, 500 * time.Millisecond},
		{"ASA of none", ASA, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.f(tc.total, tc.calls); got != tc.want {
				t.Errorf("(%v, %d) = %v, want %v", tc.total, tc.calls, got, tc.want)
			}
		})
	}
}
