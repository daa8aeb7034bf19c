package whatsapp

import (
	"net/http"
	"testing"
	"time"
)

func TestBackoffBounds(t *testing.T) {
	c, err := NewClient(Config{AccessToken: "t", PhoneNumberID: "1", MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}, WithJitterSeed(7))
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 40; attempt++ {
		step := min(100*time.Millisecond<<min(attempt-1, 30), time.Second)
		for range 50 {
			d := c.backoff(attempt, nil)
			if d < step/2 || d > step {
				t.Fatalf("attempt %d: backoff %v outside [%v, %v]", attempt, d, step/2, step)
			}
		}
	}
	h := http.Header{"Retry-After": {"3"}}
	if d := c.backoff(1, h); d != time.Second {
		t.Fatalf("Retry-After beyond MaxBackoff: %v", d)
	}
}

func TestDedupeEviction(t *testing.T) {
	d := newDedupe(2)
	for _, k := range []string{"a", "b", "c"} {
		if ok, _ := d.claim(k); !ok {
			t.Fatalf("%s not claimed", k)
		}
		d.resolve([]string{k}, true)
	}
	if d.committed("a") || !d.committed("b") || !d.committed("c") {
		t.Fatal("oldest key not evicted first")
	}
	if ok, _ := d.claim("x"); !ok {
		t.Fatal("x")
	}
	ok, done := d.claim("x")
	if ok || done == nil {
		t.Fatal("pending key claimed twice")
	}
	d.resolve([]string{"x"}, false)
	<-done
	if ok, _ := d.claim("x"); !ok {
		t.Fatal("failed delivery not released")
	}
}

func TestMemoryIdempotencyStoreBound(t *testing.T) {
	s := NewMemoryIdempotencyStore(2)
	ctx := t.Context()
	for _, k := range []string{"a", "b", "c"} {
		_ = s.Record(ctx, k, "id-"+k)
	}
	if _, ok, _ := s.Lookup(ctx, "a"); ok {
		t.Fatal("a not evicted")
	}
	if id, ok, _ := s.Lookup(ctx, "c"); !ok || id != "id-c" {
		t.Fatal("c lost")
	}
}

// TestRetryable pins which failures the client retries in place. The code decides
// before the HTTP status: Meta documents throttling codes with HTTP 400 as well as
// 429, and long throttles (spam, concurrent calls, call rate) come with 429 but are
// left to the engine.
func TestRetryable(t *testing.T) {
	tests := []struct {
		status, code int
		want         bool
	}{
		{400, 130429, true},
		{429, 130429, true},
		{400, 131056, true},
		{429, 131056, true},
		{400, 4, true},
		{400, 80007, true},
		{429, 613, true},
		{500, 131000, true},
		{503, 131016, true},
		{500, 138004, true},
		{503, 0, true},
		{429, 0, true},
		{400, 131048, false},
		{429, 131048, false},
		{429, 138002, false},
		{429, 138005, false},
		{500, 138007, false},
		{401, 138006, false},
		{401, 138000, false},
		{429, 190, false},
		{400, 132000, false},
		{400, 100, false},
	}
	for _, tt := range tests {
		e := &Error{HTTPStatus: tt.status, Code: tt.code}
		if got := e.retryable(); got != tt.want {
			t.Errorf("HTTP %d code %d: retryable %v, want %v", tt.status, tt.code, got, tt.want)
		}
	}
	if !(&Error{Err: http.ErrHandlerTimeout}).retryable() {
		t.Error("transport failure not retried")
	}
}
