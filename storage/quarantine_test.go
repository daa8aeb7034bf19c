package storage

import (
	"context"
	"testing"
)

// TestQuarantineKeepsOncePagesAndRefusesUnknownParts: a body is kept once
// however often it is resent, listed newest first with its reason, paged by id,
// and a part that is neither batch nor change is refused naming it.
func TestQuarantineKeepsOncePagesAndRefusesUnknownParts(t *testing.T) {
	eachBackend(t, testQuarantineKeepsOncePagesAndRefusesUnknownParts)
}

func testQuarantineKeepsOncePagesAndRefusesUnknownParts(t *testing.T, be backend) {
	ctx := context.Background()
	db, _ := be.open(t, Options{})
	for _, q := range []struct{ part, reason, body string }{
		{QuarantineBatch, "not JSON", "{"},
		{QuarantineBatch, "not JSON", "{"},
		{QuarantineChange, "bad timestamp", `{"field":"messages"}`},
		{QuarantineBatch, "object page", `{"object":"page"}`},
	} {
		if err := db.QuarantineWebhook(ctx, q.part, q.reason, []byte(q.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.QuarantineWebhook(ctx, "whole", "x", []byte("x")); err == nil {
		t.Error("part \"whole\" was kept")
	}
	n, err := db.CountQuarantinedWebhooks(ctx)
	if err != nil || n != 3 {
		t.Fatalf("count %d (%v), want 3: a resent body is kept once", n, err)
	}
	first, err := db.QuarantinedWebhooks(ctx, 0, 2)
	if err != nil || len(first) != 2 || string(first[0].Body) != `{"object":"page"}` || first[1].Part != QuarantineChange ||
		first[1].Reason != "bad timestamp" || first[0].ReceivedAt.IsZero() {
		t.Fatalf("first page %+v (%v)", first, err)
	}
	rest, err := db.QuarantinedWebhooks(ctx, first[1].ID, 10)
	if err != nil || len(rest) != 1 || string(rest[0].Body) != "{" {
		t.Fatalf("next page %+v (%v)", rest, err)
	}
}
