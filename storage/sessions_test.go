package storage

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSessionsResolveUntilExpiryOrLogout(t *testing.T) {
	eachBackend(t, testSessionsResolveUntilExpiryOrLogout)
}

func testSessionsResolveUntilExpiryOrLogout(t *testing.T, be backend) {
	d, _ := be.open(t, Options{})
	ctx := context.Background()
	u := User{Username: "Ana", Role: RoleSales, PasswordHash: "$argon2id$x"}
	if err := d.CreateUser(ctx, tester, &u); err != nil {
		t.Fatal(err)
	}
	if got, err := d.UserByUsername(ctx, "ana"); err != nil || got.ID != u.ID || got.PasswordHash != u.PasswordHash {
		t.Fatalf("UserByUsername = %+v, %v", got, err)
	}
	if _, err := d.UserByUsername(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	now := time.Now()
	s := Session{IDHash: "h1", UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour), RemoteAddr: "127.0.0.1"}
	if err := d.CreateSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateSession(ctx, s); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate session: %v", err)
	}
	if err := d.CreateSession(ctx, Session{IDHash: "h9", UserID: 999, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("session of unknown user: %v", err)
	}
	got, sess, err := d.UserBySession(ctx, "h1", now.Add(2*time.Minute))
	if err != nil || got.ID != u.ID || sess.RemoteAddr != "127.0.0.1" {
		t.Fatalf("UserBySession = %+v %+v %v", got, sess, err)
	}
	if _, _, err := d.UserBySession(ctx, "h1", now.Add(time.Hour)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired session still resolves: %v", err)
	}
	if n, err := d.DeleteExpiredSessions(ctx, now.Add(2*time.Hour)); err != nil || n != 1 {
		t.Fatalf("DeleteExpiredSessions = %d, %v", n, err)
	}

	for _, h := range []string{"a", "b"} {
		if err := d.CreateSession(ctx, Session{IDHash: h, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.DeleteSession(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.UserBySession(ctx, "a", now); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted session resolves: %v", err)
	}
	// A disabled user's sessions stop working at once.
	if _, err := d.UpdateUser(ctx, tester, u.ID, func(u *User) error { u.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.UserBySession(ctx, "b", now); !errors.Is(err, ErrNotFound) {
		t.Fatalf("disabled user's session resolves: %v", err)
	}
	if err := d.DeleteUserSessions(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
}

func TestRecordEventIsAudited(t *testing.T) { eachBackend(t, testRecordEventIsAudited) }

func testRecordEventIsAudited(t *testing.T, be backend) {
	d, _ := be.open(t, Options{})
	ctx := context.Background()
	if err := d.RecordEvent(ctx, Actor{Username: "sup"}, "trunk.out_of_service", "trunk", "carrier", map[string]bool{"out_of_service": true}); err != nil {
		t.Fatal(err)
	}
	entries, total, err := d.ListAudit(ctx, AuditFilter{ObjectType: "trunk"})
	if err != nil || total != 1 || entries[0].Action != "trunk.out_of_service" || string(entries[0].After) != `{"out_of_service":true}` {
		t.Fatalf("audit = %+v %d %v", entries, total, err)
	}
}
