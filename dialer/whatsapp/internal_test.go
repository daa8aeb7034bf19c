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
