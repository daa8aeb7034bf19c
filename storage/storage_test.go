package storage

import (
	"context"
	"errors"
	"io/fs"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

var tester = Actor{Username: "tester"}

func newCampaign(t testing.TB, d *DB) campaigns.Campaign {
	t.Helper()
	c := campaigns.Campaign{Name: "c", CallerID: "+551130000000"}
	c.ApplyDefaults()
	if err := d.CreateCampaign(context.Background(), tester, &c); err != nil {
		t.Fatalf("create campaign: %v", err)
	}
	return c
}

func TestOpenConfiguresSQLite(t *testing.T) {
	d, path := openTestDB(t)
	ctx := context.Background()
	for pragma, want := range map[string]string{"journal_mode": "wal", "foreign_keys": "1"} {
		var got string
		if err := d.db.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %q, want %q", pragma, got, want)
		}
	}
	v, err := d.SchemaVersion(ctx)
	if err != nil || v < 1 {
		t.Fatalf("schema version %d, %v", v, err)
	}
	d.Close()
	// Reopening applies nothing twice.
	d2, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer d2.Close()
	var applied int
	if err := d2.db.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations").Scan(&applied); err != nil {
		t.Fatal(err)
	}
	// Counted against the files, not the highest version: numbers are assigned
	// to branches ahead of time, so the sequence may have gaps.
	files, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if applied != len(files) {
		t.Errorf("%d migrations recorded after reopen, want %d", applied, len(files))
	}
	if err := d2.IntegrityCheck(ctx); err != nil {
		t.Error(err)
	}
}

func TestCampaignChangesAreAudited(t *testing.T) { eachBackend(t, testCampaignChangesAreAudited) }

func testCampaignChangesAreAudited(t *testing.T, be backend) {
	d, _ := be.open(t, Options{})
	ctx := context.Background()
	c := newCampaign(t, d)
	who := Actor{Username: "sup"}
	_, err := d.UpdateCampaign(ctx, who, c.ID, "campaign.pacing", func(c *campaigns.Campaign) error {
		c.Pacing.MaxRatio = 2
		c.Pacing.RingTimeout, c.Pacing.MinRingTimeout = campaigns.Duration(20*time.Second), campaigns.Duration(18*time.Second)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	refused := errors.New("refused")
	if _, err := d.UpdateCampaign(ctx, who, c.ID, "campaign.update", func(*campaigns.Campaign) error { return refused }); !errors.Is(err, refused) {
		t.Fatalf("refused change: %v", err)
	}
	got, err := d.GetCampaign(ctx, c.ID)
	if err != nil || got.Pacing.MaxRatio != 2 || got.Pacing.RingTimeout.Std() != 20*time.Second || got.Pacing.MinRingTimeout.Std() != 18*time.Second {
		t.Fatalf("campaign after update: %+v, %v", got.Pacing, err)
	}
	entries, total, err := d.ListAudit(ctx, AuditFilter{ObjectType: "campaign", ObjectID: idString(c.ID)})
	if err != nil {
		t.Fatal(err)
	}
	if total != 2 || entries[0].Action != "campaign.pacing" || entries[0].Username != "sup" || entries[1].Action != "campaign.create" {
		t.Fatalf("audit entries %+v", entries)
	}
	if len(entries[0].Before) == 0 || len(entries[0].After) == 0 {
		t.Errorf("pacing entry lacks before/after: %+v", entries[0])
	}
	if _, err := d.GetCampaign(ctx, 9999); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing campaign: %v", err)
	}
}

func TestImportBatchesAreAllOrNothing(t *testing.T) { eachBackend(t, testImportBatchesAreAllOrNothing) }

func testImportBatchesAreAllOrNothing(t *testing.T, be backend) {
	d, _ := be.open(t, Options{})
	ctx := context.Background()
	c := newCampaign(t, d)
	b, err := d.BeginImport(ctx, tester, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	add := func(phone string, line int) campaigns.RejectReason {
		t.Helper()
		r, err := b.Add(ctx, campaigns.Contact{Phone: phone, Line: line, Attributes: map[string]string{"k": "v"}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	add("+5511987650001", 2)
	if r := add("+5511987650001", 3); r != campaigns.RejectAlreadyInCampaign {
		t.Fatalf("duplicate add: %q", r)
	}
	if err := b.Reject(ctx, campaigns.Rejection{Line: 3, Reason: campaigns.RejectAlreadyInCampaign}); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	add("+5511987650002", 4) // in a batch that never commits
	im, err := b.Finish(ctx, errors.New("client went away"))
	if err != nil {
		t.Fatal(err)
	}
	if im.State != "failed" || im.Imported != 1 || im.Rejected != 1 {
		t.Fatalf("import record %+v", im)
	}
	list, total, err := d.ListContacts(ctx, c.ID, ContactFilter{})
	if err != nil || total != 1 || list[0].Phone != "+5511987650001" || list[0].Attributes["k"] != "v" {
		t.Fatalf("contacts %+v total %d err %v", list, total, err)
	}
	var rejs []campaigns.Rejection
	d.ImportRejections(ctx, im.ID, func(r campaigns.Rejection) error { rejs = append(rejs, r); return nil })
	if len(rejs) != 1 || rejs[0].Line != 3 {
		t.Fatalf("rejections %+v", rejs)
	}
}

func TestDNCBlocksImportAndMarksContacts(t *testing.T) {
	eachBackend(t, testDNCBlocksImportAndMarksContacts)
}

func testDNCBlocksImportAndMarksContacts(t *testing.T, be backend) {
	d, _ := be.open(t, Options{})
	ctx := context.Background()
	c := newCampaign(t, d)
	other := newCampaign(t, d)
	b, _ := d.BeginImport(ctx, tester, c.ID)
	b.Add(ctx, campaigns.Contact{Phone: "+5511987650009"})
	b.Finish(ctx, nil)

	if n, err := d.AddDNC(ctx, tester, 0, []string{"+5511987650009", "+5511987650009"}, "asked"); err != nil || n != 1 {
		t.Fatalf("add global: %d %v", n, err)
	}
	if n, err := d.AddDNC(ctx, tester, other.ID, []string{"+5511987650010"}, ""); err != nil || n != 1 {
		t.Fatalf("add campaign: %d %v", n, err)
	}
	list, _, _ := d.ListContacts(ctx, c.ID, ContactFilter{})
	if list[0].Status != campaigns.ContactDoNotCall {
		t.Errorf("existing contact status %q after DNC", list[0].Status)
	}
	for _, tc := range []struct {
		campaign int64
		phone    string
		want     bool
	}{
		{c.ID, "+5511987650009", true},
		{other.ID, "+5511987650009", true},
		{other.ID, "+5511987650010", true},
		{c.ID, "+5511987650010", false},
	} {
		if got, err := d.IsDNC(ctx, tc.campaign, tc.phone); err != nil || got != tc.want {
			t.Errorf("IsDNC(%d, %s) = %v, %v; want %v", tc.campaign, tc.phone, got, err, tc.want)
		}
	}
	b2, _ := d.BeginImport(ctx, tester, other.ID)
	if r, _ := b2.Add(ctx, campaigns.Contact{Phone: "+5511987650010"}); r != campaigns.RejectDoNotCall {
		t.Errorf("import of a campaign-DNC number: %q", r)
	}
	if r, _ := b2.Add(ctx, campaigns.Contact{Phone: "+5511987650011", WhatsApp: "+5511987650009"}); r != campaigns.RejectDoNotCall {
		t.Errorf("import with a DNC WhatsApp number: %q", r)
	}
	b2.Finish(ctx, nil)
	if err := d.RemoveDNC(ctx, tester, 0, "+5511987650009", ""); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveDNC(ctx, tester, 0, "+5511987650009", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("second removal: %v", err)
	}
}

func TestTokensResolveUntilRevoked(t *testing.T) { eachBackend(t, testTokensResolveUntilRevoked) }

func testTokensResolveUntilRevoked(t *testing.T, be backend) {
	d, _ := be.open(t, Options{})
	ctx := context.Background()
	u := User{Username: "Ana", Role: RoleAgent}
	if err := d.CreateUser(ctx, tester, &u); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateUser(ctx, tester, &User{Username: "ana", Role: RoleSales}); !errors.Is(err, ErrConflict) {
		t.Errorf("username differing only in case: %v", err)
	}
	tok := Token{UserID: u.ID, Name: "t", Prefix: "tb_x"}
	if err := d.CreateToken(ctx, tester, &tok, "hash1"); err != nil {
		t.Fatal(err)
	}
	if got, err := d.UserByToken(ctx, "hash1"); err != nil || got.ID != u.ID {
		t.Fatalf("UserByToken: %+v %v", got, err)
	}
	if err := d.RevokeToken(ctx, tester, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.UserByToken(ctx, "hash1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoked token still resolves: %v", err)
	}
}

func TestOutboxSendsOnce(t *testing.T) { eachBackend(t, testOutboxSendsOnce) }

func testOutboxSendsOnce(t *testing.T, be backend) {
	d, _ := be.open(t, Options{})
	ctx := context.Background()
	id, isNew, err := d.Enqueue(ctx, "whatsapp.template", "attempt-1", []byte(`{"to":"+55"}`))
	if err != nil || !isNew {
		t.Fatalf("enqueue: %v %v", isNew, err)
	}
	id2, isNew, err := d.Enqueue(ctx, "whatsapp.template", "attempt-1", []byte(`{}`))
	if err != nil || isNew || id2 != id {
		t.Fatalf("re-enqueue: id %d new %v err %v", id2, isNew, err)
	}
	now := time.Now()
	msgs, err := d.ClaimDue(ctx, now, 10)
	if err != nil || len(msgs) != 1 || string(msgs[0].Payload) != `{"to":"+55"}` {
		t.Fatalf("claim: %+v %v", msgs, err)
	}
	if again, _ := d.ClaimDue(ctx, now, 10); len(again) != 0 {
		t.Fatalf("claimed twice: %+v", again)
	}
	// A crash before the request started: on restart the claim is returned to the queue.
	if r, err := d.RecoverOutbox(ctx, OutboxScope{}, []string{"whatsapp.template"}); err != nil || r.Requeued != 1 {
		t.Fatalf("recover: %+v %v", r, err)
	}
	msgs, _ = d.ClaimDue(ctx, now, 10)
	if len(msgs) != 1 || msgs[0].Tries != 2 {
		t.Fatalf("reclaim: %+v", msgs)
	}
	if err := d.MarkFailed(ctx, id, errors.New("429"), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if due, _ := d.ClaimDue(ctx, now, 10); len(due) != 0 {
		t.Fatalf("claimed before its retry time: %+v", due)
	}
	msgs, _ = d.ClaimDue(ctx, now.Add(2*time.Minute), 10)
	if len(msgs) != 1 || msgs[0].LastError != "429" {
		t.Fatalf("retry claim: %+v", msgs)
	}
	if err := d.MarkSent(ctx, id, "wamid.1"); err != nil {
		t.Fatal(err)
	}
	if m, _ := d.OutboxByKey(ctx, "attempt-1"); m.State != OutboxSent || m.ResultID != "wamid.1" {
		t.Fatalf("sent: %+v", m)
	}
	if due, _ := d.ClaimDue(ctx, now.Add(time.Hour), 10); len(due) != 0 {
		t.Fatalf("sent message claimed again: %+v", due)
	}
}
