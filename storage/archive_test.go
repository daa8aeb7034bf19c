package storage

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// TestArchiveKeepsHistory: an archived campaign leaves the lists and refuses
// changes, and its contacts, attempts and audit stay; a refusal of allowed
// archives nothing.
func TestArchiveKeepsHistory(t *testing.T) { eachBackend(t, testArchiveKeepsHistory) }

func testArchiveKeepsHistory(t *testing.T, be backend) {
	d, _ := be.open(t, Options{})
	ctx := context.Background()
	c, kept := newCampaign(t, d), newCampaign(t, d)
	contact := addContact(t, d, c.ID, "+5511987654321", "America/Sao_Paulo")
	attempt := addAttempt(t, d, c.ID, contact, campaigns.ChannelSIP, campaigns.OutcomeConnected, time.Now())

	refused := errors.New("running")
	if _, err := d.ArchiveCampaign(ctx, tester, c.ID, func(campaigns.Campaign) error { return refused }); !errors.Is(err, refused) {
		t.Fatalf("refused archive: %v", err)
	}
	if got, err := d.GetCampaign(ctx, c.ID); err != nil || got.ArchivedAt != nil {
		t.Fatalf("after a refused archive: %+v, %v", got.ArchivedAt, err)
	}

	archived, err := d.ArchiveCampaign(ctx, tester, c.ID, func(campaigns.Campaign) error { return nil })
	if err != nil || archived.ArchivedAt == nil {
		t.Fatalf("archive: %+v, %v", archived.ArchivedAt, err)
	}
	for _, ids := range [][]int64{nil, {c.ID, kept.ID}} {
		list, err := d.ListCampaigns(ctx, ids)
		if err != nil || len(list) != 1 || list[0].ID != kept.ID {
			t.Errorf("ListCampaigns(%v) = %+v, %v; want only campaign %d", ids, list, err, kept.ID)
		}
	}
	got, err := d.GetCampaign(ctx, c.ID)
	if err != nil || got.ArchivedAt == nil || !got.ArchivedAt.Equal(*archived.ArchivedAt) {
		t.Fatalf("archived campaign read back: %+v, %v", got.ArchivedAt, err)
	}
	if _, err := d.UpdateCampaign(ctx, tester, c.ID, "campaign.update", func(*campaigns.Campaign) error { return nil }); !errors.Is(err, ErrConflict) {
		t.Errorf("change of an archived campaign: %v, want ErrConflict", err)
	}
	if _, err := d.ArchiveCampaign(ctx, tester, c.ID, func(campaigns.Campaign) error { return nil }); !errors.Is(err, ErrConflict) {
		t.Errorf("second archive: %v, want ErrConflict", err)
	}
	attempts, err := d.ListAttempts(ctx, contact)
	if err != nil || len(attempts) != 1 || attempts[0].ID != attempt {
		t.Errorf("attempts after archive: %+v, %v", attempts, err)
	}
	entries, _, err := d.ListAudit(ctx, AuditFilter{ObjectType: "campaign", ObjectID: idString(c.ID)})
	if err != nil || len(entries) == 0 || entries[0].Action != "campaign.archive" {
		t.Errorf("audit after archive: %+v, %v", entries, err)
	}
}
