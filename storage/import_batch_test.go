package storage

import (
	"context"
	"testing"

	"github.com/turbina-dialer/turbina/campaigns"
)

// TestImportBatchOutlivesFlushContext: the batch Flush opens must survive the end of
// the context Flush was called with (campaigns.Load cancels its own on return), so
// that Finish, called later with another context, can still commit it.
func TestImportBatchOutlivesFlushContext(t *testing.T) {
	eachBackend(t, testImportBatchOutlivesFlushContext)
}

func testImportBatchOutlivesFlushContext(t *testing.T, be backend) {
	d, _ := be.open(t, Options{})
	c := newCampaign(t, d)
	b, err := d.BeginImport(context.Background(), tester, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	loadCtx, cancel := context.WithCancel(context.Background())
	for i, phone := range []string{"+5511987650001", "+5511987650002"} {
		if _, err := b.Add(loadCtx, campaigns.Contact{Phone: phone, Line: i + 2}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := b.Flush(loadCtx); err != nil {
				t.Fatal(err)
			}
		}
	}
	cancel()
	im, err := b.Finish(context.Background(), nil)
	if err != nil {
		t.Fatalf("finish after the load context ended: %v", err)
	}
	if im.State != "done" || im.Imported != 2 {
		t.Errorf("import = %+v, want done with 2 imported", im)
	}
	if _, total, err := d.ListContacts(context.Background(), c.ID, ContactFilter{}); err != nil || total != 2 {
		t.Errorf("contacts stored = %d (%v), want 2", total, err)
	}
}
