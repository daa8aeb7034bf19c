package whatsapp_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
)

// fakeClock advances only when someone waits on it: After(d) moves time forward by d
// and fires at once, so a rate can be checked without sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if target := c.now.Add(d); target.After(c.now) {
		c.now = target
	}
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// checkRate fails if more than burst + rate*T of times fall in any window of length T.
func checkRate(t *testing.T, times []time.Time, rate float64, burst int) {
	t.Helper()
	for i := range times {
		for k := burst + 1; i+k < len(times); k += 7 {
			minSpan := time.Duration(float64(k-burst) / rate * float64(time.Second))
			if span := times[i+k].Sub(times[i]); span < minSpan-time.Microsecond {
				t.Fatalf("%d sends in %v after send %d; the rate allows them in no less than %v", k+1, span, i, minSpan)
			}
		}
	}
}

func TestTokenBucketHoldsRate(t *testing.T) {
	tests := []struct {
		rate  float64
		burst int
		n     int
	}{
		{80, 8, 800},
		{80, 1, 400},
		{1000, 100, 3000},
		{0.5, 1, 10},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%g/s burst %d", tt.rate, tt.burst), func(t *testing.T) {
			clk := newFakeClock()
			b := whatsapp.NewTokenBucket(clk, tt.rate, tt.burst)
			start := clk.Now()
			times := make([]time.Time, 0, tt.n)
			for range tt.n {
				if err := b.Wait(t.Context()); err != nil {
					t.Fatal(err)
				}
				times = append(times, clk.Now())
			}
			checkRate(t, times, tt.rate, tt.burst)
			want := time.Duration(float64(tt.n-tt.burst) / tt.rate * float64(time.Second))
			if got := clk.Now().Sub(start); got < want-time.Millisecond || got > want+time.Millisecond {
				t.Fatalf("%d sends took %v of fake time, want %v", tt.n, got, want)
			}
		})
	}
}

func TestTokenBucketReservesInOrder(t *testing.T) {
	clk := newFakeClock()
	b := whatsapp.NewTokenBucket(clk, 10, 2)
	var waits []time.Duration
	for range 5 {
		waits = append(waits, b.Reserve())
	}
	want := []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}
	for i := range want {
		if d := waits[i] - want[i]; d < -time.Microsecond || d > time.Microsecond {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}
}

func TestClientHoldsMessageRate(t *testing.T) {
	clk := newFakeClock()
	env := newEnv(t, nil)
	client, err := whatsapp.NewClient(whatsapp.Config{BaseURL: env.emu.URL(), AccessToken: testToken, PhoneNumberID: env.emu.PhoneNumberID(),
		MessagesPerSecond: 80, Burst: 8}, whatsapp.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	start := clk.Now()
	var sendTimes []time.Time
	for i := range n {
		if _, err := client.SendTemplate(t.Context(), fmt.Sprintf("rate-%d", i), whatsapp.TemplateMessage{To: "5511900000900", Name: "no_params", Language: "en_US"}); err != nil {
			t.Fatal(err)
		}
		sendTimes = append(sendTimes, clk.Now())
	}
	checkRate(t, sendTimes, 80, 8)
	if got, want := clk.Now().Sub(start), time.Duration(float64(n-8)/80*float64(time.Second)); got < want-time.Millisecond {
		t.Fatalf("%d sends in %v of fake time, the rate needs %v", n, got, want)
	}
	if got := len(env.emu.Requests()); got != n {
		t.Fatalf("emulator saw %d requests", got)
	}
}
